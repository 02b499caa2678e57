"""Incidents, not alert storms: a drift episode on 30 features is one incident, paged once and
resolved once (a real HTTP receiver stands in for PagerDuty); silences with an expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from monitoring_kit import DRIFT, ControlPlane, Receiver, StaticSpecs, alerts_of, write_log
from sqlalchemy import select

from pave.data.profile import profile_frame
from pave.governance.egress import EgressPolicy
from pave.monitoring.scheduler import Monitoring, Scheduler
from pave.monitoring.spec import MonitorSpec
from pave.store.tables import IncidentRow, SilenceRow

FEATURES = [f"f{i:02d}" for i in range(30)]


def _traffic(rows: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({f: rng.normal(0.0, 1.0, rows) + shift for f in FEATURES})


def _scheduler(cp: ControlPlane, name: str, receiver: Receiver) -> Scheduler:
    spec = {
        "schedule": "5m",
        "monitors": [DRIFT],
        "sinks": [
            {"kind": "pagerduty", "url": receiver.url("/pd"), "routing_key": "R0UTING"},
            {"kind": "webhook", "url": receiver.url("/hook")},
        ],
    }
    monitoring = Monitoring(
        MonitorSpec.model_validate(spec), {"train": profile_frame(_traffic(5_000, 0))}, "1"
    )
    return Scheduler(
        cp.platform.sessions,
        cp.settings,
        specs=StaticSpecs(name, monitoring),
        egress=EgressPolicy(allowed_networks=["127.0.0.0/8"]),
        base_delay=30.0,
    )


def _send(cp: ControlPlane, name: str, frame: pd.DataFrame, when: datetime) -> None:
    write_log(
        cp.log_dir,
        name,
        "1",
        frame,
        {"predict": np.zeros(len(frame))},
        rows_per_request=50,
        ts=when.timestamp(),
    )


def _incidents(cp: ControlPlane, name: str) -> list[IncidentRow]:
    with cp.platform.sessions() as session:
        return list(
            session.scalars(select(IncidentRow).where(IncidentRow.project == name).order_by(IncidentRow.id))
        )


def _paged(receiver: Receiver) -> list[dict]:
    return [r["body"] for r in receiver.received if r["path"] == "/pd"]


def test_a_drift_episode_on_30_features_pages_once_and_resolves_once(
    control_plane: ControlPlane, receiver: Receiver
) -> None:
    cp = control_plane
    name = cp.add_deployment("wide")
    scheduler = _scheduler(cp, name, receiver)
    start = datetime.now(UTC) - timedelta(hours=6)
    _send(cp, name, _traffic(2_000, 1), start)
    scheduler.tick(start + timedelta(seconds=1))
    assert _incidents(cp, name) == []

    drifted = start + timedelta(hours=1, minutes=1)
    for window in range(3):  # the episode lasts three windows, new traffic in each
        when = drifted + timedelta(minutes=10 * window)
        _send(cp, name, _traffic(1_000, 10 + window, shift=1.5), when)
        scheduler.tick(when + timedelta(seconds=1))
    alerts = alerts_of(cp, name)
    assert sorted(a.subject for a in alerts) == FEATURES  # the detail: one alert per feature
    (incident,) = _incidents(cp, name)
    assert incident.status == "open"
    assert incident.subjects == FEATURES
    assert {a.incident_id for a in alerts} == {incident.id}
    pages = _paged(receiver)
    assert [p["event_action"] for p in pages] == ["trigger"]  # paged once, not 30 (or 90) times
    assert pages[0]["dedup_key"] == f"pave/{name}/{name}/inputs/drift"
    assert "30 subjects" in pages[0]["payload"]["summary"]
    assert pages[0]["payload"]["custom_details"]["subjects"] == FEATURES
    hooks = [r["body"] for r in receiver.received if r["path"] == "/hook"]
    assert [h["event"] for h in hooks] == ["open"]

    cleared = drifted + timedelta(hours=2)
    _send(cp, name, _traffic(2_000, 20), cleared)
    scheduler.tick(cleared + timedelta(seconds=1))
    scheduler.tick(cleared + timedelta(minutes=20))  # still clear: nothing more is sent
    (incident,) = _incidents(cp, name)
    assert incident.status == "resolved"
    assert incident.ever == FEATURES
    pages = _paged(receiver)
    assert [p["event_action"] for p in pages] == ["trigger", "resolve"]  # the resolution, once
    assert pages[1]["dedup_key"] == pages[0]["dedup_key"]
    assert all(a.status == "resolved" for a in alerts_of(cp, name))


def test_a_silence_keeps_an_episode_quiet_until_it_expires(
    control_plane: ControlPlane, receiver: Receiver
) -> None:
    cp = control_plane
    name = cp.add_deployment("hush")
    scheduler = _scheduler(cp, name, receiver)
    start = datetime.now(UTC) - timedelta(hours=8)
    # the monitors run on the log's (past) clock here: the silence is written on that clock too
    with cp.platform.sessions() as session, session.begin():
        session.add(
            SilenceRow(
                project=name,
                monitor="inputs",
                reason="planned backfill",
                created_by="olga",
                created_at=start - timedelta(minutes=1),
                expires_at=start + timedelta(hours=1, minutes=30),
            )
        )
    _send(cp, name, _traffic(1_000, 30, shift=1.5), start)
    scheduler.tick(start + timedelta(seconds=1))
    (incident,) = _incidents(cp, name)
    assert incident.silence_id is not None
    later = start + timedelta(hours=1, minutes=1)
    _send(cp, name, _traffic(2_000, 31), later)
    scheduler.tick(later + timedelta(seconds=1))
    assert _incidents(cp, name)[0].status == "resolved"
    assert receiver.received == []  # neither the page nor its resolution
    again = later + timedelta(hours=1, minutes=1)  # the silence has expired: the next episode pages
    _send(cp, name, _traffic(1_000, 32, shift=1.5), again)
    scheduler.tick(again + timedelta(seconds=1))
    assert [p["event_action"] for p in _paged(receiver)] == ["trigger"]
    api = cp.client.get(f"/api/v1/projects/{name}/incidents", params={"status": "all"}).json()
    assert [(i["status"], i["silenced"]) for i in api] == [("open", False), ("resolved", True)]
    assert api[0]["deliveries"][0]["sink"] == "pagerduty"


def test_silences_through_the_api(control_plane: ControlPlane) -> None:
    cp = control_plane
    name = cp.add_deployment("quiet")
    made = cp.client.post(
        f"/api/v1/projects/{name}/silences", json={"minutes": 120, "kind": "drift", "reason": "backfill"}
    )
    assert made.status_code == 201, made.text
    assert made.json()["created_by"] == "admin"
    listed = cp.client.get(f"/api/v1/projects/{name}/silences").json()
    assert [(s["kind"], s["monitor"], s["reason"]) for s in listed] == [("drift", None, "backfill")]
    assert cp.client.delete(f"/api/v1/projects/{name}/silences/{listed[0]['id']}").status_code == 200
    assert cp.client.get(f"/api/v1/projects/{name}/silences").json() == []
    assert cp.client.delete(f"/api/v1/projects/{name}/silences/999999").status_code == 404
    assert cp.client.post(f"/api/v1/projects/{name}/silences", json={"minutes": 0}).status_code == 400
    assert (
        cp.client.post(f"/api/v1/projects/{name}/silences", json={"minutes": 99 * 24 * 60}).status_code == 400
    )
    assert cp.client.post("/api/v1/projects/nope-nope/silences", json={"minutes": 5}).status_code == 404


def test_only_operators_of_the_project_may_silence_it(control_plane: ControlPlane) -> None:
    cp = control_plane
    name = cp.add_deployment("guarded")
    made = cp.client.post("/api/v1/tokens", json={"identity": "vera", "name": "t", "role": "maintainer"})
    assert made.status_code == 201, made.text
    vera = {"Authorization": f"Bearer {made.json()['secret']}"}  # a maintainer, but not of this project
    refused = cp.client.post(f"/api/v1/projects/{name}/silences", json={"minutes": 60}, headers=vera)
    assert refused.status_code == 403
    assert cp.client.get(f"/api/v1/projects/{name}/incidents", headers=vera).status_code == 403
    assert cp.client.get(f"/api/v1/projects/{name}/silences").json() == []
