"""A two-worker gateway answers ready only when both workers can answer, whichever one is asked.

The gateway runs as `pave serve` runs it (``python -m pave.serving --workers 2``, a deployments
file). The model deployed waits, in each worker, for the test to open that worker's gate: one
worker loads it and answers inferences while the other is still loading it. Every ready route
(REST server and model, KServe V1, gRPC server and model) must then say "not ready" even on a
connection the loaded worker answers.
"""

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time

import httpx
import mlflow
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton_grpc
from mlflow.models import infer_signature

from pave.client import Client
from pave.errors import Unavailable
from pave.processes import alive
from pave.registry.flavors import pip_requirements
from pave.serving.readiness import Workers, gateway_models, model_unready, server_unready

GATE_ENV = "PAVE_TEST_GATE"
# The model, as code (MLflow's models from code): each worker process loading it says so with a
# file named by its pid, then waits until the test creates "<pid>.open".
GATED_MODEL = f"""
import os
import time
from pathlib import Path

import mlflow


class Gated(mlflow.pyfunc.PythonModel):
    def load_context(self, context):
        gate = Path(os.environ["{GATE_ENV}"])
        (gate / f"{{os.getpid()}}.waiting").touch()
        deadline = time.monotonic() + 120
        while not (gate / f"{{os.getpid()}}.open").exists():
            assert time.monotonic() < deadline, "the test never opened the gate"
            time.sleep(0.02)

    def predict(self, context, model_input, params=None):
        return model_input.sum(axis=1)


mlflow.models.set_model(Gated())
"""
ROWS = np.array([[1.0, 2.0], [3.0, 4.0]])
BODY = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [2, 2], "data": ROWS.ravel().tolist()}]}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write(path, deployments):
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(orjson.dumps({"deployments": deployments}))
    tmp.replace(path)


def wait_for(condition, what, proc, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert proc.poll() is None, "the gateway process exited"
        assert time.monotonic() < deadline, what
        time.sleep(0.05)
    return found


def status(client, path):
    try:
        return client.get(path).status_code
    except httpx.HTTPError:
        return None


@pytest.fixture
def gated_model(tmp_path):
    code = tmp_path / "gated_model.py"
    code.write_text(textwrap.dedent(GATED_MODEL))
    path = tmp_path / "gated"
    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=str(code),
        signature=infer_signature(ROWS, ROWS.sum(axis=1)),
        pip_requirements=pip_requirements("pyfunc"),
    )
    return path


def test_ready_waits_for_every_worker_of_the_gateway(gated_model, tmp_path):
    deployments = tmp_path / "deployments.json"
    write(deployments, [])
    gate = tmp_path / "gate"
    gate.mkdir()
    port, grpc_port, home = free_port(), free_port(), tmp_path / "home"
    env = {
        **os.environ,
        "PAVE_HOME": str(home),
        "PAVE_GATEWAY_GRPC_PORT": str(grpc_port),
        GATE_ENV: str(gate),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    command = [sys.executable, "-m", "pave.serving", "--deployments", str(deployments), "--port", str(port)]
    proc = subprocess.Popen([*command, "--workers", "2"], env=env, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    connections = home / "run" / f"gateway-metrics-{port}" / "connections"
    try:
        # both workers serve (each has its connection count file) before the deploy
        wait_for(
            lambda: connections.is_dir() and len(list(connections.iterdir())) == 2,
            "a worker did not start",
            proc,
        )
        wait_for(lambda: status(httpx, f"{url}/v2/health/ready") == 200, "the gateway was not ready", proc)
        write(deployments, [{"name": "gated", "versions": [{"version": "1", "uri": str(gated_model)}]}])
        waiting = wait_for(
            lambda: len(found := sorted(gate.glob("*.waiting"))) == 2 and found, "both workers load", proc
        )
        loaded, loading = (int(path.stem) for path in waiting)
        (gate / f"{loaded}.open").touch()

        # new connections until the loaded worker answered an inference on one (the other is loading)
        answered = 0
        deadline = time.monotonic() + 120
        while answered < 2:
            assert time.monotonic() < deadline, "no connection reached the worker that loaded the model"
            with httpx.Client(base_url=url) as client:
                infer = client.post("/v2/models/gated/infer", json=BODY)
                assert infer.status_code in (200, 503), infer.text
                # a deploy in flight makes its model unready, not the gateway (see readiness.py)
                assert client.get("/v2/health/ready").status_code == 200
                for path in (
                    "/v2/models/gated/ready",
                    "/v2/models/gated/versions/1/ready",
                ):
                    refused = client.get(path)
                    assert refused.status_code == 503, (path, infer.status_code, refused.text)
                    if infer.status_code == 200:  # the loaded worker names the one still loading
                        assert f"in gateway worker {loading}" in refused.json()["error"], refused.text
                assert client.get("/v1/models/gated").status_code == 503
                answered += infer.status_code == 200
        assert infer.json()["outputs"][0]["data"] == ROWS.sum(axis=1).tolist()

        # gRPC (its own listening socket, shared by the workers): a channel the loaded worker answers
        grpc_answered = 0
        while grpc_answered < 1:
            assert time.monotonic() < deadline, "no gRPC channel reached the worker that loaded the model"
            client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            try:
                tensor = triton_grpc.InferInput("input-0", [2, 2], "FP64")
                tensor.set_data_from_numpy(ROWS)
                try:
                    client.infer("gated", [tensor])
                except triton_grpc.InferenceServerException:
                    pass  # the loading worker's 503
                else:
                    grpc_answered += 1
                assert client.is_server_ready()
                assert not client.is_model_ready("gated")
                assert not client.is_model_ready("gated", "1")
            finally:
                client.close()

        # `pave deploy --wait` polls the versioned ready route: it waits, and says for what
        client = Client(url="http://127.0.0.1:9", token="a file's gateway checks none")
        with pytest.raises(
            Unavailable, match=r"does not serve 'gated' version 1 after 0.5s: 503 model 'gated'"
        ):
            client.wait_served(url, "gated", ["1"], timeout=0.5)

        (gate / f"{loading}.open").touch()
        client.wait_served(url, "gated", ["1"], timeout=120)
        wait_for(
            lambda: status(httpx, f"{url}/v2/models/gated/ready") == 200,
            "the gateway did not get ready",
            proc,
        )
        for _ in range(6):  # whichever worker a connection lands on
            with httpx.Client(base_url=url) as client:
                assert client.get("/v2/models/gated/ready").status_code == 200
                assert client.get("/v2/health/ready").status_code == 200
                assert client.post("/v2/models/gated/infer", json=BODY).status_code == 200
            client = triton_grpc.InferenceServerClient(f"127.0.0.1:{grpc_port}")
            assert client.is_server_ready()
            assert client.is_model_ready("gated")
            client.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


def test_the_state_of_a_worker_that_died_is_ignored(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert not alive(gone.pid)
    loading = {"pid": gone.pid, "synced": True, "loading": [["m", "2"]], "models": {}}
    (tmp_path / f"{gone.pid}.json").write_bytes(orjson.dumps(loading))
    workers = Workers(tmp_path)
    assert workers.others() == []
    assert server_unready([loading]) is None  # a deploy in flight makes its model unready only
    assert server_unready([{**loading, "synced": False}]) == (
        f"gateway worker {gone.pid} has not read its deployments yet"
    )
    assert f"version 2 is loading in gateway worker {gone.pid}" in model_unready([loading], "m", None)

    live = {**loading, "pid": os.getppid()}  # a live process: the test's parent
    (tmp_path / f"{os.getppid()}.json").write_bytes(orjson.dumps(live))
    assert workers.others() == [live]
    ready = {
        "pid": 1,
        "synced": True,
        "loading": [],
        "models": {"m": {"routed": ["1"], "versions": {"1": "unloaded"}}},
    }
    assert model_unready([ready], "m", None) is None  # scaled to zero: a request loads it
    assert "version 2 is not loaded yet" in model_unready([ready], "m", "2")
    assert "not loaded in gateway worker 1" in model_unready([ready], "other", None)


def test_the_heartbeat_shows_every_worker_of_the_gateway():
    """`pave status` reads one row a gateway, which every worker writes: it holds all their states."""

    def worker(pid: int, versions: dict[str, str], loading: list[list[str]] | None = None) -> dict:
        return {
            "pid": pid,
            "synced": True,
            "loading": loading or [],
            "models": {"m": {"routed": ["1"], "versions": versions}} if versions else {},
        }

    both = [worker(1, {"1": "loaded"}), worker(2, {"1": "loaded"})]
    assert gateway_models(both) == {"m": {"1": "loaded"}}
    split = [worker(1, {"1": "loaded", "2": "loaded"}), worker(2, {"1": "loaded"}, [["m", "2"]])]
    assert gateway_models(split) == {"m": {"1": "loaded", "2": "loaded in 1 of 2 workers, loading in 1"}}
    arriving = [worker(1, {}, [["m", "1"]]), worker(2, {}), worker(3, {"1": "failed"})]
    assert gateway_models(arriving) == {"m": {"1": "failed in 1 of 3 workers, loading in 1, not loaded in 1"}}
