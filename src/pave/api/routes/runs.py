"""A project's pipeline runs and model versions, read from the embedded MLflow's store."""

from __future__ import annotations

from typing import Any

import anyio
from fastapi import APIRouter
from sqlalchemy import select

from pave.api.deps import PlatformDep, SessionDep
from pave.errors import NotFound
from pave.registry.versions import list_model_versions
from pave.schemas.projects import ModelVersionOut, RunOut
from pave.store.tables import Project
from pave.tracking.lineage import list_runs

router = APIRouter(prefix="/api/v1/projects/{name}", tags=["runs"])


def _require_project(session: Any, name: str) -> None:
    if session.scalar(select(Project.id).where(Project.name == name)) is None:
        raise NotFound(f"project {name!r} does not exist", hint="`pave projects` lists them")


@router.get("/runs", operation_id="list_runs")
async def runs(name: str, platform: PlatformDep, session: SessionDep, limit: int = 50) -> list[RunOut]:
    """The project's runs, newest first: status, metrics, params, lineage, model version, gates."""
    _require_project(session, name)
    limit = max(1, min(limit, 500))
    found = await anyio.to_thread.run_sync(
        lambda: list_runs(name, tracking_uri=platform.settings.mlflow_db_url, max_results=limit)
    )
    return [RunOut.model_validate(r.to_dict()) for r in found]


@router.get("/models", operation_id="list_model_versions")
async def models(name: str, platform: PlatformDep, session: SessionDep) -> list[ModelVersionOut]:
    """The versions of the project's registered model (same name as the project), newest first."""
    _require_project(session, name)
    found = await anyio.to_thread.run_sync(
        lambda: list_model_versions(name, tracking_uri=platform.settings.mlflow_db_url)
    )
    return [ModelVersionOut.model_validate(v.to_dict()) for v in found]
