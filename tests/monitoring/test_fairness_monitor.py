"""A fairness monitor on labelled traffic, with the numbers built into the data (as in
tests/pipelines/test_fairness.py: demographic parity difference 0.2, equalized odds 0.3)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from monitoring_kit import ControlPlane, alerts_of, scheduler_for, write_log

from pave.monitoring.scheduler import RegistrySpecs
from pave.monitoring.spec import MonitorDef


def constructed() -> pd.DataFrame:
    rows = []
    for sex, tp, fp in (("A", 40, 10), ("B", 25, 5)):
        rows += [(sex, 1, int(i < tp)) for i in range(50)]
        rows += [(sex, 0, int(i < fp)) for i in range(50)]
    return pd.DataFrame(rows, columns=["sex", "y", "predict"])


@pytest.mark.parametrize(("threshold", "fires"), [(0.1, True), (0.25, False)])
def test_a_fairness_monitor_judges_labelled_traffic_per_sensitive_group(
    control_plane: ControlPlane, threshold: float, fires: bool
) -> None:
    cp = control_plane
    name = cp.add_deployment("fair")
    monitor = {
        "name": "fair",
        "type": "fairness",
        "metric": "demographic_parity_difference",
        "features": ["sex"],
        "threshold": threshold,
        "min_samples": 150,
    }
    scheduler = scheduler_for(cp, name, {"monitors": [monitor]})
    data = constructed().sample(frac=1.0, random_state=3).reset_index(drop=True)
    inputs = data[["sex"]].assign(x=np.arange(len(data), dtype=float))
    # four rows per request: the labels are matched to the rows of their request
    ids = write_log(
        cp.log_dir, name, "1", inputs, {"predict": data["predict"].to_numpy()}, rows_per_request=4
    )
    labels = data["y"].tolist()
    items = [{"inference_id": i, "label": labels[4 * n : 4 * n + 4]} for n, i in enumerate(ids)]
    assert cp.client.post("/api/v1/feedback", json={"items": items[:30]}).status_code == 200
    scheduler.tick()
    assert alerts_of(cp, name) == []  # 120 labelled rows: fewer than min_samples, no verdict
    assert cp.client.post("/api/v1/feedback", json={"items": items[30:]}).status_code == 200
    scheduler.tick(datetime.now(UTC) + timedelta(minutes=10))
    alerts = alerts_of(cp, name)
    assert [(a.kind, a.subject) for a in alerts] == (
        [("fairness", "demographic_parity_difference")] if fires else []
    )
    with cp.platform.sessions() as session:
        from sqlalchemy import select

        from pave.store.tables import MonitorStateRow

        state = session.scalar(select(MonitorStateRow).where(MonitorStateRow.project == name))
        assert state is not None
        report = state.last_result["report"]
    assert report["metrics"]["demographic_parity_difference"] == pytest.approx(0.2, abs=1e-12)
    assert report["metrics"]["equalized_odds_difference"] == pytest.approx(0.3, abs=1e-12)
    assert report["features"]["sex"]["groups"]["B"]["selection_rate"] == pytest.approx(0.3)
    if fires:
        assert alerts[0].details["value"] == pytest.approx(0.2)
        assert alerts[0].details["n_labelled"] == 200


def test_a_fairness_monitor_takes_its_features_from_the_projects_fairness_section(tmp_path) -> None:
    spec_dir = tmp_path / "run"
    (spec_dir / "pave").mkdir(parents=True)
    (spec_dir / "pave" / "spec.json").write_text(
        '{"fairness": {"sensitive_features": ["sex"], "positive_label": "yes"},'
        ' "monitor": {"monitors": [{"name": "f", "type": "fairness",'
        ' "metric": "equalized_odds_difference", "threshold": 0.1}]}}'
    )
    monitoring = RegistrySpecs._read(spec_dir, "1")
    (monitor,) = monitoring.spec.monitors
    assert (monitor.features, monitor.positive_label) == (["sex"], "yes")
    with pytest.raises(ValueError, match="needs metric"):
        MonitorDef(name="f", type="fairness", threshold=0.1)
    with pytest.raises(ValueError, match="largest acceptable difference"):
        MonitorDef(name="f", type="fairness", metric="demographic_parity_difference", threshold=1.5)
