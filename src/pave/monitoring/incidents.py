"""Incidents: one per episode of a monitor's trouble, not one per feature; silences with an expiry.

Alerts stay one per (monitor, kind, subject): the detail of what fired. What people are told about
is the incident: drift on 30 features is one incident listing them, opened when the first subject
fires, kept while any fires (the list follows them, nobody is paged again), resolved once none
does. Opening and resolving each queue one delivery per sink, in the same transaction as the
incident. Its ``dedup_key`` (``pave/PROJECT/DEPLOYMENT/MONITOR/KIND``) is the same across windows
and episodes, so a pager folds any repeat into its own incident.

A silence (project, optionally one monitor or kind, until ``expires_at``) lets incidents open and
resolve in the store without notifying anyone: an incident opened under a silence sends neither
its page nor its resolution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.errors import InvalidInput, NotFound
from pave.monitoring.sinks import payload
from pave.monitoring.spec import SinkSpec
from pave.store.tables import AlertDeliveryRow, AlertRow, IncidentRow, SilenceRow

OPEN = "open"
RESOLVED = "resolved"
MAX_SILENCE = timedelta(days=30)


# Kinds whose every subject is an episode of its own: a month's budget threshold is not one
# feature of a drift, and it never resolves (a month's spend only grows).
PER_SUBJECT_KINDS = frozenset({"budget"})


def dedup_key(
    project: str, deployment: str | None, monitor: str, kind: str, subject: str | None = None
) -> str:
    key = f"pave/{project}/{deployment or '-'}/{monitor}/{kind}"
    return key if subject is None else f"{key}/{subject}"


def track(
    session: Session,
    *,
    project: str,
    deployment: str | None,
    monitor: str,
    kind: str,
    severity: str,
    firing: Mapping[str, AlertRow],
    sinks: Sequence[SinkSpec],
    now: datetime,
    subject: str | None = None,
) -> IncidentRow | None:
    """Open, follow or resolve the incident of one monitor's kind after a window's verdicts.

    Args:
        firing: the open alerts of the subjects firing in this window (empty: the kind was
            evaluated and nothing fires).
        subject: for a kind of ``PER_SUBJECT_KINDS``, the one subject this incident is about.

    Returns:
        The incident when it opened or resolved now, else None.
    """
    key = dedup_key(project, deployment, monitor, kind, subject)
    incident = session.scalar(
        select(IncidentRow).where(
            IncidentRow.project == project, IncidentRow.dedup_key == key, IncidentRow.status == OPEN
        )
    )
    subjects = sorted(firing)
    details = {subject: alert.details for subject, alert in firing.items()}
    if firing and incident is None:
        silence = active_silence(session, project, monitor, kind, now)
        incident = IncidentRow(
            project=project,
            deployment=deployment,
            monitor=monitor,
            kind=kind,
            dedup_key=key,
            severity=severity,
            status=OPEN,
            opened_at=now,
            last_seen_at=now,
            subjects=subjects,
            ever=subjects,
            details=details,
            silence_id=silence.id if silence is not None else None,
        )
        session.add(incident)
        session.flush()
        _link(firing, incident)
        if silence is None:
            _queue(session, incident, "open", sinks, now, alert_id=firing[subjects[0]].id)
        return incident
    if firing and incident is not None:
        incident.subjects, incident.details, incident.last_seen_at = subjects, details, now
        incident.ever = sorted(set(incident.ever) | set(subjects))
        _link(firing, incident)
        return None
    if incident is not None:
        incident.status, incident.resolved_at, incident.last_seen_at = RESOLVED, now, now
        incident.subjects = []
        if incident.silence_id is None:
            first = session.scalar(
                select(AlertRow.id).where(AlertRow.incident_id == incident.id).order_by(AlertRow.id).limit(1)
            )
            _queue(session, incident, "resolve", sinks, now, alert_id=first)
        return incident
    return None


def _link(firing: Mapping[str, AlertRow], incident: IncidentRow) -> None:
    for alert in firing.values():
        alert.incident_id = incident.id


def _queue(
    session: Session,
    incident: IncidentRow,
    event: str,
    sinks: Sequence[SinkSpec],
    now: datetime,
    *,
    alert_id: int | None,
) -> None:
    if alert_id is None:  # an incident always has the alert that opened it; never raise in the tick
        return
    for sink in sinks:
        session.add(
            AlertDeliveryRow(
                alert_id=alert_id,
                incident_id=incident.id,
                sink=sink.kind,
                url=sink.url,
                event=event,
                payload=payload(sink, incident_dict(incident), event),
                status="pending",
                attempts=0,
                next_attempt_at=now,
                created_at=now,
            )
        )


def incident_dict(row: IncidentRow) -> dict[str, Any]:
    """The JSON form of an incident (the API's, the portal's and the sinks')."""
    return {
        "id": row.id,
        "project": row.project,
        "deployment": row.deployment,
        "monitor": row.monitor,
        "kind": row.kind,
        "dedup_key": row.dedup_key,
        "severity": row.severity,
        "status": row.status,
        "opened_at": row.opened_at.isoformat() if row.opened_at else None,
        "last_seen_at": row.last_seen_at.isoformat() if row.last_seen_at else None,
        "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
        "subjects": list(row.subjects or []),
        "ever": list(row.ever or []),
        "details": row.details,
        "silenced": row.silence_id is not None,
    }


def list_incidents(
    session: Session, *, project: str | None = None, include_resolved: bool = False, limit: int = 200
) -> list[IncidentRow]:
    """Incidents, newest first: open ones only unless ``include_resolved``."""
    query = select(IncidentRow).order_by(IncidentRow.opened_at.desc(), IncidentRow.id.desc()).limit(limit)
    if project is not None:
        query = query.where(IncidentRow.project == project)
    if not include_resolved:
        query = query.where(IncidentRow.status == OPEN)
    return list(session.scalars(query))


def incident_deliveries(session: Session, incident_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Delivery state per incident id: sink, event, status, attempts, last error."""
    return deliveries_by(session, "incident_id", incident_ids)


def deliveries_by(
    session: Session, key: Literal["alert_id", "incident_id"], ids: Sequence[int]
) -> dict[int, list[dict[str, Any]]]:
    """Delivery state per alert or incident id (``key``), oldest delivery first."""
    found: dict[int, list[dict[str, Any]]] = {}
    if not ids:
        return found
    column = getattr(AlertDeliveryRow, key)
    rows = session.scalars(
        select(AlertDeliveryRow).where(column.in_(list(ids))).order_by(AlertDeliveryRow.id)
    )
    for row in rows:
        found.setdefault(getattr(row, key), []).append(
            {
                "sink": row.sink,
                "event": row.event,
                "status": row.status,
                "attempts": row.attempts,
                "last_error": row.last_error,
                "delivered_at": row.delivered_at.isoformat() if row.delivered_at else None,
            }
        )
    return found


# --- silences ----------------------------------------------------------------------------------------


def active_silence(
    session: Session, project: str, monitor: str, kind: str, now: datetime
) -> SilenceRow | None:
    """The silence covering this monitor's kind of incident now, if any."""
    for silence in session.scalars(
        select(SilenceRow).where(
            SilenceRow.project == project, SilenceRow.created_at <= now, SilenceRow.expires_at > now
        )
    ):
        if silence.monitor in (None, monitor) and silence.kind in (None, kind):
            return silence
    return None


def add_silence(
    session: Session,
    *,
    project: str,
    created_by: str,
    duration: timedelta,
    now: datetime,
    monitor: str | None = None,
    kind: str | None = None,
    reason: str = "",
) -> SilenceRow:
    """Silence a project's incidents (of one monitor or kind) for ``duration``.

    Raises:
        InvalidInput: a duration that is not positive or longer than 30 days.
    """
    if duration <= timedelta(0) or duration > MAX_SILENCE:
        raise InvalidInput(
            "a silence lasts more than 0 and at most 30 days", hint="pave silence PROJECT --for 2h"
        )
    row = SilenceRow(
        project=project,
        monitor=monitor or None,
        kind=kind or None,
        reason=reason,
        created_by=created_by,
        created_at=now,
        expires_at=now + duration,
    )
    session.add(row)
    session.flush()
    return row


def list_silences(session: Session, project: str, now: datetime) -> list[SilenceRow]:
    """The project's silences still in force, soonest to expire first."""
    query = (
        select(SilenceRow)
        .where(SilenceRow.project == project, SilenceRow.expires_at > now)
        .order_by(SilenceRow.expires_at)
    )
    return list(session.scalars(query))


def end_silence(session: Session, project: str, silence_id: int, now: datetime) -> SilenceRow:
    """End a silence now (it stays on record, expired).

    Raises:
        NotFound: the project has no such silence.
    """
    row = session.get(SilenceRow, silence_id)
    if row is None or row.project != project:
        raise NotFound(f"project {project!r} has no silence {silence_id}", hint=f"`pave silences {project}`")
    row.expires_at = min(row.expires_at, now)
    return row


def silence_dict(row: SilenceRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "project": row.project,
        "monitor": row.monitor,
        "kind": row.kind,
        "reason": row.reason,
        "created_by": row.created_by,
        "created_at": row.created_at.isoformat(),
        "expires_at": row.expires_at.isoformat(),
    }
