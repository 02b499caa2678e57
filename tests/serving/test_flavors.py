"""More flavours through the gateway: XGBoost and ONNX (onnxruntime) models answer their own predictions."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
from serving_kit import columns_request, table_request

from pave.serving.deployments import Deployment, ModelRef

xgboost = pytest.importorskip("xgboost", reason="pip install 'pave[flavors]'")
onnxruntime = pytest.importorskip("onnxruntime", reason="pip install 'pave[flavors]'")


def _log(models, log):
    with models.run():
        return log().model_uri


def test_an_xgboost_model_is_served_and_explained_exactly(make_client, models):
    booster = xgboost.XGBClassifier(n_estimators=20, max_depth=3).fit(models.X, models.y)
    uri = _log(
        models, lambda: mlflow.xgboost.log_model(booster, name="model", input_example=models.X.head(3))
    )
    client, _, _ = make_client(Deployment("xgb", (ModelRef("1", uri),)))
    X = models.X.iloc[10:50]
    answer = client.post("/v2/models/xgb/infer", json=columns_request(X))
    assert answer.status_code == 200, answer.text
    predicted = np.asarray(answer.json()["outputs"][0]["data"])
    np.testing.assert_array_equal(predicted, booster.predict(X))
    meta = client.get("/v2/models/xgb").json()
    assert meta["platform"] == "mlflow"


def test_an_onnx_model_is_served_by_onnxruntime(make_client, models):
    from skl2onnx import to_onnx

    estimator = models.tensor_estimator  # a LogisticRegression on a float32 matrix
    Xt = models.X.to_numpy(dtype=np.float32)
    proto = to_onnx(estimator, Xt[:1], options={id(estimator): {"zipmap": False}})
    uri = _log(models, lambda: mlflow.onnx.log_model(proto, name="model", input_example=Xt[:3]))
    client, _, _ = make_client(Deployment("onnx", (ModelRef("1", uri),)))
    assert client.get("/v2/models/onnx").json()["platform"] == "mlflow"
    body = table_request(models.X.iloc[:25])
    body["inputs"][0] |= {"name": "X", "datatype": "FP32"}  # skl2onnx names the input X
    answer = client.post("/v2/models/onnx/infer", json=body)
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o for o in answer.json()["outputs"]}
    np.testing.assert_array_equal(outputs["label"]["data"], estimator.predict(Xt[:25]))
    proba = np.asarray(outputs["probabilities"]["data"]).reshape(25, 2)
    np.testing.assert_allclose(proba, estimator.predict_proba(Xt[:25]), atol=1e-5)
