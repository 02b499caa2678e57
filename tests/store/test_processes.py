"""Heartbeats of the platform's processes: one row per role and URL, stale ones reported so."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory, transaction
from pave.store.processes import GATEWAY, Heartbeat, list_processes
from pave.store.tables import ProcessRow, utcnow


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_heartbeats_upsert_and_go_stale(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path}/p.db"
    engine = make_engine(url)
    check_connection(engine)  # creates the schema on PostgreSQL
    migrate.upgrade(engine, tmp_path)
    sessions = session_factory(engine)
    first = Heartbeat(GATEWAY, "http://gw-a.internal:8080")
    worker = Heartbeat(GATEWAY, "http://gw-a.internal:8080")  # another worker of the same gateway
    other = Heartbeat(GATEWAY, "http://gw-b.internal:8080")
    with transaction(sessions) as session:
        assert first.beat(session, {"models": {"churn": {"1": "ready"}}})
        assert not first.beat(session, {}), "not due again within the interval"
    with transaction(sessions) as session:
        assert worker.beat(session, {"models": {"churn": {"1": "ready", "2": "loading"}}})
        assert other.beat(session, {"models": {}})
    with transaction(sessions) as session:
        listed = list_processes(session)
    assert [(p["url"], p["healthy"]) for p in listed] == [
        ("http://gw-a.internal:8080", True),
        ("http://gw-b.internal:8080", True),
    ]
    assert listed[0]["info"]["models"] == {"churn": {"1": "ready", "2": "loading"}}

    with transaction(sessions) as session:  # gw-b went silent a minute ago, an old one a week ago
        session.execute(
            update(ProcessRow)
            .where(ProcessRow.id == other.id)
            .values(seen_at=utcnow() - timedelta(minutes=1))
        )
        session.add(
            ProcessRow(
                id="gateway http://gone",
                role=GATEWAY,
                url="http://gone",
                seen_at=utcnow() - timedelta(days=7),
            )
        )
    with transaction(sessions) as session:
        listed = list_processes(session)
    assert [(p["url"], p["healthy"]) for p in listed] == [
        ("http://gw-a.internal:8080", True),
        ("http://gw-b.internal:8080", False),
    ]
    assert listed[1]["seconds_since_seen"] >= 60
    engine.dispose()
