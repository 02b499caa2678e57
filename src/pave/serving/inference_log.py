"""The inference log: every (sampled) request and answer, appended to JSON-lines files.

The gateway hands records to ``InferenceLog.record``, which only puts them on a queue; a
background thread serialises them with orjson, appends them to the current file, flushes after
every burst and fsyncs at most once per ``flush_interval``. Files rotate by size and by age and are
named by the UTC time of their first record, so a reader can skip whole files outside a window::

    <directory>/inference-20260102T030405.123456Z-<pid>-<n>.jsonl

One line per request::

    {"id": "...", "deployment": "churn", "version": "4", "ts": 1767322245.123, "latency_ms": 0.41,
     "shadow": false, "inputs": {"age": [41, 37], ...}, "outputs": {"predict": [0, 1], ...}}

plus ``"trace_id"`` (32 hex digits) when OpenTelemetry tracing is on: the request's trace.

Tabular inputs are logged by column name, whatever form the client sent them in. When the queue
holds more than ``max_queue`` records (the disk cannot keep up) new records are dropped and
counted rather than slowing the answers down. ``read_inference_log`` reads a time window back.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pandas as pd

log = logging.getLogger(__name__)

# The writer thread yields the GIL to the event loop after this long encoding (seconds): well under
# the gateway's switch interval (0.5 ms), so an answer waits at most this long for the writer.
# It yielded every 16 records (about 0.1 ms) before; each hand-off costs both threads a wake-up.
YIELD_AFTER = 0.00025


@dataclass(slots=True)
class Record:
    """One request as the gateway saw it; turned into JSON in the log thread, not on the hot path."""

    id: str
    deployment: str
    version: str
    ts: float
    latency: float
    inputs: Any  # the bound model input (matrix, DataFrame, tensors) or the raw OIP inputs
    columns: Sequence[str]  # column names of a matrix input
    outputs: dict[str, np.ndarray]
    shadow: bool = False
    error: str | None = None  # the version failed; the answer came from another one (or none)
    trace_id: str | None = None  # the request's OpenTelemetry trace (tracing on)


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _inputs_doc(record: Record) -> Any:
    inputs = record.inputs
    if isinstance(inputs, np.ndarray):
        if inputs.ndim == 2 and record.columns and inputs.shape[1] == len(record.columns):
            # A column view is not contiguous: orjson would hand each to ``_default``, a Python
            # call per column per record. One tolist() of the whole matrix writes the same JSON
            # (float64, integers, booleans); other floats keep numpy's shortest repr, as before.
            if inputs.dtype.kind in "biu" or inputs.dtype == np.float64:
                return dict(zip(record.columns, inputs.T.tolist(), strict=True))
            return dict(zip(record.columns, np.ascontiguousarray(inputs.T), strict=True))
        return {"input": inputs}
    if isinstance(inputs, pd.DataFrame):
        return {str(c): inputs[c].to_numpy() for c in inputs.columns}
    return inputs


def encode(record: Record) -> bytes:
    doc = {
        "id": record.id,
        "deployment": record.deployment,
        "version": record.version,
        "ts": record.ts,
        "latency_ms": round(record.latency * 1000, 4),
        "shadow": record.shadow,
        "inputs": _inputs_doc(record),
        "outputs": record.outputs,
    }
    if record.error is not None:
        doc["error"] = record.error
    if record.trace_id is not None:
        doc["trace_id"] = record.trace_id
    return orjson.dumps(doc, default=_default, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


class InferenceLog:
    """Appends records to rotating JSON-lines files from a background thread.

    Args:
        directory: where the files go (created if missing).
        sample_rate: the share of requests logged, 0..1.
        max_bytes: rotate the file past this size.
        max_age: rotate the file after this many seconds.
        flush_interval: fsync at most this often (seconds); records are flushed to the OS at once.
        max_queue: records waiting beyond this are dropped (and counted in ``dropped``).
        on_closed: called (in the writer thread) with each file once it is complete: rotated,
            idle past ``max_age`` or closed at shutdown. The shipper (``serving/shipping.py``)
            sends such files to the object store.
    """

    def __init__(
        self,
        directory: Path,
        *,
        sample_rate: float = 1.0,
        max_bytes: int = 64 * 1024 * 1024,
        max_age: float = 3600.0,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        on_closed: Callable[[Path], None] | None = None,
    ) -> None:
        self.directory = directory
        self.sample_rate = sample_rate
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.flush_interval = flush_interval
        self.max_queue = max_queue
        self.dropped = 0
        self.queued = 0  # records ever accepted by record(); the writer catches up with it
        self.written = 0
        self._dropped_on_write = 0
        # A deque, not a queue: append never wakes the writer, which drains it in bulk every
        # `poll_interval`. Waking a thread per record costs a GIL hand-off on every request.
        self._pending: deque[Record] = deque()
        self._stop = threading.Event()
        self.poll_interval = 0.05
        self._thread: threading.Thread | None = None
        self._file: IO[bytes] | None = None
        self._path: Path | None = None
        self.on_closed = on_closed
        self._file_started = 0.0
        self._file_bytes = 0
        self._sequence = 0
        self._random = random.Random()  # noqa: S311 - sampling, not security

    def sampled(self) -> bool:
        """Should this request be logged? Decided before building the record."""
        rate = self.sample_rate
        return rate >= 1.0 or (rate > 0.0 and self._random.random() < rate)

    def record(self, record: Record) -> None:
        """Queue a record; never blocks and never raises."""
        if len(self._pending) >= self.max_queue:
            self.dropped += 1
            return
        self._pending.append(record)
        self.queued += 1

    def start(self) -> None:
        if self._thread is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="pave-inference-log", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Write what is queued, fsync and close the file."""
        if self._thread is not None:
            self._stop.set()
            self._thread.join(timeout=30)
            self._thread = None

    def flush(self, timeout: float = 10.0) -> None:
        """Wait until every record queued so far is written (for tests and shutdown).

        Counted from what was queued, not from what still waits in the queue: the writer may hold
        a batch it has taken from the queue but not written yet.
        """
        target = self.queued
        deadline = time.monotonic() + timeout
        while self.written + self._dropped_on_write < target and time.monotonic() < deadline:
            time.sleep(0.005)

    # --- the writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        last_sync = time.monotonic()
        while True:
            stop = self._stop.wait(self.poll_interval)
            batch: list[Record] = []
            while self._pending:
                batch.append(self._pending.popleft())
            try:
                if batch:
                    self._write(batch)
                if self._file is not None and (stop or time.monotonic() - last_sync >= self.flush_interval):
                    os.fsync(self._file.fileno())
                    last_sync = time.monotonic()
                if self._file is not None and (stop or time.time() - self._file_started > self.max_age):
                    self._close_file()  # complete: a quiet gateway's last records ship too
            except Exception:  # a full disk must not kill the thread; the records are lost, said so
                self._dropped_on_write += len(batch)
                log.exception("inference log: could not write %d record(s)", len(batch))
            if stop:
                return

    def _close_file(self) -> None:
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        if self.on_closed is not None and self._path is not None:
            try:
                self.on_closed(self._path)
            except Exception:
                log.exception("inference log: the hook on %s failed", self._path.name)

    def _write(self, batch: list[Record]) -> None:
        written = 0
        clock = time.perf_counter
        yield_at = clock() + YIELD_AFTER
        for record in batch:
            try:
                line = encode(record)
            except Exception:
                self._dropped_on_write += 1
                log.exception("inference log: record %s could not be encoded", record.id)
                continue
            if (
                self._file is None
                or (self._file_bytes and self._file_bytes + len(line) > self.max_bytes)
                or time.time() - self._file_started > self.max_age
            ):
                self._rotate(record.ts)
            assert self._file is not None
            self._file.write(line)
            self._file_bytes += len(line)
            written += 1
            if clock() >= yield_at:
                # Let the event loop have the GIL now and then: a burst of encoding must not hold
                # an answer back. Not after every record: each hand-off of the GIL costs both
                # threads a wake-up, which under load cost more than the encoding itself.
                time.sleep(0)
                yield_at = clock() + YIELD_AFTER
        if self._file is not None:
            self._file.flush()
        self.written += written  # counted once readable: flush() waits on this

    def _rotate(self, first_ts: float) -> None:
        if self._file is not None:
            self._close_file()
        stamp = datetime.fromtimestamp(first_ts, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        self._sequence += 1
        path = self.directory / f"inference-{stamp}-{os.getpid()}-{self._sequence}.jsonl"
        self._file = open(path, "ab")  # noqa: SIM115 - lives across calls, closed on rotate/close
        self._path = path
        self._file_started = time.time()
        self._file_bytes = 0


def log_documents(directory: Path, lo: float, hi: float) -> Iterator[dict[str, Any]]:
    """Every complete record of the log files that may hold records between epochs ``lo`` and ``hi``.

    Files that started after ``hi`` or were last written before ``lo`` are skipped unread; the
    caller filters the records themselves by ``ts`` (with its own inclusive or exclusive bounds).
    A line still being written is skipped.
    """
    for path in sorted(directory.glob("inference-*.jsonl")):
        first = _file_start(path)
        if first is not None and first > hi:
            continue
        try:
            if path.stat().st_mtime < lo:
                continue
            content = path.read_bytes()
        except FileNotFoundError:  # rotated away meanwhile
            continue
        for line in content.splitlines():
            try:
                yield orjson.loads(line)
            except orjson.JSONDecodeError:
                continue


def _file_start(path: Path) -> float | None:
    try:
        stamp = path.name.split("-")[1]
        return datetime.strptime(stamp, "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC).timestamp()
    except (IndexError, ValueError):
        return None


def read_inference_log(
    directory: Path,
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    deployment: str | None = None,
    version: str | None = None,
    include_shadow: bool = False,
) -> pd.DataFrame:
    """The logged requests of a time window, oldest first.

    Args:
        directory: the inference log directory of a gateway (or several: files carry the pid).
        start, end: the window, inclusive start and exclusive end; naive datetimes are UTC.
        deployment, version: keep only these.
        include_shadow: also return the shadow versions' answers.

    Returns:
        One row per request: ``id``, ``deployment``, ``version``, ``timestamp`` (UTC),
        ``latency_ms``, ``shadow``, ``inputs`` and ``outputs`` (dicts of name -> list of values),
        ``error`` and ``trace_id`` (``None`` when there is none).
        ``explode_rows`` turns it into one row per predicted row with a column per input and output.
    """
    lo = _epoch(start) if start is not None else float("-inf")
    hi = _epoch(end) if end is not None else float("inf")
    rows: list[dict[str, Any]] = []
    for doc in log_documents(directory, lo, hi):
        ts = doc.get("ts", 0.0)
        if not lo <= ts < hi:
            continue
        if deployment is not None and doc.get("deployment") != deployment:
            continue
        if version is not None and doc.get("version") != version:
            continue
        if doc.get("shadow") and not include_shadow:
            continue
        rows.append(doc)
    columns = [
        "id",
        "deployment",
        "version",
        "timestamp",
        "latency_ms",
        "shadow",
        "inputs",
        "outputs",
        "error",
        "trace_id",
    ]
    if not rows:
        return pd.DataFrame(
            {c: pd.Series(dtype="datetime64[ns, UTC]" if c == "timestamp" else object) for c in columns}
        )
    frame = pd.DataFrame(rows)
    for optional in ("error", "trace_id"):  # written only when there is one
        if optional not in frame.columns:
            frame[optional] = None
    frame["timestamp"] = pd.to_datetime(frame.pop("ts"), unit="s", utc=True)
    return frame.sort_values("timestamp", kind="stable").reset_index(drop=True)[columns]


def explode_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per predicted row: ``id``, ``deployment``, ``version``, ``timestamp``, then a column per
    input (``age``...) and per output (``predict``, ``predict_proba``...)."""
    rows: list[dict[str, Any]] = []
    for record in frame.itertuples(index=False):
        inputs: dict[str, Any] = record.inputs if isinstance(record.inputs, dict) else {}
        outputs: dict[str, Any] = record.outputs if isinstance(record.outputs, dict) else {}
        n = max((len(v) for v in outputs.values() if isinstance(v, list)), default=0)
        for i in range(n):
            row: dict[str, Any] = {
                "id": record.id,
                "deployment": record.deployment,
                "version": record.version,
                "timestamp": record.timestamp,
            }
            for name, values in inputs.items():
                if isinstance(values, list) and len(values) == n:
                    row[name] = values[i]
            for name, values in outputs.items():
                if isinstance(values, list) and len(values) == n:
                    row[name] = values[i]
            rows.append(row)
    return pd.DataFrame(rows)


def _epoch(moment: datetime) -> float:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()
