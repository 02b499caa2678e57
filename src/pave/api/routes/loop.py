"""The closed loop of a project: where it lives, its retrains and their outcomes."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.automation import loop

router = APIRouter(prefix="/api/v1/projects/{name}", tags=["loop"])


class SourceRecord(BaseModel):
    directory: str = Field(min_length=1, max_length=2000, description="The project folder (absolute).")
    spec: dict[str, Any] = Field(description="The project's pave.yaml as of this run (JSON form).")


@router.put("/source", operation_id="record_project_source")
def record_source(
    name: str, body: SourceRecord, session: SessionDep, principal: PrincipalDep, platform: PlatformDep
) -> dict[str, Any]:
    """Record where the project lives (``pave run`` does it): what a retrain re-runs."""
    row = loop.record_source(
        session,
        platform.settings,
        project=name,
        directory=body.directory,
        spec=body.spec,
        actor=principal.identity,
    )
    return loop.describe_source(row) or {}


@router.get("/loop", operation_id="get_loop")
def get_loop(name: str, session: SessionDep, limit: int = 50) -> dict[str, Any]:
    """The project's loop: where it lives, its retrain policy, and every turn (newest first)."""
    from sqlalchemy import select

    from pave.errors import NotFound
    from pave.store.tables import LoopSourceRow, Project

    source = session.scalar(select(LoopSourceRow).where(LoopSourceRow.project == name))
    turns = loop.runs(session, name, limit=max(1, min(limit, 500)))
    if (
        source is None
        and not turns
        and session.scalar(select(Project.id).where(Project.name == name)) is None
    ):
        raise NotFound(f"there is no project {name!r}", hint="`pave projects` lists them")
    return {
        "project": name,
        "source": loop.describe_source(source),
        "runs": [loop.describe(r) for r in turns],
    }


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED, operation_id="retrain_project")
def retrain(name: str, session: SessionDep, principal: PrincipalDep) -> dict[str, Any]:
    """Start a turn of the loop now: pave run, gates, progressive rollout (the control plane runs it)."""
    row = loop.trigger(session, name, trigger="manual", actor=principal.identity)
    return loop.describe(row)
