"""Train on data change: ``retrain: {on: [data_change]}``.

Every ``source_check_interval`` seconds (default 60) the control plane fingerprints the sources of
each project whose recorded ``pave.yaml`` asks for it (:func:`pave.data.remote.fingerprint`: ETag
or Last-Modified + size for ``s3://`` and ``https://`` objects, a checksum of the rows for a SQL
query) and compares them with the fingerprints its last finished run recorded (MLflow tags
``pave.fingerprint.<source>``, reproductions left out). A difference queues one turn of the loop
(trigger ``data_change``), whose ``history`` names the sources that changed and the fingerprints
it was started for; the same fingerprints never start a second turn (a retrain that failed is not
retried in a loop: the next change, or a manual ``pave retrain``, starts the next one).

What the control plane checks, and what it does not:

- only sources it can reach on its own: project files are never read (their fingerprint changes
  with the next ``pave run`` anyway), nor is any folder on any host, and no user code runs;
- ``https://`` hosts and SQL database hosts go through the egress policy (public addresses, or
  ``egress_allowed_networks``); ``s3://`` uses the control plane's own ``AWS_*`` settings;
- a SQL URL's ``${VAR}`` is expanded only for the variables listed in ``source_env``; the query runs
  in a read-only transaction with a statement timeout, on PostgreSQL only;
- a source it cannot check is skipped (logged, once per problem), never a reason to retrain.

Fingerprints are computed on a small thread pool, so a slow query never holds up the rollouts and
alerts of the loop's one-second tick: :func:`check` starts an observation when one is due and acts on
it at a later tick, once it is done.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.data.remote import Guard, fingerprint
from pave.data.sources import SourceSpec
from pave.errors import Conflict, PaveError
from pave.governance.audit import AuditEntry
from pave.store.tables import LoopRunRow, LoopSourceRow
from pave.tracking.lineage import TAG_FINGERPRINT_PREFIX, TAG_REPRODUCES

log = logging.getLogger("pave.loop")

DATA_CHANGE = "data_change"
_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="pave-fingerprints")


@dataclass
class Observation:
    """One check of a project's sources: what they are now, and what its last run read."""

    current: dict[str, str] = field(default_factory=dict)
    recorded: dict[str, str] = field(default_factory=dict)
    run_id: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it was not checked

    @property
    def changed(self) -> list[str]:
        return sorted(name for name, tag in self.current.items() if self.recorded.get(name) != tag)


@dataclass
class _Watch:
    due: datetime | None = None
    pending: Future[Observation] | None = None
    problems: set[str] = field(default_factory=set)


_watches: dict[str, _Watch] = {}


def source_environment(settings: Settings) -> dict[str, str]:
    """The environment a retrain job gets for its data sources: the control plane's variables
    that ``source_env`` lists (e.g. ``WAREHOUSE_URL``, or ``AWS_*`` for ``s3://`` sources), and
    no other. Without them a retrain of a project whose sources are not project files fails."""
    return {name: os.environ[name] for name in settings.source_env if name in os.environ}


def watches_data(spec: dict[str, Any]) -> bool:
    """Whether a recorded ``pave.yaml`` asks to retrain on data change."""
    retrain = spec.get("retrain")
    if not isinstance(retrain, dict):
        return False
    on = retrain.get("on", retrain.get(True))
    return isinstance(on, list) and DATA_CHANGE in on


def sources_of(spec: dict[str, Any]) -> dict[str, SourceSpec]:
    """The sources of a recorded spec that the control plane can fingerprint (not project files)."""
    found: dict[str, SourceSpec] = {}
    for name, raw in ((spec.get("data") or {}).get("sources") or {}).items():
        try:
            source = SourceSpec.model_validate(raw)
        except ValueError:
            continue
        if source.kind != "file":
            found[name] = source
    return found


def observe(project: str, spec: dict[str, Any], settings: Settings) -> Observation:
    """Fingerprint the project's sources now and read its last run's (blocking; never raises for a
    source it cannot check: that one lands in ``skipped``)."""
    from pave.governance.egress import EgressPolicy

    own = [urlsplit(settings.artifacts).hostname or ""] if settings.artifacts.startswith("s3://") else []
    guard = Guard(
        EgressPolicy(allowed_networks=tuple(settings.egress_allowed_networks)), settings.source_env, own
    )
    seen = Observation()
    for name, source in sources_of(spec).items():
        try:
            seen.current[name] = fingerprint(name, source, guard=guard)
        except PaveError as exc:
            seen.skipped[name] = exc.message
    seen.run_id, seen.recorded = last_fingerprints(project, settings.mlflow_db_url)
    return seen


def last_fingerprints(project: str, tracking_uri: str) -> tuple[str | None, dict[str, str]]:
    """The id and fingerprints of the project's latest finished run (reproductions left out)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(project)
    if experiment is None:
        return None, {}
    found = client.search_runs(
        [experiment.experiment_id],
        filter_string="attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=20,
    )
    for run in found:
        tags = run.data.tags
        if TAG_REPRODUCES in tags:
            continue
        return run.info.run_id, {
            k.removeprefix(TAG_FINGERPRINT_PREFIX): v
            for k, v in tags.items()
            if k.startswith(TAG_FINGERPRINT_PREFIX)
        }
    return None, {}


def check(
    sessions: sessionmaker[Session], settings: Settings, now: datetime, audits: list[AuditEntry]
) -> None:
    """The loop's data-change trigger: start due observations, act on finished ones."""
    with sessions() as session:
        watched = {
            row.project: dict(row.spec)
            for row in session.scalars(select(LoopSourceRow))
            if watches_data(row.spec)
        }
    for project in set(_watches) - set(watched):
        _watches.pop(project, None)
    for project, spec in watched.items():
        watch = _watches.setdefault(project, _Watch())
        if watch.pending is None:
            if watch.due is None or now >= watch.due:
                watch.due = now + timedelta(seconds=settings.source_check_interval)
                watch.pending = _pool.submit(observe, project, spec, settings)
            continue
        if not watch.pending.done():
            continue
        future, watch.pending = watch.pending, None
        try:
            seen = future.result()
        except Exception:
            log.exception("checking the sources of %s failed", project)
            continue
        _report(project, watch, seen)
        if seen.changed:
            _decide(sessions, project, seen, audits)


def settle(timeout: float = 120.0) -> None:
    """Wait for the observations in flight (tests; a control plane that stops)."""
    wait([w.pending for w in _watches.values() if w.pending is not None], timeout=timeout)


def _report(project: str, watch: _Watch, seen: Observation) -> None:
    problems = {f"{name}: {why}" for name, why in seen.skipped.items()}
    for problem in sorted(problems - watch.problems):
        log.warning("data_change of %s: source %s (not checked)", project, problem)
    watch.problems = problems


def _decide(
    sessions: sessionmaker[Session], project: str, seen: Observation, audits: list[AuditEntry]
) -> None:
    from pave.automation import loop

    with sessions.begin() as session:
        last = session.scalar(
            select(LoopRunRow)
            .where(LoopRunRow.project == project, LoopRunRow.trigger == DATA_CHANGE)
            .order_by(LoopRunRow.id.desc())
            .limit(1)
        )
        started = _started_for(last) if last is not None else None
        if started is not None and all(started.get(n) == seen.current[n] for n in seen.changed):
            return  # that change has had its turn (whatever its outcome)
        try:
            row = loop.trigger(
                session, project, trigger=DATA_CHANGE, actor=f"data change ({', '.join(seen.changed)})"
            )
        except Conflict:
            return  # a turn is in flight: looked at again at the next check
        except PaveError as exc:
            log.info("data_change of %s: no turn: %s", project, exc.message)
            return
        row.history = [
            *row.history,
            {
                "at": row.history[-1]["at"],
                "event": "data_changed",
                "sources": seen.changed,
                "fingerprints": seen.current,
                "recorded": {k: seen.recorded.get(k) for k in seen.changed},
                "since_run": seen.run_id,
            },
        ]
        audits.append(
            loop._audit(row, "retrain", "deploy", f"loop run {row.id} queued by {row.triggered_by}")
        )


def _started_for(row: LoopRunRow) -> dict[str, str] | None:
    for event in row.history:
        if event.get("event") == "data_changed":
            return dict(event.get("fingerprints") or {})
    return None
