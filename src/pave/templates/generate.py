"""Generate a project from a golden-path template, and upgrade it to a newer template version.

Both go through copier's Python API against the template's git repository
(:func:`pave.templates.repo.template_repo`). A generated project records its template, version and
answers in ``.copier-answers.yml``; :func:`upgrade` reads them and lets copier merge the new version
three ways (old template, new template, the project as its owner changed it), so the owner's edits
survive and a clash shows up as conflict markers in the files, never as a silent overwrite.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pave.config import load_settings
from pave.errors import Conflict, InvalidInput, MissingExtra, NotFound
from pave.templates.catalog import TemplateInfo, get_template
from pave.templates.repo import git, template_repo

ANSWERS_FILE = ".copier-answers.yml"
QUESTIONS = ("project_name", "owner", "description")
PROJECT_NAME = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")
_NAME_LENGTH = range(2, 64)  # pave.yaml wants 2+ characters; Backstage's metadata.name at most 63
_OWNER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]*$")


@dataclass(frozen=True)
class Upgrade:
    """What :func:`upgrade` did.

    Attributes:
        project_dir: the project.
        template: the template's name.
        from_version: the version the project was on.
        to_version: the version it is on now (equal to ``from_version`` when there was nothing to do).
        conflicts: files where the template's change and the owner's edit clash; they hold
            conflict markers to resolve by hand before committing.
    """

    project_dir: Path
    template: str
    from_version: str
    to_version: str
    conflicts: tuple[str, ...]


def _copier() -> Any:
    try:
        import copier
    except ImportError as exc:
        raise MissingExtra("project templates", "golden-path") from exc
    return copier


def check_answers(answers: Mapping[str, Any]) -> dict[str, str]:
    """Validate the answers to a template's questions; return them with defaults filled in.

    Raises:
        InvalidInput: an unknown question, a missing owner, or a project name that is not a slug.
    """
    unknown = sorted(set(answers) - set(QUESTIONS))
    if unknown:
        raise InvalidInput(
            f"unknown template answer(s): {', '.join(unknown)}",
            hint="the questions are: " + ", ".join(QUESTIONS),
        )
    name = str(answers.get("project_name") or "")
    if not PROJECT_NAME.fullmatch(name) or len(name) not in _NAME_LENGTH:
        raise InvalidInput(
            f"project name {name!r} is not valid",
            hint=(
                "use lower-case letters, digits and single hyphens, starting with a letter, "
                f"{_NAME_LENGTH.start} to {_NAME_LENGTH.stop - 1} characters (e.g. churn-model)"
            ),
        )
    owner = str(answers.get("owner") or "")
    if not _OWNER.fullmatch(owner):
        raise InvalidInput(
            f"owner {owner!r} is not valid" if owner else f"project {name} needs an owner",
            hint="give a user or group name as in your catalog, e.g. alice or group:ml-team",
        )
    checked = {"project_name": name, "owner": owner}
    if answers.get("description"):
        checked["description"] = " ".join(str(answers["description"]).split())
    return checked


def _version(info: TemplateInfo, version: str | None) -> str:
    if version is None:
        return info.version
    if version not in info.versions:
        raise NotFound(
            f"template {info.name} has no version {version!r}",
            hint="available versions: " + ", ".join(info.versions),
        )
    return version


def _src_path(repo: Path) -> str:
    """The repository path as recorded in answers files: ``~/...`` when under the user's home.

    ``~`` keeps the answers file valid for every teammate whose Pave home sits at the same place
    relative to their own home directory (the default, ``~/.pave``); copier expands it.
    """
    try:
        return "~/" + repo.relative_to(Path.home()).as_posix()
    except ValueError:
        return repo.as_posix()


def generate(
    template: str, dest: str | Path, answers: Mapping[str, Any], *, vcs_ref: str | None = None
) -> Path:
    """Generate a new project from a template.

    When ``dest`` is not inside a git work tree, the project becomes a git repository with one
    commit, so that ``pave run`` can record the commit and :func:`upgrade` can merge later versions.

    Args:
        template: the template's name (see :func:`pave.templates.list_templates`).
        dest: where to create the project; it must not exist or be an empty folder.
        answers: ``project_name`` (a slug), ``owner``, and optionally ``description``.
        vcs_ref: the template version to use; default the latest.

    Returns:
        The project's folder, absolute.

    Raises:
        NotFound: unknown template or version.
        InvalidInput: bad answers.
        Conflict: ``dest`` is a file or a non-empty folder.
    """
    info = get_template(template)
    version = _version(info, vcs_ref)
    data = check_answers(answers)
    target = Path(dest).expanduser().resolve()
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise Conflict(
            f"cannot create project {data['project_name']} in {target}: it exists and is not an empty folder",
            hint="choose a new folder, or move the existing one away",
        )
    repo = template_repo(info, load_settings().home)
    copier = _copier()
    copier.run_copy(
        _src_path(repo),
        target,
        data=data,
        vcs_ref=version,
        defaults=True,
        unsafe=False,
        quiet=True,
        overwrite=False,
    )
    if not _inside_work_tree(target):
        git(target, "init", "--quiet", "--initial-branch=main")
        git(target, "add", "--all")
        git(target, *_identity(target), "commit", "--quiet", "-m", f"New project from {info.name} {version}")
    return target


def _inside_work_tree(path: Path) -> bool:
    done = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=path, capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and done.stdout.strip() == "true"


def _identity(path: Path) -> list[str]:
    """``-c`` options naming a committer when git has none configured, else nothing."""
    done = subprocess.run(["git", "config", "user.email"], cwd=path, capture_output=True, check=False)
    if done.returncode == 0:
        return []
    return ["-c", "user.name=Pave", "-c", "user.email=pave@localhost"]


def read_answers(project_dir: Path) -> dict[str, Any]:
    """The answers file of a generated project.

    Raises:
        NotFound: the folder holds no answers file (it was not generated from a template).
    """
    path = project_dir / ANSWERS_FILE
    if not path.is_file():
        raise NotFound(
            f"{project_dir} has no {ANSWERS_FILE}: it was not generated by `pave new`",
            hint="run the command in the project's folder, or pass that folder",
        )
    loaded = yaml.safe_load(path.read_text())
    if not isinstance(loaded, dict) or not loaded.get("_src_path") or not loaded.get("_commit"):
        raise InvalidInput(
            f"{path} lacks _src_path or _commit",
            hint=f"restore it from git history: git checkout HEAD -- {ANSWERS_FILE}",
        )
    return loaded


def upgrade(project_dir: str | Path, to_version: str | None = None) -> Upgrade:
    """Merge a newer version of its template into a generated project, keeping the owner's edits.

    The project must be a git work tree with everything committed: the merge result is left
    uncommitted, for the owner to review (``git diff``) and commit.

    Args:
        project_dir: the project's folder.
        to_version: the template version to move to; default the latest.

    Returns:
        What changed, including the files left with conflict markers.

    Raises:
        NotFound: not a generated project, or an unknown template version.
        InvalidInput: ``to_version`` is older than the project's version.
        Conflict: uncommitted changes, or the template repository recorded in the answers file is
            not where this machine's Pave keeps it.
    """
    project = Path(project_dir).expanduser().resolve()
    answers = read_answers(project)
    recorded = Path(str(answers["_src_path"])).expanduser()
    info = get_template(recorded.name)
    current = str(answers["_commit"])
    target = _version(info, to_version)
    order = {v: i for i, v in enumerate(info.versions)}
    if current not in order:
        raise NotFound(
            f"{project.name} was generated from {info.name} {current}, which this Pave does not ship",
            hint="upgrade Pave (pip install -U pave), then run `pave upgrade` again",
        )
    if order[target] < order[current]:
        raise InvalidInput(
            f"{project.name} is on {info.name} {current}; {target} is older: downgrades are not supported",
            hint="pass a version newer than " + current,
        )
    if target == current:
        return Upgrade(project, info.name, current, current, ())
    repo = template_repo(info, load_settings().home)
    if recorded.resolve() != repo.resolve():
        raise Conflict(
            f"{project.name} names the template repository {answers['_src_path']}, "
            f"but this machine keeps {info.name} at {repo}",
            hint=f"set _src_path: {_src_path(repo)} in {ANSWERS_FILE}, commit, and run `pave upgrade` again",
        )
    if not _inside_work_tree(project) or git(project, "status", "--porcelain").strip():
        raise Conflict(
            f"{project.name} has uncommitted changes (or is not a git repository)",
            hint="commit your changes first (git add -A && git commit), then run `pave upgrade` again",
        )
    _copier().run_update(
        project,
        vcs_ref=target,
        defaults=True,
        overwrite=True,
        skip_answered=True,
        unsafe=False,
        quiet=True,
        conflict="inline",
    )
    unmerged = git(project, "diff", "--name-only", "--diff-filter=U").split()
    return Upgrade(project, info.name, current, target, tuple(sorted(set(unmerged))))
