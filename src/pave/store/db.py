"""Engines and sessions for Pave's metadata database (SQLite by default, PostgreSQL in production).

SQLite runs in WAL mode with ``synchronous=FULL`` and a busy timeout: an acknowledged write
survives a crash of the process or the machine, and concurrent writers wait instead of failing.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from pave.config import mask_url, postgres_schema
from pave.errors import ConfigError, Unavailable

SQLITE_BUSY_TIMEOUT_MS = 30_000
_SCHEMA_LOCK_KEY = 0x5041_5653  # "PAVS" (the migrations lock "PAVE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def private_file(path: Path) -> None:
    """Create the SQLite file ``path`` readable by its owner only (0600), and tighten an existing one.

    The metadata database holds token hashes and the audit chain, MLflow's everything logged: no
    other user of the machine reads them. SQLite gives its -wal and -shm files the database
    file's mode when it creates them; those left by an older install are tightened too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        # Only a file that does not exist yet is opened (and closed) here. Closing any descriptor of
        # a file drops every POSIX lock this process holds on it, SQLite's own included: a second
        # engine made in a process whose connections use the database (a tuning's study, the
        # control plane's store) would let other processes write under them and corrupt it.
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600))
    for item in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(OSError):  # absent, or another user's file: left as it is
            if item.stat().st_mode & 0o077:
                item.chmod(0o600)


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url``, with Pave's durability settings; bad URLs raise ConfigError."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {mask_url(url)!r} is malformed",
            hint="use sqlite:////abs/path.db or postgresql+psycopg://user@host:5432/dbname",
        ) from exc
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            private_file(Path(parsed.database))
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            parsed, pool_size=pool_size, pool_pre_ping=True, connect_args={"connect_timeout": 5}
        )
    raise ConfigError(
        f"database URL {mask_url(url)!r}: backend {parsed.get_backend_name()!r} is not supported",
        hint="use SQLite (the default) or postgresql+psycopg://...",
    )


def check_connection(engine: Engine) -> None:
    """Connect once, creating the URL's PostgreSQL schema if it names one; raise Unavailable if down."""
    try:
        with engine.begin() as conn:
            schema = postgres_schema(str(engine.url.render_as_string(hide_password=False)))
            if engine.dialect.name == "postgresql" and schema:
                # Two processes creating the same schema at once: IF NOT EXISTS does not stop the
                # second from failing on the catalog's unique index, so they take turns (the lock
                # is released when this transaction ends).
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _SCHEMA_LOCK_KEY})
                conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            conn.execute(text("SELECT 1"))
    except OperationalError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
        raise Unavailable(
            f"cannot reach the database at {mask_url(str(engine.url))}: {reason}",
            hint="check PAVE_DATABASE_URL (`pave config show`) and that the server is running",
        ) from exc


def session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error."""
    with factory() as session, session.begin():
        yield session
