"""A folder as the object store: the one-laptop default (``PAVE_ARTIFACT_ROOT=/path``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from pave.errors import InvalidInput
from pave.storage.base import CHUNK, ObjectInfo, ObjectMissing, ObjectWriter, Storage, StorageError, check_key


class _FileWriter(ObjectWriter):
    """Writes a temporary file beside the target and renames it on commit (atomic)."""

    def __init__(self, root: Path, key: str) -> None:
        super().__init__(key)
        self.target = root / key
        self.target.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=self.target.parent, prefix=".tmp-")
        self.tmp = Path(name)
        self.handle = os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        self.handle.write(data)

    def _commit(self) -> ObjectInfo:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.target)
        stat = self.target.stat()
        return ObjectInfo(self.key, stat.st_size, None, stat.st_mtime)

    def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self.handle.close()
        self.tmp.unlink(missing_ok=True)


class LocalStorage(Storage):
    """Objects are files under ``root``; keys are their relative paths."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        self.url = str(self.root)

    def _path(self, key: str) -> Path:
        path = self.root / check_key(key)
        # A link planted in the folder must not turn a key into a file elsewhere.
        if path.is_symlink() or not path.resolve().is_relative_to(self.root):
            raise InvalidInput(
                f"object {key} is a link out of the store {self.url}",
                hint="the store was tampered with: remove the link",
            )
        return path

    def head(self, key: str) -> ObjectInfo | None:
        path = self._path(key)
        try:
            stat = path.stat()
        except (FileNotFoundError, NotADirectoryError):
            return None
        if not path.is_file():
            return None
        return ObjectInfo(key, stat.st_size, None, stat.st_mtime)

    def writer(self, key: str) -> ObjectWriter:
        return _FileWriter(self.root, key)

    def read(self, key: str) -> Iterator[bytes]:
        path = self._path(key)
        try:
            handle = path.open("rb")
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise ObjectMissing(f"no object {key} in {self.url}") from None
        return _chunks(handle)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        base = prefix.rpartition("/")[0]
        start = self.root / base if base else self.root
        if not start.is_dir():
            return
        for path in sorted(p for p in start.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")):
            key = path.relative_to(self.root).as_posix()
            if key.startswith(prefix):
                stat = path.stat()
                yield ObjectInfo(key, stat.st_size, None, stat.st_mtime)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def check(self) -> None:
        try:
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".tmp-check-"):
                pass
        except OSError as exc:
            raise StorageError(
                f"the artifact root {self.url} is not a writable folder ({exc.strerror or exc})",
                hint="set PAVE_ARTIFACT_ROOT to a folder this user may write, or to s3://BUCKET/PREFIX",
            ) from None


def _chunks(handle: object) -> Iterator[bytes]:
    with handle as stream:  # type: ignore[attr-defined]
        while chunk := stream.read(CHUNK):
            yield chunk
