"""The closed loop's bookkeeping on a real store: triggers, the one-at-a-time rule, schedules,
alerts, a real retrain job that fails, and a control plane that restarts meanwhile."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from pave.automation import jobs, loop
from pave.automation.cron import parse_cron
from pave.errors import Conflict, InvalidInput, NotFound
from pave.store.tables import AlertRow, AuditEvent, LoopRunRow, LoopSourceRow, Token


def spec(name: str = "churn", **extra: Any) -> dict[str, Any]:
    return {"name": name, "steps": [{"name": "train", "function": "steps:train"}], **extra}


RUN = "a" * 32


def record(store: Any, **extra: Any) -> None:
    _, sessions = store
    with sessions.begin() as session:
        loop.record_source(session, project="churn", run_id=RUN, spec=spec(**extra), actor="ann")


def runs(store: Any) -> list[LoopRunRow]:
    _, sessions = store
    with sessions() as session:
        return loop.runs(session, "churn")


def test_cron_next_firing_times():
    monday = datetime(2026, 11, 30, 10, 7, tzinfo=UTC)
    assert parse_cron("*/15 * * * *").next_after(monday) == monday.replace(minute=15)
    assert parse_cron("0 3 * * 1").next_after(monday) == datetime(2026, 12, 7, 3, 0, tzinfo=UTC)
    assert parse_cron("30 2 1 * *").next_after(monday) == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert parse_cron("@daily").next_after(monday) == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
    # day of month and day of week both restricted: either matches (the 13th, or any Friday)
    assert parse_cron("0 0 13 * 5").next_after(monday) == datetime(2026, 12, 4, 0, 0, tzinfo=UTC)
    assert parse_cron("0 0 29 2 *").next_after(monday) == datetime(2028, 2, 29, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [("* * * *", "4 fields"), ("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("x * * * *", "number")],
)
def test_cron_errors_name_the_field(expression, fragment):
    with pytest.raises(InvalidInput, match=fragment):
        parse_cron(expression)


def test_clear_errors_before_anything_runs(store):
    _, sessions = store
    with sessions.begin() as session, pytest.raises(NotFound, match="no run of project churn is recorded"):
        loop.trigger(session, "churn", trigger="manual", actor="ann")
    record(store)
    with sessions.begin() as session, pytest.raises(InvalidInput, match="no retrain: section"):
        loop.trigger(session, "churn", trigger="manual", actor="ann")
    with sessions.begin() as session, pytest.raises(InvalidInput, match="not 'other'"):
        loop.record_source(session, project="other", run_id=RUN, spec=spec(), actor="ann")
    with (
        sessions.begin() as session,
        pytest.raises(InvalidInput, match=r"retrain.schedule in pave.yaml: cron minute"),
    ):
        loop.record_source(
            session, project="churn", run_id=RUN, spec=spec(retrain={"schedule": "61 * * * *"}), actor="a"
        )
    with (
        sessions.begin() as session,
        pytest.raises(InvalidInput, match=r"retrain.rollout in pave.yaml: unknown"),
    ):
        loop.record_source(
            session, project="churn", run_id=RUN, spec=spec(retrain={"rollout": {"stepz": [5]}}), actor="a"
        )
    assert runs(store) == []


def test_one_turn_per_project_at_a_time(any_store):
    store = any_store
    _, sessions = store
    record(store, retrain={})
    with sessions.begin() as session:
        first = loop.trigger(session, "churn", trigger="manual", actor="ann")
    with (
        sessions.begin() as session,
        pytest.raises(Conflict, match=f"already retraining \\(loop run {first.id}"),
    ):
        loop.trigger(session, "churn", trigger="manual", actor="bob")
    with sessions.begin() as session:  # the database refuses a second active turn even past the check
        session.add(
            LoopRunRow(
                project="churn",
                active="churn",
                trigger="manual",
                triggered_by="x",
                state="queued",
                gates=[],
                history=[],
            )
        )
        with pytest.raises(Exception, match=r"UNIQUE|unique"):
            session.flush()
        session.rollback()
    assert [r.state for r in runs(store)] == ["queued"]


def _tick_until(store: Any, done: Any, *, forget_processes: bool = False) -> list[LoopRunRow]:
    settings, sessions = store
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        loop.tick(sessions, settings)
        if forget_processes:  # a control plane that restarted knows only what the store says
            jobs._processes.clear()
        found = runs(store)
        if done(found):
            return found
        time.sleep(0.2)
    raise AssertionError([loop.describe(r) for r in runs(store)])


@pytest.mark.parametrize("restart", [False, True], ids=["same-control-plane", "after-a-restart"])
def test_a_failing_retrain_job_is_recorded_with_its_error_and_the_token_revoked(store, restart):
    settings, sessions = store
    # no platform answers at PAVE_URL (conftest): `pave run --from-run` fails before any MLflow run
    record(store, retrain={"set": {"train.C": 1e-6}})
    with sessions.begin() as session:
        loop.trigger(session, "churn", trigger="manual", actor="ann")
    [row] = _tick_until(store, lambda rs: rs[0].active is None, forget_processes=restart)
    assert row.state == "failed"
    assert "error:" in (row.error or "")
    assert settings.url in (row.error or "")
    assert [e["event"] for e in row.history] == ["triggered", "training", "failed"]
    training = row.history[1]
    assert training["overrides"] == {"train.C": 1e-6}
    assert training["run"] == RUN
    folder = Path(training["job"]["folder"])
    assert folder.name.startswith("pave-job-loop-")
    assert not folder.exists(), "the job's folder is removed when it ends"
    assert not folder.is_relative_to(settings.home)
    with sessions() as session:
        token = session.get(Token, row.token_id)
        assert token is not None
        assert token.project == "churn"
        assert token.role == "developer"
        assert token.revoked_at is not None
        assert token.expires_at is not None  # short-lived: the retrain's timeout and some minutes
        assert token.expires_at - token.created_at < timedelta(hours=2)
    assert (loop.work_dir(settings, row.id) / "run.log").exists()


def test_a_project_recorded_by_folder_before_snapshots_fails_the_turn_clearly(store):
    settings, sessions = store
    record(store, retrain={})
    with sessions.begin() as session:
        session.query(LoopSourceRow).one().run_id = None
        loop.trigger(session, "churn", trigger="manual", actor="ann")
    loop.tick(sessions, settings)
    [row] = runs(store)
    assert row.state == "failed"
    assert "recorded by folder, before code snapshots" in (row.error or "")
    assert row.pid is None, "nothing was started"


def test_the_schedule_triggers_a_turn_and_moves_to_the_next_firing(store):
    settings, sessions = store
    record(store, retrain={"schedule": "*/5 * * * *"})
    with sessions.begin() as session:
        source = session.query(LoopSourceRow).one()
        assert source.next_retrain_at is not None
        assert source.next_retrain_at.minute % 5 == 0
        source.next_retrain_at = datetime.now(UTC) - timedelta(minutes=1)
    loop.tick(sessions, settings)
    [row] = runs(store)
    assert row.trigger == "schedule"
    assert row.triggered_by == "schedule */5 * * * *"
    with sessions() as session:
        after = session.query(LoopSourceRow).one().next_retrain_at
    assert after is not None
    assert after > datetime.now(UTC)
    loop.tick(sessions, settings)
    assert len(runs(store)) == 1


def _alert(sessions: Any, opened_at: datetime) -> int:
    with sessions.begin() as session:
        alert = AlertRow(
            project="churn",
            deployment="churn",
            monitor="inputs",
            kind="drift",
            subject="age",
            severity="warning",
            status="open",
            opened_at=opened_at,
            last_seen_at=opened_at,
            details={},
        )
        session.add(alert)
        session.flush()
        return alert.id


def test_an_open_alert_retrains_once_when_the_policy_says_retrain(any_store):
    store = any_store
    settings, sessions = store
    record(store, retrain={}, monitor={"on_alert": "notify"})
    first = _alert(sessions, datetime.now(UTC) - timedelta(seconds=5))
    loop.tick(sessions, settings)
    assert runs(store) == []  # notify only

    record(store, retrain={}, monitor={"on_alert": "retrain"})
    loop.tick(sessions, settings)
    loop.tick(sessions, settings)
    [row] = runs(store)
    assert row.trigger == "alert"
    assert row.alert_id == first
    assert "drift on age" in row.triggered_by

    with sessions() as session:
        audited = session.query(AuditEvent).filter(AuditEvent.identity == "pave-automation").all()
    assert [(a.project, a.action, a.path) for a in audited] == [
        ("churn", "deploy", "/api/v1/projects/churn/retrain")
    ]
    assert f"queued by alert {first} (drift on age)" in (audited[0].detail or "")

    second = _alert(sessions, datetime.now(UTC) + timedelta(seconds=1))
    time.sleep(1.1)
    loop.tick(sessions, settings)
    assert [r.alert_id for r in runs(store)] == [first]  # cooling down (default: an hour)

    with sessions.begin() as session:  # the first turn ends (its job failed: no platform answers)
        turn = session.get(LoopRunRow, runs(store)[0].id)
        turn.state, turn.active, turn.finished_at = "failed", None, datetime.now(UTC)
    record(store, retrain={"cooldown": 0}, monitor={"on_alert": "retrain"})
    loop.tick(sessions, settings)
    loop.tick(sessions, settings)
    assert [r.alert_id for r in runs(store)] == [second, first]


@pytest.mark.parametrize(
    ("result", "state", "fragment"),
    [
        (
            {"gates_passed": False, "gates": [{"metric": "roc_auc", "rule": ">= 0.95", "passed": False}]},
            "gates_failed",
            "gates failed (roc_auc >= 0.95)",
        ),
        (
            {"gates_passed": True, "gates": [{"metric": "roc_auc", "passed": True}]},
            "registered",
            "no deployment",
        ),
        (
            {"gates_passed": True, "gates": [], "reused": True},
            "unchanged",
            "nothing changed since version 3",
        ),
    ],
    ids=["gates-failed", "no-deployment", "nothing-changed"],
)
def test_the_outcome_of_a_finished_run_is_read_from_its_output(store, tmp_path, result, state, fragment):
    settings, sessions = store
    record(store, retrain={})
    with sessions.begin() as session:
        row = loop.trigger(session, "churn", trigger="manual", actor="ann")
        row.state = "training"  # its `pave run` ended while no control plane watched (pid gone)
        row.history = [*row.history, {"at": datetime.now(UTC).isoformat(), "event": "training"}]
        run_id = row.id
    work = loop.work_dir(settings, run_id)
    work.mkdir(parents=True)
    (work / "run.json").write_text(
        json.dumps({"run_id": "r1", "model_version": "3", "metrics": {}, **result})
    )
    loop.tick(sessions, settings)
    [row] = runs(store)
    assert row.state == state
    assert fragment in (row.outcome or "")
    assert row.run_id == "r1"
    assert row.model_version == "3"
    assert row.active is None


def test_a_retrain_past_its_timeout_is_stopped(store, tmp_path):
    settings, sessions = store
    record(store, retrain={"timeout": 60})
    # a job adopted after a restart (its command line names the job's folder) that hangs
    hanging = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(120)", str(tmp_path)], start_new_session=True
    )
    try:
        with sessions.begin() as session:
            row = loop.trigger(session, "churn", trigger="manual", actor="ann")
            row.state, row.pid = "training", hanging.pid
            started = (datetime.now(UTC) - timedelta(seconds=30)).isoformat()
            job = {"executor": "local", "folder": str(tmp_path), "pid": hanging.pid}
            row.history = [*row.history, {"at": started, "event": "training", "job": job}]
        loop.tick(sessions, settings)
        assert runs(store)[0].state == "training"  # 30 s of 60: still running
        with sessions.begin() as session:
            row = session.get(LoopRunRow, runs(store)[0].id)
            started = (datetime.now(UTC) - timedelta(seconds=90)).isoformat()
            row.history = [*row.history[:-1], {"at": started, "event": "training", "job": job}]
        loop.tick(sessions, settings)
        [row] = runs(store)
        assert row.state == "failed"
        assert "more than retrain.timeout=60s" in (row.error or "")
        assert hanging.wait(timeout=30) == -signal.SIGTERM
    finally:
        hanging.kill()
        hanging.wait()


def test_a_retrain_past_its_timeout_that_ignores_sigterm_is_killed(store, tmp_path, monkeypatch):
    """As a job in a PID namespace of its own does (unshare and the namespace's first process
    ignore SIGTERM): the stop ends it with SIGKILL after the grace period."""
    settings, sessions = store
    monkeypatch.setattr(jobs, "GRACE", 1.0)
    record(store, retrain={"timeout": 60})
    deaf = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(120)"
    )
    hanging = subprocess.Popen(
        [sys.executable, "-c", deaf, str(tmp_path)], start_new_session=True, stdout=subprocess.PIPE
    )
    try:
        assert hanging.stdout is not None
        assert hanging.stdout.readline() == b"ready\n"  # it ignores SIGTERM from now on
        with sessions.begin() as session:
            row = loop.trigger(session, "churn", trigger="manual", actor="ann")
            row.state, row.pid = "training", hanging.pid
            started = (datetime.now(UTC) - timedelta(seconds=90)).isoformat()
            job = {"executor": "local", "folder": str(tmp_path), "pid": hanging.pid}
            row.history = [*row.history, {"at": started, "event": "training", "job": job}]
        loop.tick(sessions, settings)
        [row] = runs(store)
        assert row.state == "failed"
        assert "more than retrain.timeout=60s" in (row.error or "")
        assert hanging.wait(timeout=30) == -signal.SIGKILL
    finally:
        hanging.kill()
        hanging.wait()
