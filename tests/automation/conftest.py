"""A real store (every migration applied) for the automation tests: SQLite, or also PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from pave.automation import jobs
from pave.config import Settings
from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory
from pave_testing import free_port

Store = tuple[Settings, sessionmaker[Session]]


def _open(url: str | None, tmp_path: Path) -> Iterator[Store]:
    # no platform answers at its URL: a job a test starts fails at once, reaching nobody's server
    settings = Settings(home=tmp_path / "home", database_url=url, port=free_port())
    settings.ensure_home()
    engine = make_engine(settings.db_url)
    check_connection(engine)  # creates the schema on PostgreSQL
    migrate.upgrade(engine, tmp_path)
    yield settings, session_factory(engine)
    engine.dispose()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """SQLite."""
    yield from _open(None, tmp_path)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """SQLite, then the real PostgreSQL: for what the database itself enforces."""
    url = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    yield from _open(url, tmp_path)


@pytest.fixture(autouse=True)
def _jobs_cleaned_up() -> Iterator[None]:
    """The jobs a test's turns started end with it, and their folders go (a control plane's next
    tick would remove them; a test's turns are not ticked again)."""
    before = set(jobs._processes)
    yield
    for pid in set(jobs._processes) - before:
        process = jobs._processes.pop(pid)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
            process.wait(timeout=60)
        for arg in process.args:
            folder = Path(str(arg)).parent
            if folder.name.startswith("pave-job-") and folder.parent == Path(tempfile.gettempdir()):
                shutil.rmtree(folder, ignore_errors=True)
