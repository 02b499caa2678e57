import asyncio
import pickle
import threading
import time

import httpx
import mlflow
import numpy as np
import orjson
import pytest
from mlflow.models import infer_signature
from serving_kit import columns_request, deployment, table_request

from pave.registry.flavors import pip_requirements
from pave.serving.deployments import Deployment, ModelRef
from pave.serving.inference_log import read_inference_log

INFER = "/v2/models/cancer/infer"


def outputs(response):
    return {o["name"]: o for o in response.json()["outputs"]}


def wait_for(condition, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def test_predictions_match_the_model_in_every_input_form(make_client, models):
    client, _, _ = make_client()
    X = models.X.iloc[100:140]
    expected = models.estimators["1"].predict(X).tolist()
    proba = models.estimators["1"].predict_proba(X)
    by_columns = client.post(INFER, json=columns_request(X))
    by_table = client.post(INFER, json=table_request(X))
    column_vectors = columns_request(X)
    for item in column_vectors["inputs"]:
        item["shape"] = [len(X), 1]
    by_column_vectors = client.post(INFER, json=column_vectors)
    for response in (by_columns, by_table, by_column_vectors):
        assert response.status_code == 200, response.text
        out = outputs(response)
        assert out["predict"]["data"] == expected
        assert out["predict"]["shape"] == [len(X)]
        assert out["predict_proba"]["shape"] == [len(X), 2]
        assert np.allclose(np.array(out["predict_proba"]["data"]).reshape(-1, 2), proba)


def test_every_answer_names_its_version_and_inference_id(make_client, models):
    client, _, _ = make_client()
    given = client.post(INFER, json=columns_request(models.X.head(1), id="req-7"))
    generated = client.post(INFER, json=columns_request(models.X.head(1)))
    assert given.json()["id"] == "req-7"
    assert given.headers["pave-inference-id"] == "req-7"
    assert given.json()["model_version"] == given.headers["pave-model-version"] == "1"
    assert generated.json()["id"] == generated.headers["pave-inference-id"]
    assert len(generated.json()["id"]) >= 16


def test_requested_outputs_only(make_client, models):
    client, _, _ = make_client()
    response = client.post(INFER, json=columns_request(models.X.head(2), outputs=[{"name": "predict"}]))
    assert [o["name"] for o in response.json()["outputs"]] == ["predict"]


def test_server_and_model_metadata(make_client):
    client, _, _ = make_client(deployment(versions={"1": 9, "2": 1}))
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    server = client.get("/v2").json()
    assert server["name"] == "pave"
    assert "version" in server
    assert "extensions" in server
    meta = client.get("/v2/models/cancer").json()
    assert meta["name"] == "cancer"
    assert meta["versions"] == ["1", "2"]
    assert meta["platform"] == "sklearn"
    assert len(meta["inputs"]) == 30
    assert meta["inputs"][0] == {"name": "mean radius", "datatype": "FP64", "shape": [-1]}
    assert meta["outputs"] == [
        {"name": "predict", "datatype": "INT64", "shape": [-1]},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]},
    ]
    versioned = client.get("/v2/models/cancer/versions/2")
    assert versioned.status_code == 200
    assert versioned.headers["pave-model-version"] == "2"
    assert client.get("/v2/models/cancer/ready").json() == {"name": "cancer", "ready": True}
    assert client.get("/v2/models/cancer/versions/2/ready").json() == {"name": "cancer", "ready": True}


def _pickle_payload():
    return pickle.dumps({"inputs": [{"name": "x"}]})


def _with(models, mutate):
    body = columns_request(models.X.head(2))
    mutate(body)
    return orjson.dumps(body)


BAD_REQUESTS = [
    ("malformed JSON", INFER, lambda m: b'{"inputs": [', 400, "not valid JSON"),
    ("pickle payload", INFER, lambda m: _pickle_payload(), 400, "not valid JSON"),
    (
        "wrong datatype",
        INFER,
        lambda m: _with(m, lambda b: b["inputs"][0].update(datatype="BYTES", data=["a", "b"])),
        400,
        "'mean radius' has datatype BYTES",
    ),
    (
        "narrowing datatype",
        INFER,
        lambda m: _with(m, lambda b: b["inputs"][1].update(datatype="BOOL", data=[True, False])),
        400,
        "'mean texture' has datatype BOOL",
    ),
    (
        "shape and data disagree",
        INFER,
        lambda m: _with(m, lambda b: b["inputs"][2].update(shape=[3])),
        400,
        "'mean perimeter': shape [3] needs 3 values",
    ),
    (
        "rows differ between columns",
        INFER,
        lambda m: _with(m, lambda b: b["inputs"][3].update(shape=[1], data=[1.0])),
        400,
        "'mean area' has 1 rows",
    ),
    (
        "missing column",
        INFER,
        lambda m: _with(m, lambda b: b["inputs"].pop(4)),
        400,
        "'mean smoothness' is missing",
    ),
    (
        "unknown column",
        INFER,
        lambda m: _with(m, lambda b: b["inputs"].append({**b["inputs"][0], "name": "zzz"})),
        400,
        "unknown input 'zzz'",
    ),
    (
        "table of the wrong width",
        INFER,
        lambda m: orjson.dumps(
            {"inputs": [{"name": "t", "datatype": "FP64", "shape": [1, 3], "data": [1, 2, 3]}]}
        ),
        400,
        "shape [n, 30]",
    ),
    (
        "unknown output",
        INFER,
        lambda m: _with(m, lambda b: b.update(outputs=[{"name": "nope"}])),
        400,
        "'nope'",
    ),
    ("unknown model", "/v2/models/nope/infer", lambda m: _with(m, lambda b: None), 404, "'nope'"),
    (
        "unknown version",
        "/v2/models/cancer/versions/9/infer",
        lambda m: _with(m, lambda b: None),
        404,
        "version 9",
    ),
    ("huge body", INFER, lambda m: b"[" + b"1," * 40_000 + b"1]", 413, "over the limit"),
    ("unknown route", "/v2/nothing", lambda m: b"", 404, "no route"),
]


@pytest.mark.parametrize(
    ("case", "path", "body", "status", "fragment"), BAD_REQUESTS, ids=[c[0] for c in BAD_REQUESTS]
)
def test_bad_requests_get_the_right_status_and_an_error(
    make_client, models, case, path, body, status, fragment
):
    client, _, _ = make_client(settings={"max_request_bytes": 64 * 1024})
    response = client.post(path, content=body(models), headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert set(response.json()) == {"error"}
    assert fragment in response.json()["error"]


def test_wrong_method_and_a_bad_binary_request_are_refused(make_client, models):
    client, _, _ = make_client()
    assert client.get(INFER).status_code == 405
    binary = client.post(INFER, content=b"{}", headers={"inference-header-content-length": "20"})
    assert binary.status_code == 400
    assert "Inference-Header-Content-Length is 20" in binary.json()["error"]


def test_an_infer_path_answered_before_is_answered_and_refused_as_the_first_time(make_client, models):
    client, gateway, _ = make_client(settings={"max_request_bytes": 64 * 1024})
    good = orjson.dumps(columns_request(models.X.head(2)))
    paths = (INFER, "/v2/models/cancer/versions/1/infer", "/v2/models/cancer/versions/9/infer")
    paths += ("/v2/models/nothing/infer",)
    requests = [
        ("POST", good, "application/json"),
        ("POST", b"not json", "application/json"),
        ("POST", b"\x80\x04K\x01.", "application/octet-stream"),  # a pickle: refused unread
        ("POST", b"[" + b"1," * 40_000 + b"1]", "application/json"),
        ("GET", b"", "application/json"),
        ("PUT", good, "application/json"),
    ]

    def answers():
        out = []
        for path in paths:
            for method, body, media in requests:
                response = client.request(method, path, content=body, headers={"content-type": media})
                doc = response.json()
                doc.pop("id", None)  # each answer's own inference id
                out.append((path, method, response.status_code, doc))
        return out

    first = answers()
    assert set(gateway._infer_routes) == set(paths)  # the second round takes the remembered route
    assert answers() == first
    assert [status for _, _, status, _ in first[:6]] == [200, 400, 415, 413, 405, 405]
    assert {status for path, _, status, _ in first if "nothing" in path} == {404, 400, 415, 413, 405}


def test_a_model_that_fails_to_load_answers_503(make_client, models):
    broken = Deployment("broken", (ModelRef("1", "models:/cancer/77"),))
    client, _, _ = make_client(deployment(), broken)
    response = client.post("/v2/models/broken/infer", json=columns_request(models.X.head(1)))
    assert response.status_code == 503
    assert "'broken' version 1 is not available" in response.json()["error"]
    assert client.get("/v2/models/broken/ready").status_code == 503
    assert client.post(INFER, json=columns_request(models.X.head(1))).status_code == 200


OPEN = threading.Event()  # lets SlowToLoad finish loading


class SlowToLoad(mlflow.pyfunc.PythonModel):
    """A model whose loading waits until the test opens the gate."""

    def load_context(self, context):
        assert OPEN.wait(120), "the test never let the model load"

    def predict(self, context, model_input, params=None):
        return model_input.sum(axis=1)


def test_a_deployment_still_loading_answers_503_retry_not_404(make_client, models):
    # Another worker of the same gateway may already answer it: "does not exist" would be false.
    with models.run():
        slow = mlflow.pyfunc.log_model(
            name="model",
            python_model=SlowToLoad(),
            signature=infer_signature(models.X.head(3), np.zeros(3)),
            pip_requirements=pip_requirements("pyfunc"),
        )
    client, gateway, source = make_client(deployment())
    OPEN.clear()
    source.set([deployment(), Deployment("late", (ModelRef("1", slow.model_uri),))])
    wait_for(lambda: "late" in gateway.table.arriving)
    body = columns_request(models.X.head(2))

    refused = client.post("/v2/models/late/infer", json=body)
    assert refused.status_code == 503, refused.text
    assert "'late' was just deployed and is loading on this gateway" in refused.json()["error"]
    assert "retry in a few seconds (GET /v2/models/late/ready answers 200" in refused.json()["error"]
    assert client.get("/v2/models/late/ready").status_code == 503
    assert client.post("/v2/models/never/infer", json=body).status_code == 404  # unknown: still 404
    assert client.post(INFER, json=body).status_code == 200  # the others answer meanwhile

    OPEN.set()
    wait_for(lambda: client.get("/v2/models/late/ready").status_code == 200)
    assert gateway.table.arriving == frozenset()
    answered = client.post("/v2/models/late/infer", json=body)
    assert answered.status_code == 200, answered.text
    assert outputs(answered)["predict"]["data"] == pytest.approx(models.X.head(2).sum(axis=1).tolist())


def test_tensor_model(make_client, models):
    tensor = Deployment("tensor", (ModelRef("1", models.tensor_uri),))
    client, _, _ = make_client(tensor)
    X = models.X.to_numpy(dtype=np.float32)[:20]
    body = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [20, 30], "data": X.ravel().tolist()}]}
    response = client.post("/v2/models/tensor/infer", json=body)
    assert response.status_code == 200, response.text
    assert outputs(response)["predict"]["data"] == models.tensor_estimator.predict(X).tolist()
    meta = client.get("/v2/models/tensor").json()
    assert meta["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 30]}]
    body["inputs"][0]["datatype"] = "FP64"
    refused = client.post("/v2/models/tensor/infer", json=body)
    assert refused.status_code == 400
    assert "expects FP32" in refused.json()["error"]
    body["inputs"][0]["shape"] = [10, 60]
    body["inputs"][0]["datatype"] = "FP32"
    assert "expects [-1, 30]" in client.post("/v2/models/tensor/infer", json=body).json()["error"]


def test_lightgbm_native_path(make_client, models):
    client, gateway, _ = make_client(Deployment("gbm", (ModelRef("1", models.lightgbm_uri),)))
    X = models.X.iloc[50:90]
    response = client.post("/v2/models/gbm/infer", json=columns_request(X))
    assert response.status_code == 200, response.text
    out = outputs(response)
    assert out["predict"]["data"] == models.lightgbm_estimator.predict(X).tolist()
    proba = np.array(out["predict_proba"]["data"]).reshape(-1, 2)
    assert np.allclose(proba, models.lightgbm_estimator.predict_proba(X))
    assert client.get("/v2/models/gbm").json()["platform"] == "lightgbm"
    model = gateway.table.entries["gbm"].runtimes["1"].model
    assert model.schema.kind == "matrix"
    assert "_compiled_outputs" in model.predict.__qualname__  # the booster itself, one thread


def test_pyfunc_fallback_path(make_client, models):
    client, gateway, _ = make_client(Deployment("sum", (ModelRef("1", models.pyfunc_uri),)))
    X = models.X.iloc[:7]
    response = client.post("/v2/models/sum/infer", json=table_request(X))
    assert response.status_code == 200, response.text
    assert np.allclose(outputs(response)["predict"]["data"], X.sum(axis=1))
    assert client.get("/v2/models/sum").json()["platform"] == "mlflow"
    assert gateway.table.entries["sum"].runtimes["1"].model.schema.kind == "frame"


def test_canary_gets_its_share_of_1000_requests(make_client, models):
    client, _, _ = make_client(deployment(versions={"1": 90, "2": 10}))
    body = columns_request(models.X.head(1))
    versions = [client.post(INFER, json=body).json()["model_version"] for _ in range(1000)]
    assert 70 <= versions.count("2") <= 130


def test_sticky_key_keeps_a_caller_on_one_version(make_client, models):
    client, _, _ = make_client(deployment(versions={"1": 50, "2": 50}, sticky="x-user"))
    body = columns_request(models.X.head(1))
    seen = {}
    for user in range(30):
        answers = {
            client.post(INFER, json=body, headers={"x-user": f"u{user}"}).json()["model_version"]
            for _ in range(4)
        }
        assert len(answers) == 1
        seen[user] = answers.pop()
    assert set(seen.values()) == {"1", "2"}  # both versions do get sticky callers
    by_param = {client.post(INFER, json={**body, "parameters": {"x-user": "u3"}}).json()["model_version"]}
    assert by_param == {seen[3]}


def test_a_failing_shadow_never_changes_the_answer(make_client, models):
    exploding = ModelRef("boom", models.exploding_uri)
    client, _, _ = make_client(deployment(shadow=exploding))
    plain, _, _ = make_client(deployment())
    X = models.X.iloc[:25]
    for i in range(len(X)):
        body = columns_request(X.iloc[i : i + 1], id=f"r{i}")
        with_shadow = client.post(INFER, json=body)
        assert with_shadow.status_code == 200
        assert with_shadow.json() == plain.post(INFER, json=body).json()
        assert with_shadow.json()["model_version"] == "1"
    wait_for(
        lambda: (
            b'pave_gateway_shadow_errors_total{deployment="cancer",version="boom"} 25.0'
            in client.get("/metrics").content
        )
    )


def test_a_working_shadow_is_logged_and_not_returned(make_client, models):
    client, gateway, _ = make_client(deployment(shadow=ModelRef("2", "models:/cancer/2")))
    for i in range(5):
        response = client.post(INFER, json=columns_request(models.X.iloc[i : i + 1], id=f"s{i}"))
        assert response.json()["model_version"] == "1"
    wait_for(
        lambda: (
            b'pave_gateway_shadow_requests_total{deployment="cancer",version="2"} 5.0'
            in client.get("/metrics").content
        )
    )
    gateway.inference_log.flush()
    log = read_inference_log(gateway.inference_log.directory, include_shadow=True)
    shadow = log[log["shadow"]]
    assert sorted(shadow["id"]) == [f"s{i}" for i in range(5)]
    assert set(shadow["version"]) == {"2"}


def test_inference_log_and_metrics(make_client, models):
    client, gateway, _ = make_client()
    for i in range(3):
        client.post(INFER, json=columns_request(models.X.iloc[i : i + 2], id=f"log{i}"))
    client.post(INFER, content=b"oops")
    gateway.inference_log.flush()
    log = read_inference_log(gateway.inference_log.directory, deployment="cancer")
    assert log["id"].tolist() == ["log0", "log1", "log2"]
    assert log["inputs"].iloc[0]["mean radius"] == models.X["mean radius"].iloc[:2].tolist()
    assert log["outputs"].iloc[0]["predict"] == models.estimators["1"].predict(models.X.iloc[:2]).tolist()
    metrics = client.get("/metrics").text
    assert 'pave_gateway_requests_total{deployment="cancer",version="1"} 3.0' in metrics
    assert 'pave_gateway_request_seconds_count{deployment="cancer",version="1"} 3.0' in metrics
    assert 'pave_gateway_traffic_share{deployment="cancer",version="1"} 1.0' in metrics
    assert "pave_gateway_batch_size_bucket" in metrics
    assert 'pave_gateway_unrouted_errors_total{code="400"} 1.0' in metrics


def test_a_scaled_to_zero_deployment_answers_its_next_request(make_client, models):
    client, gateway, _ = make_client(deployment(scale_to_zero_after=0.05))
    runtime = gateway.table.entries["cancer"].runtimes["1"]
    wait_for(lambda: runtime.model is None)
    assert client.get("/v2/models/cancer/ready").json()["ready"] is True
    assert client.get("/v2/models/cancer").json()["platform"] == "sklearn"  # metadata does not wake it
    assert runtime.model is None
    X = models.X.iloc[200:210]
    response = client.post(INFER, json=columns_request(X))
    assert response.status_code == 200
    assert outputs(response)["predict"]["data"] == models.estimators["1"].predict(X).tolist()
    assert runtime.loads == 2


def test_a_new_version_that_fails_to_load_leaves_the_old_one_serving(make_client, models):
    client, gateway, source = make_client()
    source.set([Deployment("cancer", (ModelRef("2", "models:/cancer/404"),))])
    wait_for(lambda: gateway.table.source_version == 2)
    assert list(gateway.table.entries["cancer"].runtimes) == ["1"]
    response = client.post(INFER, json=columns_request(models.X.head(1)))
    assert response.status_code == 200
    assert response.json()["model_version"] == "1"


def test_real_server_with_concurrent_clients(live_server, models):
    server = live_server()
    X = models.X
    expected = models.estimators["1"].predict(X).tolist()

    async def main():
        limits = httpx.Limits(max_connections=32)
        async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=120) as client:
            answers = await asyncio.gather(
                *(
                    client.post(INFER, json=columns_request(X.iloc[i : i + 1], id=str(i)))
                    for i in range(len(X))
                )
            )
            meta = await client.get("/v2/models/cancer")
        return answers, meta

    answers, meta = asyncio.run(main())
    assert meta.status_code == 200
    assert [r.json()["outputs"][0]["data"][0] for r in answers] == expected
    assert [r.json()["id"] for r in answers] == [str(i) for i in range(len(X))]
    assert b"pave_gateway_batch_size_bucket" in httpx.get(f"{server.url}/metrics").content


def test_a_swap_under_concurrent_load_loses_no_request(live_server, models):
    server = live_server(deployment(versions={"1": 1}))
    body = orjson.dumps(columns_request(models.X.head(1)))
    old = server.gateway.table.entries["cancer"].runtimes["1"]

    async def main():
        versions, failures = [], []
        stop = asyncio.Event()

        async def worker(client):
            while not stop.is_set():
                r = await client.post(INFER, content=body)
                if r.status_code != 200:
                    failures.append(r.text)
                else:
                    versions.append(r.json()["model_version"])

        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            tasks = [asyncio.create_task(worker(client)) for _ in range(8)]
            while len(versions) < 50:
                await asyncio.sleep(0.01)
            server.source.set([deployment(versions={"2": 1})])
            deadline = time.monotonic() + 60
            while versions[-1:] != ["2"] and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            count = len(versions)
            while len(versions) < count + 50:
                await asyncio.sleep(0.01)
            stop.set()
            await asyncio.gather(*tasks)
        return versions, failures

    versions, failures = asyncio.run(main())
    assert failures == []
    assert versions[0] == "1"
    assert versions[-1] == "2"
    first_new = versions.index("2")
    assert set(versions[first_new + 16 :]) == {"2"}  # after the swap only in-flight requests may say "1"
    wait_for(lambda: old.model is None)  # the old version is unloaded once drained


def test_a_serving_gateway_collects_garbage_less_often_and_gives_the_thresholds_back(make_gateway):
    import gc

    from starlette.testclient import TestClient

    from pave.serving.gateway import GC_THRESHOLDS

    saved = gc.get_threshold()
    gc.set_threshold(700, 10, 10)  # CPython's defaults (a gateway of another test may not have shut down)
    try:
        gateway, _ = make_gateway()
        with TestClient(gateway) as client:
            assert client.get("/v2/health/ready").status_code == 200
            assert gc.get_threshold() == GC_THRESHOLDS
        assert gc.get_threshold() == (700, 10, 10)
    finally:
        gc.set_threshold(*saved)
