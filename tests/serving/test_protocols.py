"""Standard clients nobody here wrote: tritonclient (HTTP with its binary defaults, and gRPC), KServe V1,
gzip bodies; each refused input in the protocol's own error shape."""

from __future__ import annotations

import gzip
import struct

import httpx
import numpy as np
import orjson
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from serving_kit import columns_request, deployment
from tritonclient.utils import InferenceServerException

from pave.errors import InvalidInput
from pave.serving import binary
from pave_testing import free_port


@pytest.fixture
def server(live_server):
    return live_server(deployment(), grpc_port=free_port())


def _http_client(server):
    return triton_http.InferenceServerClient(server.url.removeprefix("http://"))


def _grpc_client(server):
    return triton_grpc.InferenceServerClient(f"127.0.0.1:{server.gateway.options.grpc_port}")


def test_tritonclient_http_with_its_defaults(server, models):
    client = _http_client(server)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("cancer")
    assert "binary_tensor_data" in client.get_server_metadata()["extensions"]
    meta = client.get_model_metadata("cancer")
    assert [i["name"] for i in meta["inputs"]] == list(models.X.columns)
    X = models.X.iloc[:25]
    table = triton_http.InferInput("input-0", list(X.shape), "FP64")
    table.set_data_from_numpy(X.to_numpy())  # binary by default
    result = client.infer("cancer", [table])  # no outputs named: every output comes back binary
    estimator = models.estimators["1"]
    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(X))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), estimator.predict_proba(X), rtol=1e-12)
    # one input per column, outputs asked for by name (binary by default), both bodies compressed
    columns = []
    for name in X.columns:
        column = triton_http.InferInput(name, [len(X)], "FP64")
        column.set_data_from_numpy(X[name].to_numpy())
        columns.append(column)
    proba = client.infer(
        "cancer",
        columns,
        outputs=[triton_http.InferRequestedOutput("predict_proba")],
        request_compression_algorithm="gzip",
        response_compression_algorithm="gzip",
    )
    np.testing.assert_allclose(proba.as_numpy("predict_proba"), estimator.predict_proba(X), rtol=1e-12)
    assert proba.as_numpy("predict") is None


def test_tritonclient_http_errors_are_the_protocol_s(server, models):
    client = _http_client(server)
    table = triton_http.InferInput("input-0", [2, 3], "FP64")
    table.set_data_from_numpy(np.zeros((2, 3)))
    with pytest.raises(InferenceServerException, match=r"must have shape \[n, 30\]"):
        client.infer("cancer", [table])
    with pytest.raises(InferenceServerException, match="not deployed"):
        client.get_model_metadata("nothing")
    assert not client.is_model_ready("nothing")


def test_binary_requests_that_do_not_add_up_are_refused_by_name(server):
    url = f"{server.url}/v2/models/cancer/infer"
    head = orjson.dumps(
        {
            "inputs": [
                {"name": "x", "datatype": "FP64", "shape": [1, 30], "parameters": {"binary_data_size": 240}}
            ]
        }
    )
    for tail, expected in (
        (b"\0" * 16, "announces 240 bytes of binary data, only 16 follow"),
        (b"\0" * 248, "8 bytes of binary data that no input announces"),
    ):
        answer = httpx.post(
            url,
            content=head + tail,
            headers={
                "inference-header-content-length": str(len(head)),
                "content-type": "application/octet-stream",
            },
        )
        assert answer.status_code == 400
        assert expected in answer.json()["error"]
    bad_size = orjson.loads(head)
    bad_size["inputs"][0]["parameters"]["binary_data_size"] = 16
    body = orjson.dumps(bad_size)
    answer = httpx.post(
        url, content=body + b"\0" * 16, headers={"inference-header-content-length": str(len(body))}
    )
    assert answer.status_code == 400
    assert "needs 240 bytes" in answer.json()["error"]


def test_raw_tensor_bytes_round_trip_every_datatype():
    for datatype, array in (
        ("BOOL", np.array([[True, False], [False, True]])),
        ("INT8", np.array([-3, 4], dtype=np.int8)),
        ("UINT16", np.array([7, 65535], dtype=np.uint16)),
        ("INT64", np.arange(6, dtype=np.int64).reshape(2, 3)),
        ("FP16", np.array([0.5, -2.0], dtype=np.float16)),
        ("FP32", np.array([1.5, np.inf], dtype=np.float32)),
        ("BYTES", np.array(["a", "ünï", ""], dtype=object)),
    ):
        raw = binary.to_raw(array, datatype)
        back = binary.from_raw("x", datatype, list(array.shape), raw)
        np.testing.assert_array_equal(back, array)
    # a BYTES element is a 4-byte little-endian length, then the bytes
    assert binary.to_raw(np.array(["hi"], dtype=object), "BYTES") == struct.pack("<I", 2) + b"hi"
    with pytest.raises(InvalidInput, match="neither 0 nor 1"):
        binary.from_raw("x", "BOOL", [1], b"\x02")
    with pytest.raises(InvalidInput, match="longer than the data left"):
        binary.from_raw("x", "BYTES", [1], struct.pack("<I", 9) + b"abc")


def test_gzip_bodies_both_ways(server, models):
    url = f"{server.url}/v2/models/cancer/infer"
    body = orjson.dumps(columns_request(models.X.iloc[:40]))
    answer = httpx.post(
        url,
        content=gzip.compress(body),
        headers={"content-encoding": "gzip", "content-type": "application/json"},
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-encoding"] == "gzip"  # httpx asks for it and inflates it
    assert answer.json()["outputs"][0]["data"] == models.estimators["1"].predict(models.X.iloc[:40]).tolist()
    small = httpx.post(url, json=columns_request(models.X.iloc[:1]))
    assert "content-encoding" not in small.headers  # too small to be worth compressing
    refused = httpx.post(url, content=b"not gzip", headers={"content-encoding": "gzip"})
    assert refused.status_code == 400
    assert "not valid gzip data" in refused.json()["error"]
    bomb = gzip.compress(b" " * (server.gateway.max_body + 10))
    assert httpx.post(url, content=bomb, headers={"content-encoding": "gzip"}).status_code == 413
    unknown = httpx.post(url, content=body, headers={"content-encoding": "br"})
    assert unknown.status_code == 415


def test_tritonclient_grpc(server, models):
    client = _grpc_client(server)
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready("cancer")
    assert "binary_tensor_data" in client.get_server_metadata(as_json=True)["extensions"]
    meta = client.get_model_metadata("cancer", as_json=True)
    assert meta["inputs"][0] == {"name": "mean radius", "datatype": "FP64", "shape": ["-1"]}
    X = models.X.iloc[50:80]
    table = triton_grpc.InferInput("input-0", list(X.shape), "FP64")
    table.set_data_from_numpy(X.to_numpy())
    result = client.infer("cancer", [table], request_id="grpc-1")
    estimator = models.estimators["1"]
    np.testing.assert_array_equal(result.as_numpy("predict"), estimator.predict(X))
    np.testing.assert_allclose(result.as_numpy("predict_proba"), estimator.predict_proba(X), rtol=1e-12)
    assert result.get_response().id == "grpc-1"
    # counted and logged like any inference
    server.gateway.inference_log.flush()
    assert server.gateway.metrics.render().count(b'pave_gateway_requests_total{deployment="cancer"') == 1
    with pytest.raises(InferenceServerException, match="not deployed") as missing:
        client.infer("nothing", [table])
    assert missing.value.status() == "StatusCode.NOT_FOUND"
    small = triton_grpc.InferInput("input-0", [1, 2], "FP64")
    small.set_data_from_numpy(np.zeros((1, 2)))
    with pytest.raises(InferenceServerException, match="must have shape") as bad:
        client.infer("cancer", [small])
    assert bad.value.status() == "StatusCode.INVALID_ARGUMENT"


def test_kserve_v1(server, models):
    X = models.X.iloc[:10]
    estimator = models.estimators["1"]
    rows = httpx.post(f"{server.url}/v1/models/cancer:predict", json={"instances": X.to_numpy().tolist()})
    assert rows.status_code == 200, rows.text
    assert rows.json() == {"predictions": estimator.predict(X).tolist()}
    assert rows.headers["pave-model-version"] == "1"
    named = httpx.post(f"{server.url}/v1/models/cancer:predict", json={"instances": X.to_dict("records")})
    assert named.json() == {"predictions": estimator.predict(X).tolist()}
    assert httpx.get(f"{server.url}/v1/models/cancer").json() == {"name": "cancer", "ready": True}
    assert httpx.get(f"{server.url}/v1/models").json() == {"models": ["cancer"]}
    for body, status, expected in (
        ({"instances": [[1.0, 2.0]]}, 400, "each instance needs 30 values"),
        ({"rows": []}, 400, '"instances" list'),
        ({"instances": [{"nope": 1}]}, 400, "unknown column 'nope'"),
    ):
        answer = httpx.post(f"{server.url}/v1/models/cancer:predict", json=body)
        assert answer.status_code == status
        assert expected in answer.json()["error"]
    assert httpx.post(f"{server.url}/v1/models/nothing:predict", json={"instances": [[1]]}).status_code == 404
    assert httpx.post(f"{server.url}/v1/models/cancer:train", json={}).status_code == 404
