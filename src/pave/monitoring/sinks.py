"""Alert sinks: the three payload shapes, and delivery with retries that never loses a message.

What is sent is an incident (:mod:`pave.monitoring.incidents`: one episode of a monitor's kind
of trouble, with every subject that fires). ``webhook`` gets Pave's own JSON (``{"event",
"summary", "incident"}``); ``slack`` a Slack incoming-webhook message (``text`` plus ``blocks``);
``pagerduty`` an Events API v2 ``trigger`` or ``resolve`` event whose ``dedup_key`` is the
incident's, the same for every window and episode of that monitor's kind.

Every message is a row of ``alert_deliveries`` written with its alert. :func:`deliver_pending`
sends the rows that are due through :mod:`pave.governance.egress` (no private addresses unless
allowed); a 2xx marks it delivered; anything else (an error status, a timeout, a refused
connection or destination) counts an attempt and schedules the next one with exponential back-off
(``base_delay * 2**attempts``, at most ``max_delay``). After ``max_attempts`` the row is marked
``failed`` and stays visible in ``pave alerts``; the alert itself is in the store either way.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.governance.egress import EgressPolicy, fetch
from pave.monitoring.spec import SinkSpec
from pave.store.tables import AlertDeliveryRow

log = logging.getLogger(__name__)

_SEVERITY = {"info": "info", "warning": "warning", "critical": "critical"}


def _summary(incident: dict[str, Any], event: str) -> str:
    verb = "resolved" if event == "resolve" else "firing"
    where = incident.get("deployment") or incident["project"]
    subjects = incident["subjects"] if event != "resolve" else incident["ever"]
    what = subjects[0] if len(subjects) == 1 else f"{len(subjects)} subjects ({', '.join(subjects[:5])}"
    if len(subjects) > 1:
        what += ", ...)" if len(subjects) > 5 else ")"
    return f"[Pave] {incident['kind']} on {what} ({where}, monitor {incident['monitor']}): {verb}"


def payload(sink: SinkSpec, incident: dict[str, Any], event: str) -> dict[str, Any]:
    """The JSON body a sink of kind ``sink.kind`` receives for ``event`` (``open`` or ``resolve``)."""
    alert = incident
    summary = _summary(incident, event)
    if sink.kind == "slack":
        facts = ", ".join(f"{k}: {v}" for k, v in _headline(alert).items())
        return {
            "text": summary,
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": facts or "no details"}]},
            ],
        }
    if sink.kind == "pagerduty":
        body: dict[str, Any] = {
            "routing_key": sink.routing_key,
            "event_action": "resolve" if event == "resolve" else "trigger",
            "dedup_key": incident["dedup_key"],
        }
        if event != "resolve":
            body["payload"] = {
                "summary": summary[:1024],
                "source": f"pave/{alert['project']}",
                "severity": _SEVERITY.get(alert["severity"], "warning"),
                "component": alert.get("deployment") or alert["project"],
                "group": alert["monitor"],
                "class": alert["kind"],
                "custom_details": alert,
            }
        return body
    return {"event": event, "summary": summary, "incident": incident}


def _headline(incident: dict[str, Any]) -> dict[str, Any]:
    """The numbers of the first firing subject (the whole list is in the incident)."""
    details = incident.get("details") or {}
    first = details.get(incident["subjects"][0], {}) if incident.get("subjects") else {}
    keys = ("method", "statistic", "p_value", "threshold", "value", "version", "n_current", "n_labelled")
    return {k: first[k] for k in keys if k in first}


def deliver_pending(
    sessions: sessionmaker[Session],
    egress: EgressPolicy,
    now: datetime,
    *,
    timeout: float = 5.0,
    base_delay: float = 5.0,
    max_delay: float = 600.0,
    max_attempts: int = 100,
    limit: int = 20,
) -> int:
    """Send the deliveries that are due; returns how many were delivered. Never raises for a sink."""
    with sessions() as session:
        due = list(
            session.scalars(
                select(AlertDeliveryRow.id)
                .where(AlertDeliveryRow.status == "pending", AlertDeliveryRow.next_attempt_at <= now)
                .order_by(AlertDeliveryRow.id)
                .limit(limit)
            )
        )
    delivered = 0
    for delivery_id in due:
        with sessions() as session:
            row = session.get(AlertDeliveryRow, delivery_id)
            if row is None or row.status != "pending":
                continue
            url, body = row.url, row.payload
        error = _send(egress, url, body, timeout)
        with sessions() as session, session.begin():
            row = session.get(AlertDeliveryRow, delivery_id)
            if row is None:
                continue
            row.attempts += 1
            if error is None:
                row.status, row.delivered_at, row.last_error = "delivered", now, None
                delivered += 1
                continue
            row.last_error = error[:500]
            if row.attempts >= max_attempts:
                row.status = "failed"
                log.error("alert delivery %s to %s failed for good: %s", delivery_id, row.sink, error)
            else:
                delay = min(base_delay * 2 ** (row.attempts - 1), max_delay)
                row.next_attempt_at = now + timedelta(seconds=delay)
                log.warning(
                    "alert delivery %s to %s failed (%s); retry in %.0fs", delivery_id, row.sink, error, delay
                )
    return delivered


def _send(egress: EgressPolicy, url: str, body: dict[str, Any], timeout: float) -> str | None:
    """None when the sink accepted the message, else what went wrong."""
    try:
        response = fetch(egress, "POST", url, json=body, timeout=timeout)
    except Exception as exc:  # refused destination, timeout, connection error: all retried
        return f"{exc.__class__.__name__}: {exc}"
    if 200 <= response.status_code < 300:
        return None
    return f"HTTP {response.status_code}: {response.text[:200]}"
