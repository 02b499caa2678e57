"""Global importances and attribution drift on a real model: the reference equals the exact linear
SHAP formula, traffic like the training data does not alert, and a feature whose attributions
grow does (its model loaded in a process of its own, never in the control plane)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
from monitoring_kit import ControlPlane, StaticSpecs, alerts_of, write_log
from sklearn.linear_model import LogisticRegression
from sqlalchemy import select

from pave.governance.egress import EgressPolicy
from pave.monitoring.scheduler import Monitoring, Scheduler
from pave.monitoring.spec import MonitorSpec
from pave.serving.attributions import importances_of_uri
from pave.store.tables import DeploymentRow, MonitorStateRow, Project


def frame(rows: int, seed: int, b_scale: float = 1.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"a": rng.normal(0, 1, rows), "b": rng.normal(0, 1, rows) * b_scale})


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    X = frame(2_000, seed=0)
    y = (2.0 * X["a"] + 1.0 * X["b"] + np.random.default_rng(1).normal(0, 0.5, len(X)) > 0).astype(int)
    path = tmp_path_factory.mktemp("attr") / "model"
    mlflow.sklearn.save_model(LogisticRegression().fit(X, y), str(path), input_example=X.head(5))
    return path


def test_the_reference_is_the_exact_mean_absolute_linear_shap(model_dir: Path, tmp_path: Path) -> None:
    rows = frame(200, seed=2)
    found = importances_of_uri(str(model_dir), rows, tracking_uri=None, home=tmp_path)
    model = mlflow.sklearn.load_model(str(model_dir))
    background = frame(2_000, seed=0).head(5).mean()  # the input example: the linear background
    for j, name in enumerate(["a", "b"]):
        exact = np.abs(model.coef_[0, j] * (rows[name] - background[name])).mean()
        assert found["features"][name] == pytest.approx(exact, rel=1e-9)
    assert (found["method"], found["output_space"], found["rows"]) == ("linear", "log_odds", 200)


def test_attribution_drift_alerts_for_the_feature_the_answers_now_rest_on(
    control_plane: ControlPlane, model_dir: Path, tmp_path: Path
) -> None:
    cp = control_plane
    name = f"reasons-{uuid.uuid4().hex[:8]}"
    spec = {"name": name, "versions": [{"version": "1", "uri": str(model_dir), "weight": 1}]}
    with cp.platform.sessions() as session, session.begin():
        session.add(Project(name=name, owner="admin", created_by="admin"))
        session.add(DeploymentRow(name=name, project=name, spec=spec, created_by="t", updated_by="t"))
    reference = importances_of_uri(str(model_dir), frame(200, seed=2), tracking_uri=None, home=tmp_path)
    monitor = {"name": "reasons", "type": "attribution_drift", "threshold": 0.1, "min_samples": 100}
    monitoring = Monitoring(MonitorSpec.model_validate({"monitors": [monitor]}), {}, "1", reference)
    scheduler = Scheduler(
        cp.platform.sessions,
        cp.settings,
        specs=StaticSpecs(name, monitoring),
        egress=EgressPolicy(allowed_networks=["127.0.0.0/8"]),
    )
    start = datetime.now(UTC) - timedelta(hours=2)
    calm = frame(200, seed=3)
    write_log(
        cp.log_dir,
        name,
        "1",
        calm,
        {"predict": np.zeros(200, dtype=int)},
        rows_per_request=20,
        ts=start.timestamp(),
    )
    scheduler.tick(start + timedelta(seconds=1))
    assert alerts_of(cp, name) == []  # the same distribution: the answers rest on the same features
    with cp.platform.sessions() as session:
        state = session.scalar(select(MonitorStateRow).where(MonitorStateRow.project == name))
        assert state is not None
        judged = state.last_result["verdicts"]
    assert [(v["subject"], v["firing"]) for v in judged] == [("a", False), ("b", False)]
    later = datetime.now(UTC)
    moved = frame(200, seed=4, b_scale=4.0)
    write_log(
        cp.log_dir,
        name,
        "1",
        moved,
        {"predict": np.zeros(200, dtype=int)},
        rows_per_request=20,
        ts=later.timestamp(),
    )
    scheduler.tick(later + timedelta(seconds=1))
    alerts = alerts_of(cp, name)
    assert [(a.kind, a.subject) for a in alerts] == [("attribution_drift", "b")]
    details = alerts[0].details
    assert details["live"] > 3 * details["reference"]
    assert details["shift"] > 0.1
