"""Per-model environments: a model saved with scikit-learn 1.7 is served by this gateway (on 1.9)
from a worker process with its own virtualenv, never unpickled in the gateway's process."""

from __future__ import annotations

import json
import subprocess
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from pave.serving.deployments import Deployment, ModelRef
from pave.serving.environments import environment_requirements, own_environment_reason, pins
from pave_testing import OLD_SKLEARN, old_sklearn_python

# Building a model environment takes a minute or two (pip's cache); more on a busy machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

TRAIN = """
import json, sys
import mlflow, mlflow.sklearn
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
X, y = load_iris(return_X_y=True)
model = LogisticRegression(solver="liblinear", C=0.1, random_state=42).fit(X, y)  # one-vs-rest: < 1.8 only
# requirements inferred, as the seed's train_model.py has them: the same environment serves both
mlflow.sklearn.save_model(model, sys.argv[1])
print(json.dumps({"predict": model.predict(X).tolist(),
                  "proba": model.predict_proba(X).tolist()}))
"""


@pytest.fixture(scope="module")
def old_model(tmp_path_factory: pytest.TempPathFactory) -> dict:
    python = old_sklearn_python()
    root = tmp_path_factory.mktemp("old-sklearn")
    done = subprocess.run(
        [str(python), "-c", TRAIN, str(root / "model")],
        capture_output=True,
        text=True,
        cwd=root,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    return {**answer, "uri": str(root / "model"), "envs": python.parent.parent.parent}


def test_the_gateway_decides_from_the_pinned_libraries(tmp_path: Path) -> None:
    here = metadata.version("scikit-learn")
    (tmp_path / "requirements.txt").write_text(
        f"mlflow==3.17.2\nscikit-learn=={here}\nnumpy=={np.__version__}\n"
    )
    assert own_environment_reason(tmp_path) is None
    (tmp_path / "requirements.txt").write_text("scikit-learn==1.7.2  # trained elsewhere\n")
    assert own_environment_reason(tmp_path) == f"it was saved with scikit-learn 1.7.2, the gateway has {here}"
    (tmp_path / "requirements.txt").write_text("catboost==1.2\n")
    assert "catboost==1.2, which the gateway does not have" in str(own_environment_reason(tmp_path))
    (tmp_path / "requirements.txt").write_text("numpy==1.26.4\n")
    assert "numpy 1.26.4" in str(own_environment_reason(tmp_path))
    assert pins("a==1\nb>=2\n# c==3\n") == {"a": "1"}
    (tmp_path / "requirements.txt").write_text("mlflow==3.17.2\nscikit-learn==1.7.2\n")
    assert environment_requirements(tmp_path) == "mlflow-skinny==3.17.2\npandas\nscikit-learn==1.7.2\n"
    (tmp_path / "requirements.txt").write_text("-e /somewhere\n")
    with pytest.raises(Exception, match="not a package from the registry"):
        environment_requirements(tmp_path)


def test_a_model_of_scikit_learn_1_7_is_served_by_its_own_environment(make_client, old_model) -> None:
    deployment = Deployment("iris", (ModelRef("1", old_model["uri"]),))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        client, gateway, _ = make_client(deployment, envs_dir=old_model["envs"])
    # the gateway never unpickled it: sklearn warns when it loads a model of another version
    assert not [w for w in caught if "InconsistentVersionWarning" in type(w.message).__name__]
    runtime = gateway.table.entries["iris"].runtimes["1"]
    assert runtime.model is not None
    assert runtime.model.environment == (
        f"it was saved with scikit-learn {OLD_SKLEARN}, the gateway has {metadata.version('scikit-learn')}"
    )
    from sklearn.datasets import load_iris

    X = load_iris().data
    body = {
        "inputs": [
            {"name": "input-0", "datatype": "FP64", "shape": list(X.shape), "data": X.ravel().tolist()}
        ]
    }
    answer = client.post("/v2/models/iris/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    assert outputs["predict"]["data"] == old_model["predict"]
    np.testing.assert_allclose(
        np.asarray(outputs["predict_proba"]["data"]).reshape(-1, 3), old_model["proba"], rtol=1e-12
    )
    refused = client.post(
        "/v2/models/iris/infer",
        json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0]}]},
    )
    assert refused.status_code == 400  # the model's own error, from its process
    assert "features" in refused.json()["error"]
