"""Who may do what on which project: role bindings and the effective role of a request.

A token's effective actions on project P:

- an admin token (or an admin identity): everything, everywhere;
- a token scoped to project Q: its role's actions on Q, nothing on any other project;
- a platform-wide token: the identity's roles on P, direct and through its teams (the union of
  their actions, so the highest role wins; the project's owner is at least maintainer),
  intersected with the token's role: a viewer token of a maintainer stays a viewer;
- a name that is no Pave project (an MLflow experiment created outside a project): the token's
  role, for platform-wide tokens only.

Requests that concern no project (``whoami``, the MLflow UI's static files, searches, which are
filtered item by item) need the action from the token's role alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pave.errors import InvalidInput, NotFound
from pave.governance.roles import PROJECT_ROLES, ROLES
from pave.governance.teams import team_roles_of
from pave.governance.tokens import Principal
from pave.store.tables import Project, RoleBinding, utcnow

NOTHING: frozenset[str] = frozenset()


@dataclass
class Access:
    """A principal's view of the projects, loaded once per request."""

    principal: Principal
    owners: dict[str, str] = field(default_factory=dict)  # project -> owner
    bindings: dict[str, str] = field(default_factory=dict)  # project -> role of this identity
    team_bindings: dict[str, list[str]] = field(default_factory=dict)  # project -> roles of its teams

    @classmethod
    def load(cls, session: Session, principal: Principal) -> Access:
        if principal.is_admin:
            return cls(principal)
        owners = dict(session.execute(select(Project.name, Project.owner)).tuples().all())
        mine = select(RoleBinding.project, RoleBinding.role).where(RoleBinding.identity == principal.identity)
        bindings = dict(session.execute(mine).tuples().all())
        through_teams: dict[str, list[str]] = {}
        for project, role in team_roles_of(session, principal.identity):
            through_teams.setdefault(project, []).append(role)
        return cls(principal, owners, bindings, through_teams)

    @property
    def token_actions(self) -> frozenset[str]:
        return ROLES.get(self.principal.role, NOTHING)

    def actions(self, project: str | None) -> frozenset[str]:
        """The actions this principal may take on ``project`` (None: no project concerned)."""
        principal = self.principal
        if principal.is_admin:
            return ROLES["admin"]
        if project is None:
            return self.token_actions
        if principal.project is not None:
            return self.token_actions if project == principal.project else NOTHING
        if project not in self.owners:
            return self.token_actions
        granted = set(ROLES.get(self.bindings.get(project, ""), NOTHING))
        for role in self.team_bindings.get(project, ()):
            granted |= ROLES.get(role, NOTHING)
        if self.owners[project] == principal.identity:
            granted |= ROLES["maintainer"]
        return frozenset(granted) & self.token_actions

    def can(self, action: str, project: str | None) -> bool:
        return action in self.actions(project)

    def sees(self, project: str | None) -> bool:
        """Whether listings show objects of ``project`` to this principal."""
        if self.principal.is_admin:
            return True
        return project is not None and "read" in self.actions(project)


@dataclass(frozen=True)
class Member:
    identity: str
    project: str
    role: str
    granted_by: str
    granted_at: datetime


def _project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"project {name!r} does not exist", hint="`pave projects` lists them")
    return project


def list_members(session: Session, project: str) -> list[Member]:
    _project(session, project)
    rows = session.scalars(
        select(RoleBinding).where(RoleBinding.project == project).order_by(RoleBinding.identity)
    )
    return [Member(r.identity, r.project, r.role, r.granted_by, r.granted_at) for r in rows]


def set_member(session: Session, project: str, identity: str, role: str, *, granted_by: str) -> Member:
    """Give ``identity`` ``role`` on ``project`` (replacing the role it had there)."""
    _project(session, project)
    if role not in PROJECT_ROLES:
        raise InvalidInput(
            f"role {role!r} cannot be given on a project", hint=f"use one of: {', '.join(PROJECT_ROLES)}"
        )
    if not identity.strip() or len(identity) > 200:
        raise InvalidInput(
            "an identity is 1 to 200 characters", hint="pave project member add P alice viewer"
        )
    binding = session.scalar(
        select(RoleBinding).where(RoleBinding.project == project, RoleBinding.identity == identity)
    )
    if binding is None:
        binding = RoleBinding(identity=identity, project=project, role=role)
        session.add(binding)
    binding.role, binding.granted_by, binding.granted_at = role, granted_by, utcnow()
    session.flush()
    return Member(identity, project, role, granted_by, binding.granted_at)


def remove_member(session: Session, project: str, identity: str) -> None:
    _project(session, project)
    result = session.execute(
        delete(RoleBinding).where(RoleBinding.project == project, RoleBinding.identity == identity)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(
            f"{identity} has no role on project {project!r}", hint=f"`pave project member list {project}`"
        )
