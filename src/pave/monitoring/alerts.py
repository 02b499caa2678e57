"""Alerts: open when a monitor fires, deduplicated while it persists, resolved when it stops.

One alert per (project, monitor, kind, subject) is open at a time: a monitor that keeps firing
moves its ``last_seen_at`` and refreshes its ``details``; a verdict of "fine" resolves it. A
monitor without enough data gives no verdict and changes nothing. The alerts of one monitor's kind
make one incident (:mod:`pave.monitoring.incidents`): that is what the project's ``monitor.sinks``
are told about, once when it opens and once when it resolves, queued in the same transaction, so
nothing is stored without its notifications or the reverse.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.monitoring import incidents
from pave.monitoring.spec import SinkSpec
from pave.store.tables import AlertRow

OPEN = "open"
RESOLVED = "resolved"


@dataclass(frozen=True)
class Verdict:
    """What a monitor concluded about one subject (a feature, the predictions, a metric)."""

    kind: str
    subject: str
    firing: bool
    details: dict[str, Any]


def apply_verdicts(
    session: Session,
    *,
    project: str,
    deployment: str | None,
    monitor: str,
    severity: str,
    verdicts: Sequence[Verdict],
    sinks: Sequence[SinkSpec],
    now: datetime,
) -> list[AlertRow]:
    """Open, refresh or resolve the alerts of one monitor; returns the alerts that changed state."""
    current = {
        (row.kind, row.subject): row
        for row in session.scalars(
            select(AlertRow).where(
                AlertRow.project == project, AlertRow.monitor == monitor, AlertRow.status == OPEN
            )
        )
    }
    changed = []
    firing: dict[str, dict[str, AlertRow]] = {v.kind: {} for v in verdicts}
    for verdict in verdicts:
        row = current.get((verdict.kind, verdict.subject))
        if verdict.firing and row is None:
            row = AlertRow(
                project=project,
                deployment=deployment,
                monitor=monitor,
                kind=verdict.kind,
                subject=verdict.subject,
                severity=severity,
                status=OPEN,
                opened_at=now,
                last_seen_at=now,
                details=verdict.details,
            )
            session.add(row)
            session.flush()  # the id goes into the incident's deliveries
            changed.append(row)
        elif verdict.firing and row is not None:
            row.last_seen_at, row.details = now, verdict.details
        elif row is not None:
            row.status, row.resolved_at, row.last_seen_at = RESOLVED, now, now
            row.details = {**verdict.details, "resolved_because": "the monitor no longer fires"}
            changed.append(row)
        if verdict.firing and row is not None:
            firing[verdict.kind][verdict.subject] = row
    for kind, rows in firing.items():
        episodes: list[tuple[dict[str, AlertRow], str | None]]
        if kind in incidents.PER_SUBJECT_KINDS:
            episodes = [({s: row}, s) for s, row in rows.items()]
        else:
            episodes = [(rows, None)]
        for subjects, subject in episodes:
            incidents.track(
                session,
                project=project,
                deployment=deployment,
                monitor=monitor,
                kind=kind,
                severity=severity,
                firing=subjects,
                sinks=sinks,
                now=now,
                subject=subject,
            )
    return changed


def alert_dict(row: AlertRow) -> dict[str, Any]:
    """The API's (and the generic webhook's) JSON form of an alert."""
    return {
        "id": row.id,
        "project": row.project,
        "deployment": row.deployment,
        "monitor": row.monitor,
        "kind": row.kind,
        "subject": row.subject,
        "severity": row.severity,
        "status": row.status,
        "opened_at": row.opened_at.isoformat() if row.opened_at else None,
        "last_seen_at": row.last_seen_at.isoformat() if row.last_seen_at else None,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "details": row.details,
    }


def list_alerts(
    session: Session, *, project: str | None = None, include_resolved: bool = False, limit: int = 500
) -> list[AlertRow]:
    """Alerts, newest first: open ones only unless ``include_resolved``."""
    query = select(AlertRow).order_by(AlertRow.opened_at.desc(), AlertRow.id.desc()).limit(limit)
    if project is not None:
        query = query.where(AlertRow.project == project)
    if not include_resolved:
        query = query.where(AlertRow.status == OPEN)
    return list(session.scalars(query))


def deliveries_of(session: Session, alert_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Delivery state per alert id: sink, event, status, attempts, last error."""
    return incidents.deliveries_by(session, "alert_id", alert_ids)
