"""Opening the platform: connect, migrate once, prepare MLflow's store, bootstrap the first admin."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.errors import Unavailable
from pave.governance import audit
from pave.governance.tokens import create_token, has_any_identity
from pave.serving.shipping import Mirror, ships
from pave.storage import open_storage
from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory, transaction
from pave.store.lease import Lease
from pave.tracking import server as mlflow_server

log = logging.getLogger("pave")


@dataclass
class Platform:
    """What a running control plane holds on to."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    applied_migrations: list[str] = field(default_factory=list)
    bootstrap_token: str | None = None  # set only on the very first start of a home
    lease: Lease = field(init=False)  # whether this control plane runs the background jobs
    job_rounds: int = 0  # rounds of background jobs this process has run

    mirror: Mirror | None = field(init=False)  # the gateways' shipped inference log, copied here

    def __post_init__(self) -> None:
        self.lease = Lease(self.engine)
        self.mirror = Mirror(self.settings) if ships(self.settings) else None

    def ping(self) -> None:
        """Raise Unavailable if the metadata database does not answer."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:
            raise Unavailable("the metadata database does not answer", hint="`pave status`") from exc


def open_platform(settings: Settings, *, bootstrap_admin: bool = True) -> Platform:
    """Connect to the stores, apply migrations exactly once, and create the first admin token.

    Raises:
        StorageError: the object store at ``artifact_root`` is unreachable, refuses the
            credentials or has no such bucket (one line naming the setting to fix).
        ConfigError: ``environment = production`` with an insecure setting (before anything opens).
    """
    settings.check_production()
    settings.ensure_home()
    open_storage(settings.artifacts).check()
    engine = make_engine(settings.db_url)
    check_connection(engine)
    mlflow_engine = make_engine(settings.mlflow_db_url, pool_size=1)
    check_connection(mlflow_engine)  # creates MLflow's schema on PostgreSQL
    mlflow_engine.dispose()
    mlflow_server.configure(settings)
    applied = migrate.upgrade(engine, settings.run_dir, also=lambda: mlflow_server.init_stores(settings))
    with migrate.migration_lock(engine, settings.run_dir):
        audit.configure(audit.load_or_create_key(settings.audit_key_path, engine))
    platform = Platform(settings, engine, session_factory(engine), applied)
    if bootstrap_admin:
        platform.bootstrap_token = _bootstrap(platform)
    return platform


def _bootstrap(platform: Platform) -> str | None:
    """On a brand-new home, create the admin identity and its token (under the migration lock)."""
    with (
        migrate.migration_lock(platform.engine, platform.settings.run_dir),
        transaction(platform.sessions) as session,
    ):
        if has_any_identity(session):
            return None
        _, secret = create_token(session, identity="admin", name="bootstrap", role="admin")
        return secret
