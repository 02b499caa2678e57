"""Fairness: how a classifier's decisions differ between the groups of a sensitive feature.

``fairness:`` in ``pave.yaml`` names the sensitive features::

    fairness:
      sensitive_features: [sex]      # columns of the evaluation data
      data_from: prepare             # the step holding X_test / y_test (default: model.input_example_from)
      positive_label: 1              # the favourable outcome (default: 1, or the larger of two labels)

Two numbers, computed with fairlearn, for each sensitive feature:

* ``demographic_parity_difference``: the largest difference between two groups' selection rates
  (the share of rows predicted positive);
* ``equalized_odds_difference``: the larger of the largest differences between two groups' true
  positive rates and false positive rates.

Both are 0 for a model that treats the groups alike and at most 1. The metric of the run is the
worst (largest) over the sensitive features; :func:`fairness_report` keeps each feature's value and
each group's count, selection rate, true and false positive rates. At evaluation (``pave run``)
they are logged as metrics, usable as gates (``{metric: demographic_parity_difference, max: 0.1}``),
and as the run's ``fairness.json``, which the model card shows; a ``fairness`` monitor computes
the same from labelled traffic (:mod:`pave.monitoring.fairness`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from pave.errors import InvalidInput, MissingExtra

METRICS = ("demographic_parity_difference", "equalized_odds_difference")
FAIRNESS_ARTIFACT = "fairness.json"
_X_KEYS = ("X_test", "X_valid", "X_val")
_Y_KEYS = ("y_test", "y_valid", "y_val")
SENSITIVE_KEY = "sensitive_test"


class FairnessSpec(BaseModel):
    """The ``fairness:`` section of ``pave.yaml``."""

    model_config = ConfigDict(extra="forbid")

    sensitive_features: list[str] = Field(
        min_length=1, description="Columns whose groups are compared, e.g. [sex, age_band]."
    )
    data_from: str | None = Field(
        default=None,
        description=(
            "A step whose output holds the evaluation split: X_test (or X_valid, X_val), y_test (or "
            "y_valid, y_val) and, for sensitive columns the model does not take, sensitive_test "
            "(a DataFrame). Default: model.input_example_from."
        ),
    )
    positive_label: str | int | float | bool | None = Field(
        default=None, description="The favourable outcome (default: 1, or the larger of two labels)."
    )


def _fairlearn() -> Any:
    try:
        import fairlearn.metrics as metrics
    except ImportError as exc:
        raise MissingExtra("fairness metrics", "fairness") from exc
    return metrics


def _same(value: Any) -> Any:
    # 1 and 1.0 are one label (JSON and numpy disagree on integer-valued floats)
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def positive_of(labels: Sequence[Any], positive_label: Any = None) -> Any:
    """The favourable label: the one asked for; for two labels (or one), 1 if present, else the larger."""
    if positive_label is not None:
        return _same(positive_label)
    seen = sorted({_same(v) for v in labels}, key=lambda v: (str(type(v)), v))
    if len(seen) <= 2:
        return 1 if 1 in seen or not seen else seen[-1]
    raise InvalidInput(
        f"fairness needs a binary outcome; the labels have {len(seen)} values ({seen[:5]}...)",
        hint="set fairness.positive_label in pave.yaml: the favourable outcome",
    )


def _binary(values: Sequence[Any], positive: Any) -> np.ndarray:
    array = np.asarray(values, dtype=object)
    floats = [v for v in array if isinstance(v, float | np.floating) and not float(v).is_integer()]
    if floats and positive in (1, True):  # probabilities of the positive class
        return np.array([float(v) >= 0.5 for v in array], dtype=int)
    return np.array([_same(v) == positive for v in array], dtype=int)


def fairness_report(
    y_true: Sequence[Any], y_pred: Sequence[Any], sensitive: pd.DataFrame, positive_label: Any = None
) -> dict[str, Any]:
    """Both differences per sensitive feature, per-group rates, and the worst over the features.

    Args:
        y_true: the labels. y_pred: the model's decisions (classes; probabilities of the positive
            class are cut at 0.5). sensitive: one column per sensitive feature, row-aligned.
        positive_label: the favourable outcome (see :func:`positive_of`).
    """
    metrics = _fairlearn()
    positive = positive_of(list(y_true), positive_label)
    truth, pred = _binary(list(y_true), positive), _binary(list(y_pred), positive)
    rates = {
        "count": metrics.count,
        "selection_rate": metrics.selection_rate,
        "true_positive_rate": metrics.true_positive_rate,
        "false_positive_rate": metrics.false_positive_rate,
    }
    features: dict[str, Any] = {}
    for column in sensitive.columns:
        groups = sensitive[column].astype(str).to_numpy()
        frame = metrics.MetricFrame(metrics=rates, y_true=truth, y_pred=pred, sensitive_features=groups)
        features[str(column)] = {
            "demographic_parity_difference": _number(
                metrics.demographic_parity_difference(truth, pred, sensitive_features=groups)
            ),
            "equalized_odds_difference": _number(
                metrics.equalized_odds_difference(truth, pred, sensitive_features=groups)
            ),
            "groups": {
                str(group): {name: _number(value) for name, value in row.items()}
                for group, row in frame.by_group.iterrows()
            },
        }
    worst = {
        name: max((f[name] for f in features.values() if f[name] is not None), default=None)
        for name in METRICS
    }
    return {"positive_label": positive, "rows": len(truth), "metrics": worst, "features": features}


def _number(value: Any) -> float | None:
    number = float(value)
    return None if math.isnan(number) else number


def _part(output: Any, keys: tuple[str, ...]) -> Any:
    for key in keys:
        found = output.get(key) if isinstance(output, dict) else getattr(output, key, None)
        if found is not None:
            return found
    return None


def evaluate_model(spec: FairnessSpec, model: Any, output: Any, step: str) -> dict[str, Any]:
    """The report of ``model`` on the evaluation split in ``output`` (the output of ``step``).

    Raises:
        InvalidInput: no split, a sensitive column nowhere, or a model without ``predict``.
    """
    X, y = _part(output, _X_KEYS), _part(output, _Y_KEYS)
    if X is None or y is None:
        raise InvalidInput(
            f"fairness: the output of step {step} has no evaluation split",
            hint=f"return X_test and y_test from {step} (or set fairness.data_from to a step that does)",
        )
    extra = _part(output, (SENSITIVE_KEY,))
    frames = [f for f in (extra, X) if isinstance(f, pd.DataFrame)]
    columns = {}
    for name in spec.sensitive_features:
        found = next((f[name] for f in frames if name in f.columns), None)
        if found is None:
            raise InvalidInput(
                f"fairness: sensitive feature {name!r} is neither a column of X_test nor of {SENSITIVE_KEY}",
                hint=f"return {SENSITIVE_KEY} (a DataFrame with {name}) from {step}, or fix "
                "fairness.sensitive_features",
            )
        columns[name] = np.asarray(found)
    predict = getattr(model, "predict", None)
    if predict is None:
        raise InvalidInput(
            f"fairness: the model ({type(model).__name__}) has no predict(X)",
            hint="remove fairness: from pave.yaml, or log a scikit-learn or LightGBM model",
        )
    predictions = np.asarray(predict(X)).reshape(len(columns[spec.sensitive_features[0]]), -1)
    predicted = predictions[:, -1] if predictions.shape[1] > 1 else predictions[:, 0]
    return fairness_report(list(np.asarray(y)), list(predicted), pd.DataFrame(columns), spec.positive_label)
