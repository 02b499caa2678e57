"""Monitoring of a project's deployment: latest verdicts, and drift / performance series for plots."""

from __future__ import annotations

from datetime import UTC, datetime

import anyio
from fastapi import APIRouter, Query

from pave.api.deps import PlatformDep, SessionDep
from pave.errors import InvalidInput
from pave.monitoring import series
from pave.monitoring.scheduler import monitoring_of
from pave.monitoring.spec import parse_duration
from pave.schemas.monitoring import DriftSeries, MonitoringOverview, PerformanceSeries
from pave.serving.store import get_deployment

router = APIRouter(prefix="/api/v1/projects/{name}/monitoring", tags=["monitoring"])

WindowQuery = Query(default="24h", max_length=20, description="How far back: seconds or 30m, 24h, 7d.")
BucketQuery = Query(default="1h", max_length=20, description="One point per bucket: seconds or 5m, 1h.")


def _seconds(value: str, what: str) -> float:
    try:
        return parse_duration(value, what=what)
    except ValueError as exc:
        raise InvalidInput(str(exc), hint=f"e.g. {what}=24h") from exc


@router.get("", operation_id="get_monitoring")
async def overview(name: str, platform: PlatformDep, window: str = WindowQuery) -> MonitoringOverview:
    """Each monitor's latest verdicts, performance per version over ``window``, open alerts."""
    seconds = _seconds(window, "window")

    def work() -> MonitoringOverview:
        found = series.summary(
            platform.settings, platform.sessions, name, now=datetime.now(UTC), window=seconds
        )
        return MonitoringOverview.model_validate(found)

    return await anyio.to_thread.run_sync(work)


@router.get("/drift", operation_id="get_drift_series")
async def drift(
    name: str,
    session: SessionDep,
    platform: PlatformDep,
    window: str = WindowQuery,
    bucket: str = BucketQuery,
    method: str = Query(default="psi", max_length=20, description="psi, js, wasserstein, ks or chi2."),
) -> DriftSeries:
    """Per input feature: the drift statistic of every bucket against the training reference."""
    seconds, step = _seconds(window, "window"), _seconds(bucket, "bucket")
    deployment = get_deployment(session, name)

    def work() -> DriftSeries:
        monitoring = monitoring_of(platform.settings, deployment)
        profile = monitoring.profile if monitoring is not None else {}
        found = series.drift_series(
            platform.settings.inference_log_dir,
            deployment.name,
            profile,
            until=datetime.now(UTC),
            window=seconds,
            bucket=step,
            method=method,
        )
        return DriftSeries.model_validate(found)

    return await anyio.to_thread.run_sync(work)


@router.get("/performance", operation_id="get_performance_series")
async def performance(
    name: str,
    session: SessionDep,
    platform: PlatformDep,
    window: str = WindowQuery,
    bucket: str = BucketQuery,
) -> PerformanceSeries:
    """Per model version: the metrics of every bucket's labelled requests."""
    seconds, step = _seconds(window, "window"), _seconds(bucket, "bucket")
    deployment = get_deployment(session, name).name

    def work() -> PerformanceSeries:
        found = series.performance_series(
            platform.settings,
            platform.sessions,
            deployment,
            until=datetime.now(UTC),
            window=seconds,
            bucket=step,
        )
        return PerformanceSeries.model_validate(found)

    return await anyio.to_thread.run_sync(work)
