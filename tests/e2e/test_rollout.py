"""Progressive rollout under load: a crashing candidate is rolled back, a good one is promoted,
and no client request fails in either case."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import httpx
import pandas as pd
import pytest

from pave_testing import PaveServer, mlflow_globals, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

EXPLODING = """
import mlflow


class Exploding(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        raise RuntimeError("the candidate exploded")


mlflow.models.set_model(Exploding())
"""


class Load:
    """Clients sending predictions the whole time; every status is kept."""

    def __init__(self, gateway: str, rows: pd.DataFrame, headers: dict[str, str]) -> None:
        self.url = f"{gateway}/v2/models/roll/infer"
        self.headers = headers
        self.body = {
            "inputs": [
                {"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].astype(float).tolist()}
                for c in rows.columns
            ]
        }
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30, headers=self.headers) as client:
            while not self._stop.is_set():
                response = client.post(self.url, json=self.body)
                self.statuses.append(response.status_code)
                self.versions.append(response.headers.get("pave-model-version", ""))
                time.sleep(0.01)

    def __enter__(self) -> Load:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _wait_rollout(env: dict[str, str], state: str, timeout: float = 240) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    rollout: dict[str, object] = {}
    while time.monotonic() < deadline:
        result = run_pave("rollout", "status", "roll", "--json", env=env)
        rollout = json.loads(result.stdout)
        if rollout["state"] == state:
            return rollout
        if rollout["state"] != "running":
            break
        time.sleep(1)
    raise AssertionError(f"rollout is not {state}: {json.dumps(rollout, indent=1)[-3000:]}")


@pytest.fixture
def deployed(shared_server: PaveServer, tmp_path: Path) -> tuple[dict[str, str], Path]:
    env = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    project = tmp_path / "roll"
    assert (
        run_pave("new", "roll", "-t", "tabular-classification", "--dir", str(project), env=env).returncode
        == 0
    )
    first = run_pave("run", str(project), "--json", env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert run_pave("deploy", "roll", "--version", "1", env=env).returncode == 0
    return env, project


def _register_exploding(server: PaveServer, project: Path, tmp_path: Path) -> str:
    import mlflow
    from mlflow.models import infer_signature

    code = tmp_path / "exploding.py"
    code.write_text(EXPLODING)
    frame = pd.read_csv(project / "data" / "train.csv")
    x = frame.drop(columns=["target"]).head(5)
    with mlflow_globals(f"{server.url}/mlflow"), pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
        mlflow.set_experiment("roll")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(
                name="model",
                python_model=str(code),
                registered_model_name="roll",
                signature=infer_signature(x, frame["target"].head(5)),
                pip_requirements=["mlflow"],
            )
    return str(info.registered_model_version)


def test_crashing_candidate_is_rolled_back_and_a_good_one_promoted(
    deployed: tuple[dict[str, str], Path], shared_server: PaveServer, tmp_path: Path
) -> None:
    env, project = deployed
    gateway = shared_server.wait_gateway()
    rows = pd.read_csv(project / "data" / "train.csv").drop(columns=["target"]).head(3)
    bad = _register_exploding(shared_server, project, tmp_path)
    fast = ["--steps", "50,100", "--interval", "2", "--min-requests", "10", "--max-p99-ms", "5000"]
    deadline = time.monotonic() + 120  # `pave deploy` returned; the gateway picks it up shortly after
    auth = shared_server.gateway_headers
    while httpx.get(f"{gateway}/v2/models/roll/versions/1/ready", headers=auth, timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the deployment never became ready on the gateway"
        time.sleep(0.2)

    with Load(gateway, rows, auth) as load:
        while len(load.statuses) < 20:
            time.sleep(0.1)
        started = run_pave("rollout", "start", "roll", "--version", bad, *fast, env=env)
        assert started.returncode == 0, started.stderr
        rolled_back = _wait_rollout(env, "rolled_back")
        time.sleep(2)
    assert set(load.statuses) == {200}, f"a client saw {set(load.statuses) - {200}}"
    last = rolled_back["history"][-1]  # type: ignore[index]
    assert "binomial" in last["test"]
    assert last["candidate"]["errors"] >= 1
    # the platform is shared by the tests of this worker: other deployments may be listed
    listed = json.loads(run_pave("deployments", "--json", env=env).stdout)
    [spec] = [d["spec"] for d in listed if d["name"] == "roll"]
    assert [v["version"] for v in spec["versions"]] == ["1"]

    good = run_pave("run", str(project), "--set", "train.C=0.5", "--json", env=env, timeout=600)
    assert good.returncode == 0, good.stderr[-2000:]
    candidate = json.loads(good.stdout)["model_version"]
    with Load(gateway, rows, auth) as load:
        started = run_pave("rollout", "start", "roll", "--version", candidate, *fast, env=env)
        assert started.returncode == 0, started.stderr
        assert "waiting: the 50% step waits for" in started.stdout, "a new step says what it waits for"
        promoted = _wait_rollout(env, "promoted")
        time.sleep(2)
    assert set(load.statuses) == {200}, f"a client saw {set(load.statuses) - {200}}"
    assert candidate in load.versions, "the candidate answered during the rollout"
    assert [e["event"] for e in promoted["history"]] == ["started", "advanced", "promoted"]  # type: ignore[index]
    with shared_server.client() as client:
        alias = client.get(
            "/mlflow/api/2.0/mlflow/registered-models/alias", params={"name": "roll", "alias": "champion"}
        ).json()
    assert alias["model_version"]["version"] == candidate
