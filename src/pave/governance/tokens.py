"""Identities and API tokens.

A token is ``pave_`` followed by 43 URL-safe random characters (256 bits). Only its SHA-256 is
stored: a token is high-entropy, so a fast hash is enough and lookups stay O(1). The secret is
shown once, when it is created.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.errors import Conflict, InvalidInput, NotFound, Unauthenticated
from pave.governance.roles import ROLES
from pave.store.tables import Identity, Token, utcnow

TOKEN_PREFIX = "pave_"  # noqa: S105 - a prefix, not a secret


@dataclass(frozen=True)
class Principal:
    """Who is calling: resolved from a token on every request."""

    identity: str
    token_id: int
    role: str
    project: str | None  # None: the token is valid platform-wide
    is_admin: bool


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def ensure_identity(session: Session, name: str, *, kind: str = "user", is_admin: bool = False) -> Identity:
    identity = session.scalar(select(Identity).where(Identity.name == name))
    if identity is None:
        identity = Identity(name=name, kind=kind, is_admin=is_admin, disabled=False)
        session.add(identity)
        session.flush()
    return identity


def create_token(
    session: Session,
    *,
    identity: str,
    name: str,
    role: str = "developer",
    project: str | None = None,
    expires_in_days: int | None = None,
    kind: str = "user",
    lifetime: timedelta | None = None,
) -> tuple[Token, str]:
    """Create a token for ``identity`` (created if new); return the row and the secret.

    ``lifetime`` (for the platform's own short-lived job tokens) takes precedence over
    ``expires_in_days``.
    """
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}", hint=f"use one of: {', '.join(ROLES)}")
    if not name.strip() or len(name) > 200:
        raise InvalidInput("a token needs a name of 1 to 200 characters", hint="--name ci-pipeline")
    if expires_in_days is not None and not 1 <= expires_in_days <= 3650:
        raise InvalidInput("expires_in_days must be between 1 and 3650", hint="--expires-in-days 90")
    who = ensure_identity(session, identity, kind=kind, is_admin=role == "admin")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = Token(
        identity_id=who.id,
        name=name,
        prefix=secret[: len(TOKEN_PREFIX) + 6],
        secret_hash=hash_secret(secret),
        role=role,
        project=project,
        created_at=utcnow(),
        expires_at=(
            utcnow() + lifetime
            if lifetime is not None
            else utcnow() + timedelta(days=expires_in_days)
            if expires_in_days
            else None
        ),
    )
    session.add(token)
    session.flush()
    return token, secret


def authenticate(session: Session, secret: str | None) -> Principal:
    """Resolve a bearer secret to a Principal, or raise Unauthenticated (never says which check failed)."""
    if not secret:
        raise Unauthenticated(
            "this request needs a token",
            hint="send 'Authorization: Bearer <token>' (see `pave token create`)",
        )
    row = session.execute(
        select(Token, Identity)
        .join(Identity, Identity.id == Token.identity_id)
        .where(Token.secret_hash == hash_secret(secret))
    ).first()
    now = utcnow()
    if row is None:
        raise Unauthenticated(
            "the token is not valid", hint="check PAVE_TOKEN, or create one: `pave token create`"
        )
    principal = principal_of_token(*row, now=now)
    if principal is None:
        raise Unauthenticated("the token is revoked or expired", hint="create a new one: `pave token create`")
    return principal


def principal_of_token(token: Token, identity: Identity, *, now: datetime) -> Principal | None:
    """The principal a token stands for, or None when it is revoked, expired or its identity disabled."""
    if (
        token.revoked_at is not None
        or identity.disabled
        or (token.expires_at is not None and token.expires_at <= now)
    ):
        return None
    return Principal(
        identity=identity.name,
        token_id=token.id,
        role=token.role,
        project=token.project,
        # The token caps its identity: an admin's viewer token is a viewer token.
        is_admin=token.role == "admin",
    )


def list_tokens(session: Session) -> list[tuple[Token, str]]:
    rows = session.execute(
        select(Token, Identity.name).join(Identity, Identity.id == Token.identity_id).order_by(Token.id)
    ).all()
    return [(token, name) for token, name in rows]


def revoke_token(session: Session, token_id: int) -> Token:
    token = session.get(Token, token_id)
    if token is None:
        raise NotFound(f"token {token_id} does not exist", hint="`pave token list` shows the ids")
    if token.revoked_at is not None:
        raise Conflict(f"token {token_id} is already revoked")
    token.revoked_at = utcnow()
    return token


def has_any_identity(session: Session) -> bool:
    return session.scalar(select(Identity.id).limit(1)) is not None
