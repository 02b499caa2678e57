"""Explanations: SHAP attributions plus the base value give the model's own output in the stated space
(to 1e-6 for linear and tree models, computed here from the estimators, not from the answer)."""

from __future__ import annotations

import mlflow
import numpy as np
from serving_kit import columns_request, deployment, table_request
from sklearn.ensemble import RandomForestClassifier

from pave.registry.flavors import pip_requirements
from pave.serving.deployments import Deployment, ModelRef


def _explain(client, name, body):
    answer = client.post(f"/v2/models/{name}/explain", json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _additive(doc) -> np.ndarray:
    attributions = np.asarray(doc["attributions"])  # [rows, outputs, features]
    return np.asarray(doc["base_values"])[None, :] + attributions.sum(axis=2)


def test_linear_pipeline_is_exact_in_log_odds(make_client, models):
    client, _, _ = make_client()
    X = models.X.iloc[100:140]
    doc = _explain(client, "cancer", columns_request(X))
    assert doc["method"] == "linear"
    assert doc["output_space"] == "log_odds"
    assert doc["outputs"] == ["1"]
    assert doc["features"] == list(models.X.columns)
    estimator = models.estimators["1"]
    margin = estimator.decision_function(X)[:, None]
    np.testing.assert_allclose(_additive(doc), margin, atol=1e-6, rtol=0)
    np.testing.assert_allclose(doc["model_output"], margin, atol=1e-9, rtol=0)
    # log-odds of the probability the model itself gives
    proba = estimator.predict_proba(X)[:, 1:]
    np.testing.assert_allclose(_additive(doc), np.log(proba / (1 - proba)), atol=1e-6, rtol=0)
    # the same from one [n, 30] tensor, and on KServe V1's :explain
    assert np.allclose(_explain(client, "cancer", table_request(X))["attributions"], doc["attributions"])
    v1 = client.post("/v1/models/cancer:explain", json={"instances": X.to_numpy().tolist()})
    assert v1.status_code == 200, v1.text
    rows = v1.json()["explanations"]
    assert len(rows) == len(X)
    np.testing.assert_allclose(rows[3]["attributions"], doc["attributions"][3])


def test_trees_are_exact_in_their_own_space(make_client, models):
    forest = RandomForestClassifier(n_estimators=15, max_depth=5, random_state=0).fit(models.X, models.y)
    with models.run():
        info = mlflow.sklearn.log_model(
            forest,
            name="model",
            input_example=models.X.head(3),
            skops_trusted_types=["sklearn.tree._tree.Tree"],
            pip_requirements=pip_requirements("sklearn"),  # as `pave run` logs (no slow inference)
        )
    client, _, _ = make_client(
        Deployment("lightgbm", (ModelRef("1", models.lightgbm_uri),)),
        Deployment("forest", (ModelRef("1", info.model_uri),)),
    )
    X = models.X.iloc[200:260]
    boosted = _explain(client, "lightgbm", columns_request(X))
    assert (boosted["method"], boosted["output_space"]) == ("tree", "log_odds")
    raw = models.lightgbm_estimator.predict(X, raw_score=True)[:, None]
    np.testing.assert_allclose(_additive(boosted), raw, atol=1e-6, rtol=0)
    trees = _explain(client, "forest", columns_request(X))
    assert (trees["method"], trees["output_space"]) == ("tree", "probability")
    assert trees["outputs"] == ["0", "1"]
    np.testing.assert_allclose(_additive(trees), forest.predict_proba(X), atol=1e-6, rtol=0)


def test_other_models_get_kernel_shap_against_their_example(make_client, models):
    client, _, _ = make_client(Deployment("rowsum", (ModelRef("1", models.pyfunc_uri),)))
    X = models.X.iloc[:3]
    doc = _explain(client, "rowsum", columns_request(X))
    assert (doc["method"], doc["output_space"]) == ("kernel", "raw")
    np.testing.assert_allclose(_additive(doc), X.sum(axis=1).to_numpy()[:, None], rtol=1e-6)


def test_explanations_refuse_what_they_cannot_explain(make_client, models):
    client, _, _ = make_client(deployment())
    bad = client.post(
        "/v2/models/cancer/explain",
        json={"inputs": [{"name": "x", "datatype": "FP64", "shape": [1, 2], "data": [1, 2]}]},
    )
    assert bad.status_code == 400
    assert "shape [n, 30]" in bad.json()["error"]
    assert client.get("/v2/models/cancer/explain").status_code == 405
    assert (
        client.post("/v2/models/nothing/explain", json=columns_request(models.X.head(1))).status_code == 404
    )
