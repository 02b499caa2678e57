"""Turn a packaged template's version folders into the git repository copier reads.

``copier update`` merges a new template version into an edited project three ways: it needs the old
version and the new one as commits of one git repository, told apart by tags. A wheel cannot carry a
git repository, so Pave ships the versions as folders (see :mod:`pave.templates.catalog`) and replays
them here, into ``$PAVE_HOME/templates/<name>``: one commit and one tag per version.

The commits are reproducible: fixed author, dates and config, so the same folders give the same
commit ids on every machine and after every rebuild. A project's ``.copier-answers.yml`` names the
commit it was generated from, and that commit stays valid when Pave gains a new template version
and rebuilds the repository.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from pave.errors import ConfigError, InternalError
from pave.templates.catalog import TemplateInfo

REMOVED_LIST = "REMOVED.txt"
_FINGERPRINT = "pave-fingerprint"  # kept inside .git/, so it is no part of any commit
_FIXED_DATE = "2026-01-01T00:00:00+00:00"
_GIT_ENV = {
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Pave",
    "GIT_AUTHOR_EMAIL": "templates@pave.invalid",
    "GIT_COMMITTER_NAME": "Pave",
    "GIT_COMMITTER_EMAIL": "templates@pave.invalid",
    "GIT_AUTHOR_DATE": _FIXED_DATE,
    "GIT_COMMITTER_DATE": _FIXED_DATE,
}


def git(cwd: Path, *args: str, env: dict[str, str] | None = None) -> str:
    """Run git in ``cwd`` and return its output; a failure is a PaveError naming the command."""
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            capture_output=True,
            text=True,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigError("git is not installed", hint="install git, then run the command again") from exc
    if done.returncode != 0:
        raise InternalError(f"`git {' '.join(args)}` failed in {cwd}: {done.stderr.strip() or done.stdout}")
    return done.stdout


def _version_files(folder: Path) -> list[Path]:
    """The files of a version folder, less caches that tools leave in a source checkout.

    Templates ship no file or folder whose name starts with a dot: package-data globs skip them, so
    they would go missing from the wheel. A dot-file in a project is named ``{{'.github'}}`` instead.
    """

    def shipped(path: Path) -> bool:
        parts = path.relative_to(folder).parts
        return path.is_file() and "__pycache__" not in parts and not any(p.startswith(".") for p in parts)

    return sorted(p for p in folder.rglob("*") if shipped(p))


def fingerprint(info: TemplateInfo) -> str:
    """A hash of every packaged file of every version of the template."""
    digest = hashlib.sha256()
    for version in info.versions:
        folder = info.source / version
        for path in _version_files(folder):
            digest.update(f"{version}/{path.relative_to(folder).as_posix()}\0".encode())
            digest.update(path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()


def template_repo(info: TemplateInfo, home: Path) -> Path:
    """The git repository of template ``info`` under ``home``, built or rebuilt when needed.

    Args:
        info: the template.
        home: Pave's home (``Settings.home``); the repository is ``home/templates/<name>``.

    Returns:
        The repository's path: copier's ``src_path``.
    """
    target = home / "templates" / info.name
    wanted = fingerprint(info)
    marker = target / ".git" / _FINGERPRINT
    if marker.is_file() and marker.read_text() == wanted:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # Build aside and swap in, so a reader never sees a half-built repository.
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{info.name}.") as scratch:
        built = Path(scratch) / "repo"
        _build(info, built)
        (built / ".git" / _FINGERPRINT).write_text(wanted)
        if target.exists():
            shutil.rmtree(target)
        try:
            built.rename(target)
        except OSError:
            # Another process swapped in the same build at the same moment: commits are reproducible.
            if not (marker.is_file() and marker.read_text() == wanted):
                raise
    return target


def _build(info: TemplateInfo, repo: Path) -> None:
    repo.mkdir()
    git(repo, "init", "--quiet", "--initial-branch=main", env=_GIT_ENV)
    for version in info.versions:
        folder = info.source / version
        if not folder.is_dir():
            raise InternalError(f"template {info.name} {version}: the folder {folder} is missing")
        for path in _version_files(folder):
            relative = path.relative_to(folder)
            if relative.as_posix() == REMOVED_LIST:
                continue
            (repo / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, repo / relative)
        removed = folder / REMOVED_LIST
        if removed.is_file():
            for line in removed.read_text().splitlines():
                if line.strip():
                    (repo / line.strip()).unlink()
        git(repo, "add", "--all", env=_GIT_ENV)
        git(repo, "commit", "--quiet", "--allow-empty", "-m", f"{info.name} {version}", env=_GIT_ENV)
        git(repo, "tag", version, env=_GIT_ENV)
