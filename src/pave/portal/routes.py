"""The portal's pages, served by the control plane at ``/`` (forms: :mod:`pave.portal.actions`).

Sign-in and sign-out, the catalog, a project, a model card, a deployment, the new-project form,
the audit trail and the platform numbers. :mod:`pave.portal.web` holds what they share.
"""

from __future__ import annotations

import uuid
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from pave.api.security import BROWSER_COOKIE
from pave.automation import platform_metrics
from pave.errors import Forbidden, InvalidInput, NotFound, Unauthenticated
from pave.governance import audit, sso
from pave.monitoring import incidents
from pave.portal import actions, charts, compare, sessions, views
from pave.portal import sso as sso_routes
from pave.portal.web import (
    STATIC,
    access_of,
    cookie_secure,
    local_path,
    may,
    mirror,
    page,
    platform_of,
    principal_of,
    projects_dir,
    read_form,
    render,
    router,
    run,
    session_id,
)
from pave.serving import rollouts
from pave.tracking.lineage import TAG_DATA_PREFIX

# importing the forms, the comparison and SSO registers them on the router
__all__ = ["actions", "compare", "router", "sso_routes"]


# --- sign-in -----------------------------------------------------------------------------------


@router.get("/signin")
async def signin_page(request: Request) -> Response:
    import secrets

    nonce = request.cookies.get(sessions.CSRF_COOKIE) or secrets.token_urlsafe(24)
    after = local_path(request.query_params.get("next"))
    response = render(request, "signin.html", signin_csrf=nonce, error=None, after=after)
    response.set_cookie(
        sessions.CSRF_COOKIE,
        nonce,
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request),
        path="/signin",
    )
    return response


@router.post("/signin")
async def signin(request: Request) -> Response:
    fields = await read_form(request, csrf=False)
    nonce = request.cookies.get(sessions.CSRF_COOKIE, "")
    if not nonce or fields.get("csrf") != nonce:
        error = Forbidden("the sign-in form expired", hint="reload the page and sign in again")
        return render(request, "signin.html", 403, signin_csrf=nonce, error=error, after="/")
    after = local_path(fields.get("next"))
    secret = fields.get("token", "")
    try:
        session_id, principal = await run(request, lambda s: sessions.sign_in(s, secret))
    except Unauthenticated as error:
        return render(request, "signin.html", 401, signin_csrf=nonce, error=error, after=after)
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
    await anyio.to_thread.run_sync(audit.append, platform_of(request).engine, entry)
    response = RedirectResponse(after, status_code=303)
    response.set_cookie(
        BROWSER_COOKIE,
        session_id,
        max_age=int(sessions.LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request),
        path="/",
    )
    response.delete_cookie(sessions.CSRF_COOKIE, path="/signin")
    return response


@router.post("/signout")
@page
async def signout(request: Request) -> Response:
    await read_form(request)
    sid = session_id(request)
    token_id = principal_of(request).token_id

    def end(session: Any) -> None:
        sessions.sign_out(session, sid)
        sso.end(session, token_id)  # an SSO session's token ends with it

    await run(request, end)
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
    platform, access = platform_of(request), access_of(request)
    q = request.query_params
    filters = {k: q.get(k, "")[:100] for k in ("q", "status", "template", "owner")}

    def work(session: Any) -> list[views.CatalogEntry]:
        return views.catalog(session, platform.settings, access)

    entries = await run(request, work)
    shown = views.filter_catalog(entries, **filters)
    return render(
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
    mirror(request, "GET", f"/api/v1/projects/{name}", name)
    settings = platform_of(request).settings
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

    data = await run(request, work)
    runs = await anyio.to_thread.run_sync(lambda: views.runs(settings, name))
    versions = await anyio.to_thread.run_sync(lambda: views.versions(settings, name))
    experiment = await anyio.to_thread.run_sync(lambda: views.experiment_id(settings, name))
    metric_names = sorted({k for r in runs for k in r.metrics})
    chosen = metric if metric in metric_names else (metric_names[0] if metric_names else "")
    plot = charts.line_chart(
        f"{chosen or 'metric'} of each run, by the time it started",
        [
            charts.Series(
                chosen,
                [
                    (r.start_time / 1000, r.metrics[chosen])
                    for r in reversed(runs)
                    if chosen in r.metrics and r.start_time
                ],
            )
        ],
        x_kind="time",
        y_bounds=charts.bounds_of(chosen),
    )
    columns, edges = views.lineage_graph(runs, versions, data["deployment"])
    param_names = sorted({k for r in runs for k in r.params})[:8]
    folder = projects_dir(platform_of(request)) / name  # where a project made in the portal lives
    return render(
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
        notebook=views.starter_notebook(data["project"]) is not None,
        folder=str(folder) if folder.is_dir() else None,
        can_deploy=may(request, "PUT", f"/api/v1/projects/{name}/deployment", name),
    )


@router.get("/projects/{name}/notebook")
@page
async def notebook_download(request: Request, name: str) -> Response:
    """The starter notebook of the project's template, to open with `pave notebook`."""
    mirror(request, "GET", f"/api/v1/projects/{name}", name)
    project = await run(request, lambda s: views.get_project(s, name))
    found = views.starter_notebook(project)
    if found is None:
        raise NotFound(
            f"project {name}'s template ships no starter notebook",
            hint="run `pave template upgrade` in the project folder to add notebooks/explore.ipynb",
        )
    return Response(
        found.read_bytes(),
        media_type="application/x-ipynb+json",
        headers={"Content-Disposition": 'attachment; filename="explore.ipynb"'},
    )


@router.get("/projects/{name}/costs")
@page
async def costs_page(request: Request, name: str) -> Response:
    from datetime import UTC, datetime

    from pave.governance import costs

    mirror(request, "GET", f"/api/v1/projects/{name}/costs", name)
    settings = platform_of(request).settings

    def work(session: Any) -> dict[str, Any]:
        return {
            "project": views.get_project(session, name),
            "report": costs.report(session, settings, projects=[name]),
        }

    data = await run(request, work)
    found = data["report"]
    kinds = found.projects.get(name, {})
    days = sorted(found.days.get(name, {}).items())
    by_day = charts.line_chart(
        "cost per day (last 30 days)",
        [
            charts.Series(
                "cost", [(datetime.fromisoformat(d).replace(tzinfo=UTC).timestamp(), c) for d, c in days]
            )
        ],
        x_kind="time",
        x_title="day (UTC)",
        y_floor=0.0,
    )
    budget = found.budgets.get(name)
    by_kind = charts.bar_chart(
        "cost per kind (last 30 days)",
        [(kind, line.cost) for kind, line in sorted(kinds.items(), key=lambda kv: -kv[1].cost)],
    )
    return render(
        request,
        "costs.html",
        project=data["project"],
        kinds=kinds,
        total=found.total(name),
        budget=budget,
        prices=settings.prices,
        by_kind=by_kind,
        by_day=by_day,
    )


@router.get("/projects/{name}/tuning")
@page
async def tuning_page(request: Request, name: str) -> Response:
    mirror(request, "GET", f"/api/v1/projects/{name}/runs", name)
    settings = platform_of(request).settings
    project = await run(request, lambda s: views.get_project(s, name))
    studies = await anyio.to_thread.run_sync(lambda: views.tunings(settings, name))
    chosen = request.query_params.get("run", "")
    study = next((t for t in studies if t.run_id == chosen), studies[0] if studies else None)
    objective = importance = None
    if study is not None:
        points = [(t["number"], t["value"]) for t in study.trials if t["value"] is not None]
        best: list[tuple[float, float]] = []
        for number, value in points:
            better = max if study.direction == "maximize" else min
            best.append((number, value if not best else better(best[-1][1], value)))
        objective = charts.line_chart(
            f"{study.metric} by trial ({study.direction})",
            [charts.Series("trial", points), charts.Series("best so far", best)],
            x_title="trial",
            y_bounds=charts.bounds_of(study.metric),
        )
        importance = charts.bar_chart(
            "parameter importances (fANOVA)",
            sorted(study.importances.items(), key=lambda kv: -kv[1]),
        )
    return render(
        request,
        "tuning.html",
        project=project,
        studies=studies,
        study=study,
        objective=objective,
        importance=importance,
        experiment=await anyio.to_thread.run_sync(lambda: views.experiment_id(settings, name)),
    )


@router.get("/projects/{name}/models/{version}")
@page
async def model_page(request: Request, name: str, version: str) -> Response:
    mirror(request, "GET", f"/api/v1/projects/{name}/models", name)
    settings = platform_of(request).settings

    def work(session: Any) -> views.ModelCard:
        project = views.get_project(session, name)
        return views.model_card(session, settings, project, version)

    card = await run(request, work)
    metrics = dict(card.run.data.metrics) if card.run else {}
    gate_bars = charts.bar_chart(
        "metrics of this version",
        [(k, float(v)) for k, v in sorted(metrics.items())][:12],
    )
    return render(
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
        can_deploy=may(request, "PUT", f"/api/v1/projects/{name}/deployment", name),
        can_approve=may(request, "POST", f"/api/v1/projects/{name}/approvals", name),
    )


# --- deployment ----------------------------------------------------------------------------------


@router.get("/projects/{name}/deployment")
@page
async def deployment_page(request: Request, name: str) -> Response:
    mirror(request, "GET", f"/api/v1/projects/{name}/deployment", name)
    platform = platform_of(request)
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

    data = await run(request, work)
    deployment = data["deployment"]
    traffic = await anyio.to_thread.run_sync(lambda: views.traffic(settings, name))
    performance = await anyio.to_thread.run_sync(lambda: views.performance(settings, platform.sessions, name))
    versions = await anyio.to_thread.run_sync(lambda: views.versions(settings, name))
    shares = [
        (str(v["version"]), float(v.get("weight", 0)))
        for v in (deployment.spec["versions"] if deployment else [])
    ]
    running = next((r for r in data["rollouts"] if r.state == "running"), None)
    waiting = (
        await anyio.to_thread.run_sync(lambda: rollouts.waiting_for(running, settings.inference_log_dir))
        if running is not None
        else None
    )
    perf_metrics = sorted({m for metrics in performance.values() for m in metrics})
    plots = {
        "split": charts.traffic_split("traffic split", shares),
        "rate": charts.line_chart(
            "requests per minute (last hour)",
            [charts.Series("requests", traffic.requests)],
            x_kind="time",
            x_range=traffic.window,
            y_floor=0,
        ),
        "errors": charts.line_chart(
            "error rate (last hour)",
            [charts.Series("error rate", traffic.errors)],
            x_kind="time",
            x_range=traffic.window,
            y_floor=0,
            y_bounds=(0.0, 1.0),
        ),
        "latency": charts.line_chart(
            "latency in ms (last hour)",
            [charts.Series("p50", traffic.p50), charts.Series("p99", traffic.p99)],
            x_kind="time",
            x_range=traffic.window,
            y_floor=0,
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
    allowed = may(request, "PUT", f"/api/v1/projects/{name}/deployment", name)
    return render(
        request,
        "deployment.html",
        **data,
        traffic=traffic,
        plots=plots,
        running=running,
        waiting=waiting,
        shares=shares,
        versions=versions,
        performance=performance,
        can_deploy=allowed,
        can_rollout=may(request, "POST", f"/api/v1/projects/{name}/rollout", name),
    )


def _shared_threshold(found: list[views.FeatureDrift]) -> float | None:
    """The threshold line of the drift chart: only when every bar is the same method and limit."""
    limits = {(d.method, d.threshold) for d in found}
    return found[0].threshold if len(limits) == 1 else None


@router.get("/new")
@page
async def new_page(request: Request) -> Response:
    mirror(request, "POST", "/api/v1/projects", None)
    from pave.templates import list_templates

    return render(
        request,
        "new.html",
        templates=list_templates(),
        where=projects_dir(platform_of(request)),
        form={},
        created=None,
        error=None,
    )


# --- audit, platform -------------------------------------------------------------------------------


@router.get("/audit")
@page
async def audit_page(request: Request) -> Response:
    mirror(request, "GET", "/api/v1/audit", None)
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

    rows, verified = await run(request, work)
    return render(request, "audit.html", rows=rows, filters=filters, verified=verified)


@router.get("/incidents")
@page
async def incidents_page(request: Request) -> Response:
    """Incidents (one per episode of a monitor's trouble) of the projects the caller may read."""
    mirror(request, "GET", "/api/v1/incidents", None)
    access = access_of(request)
    show_all = request.query_params.get("status") == "all"

    def work(session: Any) -> list[dict[str, Any]]:
        rows = incidents.list_incidents(session, include_resolved=show_all)
        rows = [r for r in rows if access.sees(r.project)]
        sent = incidents.incident_deliveries(session, [r.id for r in rows])
        return [incidents.incident_dict(r) | {"deliveries": sent.get(r.id, [])} for r in rows]

    found = await run(request, work)
    return render(request, "incidents.html", incidents=found, show_all=show_all)


@router.get("/platform")
@page
async def platform_page(request: Request) -> Response:
    platform = platform_of(request)

    def work(session: Any) -> platform_metrics.PlatformMetrics:
        return platform_metrics.compute(session, tracking_uri=platform.settings.mlflow_db_url)

    numbers = await run(request, work)

    def weekly(label: str, points: list[platform_metrics.WeekPoint]) -> Any:
        return charts.line_chart(
            label,
            [charts.Series(label, [(_day(p.week), p.value) for p in points])],
            x_kind="time",
            x_title="week (UTC)",
            y_floor=0,
        )

    plots = {
        "projects": weekly("projects (cumulative, by week)", numbers.projects_by_week),
        "users": weekly("active users per week", numbers.active_users_by_week),
        "runs": weekly("runs per week", numbers.runs_by_week),
        "deploys": weekly("deployments and rollouts per week", numbers.deployments_by_week),
    }
    return render(request, "platform.html", m=numbers, plots=plots)


def _day(iso: str) -> float:
    """Epoch seconds of an ISO date (midnight UTC)."""
    from datetime import UTC, datetime

    return datetime.fromisoformat(iso).replace(tzinfo=UTC).timestamp()
