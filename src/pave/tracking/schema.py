"""A new MLflow store gets MLflow's schema from a template built once per MLflow version.

On an empty database MLflow's store creates its initial tables and then runs every one of its
Alembic migrations (about ten seconds on SQLite), and every new home paid that on its first start.
The result depends on MLflow's version only, so Pave builds it once into its cache
(``cache_dir``: ``mlflow-<version>-<revision>.db``) and copies it into each new SQLite store
through SQLite's backup API (the destination's own locks and journal mode are kept). A template
is used only when it stands at MLflow's head revision with every table MLflow expects, and only
into a database that has no table at all; anything else (PostgreSQL, an existing store, a cache
that cannot be written) leaves the store to MLflow's own migrations, as before.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from contextlib import closing
from pathlib import Path

from sqlalchemy.engine import make_url

from pave.tracking import stores

log = logging.getLogger("pave")


def seed(url: str, cache_dir: Path) -> bool:
    """Give the empty SQLite store at ``url`` MLflow's schema from the template; True if it did.

    Call it under the migration lock, before MLflow's store opens ``url``.
    """
    path = _sqlite_file(url)
    if path is None:
        return False
    if not path.exists():  # created private, as Pave creates its SQLite files (`store.db.private_file`)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    with closing(sqlite3.connect(path, timeout=30)) as target:
        if target.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]:
            return False  # not a new store: MLflow checks (or migrates) it itself
        try:
            template = ensure_template(cache_dir)
        except (OSError, sqlite3.Error) as exc:
            log.warning(
                "no MLflow schema template in %s (%s); MLflow builds the schema itself", cache_dir, exc
            )
            return False
        if template is None:
            return False
        with closing(sqlite3.connect(f"{template.as_uri()}?mode=ro", uri=True)) as source:
            source.backup(target)
    log.info("MLflow's schema copied from %s", template)
    return True


def ensure_template(cache_dir: Path) -> Path | None:
    """The template for the installed MLflow, built now if the cache has none; None if it cannot
    be built complete (a bug of MLflow's migrations, reported by MLflow's own store later)."""
    import mlflow

    head = stores.schema_head()
    template = cache_dir / f"mlflow-{mlflow.__version__}-{head}.db"
    if template.exists() and _revision(template) == head:
        return template
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    building = cache_dir / f".{template.name}.{os.getpid()}.building"
    building.unlink(missing_ok=True)
    try:
        if stores.create_schema(f"sqlite:///{building}") != head:
            return None
        os.chmod(building, 0o600)
        # two processes may build at once: each renames a complete file, the last one stays
        os.replace(building, template)
    finally:
        building.unlink(missing_ok=True)
    log.info("built MLflow's schema template %s", template)
    return template


def _revision(path: Path) -> str | None:
    """The Alembic revision a template stands at; None if it is unreadable or damaged."""
    try:
        with closing(sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)) as db:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                return None
            row = db.execute("SELECT version_num FROM alembic_version").fetchone()
    except sqlite3.Error:
        return None
    return str(row[0]) if row else None


def _sqlite_file(url: str) -> Path | None:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database)
