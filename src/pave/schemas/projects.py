"""Projects, their runs and model versions, and their closed loop (retrains)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from pave.schemas.common import Wire


class ProjectOut(Wire):
    """A project: the unit that owns runs, models, deployments and monitors."""

    name: str
    owner: str
    description: str
    template: str | None
    template_version: str | None
    created_by: str
    created_at: datetime
    labels: dict[str, str]


class RunOut(Wire):
    """A pipeline run: status, metrics, params, lineage, the model version it registered, gates."""

    run_id: str
    status: str
    start_time: int | None = Field(description="Milliseconds since the epoch.")
    end_time: int | None
    metrics: dict[str, float]
    params: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    data_versions: dict[str, str] = Field(description="data source -> the sha256 of the version used")
    model_name: str | None
    model_version: str | None
    gates: str | None
    error: str | None
    primary_metric: str | None


class ModelVersionOut(Wire):
    """A version of the project's registered model."""

    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    status: str
    source: str
    created: int = Field(description="Milliseconds since the epoch.")
    tags: dict[str, str]


class LoopSource(Wire):
    """The run a project's retrains re-run, and its retrain policy."""

    run_id: str
    recorded_by: str
    recorded_at: str
    retrain: Any = Field(description="The `retrain:` section of the run's pave.yaml.")
    on_alert: str
    next_retrain_at: str | None


class LoopRun(Wire):
    """One turn of the closed loop: retrain, gates, rollout."""

    id: int
    project: str
    trigger: str
    alert_id: int | None
    triggered_by: str | None
    state: str
    run_id: str | None
    model_version: str | None
    gates: list[dict[str, Any]]
    rollout_id: int | None
    outcome: str | None
    error: str | None
    history: list[dict[str, Any]]
    created_at: str
    finished_at: str | None


class LoopOut(Wire):
    """A project's loop: where it retrains from and every turn, newest first."""

    project: str
    source: LoopSource | None
    runs: list[LoopRun]
