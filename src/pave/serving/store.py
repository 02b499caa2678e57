"""Deployments in Pave's store: creating and changing them, and the gateway's store-backed source.

The store is the single source of truth. A change writes the deployment's JSON form (the same
form ``pave serve --deployments FILE`` reads) and bumps the ``deployments`` counter in the same
transaction; gateways read that counter and reload when it moves. On PostgreSQL the change also
sends a notification (``pg_notify``, delivered at commit) that gateways LISTEN for, so they read
the counter only when told (and every 30 s in case a notification was missed); on SQLite they
poll it. Model versions are resolved
here, once, to their location in the platform's own artifact store: a gateway never loads a model
from anywhere else, and keeps serving what it has loaded when the control plane is down.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select, text, update
from sqlalchemy.orm import Session

from pave.config import Settings
from pave.errors import InvalidInput, NotFound
from pave.serving.deployments import Deployment, parse_deployments
from pave.store.db import make_engine
from pave.store.processes import GATEWAY, Heartbeat
from pave.store.tables import Counter, DeploymentRow, utcnow

log = logging.getLogger(__name__)
COUNTER = "deployments"
# One channel per schema: platforms sharing a database in different schemas do not wake each other.
_CHANNEL = "'pave_deployments_' || md5(current_schema())"
SAFETY_POLL = 30.0  # seconds: a gateway that listens still reads the counter this often
ARTIFACTS_SCHEME = "mlflow-artifacts:"


@dataclass(frozen=True)
class VersionRef:
    """A registered model version and where MLflow says its files are (mapped into the artifact
    store when a deployment is written: :func:`artifact_location`)."""

    model: str
    version: str
    uri: str


def registry_client(settings: Settings) -> Any:
    """An MLflow client on the platform's own tracking and registry store."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=settings.mlflow_db_url, registry_uri=settings.mlflow_db_url)


def resolve_version(
    settings: Settings, model: str, *, version: str | None = None, alias: str | None = None
) -> VersionRef:
    """Find ``model``'s version (by number or alias) and MLflow's download URI of its files.

    Raises:
        NotFound: no such model, version or alias.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=settings.mlflow_db_url, registry_uri=settings.mlflow_db_url)
    try:
        if alias:
            found = client.get_model_version_by_alias(model, alias)
        else:
            found = client.get_model_version(model, str(version))
        location = str(client.get_model_version_download_uri(model, str(found.version)))
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise NotFound(
            f"model {model!r} has no {what}", hint=f"`pave models {model}` lists its versions and aliases"
        ) from exc
    return VersionRef(model, str(found.version), location)


def artifact_location(settings: Settings, location: str) -> str:
    """Map a version's download URI into the artifact root; refuse anything outside it."""
    root = settings.artifacts
    if location.startswith(ARTIFACTS_SCHEME):
        relative = location.removeprefix(ARTIFACTS_SCHEME).lstrip("/")
        if "://" in root:  # an object store: the same key under the bucket
            return f"{root.rstrip('/')}/{relative}"
        base = Path(root).resolve()
        target = (base / relative).resolve()
        if target.is_relative_to(base):
            return str(target)
    elif "://" not in location:
        base = Path(root).resolve()
        target = Path(location).resolve()
        if target.is_relative_to(base):
            return str(target)
    elif "://" in root and location.startswith(root.rstrip("/") + "/"):
        return location
    raise InvalidInput(
        f"model files at {location} are outside the platform's artifact store",
        hint="deploy only versions registered through the platform (pave run, or MLflow against /mlflow)",
    )


def run_files(settings: Settings, run_id: str, paths: tuple[str, ...], folder: Path) -> Path:
    """Where the artifacts ``paths`` of run ``run_id`` are readable on this control plane: the run's
    artifact folder, or ``folder`` into which they are copied from the object store (a path the
    run lacks is left out). Only runs whose artifacts are in the platform's store are read.

    Raises:
        InvalidInput: the run's artifacts are outside the platform's artifact store.
    """
    from urllib.parse import unquote, urlsplit

    from mlflow.tracking import MlflowClient

    uri = settings.mlflow_db_url
    artifact_uri = str(MlflowClient(tracking_uri=uri, registry_uri=uri).get_run(run_id).info.artifact_uri)
    if artifact_uri.startswith("file://"):  # a run logged straight to the store (no server)
        root = unquote(urlsplit(artifact_uri).path)
    else:
        root = artifact_location(settings, artifact_uri)
    if "://" not in root:
        return Path(root)
    from pave.storage import ObjectMissing, open_storage

    storage = open_storage(settings.artifacts)
    prefix = root.removeprefix(settings.artifacts.rstrip("/")).strip("/")
    for path in paths:
        target = folder / path
        target.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(ObjectMissing):
            storage.download(f"{prefix}/{path}", target)
    return folder


def _refs(spec: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not spec:
        return []
    return [*spec.get("versions", []), *([spec["shadow"]] if spec.get("shadow") else [])]


def traffic_versions(spec: dict[str, Any] | None) -> set[str]:
    """The versions of a deployment spec that see production requests: weight above 0, or the shadow."""
    shadow = (spec or {}).get("shadow")
    return {str(ref["version"]) for ref in _refs(spec) if ref is shadow or float(ref.get("weight", 1.0)) > 0}


def _check_approvals(
    session: Session, settings: Settings, project: str, before: dict[str, Any] | None, after: dict[str, Any]
) -> None:
    """The one place a deployment change meets the approval policy (deploy, weights, rollouts)."""
    from mlflow import MlflowClient

    from pave.governance.approvals import check_traffic
    from pave.governance.policy import get_policy

    policy = get_policy(session, project)
    if not policy.require_approval:
        return
    client = MlflowClient(tracking_uri=settings.mlflow_db_url, registry_uri=settings.mlflow_db_url)
    check_traffic(client, project, traffic_versions(before), traffic_versions(after), require_approval=True)


def _bump(session: Session) -> None:
    changed = session.execute(update(Counter).where(Counter.name == COUNTER).values(value=Counter.value + 1))
    if getattr(changed, "rowcount", 0) == 0:
        session.add(Counter(name=COUNTER, value=1))
    session.flush()
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SELECT pg_notify({_CHANNEL}, '')"))  # sent when the transaction commits


def _ref(ref: VersionRef, weight: float) -> dict[str, Any]:
    return {"version": ref.version, "uri": ref.uri, "weight": weight}


def deploy(
    session: Session,
    settings: Settings,
    *,
    project: str,
    actor: str,
    version: str | None = None,
    alias: str | None = None,
    canary_version: str | None = None,
    canary_weight: float = 10.0,
    shadow_version: str | None = None,
    sticky: str | None = None,
    scale_to_zero_after: float | None = None,
) -> DeploymentRow:
    """Create or replace the deployment of ``project`` (named after it, serving its model).

    The primary version (``version`` or ``alias``, default alias ``champion``) takes all traffic,
    or ``100 - canary_weight`` percent when ``canary_version`` is given.
    """
    if version and alias:
        raise InvalidInput("give a version or an alias, not both", hint="--version 3, or --alias champion")
    if not 0 < canary_weight < 100:
        raise InvalidInput("the canary weight is a percentage between 0 and 100", hint="--canary-weight 10")
    if scale_to_zero_after is not None and scale_to_zero_after <= 0:
        raise InvalidInput("scale_to_zero_after must be a positive number of seconds")
    primary = resolve_version(
        settings, project, version=version, alias=None if version else alias or "champion"
    )
    versions = [_ref(primary, 100.0)]
    if canary_version is not None:
        canary = resolve_version(settings, project, version=canary_version)
        if canary.version == primary.version:
            raise InvalidInput(f"the canary is version {canary.version}, the same as the primary")
        versions = [_ref(primary, 100.0 - canary_weight), _ref(canary, canary_weight)]
    spec: dict[str, Any] = {"name": project, "versions": versions}
    if shadow_version is not None:
        shadow = resolve_version(settings, project, version=shadow_version)
        spec["shadow"] = {"version": shadow.version, "uri": shadow.uri}
    if sticky:
        spec["sticky"] = sticky
    if scale_to_zero_after is not None:
        spec["scale_to_zero_after"] = scale_to_zero_after
    row = session.scalar(select(DeploymentRow).where(DeploymentRow.name == project))
    if row is None:
        row = DeploymentRow(name=project, project=project, spec={}, created_by=actor, updated_by=actor)
    _write(session, settings, row, spec)
    row.updated_by = actor
    return row


def replace_spec(session: Session, settings: Settings, row: DeploymentRow, spec: dict[str, Any]) -> None:
    """Change a deployment's traffic (rollouts and the portal's weights do)."""
    _write(session, settings, row, spec)


def _write(session: Session, settings: Settings, row: DeploymentRow, spec: dict[str, Any]) -> None:
    """The one path of every deployment change: the approval policy for each version that would
    start taking traffic, the model files mapped into the artifact store (and refused outside it),
    the spec checked as the gateway will read it, then stored with the counter bumped."""
    _check_approvals(session, settings, row.project, row.spec or None, spec)
    stored = {ref["uri"] for ref in _refs(row.spec)}  # checked when they were written

    def located(ref: dict[str, Any]) -> dict[str, Any]:
        return ref if ref["uri"] in stored else {**ref, "uri": artifact_location(settings, ref["uri"])}

    spec = {**spec, "versions": [located(v) for v in spec["versions"]]}
    if spec.get("shadow"):
        spec["shadow"] = located(spec["shadow"])
    parse_deployments([spec], origin=f"deployment {row.name}")
    row.spec, row.updated_at = spec, utcnow()
    if row.id is None:
        session.add(row)
    _bump(session)


def undeploy(session: Session, project: str) -> None:
    row = session.scalar(select(DeploymentRow).where(DeploymentRow.name == project))
    if row is None:
        raise NotFound(f"project {project!r} has no deployment", hint="`pave deployments` lists them")
    session.delete(row)
    _bump(session)


def get_deployment(session: Session, project: str) -> DeploymentRow:
    row = session.scalar(select(DeploymentRow).where(DeploymentRow.name == project))
    if row is None:
        raise NotFound(f"project {project!r} has no deployment", hint=f"`pave deploy {project}`")
    return row


def list_deployments(session: Session) -> list[DeploymentRow]:
    return list(session.scalars(select(DeploymentRow).order_by(DeploymentRow.name)))


def count_deployments(session: Session, project: str) -> int:
    return len(list(session.scalars(select(DeploymentRow.id).where(DeploymentRow.project == project))))


class StoreDeployments:
    """The gateway's DeploymentSource over Pave's store (a counter poll, then one read).

    It also registers the gateway in the store (``platform_processes``, at its advertised URL) with
    the models it has loaded, so `pave status` and `pave deploy` know where it answers.
    """

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.engine = engine or make_engine(settings.db_url, pool_size=1)
        self._heartbeat = Heartbeat(GATEWAY, settings.gateway_advertised_url)
        self._changed = threading.Event()
        self._closed = threading.Event()
        self._listener: threading.Thread | None = None
        self.listening = False  # a LISTEN connection is open: the counter is read only when told
        self._cached = 0
        self._read_at = float("-inf")

    def version(self) -> int:
        if self.engine.dialect.name == "postgresql" and self._listener is None:
            self._listener = threading.Thread(
                target=self._listen, name="pave-deployments-listen", daemon=True
            )
            self._listener.start()
        fresh = time.monotonic() - self._read_at < SAFETY_POLL
        if self.listening and fresh and not self._changed.is_set():
            return self._cached
        self._changed.clear()  # before the read: a notification during it triggers another
        with Session(self.engine) as session:
            value = session.scalar(select(Counter.value).where(Counter.name == COUNTER))
        self._cached, self._read_at = int(value or 0), time.monotonic()
        return self._cached

    def close(self) -> None:
        self._closed.set()

    def _listen(self) -> None:
        """LISTEN on the deployments channel; reconnect after a second when the connection drops."""
        import psycopg

        conninfo = self.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        while not self._closed.is_set():
            try:
                with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
                    row = conn.execute(f"SELECT {_CHANNEL}").fetchone()
                    conn.execute(f'LISTEN "{row[0] if row else ""}"')
                    self._changed.set()  # whatever changed while nobody listened
                    self.listening = True
                    while not self._closed.is_set():
                        for _ in conn.notifies(timeout=5.0):
                            self._changed.set()
                        conn.execute("SELECT 1")  # a dead connection raises here, not in silence
            except Exception as exc:
                if self.listening:
                    log.warning("gateway: lost the deployments channel (%s); polling", type(exc).__name__)
            self.listening = False
            self._closed.wait(1.0)

    def heartbeat_due(self) -> bool:
        return self._heartbeat.due()

    def heartbeat(self, info: dict[str, Any]) -> None:
        """Write the gateway's row (blocking: call it from a thread)."""
        with Session(self.engine) as session, session.begin():
            self._heartbeat.beat(session, info, force=True)

    def deployments(self) -> list[Deployment]:
        with Session(self.engine) as session:
            specs = [row.spec for row in session.scalars(select(DeploymentRow).order_by(DeploymentRow.name))]
        return parse_deployments(specs, origin="the deployments table")
