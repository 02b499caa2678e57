"""Model performance on real outcomes: labels joined to the predictions they label, per version.

Each labelled request contributes one value per row: the row's prediction (the ``predict``
output), its score for ROC AUC (``predict_proba``'s positive-class column, binary classifiers
only) and its label. The task is read from the data unless given: ranked lists are a
recommendation (precision@k, k = the length of each list), strings and booleans, or integers
on both sides, are classes, anything else is a regression.

Metrics: ``accuracy``, ``f1`` (binary: of the positive class, the larger label; macro over classes
otherwise) and ``roc_auc`` (when scores exist and both classes occur) for classification;
``rmse`` and ``mae`` for regression; ``precision_at_k`` for recommendation. ``scores`` keeps the
per-row evidence for statistical tests: 1.0/0.0 correct (classification), squared error
(regression), per-row precision (recommendation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.monitoring.feedback import PROBA, prediction_output
from pave.store.tables import FeedbackRow, InferenceIndexRow

Task = Literal["classification", "regression", "recommendation"]


@dataclass(frozen=True)
class VersionPerformance:
    """One version's metrics over a window of labelled requests."""

    version: str
    n_labelled: int
    metrics: dict[str, float]
    scores: np.ndarray
    task: str = "classification"
    window: tuple[str, str | None] = field(default=("", None))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types (``scores`` left out: it can be long)."""
        return {
            "version": self.version,
            "n_labelled": self.n_labelled,
            "metrics": self.metrics,
            "task": self.task,
            "since": self.window[0],
            "until": self.window[1],
        }


@dataclass
class _Rows:
    predictions: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)
    probas: list[Any] = field(default_factory=list)


def performance_by_version(
    settings: Settings,
    sessions: sessionmaker[Session],
    deployment: str,
    *,
    since: datetime,
    until: datetime | None = None,
    task: Task | None = None,
) -> dict[str, VersionPerformance]:
    """Metrics per model version of ``deployment`` over the requests made in ``[since, until)``.

    Args:
        settings: the platform's settings (kept for symmetry with the other monitoring calls).
        sessions: the store.
        deployment: the deployment (its OIP model name).
        since, until: the window, on the time of the request (not of the label).
        task: force the task instead of reading it from the data.

    Returns:
        Version -> :class:`VersionPerformance`, only for versions with at least one labelled row.
    """
    del settings
    with sessions() as session:
        query = (
            select(InferenceIndexRow.version, InferenceIndexRow.outputs, FeedbackRow.label)
            .join(FeedbackRow, FeedbackRow.inference_id == InferenceIndexRow.inference_id)
            .where(InferenceIndexRow.deployment == deployment, InferenceIndexRow.ts >= since)
        )
        if until is not None:
            query = query.where(InferenceIndexRow.ts < until)
        fetched = session.execute(query).tuples().all()
    by_version: dict[str, _Rows] = {}
    for version, outputs, label in fetched:
        name = prediction_output(outputs or {})
        if name is None or not isinstance(label, list):
            continue
        predictions = outputs.get(name) or []
        probas = outputs.get(PROBA) or [None] * len(predictions)
        rows = by_version.setdefault(version, _Rows())
        for prediction, proba, value in zip(predictions, probas, label, strict=False):
            rows.predictions.append(prediction)
            rows.probas.append(proba)
            rows.labels.append(value)
    window = (since.isoformat(), until.isoformat() if until else None)
    result = {}
    for version, rows in sorted(by_version.items(), key=lambda kv: _version_key(kv[0])):
        kind = task or infer_task(rows.predictions, rows.labels)
        metrics, scores = compute_metrics(kind, rows.predictions, rows.labels, rows.probas)
        result[version] = VersionPerformance(version, len(rows.labels), metrics, scores, kind, window)
    return result


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 62, version)


def infer_task(predictions: list[Any], labels: list[Any]) -> Task:
    """The task the predictions and labels look like (see the module docstring)."""
    if predictions and isinstance(predictions[0], list):
        return "recommendation"
    values = predictions + labels
    if any(isinstance(v, str | bool) for v in values):
        return "classification"
    if all(isinstance(v, int) or (isinstance(v, float) and v.is_integer()) for v in predictions) and all(
        isinstance(v, int) for v in labels
    ):
        return "classification"
    return "regression"


def compute_metrics(
    task: Task, predictions: list[Any], labels: list[Any], probas: list[Any] | None = None
) -> tuple[dict[str, float], np.ndarray]:
    """The metrics of ``task`` and the per-row scores (see the module docstring)."""
    if not labels:
        return {}, np.empty(0)
    if task == "recommendation":
        return _ranking(predictions, labels)
    if task == "regression":
        pred = np.asarray(predictions, dtype=np.float64)
        truth = np.asarray(labels, dtype=np.float64)
        squared = (pred - truth) ** 2
        return {"rmse": float(math.sqrt(squared.mean())), "mae": float(np.abs(pred - truth).mean())}, squared
    return _classification(predictions, labels, probas or [None] * len(labels))


def _classification(
    predictions: list[Any], labels: list[Any], probas: list[Any]
) -> tuple[dict[str, float], np.ndarray]:
    from sklearn.metrics import f1_score, roc_auc_score

    pred = [_class(v) for v in predictions]
    truth = [_class(v) for v in labels]
    correct = np.array([p == t for p, t in zip(pred, truth, strict=True)], dtype=np.float64)
    classes = sorted(set(truth) | set(pred), key=lambda c: (str(type(c)), c))
    metrics: dict[str, float] = {"accuracy": float(correct.mean())}
    as_text = [str(v) for v in truth], [str(v) for v in pred]
    if len(classes) <= 2:
        positive = str(classes[-1])
        metrics["f1"] = float(f1_score(*as_text, pos_label=positive, average="binary", zero_division=0))
    else:
        metrics["f1"] = float(f1_score(*as_text, average="macro", zero_division=0))
    scores = [p[-1] if isinstance(p, list) and len(p) == 2 else None for p in probas]
    truth_classes = sorted(set(truth), key=lambda c: (str(type(c)), c))
    if len(truth_classes) == 2 and all(s is not None for s in scores):
        positive_truth = [t == truth_classes[-1] for t in truth]
        metrics["roc_auc"] = float(roc_auc_score(positive_truth, scores))
    return metrics, correct


def _class(value: Any) -> Any:
    # 1 and 1.0 are the same class (JSON and numpy disagree on integer-valued floats).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _ranking(predictions: list[Any], labels: list[Any]) -> tuple[dict[str, float], np.ndarray]:
    precision = []
    for ranked, relevant in zip(predictions, labels, strict=True):
        items = ranked if isinstance(ranked, list) else [ranked]
        wanted = {str(v) for v in (relevant if isinstance(relevant, list) else [relevant])}
        precision.append(sum(str(v) in wanted for v in items) / len(items) if items else 0.0)
    scores = np.asarray(precision, dtype=np.float64)
    return {"precision_at_k": float(scores.mean())}, scores


def metric_is_worse(metric: str, value: float, threshold: float) -> bool:
    """Whether ``value`` of ``metric`` is worse than ``threshold`` (lower for errors, higher otherwise)."""
    if metric in ("rmse", "mae"):
        return value > threshold
    return value < threshold
