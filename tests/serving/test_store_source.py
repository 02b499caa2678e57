"""The gateway's store source: LISTEN/NOTIFY on PostgreSQL (reads only when told), a poll on SQLite."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event

from pave.config import Settings
from pave.serving.store import StoreDeployments, _bump
from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory, transaction


def _reads(source: StoreDeployments) -> list[str]:
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(source.engine, "before_cursor_execute", seen)
    return statements


def _platform(url: str, home: Path) -> Any:
    engine = make_engine(url)
    check_connection(engine)
    migrate.upgrade(engine, home)
    return session_factory(engine)


@pytest.mark.postgres
def test_a_gateway_on_postgresql_reads_the_counter_only_when_notified(
    postgres_url: str, tmp_path: Path
) -> None:
    sessions = _platform(postgres_url, tmp_path)
    source = StoreDeployments(Settings(home=tmp_path, database_url=postgres_url))
    try:
        first = source.version()
        deadline = time.monotonic() + 30
        while not source.listening:
            assert time.monotonic() < deadline, "the source never listened"
            time.sleep(0.05)
        source.version()  # the read that follows LISTEN (whatever changed meanwhile)
        reads = _reads(source)
        assert [source.version() for _ in range(50)] == [first] * 50
        assert reads == [], "no change, no notification: no read of the store"

        with transaction(sessions) as session:
            _bump(session)
        deadline = time.monotonic() + 30
        while source.version() == first:
            assert time.monotonic() < deadline, "the change was never noticed"
            time.sleep(0.05)
        assert source.version() == first + 1
        assert len(reads) == 1, reads
    finally:
        source.close()


def test_a_gateway_on_sqlite_polls_the_counter(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pave.db"
    sessions = _platform(url, tmp_path)
    source = StoreDeployments(Settings(home=tmp_path, database_url=url))
    first = source.version()
    with transaction(sessions) as session:
        _bump(session)
    assert source.version() == first + 1
    assert not source.listening
