"""The closed loop end to end on a started platform, under load, with labels arriving later.

1. A deployed model meets drifted traffic (one feature shifted) and labels that show its decay;
   the team's current data reached the platform with its latest ``pave run`` (recorded for
   retraining); the drift alert makes Pave retrain from that run as an isolated job, gate it,
   canary it under the model-metric guard and promote it, and no client request fails on the way.
2. A retrain whose model is worse (``retrain.set`` makes it degenerate, yet it passes the gates)
   is started by hand with ``pave retrain``; the labels show it, and the guard rolls it back.

Retrains run from the recorded run's code snapshot and data versions in a fresh job folder: the
project's own folder is deleted before they start, and nothing needs it.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml

from pave_testing import PaveServer, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SHIFTED = "mean_radius"
ROWS_PER_REQUEST = 5
FAST_ROLLOUT = {
    "steps": [50, 100],
    "interval_seconds": 2,
    "min_requests": 10,
    "max_p99_ms": 5000,
    "min_labels": 40,
    "require_labels": True,
}


class LabelledLoad:
    """Clients predicting the whole time; the true labels of every answer are posted soon after."""

    def __init__(self, server: PaveServer, gateway: str, name: str, frame: pd.DataFrame) -> None:
        self.url = f"{gateway}/v2/models/{name}/infer"
        self.server = server
        self.frame = frame
        self.statuses: list[int] = []
        self.versions: list[str] = []
        self.feedback: list[int] = []
        self._pending: list[dict[str, Any]] = []
        self._retries = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._random = np.random.default_rng(7)

    def _body(self, rows: pd.DataFrame) -> dict[str, Any]:
        features = rows.drop(columns=["target"])
        return {
            "inputs": [
                {
                    "name": c,
                    "datatype": "FP64",
                    "shape": [len(rows)],
                    "data": features[c].astype(float).tolist(),
                }
                for c in features.columns
            ]
        }

    def _run(self) -> None:
        with (
            httpx.Client(timeout=30, headers=self.server.gateway_headers) as gateway,
            self.server.client() as api,
        ):
            while not self._stop.is_set():
                rows = self.frame.iloc[self._random.choice(len(self.frame), ROWS_PER_REQUEST, replace=False)]
                response = gateway.post(self.url, json=self._body(rows))
                self.statuses.append(response.status_code)
                self.versions.append(response.headers.get("pave-model-version", ""))
                if response.status_code == 200:
                    self._pending.append(
                        {"inference_id": response.json()["id"], "label": rows["target"].astype(int).tolist()}
                    )
                if len(self._pending) >= 10:
                    self._post_labels(api)
                time.sleep(0.02)

    def _post_labels(self, api: httpx.Client) -> None:
        # The route waits up to 2 s for ids the gateway has answered but not logged yet; on a machine
        # so loaded that even that is not enough (404), the batch is posted again with the next one.
        status = api.post("/api/v1/feedback", json={"items": self._pending}).status_code
        self._retries = self._retries + 1 if status == 404 else 0
        if status != 404 or self._retries > 20:
            self.feedback.append(status)
            self._pending = []

    def __enter__(self) -> LabelledLoad:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def _env(server: PaveServer) -> dict[str, str]:
    return server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}


def _deployed(server: PaveServer, tmp_path: Path, name: str, **spec: Any) -> tuple[Path, pd.DataFrame]:
    """A golden-path project with ``spec`` merged into its pave.yaml, run once and deployed."""
    env = _env(server)
    project = tmp_path / name
    created = run_pave("new", name, "-t", "tabular-classification", "--dir", str(project), env=env)
    assert created.returncode == 0, created.stderr
    doc = yaml.safe_load((project / "pave.yaml").read_text())
    doc["gates"] = [{"metric": "roc_auc", "min": 0.9}]
    doc.update(spec)
    (project / "pave.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    first = run_pave("run", str(project), "--json", env=env, timeout=600)
    assert first.returncode == 0, first.stderr[-2000:]
    assert run_pave("deploy", name, "--version", "1", env=env).returncode == 0
    gateway = server.wait_gateway()
    deadline = time.monotonic() + 120
    ready = f"{gateway}/v2/models/{name}/versions/1/ready"
    while httpx.get(ready, headers=server.gateway_headers, timeout=5).status_code != 200:
        assert time.monotonic() < deadline, "the deployment never became ready on the gateway"
        time.sleep(0.2)
    return project, pd.read_csv(project / "data" / "train.csv")


def _finished_turn(env: dict[str, str], name: str, timeout: float = 420) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        result = run_pave("loop", name, "--json", env=env)
        assert result.returncode == 0, result.stderr
        doc = json.loads(result.stdout)
        first = doc["runs"][-1] if doc["runs"] else None  # newest first: the last is the first turn
        if first is not None and first["state"] not in ("queued", "starting", "training", "rolling_out"):
            return dict(first)
        time.sleep(1)
    raise AssertionError(f"the loop did not finish: {json.dumps(doc, indent=1)[-4000:]}")


def _rollout(env: dict[str, str], name: str) -> dict[str, Any]:
    result = run_pave("rollout", "status", name, "--json", env=env)
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def _champion(server: PaveServer, name: str) -> str | None:
    with server.client() as client:
        found = client.get(
            "/mlflow/api/2.0/mlflow/registered-models/alias", params={"name": name, "alias": "champion"}
        ).json()
    version = found.get("model_version", {}).get("version")
    return str(version) if version else None


def test_drift_and_decay_retrain_gate_canary_and_promote_without_a_failed_request(
    shared_server: PaveServer, tmp_path: Path
) -> None:
    name = "loop-drift"
    monitor = {
        "schedule": "1s",
        "on_alert": "retrain",
        "monitors": [
            {"name": "inputs", "type": "drift", "method": "psi", "features": [SHIFTED], "window": "10m"}
        ],
    }
    project, frame = _deployed(
        shared_server, tmp_path, name, monitor=monitor, retrain={"rollout": FAST_ROLLOUT}
    )
    env = _env(shared_server)
    # The world moved: the feature is far off what v1 learnt; the team's current data has it too,
    # and reaches the platform with the team's next run (v2, recorded for retraining, not deployed).
    drifted = frame.assign(**{SHIFTED: frame[SHIFTED] + 10 * frame[SHIFTED].std()})
    drifted.to_csv(project / "data" / "train.csv", index=False)
    current = run_pave("run", str(project), "--json", env=env, timeout=600)
    assert current.returncode == 0, current.stderr[-2000:]
    recorded = json.loads(current.stdout)
    assert recorded["model_version"] == "2"
    shown = json.loads(run_pave("loop", name, "--json", env=env).stdout)
    assert shown["source"]["run_id"] == recorded["run_id"]
    shutil.rmtree(project)  # the platform never reads the team's folder

    with LabelledLoad(shared_server, shared_server.gateway_url, name, drifted) as load:
        turn = _finished_turn(env, name)
        time.sleep(1)
    assert set(load.statuses) == {200}, f"a client saw {set(load.statuses) - {200}}"
    assert set(load.feedback) == {200}, f"posting labels failed: {set(load.feedback)}"

    assert turn["trigger"] == "alert", turn
    assert f"drift on {SHIFTED}" in turn["triggered_by"]
    assert turn["state"] == "promoted", turn
    assert turn["model_version"] == "3"
    assert turn["history"][1]["run"] == recorded["run_id"]
    assert turn["history"][1]["job"]["executor"] == "local"
    assert [e["event"] for e in turn["history"]] == [
        "triggered",
        "training",
        "trained",
        "rolling_out",
        "promoted",
    ]
    assert all(g["passed"] for g in turn["gates"])
    rollout = _rollout(env, name)
    assert rollout["state"] == "promoted"
    assert rollout["created_by"] == "pave-automation"
    checks = [e["labels"] for e in rollout["history"] if e["event"] in ("advanced", "promoted")]
    assert checks, rollout["history"]
    for check in checks:  # the metric test ran at every step, on enough labels, and held
        assert check["test"] == "one-sided two-proportion z-test on correctness (pooled)"
        assert check["candidate"]["n"] >= FAST_ROLLOUT["min_labels"]
        assert check["baseline"]["n"] >= FAST_ROLLOUT["min_labels"]
        assert check["candidate"]["accuracy"] > check["baseline"]["accuracy"]
        assert check["worse"] is False
    assert "3" in load.versions
    assert _champion(shared_server, name) == "3"


def test_a_worse_retrained_model_is_rolled_back_by_the_label_guard(
    shared_server: PaveServer, tmp_path: Path
) -> None:
    name = "loop-worse"
    # Strong regularisation: the ranking survives (roc_auc passes the gate), the decisions do not.
    retrain = {"rollout": FAST_ROLLOUT, "set": {"train.C": 1e-6}}
    project, frame = _deployed(shared_server, tmp_path, name, retrain=retrain)
    env = _env(shared_server)
    shutil.rmtree(project)

    with LabelledLoad(shared_server, shared_server.gateway_url, name, frame) as load:
        started = run_pave("retrain", name, env=env)
        assert started.returncode == 0, started.stderr
        again = run_pave("retrain", name, env=env)
        assert again.returncode == 1
        assert "already retraining" in again.stderr
        turn = _finished_turn(env, name)
        time.sleep(1)
    assert set(load.statuses) == {200}, f"a client saw {set(load.statuses) - {200}}"
    assert set(load.feedback) == {200}

    assert turn["trigger"] == "manual"
    assert turn["state"] == "rolled_back", turn
    assert "two-proportion z-test" in turn["outcome"]
    rollout = _rollout(env, name)
    last = rollout["history"][-1]
    assert last["event"] == "rolled_back"
    assert last["labels"]["worse"] is True
    assert last["labels"]["p_value"] < last["labels"]["alpha"]
    assert last["labels"]["candidate"]["accuracy"] < last["labels"]["baseline"]["accuracy"]
    deployment = json.loads(run_pave("deployments", "--json", env=env).stdout)
    [spec] = [d["spec"] for d in deployment if d["name"] == name]
    assert [v["version"] for v in spec["versions"]] == ["1"]
    assert _champion(shared_server, name) != "2"

    shown = run_pave("loop", name, env=env | {"COLUMNS": "300"})
    assert shown.returncode == 0
    assert "rolled_back" in shown.stdout
    unknown = run_pave("loop", "no-such-project", env=env)
    assert unknown.returncode == 1
    assert "there is no project 'no-such-project'" in unknown.stderr
