"""A project's governance policy (approval before production, quotas) and approvals of versions."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, Field

from pave.api.deps import PrincipalDep, SessionDep
from pave.governance import approvals, prompts
from pave.governance.policy import get_policy, set_policy
from pave.schemas.access import ApprovalOut, PolicyOut

router = APIRouter(prefix="/api/v1/projects/{name}", tags=["governance"])


class PolicyIn(BaseModel):
    require_approval: bool | None = Field(
        default=None,
        description="An approver other than the author must approve a version before it becomes champion.",
    )
    max_concurrent_runs: int | None = Field(default=None, ge=0, le=100_000)
    max_deployments: int | None = Field(default=None, ge=0, le=100_000)
    max_stored_bytes: int | None = Field(default=None, ge=0, le=2**62)


class ApprovalIn(BaseModel):
    version: str = Field(pattern=r"^[0-9]{1,9}$")
    comment: str = Field(default="", max_length=500)
    prompt: str | None = Field(
        default=None,
        max_length=256,
        description="A prompt of the project (<project>.<prompt>) to approve instead of its model.",
    )


def _registry() -> Any:
    from pave.tracking import stores

    return stores.registry_store()


@router.get("/policy", operation_id="get_policy")
def read_policy(name: str, session: SessionDep) -> PolicyOut:
    return PolicyOut(**get_policy(session, name).to_dict())


@router.put("/policy", operation_id="set_policy")
def write_policy(name: str, body: PolicyIn, session: SessionDep, principal: PrincipalDep) -> PolicyOut:
    """Change the fields given (a quota set to null stays as it was; send 0 to forbid)."""
    changes = {k: v for k, v in body.model_dump().items() if v is not None}
    return PolicyOut(**set_policy(session, name, updated_by=principal.identity, **changes).to_dict())


@router.post("/approvals", operation_id="approve_version")
async def approve(name: str, body: ApprovalIn, principal: PrincipalDep) -> ApprovalOut:
    """Approve a version of the project's model, or of one of its prompts (by a non-author)."""
    target = name if body.prompt is None else prompts.check_belongs(body.prompt, name)
    approval = await anyio.to_thread.run_sync(
        lambda: approvals.approve(
            _registry(), target, body.version, approver=principal.identity, comment=body.comment
        )
    )
    return ApprovalOut(**approval.to_dict())


@router.get("/approvals/{version}", operation_id="get_approval")
async def get_approval(name: str, version: int, prompt: str | None = None) -> ApprovalOut | None:
    target = name if prompt is None else prompts.check_belongs(prompt, name)
    found = await anyio.to_thread.run_sync(lambda: approvals.approval_of(_registry(), target, str(version)))
    return ApprovalOut(**found.to_dict()) if found else None
