"""The one gate every request passes: Host allow-list, body limit, Origin check, token, permission.

It wraps the whole control plane, so the embedded MLflow routes are covered exactly like Pave's
own: a route no rule covers is denied, a request without a valid token is refused before any
handler runs, and every refusal answers ``{"error": {"code", "message", "hint"}}``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio
import orjson
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pave.errors import (
    Forbidden,
    InvalidInput,
    PaveError,
    PayloadTooLarge,
    Unauthenticated,
)
from pave.governance.permissions import PUBLIC, authorize, required_action
from pave.governance.tokens import Principal, authenticate

PRINCIPAL_KEY = "pave.principal"
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def send_error(send: Send, error: PaveError, headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = orjson.dumps(error.to_dict())
    await send(
        {
            "type": "http.response.start",
            "status": error.status_code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _host_allowed(host: str, allowed: list[str]) -> bool:
    if "*" in allowed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in allowed or host in allowed


class SecurityMiddleware:
    """Authenticate and authorise every HTTP request before it reaches any application."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: sessionmaker[Session],
        allowed_hosts: list[str],
        max_body: int,
        on_request: Callable[[str, str, int, float], None] | None = None,
    ) -> None:
        self.app = app
        self.sessions = sessions
        self.allowed_hosts = allowed_hosts
        self.max_body = max_body
        self.on_request = on_request

    def _authenticate(self, secret: str | None) -> Principal:
        with self.sessions() as session:
            return authenticate(session, secret)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_holder = {"status": 500}

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
            await send(message)

        try:
            await self._handle(scope, receive, send_tracking)
        finally:
            if self.on_request is not None:
                self.on_request(
                    scope["method"], scope["path"], status_holder["status"], time.perf_counter() - started
                )

    async def _handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        method: str = scope["method"]
        path: str = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}

        if not _host_allowed(headers.get("host", ""), self.allowed_hosts):
            await send_error(
                send,
                InvalidInput(
                    f"Host header {headers.get('host', '')!r} is not allowed",
                    hint="add it to PAVE_ALLOWED_HOSTS",
                ),
            )
            return

        length = headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await send_error(
                send,
                PayloadTooLarge(
                    f"request body of {length} bytes is over the limit of {self.max_body}",
                    hint="send less per request, or raise PAVE_MAX_REQUEST_BYTES",
                ),
            )
            return

        action = required_action(method, path)
        if action is None:
            await send_error(
                send,
                Forbidden(
                    f"no permission rule covers {method} {path}; denied",
                    hint="this route is not part of Pave's API (see /api/v1/openapi.json)",
                ),
            )
            return
        if action == PUBLIC:
            await self.app(scope, receive, send)
            return

        origin = headers.get("origin")
        if (
            method in _STATE_CHANGING
            and origin
            and not _host_allowed(origin.split("://", 1)[-1], self.allowed_hosts)
        ):
            await send_error(
                send,
                Forbidden(
                    f"cross-origin {method} from {origin} refused",
                    hint="call the API from the portal or a client, not from another site",
                ),
            )
            return

        auth = headers.get("authorization", "")
        scheme, _, secret = auth.partition(" ")
        token = secret.strip() if scheme.lower() == "bearer" else None
        try:
            principal = await anyio.to_thread.run_sync(self._authenticate, token)
            authorize(principal, action, method, path)
        except PaveError as error:
            extra = (
                [(b"www-authenticate", b'Bearer realm="pave"')] if isinstance(error, Unauthenticated) else []
            )
            await send_error(send, error, extra)
            return

        scope.setdefault("state", {})
        scope["state"]["principal"] = principal
        scope[PRINCIPAL_KEY] = principal
        await self.app(scope, _limited(receive, self.max_body), send)


def _limited(receive: Receive, limit: int) -> Receive:
    """Count streamed body bytes too: a chunked upload cannot sneak past the limit."""
    seen = 0

    async def wrapped() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        return message

    return wrapped


def principal_of(scope_or_request: Any) -> Principal:
    scope = getattr(scope_or_request, "scope", scope_or_request)
    principal: Principal | None = scope.get(PRINCIPAL_KEY)
    if principal is None:  # pragma: no cover - the middleware always sets it on protected routes
        raise Unauthenticated("no principal on this request")
    return principal
