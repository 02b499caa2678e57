"""pave batch and pave costs against a real `pave up`: the job's recorded CPU-seconds against what
the kernel counted for its processes, the cost routes refusing a caller without a role."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from pave.client import Client
from pave_testing import PaveServer, register_sklearn, run_pave

pytestmark = pytest.mark.slow

PROJECT = "batch-cpu"


def _children_cpu_seconds() -> float:
    """CPU time /proc reports for this process's reaped children (utime + stime of the children)."""
    fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def registered(shared_server: PaveServer, tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """A project with a registered sklearn model, logged through the platform with MLflow's client."""
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(rng.normal(size=(2000, 12)), columns=[f"f{i}" for i in range(12)])
    target = (frame["f0"] + frame["f1"] > 0).astype(int)
    with Client(url=shared_server.url, token=shared_server.token) as client:
        client.create_project(PROJECT, owner="admin", description="batch scoring")
    os.environ["MLFLOW_TRACKING_TOKEN"] = shared_server.token
    register_sklearn(shared_server.url, PROJECT, LogisticRegression(max_iter=500).fit(frame, target), frame)
    return frame


def test_a_batch_job_records_the_cpu_seconds_the_kernel_counted(
    registered: pd.DataFrame, shared_server: PaveServer, tmp_path: Path
) -> None:
    big = pd.concat([registered] * 300, ignore_index=True)  # 600,000 rows
    source = tmp_path / "in.parquet"
    big.to_parquet(source, row_group_size=50_000)
    env = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    before = _children_cpu_seconds()
    done = run_pave(
        "batch", PROJECT, "--input", str(source), "--output", str(tmp_path / "out.parquet"),
        "--version", "1", "--workers", "2", "--json", env=env, timeout=600,
    )  # fmt: skip
    counted = _children_cpu_seconds() - before
    assert done.returncode == 0, done.stderr[-3000:]
    job = json.loads(done.stdout)
    assert job["rows"] == len(big)
    assert len(pd.read_parquet(tmp_path / "out.parquet")) == len(big)
    with Client(url=shared_server.url, token=shared_server.token) as client:
        costs = client.costs(PROJECT)
    recorded = costs.projects[PROJECT].kinds["batch"]["cpu_seconds"]
    assert counted > 1.0
    print(f"recorded {recorded:.2f} CPU-seconds, /proc counted {counted:.2f}")
    assert recorded == pytest.approx(counted, rel=0.25), (recorded, counted)
    shown = run_pave("costs", PROJECT, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "batch" in shown.stdout


def test_cost_routes_refuse_a_caller_without_a_role_on_the_project(
    registered: pd.DataFrame, shared_server: PaveServer
) -> None:
    with Client(url=shared_server.url, token=shared_server.token) as admin:
        secret = admin.create_token("stranger", "costs", role="developer").secret
    with shared_server.client(secret) as stranger:
        assert stranger.get(f"/api/v1/projects/{PROJECT}/costs").status_code == 403
        assert stranger.get(f"/api/v1/projects/{PROJECT}/costs/admit").status_code == 403
        usage = {"items": [{"kind": "batch", "cpu_seconds": 1}]}
        assert stranger.post(f"/api/v1/projects/{PROJECT}/usage", json=usage).status_code == 403
        assert stranger.get("/api/v1/costs").status_code == 403
        assert stranger.get(f"/api/v1/projects/{PROJECT}/batch").status_code == 403
        assert stranger.get(f"/projects/{PROJECT}/costs").status_code in (303, 403)


def test_the_sdk_scores_a_table_and_the_api_lists_the_jobs(
    registered: pd.DataFrame, shared_server: PaveServer, tmp_path: Path
) -> None:
    source = tmp_path / "small.parquet"
    registered.head(500).to_parquet(source)
    with Client(url=shared_server.url, token=shared_server.token) as client:
        job = client.batch(PROJECT, str(source), str(tmp_path / "scored.csv"), version="1", workers=1)
        jobs = client.list_batch_jobs(PROJECT)
    assert job.rows == 500
    assert len(pd.read_csv(tmp_path / "scored.csv")) == 500
    assert jobs[0].run_id == job.run_id
    assert jobs[0].rows == 500
    assert jobs[0].input_sha256 == job.input_sha256
