"""Every portal page on a busy platform: many projects, runs, versions, deployments, rollouts,
requests and audit records; the platform numbers computed from them."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from portal_kit import Portal, start_portal

from pave.automation import platform_metrics
from pave.governance.audit import AuditEntry, append
from pave.store.db import transaction
from pave.store.tables import AlertRow, DeploymentRow, MonitorStateRow, Project, RolloutRow

PROJECTS, DEPLOYED, WITH_RUNS, RUNS_EACH = 40, 25, 4, 4
PREFIX = "busy"


def _name(i: int) -> str:
    return f"{PREFIX}-{i:03d}"


def _fill_mlflow(portal: Portal) -> None:
    from mlflow.tracking import MlflowClient

    url = portal.settings.mlflow_db_url
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    for i in range(WITH_RUNS):
        name = _name(i)
        # An explicit location, as a run tracking into the database makes: the default would be the
        # MLflow server settings an in-process control plane may have left in this worker's env.
        location = (Path(portal.settings.artifacts) / "mlflow" / name).as_uri()
        experiment = client.create_experiment(name, artifact_location=location)
        client.create_registered_model(name)
        for r in range(RUNS_EACH):
            run = client.create_run(experiment, tags={"pave.data.train": f"{r:064x}", "pave.project": name})
            client.log_metric(run.info.run_id, "accuracy", 0.8 + r / 100)
            client.log_metric(run.info.run_id, "f1", 0.7 + r / 100)
            client.log_param(run.info.run_id, "C", str(r + 1))
            client.set_terminated(run.info.run_id, "FAILED" if (i, r) == (3, RUNS_EACH - 1) else "FINISHED")
            version = client.create_model_version(
                name, f"{portal.settings.artifacts}/{name}/{r}", run_id=run.info.run_id
            )
            client.set_model_version_tag(name, version.version, "pave.gates", "passed")


def _fill_store(portal: Portal) -> None:
    now = datetime.now(UTC)
    with transaction(portal.sessions) as session:
        for i in range(PROJECTS):
            session.add(
                Project(
                    name=_name(i),
                    owner=f"owner{i % 4}",
                    description=f"project number {i}",
                    template="tabular-classification" if i % 2 else "recommendation",
                    created_by="admin",
                    created_at=now - timedelta(days=i),
                    labels={},
                )
            )
        for i in range(DEPLOYED):
            versions = [
                {"version": "1", "uri": "/m/1", "weight": 90.0},
                {"version": "2", "uri": "/m/2", "weight": 10.0},
            ]
            session.add(
                DeploymentRow(
                    name=_name(i),
                    project=_name(i),
                    spec={"name": _name(i), "versions": versions},
                    created_by="admin",
                    updated_by="admin",
                )
            )
        states = ["rolled_back"] * 3 + ["promoted"] * 7 + ["running"] * 2
        for i, state in enumerate(states):
            history: list[dict[str, object]] = [  # the shapes pave.serving.rollouts writes
                {"at": now.isoformat(), "event": "started", "baseline": "1", "candidate": "2", "step": 10.0},
                {
                    "at": now.isoformat(),
                    "event": "waiting_for_labels",
                    "step": 10.0,
                    "labels": {"candidate": 3},
                },
            ]
            if state == "rolled_back":
                history.append(
                    {
                        "at": now.isoformat(),
                        "event": "rolled_back",
                        "reason": "error rate 9/20 is above the allowed 0.05",
                        "test": "one-sided exact binomial test",
                        "candidate": {"requests": 20, "errors": 9, "p99_ms": 12.5},
                        "baseline": {"requests": 180, "errors": 0, "p99_ms": 8.0},
                    }
                )
            session.add(
                RolloutRow(
                    deployment=_name(i),
                    baseline_version="1",
                    candidate_version="2",
                    policy={"steps": [10, 50, 100]},
                    state=state,
                    history=history,
                    created_by="admin",
                    finished_at=None if state == "running" else now,
                )
            )
        for i, resolved in ((0, None), (22, None), (21, now)):
            session.add(
                AlertRow(
                    project=_name(i),
                    deployment=_name(i),
                    monitor="inputs",
                    kind="drift",
                    subject="age",
                    severity="warning",
                    status="resolved" if resolved else "open",
                    opened_at=now - timedelta(hours=2),
                    last_seen_at=now,
                    resolved_at=resolved,
                    details={},
                )
            )
        verdicts = [  # the shape pave.monitoring.scheduler stores
            {
                "subject": f,
                "firing": f == "age",
                "feature": f,
                "method": "psi",
                "statistic": st,
                "threshold": 0.2,
            }
            for f, st in (("age", 0.41), ("income", 0.05))
        ]
        session.add(
            MonitorStateRow(
                project=_name(0),
                monitor="inputs",
                last_run_at=now,
                last_result={"type": "drift", "rows": 200, "drifted": ["age"], "verdicts": verdicts},
            )
        )
    for i in range(30):
        append(
            portal.engine,
            AuditEntry(
                method="PUT",
                path=f"/api/v1/projects/{_name(i % DEPLOYED)}/deployment",
                status=200 if i % 5 else 403,
                request_id=f"busy-{i}",
                action="deploy",
                identity=f"user{i % 7}",
                project=_name(i % DEPLOYED),
            ),
        )


def _fill_inference_log(portal: Portal) -> None:
    folder = Path(portal.settings.home) / "inference-log"
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    lines = []
    for i in range(200):
        doc = {
            "id": uuid.uuid4().hex,
            "deployment": _name(0),
            "version": "2" if i % 10 == 0 else "1",
            "ts": now - 1800 + i * 9,
            "latency_ms": 3.0 + i % 7,
            "shadow": False,
            "inputs": {},
            "outputs": {},
        }
        if i % 50 == 0:
            doc["error"] = "boom"
        lines.append(json.dumps(doc))
    (folder / "inference-busy-1-0.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def busy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Portal]:
    portal = start_portal(tmp_path_factory.mktemp("busy"))
    _fill_mlflow(portal)
    _fill_store(portal)
    _fill_inference_log(portal)
    yield portal
    portal.close()


def test_every_page_answers_on_a_busy_platform(busy: Portal) -> None:
    admin = busy.signed_in(busy.admin_token)
    pages = [
        "/",
        "/?status=rolling+out",
        "/?q=number+3&template=recommendation",
        "/platform",
        "/audit",
        "/audit?outcome=denied&since=1d",
        "/new",
    ]
    for i in (0, 1, 2, 30):
        pages += [f"/projects/{_name(i)}", f"/projects/{_name(i)}/deployment"]
    pages += [f"/projects/{_name(0)}/models/1", f"/projects/{_name(0)}?metric=f1"]
    for path in pages:
        answer = admin.get(path)
        assert answer.status_code == 200, (path, answer.text[-800:])


def test_the_catalog_shows_status_badges_and_filters(busy: Portal) -> None:
    admin = busy.signed_in(busy.admin_token)
    html = admin.get("/").text
    assert f"{PROJECTS} of {PROJECTS}" in html
    rolling = admin.get("/", params={"status": "rolling out"}).text
    assert "2 of 40" in rolling
    assert _name(10) in rolling
    assert _name(11) in rolling
    failing = admin.get("/", params={"status": "failing"}).text
    # three rolled back in the last day, and project 3 whose newest run failed
    assert "4 of 40" in failing
    assert _name(3) in failing
    drifting = admin.get("/", params={"status": "drifting"}).text
    assert "1 of 40" in drifting
    assert _name(22) in drifting
    owned = admin.get("/", params={"owner": "owner1", "q": "number"}).text
    assert "10 of 40" in owned


def test_project_and_deployment_pages_show_runs_lineage_traffic_and_rollouts(busy: Portal) -> None:
    admin = busy.signed_in(busy.admin_token)
    project = admin.get(f"/projects/{_name(0)}").text
    assert project.count("/mlflow/#/experiments/") >= RUNS_EACH
    assert "accuracy of each run, by the time it started" in project
    assert "<polyline" in project
    assert "Lineage" in project
    assert "run:" in project
    assert f"deployment:{_name(0)}" in project
    deployment = admin.get(f"/projects/{_name(0)}/deployment").text
    assert "200 requests in the last hour" in deployment
    assert "version 1 90%" in deployment
    assert "version 2 10%" in deployment
    assert "rolled back" in deployment
    assert "one-sided exact binomial test" in deployment
    assert "candidate: requests=20, errors=9, p99_ms=12.5" in deployment
    assert "age (psi, drifted)" in deployment
    assert "income (psi)" in deployment
    assert "drift on age" in deployment  # the open alert
    card = admin.get(f"/projects/{_name(0)}/models/2").text
    assert "Model card" in card
    assert "90% of the traffic" not in card
    assert "10% of the traffic" in card


def test_platform_numbers_on_a_busy_platform(busy: Portal) -> None:
    with busy.sessions() as session:
        numbers = platform_metrics.compute(session, tracking_uri=busy.settings.mlflow_db_url)
    assert numbers.projects == PROJECTS
    assert numbers.models_in_production == DEPLOYED
    assert numbers.runs_total == WITH_RUNS * RUNS_EACH
    assert (numbers.rollouts_finished, numbers.rollbacks) == (10, 3)
    assert numbers.change_failure_rate == pytest.approx(0.3)
    assert numbers.active_users_7d == 8  # user0..user6 and the admin who signed in
    assert numbers.deployments_per_week == pytest.approx(24 / 4)  # 24 allowed PUTs this week
    assert numbers.projects_by_week[-1].value == PROJECTS
    assert numbers.mean_hours_to_production is not None
    assert (numbers.drift_incidents, numbers.drift_open) == (3, 2)
    assert numbers.mean_hours_to_resolve_drift == pytest.approx(2, abs=0.1)


TUNED_STEPS = """
def train(x: float) -> float:
    return -((x - 1.0) ** 2) + 0.01 * x


def evaluate(score: float) -> dict:
    return {"score": score}
"""

TUNED_YAML = """
name: {name}
steps:
  - {{name: train, function: steps:train, params: {{x: 0.0}}}}
  - {{name: evaluate, function: steps:evaluate, inputs: {{score: train}}}}
metrics: {{step: evaluate, primary: score}}
tune:
  metric: score
  trials: 6
  params:
    train.x: {{type: float, low: -3, high: 3}}
"""


def test_the_tuning_page_plots_the_trials_of_a_real_study(busy: Portal, tmp_path: Path) -> None:
    from pave.config import Settings
    from pave.pipelines.tune import tune_project

    name = _name(1)
    root = tmp_path / name
    root.mkdir()
    (root / "pave.yaml").write_text(TUNED_YAML.format(name=name))
    (root / "steps.py").write_text(TUNED_STEPS)
    settings = Settings(home=tmp_path / "home", artifact_root=busy.settings.artifacts)
    result = tune_project(root, tracking_uri=busy.settings.mlflow_db_url, settings=settings, progress=False)
    admin = busy.signed_in(busy.admin_token)
    page = admin.get(f"/projects/{name}/tuning")
    assert page.status_code == 200, page.text[-800:]
    html = page.text
    assert f"Study {result.study}" in html
    assert "score by trial (maximize)" in html
    assert "best so far" in html
    assert html.count("<polyline") == 2
    assert "parameter importances" in html
    assert html.count("/mlflow/#/experiments/") >= 7  # the parent run and the six trials
    assert result.best is not None
    assert f"trial {result.best.number}:" in html
    assert admin.get(f"/projects/{_name(2)}/tuning").status_code == 200  # no study yet: says how
    assert "pave tune" in admin.get(f"/projects/{_name(2)}/tuning").text
    outsider = busy.signed_in(busy.token("trudy", "maintainer"))
    assert outsider.get(f"/projects/{name}/tuning").status_code == 403


def test_the_cost_page_shows_cost_per_kind_and_per_day(busy: Portal) -> None:
    from pave.governance import costs

    name = _name(3)
    now = datetime.now(UTC)
    with transaction(busy.sessions) as session:
        costs.record(
            session, name, [costs.Usage("step", "r/train", cpu_seconds=7200)], now=now - timedelta(days=2)
        )
        costs.record(session, name, [costs.Usage("batch", "b", cpu_seconds=3600)], now=now)
        costs.record(session, name, [costs.Usage("deployment", "h", requests=2_000_000)], now=now)
    admin = busy.signed_in(busy.admin_token)
    html = admin.get(f"/projects/{name}/costs").text
    assert "cost per kind" in html
    assert "cost per day" in html
    assert "<polyline" in html
    # a bar per kind: step, batch, deployment (and storage once the control plane counted it)
    assert {"step", "batch", "deployment"} <= set(re.findall(r"<rect [^>]*><title>(\w+): ", html))
    assert ">2.000</td>" in html  # two CPU-hours of steps
    assert admin.get(f"/projects/{_name(4)}/costs").status_code == 200  # nothing recorded: says so
    outsider = busy.signed_in(busy.token("carol", "maintainer"))
    assert outsider.get(f"/projects/{name}/costs").status_code == 403
