"""retrain: {on: [data_change]} on real sources: a query on the real PostgreSQL, an object in moto's
S3 server, a URL on a local HTTP server. A run records the fingerprints; the control plane's loop
fingerprints the sources again (never the project folder: the recorded one does not even exist)
and queues a turn only when they changed, once per change."""

from __future__ import annotations

import hashlib
import secrets
import textwrap
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session, sessionmaker

from pave.automation import loop, triggers
from pave.config import Settings
from pave.pipelines import execute_project, load_spec
from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory
from pave.store.tables import LoopRunRow
from pave_testing import POSTGRES_URL, S3Server, drop_schemas, free_port, mlflow_store

STEPS = """
def count(df):
    return len(df)
"""

PAVE_YAML = """
name: {name}
data:
  sources:
    train: {source}
steps:
  - {{name: count, function: steps:count, inputs: {{df: data.train}}}}
retrain: {{on: [data_change]}}
"""


def frame(seed: int = 0, rows: int = 50) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"x": rng.integers(0, 100, rows), "y": rng.random(rows).round(6)})


class Platform:
    """A control plane's store and settings, plus a project whose last run it knows of."""

    def __init__(self, tmp_path: Path, source: str, **settings: Any) -> None:
        self.name = f"data-{secrets.token_hex(3)}"
        self.root = tmp_path / self.name
        self.root.mkdir()
        (self.root / "steps.py").write_text(textwrap.dedent(STEPS))
        (self.root / "pave.yaml").write_text(PAVE_YAML.format(name=self.name, source=source))
        self.settings = Settings(
            home=tmp_path / "home",
            artifact_root=str(tmp_path / "artifacts"),
            mlflow_database_url=mlflow_store(tmp_path / "mlflow.db"),
            source_check_interval=0,
            port=free_port(),  # the retrain jobs it starts reach no server
            **settings,
        )
        self.settings.ensure_home()
        engine = make_engine(self.settings.db_url)
        check_connection(engine)  # creates the schema on PostgreSQL
        migrate.upgrade(engine, tmp_path)
        self.sessions: sessionmaker[Session] = session_factory(engine)

    def run(self) -> dict[str, str]:
        """`pave run` (as a client would) and record the project, as `pave run` does."""
        done = execute_project(
            self.root, tracking_uri=self.settings.mlflow_db_url, settings=self.settings, progress=False
        )
        with self.sessions.begin() as session:
            loop.record_source(
                session,
                project=self.name,
                run_id=done.run_id,
                spec=load_spec(self.root).model_dump(mode="json", by_alias=True),
                actor="ann",
            )
        return done.fingerprints

    def check(self) -> list[LoopRunRow]:
        """One observation, done: the tick that starts it, then the tick that acts on it."""
        loop.tick(self.sessions, self.settings)
        triggers.settle()
        loop.tick(self.sessions, self.settings)
        with self.sessions() as session:
            return loop.runs(session, self.name)


def scenario(platform: Platform, change: Callable[[], None]) -> None:
    recorded = platform.run()
    assert set(recorded) == {"train"}
    assert platform.check() == []  # unchanged: no turn
    change()
    [turn] = platform.check()
    assert turn.trigger == "data_change"
    event = next(e for e in turn.history if e["event"] == "data_changed")
    assert event["sources"] == ["train"]
    assert event["recorded"] == recorded
    assert event["fingerprints"]["train"] != recorded["train"]
    # its job fails at once (no platform answers here); the same change starts no other turn
    assert turn.state in ("queued", "training", "failed")
    assert len(platform.check()) == 1
    # the retrain's run records the new fingerprints: nothing to do any more
    assert platform.run() == event["fingerprints"]
    assert len(platform.check()) == 1


@pytest.fixture
def table(postgres_url: str) -> Iterator[str]:
    schema = f"pave_src{secrets.token_hex(4)}"
    engine = create_engine(POSTGRES_URL)
    with engine.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        conn.execute(text(f'CREATE TABLE "{schema}".points (id serial primary key, x int, y float)'))
        conn.execute(
            text(f'INSERT INTO "{schema}".points (x, y) VALUES (:x, :y)'),  # noqa: S608
            frame().to_dict("records"),
        )
    yield f'"{schema}".points'
    engine.dispose()
    drop_schemas(schema)


@pytest.mark.postgres
def test_a_changed_row_queues_a_turn(
    tmp_path: Path, table: str, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source on PostgreSQL, and the platform's own store there too."""
    monkeypatch.setenv("PAVE_TEST_SOURCE_URL", POSTGRES_URL)
    source = f"{{sql: {{url: \"${{PAVE_TEST_SOURCE_URL}}\", query: 'select x, y from {table} order by id'}}}}"  # noqa: S608
    platform = Platform(
        tmp_path,
        source,
        database_url=postgres_url,
        source_env=["PAVE_TEST_SOURCE_URL"],
        egress_allowed_networks=["127.0.0.1/32"],
    )

    def change() -> None:
        engine = create_engine(POSTGRES_URL)
        with engine.begin() as conn:
            conn.execute(text(f"UPDATE {table} SET y = y + 1 WHERE id = 3"))  # noqa: S608
        engine.dispose()

    scenario(platform, change)


def test_an_overwritten_object_queues_a_turn(tmp_path: Path, s3: S3Server) -> None:
    bucket = f"src-{secrets.token_hex(4)}"
    client = s3.client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="points.csv", Body=frame().to_csv(index=False).encode())
    platform = Platform(tmp_path, f"{{url: s3://{bucket}/points.csv}}")
    scenario(
        platform,
        lambda: client.put_object(
            Bucket=bucket, Key="points.csv", Body=frame(1).to_csv(index=False).encode()
        ),
    )


class Files:
    """A local HTTP server of in-memory files with strong ETags."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        files = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: bool) -> None:
                data = files.files.get(self.path)
                self.send_response(200 if data is not None else 404)
                if data is not None:
                    self.send_header("ETag", f'"{hashlib.md5(data, usedforsecurity=False).hexdigest()}"')
                self.send_header("Content-Length", str(len(data or b"")))
                self.end_headers()
                if body and data:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def files() -> Iterator[Files]:
    server = Files()
    yield server
    server.server.shutdown()
    server.server.server_close()


def test_a_changed_url_queues_a_turn(tmp_path: Path, files: Files) -> None:
    files.files["/points.csv"] = frame().to_csv(index=False).encode()
    platform = Platform(
        tmp_path, f"{{url: {files.url}/points.csv}}", egress_allowed_networks=["127.0.0.1/32"]
    )

    def change() -> None:
        files.files["/points.csv"] = frame(2).to_csv(index=False).encode()

    scenario(platform, change)


def test_sources_the_control_plane_may_not_reach_never_start_a_turn(
    tmp_path: Path, files: Files, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.files["/points.csv"] = frame().to_csv(index=False).encode()
    # no egress_allowed_networks: 127.0.0.1 is not a public address
    platform = Platform(tmp_path, f"{{url: {files.url}/points.csv}}", source_env=["PAVE_TEST_READER"])
    platform.run()
    files.files["/points.csv"] = frame(3).to_csv(index=False).encode()
    assert platform.check() == []
    seen = triggers.observe(
        platform.name, load_spec(platform.root).model_dump(mode="json", by_alias=True), platform.settings
    )
    assert seen.current == {}
    assert "not a public address" in seen.skipped["train"]
    # a SQL URL whose variable the control plane was not allowed to expand
    monkeypatch.setenv("PAVE_DATABASE_URL_COPY", POSTGRES_URL)
    spec = {"data": {"sources": {"t": {"sql": {"url": "${PAVE_DATABASE_URL_COPY}", "query": "select 1"}}}}}
    seen = triggers.observe(platform.name, spec, platform.settings)
    assert "does not expand ${PAVE_DATABASE_URL_COPY}" in seen.skipped["t"]
    # an allowed variable, but inside a URL the spec writes: it could go to any host
    monkeypatch.setenv("PAVE_TEST_READER", "secret")
    spec = {
        "data": {
            "sources": {
                "t": {
                    "sql": {"url": "postgresql://u:${PAVE_TEST_READER}@example.org/db", "query": "select 1"}
                }
            }
        }
    }
    seen = triggers.observe(platform.name, spec, platform.settings)
    assert "expands a variable only as the whole URL" in seen.skipped["t"]


def test_the_platform_s_own_bucket_is_never_a_source_it_checks(tmp_path: Path, s3: S3Server) -> None:
    settings = Settings(home=tmp_path / "home", artifact_root="s3://platform-store/pave")
    spec = {"data": {"sources": {"t": {"url": "s3://platform-store/pave/datasets/ab/x.csv"}}}}
    seen = triggers.observe("p", spec, settings)
    assert seen.current == {}
    assert "the platform's own store" in seen.skipped["t"]


def test_only_projects_that_ask_are_watched() -> None:
    assert triggers.watches_data({"retrain": {"on": ["data_change"]}})
    assert not triggers.watches_data({"retrain": {"schedule": "@daily"}})
    assert not triggers.watches_data({})
    spec = {"data": {"sources": {"a": {"path": "a.csv"}, "b": {"url": "s3://b/k.csv"}}}}
    assert list(triggers.sources_of(spec)) == ["b"]  # a project file is never read by the platform
