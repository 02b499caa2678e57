"""The platform's own numbers (``pave.automation.platform_metrics``) as JSON and as Prometheus gauges."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
from fastapi import APIRouter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from pave.api.deps import PlatformDep
from pave.api.platform import Platform
from pave.automation import platform_metrics
from pave.schemas.platform import PlatformMetricsOut, ProcessOut

router = APIRouter(prefix="/api/v1/platform", tags=["platform"])


def compute(platform: Platform) -> platform_metrics.PlatformMetrics:
    with platform.sessions() as session:
        return platform_metrics.compute(session, tracking_uri=platform.settings.mlflow_db_url)


@router.get("/metrics", operation_id="platform_metrics")
async def metrics(platform: PlatformDep) -> PlatformMetricsOut:
    """Projects, active users, runs per week, models in production, time to production, deployment
    frequency, change failure rate, drift incidents and time to resolve them."""
    found = await anyio.to_thread.run_sync(compute, platform)
    return PlatformMetricsOut.model_validate(found.to_dict())


def _processes(platform: Platform) -> list[dict[str, Any]]:
    from pave.store.db import transaction
    from pave.store.processes import list_processes

    with transaction(platform.sessions) as session:
        return list_processes(session)


@router.get("/processes", operation_id="platform_processes")
async def processes(platform: PlatformDep) -> list[ProcessOut]:
    """The control planes, gateways and workers that said they were alive in the last day: role,
    URL, host, pid, last heartbeat, ``healthy`` (seen in the last 20 s) and what each reports
    (a control plane whether it leads the background jobs; a gateway its loaded models)."""
    found = await anyio.to_thread.run_sync(_processes, platform)
    return [ProcessOut.model_validate(process) for process in found]


class PlatformCollector(Collector):
    """``pave_platform_*`` gauges for ``/metrics``, computed at most every ``ttl`` seconds."""

    def __init__(self, platform: Platform, ttl: float = 60.0) -> None:
        self.platform = platform
        self.ttl = ttl
        self._lock = threading.Lock()
        self._at = float("-inf")
        self._values: dict[str, float] = {}

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            if time.monotonic() - self._at > self.ttl:
                try:
                    self._values = compute(self.platform).gauges()
                except Exception:  # a scrape must answer even when a store is slow or down
                    self._values = {}
                self._at = time.monotonic()
            values = dict(self._values)
        for field, (name, help_text, scale) in GAUGES.items():
            if field in values:
                yield GaugeMetricFamily(f"pave_platform_{name}", help_text, value=values[field] * scale)


# PlatformMetrics' fields as Prometheus gauges: names in base units (seconds, ratios), no `_total`
# on a gauge (`promtool check metrics` holds both /metrics to this).
GAUGES: dict[str, tuple[str, str, float]] = {
    "projects": ("projects", "Projects on the platform.", 1),
    "active_users_7d": ("active_users_7d", "Identities with an audited action in the last 7 days.", 1),
    "runs_total": ("runs", "Runs of every project.", 1),
    "models_in_production": ("models_in_production", "Deployments serving a model.", 1),
    "mean_hours_to_production": (
        "time_to_production_seconds",
        "Mean time from a project's first run to its first deployment.",
        3600,
    ),
    "deployments_per_week": ("deployments_per_week", "Deployments, traffic changes and rollouts a week.", 1),
    "rollouts_finished": ("rollouts_finished", "Rollouts that ended.", 1),
    "rollbacks": ("rollbacks", "Rollouts rolled back.", 1),
    "change_failure_rate": ("change_failure_ratio", "Rollouts rolled back over rollouts finished.", 1),
    "drift_incidents": ("drift_incidents", "Drift alerts opened.", 1),
    "drift_open": ("drift_open", "Drift alerts open now.", 1),
    "mean_hours_to_resolve_drift": (
        "drift_resolution_seconds",
        "Mean time from a drift alert opening to its resolution.",
        3600,
    ),
}
