"""Any MLflow model: the seed's own script registers IrisClassifier with plain MLflow against the
platform, `pave deploy iris --model IrisClassifier/1` adopts and serves it, and the gateway answers
the model's own predictions (the model's scikit-learn 1.7 runs in its own environment)."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from pave_testing import PaveServer, old_sklearn_python, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # two model environments are built

SEED = Path(__file__).parent / "assets" / "train_model.py"  # the seed's train_model.py, verbatim
PREDICT = """
import json, sys
import mlflow.sklearn
from sklearn.datasets import load_iris
model = mlflow.sklearn.load_model("models:/IrisClassifier/1")
X = load_iris().data
print(json.dumps({"predict": model.predict(X).tolist(), "proba": model.predict_proba(X).tolist()}))
"""


def test_the_seeds_mlflow_model_is_adopted_and_served(shared_server: PaveServer, tmp_path: Path) -> None:
    admin = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    made = run_pave("token", "create", "dana", "--role", "developer", "--name", "laptop", env=admin)
    assert made.returncode == 0, made.stderr
    dana = made.stdout.strip()
    python = old_sklearn_python()  # a data scientist's laptop: scikit-learn 1.7, plain MLflow
    mlflow_env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "MLFLOW_TRACKING_URI": f"{shared_server.url}/mlflow",
        "MLFLOW_TRACKING_TOKEN": dana,
    }
    trained = subprocess.run(
        [str(python), str(SEED)], env=mlflow_env, cwd=tmp_path, capture_output=True, text=True, timeout=600
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "Model 'IrisClassifier' registered with MLflow." in trained.stdout
    own = subprocess.run(
        [str(python), "-c", PREDICT],
        env=mlflow_env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert own.returncode == 0, own.stderr[-3000:]
    expected = json.loads(own.stdout.strip().splitlines()[-1])

    # the data scientist may register models, not deploy; an ML engineer (maintainer) deploys
    as_dana = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": dana}
    assert "iris" not in run_pave("projects", env=as_dana).stdout
    refused = run_pave("deploy", "iris", "--model", "IrisClassifier/1", env=as_dana)
    assert refused.returncode == 4
    assert "needs 'deploy'" in refused.stderr
    mia = run_pave("token", "create", "mia", "--role", "maintainer", "--name", "ci", env=admin).stdout.strip()
    as_mia = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": mia}
    deployed = run_pave("deploy", "iris", "--model", "IrisClassifier/1", env=as_mia)
    assert deployed.returncode == 0, deployed.stderr
    with shared_server.client() as api:
        project = api.get("/api/v1/projects/iris").json()
        assert project["owner"] == "mia"  # created for the caller, who may create projects
        [version] = api.get("/api/v1/projects/iris/models").json()
        assert version["tags"]["pave.adopted_from"] == "IrisClassifier/1"
        audit = api.get("/api/v1/audit", params={"project": "iris"}).json()
        adoption = [e for e in audit if e["action"] == "adopt"]
        assert len(adoption) == 1
        assert adoption[0]["identity"] == "mia"
        assert "IrisClassifier version 1 as iris version" in adoption[0]["detail"]

    gateway, auth = shared_server.wait_gateway(), {"Authorization": f"Bearer {mia}"}
    X = load_iris().data
    body = {
        "inputs": [
            {"name": "input-0", "datatype": "FP64", "shape": list(X.shape), "data": X.ravel().tolist()}
        ]
    }
    deadline = time.monotonic() + 900  # the first load builds the model's environment
    while True:
        answer = httpx.post(f"{gateway}/v2/models/iris/infer", json=body, headers=auth, timeout=900)
        # 404 until the gateway reads the deployment, then 503 while it loads the model
        if answer.status_code not in (404, 503) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["predict"]["data"] == expected["predict"]
    np.testing.assert_allclose(
        np.asarray(outputs["predict_proba"]["data"]).reshape(-1, 3), expected["proba"], rtol=1e-12
    )

    # governed like any project: a viewer with no role on iris is refused
    outsider = run_pave("token", "create", "olaf", "--role", "viewer", env=admin).stdout.strip()
    refused = httpx.post(
        f"{gateway}/v2/models/iris/infer",
        json=body,
        headers={"Authorization": f"Bearer {outsider}"},
        timeout=60,
    )
    assert refused.status_code == 403
    # adopting it again gives the same project version, and no second audit record
    assert run_pave("deploy", "iris", "--model", "IrisClassifier/1", env=as_mia).returncode == 0
    with shared_server.client() as api:
        assert len(api.get("/api/v1/projects/iris/models").json()) == 1
    missing = run_pave("deploy", "iris", "--model", "IrisClassifier/9", env=as_mia)
    assert missing.returncode == 1
    assert "has no version 9" in missing.stderr
