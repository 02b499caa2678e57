"""Compiled predict paths: common models reduced to the work their prediction needs.

For one row, scikit-learn spends about a millisecond validating its input (``check_array``,
dataframe detection, estimator tags) around a few microseconds of arithmetic. The gateway has
already enforced the model's signature and built a float matrix in the estimator's column order,
so that validation is per-request work that can be done at load time. ``compile_estimator``
turns the estimators whose arithmetic is a handful of numpy operations into one closure:

- transformers: ``StandardScaler``, ``MinMaxScaler``, ``MaxAbsScaler``, ``"passthrough"``;
- linear models: ``LogisticRegression`` (binary and multinomial), ``LinearRegression``,
  ``Ridge``, ``Lasso``, ``ElasticNet``;
- a ``Pipeline`` made only of those.

Tree models keep their own compiled code but lose the per-call overhead around it:

- scikit-learn trees and forests (``DecisionTree*``, ``RandomForest*``, ``ExtraTrees*``, one
  output): each tree's own predict on float32 without re-validation (``check_input=False``),
  summed in the estimators' order as scikit-learn does;
- LightGBM (the scikit-learn API models and a ``Booster``): the booster itself, on one thread for
  the small batches a gateway sees (OpenMP's thread start-up costs more than a few rows'
  prediction; larger batches use LightGBM's default threads).

Anything else returns ``None`` and keeps the model's own predict. A compiled path is never
trusted on its own: ``pave.serving.loading`` compares it with the estimator's own output on the
input example and on perturbed copies of it at load time, and keeps scikit-learn's path when they
disagree (labels must be equal, numbers within 1e-9 relative).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]
# (labels or values, probabilities or None) for a float64 matrix
Predict = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]

_LINEAR_REGRESSORS = frozenset({"LinearRegression", "Ridge", "Lasso", "ElasticNet"})


_FORESTS = frozenset(
    {"RandomForestClassifier", "ExtraTreesClassifier", "RandomForestRegressor", "ExtraTreesRegressor"}
)
_TREES = frozenset(
    {"DecisionTreeClassifier", "ExtraTreeClassifier", "DecisionTreeRegressor", "ExtraTreeRegressor"}
)
# Below this many rows, LightGBM predicts on one thread.
LIGHTGBM_SINGLE_THREAD_ROWS = 1024


def compile_estimator(estimator: Any) -> Predict | None:
    """A closure computing what ``estimator`` predicts, or ``None`` if it is not supported."""
    if type(estimator).__module__.startswith("lightgbm"):
        return _compile_lightgbm(estimator)
    steps = getattr(estimator, "steps", None)
    if steps is not None:
        if type(estimator).__name__ != "Pipeline":
            return None
        transforms = [_compile_transform(step) for _, step in steps[:-1]]
        final = _compile_final(steps[-1][1])
        if final is None or any(t is None for t in transforms):
            return None
        chain = [t for t in transforms if t is not None]
        return _chained(chain, final)
    return _compile_final(estimator)


def _chained(transforms: list[Transform], final: Predict) -> Predict:
    def predict(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        for transform in transforms:
            X = transform(X)
        return final(X)

    return predict


def _compile_transform(step: Any) -> Transform | None:
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return lambda X: X
    name = type(step).__name__
    if name == "StandardScaler":
        mean = step.mean_ if step.with_mean else None
        scale = step.scale_ if step.with_std else None

        def standard(X: np.ndarray) -> np.ndarray:
            if mean is not None:
                X = X - mean
                if scale is not None:
                    X /= scale  # in place: X is this call's own copy (one array, not two)
                return X
            return X / scale if scale is not None else X

        return standard
    if name == "MinMaxScaler":
        scale, minimum = step.scale_, step.min_
        low, high = step.feature_range
        clip = bool(getattr(step, "clip", False))

        def min_max(X: np.ndarray) -> np.ndarray:
            X = X * scale + minimum
            return np.clip(X, low, high) if clip else X

        return min_max
    if name == "MaxAbsScaler":
        max_abs = step.scale_
        return lambda X: X / max_abs
    return None


def _compile_final(estimator: Any) -> Predict | None:
    name = type(estimator).__name__
    if name in _FORESTS or name in _TREES:
        return _compile_trees(estimator, name in _FORESTS)
    coef = getattr(estimator, "coef_", None)
    intercept = getattr(estimator, "intercept_", None)
    if coef is None or intercept is None or not isinstance(coef, np.ndarray):
        return None
    if name in _LINEAR_REGRESSORS:
        weights = coef.T if coef.ndim == 2 else coef

        def regress(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            return X @ weights + intercept, None

        return regress
    if name == "LogisticRegression" and coef.ndim == 2:
        classes = np.asarray(estimator.classes_)
        weights = coef.T
        if classes.size <= 2:

            def binary(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
                scores = (X @ weights + intercept).reshape(-1)
                proba = np.empty((scores.shape[0], 2))  # filled in place: np.stack costs more
                positive = proba[:, 1]
                np.divide(1.0, 1.0 + np.exp(-scores), out=positive)
                np.subtract(1.0, positive, out=proba[:, 0])
                labels = classes[(scores > 0).astype(np.intp)]
                return labels, proba

            return binary

        def multinomial(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            scores = X @ weights + intercept
            labels = classes[scores.argmax(axis=1)]
            scores -= scores.max(axis=1, keepdims=True)
            np.exp(scores, out=scores)
            scores /= scores.sum(axis=1, keepdims=True)
            return labels, scores

        return multinomial
    return None


def _compile_trees(estimator: Any, forest: bool) -> Predict | None:
    if getattr(estimator, "n_outputs_", 1) != 1:
        return None
    trees = list(estimator.estimators_) if forest else [estimator]
    classes = getattr(estimator, "classes_", None)
    count = float(len(trees))

    if classes is not None:
        classes = np.asarray(classes)

        def classify(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
            X = np.ascontiguousarray(X, dtype=np.float32)
            proba = trees[0].predict_proba(X, check_input=False)
            for tree in trees[1:]:
                proba += tree.predict_proba(X, check_input=False)
            if forest:
                proba /= count
            return classes.take(proba.argmax(axis=1), axis=0), proba

        return classify

    def regress(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        X = np.ascontiguousarray(X, dtype=np.float32)
        values = trees[0].predict(X, check_input=False)
        for tree in trees[1:]:
            values = values + tree.predict(X, check_input=False)
        return (values / count if forest else values), None

    return regress


def _compile_lightgbm(estimator: Any) -> Predict | None:
    if callable(getattr(estimator, "objective", None)):  # a custom objective predicts raw scores
        return None
    booster = getattr(estimator, "booster_", estimator)
    if not callable(getattr(booster, "predict", None)):
        return None
    classes = getattr(estimator, "classes_", None)

    def raw(X: np.ndarray) -> np.ndarray:
        threads = {"num_threads": 1} if X.shape[0] < LIGHTGBM_SINGLE_THREAD_ROWS else {}
        return np.asarray(booster.predict(X, **threads))

    if classes is None:  # a regressor, a ranker, or a bare Booster: its prediction as it is
        return lambda X: (raw(X), None)
    classes = np.asarray(classes)

    def classify(X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        result = raw(X)
        proba = np.vstack((1.0 - result, result)).transpose() if result.ndim == 1 else result
        return classes[proba.argmax(axis=1)], proba

    return classify


def probe_rows(X: np.ndarray, rows: int = 64, seed: int = 0) -> np.ndarray:
    """The example rows and perturbed copies of them, to compare a compiled path with its model."""
    rng = np.random.default_rng(seed)
    base = X[rng.integers(0, X.shape[0], rows)]
    spread = np.where(base == 0, 1.0, np.abs(base))
    noisy = base + rng.standard_normal(base.shape) * spread
    return np.vstack([X, noisy.astype(X.dtype)])


def agrees(expected: np.ndarray, actual: np.ndarray) -> bool:
    """Equal labels; numbers equal to 1e-9 relative (the same arithmetic, maybe another order)."""
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return False
    if expected.dtype.kind in "fc" and actual.dtype.kind in "fc":
        return bool(np.allclose(expected, actual, rtol=1e-9, atol=1e-12))
    return bool(np.array_equal(expected, actual))
