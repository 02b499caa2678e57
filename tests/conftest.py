"""Shared fixtures: real services (PostgreSQL, Redis), a real `pave up` in a subprocess.

Tests that need a service skip with a reason that says how to run them; under `.ci/run`
(``PAVE_REQUIRE_SERVICES=1``) a missing service fails the run instead.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from pave_testing import (
    POSTGRES_URL,
    REDIS_URL,
    PaveServer,
    S3Server,
    World,
    drop_schemas,
    envs_for_tests,
    need_service,
    pave_env,
)

# Code that falls back to MLflow's default tracking URI (./mlflow.db) must not litter the checkout.
os.environ.setdefault(
    "MLFLOW_TRACKING_URI", f"sqlite:///{tempfile.mkdtemp(prefix='pave-mlflow-')}/default.db"
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse two test modules with one file name, in every run, targeted ones too: the tests'
    folders are not packages, so pytest imports modules by file name and the whole suite's
    collection fails on the second one (a targeted run of either passes and hides it)."""
    seen: dict[str, Path] = {}
    for path in sorted(Path(__file__).parent.rglob("test_*.py")):
        if path.name in seen:
            raise pytest.UsageError(
                f"two test modules are named {path.name}: {seen[path.name]} and {path}; "
                "rename one (pytest imports test modules by file name)"
            )
        seen[path.name] = path


# --- PostgreSQL ------------------------------------------------------------------------------------


def _check_postgres() -> None:
    engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A PAVE_DATABASE_URL on the real PostgreSQL, in a fresh schema dropped afterwards."""
    need_service(
        "PostgreSQL",
        "start it, or point PAVE_TEST_POSTGRES_URL at one (postgresql+psycopg://user@host:5432/db)",
        _check_postgres,
    )
    schema = f"pave_t{secrets.token_hex(4)}"
    yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    drop_schemas(schema, f"{schema}_mlflow", f"{schema}_optuna")


@pytest.fixture
def redis_url() -> str:
    def check() -> None:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).ping()

    need_service("Redis", "start redis-server on 127.0.0.1:6379 or set PAVE_TEST_REDIS_URL", check)
    return REDIS_URL


# --- a real control plane --------------------------------------------------------------------------


@pytest.fixture
def pave_server_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., PaveServer]]:
    """Start real `pave up` processes; every one is stopped at the end of the test."""
    servers: list[PaveServer] = []

    def start(database_url: str | None = None, home: Path | None = None, *extra: str) -> PaveServer:
        home = home or tmp_path_factory.mktemp("pave-home")
        server = PaveServer.up(home, *extra, **({"PAVE_DATABASE_URL": database_url} if database_url else {}))
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="session")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaveServer]:
    """One `pave up` on SQLite shared by the tests that only read or add their own objects."""
    home = tmp_path_factory.mktemp("pave-shared")
    server = PaveServer.up(home, PAVE_MODEL_ENVS=str(envs_for_tests()))
    yield server
    server.stop()


# --- governance: a small world of projects, tokens and MLflow objects on a real server ---------------


@pytest.fixture(scope="session")
def world(shared_server: PaveServer) -> World:
    return World(shared_server)


_INVENTORY = """
import json
from pave.config import load_settings
from pave.tracking.server import configure
configure(load_settings())
from pave.api.app import route_inventory
print(json.dumps(route_inventory()))
"""


@pytest.fixture(scope="session")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    """Every (method, path) the control plane serves, MLflow's included, from a clean process."""
    home = tmp_path_factory.mktemp("inventory")
    out = subprocess.run(
        [sys.executable, "-c", _INVENTORY], env=pave_env(home), capture_output=True, text=True, check=True
    )
    routes = [tuple(r) for r in json.loads(out.stdout.strip().splitlines()[-1])]
    assert len(routes) > 300, "MLflow's routes are part of the inventory"
    return routes  # type: ignore[return-value]


# --- an S3-compatible object store -----------------------------------------------------------------


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto's standalone S3 server (what MLflow's own suite uses), started once per test process."""
    server = S3Server.start()
    yield server
    server.stop()


@pytest.fixture
def s3(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> S3Server:
    """The S3 server with this process's AWS variables pointing at it (for in-process code)."""
    for key, value in s3_server.env.items():
        monkeypatch.setenv(key, value)
    return s3_server
