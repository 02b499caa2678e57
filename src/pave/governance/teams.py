"""Teams: groups of identities that hold project roles together.

A member of team T holds T's role on every project T is bound to; an identity's effective role
on a project combines its direct binding and the bindings of all its teams
(:mod:`pave.governance.access`). Teams are created and filled by admins; a project's
maintainers bind a team to their project, as they add an individual member.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pave.errors import Conflict, InvalidInput, NotFound
from pave.governance.roles import PROJECT_ROLES
from pave.store.tables import Project, Team, TeamBinding, TeamMember, utcnow

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")


@dataclass(frozen=True)
class TeamInfo:
    name: str
    description: str
    created_by: str
    created_at: datetime
    members: list[str] = field(default_factory=list)
    projects: dict[str, str] = field(default_factory=dict)  # project -> role


@dataclass(frozen=True)
class TeamRole:
    team: str
    project: str
    role: str
    granted_by: str
    granted_at: datetime


def _check_name(name: str) -> None:
    if not NAME.fullmatch(name):
        raise InvalidInput(
            f"team name {name[:120]!r} is not valid",
            hint="use 1 to 100 lowercase letters, digits, '.', '_' or '-', e.g. `pave team create fraud-ds`",
        )


def _check_identity(identity: str) -> None:
    if not identity.strip() or len(identity) > 200:
        raise InvalidInput("an identity is 1 to 200 characters", hint="pave team add TEAM alice")


def _team(session: Session, name: str) -> Team:
    team = session.scalar(select(Team).where(Team.name == name))
    if team is None:
        raise NotFound(f"team {name!r} does not exist", hint="`pave team list` shows the teams")
    return team


def _info(session: Session, team: Team) -> TeamInfo:
    members = session.scalars(
        select(TeamMember.identity).where(TeamMember.team_id == team.id).order_by(TeamMember.identity)
    ).all()
    bound = (
        session.execute(
            select(TeamBinding.project, TeamBinding.role)
            .where(TeamBinding.team_id == team.id)
            .order_by(TeamBinding.project)
        )
        .tuples()
        .all()
    )
    return TeamInfo(team.name, team.description, team.created_by, team.created_at, list(members), dict(bound))


def create_team(session: Session, name: str, *, description: str = "", created_by: str) -> TeamInfo:
    _check_name(name)
    if len(description) > 2000:
        raise InvalidInput("a team description is at most 2000 characters")
    if session.scalar(select(Team.id).where(Team.name == name)) is not None:
        raise Conflict(f"team {name!r} exists already", hint=f"`pave team show {name}`")
    team = Team(name=name, description=description, created_by=created_by, created_at=utcnow())
    session.add(team)
    session.flush()
    return _info(session, team)


def list_teams(session: Session) -> list[TeamInfo]:
    return [_info(session, team) for team in session.scalars(select(Team).order_by(Team.name))]


def get_team(session: Session, name: str) -> TeamInfo:
    return _info(session, _team(session, name))


def delete_team(session: Session, name: str) -> None:
    """Delete a team, its memberships and its project roles (its members keep their own roles)."""
    team = _team(session, name)
    session.execute(delete(TeamBinding).where(TeamBinding.team_id == team.id))
    session.execute(delete(TeamMember).where(TeamMember.team_id == team.id))
    session.delete(team)
    session.flush()


def add_member(session: Session, name: str, identity: str, *, added_by: str) -> TeamInfo:
    team = _team(session, name)
    _check_identity(identity)
    exists = session.scalar(
        select(TeamMember.id).where(TeamMember.team_id == team.id, TeamMember.identity == identity)
    )
    if exists is None:
        session.add(TeamMember(team_id=team.id, identity=identity, added_by=added_by, added_at=utcnow()))
        session.flush()
    return _info(session, team)


def remove_member(session: Session, name: str, identity: str) -> TeamInfo:
    team = _team(session, name)
    result = session.execute(
        delete(TeamMember).where(TeamMember.team_id == team.id, TeamMember.identity == identity)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(f"{identity} is not a member of team {name!r}", hint=f"`pave team show {name}`")
    return _info(session, team)


def _project(session: Session, name: str) -> None:
    if session.scalar(select(Project.id).where(Project.name == name)) is None:
        raise NotFound(f"project {name!r} does not exist", hint="`pave projects` lists them")


def list_team_roles(session: Session, project: str) -> list[TeamRole]:
    _project(session, project)
    rows = session.execute(
        select(Team.name, TeamBinding)
        .join(Team, Team.id == TeamBinding.team_id)
        .where(TeamBinding.project == project)
        .order_by(Team.name)
    ).tuples()
    return [TeamRole(name, b.project, b.role, b.granted_by, b.granted_at) for name, b in rows]


def set_team_role(session: Session, project: str, name: str, role: str, *, granted_by: str) -> TeamRole:
    """Give every member of team ``name`` ``role`` on ``project`` (replacing the team's role there)."""
    _project(session, project)
    team = _team(session, name)
    if role not in PROJECT_ROLES:
        raise InvalidInput(
            f"role {role!r} cannot be given on a project", hint=f"use one of: {', '.join(PROJECT_ROLES)}"
        )
    binding = session.scalar(
        select(TeamBinding).where(TeamBinding.team_id == team.id, TeamBinding.project == project)
    )
    if binding is None:
        binding = TeamBinding(team_id=team.id, project=project, role=role)
        session.add(binding)
    binding.role, binding.granted_by, binding.granted_at = role, granted_by, utcnow()
    session.flush()
    return TeamRole(name, project, role, granted_by, binding.granted_at)


def remove_team_role(session: Session, project: str, name: str) -> None:
    _project(session, project)
    team = _team(session, name)
    result = session.execute(
        delete(TeamBinding).where(TeamBinding.team_id == team.id, TeamBinding.project == project)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        raise NotFound(
            f"team {name!r} has no role on project {project!r}", hint=f"`pave project member list {project}`"
        )


def team_roles_of(session: Session, identity: str) -> list[tuple[str, str]]:
    """(project, role) for every binding of every team ``identity`` belongs to."""
    rows = session.execute(
        select(TeamBinding.project, TeamBinding.role)
        .join(TeamMember, TeamMember.team_id == TeamBinding.team_id)
        .where(TeamMember.identity == identity)
    ).tuples()
    return list(rows)
