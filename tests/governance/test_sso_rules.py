"""SSO's rules alone: groups to a role, groups to teams, the session's token (a real SQLite store)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pave.errors import Forbidden, Unauthenticated
from pave.governance import oidc, sso, teams
from pave.governance.tokens import authenticate, create_token
from pave.store import migrate
from pave.store.db import make_engine, session_factory, transaction

ROLES = {"ds": "developer", "leads": "maintainer", "audit": "approver", "platform": "admin"}


@pytest.mark.parametrize(
    ("groups", "role"),
    [
        (["ds"], "developer"),
        (["ds", "leads"], "maintainer"),
        (["audit", "ds"], "developer"),
        (["audit"], "approver"),
        (["leads", "platform", "x"], "admin"),
    ],
)
def test_the_highest_mapped_group_gives_the_role(groups: list[str], role: str) -> None:
    assert sso.role_for(groups, ROLES, None) == role


def test_no_mapped_group_is_refused_unless_a_default_is_set() -> None:
    with pytest.raises(Forbidden, match="none of your groups"):
        sso.role_for(["strangers"], ROLES, None)
    assert sso.role_for([], ROLES, "viewer") == "viewer"


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(f"sqlite:///{tmp_path / 'pave.db'}")
    migrate.upgrade(engine, tmp_path)
    yield session_factory(engine)
    engine.dispose()


def test_groups_make_and_end_team_memberships(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        for name in ("fraud-ds", "churn-ds", "manual"):
            teams.create_team(session, name, created_by="root")
        teams.add_member(session, "churn-ds", "alice", added_by="root")
        assert sso.sync_teams(session, "alice", ["fraud-ds", "not-a-team"]) == ["fraud-ds"]
        assert teams.get_team(session, "fraud-ds").members == ["alice"]
        assert teams.get_team(session, "churn-ds").members == [], "the provider no longer lists it"
        assert sso.sync_teams(session, "alice", []) == []
        assert teams.get_team(session, "fraud-ds").members == []


def test_a_session_token_is_issued_and_ends_with_the_session(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        principal, secret = sso.issue_token(session, "alice", "maintainer")
        assert authenticate(session, secret).role == "maintainer"
        sso.end(session, principal.token_id)
        with pytest.raises(Unauthenticated):
            authenticate(session, secret)
        token, other = create_token(session, identity="alice", name="laptop", role="developer")
        sso.end(session, token.id)
        assert authenticate(session, other).identity == "alice", "only SSO's own tokens end"


def test_service_accounts_cannot_sign_in_by_sso(sessions: sessionmaker[Session]) -> None:
    with transaction(sessions) as session:
        create_token(session, identity="ci-bot", name="ci", role="developer", kind="service")
        with pytest.raises(Forbidden, match="may not sign in"):
            sso.issue_token(session, "ci-bot", "developer")


def test_the_pkce_challenge_is_s256_of_the_verifier() -> None:
    login = oidc.Login("s", "n", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk")
    assert login.challenge == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"  # RFC 7636, appendix B
    assert len({oidc.Login.new().state for _ in range(50)}) == 50


def test_identity_and_groups_from_the_claims() -> None:
    settings = oidc.OidcSettings(issuer="https://idp", client_id="pave", redirect_uri="https://pave/cb")
    assert oidc.identity_and_groups({"sub": "1", "preferred_username": "ann", "groups": ["a"]}, settings) == (
        "ann",
        ["a"],
    )
    assert oidc.identity_and_groups({"sub": "1", "email": "b@x", "groups": "solo"}, settings) == (
        "b@x",
        ["solo"],
    )
    assert oidc.identity_and_groups({"sub": "1"}, settings) == ("1", [])
