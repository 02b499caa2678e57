"""Explaining a whole table with Kernel SHAP by mistake: refused at once, naming the limit, instead
of holding a gateway thread for hours; the model still explains a few rows after it."""

from __future__ import annotations

from serving_kit import columns_request

from pave.serving.deployments import Deployment, ModelRef
from pave.serving.explain import KERNEL_MAX_ROWS


def test_kernel_explanations_of_too_many_rows_are_refused_naming_the_limit(make_client, models):
    client, _, _ = make_client(Deployment("rowsum", (ModelRef("1", models.pyfunc_uri),)))
    many = models.X.iloc[: KERNEL_MAX_ROWS + 1]
    refused = client.post("/v2/models/rowsum/explain", json=columns_request(many))
    assert refused.status_code == 400, refused.text
    assert f"at most {KERNEL_MAX_ROWS} rows a request" in refused.json()["error"]
    assert f"this request has {KERNEL_MAX_ROWS + 1}" in refused.json()["error"]
    v1 = client.post("/v1/models/rowsum:explain", json={"instances": many.to_dict(orient="records")})
    assert v1.status_code == 400, v1.text
    few = client.post("/v2/models/rowsum/explain", json=columns_request(models.X.iloc[:2]))
    assert few.status_code == 200, few.text
