"""The inference index as the ORM reads it back, written by the ingest's plain executemany, on SQLite
and on the real PostgreSQL: the same timestamps, outputs and counts; a file read twice adds nothing."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from monitoring_kit import write_log
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.monitoring.ingest import ingest
from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory
from pave.store.tables import InferenceIndexRow, InferenceLogCursor


def _sessions(url: str, home: Path) -> sessionmaker[Session]:
    engine = make_engine(url)
    check_connection(engine)  # creates the test's schema on PostgreSQL
    migrate.upgrade(engine, home)
    return session_factory(engine)


def _check_index(sessions: sessionmaker[Session], log_dir: Path) -> None:
    ts = time.time() - 5.25
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    outputs = {"predict": np.array([1, 0, 1, 1]), "predict_proba": np.array([[0.2, 0.8]] * 4)}
    ids = write_log(log_dir, "churn", "7", frame, outputs, rows_per_request=2, ts=ts)
    write_log(log_dir, "churn", "8", frame, outputs, shadow=True)  # shadow answers: not indexed
    assert ingest(sessions, log_dir) == 2
    assert ingest(sessions, log_dir) == 0  # the cursor moved
    with sessions() as session:
        rows = session.scalars(select(InferenceIndexRow).order_by(InferenceIndexRow.id)).all()
        assert [row.inference_id for row in rows] == ids
        first = rows[0]
        assert (first.deployment, first.version, first.n_rows) == ("churn", "7", 2)
        assert first.ts == datetime.fromtimestamp(ts, UTC)  # to the microsecond, aware, UTC
        assert first.outputs == {"predict": [1, 0], "predict_proba": [[0.2, 0.8], [0.2, 0.8]]}
        since = datetime.fromtimestamp(ts - 1, UTC)
        assert session.scalars(select(InferenceIndexRow.id).where(InferenceIndexRow.ts >= since)).all()
    with sessions() as session, session.begin():  # a crash before the cursor was saved: read again
        for cursor in session.scalars(select(InferenceLogCursor)):
            cursor.offset = 0
    assert ingest(sessions, log_dir) == 0
    with sessions() as session:
        assert len(session.scalars(select(InferenceIndexRow)).all()) == 2


def test_the_index_on_sqlite(tmp_path: Path) -> None:
    _check_index(_sessions(f"sqlite:///{tmp_path / 'pave.db'}", tmp_path), tmp_path / "log")


@pytest.mark.postgres
def test_the_index_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    _check_index(_sessions(postgres_url, tmp_path), tmp_path / "log")
