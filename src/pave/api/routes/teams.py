"""Teams (admins create and fill them) and a team's role on a project (the project's maintainers)."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from pave.api.deps import PrincipalDep, SessionDep
from pave.api.routes.members import MemberIn
from pave.governance import teams
from pave.governance.teams import TeamInfo, TeamRole
from pave.schemas.access import TeamDeleted, TeamOut, TeamRoleOut, TeamRoleRemoved

router = APIRouter(prefix="/api/v1/teams", tags=["teams"])
project_router = APIRouter(prefix="/api/v1/projects/{name}/teams", tags=["teams"])


class TeamIn(BaseModel):
    name: str = Field(min_length=1, max_length=100, description="Lowercase letters, digits, '.', '_', '-'.")
    description: str = Field(default="", max_length=2000)


def _out(team: TeamInfo) -> TeamOut:
    return TeamOut.model_validate(team, from_attributes=True)


def _role_out(role: TeamRole) -> TeamRoleOut:
    return TeamRoleOut.model_validate(role, from_attributes=True)


@router.get("", operation_id="list_teams")
def list_all(session: SessionDep) -> list[TeamOut]:
    return [_out(t) for t in teams.list_teams(session)]


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_team")
def create(body: TeamIn, session: SessionDep, principal: PrincipalDep) -> TeamOut:
    return _out(
        teams.create_team(session, body.name, description=body.description, created_by=principal.identity)
    )


@router.get("/{team}", operation_id="get_team")
def get(team: str, session: SessionDep) -> TeamOut:
    return _out(teams.get_team(session, team))


@router.delete("/{team}", operation_id="delete_team")
def delete(team: str, session: SessionDep) -> TeamDeleted:
    """Delete the team, its memberships and its project roles."""
    teams.delete_team(session, team)
    return TeamDeleted(team=team, status="deleted")


@router.put("/{team}/members/{identity}", operation_id="add_team_member")
def add_member(team: str, identity: str, session: SessionDep, principal: PrincipalDep) -> TeamOut:
    return _out(teams.add_member(session, team, identity, added_by=principal.identity))


@router.delete("/{team}/members/{identity}", operation_id="remove_team_member")
def remove_member(team: str, identity: str, session: SessionDep) -> TeamOut:
    return _out(teams.remove_member(session, team, identity))


@project_router.get("", operation_id="list_team_roles")
def list_roles(name: str, session: SessionDep) -> list[TeamRoleOut]:
    return [_role_out(r) for r in teams.list_team_roles(session, name)]


@project_router.put("/{team}", operation_id="set_team_role")
def put_role(
    name: str, team: str, body: MemberIn, session: SessionDep, principal: PrincipalDep
) -> TeamRoleOut:
    """Give every member of ``team`` a role on the project (replacing the team's role there)."""
    return _role_out(teams.set_team_role(session, name, team, body.role, granted_by=principal.identity))


@project_router.delete("/{team}", operation_id="remove_team_role")
def delete_role(name: str, team: str, session: SessionDep) -> TeamRoleRemoved:
    teams.remove_team_role(session, name, team)
    return TeamRoleRemoved(project=name, team=team, status="removed")
