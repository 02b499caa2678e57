"""Portal sessions and the platform numbers on both stores (SQLite and the real PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pave.automation import platform_metrics
from pave.errors import Unauthenticated
from pave.governance.audit import AuditEntry, append
from pave.governance.tokens import create_token, revoke_token
from pave.portal import sessions
from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory, transaction
from pave.store.tables import AlertRow, DeploymentRow, PortalSession, Project, RolloutRow


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pave.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        check_connection(make_engine(url))
    engine = make_engine(url)
    migrate.upgrade(engine, tmp_path)
    yield session_factory(engine)
    engine.dispose()


def test_a_session_stands_for_its_token_until_it_is_revoked(store: sessionmaker[Session]) -> None:
    with transaction(store) as session:
        token, secret = create_token(session, identity="ann", name="web", role="developer")
    with transaction(store) as session:
        session_id, principal = sessions.sign_in(session, secret)
    assert principal.identity == "ann"
    with store() as session:
        stored = session.query(PortalSession).one()
        assert session_id not in (stored.session_hash, stored.identity)  # only the hash is kept
        assert sessions.principal_of_session(session, session_id).token_id == token.id
        with pytest.raises(Unauthenticated):
            sessions.principal_of_session(session, session_id + "x")
    assert sessions.csrf_ok(session_id, sessions.csrf_token(session_id))
    assert not sessions.csrf_ok(session_id, sessions.csrf_token("another"))
    with transaction(store) as session:
        revoke_token(session, token.id)
    with store() as session, pytest.raises(Unauthenticated):
        sessions.principal_of_session(session, session_id)
    with transaction(store) as session:
        sessions.sign_out(session, session_id)
    with store() as session:
        assert session.query(PortalSession).count() == 0


def test_an_expired_session_is_signed_out(store: sessionmaker[Session]) -> None:
    with transaction(store) as session:
        _, secret = create_token(session, identity="bea", name="web", role="viewer")
        session_id, _ = sessions.sign_in(session, secret)
        session.query(PortalSession).update({"expires_at": datetime.now(UTC) - timedelta(seconds=1)})
    with store() as session, pytest.raises(Unauthenticated):
        sessions.principal_of_session(session, session_id)


def test_platform_numbers(store: sessionmaker[Session]) -> None:
    now = datetime.now(UTC)
    with transaction(store) as session:
        for name, age in (("a", 20), ("b", 3)):
            session.add(Project(name=name, owner="o", created_by="o", created_at=now - timedelta(days=age)))
        session.add(
            DeploymentRow(name="a", project="a", spec={}, created_by="o", updated_by="o", created_at=now)
        )
        for state in ("promoted", "rolled_back", "promoted", "promoted", "running"):
            session.add(
                RolloutRow(
                    deployment="a",
                    baseline_version="1",
                    candidate_version="2",
                    policy={},
                    state=state,
                    history=[],
                    created_by="o",
                )
            )
        session.add(
            AlertRow(
                project="a",
                monitor="m",
                kind="prediction_drift",
                subject="y",
                severity="warning",
                status="resolved",
                opened_at=now - timedelta(hours=3),
                resolved_at=now - timedelta(hours=1),
                details={},
            )
        )
    engine = store.kw["bind"]
    for identity in ("ann", "bea", "pave-rollouts"):
        append(
            engine,
            AuditEntry("PUT", "/api/v1/projects/a/deployment", 200, f"r-{identity}", identity=identity),
        )
    runs = {"a": [now - timedelta(hours=10), now - timedelta(hours=30)], "b": [now]}
    with store() as session:
        numbers = platform_metrics.compute(session, runs=runs, now=now)
    assert numbers.projects == 2
    assert numbers.runs_total == 3
    assert numbers.models_in_production == 1
    assert numbers.active_users_7d == 2  # the rollouts service is not a user
    assert (numbers.rollouts_finished, numbers.rollbacks) == (4, 1)
    assert numbers.change_failure_rate == pytest.approx(0.25)
    assert numbers.mean_hours_to_production == pytest.approx(30, abs=0.1)  # first run to first deploy
    assert numbers.deployments_per_week == pytest.approx(3 / 4)
    assert (numbers.drift_incidents, numbers.drift_open) == (1, 0)
    assert numbers.mean_hours_to_resolve_drift == pytest.approx(2)
    assert (numbers.projects_by_week[0].value, numbers.projects_by_week[-1].value) == (0, 2)
    assert numbers.runs_by_week[-1].value + numbers.runs_by_week[-2].value == 3
    assert set(numbers.gauges()) >= {"projects", "change_failure_rate", "mean_hours_to_production"}
