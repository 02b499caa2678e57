"""The control plane's monitoring tick: index the inference log, run the monitors that are due,
open or resolve alerts, deliver notifications.

:func:`tick` is called from the control plane's background loop about every second; it does real
work only when something is due (each project's ``monitor.schedule``; deliveries' back-off). Every
step is guarded: a broken project spec, an unreadable log file or a dead webhook is logged and
skipped, never raised into the loop.

Where a project's monitors come from: ``pave run`` logs the validated ``pave.yaml`` with every run
(artifact ``pave/spec.json``) and the training profile (``data/profile.json``, tag
``pave.profile`` on the version). The monitors of a deployment are those of the version taking
most of its traffic (:class:`RegistrySpecs`), so changing ``monitor:`` takes effect with the next
version deployed.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.governance.egress import EgressPolicy
from pave.monitoring.alerts import Verdict, apply_verdicts
from pave.monitoring.attributions import evaluate_attribution_drift
from pave.monitoring.fairness import evaluate_fairness
from pave.monitoring.ingest import ingest
from pave.monitoring.monitors import evaluate_drift, evaluate_performance, evaluate_prediction_drift
from pave.monitoring.retention import prune
from pave.monitoring.sinks import deliver_pending
from pave.monitoring.spec import MonitorDef, MonitorSpec
from pave.serving.shipping import prune_segments, ships
from pave.store.tables import DeploymentRow, MonitorStateRow

log = logging.getLogger(__name__)
SPEC_ARTIFACT = "pave/spec.json"  # written by pave.pipelines.project with every run
PROFILE_ARTIFACT = "data/profile.json"
IMPORTANCES_ARTIFACT = "explain/importances.json"  # pave.serving.attributions
RETRY_SECONDS = 60.0  # a version without a readable spec is looked at again after this
PRUNE_EVERY = timedelta(hours=1)  # how often the retention is applied


@dataclass(frozen=True)
class Monitoring:
    """What the monitors of one deployment need: the spec's ``monitor:`` section and the profile."""

    spec: MonitorSpec
    profile: Mapping[str, Any]
    version: str  # the model version they come from (the primary one)
    importances: Mapping[str, Any] | None = None  # the run's global importances (attribution drift)


class SpecSource(Protocol):
    """Finds the monitoring setup of a deployment (None: nothing to monitor)."""

    def get(self, deployment: DeploymentRow, version: str) -> Monitoring | None: ...


def primary_version(spec: Mapping[str, Any]) -> str | None:
    """The version taking the largest share of a deployment's traffic."""
    versions = [v for v in spec.get("versions") or [] if isinstance(v, dict)]
    if not versions:
        return None
    return str(max(versions, key=lambda v: float(v.get("weight", 0)))["version"])


class RegistrySpecs:
    """Reads ``pave/spec.json`` and ``data/profile.json`` of the run behind a model version (cached)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cache: dict[tuple[str, str], tuple[Monitoring | None, float]] = {}
        self._lock = threading.Lock()

    def get(self, deployment: DeploymentRow, version: str) -> Monitoring | None:
        key = (deployment.project, version)
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and (cached[0] is not None or time.monotonic() < cached[1]):
                return cached[0]
        try:
            found = self._load(deployment.project, version)
        except Exception as exc:  # retried after RETRY_SECONDS, not on every tick
            log.warning("monitoring: no spec for %s version %s: %s", deployment.project, version, exc)
            found = None
        with self._lock:
            self._cache[key] = (found, time.monotonic() + RETRY_SECONDS)
        return found

    def _load(self, model: str, version: str) -> Monitoring | None:
        from mlflow.tracking import MlflowClient

        from pave.serving.store import run_files

        uri = self.settings.mlflow_db_url
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        run_id = client.get_model_version(model, version).run_id
        if not run_id:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            root = run_files(
                self.settings, run_id, (SPEC_ARTIFACT, PROFILE_ARTIFACT, IMPORTANCES_ARTIFACT), Path(tmp)
            )
            return self._read(root, version)

    @staticmethod
    def _read(root: Path, version: str) -> Monitoring:
        spec_doc = json.loads((root / SPEC_ARTIFACT).read_text())
        profile_path = root / PROFILE_ARTIFACT
        profile = json.loads(profile_path.read_text()) if profile_path.is_file() else {}
        spec = MonitorSpec.model_validate(spec_doc.get("monitor") or {})
        fair = spec_doc.get("fairness") or {}
        for monitor in spec.monitors:  # a fairness monitor's defaults: the project's fairness section
            if monitor.type == "fairness" and monitor.features == "all":
                monitor.features = list(fair.get("sensitive_features") or [])
            if monitor.type == "fairness" and monitor.positive_label is None:
                monitor.positive_label = fair.get("positive_label")
        importances_path = root / IMPORTANCES_ARTIFACT
        importances = json.loads(importances_path.read_text()) if importances_path.is_file() else None
        return Monitoring(spec, profile, version, importances)


class Scheduler:
    """The monitoring state of one control plane: where specs come from, where alerts go."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        settings: Settings,
        *,
        specs: SpecSource | None = None,
        egress: EgressPolicy | None = None,
        log_directory: Path | None = None,
        delivery_timeout: float = 5.0,
        base_delay: float = 5.0,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self.specs = specs or RegistrySpecs(settings)
        self.egress = egress or EgressPolicy(allowed_networks=tuple(settings.egress_allowed_networks))
        self.log_dir = log_directory or settings.inference_log_dir
        self.delivery_timeout = delivery_timeout
        self.base_delay = base_delay
        self._pruned_at: datetime | None = None

    def tick(self, now: datetime | None = None, *, force: bool = False) -> None:
        """One pass; ``force`` runs every monitor whatever its schedule. Never raises."""
        now = now or datetime.now(UTC)
        try:
            ingest(self.sessions, self.log_dir)
        except Exception:
            log.exception("monitoring: indexing the inference log failed")
        if self._pruned_at is None or now - self._pruned_at >= PRUNE_EVERY:
            self._pruned_at = now
            try:
                prune(
                    self.sessions,
                    self.log_dir,
                    retention_days=self.settings.inference_retention_days,
                    now=now,
                )
                if ships(self.settings):  # the shipped files in the object store, and their rows
                    prune_segments(
                        self.sessions,
                        self.settings,
                        now - timedelta(days=self.settings.inference_retention_days),
                    )
            except Exception:
                log.exception("monitoring: applying the retention failed")
        try:
            with self.sessions() as session:
                deployments = list(session.scalars(select(DeploymentRow)))
                session.expunge_all()
        except Exception:
            log.exception("monitoring: listing deployments failed")
            deployments = []
        for deployment in deployments:
            try:
                self.evaluate_deployment(deployment, now, force=force)
            except Exception:  # one broken project must not stop the others, nor the loop
                log.exception("monitoring: evaluating deployment %s failed", deployment.name)
        try:
            deliver_pending(
                self.sessions, self.egress, now, timeout=self.delivery_timeout, base_delay=self.base_delay
            )
        except Exception:
            log.exception("monitoring: delivering alerts failed")

    def evaluate_deployment(self, deployment: DeploymentRow, now: datetime, *, force: bool = False) -> None:
        version = primary_version(deployment.spec)
        if version is None:
            return
        monitoring = self.specs.get(deployment, version)
        if monitoring is None or not monitoring.spec.monitors:
            return
        for monitor in monitoring.spec.monitors:
            try:
                self._run_monitor(deployment, version, monitoring, monitor, now, force)
            except Exception:
                log.exception("monitoring: monitor %s of %s failed", monitor.name, deployment.project)

    def _run_monitor(
        self,
        deployment: DeploymentRow,
        version: str,
        monitoring: Monitoring,
        monitor: MonitorDef,
        now: datetime,
        force: bool,
    ) -> None:
        project = deployment.project
        with self.sessions() as session:
            state = session.scalar(
                select(MonitorStateRow).where(
                    MonitorStateRow.project == project, MonitorStateRow.monitor == monitor.name
                )
            )
            last = state.last_run_at if state is not None else None
            baseline = state.baseline if state is not None else None
        if not force and last is not None and now - last < timedelta(seconds=monitoring.spec.schedule):
            return
        verdicts: list[Verdict]
        if monitor.type == "drift":
            verdicts, summary = evaluate_drift(
                self.log_dir, deployment.name, monitor, monitoring.profile, now
            )
        elif monitor.type == "prediction_drift":
            verdicts, summary, baseline = evaluate_prediction_drift(
                self.log_dir, deployment.name, version, monitor, baseline, now
            )
        elif monitor.type == "attribution_drift":
            uri = next(
                (
                    str(v["uri"])
                    for v in deployment.spec.get("versions", [])
                    if str(v.get("version")) == version
                ),
                None,
            )
            verdicts, summary = evaluate_attribution_drift(
                self.settings,
                self.log_dir,
                deployment.name,
                version,
                uri,
                monitor,
                monitoring.importances,
                now,
            )
        elif monitor.type == "fairness":
            verdicts, summary = evaluate_fairness(
                self.sessions, self.log_dir, deployment.name, version, monitor, now
            )
        else:
            verdicts, summary = evaluate_performance(
                self.settings, self.sessions, deployment.name, version, monitor, now
            )
        summary = {
            **summary,
            "at": now.isoformat(),
            "version": version,
            "type": monitor.type,
            "verdicts": [{"subject": v.subject, "firing": v.firing, **v.details} for v in verdicts],
        }
        with self.sessions() as session, session.begin():
            state = session.scalar(
                select(MonitorStateRow).where(
                    MonitorStateRow.project == project, MonitorStateRow.monitor == monitor.name
                )
            )
            if state is None:
                state = MonitorStateRow(project=project, monitor=monitor.name)
                session.add(state)
            state.last_run_at, state.last_result, state.baseline = now, summary, baseline
            apply_verdicts(
                session,
                project=project,
                deployment=deployment.name,
                monitor=monitor.name,
                severity=monitor.severity,
                verdicts=verdicts,
                sinks=monitoring.spec.sinks,
                now=now,
            )


_SCHEDULERS: dict[int, Scheduler] = {}
_SCHEDULERS_LOCK = threading.Lock()


def tick(sessions: sessionmaker[Session], settings: Settings) -> None:
    """The background loop's entry point: one :class:`Scheduler` per store, then :meth:`Scheduler.tick`."""
    with _SCHEDULERS_LOCK:
        scheduler = _SCHEDULERS.get(id(sessions))
        if scheduler is None:
            scheduler = _SCHEDULERS[id(sessions)] = Scheduler(sessions, settings)
    scheduler.tick()


_SPECS: dict[str, RegistrySpecs] = {}


def monitoring_of(settings: Settings, deployment: DeploymentRow) -> Monitoring | None:
    """The monitoring setup of a deployment's primary version, for the API (cached per store)."""
    version = primary_version(deployment.spec)
    if version is None:
        return None
    with _SCHEDULERS_LOCK:
        specs = _SPECS.setdefault(settings.mlflow_db_url, RegistrySpecs(settings))
    return specs.get(deployment, version)
