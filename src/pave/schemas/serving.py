"""Deployments, progressive rollouts and batch scoring jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from pave.schemas.common import Wire


class DeploymentOut(Wire):
    """A project's deployment: which versions the gateways serve, with which traffic split."""

    name: str
    project: str
    spec: dict[str, Any] = Field(description="Versions, weights, shadow, sticky routing, scale to zero.")
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime


class Undeployed(Wire):
    name: str
    status: str = Field(description="`undeployed`.")


class RolloutOut(Wire):
    """A progressive rollout: its state, its step, what the step waits for, every decision."""

    deployment: str
    state: str = Field(description="running, promoted or rolled_back.")
    baseline_version: str
    candidate_version: str
    step: int | float | None = Field(description="The candidate's percent of traffic (while running).")
    steps: list[int | float]
    policy: dict[str, Any]
    step_started_at: str
    history: list[dict[str, Any]] = Field(description="Every decision, with its numbers and test.")
    created_by: str
    finished_at: str | None
    waiting_for: str | None = Field(description="What the step still needs before it may advance.")


class BatchJobOut(Wire):
    """A batch job started through the API; ``result`` once succeeded, ``error`` once failed."""

    job: str
    project: str
    input: str
    output: str
    version: str | None
    alias: str | None
    created: int | float = Field(description="Seconds since the epoch.")
    monitor: bool = Field(default=False, description="Whether the job feeds the project's monitors.")
    state: str = Field(description="running, succeeded or failed.")
    result: dict[str, Any] | None = Field(default=None, description="What the job scored (succeeded).")
    error: str | None = Field(default=None, description="Why it failed (failed).")


class BatchRunOut(Wire):
    """A batch scoring job as recorded in the tracking store (``pave batch``, ``Client.batch``)."""

    run_id: str
    status: str
    started: int | None = Field(description="Milliseconds since the epoch.")
    model_version: str | None
    input: str | None
    input_sha256: str | None
    output: str | None
    rows: float | None
    rows_per_second: float | None
    cpu_seconds: float | None


class BatchMonitoringStored(Wire):
    """A batch job's records stored for the project's monitors (``POST .../batch/monitoring``)."""

    project: str
    records: int
    rows: int
    stored: str = Field(description="segment (shipped to the object store) or file (the log folder).")
    name: str = Field(description="The segment's key or the file's name.")


class BatchResult(Wire):
    """What one batch job scored (``pave batch``, ``Client.batch``)."""

    project: str
    model_version: str
    input: str
    output: str
    input_sha256: str
    rows: int
    parts: int
    seconds: float
    cpu_seconds: float
    peak_memory: int = Field(description="Bytes.")
    workers: int
    run_id: str | None
    columns: list[str]
    nodes: list[str] = Field(description="The Ray nodes that scored parts (executor ray).")
    rows_per_second: float
    monitored: int | None = Field(
        default=None, description="Rows fed to the project's monitors (monitor on)."
    )
