"""Notebooks on the platform: `pave notebook` starts JupyterLab signed in to it, and the starter
notebook every template ships loads the project's current data version and logs a run."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

from pave.cli.notebook import notebook_env
from pave.client import Client
from pave_testing import PaveServer, free_port, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def project(shared_server: PaveServer, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("notebooks") / "nb-demo"
    env = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    created = run_pave("new", "nb-demo", "-t", "tabular-classification", "--dir", str(folder), env=env)
    assert created.returncode == 0, created.stderr
    ran = run_pave("run", str(folder), env=env, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    return folder


def test_the_starter_notebook_loads_the_data_version_and_logs_a_run(
    shared_server: PaveServer, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Client(shared_server.url, shared_server.token) as client:
        for key, value in notebook_env(client).items():  # what `pave notebook` sets
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("PAVE_HOME", str(shared_server.home))
    path = project / "notebooks" / "explore.ipynb"
    notebook = nbformat.read(path, as_version=4)

    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()

    (result,) = [o for o in notebook.cells[1].outputs if o["output_type"] == "execute_result"]
    described = result["data"]["text/plain"]
    assert "mean_radius" in described  # the breast-cancer columns, from the stored data version
    assert "count" in described
    stdout = "".join(o["text"] for o in notebook.cells[2].outputs if o.get("name") == "stdout")
    printed = stdout.strip().splitlines()[-1]  # after MLflow's links to the run
    assert printed.startswith("logged run ")
    run_id = printed.split()[-1]
    with shared_server.client() as admin:
        run = admin.get("/mlflow/api/2.0/mlflow/runs/get", params={"run_id": run_id}).json()["run"]
        experiment = admin.get(
            "/mlflow/api/2.0/mlflow/experiments/get", params={"experiment_id": run["info"]["experiment_id"]}
        ).json()["experiment"]
    assert experiment["name"] == "nb-demo"
    assert {"key": "pave.origin", "value": "notebook"} in run["data"]["tags"]
    assert {m["key"]: m["value"] for m in run["data"]["metrics"]}["rows"] == 569


def test_pave_notebook_starts_jupyterlab_signed_in_to_the_platform(
    shared_server: PaveServer, project: Path
) -> None:
    port = free_port()
    env = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    process = subprocess.Popen(
        [sys.executable, "-m", "pave", "notebook", str(project), "--port", str(port), "--no-browser"]
        + (["--", "--allow-root"] if os.geteuid() == 0 else []),  # JupyterLab refuses root otherwise
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/api", timeout=2).status_code == 200:
                    break
            assert time.monotonic() < deadline, "JupyterLab did not answer"
            time.sleep(0.5)
        # JupyterLab took the command's place: its environment is what its kernels inherit
        environ = dict(
            item.split("=", 1)
            for item in Path(f"/proc/{process.pid}/environ").read_bytes().decode().split("\0")
            if "=" in item
        )
        assert environ["MLFLOW_TRACKING_URI"] == f"{shared_server.url}/mlflow"
        assert environ["MLFLOW_TRACKING_TOKEN"] == environ["PAVE_TOKEN"] == shared_server.token
        assert environ["PAVE_URL"] == shared_server.url
        assert "jupyter" in Path(f"/proc/{process.pid}/cmdline").read_bytes().decode()
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
