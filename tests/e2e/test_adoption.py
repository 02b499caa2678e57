"""Adoption copies: `pave deploy P --model NAME/VERSION` copies the version's files into the
project's own artifact location, so deleting or changing the original later changes nothing that
is served; a version of another project's model is not adopted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from pave_testing import PaveServer, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

TRAIN = """
import json, sys
import mlflow, mlflow.sklearn
from sklearn.linear_model import LogisticRegression
X = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]]
y = [0, 1, 0, 1]
model = LogisticRegression().fit(X, y)
mlflow.set_experiment(sys.argv[2])
with mlflow.start_run():
    mlflow.sklearn.log_model(model, name="model", registered_model_name=sys.argv[1], input_example=X[:1])
print(json.dumps(model.predict_proba(X).tolist()))
"""
ROWS = [[0.0, 1.0], [1.0, 0.0], [0.2, 0.9], [0.9, 0.1]]


def _train(server: PaveServer, token: str, model: str, experiment: str, cwd: Path) -> list[list[float]]:
    done = subprocess.run(
        [sys.executable, "-c", TRAIN, model, experiment],
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(cwd),
            "MLFLOW_TRACKING_URI": f"{server.url}/mlflow",
            "MLFLOW_TRACKING_TOKEN": token,
        },
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer: list[list[float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def _proba(gateway: str, token: str, project: str) -> list[float]:
    flat = [x for row in ROWS for x in row]
    body = {"inputs": [{"name": "input-0", "datatype": "FP64", "shape": [4, 2], "data": flat}]}
    deadline = time.monotonic() + 120
    while True:
        answer = httpx.post(
            f"{gateway}/v2/models/{project}/infer",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        if answer.status_code not in (404, 503) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    return [round(p, 12) for p in outputs["predict_proba"]]


def test_an_adopted_version_is_served_from_the_projects_own_copy(
    shared_server: PaveServer, tmp_path: Path
) -> None:
    admin = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    expected = _train(shared_server, shared_server.token, "PlainCopied", "plain-copied", tmp_path)
    deployed = run_pave("deploy", "copied", "--model", "PlainCopied/1", env=admin)
    assert deployed.returncode == 0, deployed.stderr
    with shared_server.client() as api:
        experiment = api.get(
            "/mlflow/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "copied"}
        ).json()["experiment"]
        mine = api.get("/mlflow/api/2.0/mlflow/model-versions/get", params={"name": "copied", "version": "1"})
        original = api.get(
            "/mlflow/api/2.0/mlflow/model-versions/get-download-uri",
            params={"name": "PlainCopied", "version": "1"},
        ).json()["artifact_uri"]
    source = mine.json()["model_version"]["source"]
    # the version's source lies in the project's own experiment folder, not the original's
    assert source.startswith(f"mlflow-artifacts:/{experiment['experiment_id']}/adopted/"), source
    assert experiment["artifact_location"] == f"mlflow-artifacts:/{experiment['experiment_id']}"
    artifacts = shared_server.home / "artifacts"
    copy = artifacts / source.removeprefix("mlflow-artifacts:/")
    assert (copy / "MLmodel").is_file()
    gateway = shared_server.wait_gateway()
    proba = [p for row in expected for p in row]
    assert _proba(gateway, shared_server.token, "copied") == [round(p, 12) for p in proba]

    # the original's files are deleted: the project serves what it adopted, loaded afresh
    original_dir = artifacts / original.removeprefix("mlflow-artifacts:/")
    assert (original_dir / "MLmodel").is_file()
    shutil.rmtree(original_dir)
    assert run_pave("undeploy", "copied", env=admin).returncode == 0
    assert run_pave("deploy", "copied", "--version", "1", env=admin).returncode == 0
    assert _proba(gateway, shared_server.token, "copied") == [round(p, 12) for p in proba]


def test_another_projects_model_is_not_adopted(shared_server: PaveServer, tmp_path: Path) -> None:
    admin = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    with shared_server.client() as api:
        assert api.post("/api/v1/projects", json={"name": "owner-proj"}).status_code == 201
    # the project's own model, logged by the project's run
    _train(shared_server, shared_server.token, "owner-proj", "owner-proj", tmp_path)
    refused = run_pave("deploy", "thief", "--model", "owner-proj/1", env=admin)
    assert refused.returncode != 0
    assert "belongs to project 'owner-proj'" in refused.stderr
    # a refused adoption leaves no empty project behind, and neither does a missing version
    missing = run_pave("deploy", "ghost", "--model", "NoSuchModel/1", env=admin)
    assert missing.returncode != 0
    assert "no MLflow model is registered as 'NoSuchModel'" in missing.stderr
    with shared_server.client() as api:
        names = {p["name"] for p in api.get("/api/v1/projects").json()}
    assert not {"thief", "ghost"} & names
