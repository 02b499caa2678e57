"""Monitors from pave.yaml evaluated by the control plane's tick: drift, alerts, sinks, retries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from monitoring_kit import (
    DRIFT,
    ControlPlane,
    Receiver,
    alerts_of,
    deliveries_of,
    scheduler_for,
    send,
    traffic,
    write_log,
)

from pave.data.profile import profile_frame
from pave.errors import InvalidInput
from pave.monitoring.scheduler import Monitoring, Scheduler
from pave.pipelines.spec_file import parse_spec
from pave.store.tables import DeploymentRow

FEATURES = ["age", "income", "tenure"]


def test_quiet_traffic_raises_nothing_and_one_shifted_feature_alerts_on_it_only(
    control_plane: ControlPlane, receiver: Receiver
) -> None:
    cp = control_plane
    name = cp.add_deployment("churn")
    spec = {
        "schedule": "5m",
        "monitors": [{**DRIFT, "method": "psi"}],
        "sinks": [
            {"kind": "webhook", "url": receiver.url("/hook")},
            {"kind": "slack", "url": receiver.url("/slack")},
            {"kind": "pagerduty", "url": receiver.url("/pd"), "routing_key": "R0UTING"},
        ],
    }
    scheduler = scheduler_for(cp, name, spec)
    # Timestamps in the past: the log reader skips files last written before a window starts.
    start = datetime.now(UTC) - timedelta(hours=4)

    send(cp, name, traffic(2_000, seed=1), start.timestamp())
    scheduler.tick(start + timedelta(seconds=1))
    assert alerts_of(cp, name) == []

    # An hour later the window holds only shifted traffic: income moved by one standard deviation.
    later = start + timedelta(hours=1, minutes=1)
    send(cp, name, traffic(2_000, seed=2, shift={"income": 1.0}), later.timestamp())
    scheduler.tick(later)
    alerts = alerts_of(cp, name)
    assert [(a.kind, a.subject, a.status) for a in alerts] == [("drift", "income", "open")]
    assert alerts[0].details["method"] == "psi"
    assert alerts[0].details["statistic"] > 0.2

    by_path = {r["path"]: r["body"] for r in receiver.received}
    assert set(by_path) == {"/hook", "/slack", "/pd"}
    assert by_path["/hook"]["event"] == "open"
    assert by_path["/hook"]["incident"]["subjects"] == ["income"]
    assert "income" in by_path["/slack"]["text"]
    assert by_path["/slack"]["blocks"]
    pd_event = by_path["/pd"]
    assert pd_event["routing_key"] == "R0UTING"
    assert pd_event["event_action"] == "trigger"
    assert pd_event["dedup_key"] == f"pave/{name}/{name}/inputs/drift"  # one key for every window
    assert {"summary", "source", "severity"} <= set(pd_event["payload"])

    # Not evaluated again before the schedule says so; while it persists it is the same alert.
    scheduler.tick(later + timedelta(minutes=1))
    assert alerts_of(cp, name)[0].last_seen_at == later
    scheduler.tick(later + timedelta(minutes=10))
    (alert,) = alerts_of(cp, name)
    assert alert.last_seen_at == later + timedelta(minutes=10)
    # Once traffic is back to normal it resolves.
    normal = later + timedelta(hours=1, minutes=20)
    send(cp, name, traffic(2_000, seed=3), normal.timestamp())
    scheduler.tick(normal)
    (alert,) = alerts_of(cp, name)
    assert alert.status == "resolved"
    assert alert.resolved_at is not None
    assert [r["body"].get("event_action") for r in receiver.received if r["path"] == "/pd"] == [
        "trigger",
        "resolve",
    ]


def test_few_requests_never_alert(control_plane: ControlPlane) -> None:
    cp = control_plane
    name = cp.add_deployment("small")
    scheduler = scheduler_for(cp, name, {"monitors": [DRIFT]})
    now = datetime.now(UTC) - timedelta(hours=1)
    send(cp, name, traffic(150, seed=4, shift={"age": 5.0}), now.timestamp())  # drifted but below 200
    scheduler.tick(now + timedelta(seconds=1))
    assert alerts_of(cp, name) == []


@pytest.mark.parametrize("failure", ["fail", "slow"])
def test_a_failing_webhook_is_retried_and_the_alert_is_not_lost(
    control_plane: ControlPlane, receiver: Receiver, failure: str
) -> None:
    cp = control_plane
    name = cp.add_deployment("retry")
    spec = {"monitors": [DRIFT], "sinks": [{"kind": "webhook", "url": receiver.url("/hook")}]}
    scheduler = scheduler_for(cp, name, spec, timeout=0.2)
    now = datetime.now(UTC) - timedelta(hours=1)
    send(cp, name, traffic(1_000, seed=5, shift={"age": 2.0}), now.timestamp())

    receiver.mode = failure
    scheduler.tick(now + timedelta(seconds=1))
    (alert,) = alerts_of(cp, name)
    (delivery,) = deliveries_of(cp, name)
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    assert delivery.last_error
    assert "500" in delivery.last_error or "Timeout" in delivery.last_error
    assert delivery.next_attempt_at > now + timedelta(seconds=1)

    receiver.mode = "ok"
    scheduler.tick(now + timedelta(seconds=2))  # not due yet: back-off
    assert receiver.received == []
    scheduler.tick(now + timedelta(minutes=2))
    (delivery,) = deliveries_of(cp, name)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    assert receiver.received[0]["body"]["incident"]["subjects"] == [alert.subject]


def test_a_broken_project_does_not_stop_the_tick(control_plane: ControlPlane) -> None:
    cp = control_plane
    name = cp.add_deployment("broken")

    class Exploding:
        def get(self, deployment: DeploymentRow, version: str) -> Monitoring | None:
            raise RuntimeError("boom")

    scheduler = Scheduler(cp.platform.sessions, cp.settings, specs=Exploding())
    scheduler.tick()  # logged, not raised
    assert alerts_of(cp, name) == []


BASE = "name: demo\nsteps:\n  - {name: a, function: steps:a}\n"


@pytest.mark.parametrize(
    ("monitor", "field", "words"),
    [
        (
            "monitors:\n    - {name: m, method: psy}",
            "monitor.monitors[0].method",
            "unknown drift method 'psy'",
        ),
        ("monitors:\n    - {name: m, method: ks, threshold: 5}", "monitor.monitors[0].threshold", "p-value"),
        (
            "monitors:\n    - {name: m, type: performance, metric: accuracy, threshold: 1.5}",
            "monitor.monitors[0].threshold",
            "impossible",
        ),
        ("monitors:\n    - {name: m, window: soon}", "monitor.monitors[0].window", "not a duration"),
        ("schedule: -5", "monitor.schedule", "positive"),
        ("sinks:\n    - {kind: pagerduty, url: 'https://x.example'}", "monitor.sinks[0]", "routing_key"),
        ("on_alert: page", "monitor.on_alert", "notify"),
    ],
)
def test_bad_monitor_specs_name_the_field_line_and_fix(monitor: str, field: str, words: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_spec(BASE + "monitor:\n  " + monitor + "\n")
    error = caught.value
    assert f"line 5, {field}" in error.message or f"line 6, {field}" in error.message
    assert words in error.message or words in (error.hint or "")


def test_an_empty_or_absent_monitor_section_is_valid() -> None:
    assert parse_spec(BASE).monitor.monitors == []
    assert parse_spec(BASE + "monitor: {}\n").monitor.on_alert == "notify"


def test_several_methods_each_give_their_statistic_and_any_of_them_decides() -> None:
    from pave.monitoring.monitors import drift_verdicts
    from pave.monitoring.reference import build_reference
    from pave.monitoring.spec import MonitorDef

    reference = build_reference(traffic(5_000, seed=0))
    monitor = MonitorDef(name="m", method=["psi", "wasserstein"], min_samples=100)
    verdicts = {
        v.subject: v
        for v in drift_verdicts(
            reference, traffic(2_000, seed=9, shift={"tenure": 1.0}), ["tenure", "age"], monitor
        )
    }
    assert set(verdicts) == {"tenure", "age"}
    assert set(verdicts["tenure"].details["methods"]) == {"psi", "wasserstein"}
    assert verdicts["tenure"].firing
    assert not verdicts["age"].firing


def test_prediction_drift_against_the_versions_first_window(control_plane: ControlPlane) -> None:
    cp = control_plane
    name = cp.add_deployment("outputs")
    monitor = {
        "name": "outputs",
        "type": "prediction_drift",
        "method": "psi",
        "window": "1h",
        "min_samples": 100,
    }
    scheduler = scheduler_for(cp, name, {"schedule": "1m", "monitors": [monitor]})
    start = datetime.now(UTC) - timedelta(hours=4)
    rng = np.random.default_rng(3)

    def predict(share_of_ones: float, at: datetime) -> None:
        frame = traffic(600, seed=int(share_of_ones * 100))
        predictions = (rng.random(600) < share_of_ones).astype(int)
        write_log(
            cp.log_dir, name, "1", frame, {"predict": predictions}, rows_per_request=20, ts=at.timestamp()
        )

    predict(0.2, start)
    scheduler.tick(start + timedelta(seconds=1))  # builds the baseline: no verdict yet
    later = start + timedelta(hours=1, minutes=5)
    predict(0.25, later)
    scheduler.tick(later)
    assert alerts_of(cp, name) == []
    drifted = later + timedelta(hours=1, minutes=5)
    predict(0.8, drifted)
    scheduler.tick(drifted)
    assert [(a.kind, a.subject) for a in alerts_of(cp, name)] == [("prediction_drift", "predict")]


def test_a_performance_monitor_alerts_when_labels_show_decay(control_plane: ControlPlane) -> None:
    cp = control_plane
    name = cp.add_deployment("decay")
    monitor = {
        "name": "quality",
        "type": "performance",
        "metric": "accuracy",
        "threshold": 0.8,
        "min_samples": 50,
    }
    scheduler = scheduler_for(cp, name, {"monitors": [monitor]})
    ids = write_log(cp.log_dir, name, "1", traffic(60, seed=1), {"predict": np.ones(60, dtype=int)})
    items = [{"inference_id": i, "label": 1 if n < 20 else 0} for n, i in enumerate(ids)]
    assert cp.client.post("/api/v1/feedback", json={"items": items[:40]}).status_code == 200
    scheduler.tick()
    assert alerts_of(cp, name) == []  # 40 labels: fewer than min_samples, no verdict
    assert cp.client.post("/api/v1/feedback", json={"items": items[40:]}).status_code == 200
    scheduler.tick(datetime.now(UTC) + timedelta(minutes=10))
    (alert,) = alerts_of(cp, name)
    assert (alert.kind, alert.subject) == ("performance", "accuracy")
    assert alert.details["value"] == pytest.approx(20 / 60)
    assert alert.details["n_labelled"] == 60


def test_listed_features_the_traffic_lacks_are_reported_not_ignored(control_plane: ControlPlane) -> None:
    from pave.monitoring.monitors import evaluate_drift
    from pave.monitoring.spec import MonitorDef

    cp = control_plane
    name = cp.add_deployment("listed")
    now = datetime.now(UTC) - timedelta(minutes=5)
    send(cp, name, traffic(500, seed=41), now.timestamp())
    monitor = MonitorDef(name="m", features=["age", "salary"], min_samples=100)
    profile = {"train": profile_frame(traffic(2_000, seed=0))}
    verdicts, summary = evaluate_drift(cp.log_dir, name, monitor, profile, now + timedelta(seconds=1))
    assert [v.subject for v in verdicts] == ["age"]
    assert summary["untested"] == ["salary"]
