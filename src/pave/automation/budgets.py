"""Budget alerts: a project crossing 80% and 100% of its monthly budget opens an alert, once.

The alert goes through the monitoring alerts (``pave.monitoring.alerts``): one open alert per
(project, threshold, month), delivered to the sinks of the project's ``monitor.sinks`` as its last
``pave run`` recorded them, and listed by ``pave alerts`` like any other. Checked when usage is
reported (``POST /api/v1/projects/P/usage``).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.config import Settings
from pave.governance import costs
from pave.monitoring.alerts import Verdict, apply_verdicts
from pave.monitoring.spec import MonitorSpec
from pave.store.tables import AlertRow, LoopSourceRow

log = logging.getLogger(__name__)
MONITOR = "budget"
THRESHOLDS = ((80, "warning"), (100, "critical"))


def check(
    session: Session, settings: Settings, project: str, *, now: datetime | None = None
) -> list[AlertRow]:
    """Open the budget alerts ``project`` has earned this month; returns those opened now."""
    budget = settings.budgets.get(project)
    if not budget:
        return []
    at = now or datetime.now(UTC)
    spent = costs.month_spend(session, settings, project, at)
    month = at.astimezone(UTC).strftime("%Y-%m")
    source = session.scalar(select(LoopSourceRow).where(LoopSourceRow.project == project))
    sinks = MonitorSpec.model_validate((source.spec or {}).get("monitor", {})).sinks if source else []
    opened: list[AlertRow] = []
    for percent, severity in THRESHOLDS:
        if spent < budget * percent / 100:
            continue  # never resolved by a smaller spend: a month's spend only grows
        verdict = Verdict(
            kind="budget",
            subject=f"{month} {percent}%",
            firing=True,
            details={"budget": budget, "spent": round(spent, 6), "percent": round(100 * spent / budget, 1)},
        )
        changed = apply_verdicts(
            session,
            project=project,
            deployment=None,
            monitor=f"{MONITOR}-{percent}",
            severity=severity,
            verdicts=[verdict],
            sinks=sinks,
            now=at,
        )
        opened += changed
    return opened


def record_deployments(session: Session, settings: Settings, *, now: datetime | None = None) -> int:
    """Record each deployment's requests of the last full hour (UTC) as usage, once per hour.

    Only hours in which a deployment answered requests count: an idle deployment (scaled to zero,
    or not called) records nothing and costs nothing. Returns how many records were made.
    """
    from datetime import timedelta

    from sqlalchemy import func

    from pave.store.tables import InferenceIndexRow, UsageRow

    at = (now or datetime.now(UTC)).astimezone(UTC)
    end = at.replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=1)
    ref = start.strftime("%Y-%m-%dT%H")
    counts = session.execute(
        select(InferenceIndexRow.deployment, func.sum(InferenceIndexRow.n_rows), func.count())
        .where(InferenceIndexRow.ts >= start, InferenceIndexRow.ts < end)
        .group_by(InferenceIndexRow.deployment)
    ).all()
    done = set(
        session.scalars(select(UsageRow.project).where(UsageRow.kind == "deployment", UsageRow.ref == ref))
    )
    made = 0
    for deployment, _rows, requests in counts:
        if deployment in done:
            continue
        costs.record(session, deployment, [costs.Usage("deployment", ref, requests=int(requests))], now=end)
        made += 1
        check(session, settings, deployment, now=at)
    return made


def record_storage(session: Session, settings: Settings, *, now: datetime | None = None) -> int:
    """Record what each project stores, once per hour (UTC): its dataset versions and code
    snapshots (the objects it indexed) and its MLflow artifacts (runs, logged models) in the
    artifact store. Priced as GB-months until the next record. Returns how many records were made.
    """
    from sqlalchemy import func

    from pave.store.tables import Project, ProjectObjectRow, UsageRow

    at = (now or datetime.now(UTC)).astimezone(UTC)
    ref = at.strftime("%Y-%m-%dT%H")
    done = set(
        session.scalars(select(UsageRow.project).where(UsageRow.kind == "storage", UsageRow.ref == ref))
    )
    projects = [p for p in session.scalars(select(Project.name)) if p not in done]
    if not projects:
        return 0
    objects = dict(
        session.execute(
            select(ProjectObjectRow.project, func.sum(ProjectObjectRow.size)).group_by(
                ProjectObjectRow.project
            )
        ).all()
    )
    made = 0
    for project in projects:
        try:
            artifacts = _artifact_bytes(settings, project)
        except Exception:  # the artifact store away: this project is counted in a later minute
            log.warning("could not count the stored bytes of %s; trying again later", project, exc_info=True)
            continue
        stored = int(objects.get(project) or 0) + artifacts
        costs.record(session, project, [costs.Usage("storage", ref, stored_bytes=stored)], now=at)
        made += 1
    return made


def _artifact_bytes(settings: Settings, project: str) -> int:
    """Bytes under the project's MLflow experiment in the platform's artifact store (0: none there)."""
    from pathlib import Path

    from mlflow import MlflowClient

    from pave.storage import open_storage

    experiment = MlflowClient(tracking_uri=settings.mlflow_db_url).get_experiment_by_name(project)
    if experiment is None:
        return 0
    location, root = str(experiment.artifact_location), settings.artifacts
    root_uri = (root if "://" in root else Path(root).expanduser().resolve().as_uri()).rstrip("/")
    if location.startswith("mlflow-artifacts:/"):  # made through the server: <root>/<experiment id>/
        prefix = location.removeprefix("mlflow-artifacts:/").strip("/")
    elif location.startswith(root_uri + "/"):  # made by a direct database run: <root>/mlflow/<project>
        prefix = location[len(root_uri) + 1 :].strip("/")
    else:
        return 0  # somewhere the platform does not keep (an adopted model's own store)
    return sum(info.size for info in open_storage(root).list(prefix + "/"))
