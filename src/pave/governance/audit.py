"""The audit trail: append-only, hash-chained, one record per mutation and per denied attempt.

Every record carries who (identity, token), what (action, method, path), which resource
(project, model, run), the outcome (HTTP status), when, from where (client address) and the
request id. Its hash is ``HMAC-SHA256(key, prev_hash + canonical JSON of the record)``; the first
record's ``prev_hash`` is 64 zeros. Editing a row breaks its own hash; deleting one leaves a gap
in the gapless ``seq``; deleting the last rows leaves the chain shorter than its head (the
``audit.seq`` counter, updated in the same transaction as every append).

The key lives outside the database (:class:`AuditKey`, a file of mode 0600 in ``PAVE_HOME`` or
the one ``audit_key_file`` names), so someone who can write the database cannot rebuild a valid
chain after editing it. Chains started before the key existed keep their plain ``sha256``
records up to ``keyed_from - 1`` (written in the key file when it was made); the first keyed
record points at the last of them, so they are anchored too.

Appends are serialised so the chain never forks: on PostgreSQL every append locks the head row
(``SELECT ... FOR UPDATE``); on SQLite a process-wide lock plus ``BEGIN IMMEDIATE`` (one writer
at a time across processes). ``seq`` is unique as a last line of defence.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.orm import Session

from pave.errors import ConfigError, InvalidInput
from pave.store.tables import AuditEvent, Counter

GENESIS = "0" * 64
HEAD_COUNTER = "audit.seq"
HASHED_FIELDS = (
    "seq",
    "at",
    "identity",
    "token_id",
    "action",
    "method",
    "path",
    "project",
    "model",
    "run_id",
    "status",
    "outcome",
    "client",
    "request_id",
    "detail",
)
_SQLITE_WRITER = threading.Lock()


@dataclass
class AuditEntry:
    """What the caller knows about one request; ``seq``, ``at`` and the hashes are set on append."""

    method: str
    path: str
    status: int
    request_id: str
    action: str = "-"
    identity: str | None = None
    token_id: int | None = None
    project: str | None = None
    model: str | None = None
    run_id: str | None = None
    client: str | None = None
    detail: str | None = None
    at: str | None = None

    @property
    def outcome(self) -> str:
        if self.status in (401, 403):
            return "denied"
        return "allowed" if self.status < 400 else "failed"


@dataclass
class VerifyResult:
    """What ``pave audit verify`` found."""

    ok: bool
    checked: int
    head: int
    first_bad_seq: int | None = None
    problem: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical(record: dict[str, Any]) -> str:
    """The canonical JSON of a record's hashed fields: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        {k: record.get(k) for k in HASHED_FIELDS}, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


@dataclass(frozen=True)
class AuditKey:
    """The chain's HMAC key, and the first record it signs (older records are plain SHA-256)."""

    secret: bytes
    keyed_from: int = 1

    def signs(self, seq: int) -> bool:
        return seq >= self.keyed_from


_KEY: AuditKey | None = None


def configure(key: AuditKey | None) -> None:
    """Use ``key`` for every append and verify of this process (the control plane sets it at start)."""
    global _KEY
    _KEY = key


def current_key() -> AuditKey | None:
    return _KEY


def load_or_create_key(path: Path, engine: Engine) -> AuditKey:
    """Read the key file, or make it (mode 0600) keyed from the record after the chain's head.

    Call under the migration lock: two processes making it at once would disagree on the key.
    """
    if path.exists():
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            return AuditKey(bytes.fromhex(data["key"]), int(data["keyed_from"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"the audit key file {path} is not valid",
                hint="restore it from your backup (without it the chain cannot be verified)",
            ) from exc
    with engine.connect() as conn:
        head = conn.execute(select(Counter.value).where(Counter.name == HEAD_COUNTER)).scalar_one_or_none()
    key = AuditKey(secrets.token_bytes(32), (head or 0) + 1)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump({"key": key.secret.hex(), "keyed_from": key.keyed_from}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    return key


def chain_hash(prev_hash: str, record: dict[str, Any], key: AuditKey | None = None) -> str:
    """The record's link: HMAC-SHA256 under ``key`` when it signs the record's seq, else SHA-256."""
    message = (prev_hash + canonical(record)).encode("utf-8")
    if key is not None and key.signs(int(record["seq"])):
        return hmac.new(key.secret, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def _clip(value: str | None, size: int) -> str | None:
    return None if value is None else value[:size]


def append(engine: Engine, entry: AuditEntry) -> dict[str, Any]:
    """Append one record to the chain (blocking: call it off the event loop); return it."""
    if engine.dialect.name == "sqlite":
        with _SQLITE_WRITER, engine.connect() as raw:
            conn = raw.execution_options(isolation_level="AUTOCOMMIT")
            conn.exec_driver_sql("BEGIN IMMEDIATE")
            try:
                record = _append_locked(conn, entry, for_update=False)
            except BaseException:
                conn.exec_driver_sql("ROLLBACK")
                raise
            conn.exec_driver_sql("COMMIT")
            return record
    with engine.begin() as conn:
        return _append_locked(conn, entry, for_update=True)


def _append_locked(conn: Connection, entry: AuditEntry, *, for_update: bool) -> dict[str, Any]:
    head_query = select(Counter.value).where(Counter.name == HEAD_COUNTER)
    if for_update:
        head_query = head_query.with_for_update()
    head = conn.execute(head_query).scalar_one()
    prev_hash = GENESIS
    if head:
        prev_hash = (
            conn.execute(select(AuditEvent.hash).where(AuditEvent.seq == head)).scalar_one_or_none() or ""
        )
    record: dict[str, Any] = {
        "seq": head + 1,
        "at": entry.at or now_iso(),
        "identity": _clip(entry.identity, 200),
        "token_id": entry.token_id,
        "action": entry.action[:40],
        "method": entry.method[:10],
        "path": entry.path[:2000],
        "project": _clip(entry.project, 200),
        "model": _clip(entry.model, 200),
        "run_id": _clip(entry.run_id, 64),
        "status": entry.status,
        "outcome": entry.outcome,
        "client": _clip(entry.client, 100),
        "request_id": entry.request_id[:64],
        "detail": _clip(entry.detail, 500),
    }
    record["prev_hash"] = prev_hash
    record["hash"] = chain_hash(prev_hash, record, _KEY)
    conn.execute(insert(AuditEvent).values(**record))
    conn.execute(update(Counter).where(Counter.name == HEAD_COUNTER).values(value=head + 1))
    return record


def _row_dict(row: AuditEvent) -> dict[str, Any]:
    return {k: getattr(row, k) for k in (*HASHED_FIELDS, "prev_hash", "hash")}


def parse_since(since: str) -> str:
    """``30m``, ``2h``, ``7d`` or an ISO date/time -> the ISO timestamp to compare ``at`` with."""
    units = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
    if since[-1:] in units and since[:-1].isdigit():
        moment = datetime.now(UTC) - timedelta(**{units[since[-1]]: int(since[:-1])})
    else:
        try:
            moment = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError as exc:
            raise InvalidInput(
                f"since={since!r} is neither a duration nor an ISO date",
                hint="--since 2h or --since 2026-11-29",
            ) from exc
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def query(
    session: Session,
    *,
    identity: str | None = None,
    project: str | None = None,
    outcome: str | None = None,
    since: str | None = None,
    limit: int = 100,
    after_seq: int = 0,
    request_id: str | None = None,
) -> list[dict[str, Any]]:
    """Records matching every filter given, oldest first, at most ``limit`` (1..1000)."""
    if outcome is not None and outcome not in ("allowed", "denied", "failed"):
        raise InvalidInput(f"unknown outcome {outcome!r}", hint="use allowed, denied or failed")
    limit = max(1, min(limit, 1000))
    stmt = select(AuditEvent).where(AuditEvent.seq > after_seq)
    if identity is not None:
        stmt = stmt.where(AuditEvent.identity == identity)
    if project is not None:
        stmt = stmt.where(AuditEvent.project == project)
    if outcome is not None:
        stmt = stmt.where(AuditEvent.outcome == outcome)
    if since is not None:
        stmt = stmt.where(AuditEvent.at >= parse_since(since))
    if request_id is not None:
        stmt = stmt.where(AuditEvent.request_id == request_id)
    rows = session.scalars(stmt.order_by(AuditEvent.seq).limit(limit))
    return [_row_dict(row) for row in rows]


def iter_all(session: Session, batch: int = 1000) -> Iterator[dict[str, Any]]:
    """Every record in seq order, in batches (for verify and export)."""
    last = 0
    while True:
        rows = list(
            session.scalars(
                select(AuditEvent).where(AuditEvent.seq > last).order_by(AuditEvent.seq).limit(batch)
            )
        )
        if not rows:
            return
        for row in rows:
            yield _row_dict(row)
        last = rows[-1].seq


def verify(session: Session, key: AuditKey | None = None) -> VerifyResult:
    """Walk the chain; report the first record that was edited, deleted, rebuilt or is out of place.

    ``key`` defaults to the process's (:func:`configure`); a record the key should sign whose hash
    is not its HMAC was written, or rewritten, by someone without the key.
    """
    key = key or _KEY
    head = session.execute(select(Counter.value).where(Counter.name == HEAD_COUNTER)).scalar_one_or_none()
    head = head or 0
    expected_seq, prev_hash, checked = 1, GENESIS, 0
    for record in iter_all(session):
        if record["seq"] != expected_seq:
            return VerifyResult(
                False,
                checked,
                head,
                expected_seq,
                f"record {expected_seq} is missing (deleted): the next record is {record['seq']}",
            )
        if record["prev_hash"] != prev_hash:
            return VerifyResult(
                False,
                checked,
                head,
                expected_seq,
                f"record {expected_seq} does not point at the hash of record {expected_seq - 1}",
            )
        if chain_hash(prev_hash, record, key) != record["hash"]:
            rebuilt = (
                key is not None
                and key.signs(expected_seq)
                and chain_hash(prev_hash, record) == record["hash"]
            )
            return VerifyResult(
                False,
                checked,
                head,
                expected_seq,
                f"record {expected_seq} was rebuilt without the audit key: its hash is not the key's HMAC"
                if rebuilt
                else f"record {expected_seq} was edited: its hash does not match",
            )
        prev_hash = record["hash"]
        expected_seq += 1
        checked += 1
    if checked != head:
        return VerifyResult(
            False,
            checked,
            head,
            checked + 1,
            f"the chain ends at record {checked} but its head says {head}: the last "
            f"{head - checked} record(s) were deleted",
        )
    return VerifyResult(True, checked, head)
