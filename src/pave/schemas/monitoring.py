"""Monitoring: verdicts and series, alerts, incidents, silences, and labels posted as feedback."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from pave.schemas.common import Wire


class DeliveryOut(Wire):
    """One delivery of an alert or incident to a sink."""

    sink: str
    event: str
    status: str
    attempts: int
    last_error: str | None
    delivered_at: str | None


class AlertOut(Wire):
    """An alert a monitor raised, with its deliveries."""

    id: int
    project: str
    deployment: str | None
    monitor: str | None
    kind: str
    subject: str | None
    severity: str
    status: str = Field(description="open or resolved.")
    opened_at: str | None
    last_seen_at: str | None
    resolved_at: str | None
    details: Any
    deliveries: list[DeliveryOut]


class IncidentOut(Wire):
    """One episode of a monitor's trouble, with its deliveries."""

    id: int
    project: str
    deployment: str | None
    monitor: str | None
    kind: str
    dedup_key: str
    severity: str
    status: str
    opened_at: str | None
    last_seen_at: str | None
    resolved_at: str | None
    subjects: list[Any]
    ever: list[Any]
    details: Any
    silenced: bool
    deliveries: list[DeliveryOut]


class SilenceOut(Wire):
    """A silence: incidents of the project (one monitor or kind) stored, not sent, until it expires."""

    id: int
    project: str
    monitor: str | None
    kind: str | None
    reason: str
    created_by: str
    created_at: str
    expires_at: str


class MonitorVerdict(Wire):
    name: str
    last_run_at: str | None
    result: Any = Field(description="The monitor's latest verdict per check.")


class MonitoringOverview(Wire):
    """Each monitor's latest verdicts, performance per version over the window, open alerts."""

    project: str
    deployment: str | None
    window_seconds: float
    monitors: list[MonitorVerdict]
    performance: dict[str, dict[str, Any]] = Field(description="model version -> its metrics")
    alerts: list[AlertOut]


class DriftSeries(Wire):
    """Per input feature: the drift statistic of every bucket against the training reference."""

    deployment: str
    method: str
    threshold: int | float | None
    bucket_seconds: float
    buckets: list[str]
    features: dict[str, list[dict[str, Any]]]
    note: str | None


class PerformanceSeries(Wire):
    """Per model version: the metrics of every bucket's labelled requests."""

    deployment: str
    bucket_seconds: float
    buckets: list[str]
    versions: dict[str, list[dict[str, Any]]]


class FeedbackItemOut(Wire):
    inference_id: str
    project: str
    deployment: str
    version: str
    status: str = Field(description="created or updated.")


class FeedbackRecorded(Wire):
    """Labels stored (all of them, or none and an error)."""

    created: int
    updated: int
    items: list[FeedbackItemOut]
