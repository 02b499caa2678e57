"""Batch scoring's folder output: a Parquet dataset of part files, committed whole or not at all.

``--output scored/`` (a local folder or ``s3://BUCKET/prefix/``: the trailing slash says "a
folder") writes one Parquet file per part of the input, ``part-000000.parquet``,
``part-000001.parquet`` ... in the input's order, so that ``pandas.read_parquet("scored/")`` and
``pyarrow.dataset`` read the input's rows back in order (they list a folder's files by name). The
job's threads write the parts in parallel (one Parquet file is encoded by one thread: a single
output file is the job's sequential bottleneck).

Commit: the parts are written into a hidden folder beside a local target
(``.scored.partial-PID``) and renamed into place once every part is written, with a ``_SUCCESS``
manifest (JSON: rows, the part files and their rows, columns, model version); readers skip names
starting with ``_`` or ``.``. In object storage (no rename) the parts are uploaded under the prefix
once the job has succeeded, under names of this job's own (``part-000000-JOB.parquet``: no object
of the previous output is overwritten), and ``_SUCCESS`` is written last, replacing the previous
one in one put (the commit); the previous output's parts are removed after it. A failed upload
removes what it uploaded and leaves the previous output as it was, complete with its
``_SUCCESS``. An output is complete when its ``_SUCCESS`` is there, and is the files it lists.
A target that exists and is not a Pave output (a folder or prefix holding files but no
``_SUCCESS``) is refused before anything is scored: it may be someone's data.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, Future
from pathlib import Path
from typing import Any

from pave.errors import InvalidInput

MARKER = "_SUCCESS"


def part_name(index: int) -> str:
    """The file of part ``index``: names sort in the input's order (six digits: a million parts)."""
    return f"part-{index:06d}.parquet"


# A column whose Snappy pages in the input are at least this share of their plain size is written
# uncompressed: the codec would cost CPU time for nothing (measured: full-precision floats).
INCOMPRESSIBLE = 0.95


def input_codecs(path: Path, kind: str) -> dict[str, str]:
    """The codec for each input column in the output: ``none`` for a column that its Parquet input
    holds compressed to no gain (by the file's own metadata), else ``snappy``."""
    import pyarrow.parquet as pq

    if kind != "parquet":
        from pave.serving.batch_io import read_csv

        return dict.fromkeys(map(str, read_csv(path, nrows=0).columns), "snappy")
    metadata = pq.ParquetFile(path).metadata
    plain: dict[str, int] = {}
    packed: dict[str, int] = {}
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for j in range(row_group.num_columns):
            chunk = row_group.column(j)
            name = chunk.path_in_schema
            compressed = chunk.compression != "UNCOMPRESSED"
            plain[name] = plain.get(name, 0) + chunk.total_uncompressed_size
            packed[name] = packed.get(name, 0) + (chunk.total_compressed_size if compressed else 0)
    return {
        name: "none" if size and packed[name] >= INCOMPRESSIBLE * size else "snappy"
        for name, size in plain.items()
    }


def null_free_columns(path: Path, kind: str) -> set[str]:
    """The input columns that hold no null in any row group, by the Parquet file's own statistics
    (none for CSV, or for a column of a row group without a null count)."""
    import pyarrow.parquet as pq

    if kind != "parquet":
        return set()
    metadata = pq.ParquetFile(path).metadata
    nulls: dict[str, int] = {}
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for j in range(row_group.num_columns):
            chunk = row_group.column(j)
            stats, name = chunk.statistics, chunk.path_in_schema
            counted = stats is not None and stats.has_null_count
            nulls[name] = nulls.get(name, 0) + (stats.null_count if counted else 1)
    return {name for name, count in nulls.items() if count == 0}


def declared_required(table: Any, names: set[str]) -> Any:
    """``table`` with the columns ``names`` declared not null: Parquet stores them REQUIRED, with no
    definition level per value, which Arrow's writer computes and encodes for a nullable column
    even when it holds no null (a third of the writing time for float columns; and a reader of the
    output skips them too). ``names``: :func:`null_free_columns`, the same for every part of a job,
    so that the parts have one schema."""
    import pyarrow as pa

    if not any(f.nullable and f.name in names for f in table.schema):
        return table
    for name in names & set(table.column_names):
        if table.column(name).null_count:
            raise InvalidInput(
                f"column '{name}' holds nulls, though the input's statistics say it has none",
                hint="rewrite the input file (its column statistics are wrong), then run the job again",
            )
    fields = [f.with_nullable(False) if f.name in names else f for f in table.schema]
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, metadata=table.schema.metadata))


def writer_options(schema: Any, codecs: dict[str, str]) -> dict[str, Any]:
    """The Parquet writer's settings for a scored table (one file or a part of a folder).

    No dictionary for float columns: their values rarely repeat, and Arrow builds a dictionary for
    every column chunk before it gives up on it (four fifths of the writing time, measured). The
    input's columns get the codec of :func:`input_codecs` (``codecs``); the columns the model adds
    are Snappy, but float ones (probabilities, regression outputs: full-precision floats, measured
    incompressible) none. Statistics are kept. docs/compute.md gives the measured costs and sizes.
    """
    import pyarrow as pa

    return {
        "use_dictionary": [f.name for f in schema if not pa.types.is_floating(f.type)],
        "compression": {
            f.name: codecs.get(f.name, "none" if pa.types.is_floating(f.type) else "snappy") for f in schema
        },
    }


class DatasetSink:
    """The output folder, written a part file at a time, by any thread (committed once complete).

    ``write`` writes the next part in the calling thread; ``submit`` numbers the part in the
    calling thread (the input's order) and writes it on ``pool``.
    """

    kind = "dataset"

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.rows = self.parts = 0
        self.columns: list[str] = []
        self.files: list[tuple[str, int]] = []
        self.tap: Callable[[Any], None] | None = None  # sees each part once numbered
        self.codecs: dict[str, str] = {}  # the input columns' codecs (input_codecs)
        self.required: set[str] = set()  # the input columns written not null (null_free_columns)
        self._next = 0
        self._lock = threading.Lock()

    def __enter__(self) -> DatasetSink:
        self.path.mkdir(parents=True, exist_ok=True)
        return self

    def _number(self, table: Any) -> int:
        index, self._next = self._next, self._next + 1
        if index == 0:
            self.columns = table.schema.names
        if self.tap is not None:
            self.tap(table)
        return index

    def _write(self, index: int, table: Any) -> None:
        import pyarrow.parquet as pq

        name = part_name(index)
        table = declared_required(table, self.required)
        pq.write_table(table, str(self.path / name), **writer_options(table.schema, self.codecs))
        with self._lock:
            self.rows += table.num_rows
            self.parts += 1
            self.files.append((name, table.num_rows))

    def write(self, table: Any) -> None:
        self._write(self._number(table), table)

    def submit(self, table: Any, pool: Executor) -> Future[None]:
        return pool.submit(self._write, self._number(table), table)

    def close(self, failed: bool = False) -> None:
        """Finish the folder: an empty input gives one empty part (a dataset of no files has no
        schema to read back)."""
        import pyarrow as pa

        if not failed and self._next == 0:
            self._write(0, pa.table({}))
            self._next = 1

    def manifest(self, **extra: Any) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "parts": [{"file": name, "rows": rows} for name, rows in sorted(self.files)],
            "columns": self.columns,
            **extra,
        }

    def __exit__(self, *exc: object) -> None:
        self.close(failed=exc[0] is not None)


# --- local folders ----------------------------------------------------------------------------------


def _refuse_foreign(where: str, entries: list[str]) -> None:
    if entries and MARKER not in entries:
        raise InvalidInput(
            f"the output {where} exists and is not a finished Pave batch output (no {MARKER} in it)",
            hint="choose another --output, or remove it first if its files are not needed",
        )


def local_target(path: Path) -> None:
    """Refuse a local target that is a file, or a folder that holds files and no ``_SUCCESS``."""
    if path.exists() and not path.is_dir():
        raise InvalidInput(
            f"the output {path}/ names a folder, and {path} is a file",
            hint="give a folder's path ending with / (or a .parquet or .csv file name)",
        )
    if path.is_dir():
        _refuse_foreign(f"folder {path}", [p.name for p in path.iterdir()])


@contextlib.contextmanager
def staged_folder(target: Path) -> Iterator[Path]:
    """A hidden folder beside ``target`` for the parts; removed unless it was published."""
    local_target(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        yield staged
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def publish_folder(staged: Path, target: Path, manifest: dict[str, Any]) -> None:
    """Write the manifest, then rename the folder into place (the previous output, if any, is
    renamed away first and removed: a reader sees the old output, nothing, or the new one)."""
    local_target(target)  # checked again: it may have appeared while the job ran
    _write_manifest(staged / MARKER, manifest)
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    if target.exists():
        os.replace(target, old)
    os.replace(staged, target)
    shutil.rmtree(old, ignore_errors=True)


def _write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(json.dumps(manifest, indent=1) + "\n")


# --- object storage -----------------------------------------------------------------------------------


def _prefix_entries(store: Any, prefix: str) -> list[str]:
    return [info.key.removeprefix(prefix) for info in store.list(prefix)]


def s3_target(uri: str) -> tuple[Any, str]:
    """The store and key prefix of ``s3://BUCKET/prefix/``; refuses a prefix holding objects and
    no ``_SUCCESS``."""
    from pave.serving.batch_io import split_uri
    from pave.storage import open_storage

    root, key = split_uri(uri.rstrip("/") + "/x")
    prefix = key.removesuffix("x")
    store = open_storage(root)
    _refuse_foreign(uri, _prefix_entries(store, prefix))
    return store, prefix


def prefix_part_name(name: str, job: str) -> str:
    """A part's object name in object storage: the job's id after the index (names of one output
    still sort in the input's order, and never overwrite an object of the previous output)."""
    stem = name.removesuffix(".parquet")
    return f"{stem}-{job}.parquet"


def publish_prefix(staged: Path, uri: str, manifest: dict[str, Any]) -> None:
    """Upload the parts under the prefix, then ``_SUCCESS`` (the commit); see the module's text."""
    store, prefix = s3_target(uri)
    before = set(_prefix_entries(store, prefix))
    job = secrets.token_hex(4)
    files = {part["file"]: prefix_part_name(part["file"], job) for part in manifest["parts"]}
    manifest = {**manifest, "parts": [{**part, "file": files[part["file"]]} for part in manifest["parts"]]}
    uploaded: list[str] = []
    try:
        for local, name in files.items():
            store.put_file(prefix + name, staged / local)
            uploaded.append(name)
        store.put_bytes(prefix + MARKER, (json.dumps(manifest, indent=1) + "\n").encode())
    except BaseException:
        for name in uploaded:  # the new output's own objects only: the previous one stays complete
            with contextlib.suppress(Exception):
                store.delete(prefix + name)
        raise
    for name in before - set(files.values()) - {MARKER}:  # the previous output's parts
        store.delete(prefix + name)
