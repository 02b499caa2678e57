"""The model-metric guard of progressive rollouts: its statistics on real numbers, and the
decisions it makes on a real store and inference log (labels injected as monitoring returns them)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from scipy import stats

from pave.serving import rollouts
from pave.store.tables import DeploymentRow, RolloutRow


@dataclass
class Labelled:
    version: str
    n_labelled: int
    metrics: dict[str, float]
    scores: np.ndarray = field(repr=False)
    task: str = ""


def correct(n: int, right: int, version: str = "") -> Labelled:
    scores = np.array([1.0] * right + [0.0] * (n - right))
    return Labelled(version, n, {"accuracy": right / n}, scores)


def squared(errors: list[float], version: str = "") -> Labelled:
    scores = np.array(errors) ** 2
    return Labelled(version, len(errors), {"rmse": float(np.sqrt(scores.mean()))}, scores)


def test_two_proportion_z_test_on_correctness_matches_the_textbook_numbers():
    # baseline 90/100 right, candidate 70/100: pooled p = 0.8, se = sqrt(.8 * .2 * (1/100 + 1/100))
    result = rollouts.compare_labels(correct(100, 90), correct(100, 70), alpha=0.05)
    assert result.kind == "classification"
    assert result.statistic == pytest.approx(0.2 / math.sqrt(0.0032))  # z = 3.5355
    assert result.p_value == pytest.approx(2.035e-4, rel=1e-3)
    assert result.worse
    assert result.baseline == {"n": 100.0, "accuracy": 0.9}
    assert result.candidate == {"n": 100.0, "accuracy": 0.7}


def test_z_test_is_one_sided_a_better_or_equal_candidate_is_never_worse():
    better = rollouts.compare_labels(correct(100, 70), correct(100, 90), alpha=0.05)
    assert better.p_value == pytest.approx(1 - 2.035e-4, rel=1e-3)
    assert not better.worse
    same = rollouts.compare_labels(correct(200, 180), correct(50, 45), alpha=0.05)
    assert same.statistic == 0
    assert same.p_value == pytest.approx(0.5)
    perfect = rollouts.compare_labels(correct(40, 40), correct(40, 40), alpha=0.05)
    assert perfect.p_value == 1.0
    assert not perfect.worse


def test_a_small_drop_on_few_labels_is_not_significant():
    # 27/30 against 24/30: pooled 0.85, z = 1.085, p = 0.139
    result = rollouts.compare_labels(correct(30, 27), correct(30, 24), alpha=0.05)
    assert result.p_value == pytest.approx(0.1390, abs=1e-3)
    assert not result.worse


def test_welch_t_test_on_squared_errors():
    base = squared([0.1, -0.2, 0.15, -0.05, 0.1, 0.2, -0.1, 0.05])
    cand = squared([0.9, -1.1, 0.7, 1.3, -0.8, 1.0, 0.6, -1.2])
    result = rollouts.compare_labels(base, cand, alpha=0.05)
    assert result.kind == "regression"
    b, c = base.scores, cand.scores
    vb, vc = b.var(ddof=1) / len(b), c.var(ddof=1) / len(c)
    t = (c.mean() - b.mean()) / math.sqrt(vb + vc)
    df = (vb + vc) ** 2 / (vb**2 / (len(b) - 1) + vc**2 / (len(c) - 1))
    assert result.statistic == pytest.approx(t)
    assert result.p_value == pytest.approx(stats.t.sf(t, df))
    assert result.p_value < 1e-3
    assert result.worse
    reverse = rollouts.compare_labels(cand, base, alpha=0.05)
    assert reverse.p_value > 0.99
    assert not reverse.worse


def test_constant_squared_errors_do_not_produce_nan():
    zero = squared([0.0] * 10)
    one = squared([1.0] * 10)
    assert rollouts.compare_labels(zero, one, alpha=0.05).worse
    assert not rollouts.compare_labels(one, zero, alpha=0.05).worse


def test_policy_checks_min_labels():
    policy = rollouts.RolloutPolicy.from_dict({"min_labels": 10, "require_labels": True})
    assert policy.min_labels == 10
    assert policy.require_labels
    with pytest.raises(Exception, match="min_labels"):
        rollouts.RolloutPolicy.from_dict({"min_labels": 1})
    with pytest.raises(Exception, match="require_labels needs a step below 100"):
        rollouts.RolloutPolicy.from_dict({"steps": [100], "require_labels": True})


# --- decisions on a real store and inference log ---------------------------------------------------


def _log_requests(directory: Path, versions: dict[str, int]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    now = time.time()
    stamp = datetime.fromtimestamp(now - 5, UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    lines = [
        orjson.dumps(
            {
                "id": f"{v}-{i}",
                "deployment": "churn",
                "version": v,
                "ts": now - 1,
                "latency_ms": 1.0,
                "shadow": False,
                "inputs": {},
                "outputs": {},
            },
            option=orjson.OPT_APPEND_NEWLINE,
        )
        for v, n in versions.items()
        for i in range(n)
    ]
    (directory / f"inference-{stamp}-1-0.jsonl").write_bytes(b"".join(lines))


def _rollout(store: Any, log_dir: Path, **policy: Any) -> int:
    _, sessions = store
    spec = {
        "name": "churn",
        "versions": [
            {"version": "1", "uri": "/models/1", "weight": 50.0},
            {"version": "2", "uri": "/models/2", "weight": 50.0},
        ],
    }
    started = datetime.now(UTC) - timedelta(seconds=30)
    rules = rollouts.RolloutPolicy.from_dict({"steps": [50, 100], "interval_seconds": 5, **policy})
    with sessions.begin() as session:
        session.add(DeploymentRow(name="churn", project="churn", spec=spec, created_by="t", updated_by="t"))
        row = RolloutRow(
            deployment="churn",
            baseline_version="1",
            candidate_version="2",
            policy=rollouts.asdict(rules),
            step_index=0,
            step_started_at=started,
            created_at=started,
            state=rollouts.RUNNING,
            history=[{"event": "started"}],
            created_by="t",
        )
        session.add(row)
        session.flush()
        rollout_id = row.id
    _log_requests(log_dir, {"1": 60, "2": 60})
    return rollout_id


def _state(store: Any, rollout_id: int) -> tuple[RolloutRow, dict[str, Any]]:
    _, sessions = store
    with sessions() as session:
        row = session.get(RolloutRow, rollout_id)
        assert row is not None
        spec = session.query(DeploymentRow).one().spec
        session.expunge_all()
    return row, spec


def test_a_significantly_worse_candidate_is_rolled_back_with_its_test_in_the_history(store, tmp_path):
    settings, sessions = store
    log_dir = tmp_path / "log"
    rollout_id = _rollout(store, log_dir, min_requests=50, min_labels=30)
    asked: list[tuple[str, datetime]] = []

    def performance(deployment: str, since: datetime) -> dict[str, Labelled]:
        asked.append((deployment, since))
        return {"1": correct(100, 90, "1"), "2": correct(100, 70, "2")}

    rollouts.tick(sessions, settings, log_dir, performance=performance)
    row, spec = _state(store, rollout_id)
    assert row.state == "rolled_back"
    assert [v["version"] for v in spec["versions"]] == ["1"]
    last = row.history[-1]
    assert "two-proportion z-test" in last["test"]
    assert last["labels"]["p_value"] == pytest.approx(2.035e-4, rel=1e-3)
    assert last["labels"]["alpha"] == pytest.approx(0.025)  # 0.05 over two planned looks
    assert last["labels"]["statistic"] == pytest.approx(3.5355, rel=1e-4)
    assert asked
    assert asked[0][0] == "churn"


def test_labels_too_few_hold_the_step_when_required_and_then_it_advances(store, tmp_path):
    settings, sessions = store
    log_dir = tmp_path / "log"
    rollout_id = _rollout(store, log_dir, min_requests=50, min_labels=30, require_labels=True)
    labels = {"1": correct(10, 9, "1"), "2": correct(10, 9, "2")}
    for _ in range(3):
        rollouts.tick(sessions, settings, log_dir, performance=lambda d, s: labels)
    row, spec = _state(store, rollout_id)
    assert row.state == "running"
    assert row.step_index == 0
    waits = [e for e in row.history if e["event"] == "waiting_for_labels"]
    assert len(waits) == 1
    assert waits[0]["labels"] == {"baseline": 10, "candidate": 10, "min_labels": 30}
    assert [v["weight"] for v in spec["versions"]] == [50.0, 50.0]

    labels = {"1": correct(40, 36, "1"), "2": correct(40, 35, "2")}
    rollouts.tick(sessions, settings, log_dir, performance=lambda d, s: labels)
    row, spec = _state(store, rollout_id)
    assert row.step_index == 1
    assert row.history[-1]["event"] == "advanced"
    assert row.history[-1]["labels"]["worse"] is False
    assert "two-proportion z-test" in row.history[-1]["test"]
    assert [(v["version"], v["weight"]) for v in spec["versions"]] == [("2", 100.0)]


def test_without_require_labels_a_step_advances_on_too_few_labels_and_a_broken_label_source(store, tmp_path):
    settings, sessions = store
    log_dir = tmp_path / "log"
    rollout_id = _rollout(store, log_dir, min_requests=50)

    def broken(deployment: str, since: datetime) -> dict[str, Labelled]:
        raise RuntimeError("monitoring is down")

    rollouts.tick(sessions, settings, log_dir, performance=broken)
    row, _ = _state(store, rollout_id)
    assert row.step_index == 1
    assert "labels too few" in row.history[-1]["test"]


def test_recommendation_precision_is_worse_when_lower():
    base = Labelled("1", 20, {"precision_at_k": 0.6}, np.array([0.6, 0.8, 0.4, 0.6] * 5), "recommendation")
    cand = Labelled("2", 20, {"precision_at_k": 0.2}, np.array([0.2, 0.0, 0.4, 0.2] * 5), "recommendation")
    result = rollouts.compare_labels(base, cand, alpha=0.05)
    assert result.kind == "recommendation"
    assert result.worse
    assert result.statistic < 0
    assert "precision@k" in result.test
    assert not rollouts.compare_labels(cand, base, alpha=0.05).worse


def test_a_stalled_step_says_what_it_waits_for(store, tmp_path):
    settings, sessions = store
    log_dir = tmp_path / "log"
    rollout_id = _rollout(store, log_dir, min_requests=100, interval_seconds=3600)  # 60 answers so far
    rollouts.tick(sessions, settings, log_dir)
    row, _ = _state(store, rollout_id)
    assert row.state == "running"
    assert row.step_index == 0
    waiting = rollouts.waiting_for(row, log_dir)
    assert waiting is not None
    assert waiting.startswith("the 50% step waits for 40 more answers from v2 (60 of the 100 a step needs")
    assert "s more of the 3600 s a step lasts" in waiting
    assert rollouts.describe(row, log_dir=log_dir)["waiting_for"] == waiting


def test_a_step_held_for_labels_names_the_counts(store, tmp_path):
    settings, sessions = store
    log_dir = tmp_path / "log"
    rollout_id = _rollout(store, log_dir, min_requests=50, min_labels=30, require_labels=True)
    labels = {"1": correct(10, 9, "1"), "2": correct(4, 3, "2")}
    rollouts.tick(sessions, settings, log_dir, performance=lambda d, s: labels)
    row, _ = _state(store, rollout_id)
    waiting = rollouts.waiting_for(row, log_dir)
    assert waiting == (
        "the 50% step waits for labels of 30 inferences per version (v1 has 10, v2 4; "
        "POST them to /api/v1/feedback)"
    )
    row.state = "rolled_back"
    assert rollouts.waiting_for(row, log_dir) is None
