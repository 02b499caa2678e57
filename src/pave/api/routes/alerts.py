"""Alerts raised by the monitors: every project's the caller may see, or one project's."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Query, Request

from pave.api.deps import SessionDep
from pave.api.security import access_of
from pave.monitoring.alerts import alert_dict, deliveries_of, list_alerts

router = APIRouter(prefix="/api/v1", tags=["alerts"])

StatusQuery = Query(default="open", description="open, or all (resolved ones too).")


def _out(session: SessionDep, rows: list[Any]) -> list[dict[str, Any]]:
    deliveries = deliveries_of(session, [r.id for r in rows])
    return [alert_dict(r) | {"deliveries": deliveries.get(r.id, [])} for r in rows]


@router.get("/alerts", operation_id="list_alerts")
def list_all(
    request: Request,
    session: SessionDep,
    status: Literal["open", "all"] = StatusQuery,
    project: str | None = Query(default=None, max_length=100),
) -> list[dict[str, Any]]:
    """Alerts of every project the caller may read, newest first."""
    access = access_of(request)
    rows = list_alerts(session, project=project, include_resolved=status == "all")
    return _out(session, [r for r in rows if access.sees(r.project)])


@router.get("/projects/{name}/alerts", operation_id="list_project_alerts")
def list_project(
    name: str, session: SessionDep, status: Literal["open", "all"] = StatusQuery
) -> list[dict[str, Any]]:
    """One project's alerts, newest first."""
    return _out(session, list_alerts(session, project=name, include_resolved=status == "all"))
