"""The one gate every request passes: an ASGI adapter around the table of checks, and the audit record.

The checks themselves are :data:`pave.api.checks.CHECKS`, run in order (host, size, path, route,
origin, authentication, media type, body, scope, authorisation, content, policy); the first that
answers an error refuses the request. This module only adapts them to ASGI: it builds the
:class:`~pave.api.checks.Context`, runs the blocking checks in a worker thread, reads the JSON
body before the checks that need it, writes refusals (JSON for programs, a page for people, a
redirect to the sign-in page for a signed-out browser), counts streamed uploads, filters
listings on the way back, and adds the security headers and ``X-Request-Id`` to every answer.

Every mutation and every refusal appends one record to the audit chain
(:mod:`pave.governance.audit`) after the status is known and before the client sees a byte of
the answer, off the event loop.
"""

from __future__ import annotations

import html
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import anyio
import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pave import logs, telemetry
from pave.api.checks import (
    BROWSER_COOKIE,
    CHECKS,
    STATE_CHANGING,
    Context,
    Gate,
    Step,
)
from pave.errors import PaveError, PayloadTooLarge, RateLimited, Unauthenticated
from pave.governance import approvals, audit
from pave.governance.access import Access
from pave.governance.egress import EgressPolicy
from pave.governance.permissions import PUBLIC
from pave.governance.ratelimit import RateLimiter
from pave.governance.scope import (
    StoreLookup,
    artifact_path,
    filter_graphql,
    filter_listing,
    filter_pave_listing,
)
from pave.governance.tokens import Principal
from pave.tracking import stores

__all__ = ["BROWSER_COOKIE", "SecurityMiddleware", "access_of", "principal_of"]

log = logging.getLogger("pave.security")

PRINCIPAL_KEY = "pave.principal"
ACCESS_KEY = "pave.access"
SCOPE_KEY = "pave.scope"  # the RequestScope: the portal names the project its form concerns
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_ARTIFACT_DOWNLOADS = (
    "/mlflow/get-artifact",
    "/mlflow/model-versions/get-artifact",
    "/mlflow/ajax-api/2.0/mlflow/get-trace-artifact",
)

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"SAMEORIGIN"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HTML_CSP = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    b"style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    b"connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    b"form-action 'self'; frame-ancestors 'self'"
)
# Artifacts are user content: never let a browser run them as part of the platform's origin.
ARTIFACT_CSP = b"sandbox; default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"


@dataclass
class _Outcome:
    """What the audit record of one request says beyond the context: refused here, and why."""

    refused: bool = False  # refused by the gate (never reached an application)
    detail: str | None = None
    html: bool = False  # a browser asking for a portal page: refusals come as a page, not JSON

    def audited(self, ctx: Context, status: int) -> bool:
        if status in (401, 403) or self.refused:
            return True
        return ctx.method in STATE_CHANGING and ctx.action not in ("read", PUBLIC)

    def entry(self, ctx: Context, status: int) -> audit.AuditEntry:
        principal = ctx.principal
        return audit.AuditEntry(
            method=ctx.method,
            path=ctx.path,
            status=status,
            request_id=ctx.request_id,
            action=ctx.action,
            identity=principal.identity if principal else None,
            token_id=principal.token_id if principal else None,
            project=ctx.scope.project,
            model=ctx.scope.model,
            run_id=ctx.scope.run_id,
            client=ctx.client,
            detail=self.detail,
        )


async def send_error(
    send: Send, error: PaveError, headers: list[tuple[bytes, bytes]] | None = None, *, mlflow: bool = False
) -> None:
    """The refusal as JSON; with ``mlflow``, in MLflow's error shape too (its clients read ``error_code``)."""
    body = error.to_mlflow_dict() if mlflow else error.to_dict()
    await _send(send, error.status_code, b"application/json", orjson.dumps(body), headers)


async def send_error_page(
    send: Send, error: PaveError, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    """The refusal of a portal page as a small HTML page (escaped), for a person rather than a program."""
    message, hint = html.escape(error.message), html.escape(error.hint or "")
    body = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<title>{error.status_code} · Pave</title><link rel="stylesheet" href="/static/portal.css"></head>'
        f'<body><main id="main"><h1>{error.status_code}: {message}</h1>'
        + (f"<p>{hint}</p>" if hint else "")
        + '<p><a href="/">Back to the catalog</a></p></main></body></html>'
    ).encode()
    await _send(send, error.status_code, b"text/html; charset=utf-8", body, headers)


async def _send(
    send: Send, status: int, content_type: bytes, body: bytes, headers: list[tuple[bytes, bytes]] | None
) -> None:
    """One whole response: status, content type and length, extra headers, body."""
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _with_security_headers(
    headers: list[tuple[bytes, bytes]], path: str, request_id: str
) -> list[tuple[bytes, bytes]]:
    present = {name.lower() for name, _ in headers}
    out = list(headers) + [header for header in SECURITY_HEADERS if header[0] not in present]
    content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
    if artifact_path(path) is not None or path.startswith(_ARTIFACT_DOWNLOADS):
        out = [(k, v) for k, v in out if k.lower() != b"content-security-policy"]
        out.append((b"content-security-policy", ARTIFACT_CSP))
    elif content_type.startswith(b"text/html") and b"content-security-policy" not in present:
        out.append((b"content-security-policy", HTML_CSP))
    out.append((b"x-request-id", request_id.encode()))
    return out


class SecurityMiddleware:
    """Authenticate, authorise, harden and audit every HTTP request before it reaches any app."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        sessions: sessionmaker[Session],
        allowed_hosts: list[str],
        max_body: int,
        max_upload: int | None = None,
        on_request: Callable[[str, str, int, float], None] | None = None,
        artifact_root: str | None = None,
        egress: EgressPolicy | None = None,
        browser_sessions: Callable[[Session, str], Principal] | None = None,
        limiter: RateLimiter | None = None,
        checks: tuple[Step, ...] = CHECKS,
    ) -> None:
        self.app = app
        self.engine: Engine = sessions.kw["bind"]
        self.on_request = on_request
        self.checks = checks
        self.gate = Gate(
            sessions=sessions,
            allowed_hosts=allowed_hosts,
            max_body=max_body,
            max_upload=max(max_upload or max_body, max_body),
            artifact_store=artifact_root or "",
            egress=egress or EgressPolicy(),
            browser_sessions=browser_sessions,
            limiter=limiter,
        )

    # --- the outer loop: headers, audit, metrics ------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given_id = headers.get("x-request-id", "")
        client = scope.get("client")
        ctx = Context(
            gate=self.gate,
            method=scope["method"],
            path=scope["path"],
            headers=headers,
            query=scope.get("query_string", b""),
            request_id=given_id if _REQUEST_ID.fullmatch(given_id) else uuid.uuid4().hex,
            client=client[0] if client else None,
        )
        outcome = _Outcome(
            html=self.gate.browser_sessions is not None
            and "text/html" in headers.get("accept", "")
            and not ctx.path.startswith(("/api/", "/mlflow", "/metrics"))
        )
        status_holder = {"status": 0}
        logs.request_id.set(ctx.request_id)  # every record written for this request carries it

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message = dict(message)
                message["headers"] = _with_security_headers(
                    list(message.get("headers", [])), ctx.path, ctx.request_id
                )
                await self._audit(ctx, outcome, message["status"])
            await send(message)

        attributes = {
            "http.request.method": ctx.method,
            "url.path": ctx.path,
            "pave.request_id": ctx.request_id,
        }
        with telemetry.server_span(f"{ctx.method} {ctx.path}", headers, attributes) as span:
            try:
                await self._handle(scope, receive, send_tracking, ctx, outcome)
            except PayloadTooLarge as error:  # a streamed body went over the limit
                outcome.refused, outcome.detail = True, error.code
                if not status_holder["status"]:
                    await send_error(send_tracking, error)
            except BaseException:
                if not status_holder["status"]:
                    outcome.detail = "internal error"
                    await self._audit(ctx, outcome, 500)
                raise
            finally:
                seconds = time.perf_counter() - started
                status = status_holder["status"] or 500
                if self.on_request is not None:
                    self.on_request(scope["method"], scope["path"], status, seconds)
                logs.access(scope["method"], scope["path"], status, seconds)
                _name_span(span, scope, status)

    async def _audit(self, ctx: Context, outcome: _Outcome, status: int) -> None:
        if not outcome.audited(ctx, status):
            return
        try:
            await anyio.to_thread.run_sync(audit.append, self.engine, outcome.entry(ctx, status))
        except Exception:  # the answer is decided already; a lost record must not hide it
            log.exception("could not write the audit record of request %s", ctx.request_id)

    async def _refuse(self, send: Send, ctx: Context, outcome: _Outcome, error: PaveError) -> None:
        outcome.refused, outcome.detail = True, f"{error.code}: {error.message}"[:500]
        if isinstance(error, Unauthenticated) and _signs_in(ctx):
            # A person's browser never meets a JSON 401: it signs in and comes back.
            target = ctx.path + (f"?{ctx.query.decode('latin-1')}" if ctx.query else "")
            await _see_other(send, "/signin" if target == "/" else f"/signin?next={quote(target, safe='/')}")
            return
        extra = [(b"www-authenticate", b'Bearer realm="pave"')] if isinstance(error, Unauthenticated) else []
        if isinstance(error, RateLimited):
            extra.append((b"retry-after", error.retry_after_header))
        if outcome.html:
            await send_error_page(send, error, extra)
            return
        await send_error(send, error, extra, mlflow=ctx.path.startswith("/mlflow/"))

    # --- the checks ---------------------------------------------------------------------------------

    async def _run_checks(self, ctx: Context, receive: Receive) -> PaveError | None:
        """Run the table in order; blocking checks in a worker thread, consecutive ones in one hop."""
        index = 0
        while index < len(self.checks):
            step = self.checks[index]
            if step.needs_body and ctx.body is None and ctx.json_api:
                ctx.body = await _read_body(receive, self.gate.max_body)
            if not step.blocking:
                error = step.check(ctx)
                index += 1
            else:
                hop = [step]
                while index + len(hop) < len(self.checks) and self.checks[index + len(hop)].blocking:
                    hop.append(self.checks[index + len(hop)])
                error = await anyio.to_thread.run_sync(self._run_blocking, ctx, hop)
                index += len(hop)
            if error is not None or ctx.public:
                return error
        return None

    def _run_blocking(self, ctx: Context, hop: list[Step]) -> PaveError | None:
        with self.gate.sessions() as session:
            ctx.session = session
            try:
                for step in hop:
                    error = step.check(ctx)
                    if error is not None:
                        return error
            finally:
                ctx.session = None
        return None

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, ctx: Context, outcome: _Outcome
    ) -> None:
        error = await self._run_checks(ctx, receive)
        if error is not None:
            await self._refuse(send, ctx, outcome, error)
            return
        if ctx.public:
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})
        scope["state"]["principal"] = ctx.principal
        scope[PRINCIPAL_KEY] = ctx.principal
        scope[ACCESS_KEY] = ctx.access
        scope[SCOPE_KEY] = ctx.scope
        body = ctx.body
        declared = ctx.headers.get("content-length") is not None
        chunked_upload = (
            ctx.raw_upload and not ctx.object_upload and ctx.state_changing and not declared and ctx.has_body
        )
        if body is None and (ctx.upload_check is not None or chunked_upload):
            # Count the upload before MLflow sees a byte of it: over the quota, nothing is written.
            try:
                body = await _read_body(receive, self.gate.max_body, ctx.upload_check)
            except PaveError as failure:
                await self._refuse(send, ctx, outcome, failure)
                return
        if chunked_upload and body is not None:
            # MLflow's WSGI bridge reads a body without Content-Length as empty (the file would be
            # stored empty): hand it the length of what arrived.
            scope["headers"] = [
                (k, v)
                for k, v in scope["headers"]
                if k.lower() not in (b"content-length", b"transfer-encoding")
            ] + [(b"content-length", str(len(body)).encode())]
        downstream = _replay(body, receive) if body is not None else _limited(receive, ctx.limit)

        post = self._post_processor(ctx)
        if post is None:
            await self.app(scope, downstream, send)
            return
        await self._buffered(scope, downstream, send, post)

    # --- answers that need a second look --------------------------------------------------------

    def _post_processor(self, ctx: Context) -> Callable[[int, Any], Any] | None:
        principal, access = ctx.principal, ctx.access
        assert principal is not None
        assert access is not None
        if ctx.endpoint == "model-versions/create" and ctx.method == "POST":
            return lambda status, answer: self._record_author(status, answer, principal)
        if principal.is_admin:
            return None
        if ctx.scope.search == "graphql":
            document, lookup = ctx.scope.graphql, StoreLookup()
            return lambda status, answer: (
                filter_graphql(document, answer, access.sees, lookup) if isinstance(answer, dict) else answer
            )
        if ctx.scope.search is not None:
            search = ctx.scope.search
            lookup = StoreLookup()
            return lambda status, answer: (
                filter_listing(search, answer, access.sees, lookup) if isinstance(answer, dict) else answer
            )
        if ctx.method == "GET" and ctx.path.startswith("/api/v1/") and not ctx.scope.projects:
            path = ctx.path
            return lambda status, answer: filter_pave_listing(path, answer, access.sees)
        return None

    def _record_author(self, status: int, answer: Any, principal: Principal) -> Any:
        version = answer.get("model_version") if isinstance(answer, dict) else None
        if status == 200 and isinstance(version, dict):
            from mlflow.entities.model_registry import ModelVersionTag

            stores.registry_store().set_model_version_tag(
                version["name"],
                str(version["version"]),
                ModelVersionTag(approvals.TAG_AUTHOR, principal.identity),
            )
            tags = version.setdefault("tags", [])
            if isinstance(tags, list):
                tags.append({"key": approvals.TAG_AUTHOR, "value": principal.identity})
        return answer

    async def _buffered(
        self, scope: Scope, receive: Receive, send: Send, post: Callable[[int, Any], Any]
    ) -> None:
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if start is None:
            raise RuntimeError("the application sent no response")
        raw = b"".join(chunks)
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        content_type = next((v for k, v in headers if k.lower() == b"content-type"), b"")
        encoded = any(k.lower() == b"content-encoding" for k, _ in headers)
        if b"json" in content_type and not encoded and raw:
            try:
                answer = json.loads(raw)
            except ValueError:
                answer = None
            if answer is not None:
                answer = await anyio.to_thread.run_sync(post, start["status"], answer)
                raw = json.dumps(answer).encode()
        headers.append((b"content-length", str(len(raw)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": raw})


# --- helpers ----------------------------------------------------------------------------------------


def _signs_in(ctx: Context) -> bool:
    """A signed-out browser opening a page: portal pages always, the MLflow UI and the API docs when
    the browser asks for HTML (their scripts' calls get the JSON 401)."""
    portal_page = not ctx.path.startswith(("/api/", "/mlflow", "/metrics"))
    return ctx.browser_page and (portal_page or "text/html" in ctx.headers.get("accept", ""))


async def _see_other(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _read_body(receive: Receive, limit: int, check: Callable[[int], None] | None = None) -> bytes:
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        if check is not None and chunk:
            check(seen)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _name_span(span: Any, scope: Scope, status: int) -> None:
    """A request's span, once answered: its status, and its route's template for a name when the
    API matched one (``GET /api/v1/projects/{name}``: one name per route, not per project)."""
    if span is None:
        return
    telemetry.answered(span, status)
    route = getattr(scope.get("route"), "path", None)
    if isinstance(route, str):
        span.set_attribute("http.route", route)
        span.update_name(f"{scope['method']} {route}")


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


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


def access_of(scope_or_request: Any) -> Access:
    scope = getattr(scope_or_request, "scope", scope_or_request)
    access: Access | None = scope.get(ACCESS_KEY)
    if access is None:  # pragma: no cover
        raise Unauthenticated("no principal on this request")
    return access
