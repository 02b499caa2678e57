"""Heartbeats: every process of the platform says where it answers and that it is alive.

Control planes, gateways and (later) workers each upsert one row of ``platform_processes`` every
:data:`INTERVAL` seconds, keyed by role and URL (a gateway's worker processes share their gateway's
row). A member not seen for :data:`STALE_AFTER` seconds is reported as not answering; one not
seen for a day is removed. ``pave status`` and ``pave deploy`` read them through the API, so what
they print is where the processes really are.
"""

from __future__ import annotations

import os
import socket
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from pave.store.tables import ProcessRow, utcnow

INTERVAL = 5.0
STALE_AFTER = 20.0
FORGET_AFTER = timedelta(days=1)
CONTROL_PLANE = "control-plane"
GATEWAY = "gateway"


class Heartbeat:
    """One process's row; :meth:`beat` writes it when :data:`INTERVAL` has passed (or ``force``)."""

    def __init__(self, role: str, url: str) -> None:
        self.role = role
        self.url = url
        self.id = f"{role} {url}"
        self.started_at = utcnow()
        self._last = float("-inf")

    def due(self) -> bool:
        return time.monotonic() - self._last >= INTERVAL

    def beat(self, session: Session, info: dict[str, Any], *, force: bool = False) -> bool:
        """Upsert this member's row in ``session`` (the caller commits); False when not due yet."""
        if not force and not self.due():
            return False
        row = session.get(ProcessRow, self.id)
        if row is None:
            row = ProcessRow(id=self.id, role=self.role, url=self.url, started_at=self.started_at)
            session.add(row)
        row.host, row.pid, row.seen_at, row.info = socket.gethostname(), os.getpid(), utcnow(), info
        self._last = time.monotonic()
        return True


def list_processes(session: Session) -> list[dict[str, Any]]:
    """Every member seen in the last day, with ``healthy``: seen within :data:`STALE_AFTER` seconds."""
    now = utcnow()
    session.execute(delete(ProcessRow).where(ProcessRow.seen_at < now - FORGET_AFTER))
    rows = session.scalars(select(ProcessRow).order_by(ProcessRow.role, ProcessRow.url))
    return [
        {
            "role": row.role,
            "url": row.url,
            "host": row.host,
            "pid": row.pid,
            "started_at": row.started_at.isoformat(),
            "seen_at": row.seen_at.isoformat(),
            "seconds_since_seen": round((now - row.seen_at).total_seconds(), 1),
            "healthy": (now - row.seen_at).total_seconds() <= STALE_AFTER,
            "info": row.info or {},
        }
        for row in rows
    ]
