"""A project's members: who has which role on it (maintainers and admins manage them)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from pave.api.deps import PrincipalDep, SessionDep
from pave.governance.access import Member, list_members, remove_member, set_member
from pave.governance.roles import PROJECT_ROLES
from pave.schemas.access import MemberOut, MemberRemoved

router = APIRouter(prefix="/api/v1/projects/{name}/members", tags=["members"])


class MemberIn(BaseModel):
    role: str = Field(description=f"One of: {', '.join(PROJECT_ROLES)}", max_length=20)


def _out(member: Member) -> MemberOut:
    return MemberOut.model_validate(member, from_attributes=True)


@router.get("", operation_id="list_members")
def list_all(name: str, session: SessionDep) -> list[MemberOut]:
    return [_out(m) for m in list_members(session, name)]


@router.put("/{identity}", operation_id="set_member")
def put(name: str, identity: str, body: MemberIn, session: SessionDep, principal: PrincipalDep) -> MemberOut:
    """Give ``identity`` a role on the project (replacing the one it had)."""
    return _out(set_member(session, name, identity, body.role, granted_by=principal.identity))


@router.delete("/{identity}", operation_id="remove_member")
def delete(name: str, identity: str, session: SessionDep) -> MemberRemoved:
    remove_member(session, name, identity)
    return MemberRemoved(project=name, identity=identity, status="removed")
