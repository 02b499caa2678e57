"""The wheel of the running Pave, for the CI of the projects the templates generate.

A generated project's workflow (``.github/workflows/pave.yml``) needs the ``pave`` command, and
the name ``pave`` on PyPI belongs to another project: the workflow downloads this wheel from the
platform it already has a URL and token for (``GET /api/v1/client/wheel``), then installs it with
its dependencies from PyPI. The client is then the very version of the platform it talks to.

The wheel is built from the installed distribution (its metadata, entry points and the package's
files), so it works for a regular install and for an editable one from a source checkout alike.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from functools import lru_cache
from importlib import metadata
from pathlib import Path

_DIST = "pave"
_WHEEL = "Wheel-Version: 1.0\nGenerator: pave\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
_FIXED = (2026, 1, 1, 0, 0, 0)  # reproducible: the same files give the same bytes


def wheel_name() -> str:
    """The wheel's file name (pip reads the version from it)."""
    return f"{_DIST}-{metadata.version(_DIST)}-py3-none-any.whl"


def _record_line(name: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{name},sha256={digest},{len(data)}"


def _package_files() -> list[tuple[str, Path]]:
    root = Path(__file__).resolve().parents[1]  # the pave package
    return sorted(
        (f"pave/{path.relative_to(root).as_posix()}", path)
        for path in root.rglob("*")
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo")
    )


@lru_cache(maxsize=1)
def build_wheel() -> bytes:
    """The wheel's bytes (built once per process)."""
    dist = metadata.distribution(_DIST)
    info = f"{_DIST}-{dist.version}.dist-info"
    files: list[tuple[str, bytes]] = [(name, path.read_bytes()) for name, path in _package_files()]
    files.append((f"{info}/METADATA", (dist.read_text("METADATA") or "").encode()))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
        files.append((f"{info}/entry_points.txt", entry_points.encode()))
    files.append((f"{info}/WHEEL", _WHEEL.encode()))
    record = [_record_line(name, data) for name, data in files] + [f"{info}/RECORD,,"]
    files.append((f"{info}/RECORD", ("\n".join(record) + "\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            entry = zipfile.ZipInfo(name, date_time=_FIXED)
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()
