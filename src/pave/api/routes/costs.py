"""Cost accounting: usage reported by jobs, costs per project, budgets and quotas."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from pave.api.deps import PlatformDep, SessionDep
from pave.automation import budgets
from pave.governance import costs
from pave.governance.projects import require_project
from pave.monitoring.alerts import alert_dict
from pave.schemas.platform import Admission, CostReport, UsageRecorded

router = APIRouter(tags=["costs"])

SinceQuery = Query(default=None, max_length=40, description="ISO date or time (UTC); default 30 days ago.")


class UsageReport(BaseModel):
    items: list[dict[str, Any]] = Field(min_length=1, max_length=10_000, description="Usage items.")


@router.post("/api/v1/projects/{name}/usage", operation_id="record_usage")
def record_usage(name: str, body: UsageReport, session: SessionDep, platform: PlatformDep) -> UsageRecorded:
    """Record what a step, trial, batch job or deployment of the project used; budget alerts follow."""
    items = [costs.Usage.parse(item) for item in body.items]
    count = costs.record(session, name, items)
    session.flush()
    opened = budgets.check(session, platform.settings, name)
    return UsageRecorded(recorded=count, alerts=[alert_dict(a) for a in opened])


@router.get(
    "/api/v1/projects/{name}/costs", operation_id="get_project_costs", response_model_exclude_unset=True
)
def project_costs(
    name: str, session: SessionDep, platform: PlatformDep, since: str | None = SinceQuery
) -> CostReport:
    """The project's usage and cost per kind and per day, and its budget."""
    found = costs.report(session, platform.settings, projects=[name], since=costs.parse_since(since))
    if name not in found.projects:  # no usage: a project that exists used nothing, or it is a typo
        require_project(session, name)
    return CostReport.model_validate(found.to_dict())


@router.get("/api/v1/projects/{name}/costs/admit", operation_id="admit_work")
def admit(name: str, session: SessionDep, platform: PlatformDep) -> Admission:
    """200 when the project may start new work; 429 over its CPU-hour quota or (hard stop) budget."""
    costs.admit(session, platform.settings, name)
    return Admission(project=name, admitted=True)


@router.get("/api/v1/costs", operation_id="get_costs", response_model_exclude_unset=True)
def all_costs(session: SessionDep, platform: PlatformDep, since: str | None = SinceQuery) -> CostReport:
    """Every project's usage and cost (platform admins)."""
    found = costs.report(session, platform.settings, since=costs.parse_since(since))
    return CostReport.model_validate(found.to_dict())
