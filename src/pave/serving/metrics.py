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
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = CONTENT_TYPE_LATEST
# Read by prometheus_client when it is imported: set it before a worker process starts.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


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

    def error(self, status: int) -> None:
        self.gateway.errors.labels(self.deployment, self.version, str(status)).inc()

    def shadow_error(self) -> None:
        self.gateway.shadow_errors.labels(self.deployment, self.version).inc()


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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

    def render(self) -> bytes:
        """The text exposition: this process's registry, or the sum over the gateway's workers."""
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
        if not pid_text.isdigit() or _alive(int(pid_text)):
            continue
        dead.add(int(pid_text))
    for pid in dead:
        mark_process_dead(pid, directory)
    return sorted(dead)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True
