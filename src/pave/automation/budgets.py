"""Budget alerts: a project crossing 80% and 100% of its monthly budget opens an alert, once.

The alert goes through the monitoring alerts (``pave.monitoring.alerts``): one open alert per
(project, threshold, month), delivered to the sinks of the project's ``monitor.sinks`` as its last
``pave run`` recorded them, and listed by ``pave alerts`` like any other. Checked when usage is
reported (``POST /api/v1/projects/P/usage``).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.config import Settings
from pave.governance import costs
from pave.monitoring.alerts import Verdict, apply_verdicts
from pave.monitoring.spec import MonitorSpec
from pave.store.tables import AlertRow, LoopSourceRow

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
