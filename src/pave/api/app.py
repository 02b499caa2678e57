"""The control plane's ASGI application: Pave's API, the embedded MLflow, probes and metrics.

::

    SecurityMiddleware            Host, body limit, Origin, token, permission table
      └─ dispatch by path
           ├─ /mlflow/...         MLflow's own ASGI app (tracking, registry, artifacts, UI)
           └─ everything else     Pave's FastAPI app (/api/v1, /healthz, /readyz, /metrics)
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from pave import __version__
from pave.api import openapi
from pave.api.platform import Platform
from pave.api.routes import (
    alerts,
    approvals,
    audit,
    batch,
    costs,
    deployments,
    feedback,
    health,
    loop,
    members,
    monitoring,
    objects,
    projects,
    rollouts,
    runs,
    teams,
    tokens,
    whoami,
)
from pave.api.routes import client as client_routes
from pave.api.routes import platform as platform_routes
from pave.api.security import SecurityMiddleware
from pave.errors import InvalidInput, NotFound, PaveError
from pave.governance.egress import EgressPolicy
from pave.governance.ratelimit import RateLimiter
from pave.portal import routes as portal_routes
from pave.portal import sessions as portal_sessions
from pave.store.db import transaction
from pave.store.processes import CONTROL_PLANE, Heartbeat
from pave.tracking.server import MOUNT, mlflow_app


class Metrics:
    """The control plane's Prometheus registry (one per app, so tests can run several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "pave_http_requests", "Requests answered", ["area", "method", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "pave_http_request_duration_seconds", "Request latency", ["area"], registry=self.registry
        )

    def observe(self, method: str, path: str, status: int, seconds: float) -> None:
        area = "/".join(path.split("/", 4)[:4]) if path.startswith("/api/") else "/" + path.split("/")[1]
        self.requests.labels(area, method, str(status)).inc()
        self.latency.labels(area).observe(seconds)


def _error_response(error: PaveError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status_code)


def _label_source(platform: Platform) -> Any:
    """The rollouts' model-metric guard reads labelled outcomes per version from monitoring."""

    def labels(deployment: str, since: Any) -> Any:
        from pave.monitoring.performance import performance_by_version

        return performance_by_version(platform.settings, platform.sessions, deployment, since=since)

    return labels


class _Every:
    """True at most once per ``seconds`` (the first call included)."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.last = seconds, float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


@asynccontextmanager
async def _background_jobs(api: FastAPI) -> AsyncIterator[None]:
    """The platform's periodic work, in one thread, about every second: rollout steps, the closed
    loop, monitoring. With several control planes on one database only the lease holder runs it
    (``pave.store.lease``); the others take over when it dies."""
    import anyio

    from pave.automation import budgets, jobs
    from pave.automation import loop as closed_loop
    from pave.monitoring.scheduler import tick as monitoring_tick
    from pave.serving.rollouts import tick

    platform: Platform = api.state.platform
    stop = threading.Event()
    labels = _label_source(platform)
    lease = platform.lease
    heartbeat = Heartbeat(CONTROL_PLANE, platform.settings.advertised_url)
    deployment_usage = _Every(60.0)  # each minute: records the last full hour once per deployment

    def beat() -> None:
        if heartbeat.due():
            info = {"leader": lease.leading, "job_rounds": platform.job_rounds, "version": __version__}
            with transaction(platform.sessions) as session:
                heartbeat.beat(session, info)

    def loop() -> None:
        while not stop.wait(1.0):
            leading = lease.hold()
            try:
                beat()
            except Exception:
                logging.getLogger("pave").exception("the control plane's heartbeat failed")
            try:  # every control plane keeps its copy of the shipped inference log
                if platform.mirror is not None:
                    platform.mirror.pull(platform.sessions)
            except Exception:
                logging.getLogger("pave").exception("copying the shipped inference log failed")
            if not leading:
                continue
            platform.job_rounds += 1
            try:  # a failing job (the database away for a moment) must not end the thread
                tick(platform.sessions, platform.settings, performance=labels)
                closed_loop.tick(platform.sessions, platform.settings)
                if deployment_usage.due():
                    with transaction(platform.sessions) as session:
                        budgets.record_deployments(session, platform.settings)
                        budgets.record_storage(session, platform.settings)
            except Exception:
                logging.getLogger("pave").exception("a background job failed; retrying in a second")
            try:  # monitors, alerts and their deliveries (guarded inside too)
                monitoring_tick(platform.sessions, platform.settings)
            except Exception:
                logging.getLogger("pave").exception("the monitoring tick failed; retrying in a second")

    worker = threading.Thread(target=loop, name="pave-background-jobs", daemon=True)
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join(timeout=10)
        await anyio.to_thread.run_sync(jobs.stop_started)  # no job outlives its control plane's stop
        lease.release()


def _pave_api(platform: Platform, metrics: Metrics) -> FastAPI:
    api = FastAPI(
        title="Pave control plane",
        version=__version__,
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # served below, with assets from the package instead of a CDN
        redoc_url=None,
        lifespan=_background_jobs,
    )
    api.state.platform = platform
    api.state.metrics = metrics

    @api.exception_handler(PaveError)
    async def _pave_error(_: Request, exc: PaveError) -> JSONResponse:
        return _error_response(exc)

    @api.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]), "problem": err["msg"]} for err in exc.errors()
        ]
        first = problems[0] if problems else {"field": "body", "problem": "invalid"}
        return _error_response(
            InvalidInput(
                f"invalid request: {first['field']}: {first['problem']}",
                hint="see /api/v1/docs for the expected shape",
                details=problems,
            )
        )

    @api.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return _error_response(NotFound("no such route", hint="see /api/v1/docs"))
        error = PaveError(str(exc.detail))
        return JSONResponse(error.to_dict() | {"status": exc.status_code}, status_code=exc.status_code)

    for router in ROUTERS:
        api.include_router(router)
    openapi.install(api)
    _api_docs(api)
    # The portal's pages sit outside ROUTERS: its sign-in page is public and its pages redirect to
    # it instead of answering 401 (tests/portal cover them; the permission table has their rules).
    api.include_router(portal_routes.router)
    return api


DOCS_ASSETS = "/api/v1/docs/assets"


def _api_docs(api: FastAPI) -> None:
    """The interactive API docs (Swagger UI), its scripts and styles served from the installed package.

    A browser opens them with the portal's session (the gate redirects a signed-out one to the
    sign-in page); the page's own calls to the API send a token given with "Authorize".
    """
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    @api.get("/api/v1/docs", include_in_schema=False)
    async def _docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/api/v1/openapi.json",
            title="Pave control plane - API docs",
            swagger_js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{DOCS_ASSETS}/favicon-32x32.png",
        )

    api.mount(DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="api-docs-assets")


ROUTERS = (
    health.router,
    whoami.router,
    tokens.router,
    projects.router,
    runs.router,
    audit.router,
    members.router,
    approvals.router,
    deployments.router,
    rollouts.router,
    loop.router,
    objects.router,
    platform_routes.router,
    feedback.router,
    monitoring.router,
    alerts.router,
    teams.router,
    teams.project_router,
    costs.router,
    batch.router,
    client_routes.router,
)
_PARAM = re.compile(r"\{[^}]+\}|<[^>]+>")


def route_inventory() -> list[tuple[str, str]]:
    """Every (method, concrete path) the control plane serves, MLflow's included.

    Path parameters are filled with ``1``. Used by the tests that prove every route requires a
    token and is covered by the permission table.
    """
    from fastapi.routing import APIRoute
    from mlflow.server import app as mlflow_flask

    found: set[tuple[str, str]] = {("GET", "/api/v1/openapi.json"), ("GET", "/api/v1/docs")}
    for router in ROUTERS:
        for route in router.routes:
            if isinstance(route, APIRoute):
                found.update((m, route.path) for m in route.methods or ())
    for route in mlflow_app().routes:
        if isinstance(route, APIRoute) and route.path.startswith(MOUNT):
            found.update((m, route.path) for m in route.methods or ())
    for rule in mlflow_flask.url_map.iter_rules():
        if rule.rule.startswith(MOUNT):
            found.update((m, rule.rule) for m in (rule.methods or set()) - {"HEAD", "OPTIONS"})
    return sorted((method, _PARAM.sub("1", path)) for method, path in found)


class _Dispatch:
    """Send ``/mlflow`` traffic to MLflow with the full path (MLflow is built with that prefix)."""

    def __init__(self, pave: ASGIApp, mlflow: ASGIApp) -> None:
        self.pave = pave
        self.mlflow = mlflow

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope.get("path", "")
        if scope["type"] == "http" and (path == MOUNT or path.startswith(MOUNT + "/")):
            await self.mlflow(scope, receive, send)
        else:
            await self.pave(scope, receive, send)


def create_app(platform: Platform) -> Any:
    """The whole control plane as one ASGI app."""
    metrics = Metrics()
    metrics.registry.register(platform_routes.PlatformCollector(platform))
    pave = _pave_api(platform, metrics)
    return SecurityMiddleware(
        _Dispatch(pave, mlflow_app()),
        sessions=platform.sessions,
        allowed_hosts=platform.settings.allowed_hosts,
        egress=EgressPolicy(allowed_networks=tuple(platform.settings.egress_allowed_networks)),
        max_body=platform.settings.max_request_bytes,
        max_upload=platform.settings.max_upload_bytes,
        on_request=metrics.observe,
        artifact_root=platform.settings.artifacts,
        browser_sessions=portal_sessions.principal_of_session,
        limiter=RateLimiter(platform.settings.rate_limits),
    )
