"""Resolving data paths safely inside a project folder.

The checks are the platform's one implementation (:mod:`pave.tracking.paths`, which
:mod:`pave.governance.paths` uses for requests too): a data path is refused when its fully
percent-decoded form is absolute or has a ``..`` segment, a NUL or control character, a
backslash or a drive letter, and when it resolves (symlinks followed) outside the project
folder. Archives of data are unpacked with :func:`extract_archive`, entry by entry under the
same rules.
"""

from __future__ import annotations

from pathlib import Path

from pave.data.errors import DataFileMissing, UnsafePath
from pave.errors import InvalidInput
from pave.tracking.paths import check_inside, check_relative_path, safe_extract

_HINT = "use a path relative to the project folder, e.g. data/train.csv"


def project_path(project_dir: Path, relative: str, *, must_exist: bool = True) -> Path:
    """The file ``relative`` inside ``project_dir``, refusing anything that escapes it.

    The name is opened as written; it is checked as written and fully decoded, so
    ``%2e%2e/secret.csv`` is refused like ``../secret.csv``.

    Raises:
        UnsafePath: the path could leave the project folder.
        DataFileMissing: ``must_exist`` and there is no such file.
    """
    if not relative:
        raise UnsafePath("data path '' is empty", hint=_HINT)
    try:
        check_relative_path(relative, what="data path")
    except InvalidInput as error:
        raise UnsafePath(error.message, hint=_HINT) from error
    root = project_dir.resolve()
    try:
        resolved = check_inside(root, relative, what="data path")
    except InvalidInput as error:
        raise UnsafePath(
            f"data path {relative!r} resolves to {(root / relative).resolve()}, "
            f"outside the project folder {root}",
            hint="copy the file into the project folder instead of linking to it",
        ) from error
    if must_exist and not resolved.is_file():
        raise DataFileMissing(
            f"data file {relative} not found (looked for {resolved})",
            hint=f"put the file at {root / relative}, or fix data.sources in pave.yaml",
        )
    return resolved


def extract_archive(project_dir: Path, relative: str, destination: Path) -> list[Path]:
    """Unpack the zip or tar archive ``relative`` (inside ``project_dir``) into ``destination``.

    Nothing is written when any entry would land outside ``destination`` (``..``, an absolute or
    encoded name, a link, a device).

    Raises:
        UnsafePath: the archive or one of its entries could leave its folder.
    """
    archive = project_path(project_dir, relative)
    try:
        return safe_extract(archive, destination)
    except InvalidInput as error:
        raise UnsafePath(error.message, hint=error.hint) from error
