"""Content-addressed dataset versions.

Every data file a run reads is hashed (sha256 of its bytes) and stored once in the platform's object
store as ``datasets/<sha[:2]>/<sha>/<filename>``, next to a ``manifest.json``
(:mod:`pave.data.objects`). The same bytes under any name are stored once; a run records only the
sha, and ``pave reproduce`` reads the file back from the store even when the project's copy has
changed since, from any machine that may read the project.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pave.data.errors import DataFileMissing, UnsafePath
from pave.data.objects import ObjectStore, check_sha, object_key
from pave.errors import InvalidInput
from pave.storage import ObjectMissing

_CHUNK = 1 << 20


@dataclass(frozen=True)
class DatasetVersion:
    """One stored version of a data file."""

    name: str
    path: str
    sha256: str
    rows: int
    columns: list[str]
    bytes: int
    format: str
    stored_path: str  # the object's key in the store
    source: str = ""  # where it came from, as pave.yaml says (a file's path, a URL, ``sql ${VAR}``)
    fingerprint: str | None = None  # the source's cheap fingerprint when read (pave.data.remote)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def sha256_file(path: Path) -> str:
    """The sha256 hex digest of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def read_frame(path: Path, file_format: Literal["csv", "parquet"] | str) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame."""
    if file_format == "parquet":
        return pd.read_parquet(path)
    return pd.read_csv(path)


def version_file(
    name: str,
    path: Path,
    *,
    objects: ObjectStore,
    file_format: str,
    frame: pd.DataFrame | None = None,
    filename: str | None = None,
    source: str | None = None,
    fingerprint: str | None = None,
) -> DatasetVersion:
    """Hash ``path``, store it content-addressed (once: nothing is sent when it is there) and
    return its version.

    Args:
        name: the source name in pave.yaml.
        path: the file to version.
        objects: the object store (direct, or through the platform).
        file_format: ``csv`` or ``parquet``.
        frame: the file already read, to count rows and columns without reading it twice.
        filename: the name to store it under (default: the file's own name).
        source: where the file came from, when not from the project folder (recorded as ``path``).
        fingerprint: the source's fingerprint as of this read (default: ``sha256:<digest>``).
    """
    sha = sha256_file(path)
    filename = filename or path.name
    if frame is None:
        frame = read_frame(path, file_format)
    version = DatasetVersion(
        name=name,
        path=source or str(path),
        sha256=sha,
        rows=len(frame),
        columns=[str(c) for c in frame.columns],
        bytes=path.stat().st_size,
        format=file_format,
        stored_path=object_key("datasets", sha, filename),
        source=source or str(path),
        fingerprint=fingerprint or f"sha256:{sha}",
    )
    if not objects.has("datasets", sha):
        manifest = {
            k: v
            for k, v in version.to_dict().items()
            if k not in ("stored_path", "path", "source", "fingerprint")
        }
        objects.put("datasets", sha, path, manifest | {"filename": filename})
    return version


def stored_file(sha: str, *, objects: ObjectStore, folder: Path) -> Path:
    """Download the version ``sha`` into ``folder``; its path there.

    Raises:
        UnsafePath: ``sha`` is not a digest (it comes from user-writable run tags), or the stored
            manifest names a file outside the version's folder.
        DataFileMissing: the store has no such version.
    """
    try:
        check_sha(sha, "dataset version")
    except InvalidInput as error:
        raise UnsafePath(error.message, hint=error.hint) from None
    try:
        return objects.fetch("datasets", sha, folder)
    except ObjectMissing as error:
        raise DataFileMissing(
            f"dataset version {sha[:12]} is not in the store",
            hint=error.hint or "the run was recorded on another platform or artifact root",
        ) from None
    except InvalidInput as error:  # a manifest edited to name a file elsewhere
        raise UnsafePath(
            f"the manifest of dataset version {sha[:12]} names a file outside its folder ({error.message})",
            hint="the store was tampered with: remove that version and run `pave run` again",
        ) from None
