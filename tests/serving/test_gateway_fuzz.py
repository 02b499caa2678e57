"""The gateway under generated and hostile requests.

- Schemathesis generates requests from the gateway's own OpenAPI document (``/v2/openapi.json``)
  for every operation: none may answer 5xx, every answer must match its declared schema.
- Pickles (protocols 0 to 5), sent as the body with pickle-ish content types and inside JSON, to
  every route: each is refused with a 4xx in the protocol's error shape, nothing is unpickled
  (the pickle's payload would create a file) and nothing reaches the inference log.
"""

from __future__ import annotations

import base64
import copy
import pickle
from pathlib import Path
from typing import Any

import orjson
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from serving_kit import deployment

INFER_ROUTES = ("/v2/models/cancer/infer", "/v2/models/cancer/versions/1/infer")
READ_ROUTES = (
    "/v2",
    "/v2/health/live",
    "/v2/health/ready",
    "/v2/openapi.json",
    "/v2/models/cancer",
    "/v2/models/cancer/ready",
    "/v2/models/cancer/versions/1",
    "/v2/models/cancer/versions/1/ready",
    "/metrics",
)


EXPLAIN_ROUTES = ("/v2/models/cancer/explain", "/v2/models/cancer/versions/1/explain")
V1_ROUTES = ("/v1/models", "/v1/models/cancer", "/v1/models/cancer:predict", "/v1/models/cancer:explain")


def test_openapi_document_lists_every_route(make_client):
    client, _, _ = make_client()
    doc = client.get("/v2/openapi.json")
    assert doc.status_code == 200
    paths = doc.json()["paths"]
    routes = {p.replace("{model_name}", "cancer").replace("{model_version}", "1") for p in paths}
    assert routes == {*INFER_ROUTES, *READ_ROUTES, *EXPLAIN_ROUTES, *V1_ROUTES}
    posts = {*INFER_ROUTES, *EXPLAIN_ROUTES, *V1_ROUTES[2:]}
    for route in routes:  # every documented route exists, with the method documented
        method = "post" if route in posts else "get"
        assert set(paths[_template(route)]) == {method}, route
        assert client.request(method, route, json={}).status_code != 404, route
    # the binary tensor data extension is documented where it is accepted
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert "application/octet-stream" in infer["requestBody"]["content"]
    assert "application/octet-stream" in infer["responses"]["200"]["content"]
    assert "Inference-Header-Content-Length" in {p["name"] for p in infer["parameters"]}


def _template(route: str) -> str:
    return route.replace("/versions/1", "/versions/{model_version}").replace("cancer", "{model_name}")


def _fuzz(schema: Any, max_examples: int) -> dict[str, str]:
    """Run every operation of ``schema``; the failures by operation."""
    failures: dict[str, str] = {}
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(
            max_examples=max_examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except Exception as exc:  # collect them all, then report
            failures[operation.label] = f"{exc.__class__.__name__}: {str(exc)[:800]}"
    return failures


def _pinned(doc: dict[str, Any], columns: list[str]) -> dict[str, Any]:
    """The document with the deployed model's name, versions and input names as the only choices,
    so that generated requests get past routing to the decoding, binding and model code."""
    pinned = copy.deepcopy(doc)
    for path in pinned["paths"].values():
        for operation in path.values():
            for parameter in operation.get("parameters", []):
                choices = ["cancer"] if parameter["name"] == "model_name" else ["1", "2"]
                parameter["schema"] = {"type": "string", "enum": choices}
    pinned["components"]["schemas"]["RequestInput"]["properties"]["name"] = {
        "type": "string",
        "enum": columns,
    }
    return pinned


def test_generated_requests_get_no_5xx_and_schema_conforming_answers(make_gateway, models):
    gateway, _ = make_gateway(deployment(versions={"1": 90, "2": 10}))
    schema = schemathesis.openapi.from_asgi("/v2/openapi.json", gateway)
    # every route but /v2/openapi.json itself, which schemathesis leaves out
    labels = [result.ok().label for result in schema.get_all_operations()]
    assert len(labels) == 16, labels
    assert _fuzz(schema, max_examples=15) == {}

    pinned = schemathesis.openapi.from_dict(_pinned(orjson.loads(gateway._openapi), list(models.X.columns)))
    pinned.app = gateway
    assert _fuzz(pinned, max_examples=30) == {}


class _Trap:
    """Unpickling this creates a file: the proof that something was unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def _pickles(marker: Path) -> list[bytes]:
    payload = {
        "inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        "trap": _Trap(marker),
    }
    return [pickle.dumps(payload, protocol=p) for p in range(0, pickle.HIGHEST_PROTOCOL + 1)]


def _in_json(blob: bytes) -> bytes:
    """A well-formed OIP request carrying the pickle: as BYTES data, base64, and in parameters."""
    text = blob.decode("latin-1")
    encoded = base64.b64encode(blob).decode()
    return orjson.dumps(
        {
            "parameters": {"content_type": "pickle", "payload": encoded},
            "inputs": [
                {"name": "mean radius", "datatype": "BYTES", "shape": [2], "data": [text, encoded]},
            ],
        }
    )


def test_pickled_payloads_are_refused_on_every_route_and_never_unpickled(make_client, tmp_path):
    marker = tmp_path / "unpickled"
    client, gateway, _ = make_client()
    requests: list[tuple[str, str, bytes, dict[str, str]]] = []
    for blob in _pickles(marker):
        for route in (*INFER_ROUTES, *READ_ROUTES):
            for content_type in ("application/octet-stream", "application/python-pickle"):
                requests.append(("POST", route, blob, {"content-type": content_type}))
            requests.append(("POST", route, blob, {"content-type": "application/json"}))
            requests.append(("POST", route, _in_json(blob), {"content-type": "application/json"}))
            requests.append(("PUT", route, blob, {"content-type": "application/python-pickle"}))
    for method, route, body, headers in requests:
        response = client.request(method, route, content=body, headers=headers)
        assert 400 <= response.status_code < 500, (method, route, headers, response.status_code)
        assert set(response.json()) == {"error"}, response.text
        if route in INFER_ROUTES and method == "POST" and headers["content-type"] != "application/json":
            assert response.status_code == 415
            assert "application/json" in response.json()["error"]
    assert not marker.exists(), "a pickle was unpickled"
    gateway.inference_log.close()
    logged = [p for p in gateway.inference_log.directory.glob("*") if p.stat().st_size]
    assert logged == [], "a refused request reached the inference log"
    # the gateway still answers after all that
    assert client.get("/v2/health/ready").status_code == 200


def test_trap_would_be_caught(tmp_path):
    """The trap works: unpickling it does create the file (else the test above could not fail)."""
    marker = tmp_path / "unpickled"
    pickle.loads(_pickles(marker)[0])  # noqa: S301 - our own pickle, to prove the trap fires
    assert marker.exists()
