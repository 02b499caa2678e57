"""A batch job's predictions in the inference log, so that drift monitoring sees batch data.

``pave batch --monitor`` samples the scored rows (at most :data:`MONITOR_ROWS` per job, spread over
the parts in proportion to their rows; for CSV, whose length is not known in advance, the first
rows up to that number) and writes them as inference-log records of the deployment named after
the project: one record per part, its inputs by column name (the model's input columns) and its
outputs in the gateway's shape (``predict``, ``predict_proba`` as rows of class probabilities).
Drift and prediction-drift monitors read them like the gateway's own records, in the window the
job ran in.

The records go to a hidden file in the log folder, renamed to an ``inference-*.jsonl`` name once
the job's output is published: a failed job feeds nothing to monitoring.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import numpy as np

from pave.serving.inference_log import Record, encode

MONITOR_ROWS = 10_000
BATCH_ID_PREFIX = "pave-batch:"  # the inference index leaves these out: they are no requests served
_INDEXED = re.compile(r"^(.+)_(\d+)$")


class BatchLog:
    """Writes samples of the parts of one batch job as inference-log records.

    Args:
        directory: the inference log folder (the control plane's ``inference_log_dir``).
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
