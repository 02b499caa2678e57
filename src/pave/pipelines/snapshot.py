"""Code snapshots: the project's files as an immutable, content-addressed archive.

Every run stores its code (beside the git commit it records) as ``code/<sha[:2]>/<sha>/code.tar.gz``
in the object store (:mod:`pave.data.objects`) and tags the run ``pave.code.snapshot=<sha>``.
Retrains and reproductions unpack that archive in a fresh folder and run there: never from a
folder path on some host.

The archive is deterministic (sorted entries, no times, owners or modes beyond the executable
bit), so unchanged code is the same object and is not sent again. Left out: version control,
virtual environments, caches, Pave's own state, secrets (``.env`` files, keys, credentials) and the
project's declared data files (stored as dataset versions and put back from them on unpacking).
"""

from __future__ import annotations

import fnmatch
import gzip
import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

from pave.data.objects import ObjectStore, check_sha
from pave.errors import InvalidInput
from pave.tracking.paths import safe_extract

ARCHIVE = "code.tar.gz"
# Folders never archived (any depth).
EXCLUDED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        "env",
        "__pycache__",
        ".pave",
        "mlruns",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".ipynb_checkpoints",
        "node_modules",
        ".ssh",
        ".aws",
        ".gnupg",
    }
)
# Files never archived: secrets and clutter (glob patterns on the file name).
EXCLUDED_FILES = (
    ".env",
    ".env.*",
    "*.env",
    ".netrc",
    ".pgpass",
    "*.pem",
    "*.key",
    "*.p12",
    "*.pfx",
    "id_rsa*",
    "id_ed25519*",
    "id_ecdsa*",
    "credentials.json",
    "credentials",
    "*.pyc",
    ".DS_Store",
)
MAX_SNAPSHOT_BYTES = 256 << 20


def _excluded(name: str) -> bool:
    return any(fnmatch.fnmatch(name, pattern) for pattern in EXCLUDED_FILES)


def snapshot_files(project: Path, skip: Iterable[str] = ()) -> list[str]:
    """The project's files that go into its snapshot, as sorted relative POSIX paths.

    Args:
        project: the project folder.
        skip: relative paths left out (the declared data files).
    """
    skipped = {s.strip("/") for s in skip}
    found: list[str] = []
    stack = [project]
    while stack:
        folder = stack.pop()
        for entry in sorted(folder.iterdir()):
            relative = entry.relative_to(project).as_posix()
            if entry.is_symlink():
                continue  # a link's target is not the project's (and could be anything)
            if entry.is_dir():
                if entry.name not in EXCLUDED_DIRS:
                    stack.append(entry)
            elif entry.is_file() and not _excluded(entry.name) and relative not in skipped:
                found.append(relative)
    return sorted(found)


def make_snapshot(project: Path, target: Path, skip: Iterable[str] = ()) -> Path:
    """Write the project's deterministic ``.tar.gz`` to ``target``.

    Raises:
        InvalidInput: the code is over MAX_SNAPSHOT_BYTES (large files belong in data sources).
    """
    buffer = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for relative in snapshot_files(project, skip):
            path = project / relative
            size = path.stat().st_size
            total += size
            if total > MAX_SNAPSHOT_BYTES:
                raise InvalidInput(
                    f"the project's code is over {MAX_SNAPSHOT_BYTES >> 20} MB at {relative}: "
                    "a run's snapshot holds code, not data",
                    hint="declare large files as data sources in pave.yaml, or move them out of the folder",
                )
            info = tarfile.TarInfo(relative)
            info.size = size
            info.mode = 0o755 if path.stat().st_mode & 0o100 else 0o644
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            with path.open("rb") as handle:
                tar.addfile(info, handle)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as out, gzip.GzipFile(fileobj=out, mode="wb", mtime=0, filename="") as zipped:
        zipped.write(buffer.getvalue())
    return target


def restore_snapshot(objects: ObjectStore, sha: str, destination: Path) -> Path:
    """Unpack the snapshot ``sha`` into ``destination`` (created; entries checked one by one).

    Raises:
        ObjectMissing: no such snapshot (or not one this caller may read).
        InvalidInput: an entry that would leave ``destination``.
    """
    check_sha(sha, "code snapshot")
    download = destination.parent / f".{destination.name}-{sha[:12]}"
    archive = objects.fetch("code", sha, download)
    try:
        safe_extract(archive, destination)
    finally:
        archive.unlink(missing_ok=True)
        download.rmdir()
    return destination
