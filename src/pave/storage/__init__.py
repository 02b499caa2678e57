"""Object storage: one small interface (:class:`Storage`), a backend per kind of store.

The backend is chosen from the URL of ``PAVE_ARTIFACT_ROOT``: a path (or ``file://``) is a local
folder, ``s3://BUCKET/PREFIX`` an S3-compatible bucket. Backends are listed in :data:`BACKENDS`
(scheme -> ``"module:Class"``, extra) and imported only when used; a backend whose extra is missing
raises :class:`~pave.errors.MissingExtra` whose hint is the pip line. GCS and Azure follow by adding
a row and a module.

What lives where in a store (keys under the root)::

    <experiment id>/...                         MLflow's artifacts (runs, models), written by MLflow
    datasets/<sha[:2]>/<sha>/<filename>         dataset versions, content-addressed
    datasets/<sha[:2]>/<sha>/manifest.json
    code/<sha[:2]>/<sha>.tar.gz                 code snapshots of runs, content-addressed
"""

from __future__ import annotations

import importlib
import os
import threading
from pathlib import Path
from typing import Any

from pave.errors import MissingExtra
from pave.storage.base import (
    CHUNK,
    BucketMissing,
    ObjectInfo,
    ObjectMissing,
    ObjectWriter,
    Storage,
    StorageDenied,
    StorageError,
    StorageUnreachable,
    check_key,
)

__all__ = [
    "BACKENDS",
    "CHUNK",
    "BucketMissing",
    "ObjectInfo",
    "ObjectMissing",
    "ObjectWriter",
    "Storage",
    "StorageDenied",
    "StorageError",
    "StorageUnreachable",
    "check_key",
    "is_local",
    "key_under",
    "open_storage",
]

# scheme -> (implementation, the extra that installs its client library or None)
BACKENDS: dict[str, tuple[str, str | None]] = {
    "file": ("pave.storage.local:LocalStorage", None),
    "s3": ("pave.storage.s3:S3Storage", "s3"),
}
# Settings a backend reads from the environment: a change makes a new client.
_ENV = ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION", "AWS_PROFILE")
_cache: dict[tuple[str, ...], Storage] = {}
_lock = threading.Lock()


def scheme_of(url: str) -> str:
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep else "file"


def is_local(url: str) -> bool:
    """Whether ``url`` names a folder on this machine."""
    return scheme_of(url) == "file"


def key_under(root: str, location: str) -> str | None:
    """The key of ``location`` in the store at ``root``, or None when it lies outside it.

    ``location`` is MLflow's form of a place in the platform's store: ``mlflow-artifacts:/KEY``
    (the embedded server serves the artifact root there), a path or ``file://`` URI under a
    local root, or a URL under an object-store root. ``..`` never climbs out of the root.
    """
    from posixpath import normpath

    if location.startswith("mlflow-artifacts:"):
        relative = location.removeprefix("mlflow-artifacts:").lstrip("/")
    elif is_local(root):
        if not is_local(location):
            return None
        base = Path(root.removeprefix("file://")).expanduser().resolve()
        target = Path(location.removeprefix("file://")).resolve()
        if not target.is_relative_to(base):
            return None
        relative = target.relative_to(base).as_posix()
    else:
        prefix = root.rstrip("/") + "/"
        if not location.startswith(prefix):
            return None
        relative = location.removeprefix(prefix)
    relative = normpath(relative.strip("/")) if relative.strip("/") else ""
    if relative in ("", ".") or relative.startswith(".."):
        return None
    return relative


def open_storage(url: str) -> Storage:
    """The store at ``url`` (a path, ``file:///path`` or ``s3://bucket/prefix``), one per process.

    Raises:
        ConfigError: an unknown scheme.
        MissingExtra: the backend's client library is not installed (hint: the pip line).
    """
    from pave.errors import ConfigError

    scheme = scheme_of(url)
    key = (url, *(os.environ.get(name, "") for name in _ENV))
    with _lock:
        found = _cache.get(key)
        if found is not None:
            return found
        if scheme not in BACKENDS:
            raise ConfigError(
                f"PAVE_ARTIFACT_ROOT: no object-store backend for {scheme}:// URLs",
                hint=f"use a folder path or one of: {', '.join(s + '://' for s in BACKENDS if s != 'file')}",
            )
        target, extra = BACKENDS[scheme]
        module_name, _, class_name = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise MissingExtra(f"the {scheme}:// object store", extra or scheme) from exc
        cls: Any = getattr(module, class_name)
        root = url.removeprefix("file://") if scheme == "file" else url
        storage: Storage = cls(root)
        _cache[key] = storage
        return storage
