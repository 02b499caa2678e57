"""Cost accounting: usage recorded per project, priced with the settings' price table.

Each piece of work reports what it used: a pipeline step or a tuning trial (CPU-seconds,
GPU-seconds, peak memory), a batch job (the same, for its whole process), a deployment (requests
served, per hour in which it served any: an idle deployment, scaled to zero, costs nothing), and
stored bytes. :func:`report` prices them (``Settings.prices``: per CPU-hour, GPU-hour, GB-month,
million requests) per project, per kind and per day. Budgets (``Settings.budgets``, per month) and
CPU-hour quotas (``Settings.cpu_hours_per_day``) are checked by :func:`admit` before new work
starts; crossing 80% and 100% of a budget opens an alert (``pave.automation.budgets``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pave.config import Settings
from pave.errors import InvalidInput, QuotaExceeded
from pave.store.tables import UsageRow

KINDS = ("step", "trial", "batch", "deployment", "storage")
_MONTH_HOURS = 730.0
NUMBERS = ("cpu_seconds", "gpu_seconds", "peak_memory", "stored_bytes", "requests")


@dataclass
class Usage:
    """One report of usage (the body of ``POST /api/v1/projects/P/usage``)."""

    kind: str
    ref: str = ""
    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    peak_memory: int = 0
    stored_bytes: int = 0
    requests: int = 0

    @classmethod
    def parse(cls, item: dict[str, Any]) -> Usage:
        """A usage item from JSON, checked: a known kind, finite non-negative numbers."""
        if item.get("kind") not in KINDS:
            raise InvalidInput(
                f"usage kind {item.get('kind')!r} is not one of {', '.join(KINDS)}",
                hint="report steps, trials, batch jobs, deployments or storage",
            )
        unknown = set(item) - {"kind", "ref", *NUMBERS}
        if unknown:
            raise InvalidInput(f"unknown usage field(s): {', '.join(sorted(unknown))}", hint=f"use {NUMBERS}")
        values: dict[str, Any] = {}
        for name in NUMBERS:
            value = item.get(name, 0)
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e15:
                raise InvalidInput(f"usage {name} must be a number from 0, got {value!r}")
            values[name] = value
        return cls(kind=item["kind"], ref=str(item.get("ref", ""))[:300], **values)


def parse_since(value: str | None, *, now: datetime | None = None) -> datetime | None:
    """The moment a report starts from: an ISO date or time (UTC unless it names its zone), in the past.

    Raises:
        InvalidInput: words, or a moment after ``now`` (a report of nothing, not an answer).
    """
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidInput(
            f"since={value!r} is not an ISO date or time", hint="e.g. --since 2026-12-01 or 2026-12-01T09:00"
        ) from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    at = now or datetime.now(UTC)
    if moment > at:
        raise InvalidInput(
            f"since={value!r} is in the future (it is {at:%Y-%m-%d %H:%M} UTC now): nothing was used yet",
            hint=f"pass a past date, e.g. --since {month_start(at):%Y-%m-%d} (the start of this month)",
        )
    return moment


def record(session: Session, project: str, items: Iterable[Usage], *, now: datetime | None = None) -> int:
    """Store usage reports of ``project``; returns how many."""
    at = now or datetime.now(UTC)
    count = 0
    for item in items:
        session.add(
            UsageRow(
                project=project,
                kind=item.kind,
                ref=item.ref,
                recorded_at=at,
                cpu_seconds=float(item.cpu_seconds),
                gpu_seconds=float(item.gpu_seconds),
                peak_memory=int(item.peak_memory),
                stored_bytes=int(item.stored_bytes),
                requests=int(item.requests),
            )
        )
        count += 1
    return count


def price(
    settings: Settings, cpu_seconds: float, gpu_seconds: float, requests: float, gb_months: float
) -> float:
    """The cost of an amount of usage with the settings' price table."""
    prices = settings.prices
    return (
        cpu_seconds / 3600 * prices.get("cpu_hour", 0.0)
        + gpu_seconds / 3600 * prices.get("gpu_hour", 0.0)
        + requests / 1e6 * prices.get("million_requests", 0.0)
        + gb_months * prices.get("gb_month", 0.0)
    )


@dataclass
class CostLine:
    """Usage and cost of one project and kind (or day)."""

    cpu_seconds: float = 0.0
    gpu_seconds: float = 0.0
    requests: int = 0
    stored_bytes: int = 0
    peak_memory: int = 0
    records: int = 0
    cost: float = 0.0


@dataclass
class CostReport:
    """What projects used and cost since a moment, per kind and per day."""

    since: datetime
    until: datetime
    currency_per: dict[str, float]
    projects: dict[str, dict[str, CostLine]] = field(default_factory=dict)  # project -> kind -> line
    days: dict[str, dict[str, float]] = field(default_factory=dict)  # project -> day -> cost
    budgets: dict[str, dict[str, float]] = field(default_factory=dict)  # project -> budget, spent this month

    def total(self, project: str) -> float:
        return sum(line.cost for line in self.projects.get(project, {}).values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "prices": self.currency_per,
            "projects": {
                name: {
                    "total": self.total(name),
                    "kinds": {kind: line.__dict__ for kind, line in kinds.items()},
                    "days": self.days.get(name, {}),
                    **({"budget": self.budgets[name]} if name in self.budgets else {}),
                }
                for name, kinds in sorted(self.projects.items())
            },
        }


def report(
    session: Session,
    settings: Settings,
    *,
    projects: Iterable[str] | None = None,
    since: datetime | None = None,
    now: datetime | None = None,
) -> CostReport:
    """Usage and cost per project, kind and day since ``since`` (default: 30 days).

    Stored bytes are priced as GB-months over the hours they were kept: a storage report is what a
    project held at that moment, and counts until the next one (or now).
    """
    until = now or datetime.now(UTC)
    start = since or until - timedelta(days=30)
    query = select(UsageRow).where(UsageRow.recorded_at >= start).order_by(UsageRow.recorded_at)
    wanted = None if projects is None else set(projects)
    if wanted is not None:
        query = query.where(UsageRow.project.in_(wanted))
    out = CostReport(since=start, until=until, currency_per=dict(settings.prices))
    storage: dict[str, list[UsageRow]] = defaultdict(list)
    for row in session.scalars(query):
        if row.kind == "storage":
            storage[row.project].append(row)
            continue
        _add(out, settings, row, row.cpu_seconds, row.gpu_seconds, row.requests, 0.0)
    for rows in storage.values():
        for current, following in zip(rows, [*rows[1:], None], strict=True):
            end = following.recorded_at if following is not None else until
            hours = max(0.0, (end - current.recorded_at).total_seconds() / 3600)
            gb_months = current.stored_bytes / 1e9 * hours / _MONTH_HOURS
            _add(out, settings, current, 0.0, 0.0, 0, gb_months)
    for project in out.projects if wanted is None else wanted:
        budget = settings.budgets.get(project)
        if budget:
            out.budgets[project] = {
                "budget": budget,
                "spent_this_month": month_spend(session, settings, project, until),
            }
    return out


def _add(
    out: CostReport,
    settings: Settings,
    row: UsageRow,
    cpu: float,
    gpu: float,
    requests: int,
    gb_months: float,
) -> None:
    line = out.projects.setdefault(row.project, {}).setdefault(row.kind, CostLine())
    cost = price(settings, cpu, gpu, requests, gb_months)
    line.cpu_seconds += cpu
    line.gpu_seconds += gpu
    line.requests += requests
    line.stored_bytes = max(line.stored_bytes, row.stored_bytes)
    line.peak_memory = max(line.peak_memory, row.peak_memory)
    line.records += 1
    line.cost += cost
    day = row.recorded_at.astimezone(UTC).strftime("%Y-%m-%d")
    days = out.days.setdefault(row.project, {})
    days[day] = days.get(day, 0.0) + cost


def month_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def month_spend(session: Session, settings: Settings, project: str, now: datetime | None = None) -> float:
    """What ``project`` cost since the start of the month (UTC)."""
    at = now or datetime.now(UTC)
    month = report(
        session,
        settings.model_copy(update={"budgets": {}}),
        projects=[project],
        since=month_start(at),
        now=at,
    )
    return month.total(project)


def cpu_hours_today(session: Session, project: str, now: datetime | None = None) -> float:
    at = (now or datetime.now(UTC)).astimezone(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    used = session.scalar(
        select(func.coalesce(func.sum(UsageRow.cpu_seconds), 0.0)).where(
            UsageRow.project == project, UsageRow.recorded_at >= day
        )
    )
    return float(used or 0.0) / 3600


def admit(session: Session, settings: Settings, project: str, *, now: datetime | None = None) -> None:
    """Refuse new work of ``project`` over its CPU-hour quota of the day, or (hard stop) its budget.

    Raises:
        QuotaExceeded: which limit, how much is used, and what to do.
    """
    quota = settings.cpu_hours_per_day.get(project, settings.cpu_hours_per_day.get("*"))
    if quota is not None:
        used = cpu_hours_today(session, project, now)
        if used >= quota:
            raise QuotaExceeded(
                f"project {project} used {used:.2f} of its {quota:g} CPU-hours today (UTC)",
                hint="wait for tomorrow (UTC), or ask a platform admin to raise cpu_hours_per_day",
            )
    budget = settings.budgets.get(project)
    if budget and settings.budget_hard_stop:
        spent = month_spend(session, settings, project, now)
        if spent >= budget:
            raise QuotaExceeded(
                f"project {project} spent {spent:.2f} of its monthly budget of {budget:g}",
                hint="ask a platform admin to raise the budget (budgets) or turn off budget_hard_stop",
            )
