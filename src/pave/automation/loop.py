"""The closed loop: an alert or a schedule -> a retrain job -> gates -> progressive rollout -> outcome.

A project takes part once its last ``pave run`` recorded its run (:mod:`pave.automation.sources`)
and its ``pave.yaml`` has a ``retrain:`` section. Then a turn of the loop starts

- by hand (``pave retrain PROJECT``, ``POST /api/v1/projects/{p}/retrain``);
- on the ``retrain.schedule`` cron expression;
- on an open alert of the project when its ``monitor.on_alert`` is ``retrain`` (one turn per
  alert: an alert opened before the project's latest turn started is taken as handled by it);
- on a change of its data sources with ``retrain: {on: [data_change]}`` (:mod:`pave.automation.triggers`).

Each turn is a :class:`~pave.store.tables.LoopRunRow` that :func:`tick` (called by the control
plane about every second) moves along::

    queued -> starting -> training --gates pass--> rolling_out -> promoted | rolled_back
                              |--gates fail--> gates_failed
                              |--the same model as a version's--> unchanged
                              |--no deployment--> registered
                              '--error, timeout--> failed

``training`` is a job (:mod:`pave.automation.jobs`): ``pave run --from-run RUN_ID`` restores the
recorded run's code snapshot and data versions into a fresh folder and runs there, outside the
control plane, authenticated by a service token scoped to the project (developer role) that is
revoked when the job ends. Its output lands in ``$PAVE_HOME/loop/<id>/``. A control plane that
restarts finds the job again by what the turn recorded and reads its output when it ends. The
turn's ``active`` column holds the project's name until the turn ends; a unique constraint on it
keeps two turns of one project from ever running at once. Rolling out is
:mod:`pave.serving.rollouts`, whose guards promote the new version or roll it back on their own.
"""

from __future__ import annotations

import contextlib
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pave.automation import jobs
from pave.automation.cron import parse_cron
from pave.automation.sources import describe_source, get_source, record_source, retrain_of, retrain_spec
from pave.automation.triggers import source_environment
from pave.config import Settings
from pave.errors import Conflict, PaveError
from pave.governance.audit import AuditEntry, append
from pave.pipelines.spec import RetrainSpec
from pave.store.tables import AlertRow, DeploymentRow, LoopRunRow, LoopSourceRow, RolloutRow, Token, utcnow

log = logging.getLogger("pave.loop")

SERVICE_IDENTITY = "pave-automation"
ACTIVE = ("queued", "starting", "training", "rolling_out")
__all__ = ["describe_source", "get_source", "record_source", "retrain_spec", "tick", "trigger"]
_starting: set[int] = set()  # turns whose job this control plane is starting


def _event(kind: str, **details: Any) -> dict[str, Any]:
    return {"at": utcnow().isoformat(), "event": kind, **details}


def _note(row: LoopRunRow, kind: str, **details: Any) -> None:
    row.history = [*row.history, _event(kind, **details)]
    row.updated_at = utcnow()


# --- triggers --------------------------------------------------------------------------------------


def trigger(
    session: Session, project: str, *, trigger: str, actor: str, alert_id: int | None = None
) -> LoopRunRow:
    """Queue a turn of the loop for ``project`` (the control plane's next tick starts it).

    Raises:
        NotFound: no recorded run.
        InvalidInput: the spec has no ``retrain`` section.
        Conflict: a turn of this project is still in flight.
    """
    retrain_spec(get_source(session, project))
    running = session.scalar(select(LoopRunRow).where(LoopRunRow.active == project))
    if running is not None:
        raise Conflict(
            f"{project} is already retraining (loop run {running.id}, {running.state})",
            hint=f"follow it with `pave loop {project}`",
        )
    row = LoopRunRow(
        project=project,
        active=project,
        trigger=trigger,
        alert_id=alert_id,
        triggered_by=actor,
        state="queued",
        gates=[],
        history=[_event("triggered", trigger=trigger, by=actor, **({"alert": alert_id} if alert_id else {}))],
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        raise Conflict(
            f"{project} is already retraining", hint=f"follow it with `pave loop {project}`"
        ) from None
    return row


def runs(session: Session, project: str, limit: int = 50) -> list[LoopRunRow]:
    query = select(LoopRunRow).where(LoopRunRow.project == project).order_by(LoopRunRow.id.desc())
    return list(session.scalars(query.limit(limit)))


def describe(row: LoopRunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "project": row.project,
        "trigger": row.trigger,
        "alert_id": row.alert_id,
        "triggered_by": row.triggered_by,
        "state": row.state,
        "run_id": row.run_id,
        "model_version": row.model_version,
        "gates": row.gates,
        "rollout_id": row.rollout_id,
        "outcome": row.outcome,
        "error": row.error,
        "history": row.history,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
    }


# --- the control plane's tick ----------------------------------------------------------------------


def tick(sessions: sessionmaker[Session], settings: Settings, now: datetime | None = None) -> None:
    """Start due turns (schedule, alerts) and move every turn in flight one step; never raises."""
    now = now or datetime.now(UTC)
    audits: list[AuditEntry] = []
    for step in (_schedule, _alerts):
        try:
            step(sessions, now, audits)
        except Exception:  # one broken trigger must not stop the loop
            log.exception("the loop's %s check failed", step.__name__.strip("_"))
    try:  # retrain: {on: [data_change]} (its own module: pave.automation.triggers)
        from pave.automation import triggers

        triggers.check(sessions, settings, now, audits)
    except Exception:
        log.exception("the loop's data_change check failed")
    try:  # batch jobs started through the API: their tokens end with them
        from pave.automation import batch_jobs

        with sessions() as session:
            batch_jobs.finish_ended(session, settings)
    except Exception:
        log.exception("revoking the tokens of ended batch jobs failed")
    with sessions() as session:
        active = list(session.scalars(select(LoopRunRow.id).where(LoopRunRow.active.is_not(None))))
    for run_id in active:
        try:
            _advance(sessions, settings, run_id, now, audits)
        except Exception as exc:
            log.exception("loop run %s failed", run_id)
            with contextlib.suppress(Exception), sessions.begin() as session:
                row = session.get(LoopRunRow, run_id)
                if row is not None and row.active is not None:
                    _finish(session, row, "failed", error=f"{type(exc).__name__}: {exc}")
    for entry in audits:  # after the commits: the audit chain takes its own write lock
        try:
            append(sessions.kw["bind"], entry)
        except Exception:
            log.exception("auditing %s failed", entry.path)


def _audit(row: LoopRunRow, what: str, action: str, detail: str) -> AuditEntry:
    """The platform's own mutations are audited like anyone's (identity ``pave-automation``)."""
    return AuditEntry(
        method="POST",
        path=f"/api/v1/projects/{row.project}/{what}",
        status=200,
        request_id=f"loop-{row.id}-{what}",
        action=action,
        identity=SERVICE_IDENTITY,
        project=row.project,
        run_id=row.run_id,
        detail=detail[:500],
    )


def _schedule(sessions: sessionmaker[Session], now: datetime, audits: list[AuditEntry]) -> None:
    with sessions.begin() as session:
        due = session.scalars(select(LoopSourceRow).where(LoopSourceRow.next_retrain_at <= now))
        for source in list(due):
            schedule = retrain_of(source.spec).schedule if source.spec.get("retrain") is not None else None
            source.next_retrain_at = parse_cron(schedule).next_after(now) if schedule else None
            try:
                row = trigger(session, source.project, trigger="schedule", actor=f"schedule {schedule}")
                audits.append(
                    _audit(row, "retrain", "deploy", f"loop run {row.id} queued by schedule {schedule}")
                )
            except Conflict:
                log.info("scheduled retrain of %s skipped: one is in flight", source.project)


def _alerts(sessions: sessionmaker[Session], now: datetime, audits: list[AuditEntry]) -> None:
    with sessions.begin() as session:
        cooldowns = {
            source.project: timedelta(seconds=retrain_of(source.spec).cooldown)
            for source in session.scalars(select(LoopSourceRow))
            if source.spec.get("retrain") is not None
            and (source.spec.get("monitor") or {}).get("on_alert") == "retrain"
        }
        if not cooldowns:
            return
        query = (
            select(AlertRow)
            .where(AlertRow.status == "open", AlertRow.project.in_(list(cooldowns)))
            .order_by(AlertRow.opened_at)
        )
        for alert in list(session.scalars(query)):
            if session.scalar(select(LoopRunRow.id).where(LoopRunRow.active == alert.project)) is not None:
                continue
            latest = session.execute(
                select(LoopRunRow.created_at, LoopRunRow.finished_at)
                .where(LoopRunRow.project == alert.project)
                .order_by(LoopRunRow.id.desc())
                .limit(1)
            ).first()
            if latest is not None and latest.created_at >= alert.opened_at:
                continue  # this alert was open when the latest turn started: handled
            if (
                latest is not None
                and now < (latest.finished_at or latest.created_at) + cooldowns[alert.project]
            ):
                continue  # cooling down: the alert stays open and is taken up when the time is over
            row = trigger(
                session,
                alert.project,
                trigger="alert",
                actor=f"alert {alert.id} ({alert.kind} on {alert.subject})",
                alert_id=alert.id,
            )
            audits.append(_audit(row, "retrain", "deploy", f"loop run {row.id} queued by {row.triggered_by}"))


def _advance(
    sessions: sessionmaker[Session], settings: Settings, run_id: int, now: datetime, audits: list[AuditEntry]
) -> None:
    with sessions.begin() as session:
        row = session.get(LoopRunRow, run_id)
        if row is None or row.active is None:
            return
        state = row.state
        if state == "starting" and run_id not in _starting:
            _finish(session, row, "failed", error="the control plane stopped while it started the retrain")
            return
        if state == "rolling_out":
            _watch_rollout(session, row)
            return
        if state == "training":
            _watch_training(session, settings, row, now, audits)
            return
        if state != "queued":
            return
        source = get_source(session, row.project)
        spec = retrain_spec(source)
        if source.run_id is None:
            _finish(
                session,
                row,
                "failed",
                error=f"{row.project} was recorded by folder, before code snapshots: no run to retrain from",
            )
            return
        secret = _service_token(session, row, spec)
        row.state = "starting"
        _starting.add(run_id)
        job = _job(settings, row, source.run_id, spec, secret)
    try:
        handle = jobs.executor(settings).start(job)
    except (OSError, PaveError) as exc:
        _starting.discard(run_id)
        with sessions.begin() as session:
            row = session.get(LoopRunRow, run_id)
            if row is not None:
                _finish(session, row, "failed", error=f"could not start the retrain job: {exc}")
        return
    with sessions.begin() as session:
        row = session.get(LoopRunRow, run_id)
        if row is not None:
            row.state, row.pid = "training", handle.pid
            _note(row, "training", job=handle.to_dict(), run=job.args[2], overrides=spec.set)
    _starting.discard(run_id)


def _service_token(session: Session, row: LoopRunRow, spec: RetrainSpec) -> str:
    """A token for the job alone: the project's, developer role, expiring soon after its timeout."""
    from pave.governance.tokens import create_token

    token, secret = create_token(
        session,
        identity=SERVICE_IDENTITY,
        name=f"retrain {row.project} (loop run {row.id})",
        role="developer",
        project=row.project,
        lifetime=timedelta(seconds=spec.timeout + 600),
        kind="service",
    )
    row.token_id = token.id
    return secret


def _override(value: Any) -> str:
    if isinstance(value, float):
        text = repr(value)
        mantissa, e, exponent = text.partition("e")
        return f"{mantissa}.0e{exponent}" if e and "." not in mantissa else text  # YAML needs the dot
    return value if isinstance(value, str) else json.dumps(value)


def work_dir(settings: Settings, run_id: int) -> Path:
    """Where the control plane keeps a turn's job output (the job itself never sees this folder)."""
    return settings.home / "loop" / str(run_id)


def _job(settings: Settings, row: LoopRunRow, source_run: str, spec: RetrainSpec, secret: str) -> jobs.Job:
    """``pave run --from-run RUN_ID FOLDER/project --json --set ...``: the recorded run, again."""
    sets = [arg for key, value in spec.set.items() for arg in ("--set", f"{key}={_override(value)}")]
    work = work_dir(settings, row.id)
    return jobs.Job(
        key=f"loop-{row.id}",
        project=row.project,
        args=("run", "--from-run", source_run, "{folder}/project", "--json", *sets),
        url=settings.url,
        token=secret,
        stdout=work / "run.json",
        stderr=work / "run.log",
        env=source_environment(settings),  # what its s3:// and SQL sources need (source_env, opt-in)
    )


def _handle(row: LoopRunRow) -> jobs.Handle | None:
    started = next((e for e in reversed(row.history) if e["event"] == "training"), None)
    if started is not None and isinstance(started.get("job"), dict):
        return jobs.Handle.from_dict(started["job"])
    return None


def _watch_training(
    session: Session, settings: Settings, row: LoopRunRow, now: datetime, audits: list[AuditEntry]
) -> None:
    source = get_source(session, row.project)
    handle = _handle(row)
    executor = jobs.executor(settings, handle.executor if handle else None)
    if handle is not None and executor.running(handle):
        started = next((e["at"] for e in reversed(row.history) if e["event"] == "training"), None)
        timeout = retrain_spec(source).timeout
        if started and (now - datetime.fromisoformat(started)).total_seconds() > timeout:
            executor.stop(handle)
            executor.cleanup(handle)
            _finish(
                session,
                row,
                "failed",
                error=f"the retrain took more than retrain.timeout={timeout}s: stopped",
            )
        return
    if handle is not None:
        executor.cleanup(handle)
    _revoke(session, row)
    work = work_dir(settings, row.id)
    result = _read_result(work / "run.json")
    if result is None:
        _finish(session, row, "failed", error=_error_lines(work / "run.log"))
        return
    row.run_id = str(result.get("run_id") or "") or None
    row.model_version = result.get("model_version")
    row.gates = list(result.get("gates") or [])
    _note(row, "trained", run_id=row.run_id, version=row.model_version, metrics=result.get("metrics"))
    if result.get("reused"):
        _finish(
            session,
            row,
            "unchanged",
            outcome=f"nothing changed since version {row.model_version}: nothing new to roll out",
        )
        return
    if not result.get("gates_passed"):
        failed = [g for g in row.gates if not g.get("passed") and not g.get("skipped")]
        names = ", ".join(f"{g.get('metric')} {g.get('rule', '')}".strip() for g in failed)
        _finish(session, row, "gates_failed", outcome=f"gates failed ({names}): version not rolled out")
        return
    _start_rollout(session, settings, row, retrain_spec(source), audits)


def _read_result(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and "run_id" in doc else None


def _error_lines(path: Path) -> str:
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "pave run ended without output"
    picked = [line for line in lines if line.startswith(("error:", "hint:", "internal error:"))]
    return "\n".join(picked or lines[-10:] or ["pave run ended without output"])[-2000:]


def _start_rollout(
    session: Session, settings: Settings, row: LoopRunRow, spec: RetrainSpec, audits: list[AuditEntry]
) -> None:
    from pave.serving import rollouts

    project, version = row.project, str(row.model_version)
    if session.scalar(select(DeploymentRow.id).where(DeploymentRow.name == project)) is None:
        _finish(
            session,
            row,
            "registered",
            outcome=(
                f"version {version} registered (alias candidate); {project} has no deployment to roll out to"
            ),
        )
        return
    try:
        with session.begin_nested():  # the rollout checks the project's approval policy itself
            rollout = rollouts.start(
                session,
                settings,
                project=project,
                version=version,
                actor=SERVICE_IDENTITY,
                policy=spec.rollout,
            )
    except PaveError as exc:
        hint = f" ({exc.hint})" if exc.hint else ""
        _finish(
            session,
            row,
            "failed",
            error=f"the rollout of version {version} did not start: {exc.message}{hint}",
        )
        return
    row.rollout_id, row.state = rollout.id, "rolling_out"
    audits.append(
        _audit(
            row, "rollout", "deploy", f"loop run {row.id}: rollout {rollout.id} of version {version} started"
        )
    )
    _note(
        row,
        "rolling_out",
        rollout=rollout.id,
        baseline=rollout.baseline_version,
        steps=rollout.policy["steps"],
    )


def _watch_rollout(session: Session, row: LoopRunRow) -> None:
    rollout = session.get(RolloutRow, row.rollout_id) if row.rollout_id else None
    if rollout is None:
        _finish(session, row, "failed", error="its rollout disappeared")
        return
    if rollout.state == "running":
        return
    last = rollout.history[-1] if rollout.history else {}
    reason = str(last.get("reason", ""))
    test = f" ({last['test']})" if last.get("test") else ""
    _finish(
        session,
        row,
        rollout.state,
        outcome=f"version {row.model_version} {rollout.state}: {reason}{test}"[:500],
    )


def _revoke(session: Session, row: LoopRunRow) -> None:
    token = session.get(Token, row.token_id) if row.token_id else None
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()


def _finish(
    session: Session, row: LoopRunRow, state: str, *, outcome: str | None = None, error: str | None = None
) -> None:
    _revoke(session, row)
    row.state, row.active, row.finished_at = state, None, utcnow()
    row.outcome, row.error = outcome or row.outcome, error or row.error
    _note(row, state, **({"outcome": outcome} if outcome else {}), **({"error": error} if error else {}))
    log.info("loop run %s of %s: %s %s", row.id, row.project, state, outcome or error or "")
