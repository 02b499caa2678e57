"""The monitoring API and CLI: latest verdicts, series shaped for plots, alerts, `pave monitor`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from monitoring_kit import DRIFT, ControlPlane, alerts_of, scheduler_for, send, traffic, write_log
from starlette.testclient import TestClient
from typer.testing import CliRunner

from pave.cli.main import app as cli
from pave.client import Client
from pave.data.profile import profile_frame
from pave.governance.tokens import create_token
from pave.monitoring.series import drift_series


def test_drift_series_has_one_line_per_feature_and_finds_the_shift(control_plane: ControlPlane) -> None:
    cp = control_plane
    name = cp.add_deployment("series")
    until = datetime.now(UTC) - timedelta(minutes=5)
    send(cp, name, traffic(1_000, seed=11), (until - timedelta(minutes=90)).timestamp())
    send(cp, name, traffic(1_000, seed=12, shift={"age": 1.5}), (until - timedelta(minutes=30)).timestamp())
    profile = {"train": profile_frame(traffic(5_000, seed=0))}
    doc = drift_series(cp.log_dir, name, profile, until=until, window=2 * 3600, bucket=3600)
    assert len(doc["buckets"]) == 2
    assert set(doc["features"]) == {"age", "income", "tenure", "plan"}
    age = doc["features"]["age"]
    assert [point["drifted"] for point in age] == [False, True]
    assert all(not p["drifted"] for p in doc["features"]["income"])


def test_api_and_cli_show_verdicts_performance_and_alerts(
    control_plane: ControlPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    cp = control_plane
    name = cp.add_deployment("watch")
    scheduler = scheduler_for(cp, name, {"monitors": [{**DRIFT, "method": "psi"}]})
    now = datetime.now(UTC) - timedelta(minutes=10)
    send(cp, name, traffic(1_000, seed=21, shift={"tenure": 2.0}), now.timestamp())
    ids = write_log(cp.log_dir, name, "1", traffic(4, seed=22), {"predict": np.array([1, 0, 1, 1])})
    scheduler.tick(now + timedelta(seconds=1))
    (alert,) = alerts_of(cp, name)
    assert alert.subject == "tenure"
    labels = dict(zip(ids, [1, 0, 0, 1], strict=True))
    assert (
        cp.client.post(
            "/api/v1/feedback", json={"items": [{"inference_id": k, "label": v} for k, v in labels.items()]}
        ).status_code
        == 200
    )

    overview = cp.client.get(f"/api/v1/projects/{name}/monitoring").json()
    assert overview["deployment"] == name
    (state,) = overview["monitors"]
    assert {v["subject"] for v in state["result"]["verdicts"] if v["firing"]} == {"tenure"}
    assert overview["performance"]["1"]["metrics"]["accuracy"] == pytest.approx(0.75)
    assert [a["subject"] for a in overview["alerts"]] == ["tenure"]

    series = cp.client.get(f"/api/v1/projects/{name}/monitoring/performance?window=2h&bucket=1h").json()
    assert series["versions"]["1"][-1]["accuracy"] == pytest.approx(0.75)
    assert cp.client.get(f"/api/v1/projects/{name}/monitoring/drift?bucket=0").status_code == 400
    # A window past what a date can hold is the caller's typo, not the server's 500 (found by the fuzzer).
    too_long = cp.client.get(f"/api/v1/projects/{name}/monitoring?window=99999999999d")
    assert too_long.status_code == 400
    assert "ten years" in too_long.text
    listed = cp.client.get("/api/v1/alerts", params={"project": name}).json()
    assert [a["id"] for a in listed] == [alert.id]
    assert cp.client.get(f"/api/v1/projects/{name}/alerts?status=all").json()[0]["status"] == "open"

    # The CLI renders the same through the SDK (its HTTP client is the in-process app's).
    def factory(*args: Any, **kwargs: Any) -> Client:
        sdk = Client(url="http://testserver", token=cp.token)
        sdk._http = TestClient(cp.client.app, headers={"Authorization": f"Bearer {cp.token}"})
        return sdk

    monkeypatch.setattr("pave.cli.monitor.Client", factory)
    # The CLI's console measured the terminal when it was first imported, maybe by another test.
    monkeypatch.setattr("pave.cli.console.console.width", 200)
    shown = CliRunner().invoke(cli, ["monitor", name], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert "tenure" in shown.output
    assert "accuracy" in shown.output
    assert "Open alerts" in shown.output
    assert "no retrain yet" in shown.output  # the closed loop's section, empty for this project
    listed_cli = CliRunner().invoke(cli, ["alerts", name, "--all"], env={"COLUMNS": "200"})
    assert listed_cli.exit_code == 0
    assert "tenure" in listed_cli.output


def test_sdk_feedback_and_alerts_are_scoped_to_what_the_caller_may_read(control_plane: ControlPlane) -> None:
    cp = control_plane
    mine = cp.add_deployment("mine")
    theirs = cp.add_deployment("theirs")
    for name, seed in ((mine, 31), (theirs, 32)):
        scheduler = scheduler_for(cp, name, {"monitors": [{**DRIFT, "method": "psi"}]})
        now = datetime.now(UTC) - timedelta(minutes=10)
        send(cp, name, traffic(1_000, seed=seed, shift={"age": 2.0}), now.timestamp())
        scheduler.tick(now + timedelta(seconds=1))
    ids = write_log(cp.log_dir, mine, "1", traffic(2, seed=33), {"predict": np.array([0, 1])})
    with cp.platform.sessions() as session, session.begin():
        _, secret = create_token(session, identity="app", name="labels", role="developer", project=mine)

    sdk = Client(url="http://testserver", token=secret)
    sdk._http = TestClient(cp.client.app, headers={"Authorization": f"Bearer {secret}"})
    with sdk:
        assert sdk.post_feedback({ids[0]: 0, ids[1]: 1}).created == 2
        assert {a.project for a in sdk.list_alerts()} == {mine}
        assert sdk.list_alerts(theirs) == []
