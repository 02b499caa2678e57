"""The OpenAPI document tells the truth: Pave's error shape, the statuses a route can answer, the
bearer scheme, and a response model on every route (so a new route cannot regress)."""

from __future__ import annotations

from typing import Any

import httpx
import jsonschema_rs
import pytest
from fastapi.routing import APIRoute

from pave.api.app import ROUTERS
from pave.api.openapi import declared_errors
from pave_testing import PaveServer

ERROR_REF = {"$ref": "#/components/schemas/ErrorResponse"}


@pytest.fixture(scope="module")
def document(shared_server: PaveServer) -> dict[str, Any]:
    with shared_server.client() as admin:
        response = admin.get("/api/v1/openapi.json")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_errors_are_paves_shape_never_fastapis_422(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert set(schemas["ErrorResponse"]["properties"]) == {"error"}
    assert {"code", "message", "hint", "details"} == set(schemas["ErrorBody"]["properties"])
    for method, path, operation in _operations(document):
        responses = operation["responses"]
        assert "422" not in responses, f"{method} {path}"
        assert responses["400"]["content"]["application/json"]["schema"] == ERROR_REF, f"{method} {path}"
        assert responses["413"]["content"]["application/json"]["schema"] == ERROR_REF, f"{method} {path}"


def test_statuses_follow_the_table_of_checks(document: dict[str, Any]) -> None:
    for method, path, operation in _operations(document):
        errors = {int(code) for code in operation["responses"] if int(code) >= 400}
        assert errors == set(declared_errors(method, path)), f"{method} {path}"
        assert {400, 401, 403, 413, 429} <= errors, f"{method} {path}: every API route is protected"
        assert (404 in errors) == ("{" in path), f"{method} {path}"
        assert (409 in errors) == (method in ("POST", "PUT", "DELETE")), f"{method} {path}"


def test_every_protected_operation_names_the_bearer_scheme(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearer"]
    assert scheme == {**scheme, "type": "http", "scheme": "bearer"}
    for method, path, operation in _operations(document):
        assert operation["security"] == [{"bearer": []}], f"{method} {path}"


def _error_validator(document: dict[str, Any]) -> Any:
    schema = {**document["components"]["schemas"]["ErrorResponse"], "components": document["components"]}
    return jsonschema_rs.validator_for(schema)


def test_real_error_answers_match_the_documented_schema(
    shared_server: PaveServer, document: dict[str, Any]
) -> None:
    validator = _error_validator(document)
    with shared_server.client() as admin:
        invalid = admin.post("/api/v1/projects", json={"name": "Not A Slug"})
        missing = admin.get("/api/v1/projects/no-such-project")
        too_big = admin.delete("/api/v1/tokens/99999999999999999999")
    unauthenticated = httpx.get(f"{shared_server.url}/api/v1/projects")
    for response, status in ((invalid, 400), (missing, 404), (too_big, 400), (unauthenticated, 401)):
        assert response.status_code == status, response.text
        assert (
            str(status)
            in document["paths"][_template(document, response.request.url.path)][
                response.request.method.lower()
            ]["responses"]
        )
        validator.validate(response.json())
    assert invalid.json()["error"]["details"][0]["field"] == "body.name"


def _template(document: dict[str, Any], path: str) -> str:
    """The document's path template that ``path`` is an instance of."""
    parts = path.split("/")
    for template in document["paths"]:
        pieces = template.split("/")
        if len(pieces) == len(parts) and all(
            t == p or (t.startswith("{") and t.endswith("}")) for t, p in zip(pieces, parts, strict=True)
        ):
            return template
    raise AssertionError(f"no path of the document matches {path}")


def test_every_route_declares_a_response_model() -> None:
    untyped = [
        f"{sorted(route.methods)} {route.path}"
        for router in ROUTERS
        for route in router.routes
        if isinstance(route, APIRoute)
        and route.include_in_schema
        and route.response_model is None
        and "HEAD" not in route.methods
        and route.responses.get(200, {}).get("content") is None
    ]
    assert untyped == []
