"""The control plane's OpenAPI document (``GET /api/v1/openapi.json``), true to what the server sends.

FastAPI writes the routes, their parameters and response models; this module replaces what it
would otherwise promise wrongly and adds what it cannot know:

- errors: every error answer is :class:`pave.schemas.ErrorResponse` (a bad request is a 400 with
  the fields in ``details``, never FastAPI's 422 ``HTTPValidationError``);
- which error statuses an operation can answer, from :data:`ANSWERS`: a table keyed by the check
  of the request gate (:data:`pave.api.checks.CHECKS`) or the handler that sends them, each with
  the kind of route it applies to;
- the ``bearer`` security scheme, on every operation the permission table
  (:mod:`pave.governance.permissions`) does not make public.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from pave.api.checks import STATE_CHANGING
from pave.governance.permissions import PUBLIC, rule_for
from pave.schemas import ErrorResponse

SECURITY_SCHEME = "bearer"
_PARAM = re.compile(r"\{[^}]+\}")


@dataclass(frozen=True)
class Operation:
    """What the table needs to know of one operation."""

    method: str
    path: str

    @property
    def public(self) -> bool:
        rule = rule_for(self.method, _PARAM.sub("1", self.path))
        return rule is not None and rule.action == PUBLIC

    @property
    def protected(self) -> bool:
        return not self.public

    @property
    def changes_state(self) -> bool:
        return self.method in STATE_CHANGING

    @property
    def names_an_object(self) -> bool:
        return _PARAM.search(self.path) is not None


@dataclass(frozen=True)
class Answer:
    """An error status, who sends it, and to which operations it applies."""

    status: int
    sent_by: str
    description: str
    applies: Callable[[Operation], bool]


def _always(_: Operation) -> bool:
    return True


ANSWERS: tuple[Answer, ...] = (
    Answer(
        400,
        "gate: host, path, body; the route's parameters",
        "Bad request: a Host, path, JSON body or parameter that is not allowed; `details` lists "
        "the fields and their problems",
        _always,
    ),
    Answer(
        401,
        "gate: authentication",
        "No token, or a wrong, revoked or expired one (send `Authorization: Bearer TOKEN`)",
        lambda op: op.protected,
    ),
    Answer(
        403,
        "gate: route, authorisation",
        "The token's role may not take this action on the project (or a project policy refuses it)",
        lambda op: op.protected,
    ),
    Answer(
        404,
        "handler",
        "The named project, version or object does not exist",
        lambda op: op.names_an_object,
    ),
    Answer(
        409,
        "handler",
        "It exists already, or its state does not allow the change",
        lambda op: op.changes_state,
    ),
    Answer(413, "gate: size", "The request body is over the platform's limit", _always),
    Answer(
        415,
        "gate: media type",
        "A state-changing request whose body is not `application/json`",
        lambda op: op.changes_state,
    ),
    Answer(
        429,
        "gate: rate limit; policy (quotas)",
        "Too many requests from the token (`Retry-After` says when to retry), or a project quota is used up",
        lambda op: op.protected,
    ),
    Answer(503, "handler", "A dependency (the database, a model) is down or not ready yet", _always),
)

_FASTAPI_VALIDATION = ("HTTPValidationError", "ValidationError")


def install(api: FastAPI) -> None:
    """Make ``api.openapi()`` (and so ``/api/v1/openapi.json``) answer :func:`document`."""

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            api.openapi_schema = document(api)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]


def document(api: FastAPI) -> dict[str, Any]:
    """The OpenAPI document of ``api``: FastAPI's, with Pave's errors and security."""
    spec = get_openapi(
        title=api.title,
        version=api.version,
        description=api.description,
        routes=api.routes,
        tags=api.openapi_tags,
    )
    components = spec.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:
        schemas.pop(name, None)
    error = ErrorResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error.pop("$defs", {}))
    schemas["ErrorResponse"] = error
    components["securitySchemes"] = {
        SECURITY_SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "description": "A Pave API token (`pave tokens create`, or the one `pave up` writes).",
        }
    }
    for path, methods in spec.get("paths", {}).items():
        for method, operation in methods.items():
            _complete(Operation(method.upper(), path), operation)
    return spec


def _complete(op: Operation, operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    responses.pop("422", None)
    for answer in ANSWERS:
        if answer.applies(op):
            responses[str(answer.status)] = {
                "description": answer.description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
            }
    operation["security"] = [{SECURITY_SCHEME: []}] if op.protected else []


def declared_errors(method: str, path: str) -> list[int]:
    """The error statuses the document lists for an operation (what :data:`ANSWERS` gives it)."""
    op = Operation(method.upper(), path)
    return [answer.status for answer in ANSWERS if answer.applies(op)]
