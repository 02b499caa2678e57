"""Batch scoring: the project's jobs, jobs started on the platform, and their samples for monitoring."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, status
from pydantic import BaseModel, Field

from pave import logs
from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.automation import batch_jobs
from pave.governance import audit, costs
from pave.schemas.serving import BatchJobOut, BatchMonitoringStored, BatchRunOut
from pave.serving.batch_monitor import MONITOR_ROWS, check_records, store_records

router = APIRouter(tags=["batch"])


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
    output: str = Field(
        min_length=1,
        max_length=2000,
        description="s3://BUCKET/KEY of the scored table, or s3://BUCKET/prefix/ for Parquet part files.",
    )
    version: str | None = Field(default=None, max_length=20, description="Default: alias champion.")
    alias: str | None = Field(default=None, max_length=100)
    workers: int | None = Field(default=None, ge=1, le=256)
    monitor: bool = Field(
        default=False, description="Feed a sample of the scored rows to the drift monitors."
    )


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
        monitor=body.monitor,
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


class BatchRecords(BaseModel):
    records: list[Any] = Field(
        min_length=1,
        max_length=MONITOR_ROWS,
        description="Inference-log records as `pave batch --monitor` writes them, one JSON object each.",
    )


@router.post(
    "/api/v1/projects/{name}/batch/monitoring",
    status_code=status.HTTP_201_CREATED,
    operation_id="store_batch_monitoring",
)
def store_monitoring(
    name: str, body: BatchRecords, platform: PlatformDep, principal: PrincipalDep
) -> BatchMonitoringStored:
    """Store a batch job's sample of scored rows in the project's inference log, for its monitors.

    Every record is checked first (the project's own deployment, a registered version of its
    model, a ``pave-batch:`` id, one value per row in every column); one bad record refuses them all
    and nothing is stored.
    """
    from pave.registry.versions import list_model_versions

    registered = {v.version for v in list_model_versions(name, tracking_uri=platform.settings.mlflow_db_url)}
    data, first_ts, rows = check_records(name, body.records, registered=registered)
    kind, where = store_records(platform.settings, platform.sessions, data, first_ts)
    if platform.mirror is not None:  # this control plane's monitors see the segment at once
        platform.mirror.pull(platform.sessions)
    versions = sorted({str(doc["version"]) for doc in body.records})
    audit.append(
        platform.engine,
        audit.AuditEntry(
            method="POST",
            path=f"/api/v1/projects/{name}/batch/monitoring",
            status=status.HTTP_201_CREATED,
            request_id=f"{logs.request_id.get() or '-'}-stored"[:64],
            action="feed-monitoring",
            identity=principal.identity,
            token_id=principal.token_id,
            project=name,
            model=name,
            detail=f"{len(body.records)} batch records ({rows} rows) of version(s) {', '.join(versions)} "
            f"stored as {kind} {where}"[:500],
        ),
    )
    return BatchMonitoringStored(project=name, records=len(body.records), rows=rows, stored=kind, name=where)
