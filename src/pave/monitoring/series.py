"""What ``pave monitor`` and the portal show: the latest verdicts, and time series shaped for plots.

Series are bucketed over ``[until - window, until]``: one point per bucket with data, as
``{"t": <bucket start, ISO>, ...}``, grouped by feature (drift) or by version (performance), so a
chart draws one line per key without reshaping anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.errors import InvalidInput
from pave.monitoring.alerts import alert_dict, deliveries_of, list_alerts
from pave.monitoring.drift import OK, compute_drift
from pave.monitoring.monitors import drift_config, pick_reference, window_rows
from pave.monitoring.performance import performance_by_version
from pave.monitoring.rules import DriftRule
from pave.store.tables import DeploymentRow, MonitorStateRow

MAX_BUCKETS = 500


def buckets(until: datetime, window: float, bucket: float) -> list[tuple[datetime, datetime]]:
    """The ``[start, end)`` buckets covering ``[until - window, until]``, oldest first."""
    if bucket <= 0 or window <= 0:
        raise InvalidInput("window and bucket must be positive durations", hint="e.g. window=24h&bucket=1h")
    count = int(-(-window // bucket))
    if count > MAX_BUCKETS:
        raise InvalidInput(
            f"{count} buckets asked for; at most {MAX_BUCKETS}",
            hint="use a larger bucket or a shorter window",
        )
    start = until - timedelta(seconds=window)
    return [
        (start + timedelta(seconds=i * bucket), min(start + timedelta(seconds=(i + 1) * bucket), until))
        for i in range(count)
    ]


def drift_series(
    log_dir: Path,
    deployment: str,
    profile: Mapping[str, Any],
    *,
    until: datetime,
    window: float,
    bucket: float,
    method: str = "psi",
    min_samples: int = 100,
) -> dict[str, Any]:
    """Per input feature, the drift statistic of each bucket against the training reference."""
    rule = DriftRule(method)
    rows, inputs = window_rows(log_dir, deployment, until - timedelta(seconds=window), until)
    reference = pick_reference(profile, inputs)
    spans = buckets(until, window, bucket)
    features: dict[str, list[dict[str, Any]]] = {}
    if reference is not None and len(rows):
        from pave.monitoring.reference import Reference

        subset = Reference({n: r for n, r in reference.features.items() if n in inputs})
        stamps = pd.to_datetime(rows["timestamp"], utc=True)
        config = drift_config(rule, min_samples)
        for start, end in spans:
            part = rows[(stamps >= pd.Timestamp(start)) & (stamps < pd.Timestamp(end))]
            if not len(part):
                continue
            for item in compute_drift(subset, part, config).features:
                if item.status != OK:
                    continue
                features.setdefault(item.feature, []).append(
                    {
                        "t": start.isoformat(),
                        "statistic": item.statistic,
                        "p_value": item.p_value,
                        "drifted": item.drifted,
                        "n": item.n_current,
                    }
                )
    return {
        "deployment": deployment,
        "method": rule.method,
        "threshold": rule.limit,
        "bucket_seconds": bucket,
        "buckets": [s.isoformat() for s, _ in spans],
        "features": features,
        "note": None
        if reference is not None
        else "no training profile with a drift reference for these inputs",
    }


def performance_series(
    settings: Settings,
    sessions: sessionmaker[Session],
    deployment: str,
    *,
    until: datetime,
    window: float,
    bucket: float,
) -> dict[str, Any]:
    """Per version, the metrics of each bucket's labelled requests."""
    versions: dict[str, list[dict[str, Any]]] = {}
    spans = buckets(until, window, bucket)
    for start, end in spans:
        for version, perf in performance_by_version(
            settings, sessions, deployment, since=start, until=end
        ).items():
            versions.setdefault(version, []).append(
                {"t": start.isoformat(), "n_labelled": perf.n_labelled, **perf.metrics}
            )
    return {
        "deployment": deployment,
        "bucket_seconds": bucket,
        "buckets": [s.isoformat() for s, _ in spans],
        "versions": versions,
    }


def summary(
    settings: Settings, sessions: sessionmaker[Session], project: str, *, now: datetime, window: float
) -> dict[str, Any]:
    """The monitors' latest verdicts, performance per version over ``window``, and open alerts."""
    with sessions() as session:
        deployment = session.scalar(select(DeploymentRow).where(DeploymentRow.project == project))
        states = list(
            session.scalars(
                select(MonitorStateRow)
                .where(MonitorStateRow.project == project)
                .order_by(MonitorStateRow.monitor)
            )
        )
        alerts = list_alerts(session, project=project)
        deliveries = deliveries_of(session, [a.id for a in alerts])
        open_alerts = [alert_dict(a) | {"deliveries": deliveries.get(a.id, [])} for a in alerts]
        monitors = [
            {
                "name": s.monitor,
                "last_run_at": s.last_run_at.isoformat() if s.last_run_at else None,
                "result": s.last_result,
            }
            for s in states
        ]
        name = deployment.name if deployment is not None else None
    performance: dict[str, Any] = {}
    if name is not None:
        since = now - timedelta(seconds=window)
        found = performance_by_version(settings, sessions, name, since=since, until=now)
        performance = {version: perf.to_dict() for version, perf in found.items()}
    return {
        "project": project,
        "deployment": name,
        "window_seconds": window,
        "monitors": monitors,
        "performance": performance,
        "alerts": open_alerts,
    }
