"""Retention: what is older than inference_retention_days goes; what is newer stays, untouched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from monitoring_kit import write_log
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.monitoring.feedback import Label, record_feedback
from pave.monitoring.ingest import ingest
from pave.monitoring.retention import prune
from pave.monitoring.scheduler import Scheduler
from pave.store import migrate
from pave.store.db import make_engine, session_factory
from pave.store.tables import FeedbackRow, InferenceIndexRow, InferenceLogCursor

NOW = datetime.now(UTC)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    settings = Settings(home=tmp_path / "home", inference_retention_days=30)
    settings.ensure_home()
    engine = make_engine(settings.db_url)
    migrate.upgrade(engine, tmp_path)
    yield settings, session_factory(engine)
    engine.dispose()


def _predictions(directory: Path, days_ago: float) -> list[str]:
    """Requests logged ``days_ago`` days ago, in a file last written then."""
    before = set(directory.glob("*.jsonl"))
    at = (NOW - timedelta(days=days_ago)).timestamp()
    ids = write_log(
        directory, "churn", "1", pd.DataFrame({"x": [1.0, 2.0, 3.0]}), {"predict": [0, 1, 0]}, ts=at
    )
    for path in set(directory.glob("*.jsonl")) - before:
        os.utime(path, (at, at))
    return ids


def _count(sessions: sessionmaker[Session], table: type) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


def _label(sessions: sessionmaker[Session], ids: list[str]) -> None:
    with sessions() as session, session.begin():
        record_feedback(session, [Label(i, 1) for i in ids], actor="tester", may_write=lambda _: True)


def test_old_predictions_their_labels_and_log_files_go_and_recent_ones_stay(store) -> None:
    settings, sessions = store
    directory = settings.inference_log_dir
    old = _predictions(directory, days_ago=45)
    recent = _predictions(directory, days_ago=2)
    assert ingest(sessions, directory) == 6
    _label(sessions, [old[0], recent[0]])
    assert len(list(directory.glob("*.jsonl"))) == 2
    assert _count(sessions, InferenceLogCursor) == 2

    pruned = prune(sessions, directory, retention_days=30, now=NOW)

    assert (pruned.files, pruned.predictions, pruned.labels) == (1, 3, 1)
    [kept_file] = directory.glob("*.jsonl")
    assert kept_file.stat().st_mtime > (NOW - timedelta(days=30)).timestamp()
    with sessions() as session:
        assert set(session.scalars(select(InferenceIndexRow.inference_id))) == set(recent)
        assert list(session.scalars(select(FeedbackRow.inference_id))) == [recent[0]]
        assert list(session.scalars(select(InferenceLogCursor.path))) == [str(kept_file)]
    assert ingest(sessions, directory) == 0  # the kept file is not read again
    again = prune(sessions, directory, retention_days=30, now=NOW)
    assert (again.files, again.predictions, again.labels) == (0, 0, 0)


def test_the_monitoring_loop_applies_the_retention_about_once_an_hour(store) -> None:
    settings, sessions = store
    directory = settings.inference_log_dir
    _predictions(directory, days_ago=45)
    scheduler = Scheduler(sessions, settings, log_directory=directory)
    scheduler.tick(NOW)  # indexes the old file, then prunes it
    assert list(directory.glob("*.jsonl")) == []
    assert _count(sessions, InferenceIndexRow) == 0
    _predictions(directory, days_ago=45)  # e.g. a file copied in from a backup
    scheduler.tick(NOW + timedelta(minutes=5))
    assert _count(sessions, InferenceIndexRow) == 3, "indexed, not pruned again within the hour"
    scheduler.tick(NOW + timedelta(hours=1, minutes=1))
    assert _count(sessions, InferenceIndexRow) == 0


def test_the_retention_cannot_be_set_below_a_day() -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="inference_retention_days"):
        Settings(inference_retention_days=0.01)
