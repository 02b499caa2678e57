"""The one small interface every object store implements, and its errors.

Keys are ``/``-separated relative names (``datasets/ab/abcd.../train.csv``) under the store's
root (a folder, or ``s3://BUCKET/PREFIX``). Objects are written whole: a writer's bytes become
visible only when it commits, so a reader never sees half an object, and an aborted or failed
upload leaves nothing behind.

Errors::

    StorageError (Unavailable, 503)     the store did not answer, refused the credentials, ...
    ├── StorageUnreachable              no answer at the endpoint
    ├── StorageDenied                   credentials missing or wrong, or no permission
    └── BucketMissing                   the bucket does not exist
    ObjectMissing (NotFound, 404)       no object under that key
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from pave.errors import InvalidInput, NotFound, Unavailable

CHUNK = 8 << 20  # bytes per read, and per part of a multipart upload
_KEY = re.compile(r"[A-Za-z0-9._=+@,:-][A-Za-z0-9._=+@,:/-]*")


class StorageError(Unavailable):
    """The object store failed; ``setting`` names what to check."""

    code = "storage_unavailable"


class StorageUnreachable(StorageError):
    code = "storage_unreachable"


class StorageDenied(StorageError):
    code = "storage_denied"


class BucketMissing(StorageError):
    code = "bucket_missing"


class ObjectMissing(NotFound):
    code = "object_missing"


@dataclass(frozen=True)
class ObjectInfo:
    """What ``head`` and ``list`` tell about one object."""

    key: str
    size: int
    etag: str | None = None  # the store's own tag (S3: the quoted MD5 or multipart tag)
    modified: float | None = None  # seconds since the epoch


def check_key(key: str) -> str:
    """Refuse keys that could leave the store's root or confuse a backend."""
    path = PurePosixPath(key)
    if not key or not _KEY.fullmatch(key) or ".." in path.parts or key.endswith("/") or "//" in key:
        raise InvalidInput(
            f"object key {key[:200]!r} is not a relative name of letters, digits and ._=+@,:-/",
            hint="keys look like datasets/ab/<sha256>/train.csv",
        )
    return key


class ObjectWriter(ABC):
    """Receives an object's bytes in order; nothing is visible before :meth:`commit`.

    Use as a context manager: leaving the block without commit (an exception) aborts.
    The sha256 of what was written is in ``sha256`` (a hex digest once committed or at any time
    through ``digest()``), so a caller can check a content address before it commits.
    """

    def __init__(self, key: str) -> None:
        self.key = check_key(key)
        self.size = 0
        self._hash = hashlib.sha256()
        self.committed = False
        self.aborted = False

    def write(self, data: bytes) -> None:
        """Append ``data`` (any size; large ones are split into parts by the backend)."""
        if self.committed or self.aborted:
            raise RuntimeError(f"writer of {self.key} is closed")
        self._hash.update(data)
        self.size += len(data)
        self._write(data)

    def digest(self) -> str:
        return self._hash.hexdigest()

    def commit(self) -> ObjectInfo:
        """Make the object visible under its key (replacing any object there)."""
        info = self._commit()
        self.committed = True
        return info

    def abort(self) -> None:
        """Drop what was written; the key keeps what it had before. Never raises."""
        if self.committed or self.aborted:
            return
        self.aborted = True
        self._abort()

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(self, kind: object, error: object, trace: object) -> None:
        if not self.committed:
            self.abort()

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def _commit(self) -> ObjectInfo: ...

    @abstractmethod
    def _abort(self) -> None: ...


class Storage(ABC):
    """An object store: a local folder, an S3 bucket (GCS and Azure can follow)."""

    #: The store's root as configured (``/path`` or ``s3://bucket/prefix``), without secrets.
    url: str
    #: The setting a user changes to fix the store (named in error messages).
    setting: str = "PAVE_ARTIFACT_ROOT"

    @abstractmethod
    def head(self, key: str) -> ObjectInfo | None:
        """The object's size and tag, or None when there is none."""

    @abstractmethod
    def writer(self, key: str) -> ObjectWriter:
        """A writer whose bytes become the object ``key`` on commit (multipart when large)."""

    @abstractmethod
    def read(self, key: str) -> Iterator[bytes]:
        """The object's bytes in chunks, streamed (ObjectMissing when there is none)."""

    @abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Every object whose key starts with ``prefix`` (a folder is ``"datasets/"``), by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object (nothing when there is none)."""

    @abstractmethod
    def check(self) -> None:
        """Prove the store is usable now: reachable, credentials accepted, bucket present.

        Raises:
            StorageError: one line naming the setting to fix.
        """

    # --- built on the primitives ---------------------------------------------------------------

    def put_bytes(self, key: str, data: bytes, *, dedupe: bool = False) -> ObjectInfo:
        """Store ``data`` under ``key``; with ``dedupe``, an object already there of the same size
        is kept (content-addressed keys: same key, same bytes) and nothing is sent."""
        if dedupe:
            found = self.head(key)
            if found is not None and found.size == len(data):
                return found
        with self.writer(key) as writer:
            writer.write(data)
            return writer.commit()

    def put_file(self, key: str, path: Path, *, dedupe: bool = False) -> ObjectInfo:
        """Store the file ``path`` under ``key``, streamed (multipart for large files).

        With ``dedupe`` (content-addressed keys), HEAD first: an object of the same size already
        there is kept and no byte is sent.
        """
        size = path.stat().st_size
        if dedupe:
            found = self.head(key)
            if found is not None and found.size == size:
                return found
        with self.writer(key) as writer, path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                writer.write(chunk)
            return writer.commit()

    def put_stream(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        """Store the concatenated ``chunks`` under ``key``."""
        with self.writer(key) as writer:
            for chunk in chunks:
                writer.write(chunk)
            return writer.commit()

    def get_bytes(self, key: str) -> bytes:
        return b"".join(self.read(key))

    def download(self, key: str, path: Path) -> Path:
        """Write the object to ``path`` (atomically: a partial download is never left there)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.part")
        try:
            with tmp.open("wb") as out:
                for chunk in self.read(key):
                    out.write(chunk)
            tmp.replace(path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return path

    def copy_to(self, key: str, out: BinaryIO) -> int:
        written = 0
        for chunk in self.read(key):
            out.write(chunk)
            written += len(chunk)
        return written
