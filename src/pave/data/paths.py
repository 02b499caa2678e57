"""Resolving data paths safely inside a project folder."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from pave.data.errors import DataFileMissing, UnsafePath


def project_path(project_dir: Path, relative: str, *, must_exist: bool = True) -> Path:
    """The file ``relative`` inside ``project_dir``, refusing anything that escapes it.

    Refused: absolute paths, ``..``, NUL characters, and symlinks that resolve outside the folder.

    Raises:
        UnsafePath: the path could leave the project folder.
        DataFileMissing: ``must_exist`` and there is no such file.
    """
    hint = "use a path relative to the project folder, e.g. data/train.csv"
    if not relative or "\x00" in relative:
        raise UnsafePath(f"data path {relative!r} is empty or contains NUL", hint=hint)
    pure = PurePosixPath(relative.replace("\\", "/"))
    if pure.is_absolute() or ".." in pure.parts or (len(relative) > 1 and relative[1] == ":"):
        raise UnsafePath(f"data path {relative!r} must be relative and must not contain '..'", hint=hint)
    root = project_dir.resolve()
    resolved = (root / Path(*pure.parts)).resolve()
    if not resolved.is_relative_to(root):
        raise UnsafePath(
            f"data path {relative!r} resolves to {resolved}, outside the project folder {root}",
            hint="copy the file into the project folder instead of linking to it",
        )
    if must_exist and not resolved.is_file():
        raise DataFileMissing(
            f"data file {relative} not found (looked for {resolved})",
            hint=f"put the file at {root / relative}, or fix data.sources in pave.yaml",
        )
    return resolved
