"""A gateway worker that died leaves no gauge behind in the multiprocess metrics."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from pave.serving.metrics import forget_dead_workers

WORKER = """
import sys, time
from prometheus_client import Counter, Gauge
Gauge("loaded", "", ["version"], multiprocess_mode="livemax").labels("1").set(1)
Counter("requests", "", ["version"]).labels("1").inc(5)
print("ready", flush=True)
if sys.argv[1] == "stay":
    time.sleep(120)
"""


def _worker(directory: Path, mode: str) -> subprocess.Popen[str]:
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    proc = subprocess.Popen([sys.executable, "-c", WORKER, mode], env=env, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_the_gauges_of_dead_workers_are_forgotten_and_their_counters_kept(tmp_path: Path) -> None:
    gone = _worker(tmp_path, "exit")
    gone.wait(timeout=60)
    alive = _worker(tmp_path, "stay")
    try:
        assert forget_dead_workers(str(tmp_path)) == [gone.pid]
        names = {p.name for p in tmp_path.iterdir()}
        assert f"gauge_livemax_{gone.pid}.db" not in names
        assert f"gauge_livemax_{alive.pid}.db" in names  # a live worker keeps its gauge
        assert f"counter_{gone.pid}.db" in names  # totals of the dead worker still count
        assert forget_dead_workers(str(tmp_path)) == []
    finally:
        alive.kill()
        alive.wait(timeout=30)
