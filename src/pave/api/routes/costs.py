"""Cost accounting: usage reported by jobs, costs per project, budgets and quotas."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.automation import batch_jobs, budgets
from pave.errors import InvalidInput
from pave.governance import costs
from pave.monitoring.alerts import alert_dict
from pave.schemas.platform import Admission, CostReport, UsageRecorded
from pave.schemas.serving import BatchJobOut, BatchRunOut

router = APIRouter(tags=["costs"])

SinceQuery = Query(default=None, max_length=40, description="ISO date or time (UTC); default 30 days ago.")


class UsageReport(BaseModel):
    items: list[dict[str, Any]] = Field(min_length=1, max_length=10_000, description="Usage items.")


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidInput(
            f"since={value!r} is not an ISO date or time", hint="e.g. since=2026-12-01"
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/api/v1/projects/{name}/usage", operation_id="record_usage")
def record_usage(name: str, body: UsageReport, session: SessionDep, platform: PlatformDep) -> UsageRecorded:
    """Record what a step, trial, batch job or deployment of the project used; budget alerts follow."""
    items = [costs.Usage.parse(item) for item in body.items]
    count = costs.record(session, name, items)
    session.flush()
    opened = budgets.check(session, platform.settings, name)
    return UsageRecorded(recorded=count, alerts=[alert_dict(a) for a in opened])


@router.get(
    "/api/v1/projects/{name}/costs", operation_id="get_project_costs", response_model_exclude_unset=True
)
def project_costs(
    name: str, session: SessionDep, platform: PlatformDep, since: str | None = SinceQuery
) -> CostReport:
    """The project's usage and cost per kind and per day, and its budget."""
    found = costs.report(session, platform.settings, projects=[name], since=_since(since))
    return CostReport.model_validate(found.to_dict())


@router.get("/api/v1/projects/{name}/costs/admit", operation_id="admit_work")
def admit(name: str, session: SessionDep, platform: PlatformDep) -> Admission:
    """200 when the project may start new work; 429 over its CPU-hour quota or (hard stop) budget."""
    costs.admit(session, platform.settings, name)
    return Admission(project=name, admitted=True)


@router.get("/api/v1/costs", operation_id="get_costs", response_model_exclude_unset=True)
def all_costs(session: SessionDep, platform: PlatformDep, since: str | None = SinceQuery) -> CostReport:
    """Every project's usage and cost (platform admins)."""
    return CostReport.model_validate(costs.report(session, platform.settings, since=_since(since)).to_dict())


@router.get("/api/v1/projects/{name}/batch", operation_id="list_batch_jobs")
def list_batches(
    name: str, platform: PlatformDep, limit: int = Query(default=50, ge=1, le=500)
) -> list[BatchRunOut]:
    """The project's batch scoring jobs (``pave batch``, ``Client.batch``), newest first."""
    from pave.serving.batch import list_jobs

    found = list_jobs(name, tracking_uri=platform.settings.mlflow_db_url, limit=limit)
    return [BatchRunOut.model_validate(job) for job in found]


class BatchRequest(BaseModel):
    input: str = Field(min_length=1, max_length=2000, description="s3://BUCKET/KEY of a .parquet or .csv.")
    output: str = Field(min_length=1, max_length=2000, description="s3://BUCKET/KEY of the scored table.")
    version: str | None = Field(default=None, max_length=20, description="Default: alias champion.")
    alias: str | None = Field(default=None, max_length=100)
    workers: int | None = Field(default=None, ge=1, le=256)


@router.post(
    "/api/v1/projects/{name}/batch",
    status_code=status.HTTP_202_ACCEPTED,
    operation_id="submit_batch_job",
    response_model_exclude_unset=True,
)
def submit_batch(
    name: str, body: BatchRequest, session: SessionDep, platform: PlatformDep, principal: PrincipalDep
) -> BatchJobOut:
    """Start ``pave batch`` for the project as a job outside the control plane; poll its state."""
    costs.admit(session, platform.settings, name)  # a project over budget (hard stop) is refused
    started = batch_jobs.start(
        session,
        platform.settings,
        name,
        input_uri=body.input,
        output_uri=body.output,
        version=body.version,
        alias=body.alias,
        workers=body.workers,
        requested_by=principal.identity,
    )
    return BatchJobOut.model_validate(started)


@router.get(
    "/api/v1/projects/{name}/batch/jobs/{key}",
    operation_id="get_batch_job",
    response_model_exclude_unset=True,
)
def batch_job(name: str, key: str, session: SessionDep, platform: PlatformDep) -> BatchJobOut:
    """A batch job started through the API: running, succeeded (its result) or failed (its error)."""
    return BatchJobOut.model_validate(batch_jobs.describe(session, platform.settings, name, key))
