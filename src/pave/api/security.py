"""The one gate every request passes, and the audit record it leaves.

In order: a request id; the Host allow-list; the body limit; the decoded path (no ``..``, NUL,
backslash); the permission table (no rule: denied); the Origin check; JSON only on
state-changing API calls (415 otherwise); the token; the project(s) the request concerns
(:mod:`pave.governance.scope`) and the caller's effective role on each
(:mod:`pave.governance.access`); then the checks that need the request's content: artifact paths,
model sources, protected tags, webhook URLs, result caps, approvals before ``champion``,
quotas. Searches and listings are filtered item by item on the way back.

Every mutation and every refusal appends one record to the audit chain
(:mod:`pave.governance.audit`) after the status is known and before the client sees a byte of
the answer, off the event loop. Every answer carries the security headers and ``X-Request-Id``.
"""

from __future__ import annotations

import functools
import html
import itertools
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import anyio
import orjson
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pave.errors import (
    Forbidden,
    InvalidInput,
    PaveError,
    PayloadTooLarge,
    QuotaExceeded,
    Unauthenticated,
    UserError,
)
from pave.governance import approvals, audit, paths, projects
from pave.governance.access import Access
from pave.governance.egress import EgressPolicy
from pave.governance.permissions import PUBLIC, authorize, is_global, required_action
from pave.governance.policy import check_quota, get_policy
from pave.governance.scope import (
    GRAPHQL_PATH,
    RequestScope,
    StoreLookup,
    artifact_path,
    collect_values,
    endpoint_of,
    filter_graphql,
    filter_listing,
    filter_pave_listing,
    mlflow_endpoint,
    resolve,
    source_owners,
)
from pave.governance.tokens import Principal, authenticate
from pave.tracking import stores

log = logging.getLogger("pave.security")

PRINCIPAL_KEY = "pave.principal"
ACCESS_KEY = "pave.access"
SCOPE_KEY = "pave.scope"  # the RequestScope: the portal names the project its form concerns
BROWSER_COOKIE = "pave_session"  # a portal session (see pave.portal.sessions); never for /api/
_STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# The largest page MLflow's own clients ask for (runs search: 50000, metric history: 25000).
MAX_RESULTS_CAP = 50_000
_ARTIFACT_FILES = re.compile(r"/mlflow-artifacts/artifacts/.")
# Pave's own raw uploads: a project's dataset versions and code snapshots (pave.api.routes.objects).
_OBJECT_UPLOADS = re.compile(r"/api/v1/projects/[^/]+/(datasets|code)/[0-9a-f]{64}")
_ARTIFACT_PARAMS = ("path", "artifact_path", "artifact_file_path")
_RAW_BODY_ENDPOINTS = ("upload-artifact",)
_PRODUCTION_STAGE = "production"
# MLflow's OpenTelemetry trace ingest names its experiment in a header.
OTLP_TRACES = "/mlflow/v1/traces"
OTLP_EXPERIMENT_HEADER = "x-mlflow-experiment-id"
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


class UnsupportedMediaType(UserError):
    status_code = 415
    code = "unsupported_media_type"


@dataclass
class _Request:
    """What the middleware learned about one request (for the audit record)."""

    request_id: str
    method: str
    path: str
    client: str | None
    action: str = "-"
    principal: Principal | None = None
    scope: RequestScope = field(default_factory=RequestScope)
    refused: bool = False  # refused by this middleware (never reached an application)
    detail: str | None = None
    # Checks the bytes of a streamed upload against the project's stored-bytes quota.
    upload_check: Callable[[int], None] | None = None
    html: bool = False  # a browser asking for a portal page: refusals come as a page, not JSON

    def audited(self, status: int) -> bool:
        if status in (401, 403) or self.refused:
            return True
        return self.method in _STATE_CHANGING and self.action not in ("read", PUBLIC)

    def entry(self, status: int) -> audit.AuditEntry:
        return audit.AuditEntry(
            method=self.method,
            path=self.path,
            status=status,
            request_id=self.request_id,
            action=self.action,
            identity=self.principal.identity if self.principal else None,
            token_id=self.principal.token_id if self.principal else None,
            project=self.scope.project,
            model=self.scope.model,
            run_id=self.scope.run_id,
            client=self.client,
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


def _host_allowed(host: str, allowed: list[str]) -> bool:
    if "*" in allowed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in allowed or host in allowed


def origin_allowed(origin: str, allowed: list[str]) -> bool:
    """Whether a browser's ``Origin`` is one of the platform's own: http(s)://HOST[:PORT], nothing else.

    Parsed, not cut at ``://``: ``http://localhost:8000@evil.example`` is evil.example (userinfo),
    and an origin with a path, query or credentials is no origin a browser sends.
    """
    try:
        parts = urlsplit(origin)
        parts.port  # noqa: B018 - raises ValueError on a malformed port
    except ValueError:
        return False
    if (
        parts.scheme not in ("http", "https")
        or "@" in parts.netloc
        or not parts.hostname
        or parts.path
        or parts.query
        or parts.fragment
    ):
        return False
    return _host_allowed(parts.netloc, allowed)


# JSON nested deeper than this is refused before any parser recurses into it (Python's own
# parsers raise RecursionError near 1,000 levels; MLflow's and Pave's bodies need a handful).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth(raw: bytes) -> int:
    """How deeply the arrays and objects of a JSON text nest (strings ignored), without recursion."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    steps = (1 if b in b"[{" else -1 for b in brackets)
    return max(itertools.accumulate(steps), default=0)


def parse_json(raw: bytes) -> Any:
    """The JSON document of a body, or None when it is not JSON (the application answers that).

    Raises:
        InvalidInput: nested deeper than :data:`MAX_JSON_DEPTH`, or text that is not Unicode
            (a lone surrogate such as ``"\\ud800"``, which no database can store).
    """
    if json_depth(raw) > MAX_JSON_DEPTH:
        raise InvalidInput(
            f"the JSON body nests deeper than {MAX_JSON_DEPTH} levels",
            hint="flatten the request; no Pave or MLflow request needs that depth",
        )
    try:
        document = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    try:
        json.dumps(document, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "the JSON body holds text that is not valid Unicode (a lone surrogate escape such as \\ud800)",
            hint="send UTF-8 text; escape characters outside the BMP as a surrogate pair",
        ) from None
    return document


def check_graphql_depth(query: Any) -> None:
    """A GraphQL query nests selections no deeper than JSON may (its parser recurses too)."""
    if isinstance(query, str) and json_depth(query.encode("utf-8", "replace")) > MAX_JSON_DEPTH:
        raise InvalidInput(
            f"the GraphQL query nests deeper than {MAX_JSON_DEPTH} levels",
            hint="ask for fewer nested fields at once",
        )


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
    ) -> None:
        self.app = app
        self.browser_sessions = browser_sessions
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.allowed_hosts = allowed_hosts
        self.max_body = max_body
        self.max_upload = max(max_upload or max_body, max_body)
        self.on_request = on_request
        self.artifact_store = artifact_root or ""
        self.artifact_root = Path(artifact_root) if artifact_root and "://" not in artifact_root else None
        self.egress = egress or EgressPolicy()

    # --- the outer loop: headers, audit, metrics ------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        given_id = headers.get("x-request-id", "")
        client = scope.get("client")
        request = _Request(
            request_id=given_id if _REQUEST_ID.fullmatch(given_id) else uuid.uuid4().hex,
            method=scope["method"],
            path=scope["path"],
            client=client[0] if client else None,
            html=self.browser_sessions is not None
            and "text/html" in headers.get("accept", "")
            and not scope["path"].startswith(("/api/", "/mlflow", "/metrics")),
        )
        status_holder = {"status": 0}

        async def send_tracking(message: Message) -> None:
            if message["type"] == "http.response.start":
                status_holder["status"] = message["status"]
                message = dict(message)
                message["headers"] = _with_security_headers(
                    list(message.get("headers", [])), request.path, request.request_id
                )
                await self._audit(request, message["status"])
            await send(message)

        try:
            await self._handle(scope, receive, send_tracking, headers, request)
        except PayloadTooLarge as error:  # a streamed body went over the limit
            request.refused, request.detail = True, error.code
            if not status_holder["status"]:
                await send_error(send_tracking, error)
        except BaseException:
            if not status_holder["status"]:
                request.detail = "internal error"
                await self._audit(request, 500)
            raise
        finally:
            if self.on_request is not None:
                self.on_request(
                    scope["method"],
                    scope["path"],
                    status_holder["status"] or 500,
                    time.perf_counter() - started,
                )

    async def _audit(self, request: _Request, status: int) -> None:
        if not request.audited(status):
            return
        try:
            await anyio.to_thread.run_sync(audit.append, self.engine, request.entry(status))
        except Exception:  # the answer is decided already; a lost record must not hide it
            log.exception("could not write the audit record of request %s", request.request_id)

    async def _refuse(self, send: Send, request: _Request, error: PaveError) -> None:
        request.refused, request.detail = True, f"{error.code}: {error.message}"[:500]
        extra = [(b"www-authenticate", b'Bearer realm="pave"')] if isinstance(error, Unauthenticated) else []
        if request.html:
            await send_error_page(send, error, extra)
            return
        await send_error(send, error, extra, mlflow=request.path.startswith("/mlflow/"))

    # --- the checks ---------------------------------------------------------------------------------

    async def _handle(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[str, str], request: _Request
    ) -> None:
        method, path = request.method, request.path

        if not _host_allowed(headers.get("host", ""), self.allowed_hosts):
            await self._refuse(
                send,
                request,
                InvalidInput(
                    f"Host header {headers.get('host', '')!r} is not allowed",
                    hint="add it to PAVE_ALLOWED_HOSTS",
                ),
            )
            return

        length = headers.get("content-length")
        # Datasets and code snapshots stream to the object store: they have their own limit.
        object_upload = method == "PUT" and _OBJECT_UPLOADS.fullmatch(path) is not None
        limit = self.max_upload if object_upload else self.max_body
        if length is not None and (not length.isdigit() or int(length) > limit):
            await self._refuse(
                send,
                request,
                PayloadTooLarge(
                    f"request body of {length} bytes is over the limit of {limit}",
                    hint="send less per request, or raise "
                    + ("PAVE_MAX_UPLOAD_BYTES" if object_upload else "PAVE_MAX_REQUEST_BYTES"),
                ),
            )
            return

        try:
            _check_request_path(path, scope.get("query_string", b""))
        except PaveError as error:
            await self._refuse(send, request, error)
            return

        action = required_action(method, path)
        if action is None:
            await self._refuse(
                send,
                request,
                Forbidden(
                    f"no permission rule covers {method} {path}; denied",
                    hint="this route is not part of Pave's API (see /api/v1/openapi.json)",
                ),
            )
            return
        request.action = action
        if action == PUBLIC:
            await self.app(scope, receive, send)
            return

        origin = headers.get("origin")
        if method in _STATE_CHANGING and origin and not origin_allowed(origin, self.allowed_hosts):
            await self._refuse(
                send,
                request,
                Forbidden(
                    f"cross-origin {method} from {origin} refused",
                    hint="call the API from the portal or a client, not from another site",
                ),
            )
            return

        auth = headers.get("authorization", "")
        scheme, _, secret = auth.partition(" ")
        token = secret.strip() if scheme.lower() == "bearer" else None
        # A portal session cookie stands for its token in the browser (portal pages and the MLflow
        # UI it links to), never on the API: API clients send their token.
        browser_page = self.browser_sessions is not None and not path.startswith(
            ("/api/", "/mlflow", "/metrics")
        )
        cookie = None
        if token is None and self.browser_sessions is not None and not path.startswith("/api/"):
            cookie = _cookie(headers.get("cookie", ""), BROWSER_COOKIE)
        try:
            principal = await anyio.to_thread.run_sync(self._authenticate, token, cookie)
        except PaveError as error:
            if browser_page and method == "GET" and isinstance(error, Unauthenticated):
                request.refused, request.detail = True, f"{error.code}: {error.message}"
                await _see_other(send, "/signin")
                return
            await self._refuse(send, request, error)
            return
        request.principal = principal

        endpoint = mlflow_endpoint(path)
        # Only uploads carry raw bytes; every other body (multipart uploads' JSON included) is JSON.
        is_raw_upload = (
            object_upload
            or (method == "PUT" and _ARTIFACT_FILES.search(path) is not None)
            or (endpoint or "").endswith(_RAW_BODY_ENDPOINTS)
        )
        has_body = (length not in (None, "0")) or "transfer-encoding" in headers
        json_api = not is_raw_upload and (
            path.startswith("/api/v1/")
            or endpoint is not None
            or artifact_path(path) is not None
            or path == GRAPHQL_PATH
        )
        if method in _STATE_CHANGING and has_body and json_api:
            media = headers.get("content-type", "").split(";", 1)[0].strip().lower()
            if media != "application/json":
                await self._refuse(
                    send,
                    request,
                    UnsupportedMediaType(
                        f"{method} {path} needs Content-Type: application/json, not {media or 'none'!r}",
                        hint="send JSON with Content-Type: application/json",
                    ),
                )
                return

        body: bytes | None = None
        if json_api:
            body = await _read_body(receive, self.max_body)
        params = {
            k: v if len(v) > 1 else v[0]
            for k, v in parse_qs(scope.get("query_string", b"").decode("latin-1")).items()
        }
        try:
            document = parse_json(body) if body else None
            if path == GRAPHQL_PATH and isinstance(document, dict):
                check_graphql_depth(document.get("query"))
        except PaveError as error:
            await self._refuse(send, request, error)
            return
        if (
            body
            and method in _STATE_CHANGING
            and not path.startswith("/api/")
            and (
                not isinstance(document, dict)
                or (path == GRAPHQL_PATH and not isinstance(document.get("query"), str))
            )
        ):
            # MLflow's handlers expect an object; anything else (a string, a list) crashes them.
            await self._refuse(
                send,
                request,
                InvalidInput(
                    f"the body of {method} {path} must be a JSON object"
                    + (" with a 'query'" if path == GRAPHQL_PATH else ""),
                    hint='send the request\'s fields as a JSON object: {"name": ...}',
                ),
            )
            return

        try:
            access, request_scope = await anyio.to_thread.run_sync(
                self._decide, principal, request, params, document, headers
            )
        except PaveError as error:
            await self._refuse(send, request, error)
            return
        request.scope = request_scope

        scope.setdefault("state", {})
        scope["state"]["principal"] = principal
        scope[PRINCIPAL_KEY] = principal
        scope[ACCESS_KEY] = access
        scope[SCOPE_KEY] = request_scope
        chunked_upload = (
            is_raw_upload and not object_upload and method in _STATE_CHANGING and length is None and has_body
        )
        if body is None and (request.upload_check is not None or chunked_upload):
            # Count the upload before MLflow sees a byte of it: over the quota, nothing is written.
            try:
                body = await _read_body(receive, self.max_body, request.upload_check)
            except PaveError as error:
                await self._refuse(send, request, error)
                return
        if chunked_upload and body is not None:
            # MLflow's WSGI bridge reads a body without Content-Length as empty (the file would be
            # stored empty): hand it the length of what arrived.
            scope["headers"] = [
                (k, v)
                for k, v in scope["headers"]
                if k.lower() not in (b"content-length", b"transfer-encoding")
            ] + [(b"content-length", str(len(body)).encode())]
        downstream = _replay(body, receive) if body is not None else _limited(receive, limit)

        post = self._post_processor(request, access, endpoint)
        if post is None:
            await self.app(scope, downstream, send)
            return
        await self._buffered(scope, downstream, send, post)

    def _authenticate(self, secret: str | None, cookie: str | None = None) -> Principal:
        with self.sessions() as session:
            if secret is None and cookie and self.browser_sessions is not None:
                return self.browser_sessions(session, cookie)
            return authenticate(session, secret)

    def _decide(
        self,
        principal: Principal,
        request: _Request,
        params: dict[str, Any],
        document: Any,
        headers: dict[str, str],
    ) -> tuple[Access, RequestScope]:
        """Everything that needs the store: scope, role on each project, content checks (blocking)."""
        method, path = request.method, request.path
        lookup = StoreLookup()
        if path == OTLP_TRACES and headers.get(OTLP_EXPERIMENT_HEADER):
            params = {**params, "experiment_id": headers[OTLP_EXPERIMENT_HEADER]}
        request_scope = resolve(path, params, document, lookup, method=method)
        request.scope = request_scope
        values: dict[str, Any] = dict(params)
        if isinstance(document, dict):
            values.update(document)
        endpoint = endpoint_of(path) or ""
        action = request.action

        # Promotion to production needs "approve", whatever else the route needs.
        if (
            endpoint == "registered-models/alias"
            and str(values.get("alias", "")).lower() == approvals.CHAMPION
        ):
            action = "approve"
        if (
            endpoint == "model-versions/transition-stage"
            and str(values.get("stage", "")).lower() == _PRODUCTION_STAGE
        ):
            action = "approve"
        request.action = action

        with self.sessions() as session:
            access = Access.load(session, principal)
            projects = request_scope.projects
            if request_scope.unresolved and not is_global(method, path):
                # What cannot be attributed to a project escapes its roles, quotas and isolation
                # (first the refusal a token's role alone earns: it says more).
                authorize(principal, access.token_actions, action, method, path, None)
                raise Forbidden(
                    f"{method} {path} names no experiment, run, model or trace that Pave can attribute "
                    "to a project; denied",
                    hint="send the experiment_id (or run_id, the model's name) of the project it concerns",
                )
            if not projects:
                authorize(principal, access.actions(None), action, method, path, None)
            for project in projects:
                authorize(principal, access.actions(project), action, method, path, project)

            for value in collect_values(request_scope.graphql_args, ("path",)):
                paths.check_relative_path(value, what="artifact path")
            art = artifact_path(path)
            if art is not None and self.artifact_root is not None:
                relative = art or str(values.get("path") or "")
                paths.check_inside(
                    self.artifact_root, paths.check_relative_path(relative, what="artifact path")
                )
            if "artifact" in endpoint:  # run, logged-model and trace artifacts: the experiment's store
                for experiment_id in request_scope.experiment_ids:
                    paths.check_experiment_location(
                        experiment_id,
                        lookup.experiment_name(experiment_id),
                        lookup.experiment_location(experiment_id),
                        self.artifact_store,
                    )
            if method in _STATE_CHANGING:
                self._check_content(endpoint, path, values, request_scope)
                _check_ownership(session, lookup, endpoint, values, request_scope)
                if request_scope.project is not None:
                    request.upload_check = self._check_policy(
                        session, endpoint, method, path, values, request_scope, headers
                    )
            _check_caps(values)
        return access, request_scope

    def _check_content(self, endpoint: str, path: str, values: dict[str, Any], scope: RequestScope) -> None:
        if endpoint == "experiments/create":
            paths.check_artifact_location(values.get("artifact_location"))
        if endpoint == "model-versions/create":
            paths.check_model_source(str(values.get("source", "")))
            for tag in values.get("tags") or []:
                if isinstance(tag, dict) and approvals.is_protected_tag(str(tag.get("key", ""))):
                    raise Forbidden(f"tag {tag.get('key')!r} is written by the platform only")
        if endpoint in ("model-versions/set-tag", "model-versions/delete-tag") and approvals.is_protected_tag(
            str(values.get("key", ""))
        ):
            raise Forbidden(
                f"tag {values.get('key')!r} is written by the platform only",
                hint="approve with `pave approve PROJECT VERSION`",
            )
        if endpoint.startswith("webhooks") and isinstance(values.get("url"), str):
            self.egress.check(values["url"])

    def _check_policy(
        self,
        session: Session,
        endpoint: str,
        method: str,
        path: str,
        values: dict[str, Any],
        scope: RequestScope,
        headers: dict[str, str],
    ) -> Callable[[int], None] | None:
        """Refuse what the project's policy forbids; answer the check a streamed upload needs."""
        project = scope.project
        assert project is not None
        policy = get_policy(session, project)
        promoting = (
            endpoint == "registered-models/alias"
            and method == "POST"
            and str(values.get("alias", "")).lower() == approvals.CHAMPION
        ) or (
            endpoint == "model-versions/transition-stage"
            and str(values.get("stage", "")).lower() == _PRODUCTION_STAGE
        )
        if promoting and policy.require_approval:
            # MLflow's alias and stage routes; Pave's own deployment routes check in the domain
            # (pave.serving.store), where every change of traffic passes.
            registry = stores.registry_store()
            version = str(values.get("version", ""))
            approvals.check_promotion(registry, project, version, require_approval=True)
        if endpoint == "runs/create" and policy.max_concurrent_runs is not None:
            running = stores.running_runs(scope.experiment_ids, policy.max_concurrent_runs + 1)
            check_quota(policy, "concurrent_runs", running)
        if policy.max_stored_bytes is None:
            return None
        if _DIRECT_UPLOADS.search(path) or endpoint == "artifacts/presigned-upload-url":
            raise QuotaExceeded(
                f"project {project!r} has a stored_bytes quota ({policy.max_stored_bytes} bytes; "
                f"owner: {policy.owner or 'unknown'}) and uploads that bypass the artifact proxy "
                "cannot be counted against it",
                hint="upload through the proxy (mlflow-artifacts PUT), or ask a platform admin to lift "
                f"the quota: `pave project policy {project} --max-stored-bytes N`",
                details={"quota": "stored_bytes", "limit": policy.max_stored_bytes, "owner": policy.owner},
            )
        uploading = (method == "PUT" and artifact_path(path)) or endpoint == "upload-artifact"
        if not uploading or self.artifact_root is None:
            return None
        used = sum(_folder_bytes(self.artifact_root / e) for e in scope.experiment_ids)
        check_quota(policy, "stored_bytes", used, int(headers.get("content-length") or 0))
        # A chunked body declares no length: its bytes are counted as they arrive.
        return functools.partial(check_quota, policy, "stored_bytes", used)

    # --- answers that need a second look --------------------------------------------------------

    def _post_processor(
        self, request: _Request, access: Access, endpoint: str | None
    ) -> Callable[[int, Any], Any] | None:
        principal = request.principal
        assert principal is not None
        if endpoint == "model-versions/create" and request.method == "POST":
            return lambda status, answer: self._record_author(status, answer, principal)
        if principal.is_admin:
            return None
        if request.scope.search == "graphql":
            document, lookup = request.scope.graphql, StoreLookup()
            return lambda status, answer: (
                filter_graphql(document, answer, access.sees, lookup) if isinstance(answer, dict) else answer
            )
        if request.scope.search is not None:
            search = request.scope.search
            lookup = StoreLookup()
            return lambda status, answer: (
                filter_listing(search, answer, access.sees, lookup) if isinstance(answer, dict) else answer
            )
        if request.method == "GET" and request.path.startswith("/api/v1/") and not request.scope.projects:
            path = request.path
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


def _cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


async def _see_other(send: Send, location: str) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 303,
            "headers": [(b"location", location.encode()), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


def _check_request_path(path: str, query: bytes) -> None:
    """No ``..`` segment, NUL, backslash anywhere in the decoded path or in artifact parameters."""
    decoded = paths.fully_decoded(path)
    if (
        any(ord(ch) < 32 for ch in decoded)
        or "\\" in decoded
        or "\ufffd" in decoded
        or any(p == ".." for p in decoded.split("/"))
    ):
        raise InvalidInput(f"path {path[:200]!r} is not allowed", hint="no '..', NUL or backslash in paths")
    art = artifact_path(path)
    if art:
        paths.check_relative_path(art, what="artifact path")
    if query:
        for key, values in parse_qs(query.decode("latin-1"), keep_blank_values=True).items():
            if key in _ARTIFACT_PARAMS:
                for value in values:
                    if value:
                        paths.check_relative_path(value, what=key)


def _check_ownership(
    session: Session, lookup: StoreLookup, endpoint: str, values: dict[str, Any], scope: RequestScope
) -> None:
    """Nothing moves between projects: no renames onto or off a project, no version of another's model."""
    if endpoint == "experiments/update":
        old = lookup.experiment_name(str(values.get("experiment_id", "")))
        new = _text(values.get("new_name"))
        projects.check_rename("experiment", old, new, projects.existing_projects(session, [old, new]))
    elif endpoint == "registered-models/rename":
        old, new = _text(values.get("name")), _text(values.get("new_name"))
        projects.check_rename("registered model", old, new, projects.existing_projects(session, [old, new]))
    elif endpoint == "model-versions/create":
        name, source = _text(values.get("name")), _text(values.get("source")) or ""
        owners = source_owners(paths.fully_decoded(source), lookup)
        if owners is None:
            raise Forbidden(
                f"model source {source[:200]!r} names no run, experiment or model of this platform",
                hint="register a model logged to the same project: runs:/<run_id>/<path> or models:/<id>",
            )
        named = [name, *owners, *scope.projects]
        projects.check_same_project(name, named, projects.existing_projects(session, named))


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


# Multipart uploads send their parts straight to the object store, past the proxy.
_DIRECT_UPLOADS = re.compile(r"/mlflow-artifacts/mpu/create(/|$)")


def _check_caps(values: dict[str, Any]) -> None:
    for key in ("max_results", "maxResults", "limit"):
        value = values.get(key)
        try:
            number = int(value) if value is not None else None
        except (TypeError, ValueError):
            continue
        if number is not None and number > MAX_RESULTS_CAP:
            raise InvalidInput(
                f"{key}={number} is over the cap of {MAX_RESULTS_CAP}",
                hint="page through the results with page_token",
            )


def _folder_bytes(folder: Path) -> int:
    total = 0
    if not folder.is_dir():
        return 0
    for item in folder.rglob("*"):
        if item.is_file() and not item.is_symlink():
            total += item.stat().st_size
    return total


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
