"""Who a person signed in by SSO is in Pave: their groups make their role and their teams.

- The token role: the highest role that ``oidc_roles`` (group -> role) gives any of their groups,
  in the order viewer < approver < developer < maintainer < admin; with no mapped group,
  ``oidc_default_role``, or no sign-in at all when that is unset (fail closed). The token role caps
  what project roles give (:mod:`pave.governance.access`), so map groups to the ceiling people
  may reach and let teams give the roles per project.
- Teams: a group named like an existing Pave team makes them its member; they leave the teams
  whose group the provider no longer lists, at every sign-in (the provider is the source of truth
  for the members of those teams).
- A session stands for a fresh token of that role (name ``sso``, one day at most); signing out
  revokes it. Machines keep using tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pave.errors import Forbidden, InvalidInput
from pave.governance.tokens import Principal, create_token
from pave.store.tables import Identity, Team, TeamMember, Token, utcnow

RANK = ("viewer", "approver", "developer", "maintainer", "admin")
SSO_TOKEN_NAME = "sso"  # noqa: S105 - a token's name, not a secret


def role_for(groups: Iterable[str], roles: Mapping[str, str], default: str | None) -> str:
    """The token role the groups give (the highest mapped), else ``default``.

    Raises:
        Forbidden: no group is mapped and there is no default role.
    """
    given = [roles[g] for g in groups if g in roles]
    if given:
        return max(given, key=RANK.index)
    if default is None:
        raise Forbidden(
            "none of your groups gives you a role in Pave",
            hint="ask the platform team to map one of your groups in oidc_roles",
        )
    return default


def check_roles(roles: Mapping[str, str], default: str | None) -> None:
    """Settings check: every mapped role (and the default) is a role a token can carry."""
    for role in [*roles.values(), *([default] if default else [])]:
        if role not in RANK:
            raise InvalidInput(f"oidc role {role!r} is not a role", hint=f"use one of: {', '.join(RANK)}")


def sync_teams(session: Session, identity: str, groups: Iterable[str]) -> list[str]:
    """Make ``identity`` a member of exactly the existing teams named by ``groups``; return them."""
    wanted = set(groups)
    teams = {t.name: t.id for t in session.scalars(select(Team))}
    member_of = {
        name
        for (name,) in session.execute(
            select(Team.name)
            .join(TeamMember, TeamMember.team_id == Team.id)
            .where(TeamMember.identity == identity)
        )
    }
    for name in sorted(member_of - wanted):
        session.execute(
            delete(TeamMember).where(TeamMember.team_id == teams[name], TeamMember.identity == identity)
        )
    for name in sorted((wanted & teams.keys()) - member_of):
        session.add(TeamMember(team_id=teams[name], identity=identity, added_by="sso", added_at=utcnow()))
    session.flush()
    return sorted(wanted & teams.keys())


def issue_token(session: Session, identity: str, role: str) -> tuple[Principal, str]:
    """A one-day token of ``role`` for the person who signed in (their session stands for it).

    Raises:
        Forbidden: the identity is disabled, or is a service account (those sign in with tokens).
    """
    who = session.scalar(select(Identity).where(Identity.name == identity))
    if who is not None and (who.disabled or who.kind != "user"):
        raise Forbidden(f"{identity} may not sign in here", hint="ask a platform admin")
    token, secret = create_token(
        session, identity=identity, name=SSO_TOKEN_NAME, role=role, expires_in_days=1
    )
    principal = Principal(
        identity=identity, token_id=token.id, role=role, project=None, is_admin=role == "admin"
    )
    return principal, secret


def end(session: Session, token_id: int) -> None:
    """Revoke the token behind a session that ends, when SSO made it (other tokens live on)."""
    token = session.get(Token, token_id)
    if token is not None and token.name == SSO_TOKEN_NAME and token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
