"""The platform's own numbers and members, costs, and the content-addressed objects of projects."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pave.schemas.common import Wire


class WeekPoint(Wire):
    week: str = Field(description="ISO date of the week's Monday.")
    value: int | float


class PlatformMetricsOut(Wire):
    """Adoption and delivery numbers of the whole platform (null: not measurable yet)."""

    projects: int
    active_users_7d: int
    runs_total: int
    models_in_production: int
    mean_hours_to_production: float | None
    deployments_per_week: int | float
    rollouts_finished: int
    rollbacks: int
    change_failure_rate: float | None
    drift_incidents: int
    drift_open: int
    mean_hours_to_resolve_drift: float | None
    projects_by_week: list[WeekPoint]
    active_users_by_week: list[WeekPoint]
    runs_by_week: list[WeekPoint]
    deployments_by_week: list[WeekPoint]


class ProcessOut(Wire):
    """A control plane, gateway or worker that said it was alive in the last day."""

    role: str
    url: str
    host: str
    pid: int
    started_at: str
    seen_at: str
    seconds_since_seen: float
    healthy: bool = Field(description="Seen in the last 20 s.")
    info: dict[str, Any] = Field(description="What it reports (leader, loaded models...).")


class ProjectCosts(Wire):
    total: int | float
    kinds: dict[str, dict[str, Any]] = Field(description="kind of work -> its usage and cost")
    days: dict[str, Any] = Field(description="day -> its cost")
    budget: dict[str, Any] | None = Field(default=None, description="Present when the project has one.")


class CostReport(Wire):
    """Usage and cost per project, kind and day, between ``since`` and ``until``."""

    since: str
    until: str
    prices: dict[str, int | float] = Field(description="unit -> its price")
    projects: dict[str, ProjectCosts]


class UsageRecorded(Wire):
    recorded: int
    alerts: list[dict[str, Any]] = Field(description="Budget alerts the usage opened.")


class Admission(Wire):
    project: str
    admitted: bool


class ObjectStored(Wire):
    """A dataset version or code snapshot stored (or already there: ``stored`` false)."""

    sha256: str
    filename: str
    bytes: int
    stored: bool
