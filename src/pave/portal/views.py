"""What each portal page shows, gathered from the domain (no HTML here).

Every function takes a store session (and the settings where MLflow or the inference log is
read) and returns plain data for a template. Parts that other areas provide (monitoring alerts,
per-version performance) are read when they are installed and show as empty otherwise.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.config import Settings
from pave.errors import NotFound, PaveError
from pave.governance import audit
from pave.governance.access import Access
from pave.store.tables import AlertRow, AuditEvent, DeploymentRow, MonitorStateRow, Project, RolloutRow

STATUSES = ("healthy", "drifting", "rolling out", "failing", "not deployed")
RECENT_ROLLBACK = timedelta(hours=24)


def mlflow_client(settings: Settings) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_db_url, registry_uri=settings.mlflow_db_url)


def alerts(session: Session, project: str | None = None, *, open_only: bool = True) -> list[dict[str, Any]]:
    """Monitoring alerts, newest first."""
    stmt = select(AlertRow).order_by(AlertRow.opened_at.desc()).limit(200)
    if project is not None:
        stmt = stmt.where(AlertRow.project == project)
    if open_only:
        stmt = stmt.where(AlertRow.status == "open")
    keys = ("project", "deployment", "monitor", "kind", "subject", "severity", "status")
    return [
        {k: getattr(r, k) for k in keys}
        | {"opened_at": r.opened_at, "resolved_at": r.resolved_at, "details": r.details or {}}
        for r in session.scalars(stmt)
    ]


# --- catalog ---------------------------------------------------------------------------------------


@dataclass
class CatalogEntry:
    name: str
    owner: str
    description: str
    template: str | None
    created_at: datetime
    status: str
    deployment: dict[str, Any] | None = None
    latest_version: str | None = None
    champion: str | None = None
    versions: int = 0
    last_run: str | None = None
    alerts: int = 0


def _latest_runs(client: Any, names: list[str]) -> dict[str, str]:
    """Status of the newest run of each project's experiment (one search for all of them)."""
    ids: dict[str, str] = {}
    for experiment in client.search_experiments(max_results=1000):
        if experiment.name in names:
            ids[experiment.experiment_id] = experiment.name
    if not ids:
        return {}
    found: dict[str, str] = {}
    runs = client.search_runs(
        list(ids), order_by=["attributes.start_time DESC"], max_results=min(5000, 20 * len(ids))
    )
    for run in runs:
        found.setdefault(ids[run.info.experiment_id], run.info.status)
    return found


def _models(client: Any) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for model in client.search_registered_models(max_results=1000):
        latest = max((int(v.version) for v in model.latest_versions or []), default=0)
        out[model.name] = {"latest": str(latest) if latest else None, "aliases": dict(model.aliases or {})}
    return out


def catalog(session: Session, settings: Settings, access: Access) -> list[CatalogEntry]:
    """Every project the caller may see, with its status badge."""
    projects = [p for p in session.scalars(select(Project).order_by(Project.name)) if access.sees(p.name)]
    names = [p.name for p in projects]
    deployments = {d.project: d for d in session.scalars(select(DeploymentRow))}
    rollouts: dict[str, RolloutRow] = {}
    for row in session.scalars(select(RolloutRow).order_by(RolloutRow.id)):
        rollouts[row.deployment] = row  # the latest one wins
    open_alerts: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts(session):
        open_alerts.setdefault(alert["project"], []).append(alert)
    client = mlflow_client(settings)
    try:
        runs = _latest_runs(client, names) if names else {}
        models = _models(client) if names else {}
    except Exception:  # MLflow unavailable: the catalog still lists the projects
        runs, models = {}, {}
    now = datetime.now(UTC)
    out = []
    for project in projects:
        deployment = deployments.get(project.name)
        rollout = rollouts.get(project.name)
        mine = open_alerts.get(project.name, [])
        status = "not deployed"
        if deployment is not None:
            status = "healthy"
        if any("drift" in a["kind"] for a in mine):
            status = "drifting"
        if rollout is not None and rollout.state == "running":
            status = "rolling out"
        recently_rolled_back = (
            rollout is not None
            and rollout.state == "rolled_back"
            and rollout.finished_at is not None
            and now - rollout.finished_at < RECENT_ROLLBACK
        )
        if (
            runs.get(project.name) == "FAILED"
            or recently_rolled_back
            or any(a["kind"] == "performance" for a in mine)
        ):
            status = "failing"
        model = models.get(project.name, {})
        out.append(
            CatalogEntry(
                name=project.name,
                owner=project.owner,
                description=project.description,
                template=project.template,
                created_at=project.created_at,
                status=status,
                deployment=deployment.spec if deployment else None,
                latest_version=model.get("latest"),
                champion=model.get("aliases", {}).get("champion"),
                last_run=runs.get(project.name),
                alerts=len(mine),
            )
        )
    return out


def filter_catalog(
    entries: list[CatalogEntry], q: str = "", status: str = "", template: str = "", owner: str = ""
) -> list[CatalogEntry]:
    needle = q.strip().lower()
    return [
        e
        for e in entries
        if (not needle or needle in f"{e.name} {e.owner} {e.description}".lower())
        and (not status or e.status == status)
        and (not template or (e.template or "") == template)
        and (not owner or e.owner == owner)
    ]


# --- project ---------------------------------------------------------------------------------------


def get_project(session: Session, name: str) -> Project:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"project {name!r} does not exist", hint="the catalog at / lists them")
    return project


STARTER_NOTEBOOK = "notebooks/explore.ipynb"


def starter_notebook(project: Project) -> Path | None:
    """The starter notebook of the template version the project was made from (or upgraded to).

    None when the project has no template or its template version predates the notebook.
    """
    from pave.templates.catalog import get_template

    if not project.template:
        return None
    try:
        info = get_template(project.template)
    except NotFound:
        return None
    versions = list(info.versions)
    if project.template_version in versions:
        versions = versions[: versions.index(project.template_version) + 1]
    for version in reversed(versions):  # a version folder holds what changed since the one before
        path = info.source / version / "project" / STARTER_NOTEBOOK
        if path.is_file():
            return path
    return None


def experiment_id(settings: Settings, name: str) -> str | None:
    with contextlib.suppress(Exception):
        experiment = mlflow_client(settings).get_experiment_by_name(name)
        return str(experiment.experiment_id) if experiment else None
    return None


def runs(settings: Settings, name: str, limit: int = 50) -> list[Any]:
    from pave.tracking.lineage import list_runs

    return list_runs(name, tracking_uri=settings.mlflow_db_url, max_results=limit)


def versions(settings: Settings, name: str) -> list[Any]:
    from pave.registry.versions import list_model_versions

    return list_model_versions(name, tracking_uri=settings.mlflow_db_url)


def lineage_graph(
    found_runs: list[Any], found_versions: list[Any], deployment: DeploymentRow | None
) -> tuple[list[tuple[str, list[str]]], list[tuple[str, str]]]:
    """Columns and edges of the lineage graph (the newest 8 runs)."""
    data: list[str] = []
    run_nodes: list[str] = []
    version_nodes: list[str] = []
    edges: list[tuple[str, str]] = []
    recent = found_runs[:8]
    for run in recent:
        run_node = f"run:{run.run_id[:8]}"
        run_nodes.append(run_node)
        for source, digest in sorted(run.data_versions.items()):
            node = f"data:{source}@{digest[:7]}"
            if node not in data:
                data.append(node)
            edges.append((node, run_node))
    by_run = {run.run_id: f"run:{run.run_id[:8]}" for run in recent}
    for version in found_versions:
        if version.run_id in by_run:
            node = f"model:v{version.version}"
            version_nodes.append(node)
            edges.append((by_run[version.run_id], node))
    deployed: list[str] = []
    if deployment is not None:
        node = f"deployment:{deployment.name}"
        deployed.append(node)
        for ref in deployment.spec.get("versions", []):
            edges.append((f"model:v{ref['version']}", node))
    columns = [
        ("data", data),
        ("runs", run_nodes),
        ("model versions", version_nodes),
        ("deployment", deployed),
    ]
    return columns, edges


def deployment_of(session: Session, project: str) -> DeploymentRow | None:
    return session.scalar(select(DeploymentRow).where(DeploymentRow.project == project))


def rollouts_of(session: Session, project: str, limit: int = 10) -> list[RolloutRow]:
    stmt = select(RolloutRow).where(RolloutRow.deployment == project).order_by(RolloutRow.id.desc())
    return list(session.scalars(stmt.limit(limit)))


# --- model card ------------------------------------------------------------------------------------


def _artifact_json(settings: Settings, run: Any, path: str) -> Any:
    """A JSON artifact of a run from the platform's artifact store, or None."""
    from pave.serving.store import artifact_location

    with contextlib.suppress(PaveError, OSError, ValueError):
        root = artifact_location(settings, run.info.artifact_uri)
        if "://" not in root:
            return json.loads((Path(root) / path).read_text())
    return None


@dataclass
class ModelCard:
    project: Project
    version: Any
    run: Any | None
    gates: list[dict[str, Any]] = field(default_factory=list)
    gates_passed: bool | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    approval: Any | None = None
    author: str | None = None
    deployed_weight: float | None = None
    environment: list[str] = field(default_factory=list)
    fairness: dict[str, Any] = field(default_factory=dict)
    importances: dict[str, Any] = field(default_factory=dict)


def model_card(session: Session, settings: Settings, project: Project, version: str) -> ModelCard:
    from pave.governance import approvals
    from pave.registry.versions import get_version
    from pave.tracking.lineage import ENV_LOCK_ARTIFACT

    found = get_version(project.name, version, tracking_uri=settings.mlflow_db_url)
    client = mlflow_client(settings)
    run = None
    if found.run_id:
        with contextlib.suppress(Exception):
            run = client.get_run(found.run_id)
    card = ModelCard(project=project, version=found, run=run, author=found.tags.get(approvals.TAG_AUTHOR))
    if run is not None:
        gates = _artifact_json(settings, run, "gates.json") or {}
        card.gates = list(gates.get("gates", []))
        card.gates_passed = gates.get("passed")
        card.profile = _artifact_json(settings, run, "data/profile.json") or {}
        card.fairness = _artifact_json(settings, run, "fairness.json") or {}
        card.importances = _artifact_json(settings, run, "explain/importances.json") or {}
        with contextlib.suppress(PaveError, OSError, ValueError):
            from pave.serving.store import artifact_location

            root = artifact_location(settings, run.info.artifact_uri)
            if "://" not in root:
                card.environment = (Path(root) / ENV_LOCK_ARTIFACT).read_text().splitlines()
    with contextlib.suppress(Exception):
        card.approval = approvals.approval_of(client, project.name, version)
    deployment = deployment_of(session, project.name)
    if deployment is not None:
        for ref in deployment.spec.get("versions", []):
            if str(ref["version"]) == str(version):
                card.deployed_weight = float(ref.get("weight", 0))
    return card


# --- deployment ------------------------------------------------------------------------------------


@dataclass
class Traffic:
    window: tuple[float, float] | None = None  # epoch seconds of the window's start and end
    requests: list[tuple[float, float]] = field(default_factory=list)
    errors: list[tuple[float, float]] = field(default_factory=list)
    p50: list[tuple[float, float]] = field(default_factory=list)
    p99: list[tuple[float, float]] = field(default_factory=list)
    total: int = 0
    by_version: dict[str, int] = field(default_factory=dict)


def traffic(settings: Settings, deployment: str, *, window: timedelta = timedelta(hours=1)) -> Traffic:
    """Requests per minute, error rate and latency over the last ``window``, from the inference log."""
    from pave.serving.inference_log import read_inference_log

    now = datetime.now(UTC)
    start = now - window
    frame = read_inference_log(settings.inference_log_dir, start=start, deployment=deployment)
    out = Traffic(window=(start.timestamp(), now.timestamp()))
    if frame.empty:
        return out
    out.total = len(frame)
    out.by_version = {str(k): int(v) for k, v in frame["version"].value_counts().items()}
    frame = frame.assign(minute=frame["timestamp"].dt.floor("min"), failed=frame["error"].notna())
    for minute, group in frame.groupby("minute"):
        x = minute.timestamp()
        out.requests.append((x, float(len(group))))
        out.errors.append((x, float(group["failed"].mean())))
        ok = group.loc[~group["failed"], "latency_ms"]
        if len(ok):
            out.p50.append((x, float(ok.quantile(0.5))))
            out.p99.append((x, float(ok.quantile(0.99))))
    return out


@dataclass
class FeatureDrift:
    feature: str
    method: str
    statistic: float
    threshold: float | None
    drifted: bool
    monitor: str


def drift(session: Session, project: str) -> list[FeatureDrift]:
    """Per feature, the latest verdict of the project's drift monitors (``monitor_state``)."""
    out: list[FeatureDrift] = []
    rows = session.scalars(
        select(MonitorStateRow).where(MonitorStateRow.project == project).order_by(MonitorStateRow.monitor)
    )
    for row in rows:
        result = row.last_result or {}
        if result.get("type") not in ("drift", "prediction_drift"):
            continue
        for verdict in result.get("verdicts") or []:
            statistic = verdict.get("statistic")
            if not isinstance(statistic, int | float):
                continue
            threshold = verdict.get("threshold")
            out.append(
                FeatureDrift(
                    feature=str(verdict.get("feature") or verdict.get("subject")),
                    method=str(verdict.get("method", "")),
                    statistic=float(statistic),
                    threshold=float(threshold) if isinstance(threshold, int | float) else None,
                    drifted=bool(verdict.get("firing")),
                    monitor=row.monitor,
                )
            )
    return out


def performance(settings: Settings, sessions: Any, deployment: str) -> dict[str, dict[str, float]]:
    """Version -> metrics over the last 7 days of labelled requests."""
    from pave.monitoring.performance import performance_by_version

    found = performance_by_version(
        settings, sessions, deployment, since=datetime.now(UTC) - timedelta(days=7)
    )
    return {str(v): dict(p.metrics) for v, p in found.items()}


# --- audit -----------------------------------------------------------------------------------------


def audit_rows(
    session: Session,
    *,
    identity: str = "",
    project: str = "",
    outcome: str = "",
    since: str = "",
    q: str = "",
    limit: int = 200,
) -> list[AuditEvent]:
    """Audit records matching every filter, newest first."""
    stmt = select(AuditEvent)
    if identity:
        stmt = stmt.where(AuditEvent.identity == identity)
    if project:
        stmt = stmt.where(AuditEvent.project == project)
    if outcome:
        stmt = stmt.where(AuditEvent.outcome == outcome)
    if since:
        stmt = stmt.where(AuditEvent.at >= audit.parse_since(since))
    if q:
        stmt = stmt.where(AuditEvent.path.contains(q))
    return list(session.scalars(stmt.order_by(AuditEvent.seq.desc()).limit(limit)))


# --- tuning --------------------------------------------------------------------------------------


@dataclass
class Tuning:
    """One ``pave tune`` study: its parent run, its trials (child runs) and parameter importances."""

    run_id: str
    study: str
    status: str
    started: int | None
    metric: str
    direction: str
    trials: list[dict[str, Any]]
    importances: dict[str, float]

    @property
    def best(self) -> dict[str, Any] | None:
        done = [t for t in self.trials if t["value"] is not None and t["state"] == "complete"]
        if not done:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(done, key=lambda t: t["value"])


def tunings(settings: Settings, name: str, limit: int = 20) -> list[Tuning]:
    """The project's tuning studies, newest first, with their trials read from the child runs."""
    experiment = experiment_id(settings, name)
    if experiment is None:
        return []
    client = mlflow_client(settings)
    parents = client.search_runs(
        [experiment],
        filter_string="tags.`pave.kind` = 'tune'",
        order_by=["start_time DESC"],
        max_results=limit,
    )
    found = []
    for parent in parents:
        params = parent.data.params
        metric = params.get("tune.metric", "")
        children = client.search_runs(
            [experiment],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'",
            max_results=5000,
        )
        trials = sorted(
            (
                {
                    "number": int(child.data.tags.get("pave.tune.trial", -1)),
                    "state": child.data.tags.get("pave.tune.state", child.info.status.lower()),
                    "value": child.data.metrics.get(metric),
                    "params": {k: v for k, v in child.data.params.items() if k in _tuned(parent)},
                    "run_id": child.info.run_id,
                }
                for child in children
            ),
            key=lambda t: t["number"],
        )
        importances = _artifact_json(settings, parent, "tune/importances.json") or {}
        found.append(
            Tuning(
                run_id=parent.info.run_id,
                study=parent.data.tags.get("pave.tune.study", ""),
                status=parent.info.status,
                started=parent.info.start_time,
                metric=metric,
                direction=params.get("tune.direction", "maximize"),
                trials=trials,
                importances={str(k): float(v) for k, v in importances.items()},
            )
        )
    return found


def _tuned(parent: Any) -> set[str]:
    spec = parent.data.params
    return {k.removeprefix("tune.param.") for k in spec if k.startswith("tune.param.")}
