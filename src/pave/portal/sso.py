"""Single sign-on for the portal, the MLflow UI and the API docs: OpenID Connect, code flow with PKCE.

``GET /signin/sso`` sends the browser to the provider (settings ``oidc_*``) with a fresh state,
nonce and PKCE verifier kept in a short-lived HttpOnly cookie; ``GET /signin/sso/callback``
checks the state, exchanges the code, checks the ID token (:mod:`pave.governance.oidc`), maps the
person's groups to a role and teams (:mod:`pave.governance.sso`), and opens a portal session that
stands for a one-day token of that role. The session cookie then opens the portal, the MLflow UI
and the API docs like a token-based sign-in does. Tokens remain for machines.
"""

from __future__ import annotations

import json
import secrets
import uuid
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import RedirectResponse, Response

from pave.api.security import BROWSER_COOKIE
from pave.config import Settings
from pave.errors import Forbidden, NotFound, PaveError, Unauthenticated
from pave.governance import audit, oidc, sso
from pave.portal import sessions
from pave.portal.web import cookie_secure, local_path, platform_of, render, router, run

STATE_COOKIE = "pave_sso"
CALLBACK = "/signin/sso/callback"


def oidc_settings(settings: Settings) -> oidc.OidcSettings | None:
    """The provider settings, or None when SSO is not configured."""
    if not settings.oidc_issuer or not settings.oidc_client_id:
        return None
    base = settings.advertised_url
    return oidc.OidcSettings(
        issuer=settings.oidc_issuer,
        client_id=settings.oidc_client_id,
        client_secret=settings.oidc_client_secret,
        redirect_uri=f"{base}{CALLBACK}",
        scopes=tuple(settings.oidc_scopes),
        identity_claim=settings.oidc_identity_claim,
        groups_claim=settings.oidc_groups_claim,
    )


def _configured(request: Request) -> oidc.OidcSettings:
    found = oidc_settings(platform_of(request).settings)
    if found is None:
        raise NotFound("single sign-on is not set up on this platform", hint="sign in with a token")
    return found


@router.get("/signin/sso")
async def sso_start(request: Request) -> Response:
    configured = _configured(request)
    provider = await anyio.to_thread.run_sync(oidc.discover, configured.issuer)
    login = oidc.Login.new()
    after = local_path(request.query_params.get("next"))
    response = RedirectResponse(oidc.authorization_url(provider, configured, login), status_code=303)
    # Lax, not Strict: the provider sends the browser back with a top-level cross-site GET.
    response.set_cookie(
        STATE_COOKIE,
        json.dumps([login.state, login.nonce, login.verifier, after]),
        max_age=600,
        httponly=True,
        samesite="lax",
        secure=cookie_secure(request),
        path="/signin/sso",
    )
    return response


def _pending(request: Request) -> tuple[oidc.Login, str]:
    try:
        state, nonce, verifier, after = json.loads(request.cookies.get(STATE_COOKIE) or "")
    except (ValueError, TypeError):
        raise Unauthenticated(
            "this sign-in was not started here, or took too long", hint="sign in again"
        ) from None
    given = request.query_params.get("state", "")
    if not isinstance(state, str) or not given or not secrets.compare_digest(given, state):
        raise Unauthenticated(
            "the sign-in's state does not match (a forged or replayed answer)", hint="sign in again"
        )
    return oidc.Login(state, str(nonce), str(verifier)), local_path(str(after))


@router.get(CALLBACK)
async def sso_callback(request: Request) -> Response:
    platform = platform_of(request)
    settings = platform.settings
    try:
        configured = _configured(request)
        refused = request.query_params.get("error")
        if refused:
            raise Unauthenticated(
                f"the sign-in provider refused: {refused[:100]}",
                hint="sign in again, or with a token",
            )
        login, after = _pending(request)
        code = request.query_params.get("code", "")
        provider = await anyio.to_thread.run_sync(oidc.discover, configured.issuer)
        claims = await anyio.to_thread.run_sync(oidc.claims_of, provider, configured, code, login)
        identity, groups = oidc.identity_and_groups(claims, configured)
        role = sso.role_for(groups, settings.oidc_roles, settings.oidc_default_role)

        def open_session(session: Any) -> tuple[str, Any, list[str]]:
            teams = sso.sync_teams(session, identity, groups)
            principal, secret = sso.issue_token(session, identity, role)
            session_id, _ = sessions.sign_in(session, secret)
            return session_id, principal, teams

        session_id, principal, teams = await run(request, open_session)
    except (Unauthenticated, Forbidden) as error:
        response = render(request, "signin.html", error.status_code, signin_csrf="", error=error, after="/")
        response.delete_cookie(STATE_COOKIE, path="/signin/sso")
        await _audit(platform, request, error.status_code, None, f"{error.code}: {error.message}"[:500])
        return response
    joined = ", ".join(teams) or "-"
    await _audit(platform, request, 200, principal, f"sso sign-in; role {role}; teams {joined}")
    # A page of this site moves on, not a redirect: the session cookie is SameSite=Strict, and a
    # browser withholds it from a redirect chain that began at the provider (another site).
    response = render(request, "signed_in.html", 200, after=after)
    response.set_cookie(
        BROWSER_COOKIE,
        session_id,
        max_age=int(sessions.LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=cookie_secure(request),
        path="/",
    )
    response.delete_cookie(STATE_COOKIE, path="/signin/sso")
    return response


async def _audit(platform: Any, request: Request, status: int, principal: Any, detail: str) -> None:
    entry = audit.AuditEntry(
        method="GET",
        path=CALLBACK,
        status=status,
        request_id=uuid.uuid4().hex,
        action="signin",
        identity=principal.identity if principal else None,
        token_id=principal.token_id if principal else None,
        client=request.client.host if request.client else None,
        detail=detail,
    )
    await anyio.to_thread.run_sync(audit.append, platform.engine, entry)


__all__ = ["PaveError", "oidc_settings", "router"]
