"""Safe paths for everything a request or a spec names on disk or in the artifact store.

A path is checked after *full* decoding (percent-decoding repeated until it stops changing, so
``%252e%252e`` is caught like ``..``): no ``..`` segment, no absolute path, no NUL or other
control character, no backslash, no drive letter. Then, for a local root, the resolved path must
stay inside the resolved root, so a symlink cannot lead out of it. Archives are unpacked only
when every entry passes the same checks.

One implementation for the whole platform: :mod:`pave.governance.paths` (requests, artifacts)
and :mod:`pave.data.paths` (dataset files) both use it; it lives in the foundation layer because
the domain packages that need it may not import each other.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

from pave.errors import InvalidInput

_DRIVE = re.compile(r"[A-Za-z]:")
_MAX_DECODE_ROUNDS = 5


def fully_decoded(value: str) -> str:
    """Percent-decode until the text stops changing (at most a few rounds)."""
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = unquote(value)
        if decoded == value:
            return value
        value = decoded
    raise InvalidInput("a path is percent-encoded too many times", hint="send the path encoded once")


def check_relative_path(value: str, *, what: str = "path") -> str:
    """Return the decoded ``value`` if it is a safe relative path, else raise InvalidInput."""
    decoded = fully_decoded(value)
    problem = None
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in decoded):
        problem = "contains a control character (NUL?)"
    elif "\\" in decoded:
        problem = "contains a backslash"
    elif "\ufffd" in decoded:
        problem = "is not valid UTF-8 (an overlong encoding?)"
    elif decoded.startswith("/") or _DRIVE.match(decoded):
        problem = "is absolute"
    elif any(part == ".." for part in decoded.split("/")):
        problem = "contains '..'"
    if problem:
        raise InvalidInput(
            f"{what} {value[:200]!r} {problem}", hint=f"use a relative {what} inside the project's artifacts"
        )
    return decoded


def check_inside(root: Path, relative: str, *, what: str = "path") -> Path:
    """Resolve ``root/relative`` (symlinks followed) and refuse it when it leaves ``root``."""
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(real_root / relative))
    if target != real_root and real_root not in target.parents:
        raise InvalidInput(
            f"{what} {relative[:200]!r} leads outside its root (a symlink?)",
            hint="artifacts and datasets must stay inside their store",
        )
    return target


def safe_extract(archive: Path, destination: Path) -> list[Path]:
    """Extract a zip or tar archive into ``destination``, refusing any entry that would escape it.

    Every entry name must be a safe relative path (as :func:`check_relative_path`); tar links,
    devices and FIFOs are refused, and each target is checked against ``destination`` after
    resolving symlinks (so an entry cannot write through a link an earlier entry created).

    Raises:
        InvalidInput: naming the first bad entry; nothing is extracted in that case.
    """
    import tarfile
    import zipfile

    destination.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zipped:
            infos = zipped.infolist()
            for info in infos:
                check_relative_path(info.filename, what=f"archive entry in {archive.name}")
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise InvalidInput(f"archive entry {info.filename!r} in {archive.name} is a symlink")
                check_inside(destination, info.filename, what="archive entry")
            for info in infos:
                written.append(Path(zipped.extract(info, destination)))
        return written
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
        for member in members:
            check_relative_path(member.name, what=f"archive entry in {archive.name}")
            if not (member.isfile() or member.isdir()):
                raise InvalidInput(
                    f"archive entry {member.name!r} in {archive.name} is a link or a device",
                    hint="archives may hold plain files and folders only",
                )
            check_inside(destination, member.name, what="archive entry")
        # every entry was checked above; the "data" filter checks again where Python has it (3.11.4+)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, members=members, filter="data")
        else:  # a job run by another account may get an older interpreter of the same minor version
            tar.extractall(destination, members=members)  # noqa: S202
        written = [destination / m.name for m in members]
    return written
