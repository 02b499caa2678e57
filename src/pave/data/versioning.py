"""Content-addressed dataset versions.

Every data file a run reads is hashed (sha256 of its bytes) and copied once into
``<artifact_root>/datasets/<sha[:2]>/<sha>/<filename>``, next to a ``manifest.json``. The same bytes
under any name are stored once; a run records only the sha, and ``pave reproduce`` reads the file
back from the store even when the project's copy has changed since.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from pave.data.errors import DataFileMissing, UnsafePath
from pave.errors import ConfigError, InvalidInput
from pave.tracking.paths import check_inside, check_relative_path

MANIFEST = "manifest.json"
_CHUNK = 1 << 20
_SHA256 = re.compile(r"[0-9a-f]{64}")


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
    stored_path: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def store_root(artifact_root: str) -> Path:
    """The dataset store under a local artifact root (``/path`` or ``file:///path``)."""
    scheme, sep, rest = artifact_root.partition("://")
    if sep and scheme != "file":
        raise ConfigError(
            f"dataset versioning needs a local artifact root for now, got {artifact_root}",
            hint="set PAVE_ARTIFACT_ROOT to a local folder",
        )
    return Path(rest if sep else artifact_root).expanduser() / "datasets"


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
    name: str, path: Path, *, artifact_root: str, file_format: str, frame: pd.DataFrame | None = None
) -> DatasetVersion:
    """Hash ``path``, store it content-addressed (once) and return its version.

    Args:
        name: the source name in pave.yaml.
        path: the file to version.
        artifact_root: the local artifact root (``Settings.artifacts``).
        file_format: ``csv`` or ``parquet``.
        frame: the file already read, to count rows and columns without reading it twice.
    """
    sha = sha256_file(path)
    folder = store_root(artifact_root) / sha[:2] / sha
    stored = folder / path.name
    if frame is None:
        frame = read_frame(path, file_format)
    version = DatasetVersion(
        name=name,
        path=str(path),
        sha256=sha,
        rows=len(frame),
        columns=[str(c) for c in frame.columns],
        bytes=path.stat().st_size,
        format=file_format,
        stored_path=str(stored),
    )
    if not stored.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        _atomic_copy(path, stored)
        manifest = {k: v for k, v in version.to_dict().items() if k != "stored_path"}
        manifest["filename"] = path.name
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return version


def stored_file(sha: str, *, artifact_root: str) -> Path:
    """The stored file of the version ``sha``.

    Raises:
        DataFileMissing: the store has no such version.
    """
    # The sha comes from a run's record (user-writable tags): it must be a digest, not a path.
    if not _SHA256.fullmatch(sha):
        raise UnsafePath(
            f"dataset version {sha[:80]!r} is not a sha256 digest",
            hint="pass the 64 hex digits `pave run` recorded for the dataset",
        )
    folder = store_root(artifact_root) / sha[:2] / sha
    manifest = folder / MANIFEST
    if not manifest.is_file():
        raise DataFileMissing(
            f"dataset version {sha[:12]} is not in the store {folder.parent.parent}",
            hint="the run was recorded with another PAVE_HOME or artifact root; set PAVE_ARTIFACT_ROOT to it",
        )
    filename = str(json.loads(manifest.read_text(encoding="utf-8")).get("filename", ""))
    try:  # a manifest edited to name a file elsewhere (or a link out of the store) is refused
        check_relative_path(filename, what="stored file name")
        return check_inside(folder, filename, what="stored file")
    except InvalidInput as error:
        raise UnsafePath(
            f"the manifest of dataset version {sha[:12]} names {filename[:200]!r}, outside its folder",
            hint=f"the store was tampered with: remove {folder} and run `pave run` again",
        ) from error


def list_versions(*, artifact_root: str) -> list[dict[str, Any]]:
    """Every stored dataset version's manifest (with its ``sha256``)."""
    root = store_root(artifact_root)
    out = [json.loads(m.read_text(encoding="utf-8")) for m in sorted(root.glob(f"*/*/{MANIFEST}"))]
    return out


def _atomic_copy(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    os.close(fd)
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
