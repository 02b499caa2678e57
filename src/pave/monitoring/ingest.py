"""The inference index: which deployment and version answered an inference id, and what it predicted.

The gateways write JSON lines (:mod:`pave.serving.inference_log`); the control plane reads each
file from where it stopped (a byte offset per file, in the store, covering complete lines only) and
indexes every answered request: id, deployment, version, time and outputs. Labels posted later
(``POST /api/v1/feedback``) find their prediction here; :func:`ingest` runs on every tick of the
control plane's background loop, and once more when feedback names an id the index does not have
yet. Shadow copies are not indexed: a label belongs to the answer the caller got.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import orjson
from sqlalchemy import Table, select
from sqlalchemy.orm import Session, sessionmaker

from pave.store.tables import InferenceIndexRow, InferenceLogCursor, utcnow

log = logging.getLogger(__name__)
MAX_BYTES_PER_TICK = 64 * 1024 * 1024
_LOCK = threading.Lock()  # the background loop and a feedback request may ingest at once


def ingest(sessions: sessionmaker[Session], directory: Path, *, max_bytes: int = MAX_BYTES_PER_TICK) -> int:
    """Index the complete lines written since the last call; returns how many requests were indexed."""
    if not directory.is_dir():
        return 0
    with _LOCK:
        return _ingest(sessions, directory, max_bytes)


def _ingest(sessions: sessionmaker[Session], directory: Path, max_bytes: int) -> int:
    total = 0
    budget = max_bytes
    for path in sorted(directory.glob("inference-*.jsonl")):
        if budget <= 0:
            break
        with sessions() as session, session.begin():
            cursor = session.scalar(select(InferenceLogCursor).where(InferenceLogCursor.path == str(path)))
            offset = cursor.offset if cursor is not None else 0
            try:
                size = path.stat().st_size
                if size <= offset:
                    continue
                with path.open("rb") as handle:
                    handle.seek(offset)
                    chunk = handle.read(min(size - offset, budget))
            except FileNotFoundError:
                continue
            end = chunk.rfind(b"\n") + 1  # complete lines only: the gateway may be mid-line
            if end == 0:
                continue
            total += _index(session, chunk[:end])
            budget -= end
            if cursor is None:
                session.add(InferenceLogCursor(path=str(path), offset=offset + end))
            else:
                cursor.offset, cursor.updated_at = offset + end, utcnow()
    return total


def _index(session: Session, data: bytes) -> int:
    """Index the requests of ``data`` (complete lines); how many were new.

    The control plane's busiest write: on a laptop it shares the gateway's cores, one row per
    request answered. So the rows go to the driver's ``executemany`` as plain tuples (SQLAlchemy's
    per-row parameter building cost more than SQLite's insert), the timestamp through the column
    type's own bind processor, the outputs as JSON text from orjson, and a repeated id (a file
    read twice after a crash) is skipped by ``ON CONFLICT DO NOTHING`` rather than looked up first.
    """
    rows: dict[str, dict[str, Any]] = {}
    for line in data.splitlines():
        try:
            doc = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        row = _row(doc)
        if row is not None:
            rows[row["inference_id"]] = row
    if not rows:
        return 0
    connection = session.connection()
    dialect = connection.dialect
    table = cast(Table, InferenceIndexRow.__table__)
    stamp = table.c.ts.type.dialect_impl(dialect).bind_processor(dialect) or (lambda value: value)
    params = [
        (
            r["inference_id"],
            r["deployment"],
            r["version"],
            stamp(r["ts"]),
            r["n_rows"],
            orjson.dumps(r["outputs"]).decode(),
        )
        for r in rows.values()
    ]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    outputs = f"CAST({mark} AS JSON)" if dialect.name == "postgresql" else mark  # JSON text, not JSON
    marks = [mark] * (len(_COLUMNS) - 1) + [outputs]
    statement = (  # constants only: the table's and columns' names, placeholders
        f"INSERT INTO {table.name} ({', '.join(_COLUMNS)}) VALUES ({', '.join(marks)}) "  # noqa: S608
        "ON CONFLICT (inference_id) DO NOTHING"
    )
    inserted = 0
    for start in range(0, len(params), 2_000):
        result = connection.exec_driver_sql(statement, params[start : start + 2_000])
        inserted += max(result.rowcount, 0)
    return inserted


# The index's columns in the order ``_index`` binds them; ``outputs`` (JSON) last.
_COLUMNS = ("inference_id", "deployment", "version", "ts", "n_rows", "outputs")


def _row(doc: Any) -> dict[str, Any] | None:
    if not isinstance(doc, dict) or doc.get("shadow") or not isinstance(doc.get("id"), str):
        return None
    if doc["id"].startswith("pave-batch:"):  # a batch job's sample (pave batch --monitor): no request
        return None
    found = doc.get("outputs")
    outputs: dict[str, Any] = found if isinstance(found, dict) else {}
    n_rows = max((len(v) for v in outputs.values() if isinstance(v, list)), default=0)
    try:
        ts = datetime.fromtimestamp(float(doc.get("ts", 0.0)), UTC)
    except (TypeError, ValueError, OverflowError):
        return None
    return {
        "inference_id": doc["id"][:64],
        "deployment": str(doc.get("deployment", ""))[:100],
        "version": str(doc.get("version", ""))[:20],
        "ts": ts,
        "n_rows": n_rows,
        "outputs": {str(k): v for k, v in outputs.items() if isinstance(v, list)},
    }
