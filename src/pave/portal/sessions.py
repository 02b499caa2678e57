"""Browser sessions: a Pave token signed in once, then an HttpOnly cookie.

The cookie holds a random session id (256 bits); the store keeps only its SHA-256, the token it
stands for and an expiry. Every request resolves the session and checks its token again, so a
revoked or expired token (or a disabled identity) signs its sessions out at once. The CSRF token of
a session is derived from its id (an HMAC the server can recompute), so forms need no extra state.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pave.errors import Unauthenticated
from pave.governance.tokens import Principal, authenticate, principal_of_token
from pave.store.tables import Identity, PortalSession, Token, utcnow

COOKIE = "pave_session"
CSRF_COOKIE = "pave_signin"  # the sign-in form's double-submit token (before any session exists)
LIFETIME = timedelta(hours=12)


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


def csrf_token(session_id: str) -> str:
    """The CSRF token of the forms of session ``session_id``."""
    return hmac.new(session_id.encode("utf-8"), b"pave-portal-csrf", hashlib.sha256).hexdigest()


def csrf_ok(session_id: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(csrf_token(session_id), str(given))


def sign_in(session: Session, secret: str) -> tuple[str, Principal]:
    """Check ``secret`` like any API request would and open a session; return (session id, principal).

    Raises:
        Unauthenticated: the token is unknown, revoked or expired.
    """
    principal = authenticate(session, secret.strip())
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    session.add(
        PortalSession(
            session_hash=_hash(session_id),
            token_id=principal.token_id,
            identity=principal.identity,
            created_at=now,
            expires_at=now + LIFETIME,
            last_seen_at=now,
        )
    )
    session.flush()
    return session_id, principal


def principal_of_session(session: Session, session_id: str) -> Principal:
    """The principal a session id stands for.

    Raises:
        Unauthenticated: no such session, the session expired, or its token is no longer valid.
    """
    signed_out = Unauthenticated("you are signed out", hint="sign in again with a Pave token at /signin")
    if not session_id or len(session_id) > 200:
        raise signed_out
    row = session.execute(
        select(PortalSession, Token, Identity)
        .join(Token, Token.id == PortalSession.token_id)
        .join(Identity, Identity.id == Token.identity_id)
        .where(PortalSession.session_hash == _hash(session_id))
    ).first()
    now = utcnow()
    if row is None:
        raise signed_out
    browser, token, identity = row
    principal = principal_of_token(token, identity, now=now) if browser.expires_at > now else None
    if principal is None:
        raise signed_out
    return principal


def sign_out(session: Session, session_id: str) -> None:
    """End the session (and drop every expired one while at it)."""
    session.execute(delete(PortalSession).where(PortalSession.session_hash == _hash(session_id)))
    session.execute(delete(PortalSession).where(PortalSession.expires_at <= utcnow()))
