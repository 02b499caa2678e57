"""Apply Alembic migrations exactly once, even when several processes start at the same moment.

SQLite: an exclusive ``flock`` on a file beside the database (a SQLite file is always local).
PostgreSQL: a session-level advisory lock, so processes on different machines agree too; its key
is the platform's schema, so platforms that share a database in schemas of their own never wait
for each other.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

_LOCK = text("SELECT pg_advisory_lock(hashtext('pave-migrate:' || current_schema()))")
_UNLOCK = text("SELECT pg_advisory_unlock(hashtext('pave-migrate:' || current_schema()))")
MIGRATIONS = Path(__file__).parent / "migrations"


def _config(connection: Connection) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def migration_lock(engine: Engine, lock_dir: Path) -> Iterator[None]:
    """Hold an exclusive, cross-process lock for the duration of a migration."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(_LOCK)
            try:
                yield
            finally:
                conn.execute(_UNLOCK)
                conn.commit()
        return
    lock_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_dir / "migrate.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def upgrade(engine: Engine, lock_dir: Path, *, also: Callable[[], None] | None = None) -> list[str]:
    """Bring the schema to head under the migration lock; return the revisions applied.

    ``also`` runs under the same lock (the embedded MLflow's own schema setup uses it).
    """
    with migration_lock(engine, lock_dir):
        before = current_revision(engine)
        head = head_revision()
        applied: list[str] = []
        if before != head:
            with engine.begin() as conn:
                command.upgrade(_config(conn), "head")
            script = ScriptDirectory(str(MIGRATIONS))
            applied = [rev.revision for rev in script.iterate_revisions(head, before)]
            applied.reverse()
        if also is not None:
            also()
        return applied
