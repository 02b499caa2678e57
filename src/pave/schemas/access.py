"""Who may do what: the caller, tokens, project members, teams, policy, approvals and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from pave.schemas.common import Wire


class Whoami(Wire):
    """The caller, as the platform sees its token."""

    identity: str
    role: str
    project: str | None = Field(description="The one project a project-scoped token is limited to.")
    is_admin: bool


class TokenOut(Wire):
    """An API token (never its secret)."""

    id: int
    identity: str
    name: str
    prefix: str = Field(description="The secret's first characters, to recognise it.")
    role: str
    project: str | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    """A new token, with its secret."""

    secret: str = Field(description="Shown once; only its hash is stored.")


class TokenRevoked(Wire):
    id: int
    status: str = Field(description="`revoked`.")


class MemberOut(Wire):
    """An identity's role on a project."""

    identity: str
    project: str
    role: str
    granted_by: str
    granted_at: datetime


class MemberRemoved(Wire):
    project: str
    identity: str
    status: str = Field(description="`removed`.")


class TeamOut(Wire):
    """A team: its members and the role it holds on projects."""

    name: str
    description: str
    created_by: str
    created_at: datetime
    members: list[str]
    projects: dict[str, str] = Field(description="project -> the role every member holds there")


class TeamDeleted(Wire):
    team: str
    status: str = Field(description="`deleted`.")


class TeamRoleOut(Wire):
    """A team's role on a project."""

    team: str
    project: str
    role: str
    granted_by: str
    granted_at: datetime


class TeamRoleRemoved(Wire):
    project: str
    team: str
    status: str = Field(description="`removed`.")


class PolicyOut(Wire):
    """A project's governance policy: approval before production, quotas (null: no limit)."""

    project: str
    owner: str | None
    require_approval: bool
    max_concurrent_runs: int | None
    max_deployments: int | None
    max_stored_bytes: int | None


class ApprovalOut(Wire):
    """An approval of a model version by someone who is not its author."""

    project: str
    version: str
    approved_by: str
    approved_at: str
    author: str
    gates: str
    comment: str


class AuditRecord(Wire):
    """One link of the audit chain: who did what, on which project, with what outcome."""

    seq: int
    at: str = Field(description="ISO 8601 UTC time.")
    identity: str | None
    token_id: int | None
    action: str
    method: str
    path: str
    project: str | None
    model: str | None
    run_id: str | None
    status: int
    outcome: str = Field(description="allowed, denied or failed.")
    client: str | None
    request_id: str
    detail: str | None
    prev_hash: str
    hash: str


class AuditVerification(Wire):
    """What walking the audit chain found."""

    ok: bool
    checked: int
    head: int
    first_bad_seq: int | None = Field(description="The first record edited or deleted, when not ok.")
    problem: str | None
    details: dict[str, Any]
