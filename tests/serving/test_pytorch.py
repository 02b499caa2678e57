"""PyTorch on CPU as a served flavour: a module logged with mlflow.pytorch answers its own outputs
through the gateway (in the gateway's process: the gateway has the same torch), and is explained
(Kernel SHAP) with additivity. torch is the `pytorch` extra (in dev); deselect with -m 'not pytorch'."""

from __future__ import annotations

import mlflow
import numpy as np
import pytest
import torch
from serving_kit import table_request

from pave.serving.deployments import Deployment, ModelRef

pytestmark = pytest.mark.pytorch


def test_a_pytorch_module_is_served_on_cpu_with_its_own_outputs(make_client, models):
    torch.manual_seed(0)
    X = models.X.to_numpy(dtype=np.float32)
    module = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    module.eval()
    with models.run():
        uri = mlflow.pytorch.log_model(module, name="model", input_example=X[:3]).model_uri
    client, gateway, _ = make_client(Deployment("torchy", (ModelRef("1", uri),)))
    runtime = gateway.table.entries["torchy"].runtimes["1"]
    assert runtime.model is not None
    assert runtime.model.environment is None  # the gateway's own torch: no environment of its own
    assert client.get("/v2/models/torchy").json()["platform"] == "mlflow"
    body = table_request(models.X.iloc[:25])
    body["inputs"][0]["datatype"] = "FP32"
    answer = client.post("/v2/models/torchy/infer", json=body)
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    with torch.no_grad():
        expected = module(torch.from_numpy(X[:25])).numpy()
    # float32 arithmetic: torch's kernels may sum in another order for another batch shape
    np.testing.assert_allclose(
        np.asarray(output["data"]).reshape(expected.shape), expected, rtol=1e-5, atol=1e-5
    )

    explained = client.post("/v2/models/torchy/explain", json=body)
    assert explained.status_code == 200, explained.text
    doc = explained.json()
    assert (doc["method"], doc["output_space"]) == ("kernel", "raw")
    attributions = np.asarray(doc["attributions"])
    total = np.asarray(doc["base_values"])[None, :] + attributions.sum(axis=2)
    # float32 model: its outputs near zero carry the absolute error of float32 sums (one in 25 rows
    # once missed a relative 1e-5 by 1.5e-6 absolute), as the predict check above allows
    np.testing.assert_allclose(total, np.asarray(doc["model_output"]), rtol=1e-5, atol=1e-5)
