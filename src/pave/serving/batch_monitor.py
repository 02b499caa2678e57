"""A batch job's predictions in the inference log, so that drift monitoring sees batch data.

``pave batch --monitor`` samples the scored rows (at most :data:`MONITOR_ROWS` per job, spread over
the parts in proportion to their rows; for CSV, whose length is not known in advance, the first
rows up to that number) and writes them as inference-log records of the deployment named after
the project: one record per part, its inputs by column name (the model's input columns) and its
outputs in the gateway's shape (``predict``, ``predict_proba`` as rows of class probabilities).
Drift and prediction-drift monitors read them like the gateway's own records, in the window the
job ran in.

The records go to a hidden file in a folder of the job's own, renamed to an ``inference-*.jsonl``
name once the job's output is published: a failed job feeds nothing to monitoring. The client then
sends the file to the control plane (``POST /api/v1/projects/P/batch/monitoring``, in bodies of
:func:`request_bodies`), wherever the job ran: the control plane checks every record
(:func:`check_records`: the project's own deployment, a ``pave-batch:`` id, sane shapes) and stores
them the way that installation stores its inference log (:func:`store_records`): a segment in the
object store that every control plane mirrors, or a file of its own log folder.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket
import time
import uuid
from collections.abc import Collection, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.errors import InvalidInput
from pave.serving.inference_log import Record, encode

MONITOR_ROWS = 10_000
BATCH_ID_PREFIX = "pave-batch:"  # the inference index leaves these out: they are no requests served
_INDEXED = re.compile(r"^(.+)_(\d+)$")


class BatchLog:
    """Writes samples of the parts of one batch job as inference-log records.

    Args:
        directory: where the job's log file goes (a folder of its own; the client sends the file on).
        deployment: the deployment name the records carry (monitors select on it).
        version: the model version that scored the rows.
        inputs: the model's input columns.
        total_rows: the job's rows when known in advance (Parquet), for an even sample.
    """

    def __init__(
        self,
        directory: Path,
        *,
        deployment: str,
        version: str,
        inputs: list[str],
        total_rows: int | None,
        rows: int = MONITOR_ROWS,
    ) -> None:
        self.directory, self.deployment, self.version, self.inputs = directory, deployment, version, inputs
        self.rate = 1.0 if not total_rows else min(1.0, rows / total_rows)
        self.left = rows
        self.logged = 0
        self._job = uuid.uuid4().hex[:12]
        self._random = np.random.default_rng(0)
        self._file: IO[bytes] | None = None
        self._first_ts: float | None = None
        self._staged = directory / f".batch-{self._job}.partial"

    def add(self, table: Any, added: list[str]) -> None:
        """Sample the rows of one scored part (a ``pyarrow.Table``) into a record.

        ``added`` names the prediction columns the job added to the part.
        """
        n_rows = table.num_rows
        take = min(self.left, n_rows if self.rate >= 1.0 else round(n_rows * self.rate))
        if take <= 0:
            return
        picked = (
            table if take >= n_rows else table.take(np.sort(self._random.choice(n_rows, take, replace=False)))
        )
        names = set(picked.column_names)
        ts = time.time()
        record = Record(
            id=f"{BATCH_ID_PREFIX}{self._job}-{self.logged}",
            deployment=self.deployment,
            version=self.version,
            ts=ts,
            latency=0.0,
            inputs={c: _values(picked, c) for c in self.inputs if c in names},
            columns=(),
            outputs=_outputs(picked, added),
        )
        if self._file is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._file = self._staged.open("wb")
            self._first_ts = ts
        self._file.write(encode(record))
        self.left -= take
        self.logged += 1

    def publish(self) -> Path | None:
        """Make the records visible to the readers of the log; returns the file (None: nothing logged)."""
        if self._file is None:
            return None
        self._file.close()
        assert self._first_ts is not None
        stamp = datetime.fromtimestamp(self._first_ts, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        path = self.directory / f"inference-{stamp}-{os.getpid()}-batch{self._job}.jsonl"
        os.replace(self._staged, path)
        self._file = None
        return path

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        with contextlib.suppress(FileNotFoundError):
            self._staged.unlink()


def _values(table: Any, name: str) -> np.ndarray:
    column = table.column(name)
    if hasattr(column.type, "value_type"):  # a dictionary column: its values
        column = column.cast(column.type.value_type)
    return np.ascontiguousarray(column.to_numpy(zero_copy_only=False))


def _outputs(table: Any, added: list[str]) -> dict[str, np.ndarray]:
    """The added columns in the gateway's shape: ``predict_proba_0``, ``_1`` ... back into rows."""
    outputs: dict[str, np.ndarray] = {}
    grouped: dict[str, list[tuple[int, str]]] = {}
    for name in added:
        match = _INDEXED.match(name)
        if match and match.group(1) not in added:
            grouped.setdefault(match.group(1), []).append((int(match.group(2)), name))
        else:
            outputs[name] = _values(table, name)
    for base, parts in grouped.items():
        outputs[base] = np.stack([_values(table, name) for _, name in sorted(parts)], axis=1)
    return outputs


# --- the control plane's side: records checked, then stored like the inference log ------------------

REQUEST_BYTES = 8 * 1024 * 1024  # a request body of :func:`request_bodies`, well under the gate's limit
FIELDS = ("id", "deployment", "version", "ts", "latency_ms", "shadow", "inputs", "outputs")
MAX_COLUMNS = 5_000
MAX_TEXT = 1_000  # characters of a string value, a column or output name
MAX_WIDTH = 10_000  # values of one output row (class probabilities)
MAX_AGE = 7 * 24 * 3600.0  # seconds: records older than this are no batch job's fresh sample
MAX_AHEAD = 300.0  # seconds of clock skew between the job's host and the control plane
_SCALARS = (str, int, float, bool, type(None))


def request_bodies(directory: Path) -> Iterator[bytes]:
    """The JSON bodies that carry a job's published log files, each under :data:`REQUEST_BYTES`
    (a record larger than that goes alone) and with at most :data:`MONITOR_ROWS` rows."""
    lines: list[bytes] = []
    size = rows = 0
    for path in sorted(directory.glob("inference-*.jsonl")):
        for line in path.read_bytes().splitlines():
            n = _rows(orjson.loads(line))
            if lines and (size + len(line) > REQUEST_BYTES or rows + n > MONITOR_ROWS):
                yield b'{"records":[' + b",".join(lines) + b"]}"
                lines, size, rows = [], 0, 0
            lines.append(line)
            size, rows = size + len(line) + 1, rows + n
    if lines:
        yield b'{"records":[' + b",".join(lines) + b"]}"


def _rows(doc: Any) -> int:
    outputs = doc.get("outputs") if isinstance(doc, dict) else None
    values = next(iter(outputs.values()), None) if isinstance(outputs, dict) and outputs else None
    return len(values) if isinstance(values, list) else 0


def check_records(
    project: str, records: list[Any], *, registered: Collection[str], now: float | None = None
) -> tuple[bytes, float, int]:
    """Check records sent to ``project``'s monitoring; returns them as JSON lines, the first ``ts``
    and the number of rows. ``registered``: the versions of the project's model in the registry
    (a record of any other version would feed monitors rows no deployed or registered model made).

    Raises:
        InvalidInput: naming the first bad record and what is wrong with it; nothing is stored then.
    """
    now = time.time() if now is None else now
    if not records:
        raise InvalidInput("no records to store", hint="send the lines `pave batch --monitor` wrote")
    lines: list[bytes] = []
    rows = 0
    for index, doc in enumerate(records):
        try:
            rows += _check_record(project, doc, now, registered)
        except InvalidInput as error:
            raise InvalidInput(f"record {index}: {error.message}", hint=error.hint) from None
        if rows > MONITOR_ROWS:
            raise InvalidInput(
                f"the records hold more than {MONITOR_ROWS} rows",
                hint=f"a batch job logs at most {MONITOR_ROWS} rows; send fewer records per request",
            )
        lines.append(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
    return b"".join(lines), min(float(doc["ts"]) for doc in records), rows


def _check_record(project: str, doc: Any, now: float, registered: Collection[str]) -> int:
    """One record's rows, or an InvalidInput saying what is wrong with it."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"a record is a JSON object, got {type(doc).__name__}")
    missing, unknown = [f for f in FIELDS if f not in doc], sorted(set(doc) - set(FIELDS))
    if missing or unknown:
        raise InvalidInput(
            f"missing field(s) {missing} and unknown field(s) {unknown}",
            hint=f"a record has exactly the fields {', '.join(FIELDS)}",
        )
    if doc["deployment"] != project:
        raise InvalidInput(
            f"deployment {str(doc['deployment'])[:100]!r} is not this project ({project})",
            hint="a batch job feeds only the monitors of the project it scored for",
        )
    if not isinstance(doc["id"], str) or not doc["id"].startswith(BATCH_ID_PREFIX) or len(doc["id"]) > 100:
        raise InvalidInput(
            "id is not a batch record's id",
            hint=f"ids start with {BATCH_ID_PREFIX!r} (at most 100 characters)",
        )
    if not isinstance(doc["version"], str) or not 0 < len(doc["version"]) <= 64:
        raise InvalidInput("version is not a model version (a string of 1 to 64 characters)")
    if doc["version"] not in registered:
        known = ", ".join(sorted(registered, key=lambda v: (len(v), v))[-5:]) or "none"
        raise InvalidInput(
            f"version {doc['version']!r} is not a registered version of model {project} (latest: {known})",
            hint=f"score with a registered version; list them with `pave models {project}`",
        )
    _check_numbers(doc, now)
    inputs, outputs = doc["inputs"], doc["outputs"]
    if not isinstance(outputs, dict) or not outputs:
        raise InvalidInput("outputs is not an object of prediction columns", hint='e.g. {"predict": [0, 1]}')
    rows = _rows(doc)
    if not 0 < rows <= MONITOR_ROWS:
        raise InvalidInput(f"outputs hold {rows} rows; a record holds 1 to {MONITOR_ROWS}")
    if not isinstance(inputs, dict) or len(inputs) > MAX_COLUMNS:
        raise InvalidInput(f"inputs is not an object of at most {MAX_COLUMNS} columns")
    for name, values in inputs.items():
        _check_column("input", name, values, rows, nested=False)
    for name, values in outputs.items():
        _check_column("output", name, values, rows, nested=True)
    return rows


def _check_numbers(doc: dict[str, Any], now: float) -> None:
    ts, latency = doc["ts"], doc["latency_ms"]
    if not _number(ts) or not now - MAX_AGE <= ts <= now + MAX_AHEAD:
        raise InvalidInput(
            f"ts {str(ts)[:40]} is not a time of the last {MAX_AGE / 86400:.0f} days "
            "(seconds since the epoch)",
            hint="check the clock of the host that ran the job",
        )
    if not _number(latency) or latency < 0:
        raise InvalidInput("latency_ms is not a number from 0")
    if doc["shadow"] is not False:
        raise InvalidInput("shadow is not false: batch records are no shadow answers")


def _check_column(kind: str, name: str, values: Any, rows: int, *, nested: bool) -> None:
    if not name or len(name) > MAX_TEXT:
        raise InvalidInput(f"an {kind} column name is empty or longer than {MAX_TEXT} characters")
    if not isinstance(values, list) or len(values) != rows:
        raise InvalidInput(
            f"{kind} {name[:100]!r} is not a list of {rows} values (one per row of the outputs)",
            hint="every input and output column has one value per scored row",
        )
    for value in values:
        if isinstance(value, list) and nested:
            if len(value) > MAX_WIDTH or not all(_number(v) for v in value):
                raise InvalidInput(f"{kind} {name[:100]!r} has a row that is not a list of numbers")
        elif not isinstance(value, _SCALARS) or (isinstance(value, str) and len(value) > MAX_TEXT):
            raise InvalidInput(
                f"{kind} {name[:100]!r} has a value that is not a number, a string of at most "
                f"{MAX_TEXT} characters, a boolean or null"
            )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def store_records(
    settings: Settings, sessions: sessionmaker[Session], data: bytes, first_ts: float
) -> tuple[str, str]:
    """Store checked records the way this installation stores its inference log.

    Returns ``("segment", KEY)`` when the log is shipped to the object store (every control plane
    mirrors the segment into its folder), else ``("file", NAME)``: a file of ``inference_log_dir``,
    written under a hidden name and renamed once complete.
    """
    from pave.serving.shipping import ships, store_segment

    stamp = datetime.fromtimestamp(first_ts, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    name = f"inference-{stamp}-{os.getpid()}-batch{uuid.uuid4().hex[:12]}.jsonl"
    if ships(settings):
        with sessions() as session, session.begin():
            key = store_segment(settings, session, data, f"{socket.gethostname()}-{name}", gateway="batch")
        return "segment", key
    directory = settings.inference_log_dir
    directory.mkdir(parents=True, exist_ok=True)
    staged = directory / f".{name}.partial"
    try:
        with staged.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(staged, directory / name)
    finally:
        staged.unlink(missing_ok=True)
    return "file", name
