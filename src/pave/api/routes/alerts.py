"""Alerts raised by the monitors, the incidents they make, and silences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import select

from pave.api.deps import PrincipalDep, RowId, SessionDep
from pave.api.security import access_of
from pave.errors import NotFound
from pave.monitoring import incidents
from pave.monitoring.alerts import alert_dict, deliveries_of, list_alerts
from pave.schemas.monitoring import AlertOut, IncidentOut, SilenceOut
from pave.store.tables import Project

router = APIRouter(prefix="/api/v1", tags=["alerts"])

StatusQuery = Query(default="open", description="open, or all (resolved ones too).")


def _out(session: SessionDep, rows: list[Any]) -> list[AlertOut]:
    deliveries = deliveries_of(session, [r.id for r in rows])
    return [AlertOut.model_validate(alert_dict(r) | {"deliveries": deliveries.get(r.id, [])}) for r in rows]


@router.get("/alerts", operation_id="list_alerts")
def list_all(
    request: Request,
    session: SessionDep,
    status: Literal["open", "all"] = StatusQuery,
    project: str | None = Query(default=None, max_length=100),
) -> list[AlertOut]:
    """Alerts of every project the caller may read, newest first."""
    access = access_of(request)
    rows = list_alerts(session, project=project, include_resolved=status == "all")
    return _out(session, [r for r in rows if access.sees(r.project)])


@router.get("/projects/{name}/alerts", operation_id="list_project_alerts")
def list_project(
    name: str, session: SessionDep, status: Literal["open", "all"] = StatusQuery
) -> list[AlertOut]:
    """One project's alerts, newest first."""
    return _out(session, list_alerts(session, project=name, include_resolved=status == "all"))


def _incidents_out(session: SessionDep, rows: list[Any]) -> list[IncidentOut]:
    deliveries = incidents.incident_deliveries(session, [r.id for r in rows])
    return [
        IncidentOut.model_validate(incidents.incident_dict(r) | {"deliveries": deliveries.get(r.id, [])})
        for r in rows
    ]


@router.get("/incidents", operation_id="list_incidents")
def list_all_incidents(
    request: Request,
    session: SessionDep,
    status: Literal["open", "all"] = StatusQuery,
    project: str | None = Query(default=None, max_length=100),
) -> list[IncidentOut]:
    """Incidents (one per episode of a monitor's trouble) of every project the caller may read."""
    access = access_of(request)
    rows = incidents.list_incidents(session, project=project, include_resolved=status == "all")
    return _incidents_out(session, [r for r in rows if access.sees(r.project)])


@router.get("/projects/{name}/incidents", operation_id="list_project_incidents")
def list_project_incidents(
    name: str, session: SessionDep, status: Literal["open", "all"] = StatusQuery
) -> list[IncidentOut]:
    """One project's incidents, newest first, with their deliveries."""
    return _incidents_out(
        session, incidents.list_incidents(session, project=name, include_resolved=status == "all")
    )


class SilenceRequest(BaseModel):
    minutes: float = Field(gt=0, le=30 * 24 * 60, description="How long the silence lasts.")
    monitor: str | None = Field(default=None, max_length=100, description="Default: every monitor.")
    kind: str | None = Field(
        default=None, max_length=40, description="drift, prediction_drift, performance..."
    )
    reason: str = Field(default="", max_length=500)


@router.post("/projects/{name}/silences", operation_id="add_silence", status_code=201)
def add_silence(name: str, body: SilenceRequest, session: SessionDep, principal: PrincipalDep) -> SilenceOut:
    """Silence the project's incidents (of one monitor or kind) for a while: stored, not sent."""
    _project(session, name)
    row = incidents.add_silence(
        session,
        project=name,
        created_by=principal.identity,
        duration=timedelta(minutes=body.minutes),
        now=datetime.now(UTC),
        monitor=body.monitor,
        kind=body.kind,
        reason=body.reason,
    )
    return SilenceOut.model_validate(incidents.silence_dict(row))


@router.get("/projects/{name}/silences", operation_id="list_silences")
def list_silences(name: str, session: SessionDep) -> list[SilenceOut]:
    """The project's silences still in force."""
    found = incidents.list_silences(session, name, datetime.now(UTC))
    return [SilenceOut.model_validate(incidents.silence_dict(r)) for r in found]


@router.delete("/projects/{name}/silences/{silence_id}", operation_id="end_silence")
def end_silence(name: str, silence_id: RowId, session: SessionDep) -> SilenceOut:
    """End a silence now."""
    ended = incidents.end_silence(session, name, silence_id, datetime.now(UTC))
    return SilenceOut.model_validate(incidents.silence_dict(ended))


def _project(session: SessionDep, name: str) -> None:
    if session.scalar(select(Project.id).where(Project.name == name)) is None:
        raise NotFound(f"project {name!r} does not exist", hint="`pave projects` lists them")
