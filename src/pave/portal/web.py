"""What every portal page and form shares: templates, the caller, the permission check, forms.

Every request already passed :class:`pave.api.security.SecurityMiddleware`: Host allow-list, the
permission table (by the caller's token role), the Origin check, the session cookie standing for
its token, and the audit record of every POST or refusal. Here each page and form also checks the
caller's role on the project it concerns, with the permission table's rule for the API route it
mirrors (:func:`mirror`), so a role can do the same in the browser as with the API and no more;
buttons are rendered only when :func:`may` says so. Every form carries the session's CSRF token
(:func:`read_form` refuses it otherwise).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape

from pave import __version__
from pave.api.platform import Platform
from pave.api.security import ACCESS_KEY, BROWSER_COOKIE, PRINCIPAL_KEY, SCOPE_KEY
from pave.errors import Forbidden, PaveError, Unauthenticated
from pave.governance.access import Access
from pave.governance.permissions import authorize, required_action
from pave.governance.tokens import Principal
from pave.portal import charts, sessions, views

# One router for the pages (pave.portal.routes) and the forms (pave.portal.actions).
router = APIRouter(include_in_schema=False)
STATIC = Path(__file__).resolve().parent / "static"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'; connect-src 'self'"
)
NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
ENV = Environment(
    loader=PackageLoader("pave.portal", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)
ENV.globals.update(fmt=charts.fmt, version=__version__, statuses=views.STATUSES)
ENV.filters["when"] = lambda v: (
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


ENV.filters["details"] = _details

# --- plumbing ----------------------------------------------------------------------------------


def platform_of(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def principal_of(request: Request) -> Principal:
    principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
    if principal is None:
        raise Unauthenticated("you are signed out", hint="sign in at /signin")
    return principal


def access_of(request: Request) -> Access:
    access: Access | None = request.scope.get(ACCESS_KEY)
    if access is None:
        raise Unauthenticated("you are signed out", hint="sign in at /signin")
    return access


def session_id(request: Request) -> str:
    return request.cookies.get(BROWSER_COOKIE, "")


def mirror(request: Request, method: str, api_path: str, project: str | None) -> None:
    """Allow only what the API route ``method api_path`` would allow this caller on ``project``.

    Raises:
        Forbidden: the caller's role on the project does not include the action.
    """
    action = _action(method, api_path)
    scope = request.scope.get(SCOPE_KEY)
    if project is not None and scope is not None:
        scope.add(project)  # the audit record names the project
    authorize(
        principal_of(request),
        access_of(request).actions(project),
        action,
        request.method,
        request.url.path,
        project,
    )


def may(request: Request, method: str, api_path: str, project: str | None) -> bool:
    """Whether :func:`mirror` would allow it: decides which buttons a page shows."""
    action = _action(method, api_path)
    access = access_of(request)
    return access.principal.is_admin or action in access.actions(project)


def _action(method: str, api_path: str) -> str:
    """The permission the API route needs; a route with no rule needs admin, as the API denies it."""
    return required_action(method, api_path) or "admin"


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    principal: Principal | None = request.scope.get(PRINCIPAL_KEY)
    sid = session_id(request)
    context.setdefault("flash", request.query_params.get("done", "")[:200])
    settings = platform_of(request).settings
    html = ENV.get_template(template).render(
        sso_enabled=bool(settings.oidc_issuer and settings.oidc_client_id),
        me=principal,
        csrf=sessions.csrf_token(sid) if sid else "",
        can_create=principal is not None and may(request, "POST", "/api/v1/projects", None),
        can_audit=principal is not None and may(request, "GET", "/api/v1/audit", None),
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
            return render(request, "error.html", error.status_code, error=error)

    return wrapped


async def read_form(request: Request, *, csrf: bool = True) -> dict[str, str]:
    """The urlencoded form of a POST; with ``csrf``, refuse it unless it carries the session's token."""
    body = await request.body()
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    if csrf and not sessions.csrf_ok(session_id(request), fields.get("csrf")):
        raise Forbidden(
            "the form's CSRF token is missing or wrong", hint="reload the page and submit the form again"
        )
    return fields


def run(request: Request, work: Callable[[Any], Any]) -> Awaitable[Any]:
    """Run ``work(session)`` in a committed transaction, off the event loop."""
    platform = platform_of(request)

    def call() -> Any:
        with platform.sessions() as session, session.begin():
            return work(session)

    return anyio.to_thread.run_sync(call)


def back(path: str, done: str) -> RedirectResponse:
    return RedirectResponse(f"{path}?{urlencode({'done': done})}", status_code=303)


def local_path(target: str | None) -> str:
    """Where to send a browser after signing in: a path of this site, never another site ("/" else).

    ``//evil.example`` and ``/\\evil.example`` are other sites to a browser; so is anything with a
    scheme. Decoded fully first, so an encoded form cannot slip past.
    """
    from pave.tracking.paths import fully_decoded

    if not target:
        return "/"
    try:
        decoded = fully_decoded(target)
    except PaveError:
        return "/"
    if (
        not decoded.startswith("/")
        or decoded.startswith(("//", "/\\"))
        or "\\" in decoded
        or any(ord(ch) < 32 for ch in decoded)
        or len(target) > 2000
    ):
        return "/"
    return target


def cookie_secure(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def projects_dir(platform: Platform) -> Path:
    """Where projects created in the portal live on the server: ``PAVE_HOME/projects/NAME``."""
    return platform.settings.home / "projects"
