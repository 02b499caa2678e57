"""Deployments: a project's model versions served by the inference gateways."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, Field

from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.governance.access import Access
from pave.serving import store as deployments
from pave.serving import traffic
from pave.store.tables import DeploymentRow

router = APIRouter(prefix="/api/v1", tags=["deployments"])


class DeployRequest(BaseModel):
    version: str | None = Field(default=None, max_length=20, description="Model version; default: alias.")
    alias: str | None = Field(default=None, max_length=100, description="Default: champion.")
    canary_version: str | None = Field(default=None, max_length=20)
    canary_weight: float = Field(default=10.0, gt=0, lt=100, description="Percent of traffic.")
    shadow_version: str | None = Field(default=None, max_length=20)
    sticky: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    scale_to_zero_after: float | None = Field(default=None, gt=0, le=30 * 86400)


class DeploymentOut(BaseModel):
    name: str
    project: str
    spec: dict[str, Any]
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


def _out(row: DeploymentRow) -> DeploymentOut:
    return DeploymentOut.model_validate(row, from_attributes=True)


@router.get("/deployments", operation_id="list_deployments")
def list_all(session: SessionDep, principal: PrincipalDep) -> list[DeploymentOut]:
    """Every deployment the caller may see."""
    access = Access.load(session, principal)
    return [_out(r) for r in deployments.list_deployments(session) if access.sees(r.project)]


@router.get("/projects/{name}/deployment", operation_id="get_deployment")
def get_one(name: str, session: SessionDep) -> DeploymentOut:
    return _out(deployments.get_deployment(session, name))


@router.put("/projects/{name}/deployment", operation_id="deploy")
async def deploy(
    name: str, body: DeployRequest, session: SessionDep, principal: PrincipalDep, platform: PlatformDep
) -> DeploymentOut:
    """Create or replace the project's deployment; gateways pick it up within a second."""

    def work() -> DeploymentRow:
        return traffic.deploy(
            session, platform.settings, project=name, actor=principal.identity, **body.model_dump()
        )

    return _out(await anyio.to_thread.run_sync(work))


@router.delete("/projects/{name}/deployment", operation_id="undeploy")
def undeploy(name: str, session: SessionDep) -> dict[str, str]:
    traffic.undeploy(session, name)
    return {"name": name, "status": "undeployed"}
