"""The closed loop of a project: the run it retrains from, its retrains and their outcomes."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.automation import loop, sources
from pave.errors import InvalidInput
from pave.schemas.projects import LoopOut, LoopRun, LoopSource

router = APIRouter(prefix="/api/v1/projects/{name}", tags=["loop"])


class SourceRecord(BaseModel):
    run_id: str | None = Field(
        default=None,
        min_length=32,
        max_length=32,
        description="The run to retrain from: a finished run of the project with a code snapshot.",
    )
    directory: str | None = Field(
        default=None, description="Refused: the platform no longer records project folders (send run_id)."
    )


@router.put("/source", operation_id="record_project_source")
def record_source(
    name: str, body: SourceRecord, session: SessionDep, principal: PrincipalDep, platform: PlatformDep
) -> LoopSource:
    """Record the run a retrain re-runs (``pave run`` does it once it finished): its code snapshot,
    data versions and ``pave.yaml``, all in the platform's store."""
    if body.directory is not None:
        raise InvalidInput(
            "the platform no longer records a project folder by path: retrains run from a code snapshot",
            hint='send {"run_id": RUN_ID} (a finished run of the project); `pave run` records its run itself',
        )
    if body.run_id is None:
        raise InvalidInput(
            "the body names no run_id", hint='send {"run_id": RUN_ID}: the run that retrains re-run'
        )
    spec = sources.read_run(session, platform.settings, project=name, run_id=body.run_id)
    row = sources.record_source(
        session, project=name, run_id=body.run_id, spec=spec, actor=principal.identity
    )
    return LoopSource.model_validate(sources.describe_source(row))


@router.get("/loop", operation_id="get_loop")
def get_loop(name: str, session: SessionDep, limit: int = 50) -> LoopOut:
    """The project's loop: the run it retrains from, its retrain policy, and every turn (newest first)."""
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
    return LoopOut.model_validate(
        {
            "project": name,
            "source": sources.describe_source(source),
            "runs": [loop.describe(r) for r in turns],
        }
    )


@router.post("/retrain", status_code=status.HTTP_202_ACCEPTED, operation_id="retrain_project")
def retrain(name: str, session: SessionDep, principal: PrincipalDep) -> LoopRun:
    """Start a turn of the loop now: a retrain job, gates, progressive rollout."""
    row = loop.trigger(session, name, trigger="manual", actor=principal.identity)
    return LoopRun.model_validate(loop.describe(row))
