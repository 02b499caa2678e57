"""The gateway's per-request series, written without prometheus_client's per-write lock and getpid,
expose exactly what prometheus_client's own ``inc`` and ``observe`` would (single-process and
multiprocess mode)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pave.serving.metrics import FOLD_SECONDS, GatewayMetrics

LATENCIES = (0.0001, 0.0005, 0.00051, 0.003, 0.2, 1.0, 10.0, 20.0)
BATCHES = (1, 2, 3, 64, 256, 300)

WORKER = """
import sys
from pave.serving.metrics import GatewayMetrics
metrics = GatewayMetrics()
version = metrics.version("churn", "4")
for seconds in {latencies}:
    if sys.argv[1] == "hot":
        version.answered(seconds)
    else:
        version.requests.inc()
        version.latency.observe(seconds)
for size in {batches}:
    version.observe_batch(size) if sys.argv[1] == "hot" else version.batch.observe(size)
version.error(503)
sys.stdout.write(metrics.render().decode())
"""


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if not s.name.endswith("_created")
    }


def _record(metrics: GatewayMetrics, hot: bool) -> None:
    version = metrics.version("churn", "4")
    for seconds in LATENCIES:
        if hot:
            version.answered(seconds)
        else:
            version.requests.inc()
            version.latency.observe(seconds)
    for size in BATCHES:
        if hot:
            version.observe_batch(size)
        else:
            version.batch.observe(size)


def test_the_fast_path_exposes_what_prometheus_client_would_in_one_process() -> None:
    hot, reference = GatewayMetrics(), GatewayMetrics()
    _record(hot, hot=True)
    _record(reference, hot=False)
    samples = _samples(hot.render().decode())
    assert samples == _samples(reference.render().decode())
    labels = (("deployment", "churn"), ("version", "4"))
    assert samples[("pave_gateway_requests_total", labels)] == len(LATENCIES)
    assert samples[("pave_gateway_request_seconds_count", labels)] == len(LATENCIES)
    assert samples[("pave_gateway_request_seconds_bucket", (*labels[:1], ("le", "0.0005"), labels[1]))] == 2
    assert samples[("pave_gateway_batch_size_sum", labels)] == sum(BATCHES)


def test_the_fast_path_writes_the_workers_memory_mapped_files(tmp_path: Path) -> None:
    texts = {}
    for mode in ("hot", "reference"):
        directory = tmp_path / mode
        directory.mkdir()
        env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
        code = WORKER.format(latencies=LATENCIES, batches=BATCHES)
        done = subprocess.run(
            [sys.executable, "-c", code, mode], env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr
        texts[mode] = done.stdout
    samples = _samples(texts["hot"])
    assert samples == _samples(texts["reference"])
    labels = (("deployment", "churn"), ("version", "4"))
    assert samples[("pave_gateway_requests_total", labels)] == len(LATENCIES)
    assert samples[("pave_gateway_batch_size_count", labels)] == len(BATCHES)
    assert samples[("pave_gateway_errors_total", (("code", "503"), *labels))] == 1


def test_counts_made_on_the_event_loop_are_folded_in_a_moment_and_before_every_render() -> None:
    labels = (("deployment", "churn"), ("version", "4"))
    reference = GatewayMetrics()
    _record(reference, hot=False)

    async def scenario() -> None:
        metrics = GatewayMetrics()
        version = metrics.version("churn", "4")
        _record(metrics, hot=True)
        assert version.requests._value.get() == 0  # counted in Python numbers, not folded yet
        assert _samples(metrics.render().decode()) == _samples(reference.render().decode())
        version.answered(0.001)
        await asyncio.sleep(FOLD_SECONDS * 2)  # the fold, due FOLD_SECONDS after the count, runs first
        assert version.requests._value.get() == len(LATENCIES) + 1
        version.answered(0.001)
        samples = _samples(metrics.render().decode())
        assert samples[("pave_gateway_requests_total", labels)] == len(LATENCIES) + 2

    asyncio.run(scenario())


def test_a_version_loaded_again_keeps_one_set_of_counts() -> None:
    # every rollout makes a new runtime of the version: the series folded before each render must
    # not grow with them, and both runtimes count into the same series
    metrics = GatewayMetrics()
    first, again = metrics.version("churn", "1"), metrics.version("churn", "1")
    assert first.hot is again.hot
    assert list(metrics.hot) == [("churn", "1")]
    first.answered(0.001)
    again.answered(0.002)
    rendered = metrics.render().decode()
    assert 'pave_gateway_requests_total{deployment="churn",version="1"} 2.0' in rendered
