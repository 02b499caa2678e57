"""The request gate's checks: an ordered table of small functions, each ``(ctx) -> error | None``.

:data:`CHECKS` runs top to bottom; the first check that answers an error refuses the request
(:class:`pave.api.security.SecurityMiddleware` writes the refusal and its audit record). A check
learns what the later ones need by setting it on the :class:`Context` (the rule, the principal,
the body, the scope). ``blocking`` checks read the database or MLflow's store and run in a worker
thread (consecutive ones in one hop, with one database session); ``needs_body`` checks run after
the adapter read the JSON body.

Each check is a plain function, testable alone with a hand-made :class:`Context`
(``tests/api/test_checks.py``). The rules they apply live in the domain: the permission table
(:mod:`pave.governance.permissions`), scope (:mod:`pave.governance.scope`), paths, approvals,
quotas and caps (:mod:`pave.governance.paths`, :mod:`~pave.governance.approvals`,
:mod:`~pave.governance.policy`).
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.orm import Session, sessionmaker

from pave.errors import Forbidden, InvalidInput, PaveError, PayloadTooLarge, UserError
from pave.governance import approvals, paths, policy, projects, prompts
from pave.governance.access import Access
from pave.governance.egress import EgressPolicy
from pave.governance.permissions import PUBLIC, Rule, authorize, escalated_action, rule_for
from pave.governance.ratelimit import RateLimiter
from pave.governance.scope import (
    GRAPHQL_PATH,
    RequestScope,
    StoreLookup,
    artifact_path,
    collect_values,
    endpoint_of,
    mlflow_endpoint,
    registry_project,
    resolve,
    source_owners,
)
from pave.governance.tokens import Principal, authenticate
from pave.tracking import stores

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# MLflow's OpenTelemetry trace ingest names its experiment in a header.
OTLP_TRACES = "/mlflow/v1/traces"
OTLP_EXPERIMENT_HEADER = "x-mlflow-experiment-id"
_ARTIFACT_FILES = re.compile(r"/mlflow-artifacts/artifacts/.")
# Pave's own raw uploads: a project's dataset versions and code snapshots (pave.api.routes.objects).
_OBJECT_UPLOADS = re.compile(r"/api/v1/projects/[^/]+/(datasets|code)/[0-9a-f]{64}")
_ARTIFACT_PARAMS = ("path", "artifact_path", "artifact_file_path")
_RAW_BODY_ENDPOINTS = ("upload-artifact",)
# Multipart uploads send their parts straight to the object store, past the proxy.
_DIRECT_UPLOADS = re.compile(r"/mlflow-artifacts/mpu/create(/|$)")
# JSON nested deeper than this is refused before any parser recurses into it (Python's own
# parsers raise RecursionError near 1,000 levels; MLflow's and Pave's bodies need a handful).
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
# Pages a browser opens (portal pages, the MLflow UI, the API docs): a signed-out browser is sent
# to the sign-in page instead of a JSON 401, and a portal session stands for its token there.
BROWSER_PAGES = re.compile(r"/mlflow/?|/mlflow/(static-files|build)/.*|/api/v1/(docs|openapi\.json)(/.*)?")


class UnsupportedMediaType(UserError):
    status_code = 415
    code = "unsupported_media_type"


@dataclass
class Gate:
    """What the checks need from the platform (set once, when the app is built)."""

    sessions: sessionmaker[Session]
    allowed_hosts: list[str]
    max_body: int
    max_upload: int = 0  # datasets and code snapshots stream to the object store: their own limit
    artifact_store: str = ""  # the artifact root as configured (a path or a URI)
    egress: EgressPolicy = field(default_factory=EgressPolicy)
    browser_sessions: Callable[[Session, str], Principal] | None = None
    limiter: RateLimiter | None = None  # per-token rate limits, by role

    @property
    def artifact_root(self) -> Path | None:
        """The local artifact root (None when artifacts live in an object store)."""
        store = self.artifact_store
        return Path(store) if store and "://" not in store else None


@dataclass
class Context:
    """One request, and what the checks learnt about it so far."""

    gate: Gate
    method: str
    path: str
    headers: dict[str, str]
    query: bytes = b""
    request_id: str = "-"
    client: str | None = None
    # learnt by the checks
    rule: Rule | None = None
    action: str = "-"
    public: bool = False  # a public route: the checks after "route" do not apply
    principal: Principal | None = None
    body: bytes | None = None
    document: Any = None
    scope: RequestScope = field(default_factory=RequestScope)
    lookup: StoreLookup | None = None
    access: Access | None = None
    upload_check: Callable[[int], None] | None = None  # counts a streamed upload against the quota
    session: Session | None = None  # the database session of the current worker-thread hop

    @functools.cached_property
    def params(self) -> dict[str, Any]:
        """The query parameters (a list when one is repeated)."""
        parsed = parse_qs(self.query.decode("latin-1"))
        return {k: v if len(v) > 1 else v[0] for k, v in parsed.items()}

    @property
    def values(self) -> dict[str, Any]:
        """The query parameters and the JSON body's fields together."""
        merged: dict[str, Any] = dict(self.params)
        if isinstance(self.document, dict):
            merged.update(self.document)
        return merged

    @property
    def endpoint(self) -> str:
        """The MLflow endpoint (``runs/log-metric``), its routes outside the REST API included."""
        return endpoint_of(self.path) or ""

    @property
    def state_changing(self) -> bool:
        return self.method in STATE_CHANGING

    @property
    def object_upload(self) -> bool:
        """A dataset version or code snapshot streamed to the object store (its own size limit)."""
        return self.method == "PUT" and _OBJECT_UPLOADS.fullmatch(self.path) is not None

    @property
    def limit(self) -> int:
        """The body limit of this request."""
        return max(self.gate.max_upload, self.gate.max_body) if self.object_upload else self.gate.max_body

    @property
    def raw_upload(self) -> bool:
        """Artifact, dataset and code uploads carry raw bytes; every other body is JSON."""
        return (
            self.object_upload
            or (self.method == "PUT" and _ARTIFACT_FILES.search(self.path) is not None)
            or (mlflow_endpoint(self.path) or "").endswith(_RAW_BODY_ENDPOINTS)
        )

    @property
    def has_body(self) -> bool:
        return self.headers.get("content-length") not in (None, "0") or "transfer-encoding" in self.headers

    @property
    def json_api(self) -> bool:
        """A JSON API request (Pave's, MLflow's, its artifact routes, GraphQL): its body is read first."""
        return not self.raw_upload and (
            self.path.startswith("/api/v1/")
            or mlflow_endpoint(self.path) is not None
            or artifact_path(self.path) is not None
            or self.path == GRAPHQL_PATH
        )

    @property
    def session_cookie_counts(self) -> bool:
        """A portal session stands for its token outside the API (portal, MLflow and its UI's calls)
        and on the API docs; API clients send their token."""
        if self.gate.browser_sessions is None:
            return False
        return not self.path.startswith("/api/") or (
            self.method in ("GET", "HEAD") and BROWSER_PAGES.fullmatch(self.path) is not None
        )

    @property
    def browser_page(self) -> bool:
        """A page a browser opens (portal, MLflow UI, API docs): signed out, it goes to the sign-in page."""
        if self.gate.browser_sessions is None or self.method not in ("GET", "HEAD"):
            return False
        return BROWSER_PAGES.fullmatch(self.path) is not None or not self.path.startswith(
            ("/api/", "/mlflow", "/metrics")
        )

    def open_session(self) -> Session:
        if self.session is None:
            raise RuntimeError("a blocking check ran outside its worker-thread hop")
        return self.session


Check = Callable[[Context], PaveError | None]


@dataclass(frozen=True)
class Step:
    """One row of the gate's table."""

    name: str
    check: Check
    blocking: bool = False  # reads the database or MLflow: runs in a worker thread
    needs_body: bool = False  # needs the JSON body read first


# --- the checks, in the order they run ---------------------------------------------------------------


def host_allowed(host: str, allowed: list[str]) -> bool:
    if "*" in allowed:
        return True
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in allowed or host in allowed


def check_host(ctx: Context) -> PaveError | None:
    """The Host header is one of ``allowed_hosts`` (DNS rebinding)."""
    host = ctx.headers.get("host", "")
    if host_allowed(host, ctx.gate.allowed_hosts):
        return None
    return InvalidInput(f"Host header {host!r} is not allowed", hint="add it to PAVE_ALLOWED_HOSTS")


def check_size(ctx: Context) -> PaveError | None:
    """A declared body is within ``max_request_bytes`` (streamed bodies are counted as they come)."""
    length, limit = ctx.headers.get("content-length"), ctx.limit
    if length is None or (length.isdigit() and int(length) <= limit):
        return None
    setting = "PAVE_MAX_UPLOAD_BYTES" if ctx.object_upload else "PAVE_MAX_REQUEST_BYTES"
    return PayloadTooLarge(
        f"request body of {length} bytes is over the limit of {limit}",
        hint=f"send less per request, or raise {setting}",
    )


def check_path(ctx: Context) -> PaveError | None:
    """No ``..`` segment, NUL, control character or backslash in the decoded path or artifact parameters."""
    try:
        decoded = paths.fully_decoded(ctx.path)
        if (
            any(ord(ch) < 32 for ch in decoded)
            or "\\" in decoded
            or "\ufffd" in decoded
            or any(p == ".." for p in decoded.split("/"))
        ):
            return InvalidInput(
                f"path {ctx.path[:200]!r} is not allowed", hint="no '..', NUL or backslash in paths"
            )
        art = artifact_path(ctx.path)
        if art:
            paths.check_relative_path(art, what="artifact path")
        if ctx.query:
            for key, values in parse_qs(ctx.query.decode("latin-1"), keep_blank_values=True).items():
                if key in _ARTIFACT_PARAMS:
                    for value in values:
                        if value:
                            paths.check_relative_path(value, what=key)
    except PaveError as error:
        return error
    return None


def check_route(ctx: Context) -> PaveError | None:
    """The permission table has a rule for the route (none: denied); a public route ends the checks."""
    ctx.rule = rule_for(ctx.method, ctx.path)
    if ctx.rule is None:
        return Forbidden(
            f"no permission rule covers {ctx.method} {ctx.path}; denied",
            hint="this route is not part of Pave's API (see /api/v1/openapi.json)",
        )
    ctx.action = ctx.rule.action
    ctx.public = ctx.action == PUBLIC
    return None


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
    return host_allowed(parts.netloc, allowed)


def check_origin(ctx: Context) -> PaveError | None:
    """A state-changing request a browser sends from another site is refused (CSRF)."""
    origin = ctx.headers.get("origin")
    if not ctx.state_changing or not origin or origin_allowed(origin, ctx.gate.allowed_hosts):
        return None
    return Forbidden(
        f"cross-origin {ctx.method} from {origin[:200]} refused",
        hint="call the API from the portal or a client, not from another site",
    )


def bearer_token(headers: dict[str, str]) -> str | None:
    scheme, _, secret = headers.get("authorization", "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else None


def cookie(header: str, name: str) -> str | None:
    for part in header.split(";"):
        key, _, value = part.strip().partition("=")
        if key == name and value:
            return value
    return None


BROWSER_COOKIE = "pave_session"  # a portal session (see pave.portal.sessions); never on the API


def check_authentication(ctx: Context) -> PaveError | None:
    """A valid token (bearer header), or on a browser page a portal session standing for one."""
    token = bearer_token(ctx.headers)
    session = ctx.open_session()
    try:
        browser = ctx.gate.browser_sessions
        if token is None and browser is not None and ctx.session_cookie_counts:
            cookie_value = cookie(ctx.headers.get("cookie", ""), BROWSER_COOKIE)
            if cookie_value:
                ctx.principal = browser(session, cookie_value)
                return None
        ctx.principal = authenticate(session, token)
    except PaveError as error:
        return error
    return None


def check_rate(ctx: Context) -> PaveError | None:
    """The caller's token is within its role's rate limit (429 with Retry-After otherwise)."""
    limiter, principal = ctx.gate.limiter, ctx.principal
    if limiter is None or principal is None:
        return None
    try:
        limiter.check(("token", principal.token_id), principal.role, principal.identity)
    except PaveError as error:
        return error
    return None


def check_media_type(ctx: Context) -> PaveError | None:
    """A state-changing JSON API body is ``application/json``: no form or text post from another site."""
    if not (ctx.state_changing and ctx.has_body and ctx.json_api):
        return None
    media = ctx.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media == "application/json":
        return None
    return UnsupportedMediaType(
        f"{ctx.method} {ctx.path} needs Content-Type: application/json, not {media or 'none'!r}",
        hint="send JSON with Content-Type: application/json",
    )


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


def check_body(ctx: Context) -> PaveError | None:
    """A JSON body parses within the depth limit, as Unicode; MLflow's state changes get an object."""
    if not ctx.body:
        return None
    try:
        ctx.document = parse_json(ctx.body)
    except PaveError as error:
        return error
    document, graphql = ctx.document, ctx.path == GRAPHQL_PATH
    if graphql and isinstance(document, dict):
        query = document.get("query")
        if isinstance(query, str) and json_depth(query.encode("utf-8", "replace")) > MAX_JSON_DEPTH:
            return InvalidInput(
                f"the GraphQL query nests deeper than {MAX_JSON_DEPTH} levels",
                hint="ask for fewer nested fields at once",
            )
    if not ctx.state_changing or ctx.path.startswith("/api/"):
        return None  # Pave's routes validate their bodies themselves (422 with the field)
    if not isinstance(document, dict) or (graphql and not isinstance(document.get("query"), str)):
        # MLflow's handlers expect an object; anything else (a string, a list) crashes them.
        return InvalidInput(
            f"the body of {ctx.method} {ctx.path} must be a JSON object"
            + (" with a 'query'" if graphql else ""),
            hint='send the request\'s fields as a JSON object: {"name": ...}',
        )
    return None


def check_scope(ctx: Context) -> PaveError | None:
    """Find the project(s) the request concerns; promoting to production needs ``approve``."""
    ctx.lookup = StoreLookup()
    params = ctx.params
    if ctx.path == OTLP_TRACES and ctx.headers.get(OTLP_EXPERIMENT_HEADER):
        params = {**params, "experiment_id": ctx.headers[OTLP_EXPERIMENT_HEADER]}
    ctx.scope = resolve(ctx.path, params, ctx.document, ctx.lookup, method=ctx.method)
    ctx.action = escalated_action(ctx.action, ctx.method, ctx.endpoint, ctx.values)
    return None


def check_authorisation(ctx: Context) -> PaveError | None:
    """The caller may take the action on every project the request concerns; unresolved: denied."""
    principal = ctx.principal
    assert principal is not None
    rule = ctx.rule
    ctx.access = access = Access.load(ctx.open_session(), principal)
    method, path, action = ctx.method, ctx.path, ctx.action
    try:
        if ctx.scope.unresolved and not (rule is not None and rule.is_global):
            # What cannot be attributed to a project escapes its roles, quotas and isolation
            # (first the refusal a token's role alone earns: it says more).
            authorize(principal, access.token_actions, action, method, path, None)
            return Forbidden(
                f"{method} {path} names no experiment, run, model or trace that Pave can attribute "
                "to a project; denied",
                hint="send the experiment_id (or run_id, the model's name) of the project it concerns",
            )
        if not ctx.scope.projects:
            authorize(principal, access.actions(None), action, method, path, None)
        for project in ctx.scope.projects:
            authorize(principal, access.actions(project), action, method, path, project)
    except PaveError as error:
        return error
    return None


def check_content(ctx: Context) -> PaveError | None:
    """What the request names stays inside the platform: paths, locations, sources, tags, URLs, caps."""
    try:
        _check_paths(ctx)
        if ctx.state_changing:
            _check_fields(ctx)
            _check_ownership(ctx)
        policy.check_caps(ctx.values)
    except PaveError as error:
        return error
    return None


def check_policy(ctx: Context) -> PaveError | None:
    """The project's policy: approval before production, concurrent runs, stored bytes."""
    project = ctx.scope.project
    if not ctx.state_changing or project is None:
        return None
    try:
        ctx.upload_check = _project_policy(ctx, project)
    except PaveError as error:
        return error
    return None


CHECKS: tuple[Step, ...] = (
    Step("host", check_host),
    Step("size", check_size),
    Step("path", check_path),
    Step("route", check_route),
    Step("origin", check_origin),
    Step("authentication", check_authentication, blocking=True),
    Step("rate limit", check_rate),
    Step("media type", check_media_type),
    Step("body", check_body, needs_body=True),
    Step("scope", check_scope, blocking=True),
    Step("authorisation", check_authorisation, blocking=True),
    Step("content", check_content, blocking=True),
    Step("policy", check_policy, blocking=True),
)


# --- the parts of the content and policy checks -------------------------------------------------------


def _check_paths(ctx: Context) -> None:
    for value in collect_values(ctx.scope.graphql_args, ("path",)):
        paths.check_relative_path(value, what="artifact path")
    art = artifact_path(ctx.path)
    root = ctx.gate.artifact_root
    if art is not None and root is not None:
        relative = art or str(ctx.values.get("path") or "")
        paths.check_inside(root, paths.check_relative_path(relative, what="artifact path"))
    if "artifact" in ctx.endpoint and ctx.lookup is not None:
        # run, logged-model and trace artifacts: the experiment's own store only
        for experiment_id in ctx.scope.experiment_ids:
            paths.check_experiment_location(
                experiment_id,
                ctx.lookup.experiment_name(experiment_id),
                ctx.lookup.experiment_location(experiment_id),
                ctx.gate.artifact_store,
            )


def _check_fields(ctx: Context) -> None:
    endpoint, values = ctx.endpoint, ctx.values
    if endpoint == "experiments/create":
        paths.check_artifact_location(values.get("artifact_location"))
    if endpoint == "model-versions/create":
        if prompts.is_prompt(values.get("tags")):
            prompts.check_source(str(values.get("source", "")))
        else:
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
    if endpoint in _TAG_CHANGES:
        prompts.check_tag_change(str(values.get("key", "")))
    if endpoint.startswith("webhooks") and isinstance(values.get("url"), str):
        ctx.gate.egress.check(values["url"])


_TAG_CHANGES = frozenset(
    f"{kind}/{change}"
    for kind in ("registered-models", "model-versions")
    for change in ("set-tag", "delete-tag")
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _check_ownership(ctx: Context) -> None:
    """Nothing moves between projects: no renames onto or off a project, no version of another's model."""
    session, lookup, values, endpoint = ctx.open_session(), ctx.lookup, ctx.values, ctx.endpoint
    assert lookup is not None
    if endpoint == "experiments/update":
        old = lookup.experiment_name(str(values.get("experiment_id", "")))
        new = _text(values.get("new_name"))
        projects.check_rename("experiment", old, new, projects.existing_projects(session, [old, new]))
    elif endpoint == "registered-models/rename":
        old, new = _text(values.get("name")), _text(values.get("new_name"))
        names = [old, new, *(registry_project(n) for n in (old, new) if n)]
        projects.check_registry_rename(old, new, projects.existing_projects(session, names))
    elif endpoint in ("registered-models/create", "model-versions/create") and prompts.is_prompt(
        values.get("tags")
    ):
        name = _text(values.get("name"))
        prompts.project_of(name, projects.existing_projects(session, [registry_project(name or "")]))
    elif endpoint == "model-versions/create":
        name, source = _text(values.get("name")), _text(values.get("source")) or ""
        owners = source_owners(paths.fully_decoded(source), lookup)
        if owners is None:
            raise Forbidden(
                f"model source {source[:200]!r} names no run, experiment or model of this platform",
                hint="register a model logged to the same project: runs:/<run_id>/<path> or models:/<id>",
            )
        named: list[str | None] = [registry_project(name or ""), *owners, *ctx.scope.projects]
        projects.check_same_project(name, named, projects.existing_projects(session, named))


def _project_policy(ctx: Context, project: str) -> Callable[[int], None] | None:
    """Refuse what the project's policy forbids; answer the check a streamed upload needs."""
    endpoint, values, path = ctx.endpoint, ctx.values, ctx.path
    rules = policy.get_policy(ctx.open_session(), project)
    if rules.require_approval and approvals.is_promotion(endpoint, ctx.method, values):
        # MLflow's alias and stage routes; Pave's own deployment routes check in the domain
        # (pave.serving.store), where every change of traffic passes.
        version, model = str(values.get("version", "")), ctx.scope.model or project
        approvals.check_promotion(stores.registry_store(), model, version, require_approval=True)
    if endpoint == "runs/create" and rules.max_concurrent_runs is not None:
        running = stores.running_runs(ctx.scope.experiment_ids, rules.max_concurrent_runs + 1)
        policy.check_quota(rules, "concurrent_runs", running)
    if rules.max_stored_bytes is None:
        return None
    if _DIRECT_UPLOADS.search(path) or endpoint == "artifacts/presigned-upload-url":
        policy.refuse_direct_upload(rules)
    uploading = (ctx.method == "PUT" and artifact_path(path)) or endpoint == "upload-artifact"
    if not uploading:
        return None
    used = policy.stored_bytes(ctx.open_session(), project, ctx.gate.artifact_store, ctx.scope.experiment_ids)
    policy.check_quota(rules, "stored_bytes", used, int(ctx.headers.get("content-length") or 0))
    # A chunked body declares no length: its bytes are counted as they arrive.
    return functools.partial(policy.check_quota, rules, "stored_bytes", used)
