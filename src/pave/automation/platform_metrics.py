"""The platform run as a product: the numbers its team watches ("measure everything").

One function, :func:`compute`, reads Pave's store (projects, deployments, rollouts, the audit
trail, alerts) and MLflow's (runs) and returns :class:`PlatformMetrics`. The portal's platform
page, ``GET /api/v1/platform/metrics`` and the control plane's ``/metrics`` gauges all show it.

Definitions:

- active users of a week: identities with at least one audited action (a mutation or a refusal)
  that week, the platform's own service identities excluded;
- time to production of a project: from its first run to its first deployment;
- deployment frequency: deployments, traffic changes and rollouts started per week, over the
  last four weeks;
- change failure rate: rollouts rolled back / rollouts finished;
- drift incidents: drift alerts opened (input or prediction drift); time to resolve: mean of
  resolved_at - opened_at over the resolved ones.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pave.store.tables import AlertRow, AuditEvent, DeploymentRow, Project, RolloutRow

WEEKS = 12
_SERVICE_IDENTITIES = ("pave-rollouts", "pave-automation", "pave-monitoring")
_DEPLOY_PATH = re.compile(r"/api/v1/projects/(?P<p>[^/]+)/(deployment|rollout)|/projects/(?P<q>[^/]+)/deploy")


@dataclass
class WeekPoint:
    week: str  # ISO date of the Monday
    value: float


@dataclass
class PlatformMetrics:
    projects: int = 0
    active_users_7d: int = 0
    runs_total: int = 0
    models_in_production: int = 0
    mean_hours_to_production: float | None = None
    deployments_per_week: float = 0.0
    rollouts_finished: int = 0
    rollbacks: int = 0
    change_failure_rate: float | None = None
    drift_incidents: int = 0
    drift_open: int = 0
    mean_hours_to_resolve_drift: float | None = None
    projects_by_week: list[WeekPoint] = field(default_factory=list)
    active_users_by_week: list[WeekPoint] = field(default_factory=list)
    runs_by_week: list[WeekPoint] = field(default_factory=list)
    deployments_by_week: list[WeekPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def gauges(self) -> dict[str, float]:
        """The scalar numbers, for Prometheus gauges (None becomes NaN)."""
        out: dict[str, float] = {}
        for key, value in asdict(self).items():
            if isinstance(value, int | float) or value is None:
                out[key] = float("nan") if value is None else float(value)
        return out


def _monday(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def _weeks(now: datetime) -> list[datetime]:
    last = _monday(now)
    return [last - timedelta(weeks=i) for i in range(WEEKS - 1, -1, -1)]


def _bucket(weeks: list[datetime], moments: list[datetime]) -> list[float]:
    counts = [0.0] * len(weeks)
    for moment in moments:
        start = _monday(moment)
        for i, week in enumerate(weeks):
            if week == start:
                counts[i] += 1
    return counts


def _parse(at: str) -> datetime:
    return datetime.fromisoformat(at.replace("Z", "+00:00"))


def run_start_times(tracking_uri: str, projects: list[str]) -> dict[str, list[datetime]]:
    """Start times of every run of each project's experiment (two queries to MLflow's store)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    wanted = set(projects)
    ids = {e.experiment_id: e.name for e in client.search_experiments(max_results=50_000) if e.name in wanted}
    out: dict[str, list[datetime]] = {name: [] for name in ids.values()}
    if not ids:
        return out
    token = None
    while True:
        page = client.search_runs(list(ids), max_results=50_000, page_token=token)
        for run in page:
            if run.info.start_time:
                out[ids[run.info.experiment_id]].append(
                    datetime.fromtimestamp(run.info.start_time / 1000, UTC)
                )
        token = page.token
        if not token:
            return out


def compute(
    session: Session,
    *,
    tracking_uri: str | None = None,
    runs: dict[str, list[datetime]] | None = None,
    now: datetime | None = None,
) -> PlatformMetrics:
    """The platform's numbers now; runs come from ``runs`` or from MLflow at ``tracking_uri``."""
    now = now or datetime.now(UTC)
    weeks = _weeks(now)
    out = PlatformMetrics()
    projects = list(session.execute(select(Project.name, Project.created_at)).tuples())
    out.projects = len(projects)
    created = sorted(c for _, c in projects)
    out.projects_by_week = [
        WeekPoint(w.date().isoformat(), float(sum(1 for c in created if c < w + timedelta(weeks=1))))
        for w in weeks
    ]
    if runs is None:
        runs = run_start_times(tracking_uri, [p for p, _ in projects]) if tracking_uri else {}
    all_runs = [t for times in runs.values() for t in times]
    out.runs_total = len(all_runs)
    out.runs_by_week = [
        WeekPoint(w.date().isoformat(), v) for w, v in zip(weeks, _bucket(weeks, all_runs), strict=True)
    ]

    # Who did what, from the audit trail (oldest week first).
    since = weeks[0].strftime("%Y-%m-%dT%H:%M:%S")
    events = session.execute(
        select(
            AuditEvent.at, AuditEvent.identity, AuditEvent.method, AuditEvent.path, AuditEvent.outcome
        ).where(AuditEvent.at >= since)
    ).tuples()
    users: dict[datetime, set[str]] = {w: set() for w in weeks}
    deploy_times: list[datetime] = []
    first_deploy: dict[str, datetime] = {}
    for at, identity, method, path, outcome in events:
        moment = _parse(at)
        if identity and identity not in _SERVICE_IDENTITIES:
            users.setdefault(_monday(moment), set()).add(identity)
        match = _DEPLOY_PATH.fullmatch(path)
        if match and outcome == "allowed" and method in ("PUT", "POST"):
            deploy_times.append(moment)
            project = match["p"] or match["q"]
            first_deploy.setdefault(project, moment)
    out.active_users_by_week = [WeekPoint(w.date().isoformat(), float(len(users[w]))) for w in weeks]
    week_ago = now - timedelta(days=7)
    recent = session.execute(
        select(func.count(func.distinct(AuditEvent.identity))).where(
            AuditEvent.at >= week_ago.strftime("%Y-%m-%dT%H:%M:%S"),
            AuditEvent.identity.is_not(None),
            AuditEvent.identity.not_in(_SERVICE_IDENTITIES),
        )
    ).scalar_one()
    out.active_users_7d = int(recent or 0)
    deploys = _bucket(weeks, deploy_times)
    out.deployments_by_week = [
        WeekPoint(w.date().isoformat(), v) for w, v in zip(weeks, deploys, strict=True)
    ]
    out.deployments_per_week = sum(deploys[-4:]) / 4

    # Production, and how long it took to get there.
    deployed = session.execute(select(DeploymentRow.project, DeploymentRow.created_at)).tuples()
    for name, since_at in deployed:
        out.models_in_production += 1
        first_deploy[name] = min(first_deploy.get(name, since_at), since_at)
    spans = [
        (first_deploy[p] - min(times)).total_seconds() / 3600
        for p, times in runs.items()
        if times and p in first_deploy and first_deploy[p] >= min(times)
    ]
    out.mean_hours_to_production = sum(spans) / len(spans) if spans else None

    finished = list(session.execute(select(RolloutRow.state).where(RolloutRow.state != "running")).scalars())
    out.rollouts_finished = len(finished)
    out.rollbacks = sum(1 for s in finished if s == "rolled_back")
    out.change_failure_rate = out.rollbacks / len(finished) if finished else None

    _drift(session, out)
    return out


def _drift(session: Session, out: PlatformMetrics) -> None:
    """Drift incidents from the monitoring alerts (input and prediction drift)."""
    rows = (
        session.execute(
            select(AlertRow.status, AlertRow.opened_at, AlertRow.resolved_at).where(
                AlertRow.kind.like("%drift%")
            )
        )
        .tuples()
        .all()
    )
    out.drift_incidents = len(rows)
    out.drift_open = sum(1 for status, _, _ in rows if status == "open")
    spans = [(r - o).total_seconds() / 3600 for _, o, r in rows if r is not None]
    out.mean_hours_to_resolve_drift = sum(spans) / len(spans) if spans else None
