"""The portal's pages and forms, served by the control plane at ``/``.

Every request already passed :class:`pave.api.security.SecurityMiddleware`: Host allow-list, the
permission table (by the caller's token role), the Origin check, the session cookie standing for
its token, and the audit record of every POST or refusal. Here each page and form also checks the
caller's role on the project it concerns, with the permission table's rule for the API route it
mirrors (:func:`_mirror`), so a role can do the same in the browser as with the API and no more;
buttons are rendered only when that check would pass. Every form carries the session's CSRF token.
"""

from __future__ import annotations

import functools
import re
import shutil
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select

from pave import __version__
from pave.api.platform import Platform
from pave.api.security import ACCESS_KEY, BROWSER_COOKIE, PRINCIPAL_KEY, SCOPE_KEY
from pave.automation import platform_metrics
from pave.errors import Conflict, Forbidden, InvalidInput, NotFound, PaveError, Unauthenticated
from pave.governance import audit
from pave.governance.access import Access
from pave.governance.permissions import authorize, required_action
from pave.governance.tokens import Principal
from pave.portal import charts, sessions, views
from pave.store.tables import Project, utcnow
from pave.tracking.lineage import TAG_DATA_PREFIX

router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)
NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_ENV = Environment(
    loader=PackageLoader("pave.portal", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
_ENV.globals.update(fmt=charts.fmt, version=__version__, statuses=views.STATUSES)
_ENV.filters["when"] = lambda v: (
    v.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(v, datetime)
    else datetime.fromtimestamp(v / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    if isinstance(v, int | float)
    else (v or "-")
)

_EVENT_KEYS = ("at", "event", "reason", "test", "by", "to")


def _details(event: dict[str, Any]) -> str:
    """The numbers of a rollout event (guard results), whatever their shape, as one line of text."""

    def show(value: Any) -> str:
        if isinstance(value, dict):
            return ", ".join(f"{k}={show(v)}" for k, v in value.items())
        if isinstance(value, float):
            return charts.fmt(value)
        return str(value)

    return "; ".join(f"{k}: {show(v)}" for k, v in event.items() if k not in _EVENT_KEYS)[:1000]


_ENV.filters["details"] = _details

# --- plumbing ----------------------------------------------------------------------------------


def _platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def _principal(request: Request) -> Principal:
    principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
    if principal is None:
        raise Unauthenticated("you are signed out", hint="sign in at /signin")
    return principal


def _access(request: Request) -> Access:
    access: Access | None = request.scope.get(ACCESS_KEY)
    if access is None:
        raise Unauthenticated("you are signed out", hint="sign in at /signin")
    return access


def _session_id(request: Request) -> str:
    return request.cookies.get(BROWSER_COOKIE, "")


def _mirror(request: Request, method: str, api_path: str, project: str | None) -> None:
    """Allow only what the API route ``method api_path`` would allow this caller on ``project``.

    Raises:
        Forbidden: the caller's role on the project does not include the action.
    """
    action = required_action(method, api_path) or "admin"  # no rule: deny like the API
    scope = request.scope.get(SCOPE_KEY)
    if project is not None and scope is not None:
        scope.add(project)  # the audit record names the project
    authorize(
        _principal(request),
        _access(request).actions(project),
        action,
        request.method,
        request.url.path,
        project,
    )


def _may(request: Request, method: str, api_path: str, project: str | None) -> bool:
    action = required_action(method, api_path) or "admin"
    access = _access(request)
    return access.principal.is_admin or action in access.actions(project)


def _render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
    session_id = _session_id(request)
    context.setdefault("flash", request.query_params.get("done", "")[:200])
    html = _ENV.get_template(template).render(
        me=principal,
        csrf=sessions.csrf_token(session_id) if session_id else "",
        can_create=principal is not None and _may(request, "POST", "/api/v1/projects", None),
        can_audit=principal is not None and _may(request, "GET", "/api/v1/audit", None),
        path=request.url.path,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={"Content-Security-Policy": CSP})


def page(
    handler: Callable[..., Awaitable[Response]],
) -> Callable[..., Awaitable[Response]]:
    """Render a PaveError as an error page with its status (the middleware audits refusals)."""

    @functools.wraps(handler)
    async def wrapped(request: Request, *args: Any, **kwargs: Any) -> Response:
        try:
            return await handler(request, *args, **kwargs)
        except PaveError as error:
            if isinstance(error, Unauthenticated):
                return RedirectResponse("/signin", status_code=303)
            return _render(request, "error.html", error.status_code, error=error)

    return wrapped


async def _form(request: Request, *, csrf: bool = True) -> dict[str, str]:
    """The urlencoded form of a POST; with ``csrf``, refuse it unless it carries the session's token."""
    body = await request.body()
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if csrf and not sessions.csrf_ok(_session_id(request), fields.get("csrf")):
        raise Forbidden(
            "the form's CSRF token is missing or wrong", hint="reload the page and submit the form again"
        )
    return fields


def _run(request: Request, work: Callable[[Any], Any]) -> Awaitable[Any]:
    """Run ``work(session)`` in a committed transaction, off the event loop."""
    platform = _platform(request)

    def call() -> Any:
        with platform.sessions() as session, session.begin():
            return work(session)

    return anyio.to_thread.run_sync(call)


def _back(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': done})}", status_code=303)


def _cookie_secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


# --- sign-in -----------------------------------------------------------------------------------


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    import secrets

    nonce = request.cookies.get(sessions.CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = _render(request, "signin.html", signin_csrf=nonce, error=None)
    response.set_cookie(
        sessions.CSRF_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=_cookie_secure(request),
        path="/signin",
    )
    return response


@router.post("/signin")
async def signin(request: Request) -> Response:
    fields = await _form(request, csrf=False)
    nonce = request.cookies.get(sessions.CSRF_COOKIE, "")
    if not nonce or fields.get("csrf") != nonce:
        error = Forbidden("the sign-in form expired", hint="reload the page and sign in again")
        return _render(request, "signin.html", 403, signin_csrf=nonce, error=error)
    secret = fields.get("token", "")
    try:
        session_id, principal = await _run(request, lambda s: sessions.sign_in(s, secret))
    except Unauthenticated as error:
        return _render(request, "signin.html", 401, signin_csrf=nonce, error=error)
    # A refused sign-in is audited by the middleware (401); a successful one is recorded here.
    entry = audit.AuditEntry(
        method="POST",
        path="/signin",
        status=303,
        request_id=uuid.uuid4().hex,
        action="signin",
        identity=principal.identity,
        token_id=principal.token_id,
        client=request.client.host if request.client else None,
    )
    await anyio.to_thread.run_sync(audit.append, _platform(request).engine, entry)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(
        BROWSER_COOKIE,
        session_id,
        max_age=int(sessions.LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=_cookie_secure(request),
        path="/",
    )
    response.delete_cookie(sessions.CSRF_COOKIE, path="/signin")
    return response


@router.post("/signout")
@page
async def signout(request: Request) -> Response:
    await _form(request)
    session_id = _session_id(request)
    await _run(request, lambda s: sessions.sign_out(s, session_id))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(BROWSER_COOKIE, path="/")
    return response


@router.get("/static/portal.{kind}")
async def static(kind: str) -> Response:
    if kind not in ("css", "js"):
        raise NotFound("no such file")
    media = {"css": "text/css", "js": "text/javascript"}[kind]
    return Response(
        (STATIC / f"portal.{kind}").read_bytes(),
        media_type=media,
        headers={"Cache-Control": "public, max-age=3600"},
    )


# --- catalog, project, model card ----------------------------------------------------------------


@router.get("/")
@page
async def catalog(request: Request) -> Response:
    platform, access = _platform(request), _access(request)
    q = request.query_params
    filters = {k: q.get(k, "")[:100] for k in ("q", "status", "template", "owner")}

    def work(session: Any) -> list[views.CatalogEntry]:
        return views.catalog(session, platform.settings, access)

    entries = await _run(request, work)
    shown = views.filter_catalog(entries, **filters)
    return _render(
        request,
        "catalog.html",
        entries=shown,
        total=len(entries),
        filters=filters,
        owners=sorted({e.owner for e in entries}),
        templates=sorted({e.template for e in entries if e.template}),
        deployed=[e for e in shown if e.deployment],
        models=[e for e in shown if e.latest_version],
    )


@router.get("/projects/{name}")
@page
async def project_page(request: Request, name: str) -> Response:
    _mirror(request, "GET", f"/api/v1/projects/{name}", name)
    settings = _platform(request).settings
    metric = request.query_params.get("metric", "")

    def work(session: Any) -> dict[str, Any]:
        project = views.get_project(session, name)
        deployment = views.deployment_of(session, name)
        return {
            "project": project,
            "deployment": deployment,
            "alerts": views.alerts(session, name),
            "rollouts": views.rollouts_of(session, name, 1),
        }

    data = await _run(request, work)
    runs = await anyio.to_thread.run_sync(lambda: views.runs(settings, name))
    versions = await anyio.to_thread.run_sync(lambda: views.versions(settings, name))
    experiment = await anyio.to_thread.run_sync(lambda: views.experiment_id(settings, name))
    metric_names = sorted({k for r in runs for k in r.metrics})
    chosen = metric if metric in metric_names else (metric_names[0] if metric_names else "")
    ordered = list(reversed(runs))
    plot = charts.line_chart(
        f"{chosen or 'metric'} across runs (oldest to newest)",
        [
            charts.Series(
                chosen, [(i, r.metrics[chosen]) for i, r in enumerate(ordered) if chosen in r.metrics]
            )
        ],
        x_labels=("first run", "latest run") if len(ordered) > 1 else (),
    )
    columns, edges = views.lineage_graph(runs, versions, data["deployment"])
    param_names = sorted({k for r in runs for k in r.params})[:8]
    return _render(
        request,
        "project.html",
        **data,
        runs=runs,
        versions=versions,
        experiment=experiment,
        metric_names=metric_names,
        chosen=chosen,
        param_names=param_names,
        plot=plot,
        lineage=charts.lineage(columns, edges),
        can_deploy=_may(request, "PUT", f"/api/v1/projects/{name}/deployment", name),
    )


@router.get("/projects/{name}/models/{version}")
@page
async def model_page(request: Request, name: str, version: str) -> Response:
    _mirror(request, "GET", f"/api/v1/projects/{name}/models", name)
    settings = _platform(request).settings

    def work(session: Any) -> views.ModelCard:
        project = views.get_project(session, name)
        return views.model_card(session, settings, project, version)

    card = await _run(request, work)
    metrics = dict(card.run.data.metrics) if card.run else {}
    gate_bars = charts.bar_chart(
        "metrics of this version",
        [(k, float(v)) for k, v in sorted(metrics.items())][:12],
    )
    return _render(
        request,
        "model.html",
        card=card,
        metrics=metrics,
        gate_bars=gate_bars,
        params=dict(card.run.data.params) if card.run else {},
        tags=dict(card.run.data.tags) if card.run else {},
        data_versions={
            k.removeprefix(TAG_DATA_PREFIX): v
            for k, v in {**(card.run.data.tags if card.run else {}), **card.version.tags}.items()
            if k.startswith(TAG_DATA_PREFIX)
        },
        experiment=card.run.info.experiment_id if card.run else None,
        can_deploy=_may(request, "PUT", f"/api/v1/projects/{name}/deployment", name),
    )


# --- deployment ----------------------------------------------------------------------------------


@router.get("/projects/{name}/deployment")
@page
async def deployment_page(request: Request, name: str) -> Response:
    _mirror(request, "GET", f"/api/v1/projects/{name}/deployment", name)
    platform = _platform(request)
    settings = platform.settings

    def work(session: Any) -> dict[str, Any]:
        project = views.get_project(session, name)
        return {
            "project": project,
            "deployment": views.deployment_of(session, name),
            "rollouts": views.rollouts_of(session, name),
            "alerts": views.alerts(session, name),
            "drift": views.drift(session, name),
        }

    data = await _run(request, work)
    deployment = data["deployment"]
    traffic = await anyio.to_thread.run_sync(lambda: views.traffic(settings, name))
    performance = await anyio.to_thread.run_sync(lambda: views.performance(settings, platform.sessions, name))
    versions = await anyio.to_thread.run_sync(lambda: views.versions(settings, name))
    shares = [
        (str(v["version"]), float(v.get("weight", 0)))
        for v in (deployment.spec["versions"] if deployment else [])
    ]
    running = next((r for r in data["rollouts"] if r.state == "running"), None)
    perf_metrics = sorted({m for metrics in performance.values() for m in metrics})
    plots = {
        "split": charts.traffic_split("traffic split", shares),
        "rate": charts.line_chart(
            "requests per minute (last hour)",
            [charts.Series("requests", traffic.requests)],
            traffic.labels,
            0,
            traffic.window,
        ),
        "errors": charts.line_chart(
            "error rate (last hour)",
            [charts.Series("error rate", traffic.errors)],
            traffic.labels,
            0,
            traffic.window,
        ),
        "latency": charts.line_chart(
            "latency in ms (last hour)",
            [charts.Series("p50", traffic.p50), charts.Series("p99", traffic.p99)],
            traffic.labels,
            0,
            traffic.window,
        ),
        "drift": charts.bar_chart(
            "drift statistic per feature (latest check of each monitor)",
            [
                (f"{d.feature} ({d.method}{', drifted' if d.drifted else ''})", d.statistic)
                for d in data["drift"]
            ],
            limit=_shared_threshold(data["drift"]),
        )
        if data["drift"]
        else charts.empty("drift per feature", "no drift monitors yet: add one under monitor: in pave.yaml"),
        "performance": charts.bar_chart(
            f"{perf_metrics[0]} per version (last 7 days, labelled requests)",
            [(f"v{v}", m[perf_metrics[0]]) for v, m in performance.items() if perf_metrics[0] in m],
        )
        if perf_metrics
        else charts.empty("performance per version", "no labelled requests yet"),
    }
    may = _may(request, "PUT", f"/api/v1/projects/{name}/deployment", name)
    return _render(
        request,
        "deployment.html",
        **data,
        traffic=traffic,
        plots=plots,
        running=running,
        shares=shares,
        versions=versions,
        performance=performance,
        can_deploy=may,
        can_rollout=_may(request, "POST", f"/api/v1/projects/{name}/rollout", name),
    )


def _shared_threshold(found: list[views.FeatureDrift]) -> float | None:
    """The threshold line of the drift chart: only when every bar is the same method and limit."""
    limits = {(d.method, d.threshold) for d in found}
    return found[0].threshold if len(limits) == 1 else None


def _approved_if_required(session: Any, settings: Any, project: str, versions: list[str]) -> None:
    """The project's policy may require an approval before a version takes production traffic."""
    from pave.governance import approvals
    from pave.governance.policy import get_policy

    if not get_policy(session, project).require_approval:
        return
    client = views.mlflow_client(settings)
    for version in versions:
        approvals.check_promotion(client, project, version, require_approval=True)


@router.post("/projects/{name}/deploy")
@page
async def deploy(request: Request, name: str) -> Response:
    fields = await _form(request)
    _mirror(request, "PUT", f"/api/v1/projects/{name}/deployment", name)
    platform, actor = _platform(request), _principal(request).identity
    version = fields.get("version", "").strip()
    if not version.isdigit():
        raise InvalidInput("choose the model version to deploy", hint="pick a version in the list")

    def work(session: Any) -> None:
        from pave.governance.policy import check_quota, get_policy
        from pave.serving import store

        views.get_project(session, name)
        if views.deployment_of(session, name) is None:
            check_quota(get_policy(session, name), "deployments", store.count_deployments(session, name))
        _approved_if_required(session, platform.settings, name, [version])
        store.deploy(session, platform.settings, project=name, actor=actor, version=version)

    await _run(request, work)
    return _back(f"/projects/{quote(name)}/deployment", f"deployed version {version}")


@router.post("/projects/{name}/undeploy")
@page
async def undeploy(request: Request, name: str) -> Response:
    await _form(request)
    _mirror(request, "DELETE", f"/api/v1/projects/{name}/deployment", name)

    def work(session: Any) -> None:
        from pave.serving import store

        store.undeploy(session, name)

    await _run(request, work)
    return _back(f"/projects/{quote(name)}", "undeployed")


@router.post("/projects/{name}/weights")
@page
async def weights(request: Request, name: str) -> Response:
    fields = await _form(request)
    _mirror(request, "PUT", f"/api/v1/projects/{name}/deployment", name)
    platform = _platform(request)
    actor = _principal(request).identity

    def work(session: Any) -> str:
        from pave.serving import store

        row = store.get_deployment(session, name)
        if any(r.state == "running" for r in views.rollouts_of(session, name, 1)):
            raise Conflict(
                f"{name} is rolling out: its rollout sets the weights",
                hint="promote or roll back the rollout first",
            )
        spec = dict(row.spec)
        new = []
        for ref in spec["versions"]:
            raw = fields.get(f"weight_{ref['version']}", "")
            try:
                weight = float(raw)
            except ValueError:
                raise InvalidInput(
                    f"the weight of version {ref['version']} is not a number: {raw[:20]!r}",
                    hint="give each version a percentage; together they make 100",
                ) from None
            if not 0 <= weight <= 100:
                raise InvalidInput(f"the weight of version {ref['version']} is not between 0 and 100")
            new.append({**ref, "weight": weight})
        if abs(sum(r["weight"] for r in new) - 100) > 1e-6:
            raise InvalidInput("the weights must add up to 100", hint="e.g. 90 and 10")
        kept = [r for r in new if r["weight"] > 0]
        _approved_if_required(session, platform.settings, name, [str(r["version"]) for r in kept])
        spec["versions"] = kept
        store.replace_spec(session, row, spec)
        row.updated_by = actor
        return ", ".join(f"v{r['version']} {charts.fmt(r['weight'])}%" for r in kept)

    done = await _run(request, work)
    return _back(f"/projects/{quote(name)}/deployment", f"traffic set: {done}")


@router.post("/projects/{name}/rollout")
@page
async def start_rollout(request: Request, name: str) -> Response:
    fields = await _form(request)
    _mirror(request, "POST", f"/api/v1/projects/{name}/rollout", name)
    platform, actor = _platform(request), _principal(request).identity
    version = fields.get("version", "").strip()
    policy: dict[str, Any] = {}
    try:
        if fields.get("steps", "").strip():
            policy["steps"] = [float(s) for s in fields["steps"].split(",") if s.strip()]
        if fields.get("interval", "").strip():
            policy["interval_seconds"] = float(fields["interval"])
    except ValueError:
        raise InvalidInput(
            "steps are percentages separated by commas and the interval a number of seconds",
            hint="steps 10,50,100 and interval 60",
        ) from None

    def work(session: Any) -> None:
        from pave.serving import rollouts

        _approved_if_required(session, platform.settings, name, [version])
        rollouts.start(session, platform.settings, project=name, version=version, actor=actor, policy=policy)

    await _run(request, work)
    return _back(f"/projects/{quote(name)}/deployment", f"rollout of version {version} started")


async def _finish(request: Request, name: str, verb: str) -> Response:
    fields = await _form(request)
    _mirror(request, "POST", f"/api/v1/projects/{name}/rollout/{verb}", name)
    platform, actor = _platform(request), _principal(request).identity
    reason = fields.get("reason", "").strip()[:500] or f"{verb} from the portal"

    def work(session: Any) -> None:
        from pave.serving import rollouts

        row = rollouts.current(session, name)
        action = rollouts.promote if verb == "promote" else rollouts.rollback
        action(session, platform.settings, row, reason=reason, by=actor)

    await _run(request, work)
    done = "promoted" if verb == "promote" else "rolled back"
    return _back(f"/projects/{quote(name)}/deployment", done)


@router.post("/projects/{name}/promote")
@page
async def promote(request: Request, name: str) -> Response:
    return await _finish(request, name, "promote")


@router.post("/projects/{name}/rollback")
@page
async def rollback(request: Request, name: str) -> Response:
    return await _finish(request, name, "rollback")


# --- new project -----------------------------------------------------------------------------------


def projects_dir(platform: Platform) -> Path:
    """Where projects created in the portal live on the server: ``PAVE_HOME/projects/NAME``."""
    return platform.settings.home / "projects"


@router.get("/new")
@page
async def new_page(request: Request) -> Response:
    _mirror(request, "POST", "/api/v1/projects", None)
    from pave.templates import list_templates

    return _render(
        request,
        "new.html",
        templates=list_templates(),
        where=projects_dir(_platform(request)),
        form={},
        created=None,
        error=None,
    )


@router.post("/new")
@page
async def new_project(request: Request) -> Response:
    from pave.templates import generate, get_template, list_templates

    fields = await _form(request)
    _mirror(request, "POST", "/api/v1/projects", None)
    platform, principal = _platform(request), _principal(request)
    name = fields.get("name", "").strip()
    description = fields.get("description", "").strip()[:2000]
    where = projects_dir(platform)
    try:
        if not NAME.fullmatch(name):
            raise InvalidInput(
                f"{name[:80]!r} is not a project name",
                hint="use 2-63 lower-case letters, digits and dashes, starting with a letter or digit",
            )
        info = get_template(fields.get("template", ""))

        def exists(session: Any) -> bool:
            return session.scalar(select(Project.id).where(Project.name == name)) is not None

        if await _run(request, exists):
            raise Conflict(f"project {name!r} exists already", hint="pick another name")
        target = where / name
        answers = {
            "project_name": name,
            "owner": principal.identity,
            "description": description or info.description,
        }
        path = await anyio.to_thread.run_sync(lambda: generate(info.name, target, answers))

        def register(session: Any) -> None:
            session.add(
                Project(
                    name=name,
                    owner=principal.identity,
                    description=answers["description"],
                    template=info.name,
                    template_version=info.version,
                    created_by=principal.identity,
                    created_at=utcnow(),
                    labels={},
                )
            )
            session.flush()

        try:
            await _run(request, register)
        except Exception:
            shutil.rmtree(path, ignore_errors=True)  # undo only what this request created
            raise
    except PaveError as error:
        return _render(
            request,
            "new.html",
            error.status_code,
            templates=list_templates(),
            where=where,
            form=fields,
            created=None,
            error=error,
        )
    return _render(
        request,
        "new.html",
        201,
        templates=list_templates(),
        where=where,
        form={},
        created={"name": name, "path": str(path), "template": info.name, "version": info.version},
        error=None,
    )


# --- audit, platform -------------------------------------------------------------------------------


@router.get("/audit")
@page
async def audit_page(request: Request) -> Response:
    _mirror(request, "GET", "/api/v1/audit", None)
    q = request.query_params
    filters = {k: q.get(k, "")[:200] for k in ("identity", "project", "outcome", "since", "q")}
    if filters["outcome"] not in ("", "allowed", "denied", "failed"):
        raise InvalidInput("outcome is allowed, denied or failed")

    def work(session: Any) -> tuple[list[Any], Any]:
        rows = views.audit_rows(
            session,
            identity=filters["identity"],
            project=filters["project"],
            outcome=filters["outcome"],
            since=filters["since"],
            q=filters["q"],
        )
        return rows, audit.verify(session)

    rows, verified = await _run(request, work)
    return _render(request, "audit.html", rows=rows, filters=filters, verified=verified)


@router.get("/platform")
@page
async def platform_page(request: Request) -> Response:
    platform = _platform(request)

    def work(session: Any) -> platform_metrics.PlatformMetrics:
        return platform_metrics.compute(session, tracking_uri=platform.settings.mlflow_db_url)

    numbers = await _run(request, work)

    def weekly(label: str, points: list[platform_metrics.WeekPoint]) -> Any:
        return charts.line_chart(
            label,
            [charts.Series(label, [(i, p.value) for i, p in enumerate(points)])],
            (points[0].week, points[-1].week) if points else (),
            0,
        )

    plots = {
        "projects": weekly("projects (cumulative, by week)", numbers.projects_by_week),
        "users": weekly("active users per week", numbers.active_users_by_week),
        "runs": weekly("runs per week", numbers.runs_by_week),
        "deploys": weekly("deployments and rollouts per week", numbers.deployments_by_week),
    }
    return _render(request, "platform.html", m=numbers, plots=plots)
