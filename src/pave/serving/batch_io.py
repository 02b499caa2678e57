"""Batch scoring's input and output: table formats, local or object-store files, staged output.

The input becomes a local file (an object is downloaded first: Parquet needs random access). The
output is written part by part (:class:`Sink`) under a temporary name beside a local target, or in
a temporary folder for object storage, and published only once complete (:func:`publish`: renamed
into place, or uploaded as one multipart upload), so a failed job leaves nothing that looks
complete. An output named with a trailing ``/`` is a folder of Parquet part files
(:mod:`pave.serving.batch_dataset`), committed the same way plus a ``_SUCCESS`` manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from pave.errors import InvalidInput, NotFound
from pave.serving.batch_dataset import (
    DatasetSink,
    declared_required,
    publish_folder,
    publish_prefix,
    s3_target,
    staged_folder,
    writer_options,
)
from pave.serving.batch_score import VERSION_COLUMN


def table_format(uri: str) -> str:
    """``parquet`` or ``csv``, from the name (``.parquet``/``.pq``, ``.csv``/``.csv.gz``)."""
    name = uri.lower()
    if name.endswith((".parquet", ".pq")):
        return "parquet"
    if name.endswith((".csv", ".csv.gz", ".tsv")):
        return "csv"
    raise InvalidInput(
        f"{uri}: cannot tell the table format from the name",
        hint="name a .parquet or .csv file (local path or s3://BUCKET/KEY), "
        "or a folder for Parquet part files ending with / (output only)",
    )


def read_csv(path: Path, **options: Any) -> Any:
    """``pandas.read_csv`` of a CSV input: tab-separated for a ``.tsv`` name, commas otherwise."""
    import pandas as pd

    return pd.read_csv(path, sep="\t" if path.name.lower().endswith(".tsv") else ",", **options)


def output_format(uri: str) -> str:
    """``dataset`` for a folder (the name ends with ``/``: Parquet part files), else
    :func:`table_format`."""
    return "dataset" if uri.endswith("/") else table_format(uri)


def split_uri(uri: str) -> tuple[str, str]:
    """An object-store URI as (store root, key): ``s3://b/k/x.pq`` -> (``s3://b``, ``k/x.pq``)."""
    from pave.storage import BACKENDS

    scheme, _, rest = uri.partition("://")
    if scheme not in BACKENDS or scheme == "file":
        stores = ", ".join(f"{s}://" for s in BACKENDS if s != "file")
        raise InvalidInput(
            f"{uri}: batch scoring reads and writes local files and {stores} objects, not {scheme}://",
            hint="copy the table to a local path or to s3://BUCKET/KEY",
        )
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise InvalidInput(f"{uri} names no object", hint="write it as s3://BUCKET/path/file.parquet")
    return f"{scheme}://{bucket}", key


def refuse_overwriting_input(input_uri: str, output_uri: str) -> None:
    """Refuse an output that would replace the input (the same file or object, or a folder output
    holding it): the input would be lost once the output is published."""

    def place(uri: str) -> str:
        path = local_output(uri)
        return str(path.resolve()) + ("/" if uri.endswith("/") else "") if path is not None else uri

    source, target = place(input_uri), place(output_uri)
    if source == target or (target.endswith("/") and source.startswith(target)):
        raise InvalidInput(
            f"--output {output_uri} would replace the input {input_uri}",
            hint="write the scored table to another file or folder, e.g. --output scored.parquet",
        )


def check_readable(path: Path, kind: str, uri: str) -> None:
    """Refuse an input that is not a table of its format (empty, another format, unreadable), before
    a model is loaded or anything written."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        columns = list(pq.read_schema(path).names if kind == "parquet" else read_csv(path, nrows=0).columns)
    except pd.errors.EmptyDataError:
        raise InvalidInput(
            f"--input {uri} is empty: no header line, no rows",
            hint="pass a CSV file with a header line of column names (or a Parquet file)",
        ) from None
    except (pa.ArrowException, pd.errors.ParserError, UnicodeDecodeError, OSError, ValueError) as exc:
        raise InvalidInput(
            f"--input {uri} cannot be read as {kind}: {str(exc).splitlines()[0][:200]}",
            hint=f"check that it is a {kind} file (the format is told by the name's extension)",
        ) from None
    scored = [
        c for c in map(str, columns) if c == VERSION_COLUMN or c == "predict" or c.startswith("predict_")
    ]
    if scored:
        raise InvalidInput(
            f"--input {uri} has the column(s) {', '.join(scored)} that scoring adds: a table scored before?",
            hint="score the table it was scored from, or drop those columns from the input",
        )


@contextlib.contextmanager
def local_input(uri: str, folder: Path) -> Iterator[Path]:
    """The input as a local file (an object is downloaded first: Parquet needs random access)."""
    if "://" not in uri or uri.startswith("file://"):
        path = Path(uri.removeprefix("file://")).expanduser()
        if not path.is_file():
            raise NotFound(f"no input file at {path}", hint="check the --input path")
        check_readable(path, table_format(uri), uri)
        yield path
        return
    from pave.storage import open_storage

    root, key = split_uri(uri)
    store = open_storage(root)
    if store.head(key) is None:
        raise NotFound(f"no object at {uri}", hint="check the --input URI (s3://BUCKET/KEY)")
    local = store.download(key, folder / PurePosixPath(key).name)
    check_readable(local, table_format(uri), uri)
    yield local


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(8 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# A file's digest is reused only if it was last changed at least this long before it was hashed:
# a write within the same tick of the file system's clock would leave its times unchanged.
SETTLED_NS = 2_000_000_000


def _identity(path: Path) -> tuple[str, int]:
    """What changes whenever the file's content may have: its path, device, inode, size, and the
    times of the last write (mtime) and of the last change of any kind (ctime, which no call can
    set back). Returns (identity, the later of the two times)."""
    stat = path.stat()
    parts = (path.resolve(), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    return "|".join(map(str, parts)), max(stat.st_mtime_ns, stat.st_ctime_ns)


def input_digest(path: Path, cache: Path | None) -> str:
    """The sha256 of a local file, remembered in ``cache`` by the file's identity.

    Scoring the same unchanged file again (another version, another output) reads the digest
    instead of the file: a different content means a different size, mtime or ctime, hence a
    different identity (as git's index trusts a file's stat data). The digest is remembered only
    when the file's identity is the same after hashing as before, and the file was last changed
    :data:`SETTLED_NS` before the hashing began.
    """
    if cache is None:
        return sha256(path)
    began = time.time_ns()
    identity, changed = _identity(path)
    entry = cache / hashlib.blake2b(identity.encode(), digest_size=16).hexdigest()
    with contextlib.suppress(OSError, UnicodeDecodeError):
        known = entry.read_text().strip()
        if len(known) == 64 and all(c in "0123456789abcdef" for c in known):
            return known
    digest = sha256(path)
    if changed <= began - SETTLED_NS and _identity(path)[0] == identity:
        with contextlib.suppress(OSError):
            cache.mkdir(parents=True, exist_ok=True)
            staged = entry.with_name(f"{entry.name}.partial-{os.getpid()}-{threading.get_ident()}")
            staged.write_text(digest)
            os.replace(staged, entry)
    return digest


class Sink:
    """The output, written part by part under a temporary name (published once complete)."""

    def __init__(self, path: Path, kind: str) -> None:
        self.path, self.kind = path, kind
        self.rows = self.parts = 0
        self.columns: list[str] = []
        self._writer: Any = None
        self._stream: Any = None
        self.tap: Callable[[Any], None] | None = None  # sees each part once written
        self.codecs: dict[str, str] = {}  # the input columns' codecs (batch_dataset.input_codecs)
        self.required: set[str] = set()  # written not null (batch_dataset.null_free_columns)

    def __enter__(self) -> Sink:
        if self.kind == "csv":
            self._stream = self.path.open("wb")
        return self

    def write(self, table: Any) -> None:
        import pyarrow.parquet as pq

        if self.kind == "parquet":
            table = declared_required(table, self.required)
            if self._writer is None:
                options = writer_options(table.schema, self.codecs)
                self._writer = pq.ParquetWriter(str(self.path), table.schema, **options)  # Arrow's own file
                self.columns = table.schema.names
            elif table.schema != self._writer.schema:
                table = table.cast(self._writer.schema)
            self._writer.write_table(table)
        else:
            frame = table.to_pandas()
            frame.to_csv(self._stream, index=False, header=self.parts == 0)
            self.columns = list(frame.columns)
        self.rows += table.num_rows
        self.parts += 1
        if self.tap is not None:
            self.tap(table)

    def close(self, failed: bool = False) -> None:
        """Finish the file (idempotent)."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if self._writer is not None:
            self._writer.close()
            self._writer = None
        elif self.kind == "parquet" and not failed and not self.path.exists():
            pq.write_table(pa.table({}), str(self.path))  # an empty input: an empty table
        if self._stream is not None:
            self._stream.close()
            self._stream = None

    def submit(self, table: Any, pool: Any) -> None:
        """Write ``table`` now, in this thread (one file is written in order); see
        :meth:`DatasetSink.submit`."""
        self.write(table)

    def __exit__(self, *exc: object) -> None:
        self.close(failed=exc[0] is not None)


def open_sink(path: Path, kind: str) -> Sink | DatasetSink:
    """The writer of the output staged at ``path``: one file (``parquet``, ``csv``) or a folder."""
    return DatasetSink(path) if kind == "dataset" else Sink(path, kind)


def is_local(uri: str) -> bool:
    return "://" not in uri or uri.startswith("file://")


def local_output(output_uri: str) -> Path | None:
    if is_local(output_uri):
        return Path(output_uri.removeprefix("file://")).expanduser()
    return None


@contextlib.contextmanager
def staged_output(output_uri: str, kind: str, folder: Path) -> Iterator[Path]:
    """Where the output is written before it is published: beside a local target under a hidden
    name (renamed into place, no copy), in ``folder`` for object storage (uploaded). Removed when
    the job fails."""
    target = local_output(output_uri)
    if target is None:
        _probe_bucket(output_uri)
    if kind == "dataset":
        if target is None:
            s3_target(output_uri)  # a prefix holding someone's objects is refused before scoring
            yield folder / "output"
            return
        _writable_folder(target.parent, output_uri)
        with staged_folder(target) as staged:
            yield staged
        return
    if target is None:
        yield folder / f"output.{kind}"
        return
    _writable_folder(target.parent, output_uri)
    staged = target.with_name(f".{target.name}.partial-{os.getpid()}")
    try:
        yield staged
    finally:
        staged.unlink(missing_ok=True)


def _writable_folder(folder: Path, output_uri: str) -> None:
    """Create the output's folder if missing, and prove this user may write there, before any
    scoring (not after the whole table is scored)."""
    import tempfile

    try:
        folder.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=folder, prefix=".pave-check-").close()
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise InvalidInput(
            f"--output {output_uri} cannot be written: {exc.strerror or exc}{where}",
            hint="pass an --output path in a folder you may write (it is created if missing)",
        ) from None


def _probe_bucket(output_uri: str) -> None:
    """Refuse an object-store output whose bucket does not exist before scoring, not at the upload."""
    from pave.storage import open_storage
    from pave.storage.base import BucketMissing

    root, key = split_uri(output_uri)
    try:
        next(iter(open_storage(root).list(key)), None)
    except BucketMissing:
        raise NotFound(
            f"--output {output_uri}: the bucket {root.partition('://')[2]} does not exist",
            hint=f"create it (aws s3 mb {root}) or check the --output URI",
        ) from None


def publish(staged: Path, output_uri: str, manifest: dict[str, Any] | None = None) -> None:
    """Put the finished output in place; ``manifest`` (a folder's ``_SUCCESS``) for a folder."""
    target = local_output(output_uri)
    if manifest is not None:
        if target is None:
            publish_prefix(staged, output_uri, manifest)
        else:
            publish_folder(staged, target, manifest)
        return
    if target is not None:
        os.replace(staged, target)  # atomic: the output appears whole or not at all
        return
    from pave.storage import open_storage

    root, key = split_uri(output_uri)
    open_storage(root).put_file(key, staged)  # a multipart upload is visible only once committed
