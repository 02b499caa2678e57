"""Prometheus metrics of a gateway, on a registry of its own (several gateways can share a process).

Series, labelled by deployment and version:

- ``pave_gateway_requests_total``: inference requests answered by the version (shadow calls excluded);
- ``pave_gateway_errors_total``: failed inference requests, also by HTTP status code;
- ``pave_gateway_request_seconds``: request latency, from the body read to the answer built;
- ``pave_gateway_batch_size``: requests per model call (1 when not batched);
- ``pave_gateway_traffic_share``: the configured share of traffic of the version (0..1);
- ``pave_gateway_shadow_requests_total`` / ``pave_gateway_shadow_errors_total``: shadow calls;
- ``pave_gateway_model_loaded``: 1 while the version is in memory (0 when scaled to zero).

With several worker processes (``run_gateway`` sets ``PROMETHEUS_MULTIPROC_DIR`` to a directory
of the gateway's own, emptied at start), prometheus_client's multiprocess mode keeps every
worker's values in memory-mapped files and ``/metrics`` answers, whichever worker takes the
scrape, the sum of the counters and histograms over the workers and the largest gauge value among
the live ones (the gauge files of a worker that died are removed at the next scrape).

The per-request series (requests, latency, batch size) are counted through ``_Hot``: plain
Python numbers on the event loop, folded into the memory-mapped values prometheus_client keeps
``FOLD_SECONDS`` (50 ms) after the first count since the last fold, and before every render. The
fold writes them without prometheus_client's per-write ``os.getpid()`` system call (a fork is
noticed once, through ``os.register_at_fork``). So a scrape counts every request its own worker
answered, and every request another worker answered at least 50 ms before; a worker that dies
loses at most its last 50 ms of counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from bisect import bisect_left
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

from pave.processes import alive

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# The longest a counted request waits before it is in the worker's memory-mapped file (``_Hot``).
FOLD_SECONDS = 0.05
# Read by prometheus_client when it is imported: set it before a worker process starts.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


_forks = [0]  # bumped in a forked child: its values must be re-read from its own files
os.register_at_fork(after_in_child=lambda: _forks.__setitem__(0, _forks[0] + 1))


class _Value:
    """One prometheus_client value (a counter, a histogram's sum or bucket), incremented cheaply.

    In multiprocess mode the value is a memory-mapped ``MmapedValue``: its ``inc`` takes a lock and
    calls ``os.getpid()`` on every write. This writes the same number to the same place of the
    same file, keeping the ``MmapedValue``'s own copy in step (so a scrape of this process and any
    other writer agree). Single-process values (``MutexValue``) are incremented as they are.
    """

    __slots__ = ("file", "fork", "key", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self.file = getattr(value, "_file", None)
        self.key = getattr(value, "_key", None)
        self.fork = _forks[0]

    def inc(self, amount: float) -> None:
        value, file = self.value, self.file
        if file is None:
            value.inc(amount)
            return
        if self.fork != _forks[0]:  # a forked child: let prometheus_client reopen its files
            value.get()
            self.file, self.fork = value._file, _forks[0]
            file = self.file
        value._value += amount
        value._timestamp = 0.0
        file.write_value(self.key, value._value, 0.0)


class _Hot:
    """The per-request series of one version: a counter and two histograms.

    Counted in plain Python numbers on the event loop and folded into prometheus_client's values
    (``_Value``, the worker's memory-mapped file) by one call ``FOLD_SECONDS`` after the first
    count since the last fold, and before every render of this process. Called with no running
    event loop (a script, a thread), each count is folded at once.
    """

    def __init__(self, requests: Any, latency: Any, batch: Any) -> None:
        self.lock = threading.Lock()
        self.requests = _Value(requests._value)
        self.latency_bounds, self.latency_sum, self.latency_buckets = _histogram(latency)
        self.batch_bounds, self.batch_sum, self.batch_buckets = _histogram(batch)
        self._requests = 0
        self._latency_sum = 0.0
        self._latency = [0] * len(self.latency_buckets)
        self._batch_sum = 0
        self._batch = [0] * len(self.batch_buckets)
        self._due: asyncio.TimerHandle | None = None  # the fold asked for, until it runs

    def answered(self, seconds: float) -> None:
        self._latency[bisect_left(self.latency_bounds, seconds)] += 1
        self._latency_sum += seconds
        self._requests += 1
        if self._due is None:
            self._schedule()

    def batch(self, size: int) -> None:
        self._batch[bisect_left(self.batch_bounds, size)] += 1
        self._batch_sum += size
        if self._due is None:
            self._schedule()

    def _schedule(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.fold()
            return
        self._due = loop.call_later(FOLD_SECONDS, self.fold)

    def fold(self) -> None:
        """Write the counts made since the last fold into prometheus_client's values."""
        due, self._due = self._due, None
        if due is not None:
            due.cancel()  # a no-op when it is the call running now
        with self.lock:
            if self._requests:
                self.requests.inc(self._requests)
                self.latency_sum.inc(self._latency_sum)
                _fold(self._latency, self.latency_buckets)
                self._requests, self._latency_sum = 0, 0.0
            if self._batch_sum:
                self.batch_sum.inc(self._batch_sum)
                _fold(self._batch, self.batch_buckets)
                self._batch_sum = 0


def _fold(counts: list[int], values: list[_Value]) -> None:
    for i, count in enumerate(counts):
        if count:
            values[i].inc(count)
            counts[i] = 0


def _histogram(child: Any) -> tuple[list[float], _Value, list[_Value]]:
    """A histogram child's upper bounds, sum and buckets (``observe`` puts an amount in the first
    bucket whose bound is at least the amount: ``bisect_left``; the last bound is +Inf)."""
    return list(child._upper_bounds), _Value(child._sum), [_Value(b) for b in child._buckets]


@dataclass(slots=True)
class VersionMetrics:
    """The metric children of one (deployment, version), resolved once; labels() is not free."""

    requests: Any
    latency: Any
    batch: Any
    shadow_requests: Any
    loaded: Any
    share: Any
    deployment: str
    version: str
    gateway: GatewayMetrics
    hot: _Hot = field(init=False)

    def __post_init__(self) -> None:
        # One per (deployment, version) for the process's life, however often the version is
        # loaded again: every render folds them all.
        key = (self.deployment, self.version)
        hot = self.gateway.hot.get(key)
        if hot is None:
            hot = self.gateway.hot[key] = _Hot(self.requests, self.latency, self.batch)
        self.hot = hot

    def answered(self, seconds: float) -> None:
        """One inference answered by this version in ``seconds``."""
        self.hot.answered(seconds)

    def observe_batch(self, size: int) -> None:
        """One model call on ``size`` requests."""
        self.hot.batch(size)

    def error(self, status: int) -> None:
        self.gateway.errors.labels(self.deployment, self.version, str(status)).inc()

    def shadow_error(self) -> None:
        self.gateway.shadow_errors.labels(self.deployment, self.version).inc()


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        # each version's per-request series, folded before a render
        self.hot: dict[tuple[str, str], _Hot] = {}
        labels = ("deployment", "version")
        r = self.registry
        self.requests = Counter("pave_gateway_requests", "Inference requests answered.", labels, registry=r)
        self.errors = Counter(
            "pave_gateway_errors", "Failed inference requests.", (*labels, "code"), registry=r
        )
        self.latency = Histogram(
            "pave_gateway_request_seconds", "Inference latency.", labels, buckets=LATENCY_BUCKETS, registry=r
        )
        self.batch = Histogram(
            "pave_gateway_batch_size", "Requests per model call.", labels, buckets=BATCH_BUCKETS, registry=r
        )
        self.multiprocess_dir = os.environ.get(MULTIPROC_ENV) or None
        self.share = Gauge(
            "pave_gateway_traffic_share",
            "Configured traffic share.",
            labels,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.shadow_requests = Counter(
            "pave_gateway_shadow_requests", "Shadow calls made.", labels, registry=r
        )
        self.shadow_errors = Counter("pave_gateway_shadow_errors", "Shadow calls failed.", labels, registry=r)
        self.loaded = Gauge(
            "pave_gateway_model_loaded",
            "1 while the version is loaded.",
            labels,
            registry=r,
            multiprocess_mode="livemax",
        )
        self.unrouted_errors = Counter(
            "pave_gateway_unrouted_errors",
            "Requests failed before a version was chosen.",
            ("code",),
            registry=r,
        )

    def version(self, deployment: str, version: str) -> VersionMetrics:
        key = (deployment, version)
        return VersionMetrics(
            requests=self.requests.labels(*key),
            latency=self.latency.labels(*key),
            batch=self.batch.labels(*key),
            shadow_requests=self.shadow_requests.labels(*key),
            loaded=self.loaded.labels(*key),
            share=self.share.labels(*key),
            deployment=deployment,
            version=version,
            gateway=self,
        )

    def forget(self, deployment: str, version: str) -> None:
        """Drop the gauges of a version that left the gateway (counters stay, as Prometheus expects)."""
        for gauge in (self.share, self.loaded):
            if self.multiprocess_dir:  # the worker's file keeps the last value: make it say "gone"
                gauge.labels(deployment, version).set(0)
            with contextlib.suppress(KeyError):
                gauge.remove(deployment, version)

    def fold(self) -> None:
        """Write every version's counts made since the last fold (a render does, shutdown should)."""
        for hot in self.hot.values():
            hot.fold()

    def render(self) -> bytes:
        """The text exposition: this process's registry, or the sum over the gateway's workers."""
        self.fold()
        if self.multiprocess_dir:
            forget_dead_workers(self.multiprocess_dir)
            registry = CollectorRegistry()
            MultiProcessCollector(registry, path=self.multiprocess_dir)
            return generate_latest(registry)
        return generate_latest(self.registry)


def forget_dead_workers(directory: str) -> list[int]:
    """Remove the live-gauge files of worker processes that are gone (a crashed worker that the
    server replaced): their last values would otherwise still count. Counters and histograms of
    dead workers stay, as Prometheus expects of totals. Returns the pids forgotten."""
    from prometheus_client.multiprocess import mark_process_dead

    dead = set()
    for name in os.listdir(directory):
        if not (name.startswith("gauge_live") and name.endswith(".db")):
            continue
        pid_text = name[: -len(".db")].rpartition("_")[2]
        if not pid_text.isdigit() or alive(int(pid_text)):
            continue
        dead.add(int(pid_text))
    for pid in dead:
        mark_process_dead(pid, directory)
    return sorted(dead)
