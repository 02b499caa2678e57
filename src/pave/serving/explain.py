"""Explanations: per-feature SHAP attributions and the base value, in a stated output space.

``POST /v2/models/{name}/explain`` (and KServe V1's ``:explain``) take the body of an inference
request and answer, for each row, one attribution per feature and output, such that

    base_value[k] + sum_j attributions[i][k][j] == model_output[i][k]

in ``output_space``. The method follows the model:

- ``linear``: scikit-learn linear models, alone or behind scalers (what the golden path trains):
  exact (interventional) SHAP of the affine function the pipeline computes, ``w_j (x_j - mean_j)``
  with the mean of the background; in the margin space (``log_odds`` of the positive class for a
  binary classifier, the per-class ``logit`` of a multinomial one, ``raw`` for a regressor);
- ``tree``: scikit-learn trees and forests, LightGBM and XGBoost: exact Tree SHAP (shap's
  ``TreeExplainer``, path-dependent), in the trees' own output space (``probability`` for
  scikit-learn forests, ``log_odds`` for boosted classifiers, ``raw`` for regressors);
- ``kernel``: any other model (pyfunc, a model in its own environment): Kernel SHAP against a
  background sample of the reference data (the model's logged input example; a row of zeros when
  it has none), in ``probability`` for classifiers and ``raw`` otherwise. Its additivity is exact;
  its attributions are estimates.

shap is imported on the first explanation (``pip install 'pave[explain]'``); explainers are
built once per loaded model version and kept with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from pave.errors import InvalidInput, MissingExtra
from pave.serving.loading import LoadedModel

if TYPE_CHECKING:
    from pave.serving.gateway import Gateway

log = logging.getLogger(__name__)

_TREES = frozenset(
    {
        "DecisionTreeClassifier",
        "DecisionTreeRegressor",
        "RandomForestClassifier",
        "RandomForestRegressor",
        "ExtraTreesClassifier",
        "ExtraTreesRegressor",
        "GradientBoostingClassifier",
        "GradientBoostingRegressor",
        "LGBMClassifier",
        "LGBMRegressor",
        "Booster",
        "XGBClassifier",
        "XGBRegressor",
    }
)
_LINEAR = frozenset({"LogisticRegression", "LinearRegression", "Ridge", "Lasso", "ElasticNet"})
KERNEL_BACKGROUND_ROWS = 50
# Kernel SHAP evaluates the model some 2,000 x 50 times per row explained (a 100-tree forest on 30
# features: 0.18 CPU-s a row, measured): a request with a table of 10,000 rows held a gateway
# thread for half an hour. Linear and tree explanations are a few array operations per row.
KERNEL_MAX_ROWS = 100


@dataclass
class Explanation:
    """Attributions of some rows; ``attributions[i][k][j]``: row i, output k, feature j."""

    method: str
    output_space: str
    outputs: list[str]
    features: list[str]
    base_values: np.ndarray  # [n_outputs]
    attributions: np.ndarray  # [n_rows, n_outputs, n_features]
    model_output: np.ndarray  # [n_rows, n_outputs], in output_space

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "output_space": self.output_space,
            "outputs": self.outputs,
            "features": self.features,
            "base_values": np.ascontiguousarray(self.base_values),
            "attributions": np.ascontiguousarray(self.attributions),
            "model_output": np.ascontiguousarray(self.model_output),
        }


Explain = Callable[[np.ndarray], Explanation]


def explainer_for(model: LoadedModel) -> Explain:
    """The explainer of a loaded model (linear, tree or kernel: see the module docstring)."""
    features = _feature_names(model)
    estimator = model.estimator
    if estimator is not None:
        transforms, final = _split_pipeline(estimator)
        name = type(final).__name__
        affine = _affine(transforms)
        if affine is not None and name in _LINEAR and isinstance(getattr(final, "coef_", None), np.ndarray):
            return _linear(final, affine, features, _background(model, features))
        if name in _TREES and affine is not None:
            return _tree(final, affine, features)
    return _kernel(model, features)


def _feature_names(model: LoadedModel) -> list[str]:
    schema = model.schema
    if schema.kind == "matrix":
        return list(schema.order)
    if schema.columns:
        return [c.name for c in schema.columns]
    example = model.example
    width = example.shape[1] if isinstance(example, np.ndarray) and example.ndim == 2 else None
    if schema.tensors and len(schema.tensors[0].shape) == 2 and schema.tensors[0].shape[1] > 0:
        width = schema.tensors[0].shape[1]
    return [f"x{j}" for j in range(width)] if width else []


def _split_pipeline(estimator: Any) -> tuple[list[Any], Any]:
    steps = getattr(estimator, "steps", None)
    if steps is not None and type(estimator).__name__ == "Pipeline":
        return [step for _, step in steps[:-1]], steps[-1][1]
    return [], estimator


def _affine(transforms: list[Any]) -> tuple[np.ndarray | float, np.ndarray | float] | None:
    """(a, c) with the transforms computing ``a * x + c`` per feature; None when one is not affine."""
    a: np.ndarray | float = 1.0
    c: np.ndarray | float = 0.0
    for step in transforms:
        name = type(step).__name__
        if step is None or step == "passthrough":
            continue
        if name == "StandardScaler":
            scale = step.scale_ if step.with_std and step.scale_ is not None else 1.0
            mean = step.mean_ if step.with_mean and step.mean_ is not None else 0.0
            a, c = a / scale, (c - mean) / scale
        elif name == "MinMaxScaler" and not getattr(step, "clip", False):
            a, c = a * step.scale_, c * step.scale_ + step.min_
        elif name == "MaxAbsScaler":
            a, c = a / step.scale_, c / step.scale_
        else:
            return None
    return a, c


def _background(model: LoadedModel, features: list[str]) -> np.ndarray:
    example = model.example
    if example is None:
        return np.zeros((1, len(features)))
    if isinstance(example, pd.DataFrame):
        return example[features].to_numpy(dtype=np.float64)
    if isinstance(example, np.ndarray) and example.ndim == 2:
        return example.astype(np.float64)
    return np.zeros((1, len(features)))


def _classes(final: Any) -> list[str]:
    return [str(c) for c in getattr(final, "classes_", [])]


def _linear(final: Any, affine: tuple[Any, Any], features: list[str], background: np.ndarray) -> Explain:
    a, c = affine
    coef = np.atleast_2d(np.asarray(final.coef_, dtype=np.float64))  # [n_out, n_features]
    intercept = np.atleast_1d(np.asarray(final.intercept_, dtype=np.float64))
    weights = coef * a  # the pipeline's function is x @ weights.T + bias
    bias = coef @ np.broadcast_to(np.asarray(c, dtype=np.float64), coef.shape[1]) + intercept
    classes = _classes(final)
    if not classes:
        space, outputs = (
            "raw",
            ["predict"] if coef.shape[0] == 1 else [f"output-{k}" for k in range(len(coef))],
        )
    elif coef.shape[0] == 1:
        space, outputs = "log_odds", [classes[-1]]
    else:
        space, outputs = "logit", classes
    mean = background.mean(axis=0)
    base = weights @ mean + bias

    def explain(X: np.ndarray) -> Explanation:
        attributions = (X - mean)[:, None, :] * weights[None, :, :]
        margin = X @ weights.T + bias
        return Explanation("linear", space, outputs, features, base, attributions, margin)

    return explain


def _shap() -> Any:
    try:
        import shap
    except ImportError:
        raise MissingExtra("explanations", "explain") from None
    return shap


def _tree(final: Any, affine: tuple[Any, Any], features: list[str]) -> Explain:
    shap = _shap()
    explainer = shap.TreeExplainer(final)
    space = {"probability": "probability", "log_odds": "log_odds"}.get(
        str(explainer.model.tree_output), "raw"
    )
    classes = _classes(final)
    a, c = affine
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))

    def explain(X: np.ndarray) -> Explanation:
        transformed = X * a + c
        values = np.asarray(explainer.shap_values(transformed), dtype=np.float64)
        if values.ndim == 2:  # one output: [n_rows, n_features]
            values = values[:, None, :]
        elif values.ndim == 3 and values.shape[0] != X.shape[0]:  # old shap: [n_outputs, rows, features]
            values = values.transpose(1, 0, 2)
        else:  # [n_rows, n_features, n_outputs]
            values = values.transpose(0, 2, 1)
        n_outputs = values.shape[1]
        outputs = (
            classes[-n_outputs:]
            if classes and len(classes) >= n_outputs
            else [f"output-{k}" for k in range(n_outputs)]
        )
        output = _tree_output(final, transformed, space, n_outputs)
        return Explanation("tree", space, outputs, features, expected[-n_outputs:], values, output)

    return explain


def _tree_output(final: Any, X: np.ndarray, space: str, n_outputs: int) -> np.ndarray:
    """The model's own output in the trees' space (independent of the attributions)."""
    name = type(final).__name__
    if space == "probability":
        return np.asarray(final.predict_proba(X))[:, -n_outputs:]
    if space == "log_odds":
        if name.startswith("LGBM"):
            raw = np.asarray(final.predict(X, raw_score=True))
        elif name.startswith("XGB"):
            raw = np.asarray(final.predict(X, output_margin=True))
        else:
            raw = np.asarray(final.decision_function(X))
        return raw.reshape(len(X), -1)[:, -n_outputs:]
    return np.asarray(final.predict(X), dtype=np.float64).reshape(len(X), -1)


def _kernel(model: LoadedModel, features: list[str]) -> Explain:
    shap = _shap()
    if not features:
        raise InvalidInput(
            f"model {model.uri} takes no fixed set of features to attribute to",
            hint="explanations need a tabular model (a signature with columns, or a 2-D tensor)",
        )
    background = _background(model, features)

    def as_input(X: np.ndarray) -> Any:
        schema = model.schema
        if schema.kind == "frame":
            return pd.DataFrame({c.name: X[:, j].astype(c.dtype) for j, c in enumerate(schema.columns)})
        if schema.kind == "tensors":
            return {schema.tensors[0].name: X}
        return X.astype(np.float64 if schema.kind == "matrix" else _tensor_dtype(model))

    probe = model.predict(as_input(background[:1]))
    key = "predict_proba" if "predict_proba" in probe else next(iter(probe))
    space = "probability" if key == "predict_proba" else "raw"

    def f(X: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(as_input(X))[key], dtype=np.float64).reshape(len(X), -1)

    explainer = shap.KernelExplainer(f, background[:KERNEL_BACKGROUND_ROWS], silent=True)
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    n_outputs = len(expected)
    classes = [str(c) for c in getattr(model.estimator, "classes_", [])]
    outputs = (
        classes
        if space == "probability" and len(classes) == n_outputs
        else [key]
        if n_outputs == 1
        else [f"{key}-{k}" for k in range(n_outputs)]
    )

    def explain(X: np.ndarray) -> Explanation:
        if len(X) > KERNEL_MAX_ROWS:
            raise InvalidInput(
                f"model {model.uri} is explained with Kernel SHAP, at most {KERNEL_MAX_ROWS} rows a "
                f"request (each costs thousands of predictions); this request has {len(X)}",
                hint=f"send at most {KERNEL_MAX_ROWS} rows per explain request (predictions: /infer)",
            )
        values = np.asarray(explainer.shap_values(X, silent=True), dtype=np.float64)
        values = values[:, None, :] if values.ndim == 2 else values.transpose(0, 2, 1)
        return Explanation("kernel", space, outputs, features, expected, values, f(X))

    return explain


def _tensor_dtype(model: LoadedModel) -> Any:
    from pave.serving.protocol import DATATYPES

    tensors = model.schema.tensors
    return DATATYPES[tensors[0].datatype] if tensors else np.float64


def as_matrix(model: LoadedModel, features: Any, names: list[str]) -> np.ndarray:
    """The rows of bound model input as a float matrix in the explainer's feature order.

    Raises:
        InvalidInput: non-numeric features (SHAP attributes numbers).
    """
    try:
        if isinstance(features, pd.DataFrame):
            return features[names].to_numpy(dtype=np.float64)
        if isinstance(features, dict):
            features = next(iter(features.values()))
        matrix = np.asarray(features, dtype=np.float64)
    except (ValueError, TypeError):
        raise InvalidInput("explanations need numeric inputs; this request has text values") from None
    if matrix.ndim != 2 or matrix.shape[1] != len(names):
        raise InvalidInput(
            f"explanations take rows of {len(names)} features; the request has shape {list(matrix.shape)}"
        )
    return matrix


async def route(
    gateway: Gateway,
    scope: dict[str, Any],
    receive: Any,
    send: Any,
    name: str,
    version: str | None,
    *,
    v1: bool = False,
) -> None:
    """Answer ``POST .../explain`` (OIP v2, or KServe V1's ``:explain`` when ``v1``).

    The version is picked as for an inference (the router, a sticky key, or the URL's version);
    explanations are neither logged nor mirrored to a shadow.

    Raises:
        PaveError: the caller's error in the route's own shape (the gateway answers it).
    """
    import asyncio

    import orjson

    from pave.serving import v1 as v1_protocol
    from pave.serving.gateway import respond
    from pave.serving.protocol import NUMPY_OPTS, new_id

    body = await gateway.read_body(scope, receive)
    entry = gateway.entry(name)
    if version is None:
        version = entry.router.pick(None)
    runtime = gateway.runtime(entry, version)
    model = runtime.model or await runtime.ensure_loaded()
    request = v1_protocol.parse(body.data, model.schema) if v1 else body.parse()
    features, _ = model.schema.bind(request.inputs)
    if model.explainer is None:
        model.explainer = await asyncio.to_thread(explainer_for, model)
    explain = model.explainer
    names = _feature_names(model)
    matrix = as_matrix(model, features, names)
    try:
        explanation = await asyncio.to_thread(explain, matrix)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(
            f"model '{name}' version {runtime.version} could not explain the input: {exc}"
        ) from exc
    document = explanation.to_dict()
    if v1:
        document = {
            "explanations": [
                {
                    "base_values": np.ascontiguousarray(explanation.base_values),
                    "attributions": np.ascontiguousarray(row),
                    "model_output": np.ascontiguousarray(out),
                }
                for row, out in zip(explanation.attributions, explanation.model_output, strict=True)
            ],
            **{k: document[k] for k in ("method", "output_space", "outputs", "features")},
        }
    else:
        document = {
            "model_name": name,
            "model_version": runtime.version,
            "id": request.id or new_id(),
            **document,
        }
    answer = orjson.dumps(document, option=NUMPY_OPTS)
    await respond(send, 200, answer, version=runtime.version, accept=body.accept_encoding)
