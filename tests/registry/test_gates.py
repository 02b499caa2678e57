from __future__ import annotations

import pytest

from pave.pipelines.spec import GateSpec
from pave.registry.gates import all_passed, evaluate_gates


def gate(**kwargs: object) -> GateSpec:
    return GateSpec.model_validate(kwargs)


def test_absolute_gates_report_threshold_observed_and_shortfall() -> None:
    results = evaluate_gates(
        [gate(metric="auc", min=0.9), gate(metric="rmse", max=10.0), gate(metric="auc", min=0.5, max=0.8)],
        {"auc": 0.85, "rmse": 12.5},
    )
    low, high, band_min, band_max = results
    assert (low.passed, low.threshold, low.observed, low.shortfall) == (False, 0.9, 0.85, pytest.approx(0.05))
    assert "failed by 0.05" in low.message
    assert (high.passed, high.shortfall) == (False, 2.5)
    assert band_min.passed
    assert (band_max.passed, band_max.shortfall) == (False, pytest.approx(0.05))
    assert not all_passed(results)


def test_a_metric_that_was_not_logged_fails_its_gate() -> None:
    (result,) = evaluate_gates([gate(metric="auc", min=0.1)], {})
    assert not result.passed
    assert result.message == "auc was not logged"


def test_relative_gates_are_skipped_without_a_champion() -> None:
    results = evaluate_gates([gate(metric="auc", compare_to="champion", max_drop=0.01)], {"auc": 0.5})
    assert results[0].skipped
    assert all_passed(results)


@pytest.mark.parametrize(
    ("direction", "observed", "passed", "threshold"),
    [
        ("maximize", 0.895, True, 0.89),
        ("maximize", 0.88, False, 0.89),
        ("minimize", 0.905, True, 0.91),
        ("minimize", 0.92, False, 0.91),
    ],
)
def test_relative_gates_allow_max_drop_in_the_metric_direction(
    direction: str, observed: float, passed: bool, threshold: float
) -> None:
    (result,) = evaluate_gates(
        [gate(metric="m", compare_to="champion", max_drop=0.01)],
        {"m": observed},
        direction=direction,  # type: ignore[arg-type]
        champion={"m": 0.9},
        champion_version="3",
    )
    assert result.passed is passed
    assert result.threshold == pytest.approx(threshold)
    assert result.baseline == 0.9
    assert result.shortfall == (0.0 if passed else pytest.approx(abs(observed - threshold)))
    assert "champion v3" in result.message


def test_a_gate_can_override_the_direction() -> None:
    (result,) = evaluate_gates(
        [gate(metric="loss", compare_to="champion", direction="minimize")],
        {"loss": 0.5},
        direction="maximize",
        champion={"loss": 0.4},
        champion_version="1",
    )
    assert not result.passed
    assert result.shortfall == pytest.approx(0.1)
