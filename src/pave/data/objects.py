"""Content-addressed objects of a project: dataset versions and code snapshots.

Both are files known by the sha256 of their bytes and stored once, under
``<kind>/<sha[:2]>/<sha>/<filename>`` beside a ``manifest.json`` (the filename, size, and what the
writer knew about it), in the platform's object store. The same bytes are never sent twice:
a writer asks first (HEAD) and skips what is there.

Who writes them:

- a run with direct access to the store (the control plane's own jobs, tests on a bare store)
  uses :class:`StorageObjects`;
- a client that has only ``PAVE_URL`` and ``PAVE_TOKEN`` goes through the platform's routes
  (``/api/v1/projects/{p}/{kind}/{sha}``; :class:`pave.client.PlatformObjects`), which check the
  caller's role on the project, verify the content's digest before anything becomes visible, and
  index the object for the project (a project reads only what it stored itself).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, Protocol

from pave.errors import InvalidInput
from pave.storage import ObjectMissing, Storage
from pave.tracking.paths import check_relative_path

Kind = Literal["datasets", "code"]
KINDS: tuple[Kind, ...] = ("datasets", "code")
MANIFEST = "manifest.json"
SHA256 = re.compile(r"[0-9a-f]{64}")
_FILENAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")


def check_sha(sha: str, what: str = "object") -> str:
    """A sha256 hex digest, or InvalidInput (a digest from a run's tags is user-writable)."""
    if not SHA256.fullmatch(sha):
        raise InvalidInput(
            f"{what} {sha[:80]!r} is not a sha256 digest",
            hint="pass the 64 hex digits `pave run` recorded",
        )
    return sha


def check_filename(name: str) -> str:
    """A plain file name: no folders, no leading dot."""
    if not _FILENAME.fullmatch(name) or name == MANIFEST:
        raise InvalidInput(
            f"file name {name[:200]!r} must be letters, digits and ._+- (no folders)",
            hint="name the file like train.csv",
        )
    return name


def object_key(kind: Kind, sha: str, filename: str) -> str:
    return f"{kind}/{sha[:2]}/{check_sha(sha)}/{check_filename(filename)}"


def manifest_key(kind: Kind, sha: str) -> str:
    return f"{kind}/{sha[:2]}/{check_sha(sha)}/{MANIFEST}"


class ObjectStore(Protocol):
    """Where a run puts and finds its content-addressed objects (directly, or through the platform)."""

    def has(self, kind: Kind, sha: str) -> bool:
        """Whether the object is stored (and readable by this caller)."""
        ...

    def put(self, kind: Kind, sha: str, path: Path, manifest: dict[str, Any]) -> None:
        """Store the file ``path`` (whose digest is ``sha``) with its manifest, once."""
        ...

    def fetch(self, kind: Kind, sha: str, folder: Path) -> Path:
        """Download the object into ``folder`` under its stored file name; return that path.

        Raises:
            ObjectMissing: the store has no such object.
        """
        ...


class StorageObjects:
    """An :class:`ObjectStore` straight on a :class:`~pave.storage.Storage`."""

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def has(self, kind: Kind, sha: str) -> bool:
        return self.storage.head(manifest_key(kind, sha)) is not None

    def put(self, kind: Kind, sha: str, path: Path, manifest: dict[str, Any]) -> None:
        filename = check_filename(str(manifest.get("filename") or path.name))
        self.storage.put_file(object_key(kind, sha, filename), path, dedupe=True)
        # The manifest last: an object is "there" only once its bytes are.
        body = {**manifest, "sha256": sha, "filename": filename, "bytes": path.stat().st_size}
        self.storage.put_bytes(manifest_key(kind, sha), json.dumps(body, indent=2).encode())

    def manifest(self, kind: Kind, sha: str) -> dict[str, Any]:
        """The object's manifest (ObjectMissing when it is not stored; InvalidInput when tampered)."""
        try:
            raw = self.storage.get_bytes(manifest_key(kind, sha))
        except ObjectMissing:
            raise ObjectMissing(
                f"{_noun(kind)} {sha[:12]} is not in the store {self.storage.url}",
                hint="the run was recorded on another platform or artifact root",
            ) from None
        manifest: dict[str, Any] = json.loads(raw)
        check_relative_path(str(manifest.get("filename", "")), what="stored file name")
        check_filename(str(manifest.get("filename", "")))
        return manifest

    def fetch(self, kind: Kind, sha: str, folder: Path) -> Path:
        filename = str(self.manifest(kind, sha)["filename"])
        return self.storage.download(object_key(kind, sha, filename), folder / filename)


def _noun(kind: Kind) -> str:
    return "dataset version" if kind == "datasets" else "code snapshot"


# --- the platform's side: receiving, indexing and serving a project's objects -------------------


def indexed(session: Any, project: str, kind: Kind, sha: str) -> Any:
    """The project's index row of the object, or None when the project never stored it."""
    from sqlalchemy import select

    from pave.store.tables import ProjectObjectRow

    return session.scalar(
        select(ProjectObjectRow).where(
            ProjectObjectRow.project == project, ProjectObjectRow.kind == kind, ProjectObjectRow.sha256 == sha
        )
    )


def index(session: Any, *, project: str, kind: Kind, sha: str, filename: str, size: int, actor: str) -> Any:
    """Record that ``project`` stored the object (idempotent)."""
    from pave.store.tables import ProjectObjectRow

    row = indexed(session, project, kind, sha)
    if row is None:
        row = ProjectObjectRow(
            project=project, kind=kind, sha256=sha, filename=filename, size=size, created_by=actor
        )
        session.add(row)
        session.flush()
    return row


class Receiver:
    """Takes an upload's bytes in order and stores them under their content address, verified.

    Nothing becomes visible unless the bytes' sha256 is the one claimed: a caller cannot plant
    other bytes under a digest, nor claim an object it does not have. When the store holds the
    object already (another project sent the same bytes), the bytes are hashed and dropped.
    """

    def __init__(self, storage: Storage, kind: Kind, sha: str, filename: str) -> None:
        import hashlib

        self.storage, self.kind, self.sha = storage, kind, check_sha(sha)
        self.filename = check_filename(filename)
        self.present = storage.head(manifest_key(kind, sha)) is not None
        self.writer = None if self.present else storage.writer(object_key(kind, sha, self.filename))
        self._hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.writer is not None:
            self.writer.write(data)
        else:
            self._hash.update(data)

    def write_all(self, pieces: list[bytes]) -> None:
        for piece in pieces:
            self.write(piece)

    def finish(self) -> str:
        """Verify and commit; return the stored file name (InvalidInput on a wrong digest)."""
        digest = self.writer.digest() if self.writer is not None else self._hash.hexdigest()
        if digest != self.sha:
            self.abort()
            raise InvalidInput(
                f"the uploaded bytes have sha256 {digest[:12]}..., not {self.sha[:12]}... as the URL claims",
                hint="send the file whose sha256 is in the URL (was it changed during the upload?)",
            )
        if self.writer is None:
            return str(StorageObjects(self.storage).manifest(self.kind, self.sha)["filename"])
        self.writer.commit()
        manifest = {"sha256": self.sha, "filename": self.filename, "bytes": self.size, "kind": self.kind}
        self.storage.put_bytes(manifest_key(self.kind, self.sha), json.dumps(manifest, indent=2).encode())
        return self.filename

    def abort(self) -> None:
        if self.writer is not None:
            self.writer.abort()
