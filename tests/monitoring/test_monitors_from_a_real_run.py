"""The golden path feeds monitoring: a real `pave run` registers a version whose logged spec and
training profile are what the control plane's monitors use (read back from MLflow, not from a test double)."""

from __future__ import annotations

import textwrap
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from monitoring_kit import ControlPlane, alerts_of, send
from sqlalchemy import select

from pave.governance.egress import EgressPolicy
from pave.monitoring.scheduler import RegistrySpecs, Scheduler
from pave.pipelines import execute_project
from pave.store.tables import DeploymentRow, Project

PAVE_YAML = """
name: {name}
data:
  sources:
    train: {{path: data/train.csv}}
steps:
  - name: train
    function: steps:train
    inputs: {{df: data.train}}
model: {{step: train, flavor: sklearn}}
monitor:
  schedule: 1m
  monitors:
    - {{name: inputs, type: drift, method: psi, window: 1h, min_samples: 200}}
"""

STEPS_PY = """
from sklearn.linear_model import LogisticRegression


def train(df):
    return LogisticRegression().fit(df[["age", "income", "tenure"]], df["plan"] == "pro")
"""


def test_a_registered_version_carries_its_monitors_and_drift_reference(
    control_plane: ControlPlane, tmp_path: Path
) -> None:
    cp = control_plane
    name = f"golden-{uuid.uuid4().hex[:8]}"
    root = tmp_path / name
    (root / "data").mkdir(parents=True)
    (root / "pave.yaml").write_text(textwrap.dedent(PAVE_YAML.format(name=name)).lstrip())
    (root / "steps.py").write_text(textwrap.dedent(STEPS_PY).lstrip())
    rng = np.random.default_rng(0)
    training = pd.DataFrame(
        {
            "age": rng.normal(40, 12, 3_000),
            "income": rng.lognormal(10, 0.5, 3_000),
            "tenure": rng.integers(0, 30, 3_000).astype(float),
            "plan": rng.choice(["basic", "pro", "team"], 3_000, p=[0.6, 0.3, 0.1]),
        }
    )
    training.to_csv(root / "data" / "train.csv", index=False)
    result = execute_project(
        root, tracking_uri=cp.settings.mlflow_db_url, settings=cp.settings, progress=False
    )
    assert result.model_version == "1"

    spec = {"name": name, "versions": [{"version": "1", "uri": "unused", "weight": 100.0}]}
    with cp.platform.sessions() as session, session.begin():
        session.add(Project(name=name, owner="admin", created_by="admin"))
        session.add(DeploymentRow(name=name, project=name, spec=spec, created_by="t", updated_by="t"))
    with cp.platform.sessions() as session:
        row = session.scalar(select(DeploymentRow).where(DeploymentRow.name == name))
        assert row is not None
        monitoring = RegistrySpecs(cp.settings).get(row, "1")
    assert monitoring is not None
    assert [m.name for m in monitoring.spec.monitors] == ["inputs"]
    assert monitoring.spec.schedule == 60.0
    assert set(monitoring.profile["train"]["reference"]["features"]) == {"age", "income", "tenure", "plan"}

    # The scheduler with its default spec source: shifted traffic alerts on the shifted feature only.
    scheduler = Scheduler(cp.platform.sessions, cp.settings, egress=EgressPolicy())
    now = datetime.now(UTC) - timedelta(minutes=10)
    shifted = training.sample(1_000, random_state=1).reset_index(drop=True)
    shifted["age"] += 15.0
    send(cp, name, shifted, now.timestamp())
    scheduler.tick(now + timedelta(seconds=1))
    assert [(a.subject, a.status) for a in alerts_of(cp, name)] == [("age", "open")]
