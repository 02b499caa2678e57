"""Progressive rollouts of a project's deployment: start, watch, promote, roll back."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.schemas.serving import RolloutOut
from pave.serving import rollouts

router = APIRouter(prefix="/api/v1/projects/{name}/rollout", tags=["rollouts"])


class RolloutStart(BaseModel):
    version: str = Field(max_length=20, description="The candidate model version.")
    policy: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "steps, interval_seconds, min_requests, max_error_rate, alpha, max_p99_ms, max_p99_ratio, "
            "min_labels, require_labels"
        ),
    )


class RolloutAction(BaseModel):
    reason: str = Field(default="", max_length=500)


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="start_rollout")
async def start(
    name: str, body: RolloutStart, session: SessionDep, principal: PrincipalDep, platform: PlatformDep
) -> RolloutOut:
    """Start moving traffic to ``version`` step by step; guards roll it back on their own."""

    def work() -> RolloutOut:
        row = rollouts.start(
            session,
            platform.settings,
            project=name,
            version=body.version,
            actor=principal.identity,
            policy=body.policy,
        )
        return RolloutOut.model_validate(rollouts.describe(row, log_dir=platform.settings.inference_log_dir))

    return await anyio.to_thread.run_sync(work)


@router.get("", operation_id="get_rollout")
def get(name: str, session: SessionDep, platform: PlatformDep) -> RolloutOut:
    """The latest rollout of the project: state, step, what the step waits for, and every decision
    with its numbers."""
    row = rollouts.current(session, name)
    return RolloutOut.model_validate(rollouts.describe(row, log_dir=platform.settings.inference_log_dir))


@router.post("/promote", operation_id="promote_rollout")
async def promote(
    name: str, body: RolloutAction, session: SessionDep, principal: PrincipalDep, platform: PlatformDep
) -> RolloutOut:
    def work() -> RolloutOut:
        row = rollouts.current(session, name)
        rollouts.promote(
            session, platform.settings, row, reason=body.reason or "promoted by hand", by=principal.identity
        )
        return RolloutOut.model_validate(rollouts.describe(row))

    return await anyio.to_thread.run_sync(work)


@router.post("/rollback", operation_id="rollback_rollout")
async def rollback(
    name: str, body: RolloutAction, session: SessionDep, principal: PrincipalDep, platform: PlatformDep
) -> RolloutOut:
    def work() -> RolloutOut:
        row = rollouts.current(session, name)
        rollouts.rollback(
            session,
            platform.settings,
            row,
            reason=body.reason or "rolled back by hand",
            by=principal.identity,
        )
        return RolloutOut.model_validate(rollouts.describe(row))

    return await anyio.to_thread.run_sync(work)
