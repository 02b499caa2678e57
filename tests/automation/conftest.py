"""A real store (SQLite, every migration applied) for the automation tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.store import migrate
from pave.store.db import make_engine, session_factory


@pytest.fixture
def store(tmp_path: Path) -> Iterator[tuple[Settings, sessionmaker[Session]]]:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    engine = make_engine(settings.db_url)
    migrate.upgrade(engine, tmp_path)
    yield settings, session_factory(engine)
    engine.dispose()
