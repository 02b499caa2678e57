"""Golden-path model -> `pave deploy` -> Open Inference Protocol predictions on the gateway."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import mlflow
import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest

from pave.config import load_settings
from pave.serving.store import artifact_location
from pave_testing import PaveServer, run_pave

pytestmark = pytest.mark.slow


def _infer(gateway: str, model: str, frame: pd.DataFrame, headers: dict[str, str]) -> httpx.Response:
    body = {
        "id": "req-1",
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(frame)], "data": frame[c].astype(float).tolist()}
            for c in frame.columns
        ],
    }
    return httpx.post(f"{gateway}/v2/models/{model}/infer", json=body, headers=headers, timeout=60)


def test_deploy_serves_the_models_own_predictions(shared_server: PaveServer, tmp_path: Path) -> None:
    env = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    project = tmp_path / "served"
    assert (
        run_pave("new", "served", "-t", "tabular-classification", "--dir", str(project), env=env).returncode
        == 0
    )
    ran = run_pave("run", str(project), "--json", env=env, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    version = json.loads(ran.stdout)["model_version"]

    refused = run_pave("deploy", "served", env=env)  # no champion yet
    assert refused.returncode == 1
    assert "champion" in refused.stderr
    deployed = run_pave("deploy", "served", "--version", version, "--wait", env=env)
    assert deployed.returncode == 0, deployed.stderr
    # the URL printed is the one the gateway registered, where it really answers
    assert f"infer: POST {shared_server.gateway_url}/v2/models/served/infer" in deployed.stdout
    # --wait returns once every worker of that gateway serves the version
    assert f"served by {shared_server.gateway_url}: v{version} (every worker ready)" in deployed.stdout
    listed = json.loads(run_pave("deployments", "--json", env=env).stdout)
    # the platform is shared by the tests of this worker: other deployments may be listed
    [served] = [d for d in listed if d["name"] == "served"]
    assert [v["version"] for v in served["spec"]["versions"]] == [version]

    gateway, auth = shared_server.wait_gateway(), shared_server.gateway_headers
    ready = httpx.get(f"{gateway}/v2/models/served/versions/{version}/ready", headers=auth, timeout=5)
    assert ready.status_code == 200, ready.text
    rows = pd.read_csv(project / "data" / "train.csv").drop(columns=["target"]).head(25)

    # the gateway needs a token that may read the project, like the control plane
    assert _infer(gateway, "served", rows, {}).status_code == 401
    assert _infer(gateway, "served", rows, {"Authorization": "Bearer not-a-token"}).status_code == 401
    outsider = run_pave("token", "create", "outsider", "--role", "viewer", env=env)  # no role on served
    assert outsider.returncode == 0, outsider.stderr
    refused = _infer(gateway, "served", rows, {"Authorization": f"Bearer {outsider.stdout.strip()}"})
    assert refused.status_code == 403, refused.text
    assert "error" in refused.json()
    assert httpx.get(f"{gateway}/metrics", timeout=10).status_code == 401
    assert httpx.get(f"{gateway}/v2/health/ready", timeout=10).status_code == 200  # probes need none

    response = _infer(gateway, "served", rows, auth)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["model_version"] == version
    assert answer["id"] == "req-1"

    # the same version loaded in-process, through the registry, as a user would
    store = f"sqlite:///{shared_server.home / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=store, registry_uri=store)
    uri = client.get_model_version_download_uri("served", version)
    local = mlflow.sklearn.load_model(artifact_location(load_settings(home=shared_server.home), uri))
    expected = local.predict(rows)
    predicted = next(
        o for o in answer["outputs"] if o["name"] in ("predict", "prediction", "predictions", "label")
    )
    assert np.array_equal(np.asarray(predicted["data"]), expected)

    bad = httpx.post(f"{gateway}/v2/models/served/infer", content=b"{not json", headers=auth, timeout=30)
    assert bad.status_code == 400
    assert "error" in bad.json()
    assert _infer(gateway, "nope", rows, auth).status_code == 404

    assert run_pave("undeploy", "served", env=env).returncode == 0
    deadline = time.monotonic() + 60
    while (
        time.monotonic() < deadline
        and httpx.get(f"{gateway}/v2/models/served", headers=auth, timeout=5).status_code != 404
    ):
        time.sleep(0.2)
    assert httpx.get(f"{gateway}/v2/models/served", headers=auth, timeout=5).status_code == 404
