"""Creating a project, and the rule that ties MLflow's objects to projects by name.

A project's MLflow experiment and registered model carry the project's name
(:mod:`pave.governance.scope`), so a name decides who may touch what:

- creating a project named like an MLflow experiment or model that already exists outside any
  project would hand its runs and versions to the creator: only a platform admin may adopt them;
- renaming an experiment or a registered model to or from a project's name would move its runs
  or versions into another project or out of every project: refused
  (:func:`check_rename`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pave.errors import Conflict, Forbidden, NotFound
from pave.governance.scope import registry_project
from pave.governance.tokens import Principal
from pave.store.tables import Project, utcnow


def require_project(session: Session, name: str) -> None:
    """Raise NotFound (naming ``pave projects``) when no project is called ``name``."""
    if session.scalar(select(Project.id).where(Project.name == name)) is None:
        raise NotFound(f"project {name!r} does not exist", hint="`pave projects` lists them")


def existing_projects(session: Session, names: Iterable[str | None]) -> set[str]:
    """Which of ``names`` are Pave projects."""
    wanted = {n for n in names if n}
    if not wanted:
        return set()
    return set(session.scalars(select(Project.name).where(Project.name.in_(wanted))))


def create_project(
    session: Session,
    principal: Principal,
    name: str,
    *,
    claimed: Callable[[str], bool],
    owner: str | None = None,
    description: str = "",
    template: str | None = None,
    template_version: str | None = None,
    labels: dict[str, str] | None = None,
) -> Project:
    """Register project ``name``; ``claimed(name)`` tells whether MLflow already has objects by that name.

    Raises:
        Conflict: the project exists, or MLflow objects of that name exist and the caller is no
            admin (they would become the caller's).
    """
    if session.scalar(select(Project.id).where(Project.name == name)) is not None:
        raise Conflict(f"project {name!r} exists already", hint="pick another name")
    if not principal.is_admin and claimed(name):
        raise Conflict(
            f"an MLflow experiment or model named {name!r} exists already, outside any project; "
            "a project of that name would take over its runs and versions",
            hint="pick another name, or ask a platform admin to create the project (an admin adopts them)",
        )
    project = Project(
        name=name,
        owner=owner or principal.identity,
        description=description,
        template=template,
        template_version=template_version,
        created_by=principal.identity,
        created_at=utcnow(),
        labels=labels or {},
    )
    session.add(project)
    try:
        session.flush()
    except IntegrityError as exc:  # a concurrent create won the race
        raise Conflict(f"project {name!r} exists already", hint="pick another name") from exc
    return project


def check_rename(kind: str, old: str | None, new: str | None, projects: set[str]) -> None:
    """Refuse renaming an experiment or registered model to or from a project's name.

    Args:
        kind: "experiment" or "registered model", for the message.
        old: the current name (None: unknown; MLflow answers that the object does not exist).
        new: the name asked for (None or equal to ``old``: no rename).
        projects: which of ``old`` and ``new`` are Pave projects.
    """
    if not new or old is None or new == old:
        return
    involved = [n for n in (old, new) if n in projects]
    if involved:
        raise Forbidden(
            f"renaming {kind} {old!r} to {new!r} is refused: a {kind}'s name is the project it "
            f"belongs to ({', '.join(repr(n) for n in involved)}), so the rename would move it "
            "between projects",
            hint="leave the name as it is; copy what you need into the other project's experiment",
        )


def check_registry_rename(old: str | None, new: str | None, projects: set[str]) -> None:
    """Refuse renaming a registered model or prompt into another project (or off its project's name).

    ``projects``: which of the names and of their projects (:func:`registry_project`) are projects.
    """
    check_rename("registered model", old, new, projects)
    if not new or old is None or new == old:
        return
    before, after = registry_project(old), registry_project(new)
    if before != after and (before in projects or after in projects):
        raise Forbidden(
            f"renaming {old!r} to {new!r} is refused: it would move it from project {before!r} to {after!r}",
            hint=f"keep the project's prefix: {before}.<name>",
        )


def check_same_project(model: str | None, named: list[str | None], projects: set[str]) -> None:
    """A model version's files come from the model's own project (or, for a model outside every
    project, from no project): ``named`` are the model's project and what its source and run belong to."""
    home = registry_project(model) if model else None
    home = home if home in projects else None
    foreign = sorted({n for n in named if n in projects and n != home})
    if foreign:
        raise Forbidden(
            f"a version of model {model!r} may not take its files from project {foreign[0]!r}",
            hint="register the version under the project whose run logged the model",
        )
