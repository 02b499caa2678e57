"""Pipeline steps on a real Ray cluster, started by this module: the same results as a local run.

Every Ray test of the suite lives in this module, so that one xdist worker owns the one cluster.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pave.config import Settings
from pave.integrations.ray import RayExecutor, RayUnavailable
from pave.pipelines import execute_project
from pave.pipelines.engine import PipelineResult, run_pipeline
from pave.pipelines.errors import PipelineStepFailed
from pave.pipelines.spec import load_spec
from pave_testing import free_port, need_service

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FLAKY = """
import os


def flaky(ctx, fail_times: int) -> dict:
    counter = ctx.project_dir / "attempts.txt"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    print("attempt", n, "in", os.getpid())
    if n < fail_times:
        raise RuntimeError(f"boom {n}")
    return {"pid": os.getpid()}


def after(x: dict) -> dict:
    return {**x, "after": True}
"""


def _flaky_yaml(retries: int, fail_times: int) -> str:
    return (
        "name: flaky\n"
        "steps:\n"
        "  - {name: first, function: steps:flaky, "
        f"params: {{fail_times: {fail_times}}}, retries: {retries}}}\n"
        "  - {name: second, function: steps:after, inputs: {x: first}}\n"
    )


def _tree(roots: set[int]) -> set[int]:
    """The processes in ``roots`` and all their descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
    found = set(roots)
    while True:
        more = {pid for pid, parent in parents.items() if parent in found and pid not in found}
        if not more:
            return found
        found |= more


def _stop_cluster(temp: Path) -> None:
    """Stop the processes of this cluster only (``ray stop`` would stop every cluster on the machine)."""
    roots = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if str(temp).encode() in (entry / "cmdline").read_bytes():
                    roots.add(int(entry.name))
            except OSError:
                continue
    pids = _tree(roots)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(2)


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[str]:
    """A Ray head node (GCS, raylet, two CPUs) started with `ray start`, as a platform team would."""

    def check() -> None:
        if importlib.util.find_spec("ray") is None:
            raise ModuleNotFoundError("No module named 'ray'")

    need_service("Ray", "install the extra: pip install 'pave[ray]' (scripts/install dev does)", check)
    # Token authentication, as a cluster should run: Ray reads the mode and the token when it is
    # imported, so they are set before this process imports it (only this module uses Ray).
    assert "ray" not in sys.modules, "Ray was imported before the cluster's token could be set"
    token = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {name: os.environ.get(name) for name in token}
    os.environ.update(token)
    temp = Path(tempfile.mkdtemp(prefix="pray-", dir="/tmp"))  # Ray's socket paths must stay short
    port = free_port()
    command = [
        str(Path(sys.executable).parent / "ray"),
        "start",
        "--head",
        f"--port={port}",
        "--num-cpus=2",
        "--include-dashboard=false",
        "--disable-usage-stats",
        f"--temp-dir={temp}",
        "--node-ip-address=127.0.0.1",
    ]
    env = os.environ | {"RAY_USAGE_STATS_ENABLED": "0"}
    started = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        _stop_cluster(temp)
        shutil.rmtree(temp, ignore_errors=True)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_a_project_runs_on_the_cluster_as_it_runs_locally(
    churn_project, tracking_uri: str, tmp_path: Path, ray_cluster: str
) -> None:
    root = churn_project()
    local = execute_project(
        root,
        tracking_uri=tracking_uri,
        settings=Settings(home=tmp_path / "local", artifact_root=str(tmp_path / "artifacts")),
        progress=False,
    )
    on_ray = execute_project(
        root,
        tracking_uri=tracking_uri,
        settings=Settings(
            home=tmp_path / "ray",
            artifact_root=str(tmp_path / "artifacts"),
            executor="ray",
            executor_address=ray_cluster,
        ),
        progress=False,
    )
    assert on_ray.status == "FINISHED"
    assert on_ray.ran_steps == local.ran_steps == ["prepare", "train", "evaluate"]
    assert on_ray.metrics == local.metrics  # same code, data and seed: the same model
    assert on_ray.model_version == str(int(local.model_version or 0) + 1)
    tags = MlflowClient(tracking_uri=tracking_uri).get_run(on_ray.run_id).data.tags
    assert tags["pave.executor"] == f"ray {ray_cluster}"
    log = mlflow.artifacts.load_text(f"{on_ray.artifact_uri}/logs/train.log")
    assert "ran on Ray node" in log
    assert f"pid {os.getpid()} " not in log
    assert "training with C = 1.0" in log  # the step's own output came back


def _run(root: Path, executor: RayExecutor, logs: Path) -> PipelineResult:
    spec = load_spec(root)
    return run_pipeline(
        spec, root, sources={}, source_hashes={}, cache_dir=None, log_dir=logs, executor=executor
    )


def test_retries_failures_and_logs_on_the_cluster(make_project, tmp_path: Path, ray_cluster: str) -> None:
    root = make_project({"pave.yaml": _flaky_yaml(retries=2, fail_times=2), "steps.py": FLAKY})
    with RayExecutor(root, ray_cluster) as executor:
        result = _run(root, executor, tmp_path / "logs")
        assert result.record("first").attempts == 3
        assert result.output("second")["after"] is True
        assert result.output("first")["pid"] != os.getpid()
        log = (tmp_path / "logs" / "first.log").read_text()
        assert "boom 1" in log
        assert "ran on Ray node" in log

    # an executor ships one project to the cluster: another project gets its own
    failing = make_project({"pave.yaml": _flaky_yaml(retries=1, fail_times=5), "steps.py": FLAKY}, "failing")
    with RayExecutor(failing, ray_cluster) as executor, pytest.raises(PipelineStepFailed) as info:
        _run(failing, executor, tmp_path / "failing-logs")
    assert info.value.step == "first"
    assert "RuntimeError: boom 1" in info.value.message
    assert not (root / "attempts.txt").exists(), "the steps ran on the cluster's copy of the project"


def test_a_cluster_nobody_runs_is_refused_before_ray_waits_for_it(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    with pytest.raises(RayUnavailable) as info, RayExecutor(tmp_path, f"127.0.0.1:{free_port()}"):
        pass
    assert "no Ray cluster answers" in info.value.message
    assert "ray start --head" in (info.value.hint or "")
    with pytest.raises(RayUnavailable, match="not a Ray cluster address"), RayExecutor(tmp_path, "nowhere"):
        pass
