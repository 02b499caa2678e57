"""The closed loop: an alert or a schedule -> ``pave run`` -> gates -> progressive rollout -> outcome.

A project takes part once its last ``pave run`` recorded where it lives (:func:`record_source`)
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

``training`` is a ``python -m pave run DIR --json`` subprocess in its own session, outside the
request path, authenticated by a service token scoped to the project (developer role) that is
revoked when the run ends; its output lands in ``$PAVE_HOME/loop/<id>/``. A control plane that
restarts finds the subprocess again by its pid and reads its output when it ends. The turn's
``active`` column holds the project's name until the turn ends; a unique constraint on it keeps
two turns of one project from ever running at once. Rolling out is :mod:`pave.serving.rollouts`,
whose guards promote the new version or roll it back on their own.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from pave.automation.cron import parse_cron
from pave.automation.triggers import source_environment
from pave.config import Settings
from pave.errors import Conflict, Forbidden, InvalidInput, NotFound, PaveError
from pave.governance.audit import AuditEntry, append
from pave.pipelines.spec import ProjectSpec, RetrainSpec
from pave.store.tables import AlertRow, DeploymentRow, LoopRunRow, LoopSourceRow, RolloutRow, Token, utcnow

log = logging.getLogger("pave.loop")

SERVICE_IDENTITY = "pave-automation"
ACTIVE = ("queued", "starting", "training", "rolling_out")
# The retrain's environment: what Python and Pave need, not the control plane's secrets.
_ENV_KEEP = ("PATH", "HOME", "LANG", "TMPDIR", "TZ", "VIRTUAL_ENV", "PYTHONPATH", "SSL_CERT_FILE")

_processes: dict[int, subprocess.Popen[bytes]] = {}  # loop run id -> the `pave run` started here


def _event(kind: str, **details: Any) -> dict[str, Any]:
    return {"at": utcnow().isoformat(), "event": kind, **details}


def _note(row: LoopRunRow, kind: str, **details: Any) -> None:
    row.history = [*row.history, _event(kind, **details)]
    row.updated_at = utcnow()


# --- where projects live -----------------------------------------------------------------------------


def check_folder(settings: Settings, directory: str) -> Path:
    """A folder the loop may run ``pave run`` in: absolute, and nowhere the platform writes.

    The platform's home and artifact root are filled over the API (run artifacts, datasets,
    projects made in the portal); a folder there would let a developer choose the code that the
    control plane's host runs. Symbolic links are followed before the check.

    Raises:
        InvalidInput: the folder is not absolute.
        Forbidden: the folder is inside the platform's home or artifact store.
    """
    path = Path(directory)
    if not path.is_absolute():
        raise InvalidInput(f"the project folder must be an absolute path, got {directory!r}")
    real = path.resolve()
    places = [settings.home.resolve()]
    if "://" not in settings.artifacts:
        places.append(Path(settings.artifacts).expanduser().resolve())
    for place in places:
        if real.is_relative_to(place):
            raise Forbidden(
                f"the project folder {directory} is inside the platform's own storage ({place}), "
                "which the API fills; the loop never runs code from there",
                hint="run `pave run` in the project's own checkout (a folder outside PAVE_HOME)",
            )
    return real


def record_source(
    session: Session, settings: Settings, *, project: str, directory: str, spec: dict[str, Any], actor: str
) -> LoopSourceRow:
    """Remember where ``project`` lives and its spec as of its latest ``pave run``.

    Raises:
        InvalidInput: the spec is not this project's, the folder is not absolute, or the
            ``retrain.schedule`` cron expression is invalid.
        Forbidden: the folder is inside the platform's own storage (:func:`check_folder`).
    """
    try:
        parsed = ProjectSpec.model_validate(spec)
    except ValueError as exc:
        raise InvalidInput(f"the spec sent for {project} is not a valid pave.yaml: {exc}") from exc
    if parsed.name != project:
        raise InvalidInput(f"the spec is project {parsed.name!r}, not {project!r}")
    check_folder(settings, directory)
    schedule = parsed.retrain.schedule if parsed.retrain else None
    try:
        cron = parse_cron(schedule) if schedule else None
    except InvalidInput as exc:
        raise InvalidInput(f"retrain.schedule in pave.yaml: {exc.message}", hint=exc.hint) from None
    if parsed.retrain is not None:
        from pave.serving.rollouts import RolloutPolicy

        try:
            RolloutPolicy.from_dict(parsed.retrain.rollout)
        except (InvalidInput, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else str(exc)
            hint = exc.hint if isinstance(exc, InvalidInput) else "see docs/serving.md for the rollout policy"
            raise InvalidInput(f"retrain.rollout in pave.yaml: {message}", hint=hint) from None
    row = session.scalar(select(LoopSourceRow).where(LoopSourceRow.project == project))
    before = (
        _retrain_of(row.spec).schedule if row is not None and row.spec.get("retrain") is not None else None
    )
    if row is None:
        row = LoopSourceRow(project=project, directory=directory, spec=spec, recorded_by=actor)
        session.add(row)
    row.directory, row.spec, row.recorded_by, row.recorded_at = directory, spec, actor, utcnow()
    if cron is None:
        row.next_retrain_at = None
    elif schedule != before or row.next_retrain_at is None:
        row.next_retrain_at = cron.next_after(utcnow())
    session.flush()
    return row


def get_source(session: Session, project: str) -> LoopSourceRow:
    row = session.scalar(select(LoopSourceRow).where(LoopSourceRow.project == project))
    if row is None:
        raise NotFound(
            f"the control plane does not know where project {project} lives",
            hint="run it once on this host: `pave run PROJECT_DIR` records the folder for retraining",
        )
    return row


def _retrain_of(spec: dict[str, Any]) -> RetrainSpec:
    return RetrainSpec.model_validate(spec.get("retrain") or {})


def retrain_spec(source: LoopSourceRow) -> RetrainSpec:
    """The ``retrain:`` section of the recorded spec (InvalidInput when there is none)."""
    if source.spec.get("retrain") is None:
        raise InvalidInput(
            f"the pave.yaml of {source.project} has no retrain: section",
            hint="add e.g. `retrain: {rollout: {steps: [10, 50, 100]}}` to pave.yaml, then `pave run` once",
        )
    return _retrain_of(source.spec)


# --- triggers --------------------------------------------------------------------------------------


def trigger(
    session: Session, project: str, *, trigger: str, actor: str, alert_id: int | None = None
) -> LoopRunRow:
    """Queue a turn of the loop for ``project`` (the control plane's next tick starts it).

    Raises:
        NotFound: no recorded project folder.
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


def describe_source(row: LoopSourceRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    monitor = row.spec.get("monitor") or {}
    return {
        "directory": row.directory,
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at.isoformat(),
        "retrain": row.spec.get("retrain"),
        "on_alert": monitor.get("on_alert", "notify") if isinstance(monitor, dict) else "notify",
        "next_retrain_at": row.next_retrain_at.isoformat() if row.next_retrain_at else None,
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
            schedule = _retrain_of(source.spec).schedule if source.spec.get("retrain") is not None else None
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
            source.project: timedelta(seconds=_retrain_of(source.spec).cooldown)
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
        if state == "starting" and run_id not in _processes:
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
        directory = check_folder(settings, source.directory)  # again: links may have moved since
        if not (directory / "pave.yaml").is_file():
            raise NotFound(
                f"the project folder {directory} recorded for {row.project} has no pave.yaml on this host",
                hint="`pave run PROJECT_DIR` on the control plane's host records where it lives",
            )
        secret = _service_token(session, row, spec)
        row.state = "starting"
    try:
        process = _spawn(settings, run_id, directory, spec, secret)
    except OSError as exc:
        with sessions.begin() as session:
            row = session.get(LoopRunRow, run_id)
            if row is not None:
                _finish(session, row, "failed", error=f"could not start pave run: {exc}")
        return
    _processes[run_id] = process
    with sessions.begin() as session:
        row = session.get(LoopRunRow, run_id)
        if row is not None:
            row.state, row.pid = "training", process.pid
            _note(row, "training", pid=process.pid, directory=str(directory), overrides=spec.set)


def _service_token(session: Session, row: LoopRunRow, spec: RetrainSpec) -> str:
    from pave.governance.tokens import create_token

    token, secret = create_token(
        session,
        identity=SERVICE_IDENTITY,
        name=f"retrain {row.project} (loop run {row.id})",
        role="developer",
        project=row.project,
        expires_in_days=max(1, math.ceil(spec.timeout / 86400)),
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
    return settings.home / "loop" / str(run_id)


def _spawn(
    settings: Settings, run_id: int, directory: Path, spec: RetrainSpec, secret: str
) -> subprocess.Popen[bytes]:
    work = work_dir(settings, run_id)
    work.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP or k.startswith("LC_")}
    env |= {
        "PAVE_URL": settings.url,
        "PAVE_TOKEN": secret,
        "PAVE_HOME": str(settings.home),
        "PAVE_ARTIFACT_ROOT": settings.artifacts,
        "PAVE_LOOP_RUN": str(run_id),
    }
    env |= source_environment(settings)  # what its s3:// and SQL sources need (tests/e2e/test_data_change.py)
    sets = [arg for key, value in spec.set.items() for arg in ("--set", f"{key}={_override(value)}")]
    command = [sys.executable, "-m", "pave", "run", str(directory), "--json", *sets]
    with (work / "run.json").open("wb") as out, (work / "run.log").open("wb") as err:
        return subprocess.Popen(  # our own interpreter and command, no shell
            command,
            cwd=directory,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # survives a control-plane restart; killed as a group on timeout
        )


def _alive(pid: int | None, directory: str) -> bool:
    """A `pave run` this control plane did not start (before a restart) is still running."""
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # the pid may have been reused by another program
        with contextlib.suppress(OSError):
            return directory.encode() in cmdline.read_bytes()
    return True


def _watch_training(
    session: Session, settings: Settings, row: LoopRunRow, now: datetime, audits: list[AuditEntry]
) -> None:
    process = _processes.get(row.id)
    source = get_source(session, row.project)
    done = process.poll() is not None if process is not None else not _alive(row.pid, source.directory)
    if not done:
        started = next((e["at"] for e in reversed(row.history) if e["event"] == "training"), None)
        timeout = retrain_spec(source).timeout
        if started and (now - datetime.fromisoformat(started)).total_seconds() > timeout:
            if row.pid:
                with contextlib.suppress(OSError):
                    os.killpg(row.pid, signal.SIGTERM)
            _processes.pop(row.id, None)
            _finish(
                session, row, "failed", error=f"pave run took more than retrain.timeout={timeout}s: stopped"
            )
        return
    _processes.pop(row.id, None)
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
