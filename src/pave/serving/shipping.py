"""Shipping the inference log: gateways on any host, control planes that read it from the object store.

::

    gateway (any host)                                   control plane (every one)
    InferenceLog -> spool/inference-*.jsonl              mirror: new segment rows ->
      (a file closes every ship_interval)                  download into $PAVE_HOME/inference-log
    LogShipper thread: upload the complete file  ----->   (the folder every reader already reads:
      to <root>/inference-log/<day>/<host>-<file>,          monitors, rollouts, the portal, ingest)
      insert its row (inference_segments), delete it

The hot path only appends to a queue (``InferenceLog.record``); files close in the log's writer
thread and are shipped by one more thread, in the background, one request to the object store and
one row per file. When the object store or the database is away, files wait in the spool and are
shipped when it comes back; serving goes on. A file is removed from the spool only after its row is
committed, so a crash between the upload and the row ships it again (same key, same bytes).

Every control plane mirrors the segments into its own folder (each answers monitoring requests), on
every tick of its background thread and before feedback looks an inference id up. A segment is
downloaded once per control plane: the last id mirrored is kept in ``run/inference-mirror.json``
(ids handed out by a transaction that commits late are caught by re-listing the last minute).
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import deque
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine, delete, or_, select
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.processes import alive
from pave.store.tables import InferenceSegmentRow, utcnow

log = logging.getLogger(__name__)
PREFIX = "inference-log"
RELIST = timedelta(minutes=1)


def ships(settings: Settings) -> bool:
    """Whether this installation's gateways ship their log (``inference_log_ship``)."""
    if settings.inference_log_ship == "auto":
        return "://" in settings.artifacts
    return settings.inference_log_ship == "on"


def _span(data: bytes) -> tuple[float, float, int]:
    """First and last ``ts`` of a JSON-lines segment, and its number of records."""
    lines = data.splitlines()
    stamps = []
    for line in (lines[0], lines[-1]) if lines else ():
        try:
            stamps.append(float(orjson.loads(line).get("ts", 0.0)))
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            stamps.append(time.time())
    if not stamps:
        now = time.time()
        return now, now, 0
    return min(stamps), max(stamps), len(lines)


class LogShipper:
    """Sends a gateway's complete inference-log files to the object store, one row each in the store.

    Args:
        settings: the gateway's settings (artifact root, advertised URL, database).
        spool: the folder the gateway's InferenceLog writes to.
        engine: the metadata database (default: a small engine of its own).
    """

    def __init__(self, settings: Settings, spool: Path, engine: Engine | None = None) -> None:
        from pave.store.db import make_engine

        self.settings = settings
        self.spool = spool
        self.engine = engine or make_engine(settings.db_url, pool_size=1)
        self.gateway = settings.gateway_advertised_url
        self.host = socket.gethostname()
        self.shipped = 0
        self.failures = 0
        self._pending: deque[Path] = deque()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def closed(self, path: Path) -> None:
        """The InferenceLog's hook: ``path`` is complete (called in the log's writer thread)."""
        self._pending.append(path)
        self._wake.set()

    def start(self) -> None:
        self.spool.mkdir(parents=True, exist_ok=True)
        self._adopt_leftovers()
        if self._pending:
            self._wake.set()
        self._thread = threading.Thread(target=self._run, name="pave-log-shipper", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        """Ship what is pending (for up to ``timeout`` seconds), then stop; the rest waits on disk."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)
            self._thread = None

    def _adopt_leftovers(self) -> None:
        """Complete files left by processes that are gone (a restart, a killed worker)."""
        for path in sorted(self.spool.glob("inference-*.jsonl")):
            owner = path.name.rsplit("-", 2)[-2]
            if owner.isdigit() and int(owner) != os.getpid() and not alive(int(owner)):
                claimed = path.with_name(path.name.replace(f"-{owner}-", f"-{owner}x{os.getpid()}-"))
                try:
                    path.rename(claimed)  # one shipper claims it, even with several workers
                except FileNotFoundError:
                    continue
                self._pending.append(claimed)

    def _run(self) -> None:
        backoff = 0.0
        while True:
            self._wake.wait(timeout=backoff or 5.0)
            self._wake.clear()
            stopping = self._stop.is_set()
            while self._pending:
                path = self._pending[0]
                try:
                    self.ship(path)
                except Exception as exc:
                    self.failures += 1
                    backoff = min(30.0, max(1.0, backoff * 2))
                    log.warning(
                        "inference log: %s not shipped yet (%s: %s); retrying in %.0f s",
                        path.name,
                        type(exc).__name__,
                        str(exc)[:200],
                        backoff,
                    )
                    break
                self._pending.popleft()
                backoff = 0.0
            if stopping:
                return

    def ship(self, path: Path) -> None:
        """Upload one complete file, record its row, remove it from the spool."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return
        if not data:
            path.unlink(missing_ok=True)
            return
        with Session(self.engine) as session, session.begin():
            store_segment(self.settings, session, data, f"{self.host}-{path.name}", gateway=self.gateway)
        path.unlink(missing_ok=True)
        self.shipped += 1


def store_segment(settings: Settings, session: Session, data: bytes, name: str, *, gateway: str = "") -> str:
    """Upload one complete JSON-lines file as a segment and add its row (in ``session``); returns its key.

    ``name`` is ``<host>-inference-<stamp>-<rest>.jsonl`` (what :func:`_local_name` expects). The
    same key twice uploads the same bytes again and keeps the one row: a retry is harmless.
    """
    from pave.storage import open_storage

    first, last, records = _span(data)
    day = datetime.fromtimestamp(first, UTC).strftime("%Y-%m-%d")
    key = f"{PREFIX}/{day}/{name}"
    open_storage(settings.artifacts).put_bytes(key, data)
    if session.scalar(select(InferenceSegmentRow.id).where(InferenceSegmentRow.key == key)) is None:
        session.add(
            InferenceSegmentRow(
                key=key,
                gateway=gateway,
                first_ts=datetime.fromtimestamp(first, UTC),
                last_ts=datetime.fromtimestamp(last, UTC),
                records=records,
                bytes=len(data),
            )
        )
    return key


class Mirror:
    """A control plane's copy of the shipped segments, in the folder its readers read."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.directory = settings.inference_log_dir
        self._state = settings.run_dir / "inference-mirror.json"
        self._lock = threading.Lock()
        self.last_id = self._load()

    def _load(self) -> int:
        try:
            return int(json.loads(self._state.read_text())["last_id"])
        except (OSError, ValueError, KeyError, TypeError):
            return 0

    def pull(self, sessions: sessionmaker[Session], *, limit: int = 500) -> int:
        """Download the segments not mirrored yet; returns how many were downloaded."""
        with self._lock:
            return self._pull(sessions, limit)

    def _pull(self, sessions: sessionmaker[Session], limit: int) -> int:
        from pave.storage import open_storage

        with sessions() as session:
            rows = list(
                session.execute(
                    select(InferenceSegmentRow.id, InferenceSegmentRow.key, InferenceSegmentRow.last_ts)
                    .where(
                        or_(
                            InferenceSegmentRow.id > self.last_id,
                            InferenceSegmentRow.created_at > utcnow() - RELIST,
                        )
                    )
                    .order_by(InferenceSegmentRow.id)
                    .limit(limit)
                )
            )
        if not rows:
            return 0
        storage = open_storage(self.settings.artifacts)
        self.directory.mkdir(parents=True, exist_ok=True)
        fetched = 0
        for segment_id, key, last_ts in rows:
            target = self.directory / _local_name(key)
            if not target.exists():
                storage.download(key, target)
                stamp = last_ts.timestamp()
                os.utime(target, (stamp, stamp))  # retention and the readers go by the last record
                fetched += 1
            self.last_id = max(self.last_id, segment_id)
        self._state.write_text(json.dumps({"last_id": self.last_id}))
        return fetched


def _local_name(key: str) -> str:
    """``inference-log/<day>/<host>-inference-<stamp>-<pid>-<n>.jsonl`` -> ``inference-<stamp>-<host>-...``.

    The readers find a file's first moment in the second dash-separated field of its name.
    """
    name = key.rsplit("/", 1)[-1]
    host, _, rest = name.partition("-inference-")
    stamp, _, tail = rest.partition("-")
    return f"inference-{stamp}-{host.replace('-', '_')}-{tail}"


def prune_segments(sessions: sessionmaker[Session], settings: Settings, cutoff: datetime) -> int:
    """Remove the segments (objects and rows) whose last record is older than ``cutoff``."""
    from pave.storage import open_storage

    with sessions() as session:
        old: list[Any] = list(
            session.execute(
                select(InferenceSegmentRow.id, InferenceSegmentRow.key).where(
                    InferenceSegmentRow.last_ts < cutoff
                )
            )
        )
    if not old:
        return 0
    storage = open_storage(settings.artifacts)
    for _, key in old:
        storage.delete(key)
    with sessions() as session, session.begin():
        session.execute(delete(InferenceSegmentRow).where(InferenceSegmentRow.id.in_([i for i, _ in old])))
    return len(old)
