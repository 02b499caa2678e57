"""The audit chain: appends under concurrency, verify, tamper detection, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import json
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from pave.errors import ConfigError
from pave.governance import audit
from pave.store import migrate
from pave.store.db import make_engine, session_factory
from pave_testing import PaveServer, World, run_pave


def _engine(url: str, tmp_path: Path) -> Engine:
    engine = make_engine(url)
    migrate.upgrade(engine, tmp_path)
    return engine


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pave.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        from pave.store.db import check_connection

        check_connection(make_engine(url))
    engine = _engine(url, tmp_path)
    yield engine
    engine.dispose()


def _entry(i: int, **extra: Any) -> audit.AuditEntry:
    return audit.AuditEntry(
        method="POST", path=f"/api/v1/things/{i}", status=201, request_id=f"r{i}", **extra
    )


def _untrigger(engine: Engine) -> None:
    """What an attacker with the database owner's rights does first."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS audit_events_no_delete"))


def test_chain_links_every_record_to_the_previous_one(engine: Engine) -> None:
    records = [audit.append(engine, _entry(i, identity="alice", project="p")) for i in range(5)]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    assert records[0]["prev_hash"] == audit.GENESIS
    for before, after in itertools.pairwise(records):
        assert after["prev_hash"] == before["hash"]
        assert after["hash"] == audit.chain_hash(before["hash"], after)
    with session_factory(engine)() as session:
        result = audit.verify(session)
        assert result.ok
        assert result.checked == 5
        assert result.head == 5
        assert [r["seq"] for r in audit.query(session, identity="alice", project="p")] == [1, 2, 3, 4, 5]
        assert audit.query(session, identity="bob") == []


def test_concurrent_appends_never_fork_the_chain(engine: Engine) -> None:
    errors: list[BaseException] = []

    def writer(k: int) -> None:
        try:
            for i in range(15):
                audit.append(engine, _entry(k * 100 + i))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with session_factory(engine)() as session:
        rows = list(audit.iter_all(session))
        assert [r["seq"] for r in rows] == list(range(1, 91))
        assert len({r["prev_hash"] for r in rows}) == 90, "no two records share a predecessor"
        assert audit.verify(session).ok


def test_the_table_refuses_updates_and_deletes(engine: Engine) -> None:
    audit.append(engine, _entry(1))
    for statement in ("UPDATE audit_events SET status = 200", "DELETE FROM audit_events"):
        with pytest.raises(Exception, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))


@pytest.mark.parametrize(
    ("tamper", "bad_seq", "words"),
    [
        ("UPDATE audit_events SET status = 200 WHERE seq = 3", 3, "edited"),
        ("UPDATE audit_events SET identity = 'mallory' WHERE seq = 1", 1, "edited"),
        ("DELETE FROM audit_events WHERE seq = 2", 2, "missing"),
        ("DELETE FROM audit_events WHERE seq >= 4", 4, "deleted"),
    ],
)
def test_verify_pinpoints_the_first_bad_record(engine: Engine, tamper: str, bad_seq: int, words: str) -> None:
    for i in range(5):
        audit.append(engine, _entry(i))
    _untrigger(engine)
    with engine.begin() as conn:
        conn.execute(text(tamper))
    with session_factory(engine)() as session:
        result = audit.verify(session)
    assert not result.ok
    assert result.first_bad_seq == bad_seq
    assert words in (result.problem or "")


def test_rewriting_a_record_with_a_fresh_hash_breaks_the_next_link(engine: Engine) -> None:
    for i in range(4):
        audit.append(engine, _entry(i))
    _untrigger(engine)
    with session_factory(engine)() as session:
        record = next(r for r in audit.iter_all(session) if r["seq"] == 2)
    record["identity"] = "mallory"
    forged = audit.chain_hash(record["prev_hash"], record)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_events SET identity = 'mallory', hash = :h WHERE seq = 2"), {"h": forged}
        )
    with session_factory(engine)() as session:
        result = audit.verify(session)
    assert not result.ok
    assert result.first_bad_seq == 3


def _rebuild_from(engine: Engine, seq: int, identity: str) -> None:
    """What someone with write access to the database but not the key does: edit record ``seq`` and
    recompute every hash after it the only way they can, with plain SHA-256."""
    _untrigger(engine)
    with session_factory(engine)() as session:
        records = list(audit.iter_all(session))
    prev = next((r["hash"] for r in records if r["seq"] == seq - 1), audit.GENESIS)
    with engine.begin() as conn:
        for record in records[seq - 1 :]:
            if record["seq"] == seq:
                record["identity"] = identity
            record["prev_hash"] = prev
            record["hash"] = prev = audit.chain_hash(prev, record)
            conn.execute(
                text("UPDATE audit_events SET identity = :i, prev_hash = :p, hash = :h WHERE seq = :s"),
                {"i": record["identity"], "p": record["prev_hash"], "h": record["hash"], "s": record["seq"]},
            )


@pytest.fixture
def keyed(engine: Engine, tmp_path: Path) -> Any:
    key = audit.load_or_create_key(tmp_path / "audit.key", engine)
    audit.configure(key)
    yield key
    audit.configure(None)


def test_a_chain_rebuilt_without_the_key_is_detected(engine: Engine, keyed: audit.AuditKey) -> None:
    for i in range(5):
        audit.append(engine, _entry(i, identity="alice"))
    with session_factory(engine)() as session:
        assert audit.verify(session).ok
        assert audit.verify(session, keyed).ok
    _rebuild_from(engine, 1, "mallory")
    with session_factory(engine)() as session:
        unkeyed = audit.verify(session, audit.AuditKey(b"", keyed_from=10**9))  # how verify was before
        result = audit.verify(session)
    assert unkeyed.ok, "a plain hash chain cannot tell: that is the attack"
    assert not result.ok
    assert result.first_bad_seq == 1
    assert "rebuilt without the audit key" in (result.problem or "")


def test_the_key_lives_outside_the_database_in_a_private_file(engine: Engine, tmp_path: Path) -> None:
    path = tmp_path / "keys" / "audit.key"
    key = audit.load_or_create_key(path, engine)
    assert path.stat().st_mode & 0o777 == 0o600
    assert audit.load_or_create_key(path, engine) == key, "made once, then read"
    assert len(key.secret) == 32
    with engine.connect() as conn:
        assert key.secret.hex() not in str(conn.execute(text("SELECT * FROM audit_events")).all())
    path.write_text("not json")
    with pytest.raises(ConfigError, match="not valid"):
        audit.load_or_create_key(path, engine)


def test_an_existing_chain_is_migrated_and_stays_anchored(engine: Engine, tmp_path: Path) -> None:
    """Records written before the key existed keep their plain hashes; the first keyed record pins them."""
    for i in range(3):
        audit.append(engine, _entry(i))
    key = audit.load_or_create_key(tmp_path / "audit.key", engine)
    assert key.keyed_from == 4
    audit.configure(key)
    try:
        for i in range(3, 6):
            audit.append(engine, _entry(i))
        with session_factory(engine)() as session:
            assert audit.verify(session).ok
        _rebuild_from(engine, 2, "mallory")  # a legacy record, re-linked all the way to the head
        with session_factory(engine)() as session:
            result = audit.verify(session)
    finally:
        audit.configure(None)
    assert not result.ok
    assert result.first_bad_seq == 4, "the first keyed record cannot be re-linked without the key"
    assert "rebuilt without the audit key" in (result.problem or "")


# --- end to end: the middleware writes, the CLI reads ----------------------------------------------


def test_mutations_and_denials_are_recorded_with_who_what_where(world: World) -> None:
    viewer = world.token("audit-viewer", "viewer")
    world.project("audit-proj")
    experiment_id = world.experiment("audit-proj")
    run_id = world.run(experiment_id)

    allowed = world.mlflow(
        "POST",
        "runs/log-metric",
        json={"run_id": run_id, "key": "m", "value": 1.0, "timestamp": 0, "step": 0},
    )
    assert allowed.status_code == 200
    record = world.last_audit(allowed.headers["x-request-id"])
    assert record["identity"] == "admin"
    assert record["outcome"] == "allowed"
    assert record["status"] == 200
    assert record["project"] == "audit-proj"
    assert record["run_id"] == run_id
    assert record["method"] == "POST"
    assert record["path"].endswith("/runs/log-metric")
    assert record["client"] == "127.0.0.1"

    denied = world.mlflow("POST", "runs/set-tag", viewer, json={"run_id": run_id, "key": "k", "value": "v"})
    assert denied.status_code == 403
    record = world.last_audit(denied.headers["x-request-id"])
    assert record["identity"] == "audit-viewer"
    assert record["outcome"] == "denied"
    assert record["status"] == 403
    assert record["project"] == "audit-proj"

    with httpx_client(world.server) as anonymous:
        response = anonymous.get("/api/v1/projects", headers={"X-Request-Id": "anon-probe-1"})
    assert response.status_code == 401
    record = world.last_audit("anon-probe-1")
    assert record["identity"] is None
    assert record["outcome"] == "denied"

    read = world.mlflow("GET", "runs/get", params={"run_id": run_id})
    assert world.audit(request_id=read.headers["x-request-id"]) == [], "reads are not audited"


def httpx_client(server: PaveServer) -> Any:
    import httpx

    return httpx.Client(base_url=server.url, timeout=30)


def test_audit_api_is_admin_only_and_filters(world: World) -> None:
    developer = world.token("audit-dev", "developer")
    with world.server.client(developer) as client:
        assert client.get("/api/v1/audit").status_code == 403
        assert client.get("/api/v1/audit/verify").status_code == 403
    denied = world.audit(identity="audit-dev", outcome="denied")
    assert len(denied) >= 2
    assert all(r["identity"] == "audit-dev" for r in denied)
    assert world.audit(since="2000-01-01")
    assert world.audit(identity="nobody-at-all") == []
    with world.admin() as admin:
        assert admin.get("/api/v1/audit", params={"outcome": "maybe"}).status_code == 400
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True


def test_cli_verify_export_and_tamper_detection(pave_server_factory: Any, tmp_path: Path) -> None:
    server = pave_server_factory()
    world = World(server)
    world.project("cli-audit")
    world.token("someone", "viewer")
    env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token, "COLUMNS": "250"}

    listed = run_pave("audit", "--project", "cli-audit", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "/api/v1/projects" in listed.stdout
    ok = run_pave("audit", "verify", env=env)
    assert ok.returncode == 0, ok.stderr
    assert "intact" in ok.stdout

    out = tmp_path / "audit.jsonl"
    exported = run_pave("audit", "export", "--output", str(out), env=env)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["seq"] for r in lines] == list(range(1, len(lines) + 1))
    assert all(set(r) >= {"hash", "prev_hash", "identity", "status", "request_id"} for r in lines)

    engine = make_engine(f"sqlite:///{server.home / 'pave.db'}")
    _untrigger(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_events SET status = 200 WHERE seq = 2"))
    engine.dispose()
    broken = run_pave("audit", "verify", env=env)
    assert broken.returncode == 1
    assert "record 2" in broken.stderr
    assert "edited" in broken.stderr

    # with write access to the database, but not to the key file: the chain is rebuilt
    assert (server.home / "audit.key").stat().st_mode & 0o777 == 0o600
    engine = make_engine(f"sqlite:///{server.home / 'pave.db'}")
    _rebuild_from(engine, 2, "mallory")
    engine.dispose()
    rebuilt = run_pave("audit", "verify", env=env)
    assert rebuilt.returncode == 1
    assert "record 2 was rebuilt without the audit key" in rebuilt.stderr


@pytest.mark.postgres
def test_server_on_postgres_audits_and_verifies(pave_server_factory: Any, postgres_url: str) -> None:
    server = pave_server_factory(postgres_url)
    world = World(server)
    world.project("pg-audit")
    experiment_id = world.experiment("pg-audit")
    world.run(experiment_id)
    with server.client("pave_wrong") as client:
        assert client.get("/api/v1/whoami").status_code == 401
    rows = world.audit()
    assert {r["outcome"] for r in rows} >= {"allowed", "denied"}
    assert any(r["project"] == "pg-audit" and r["path"].endswith("runs/create") for r in rows)
    with world.admin() as admin:
        assert admin.get("/api/v1/audit/verify").json()["ok"] is True
    engine = make_engine(postgres_url)
    _untrigger(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_events WHERE seq = 2"))
    engine.dispose()
    with world.admin() as admin:
        result = admin.get("/api/v1/audit/verify").json()
    assert result["ok"] is False
    assert result["first_bad_seq"] == 2
