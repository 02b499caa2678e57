"""Loading an MLflow model for serving, with native predict paths for sklearn and LightGBM.

``load_model`` resolves the URI to a local directory (``models:/NAME/VERSION`` and ``runs:/``
URIs are downloaded once into a cache), reads the MLmodel file, and picks a predict path:

- sklearn: the estimator itself (``mlflow.sklearn.load_model``); ``predict`` and, for
  classifiers, ``predict_proba`` on a numpy matrix in the estimator's feature order, or the
  compiled path of ``pave.serving.compiled`` where it agrees with them;
- lightgbm: likewise (the sklearn API model, or a ``Booster``);
- anything else: ``mlflow.pyfunc.load_model(...).predict`` on a DataFrame or tensors.

Everything a request needs (column order, dtypes, output names and shapes, whether batching is
safe, whether predict is fast enough to run on the event loop) is computed here, once, by probing
the model with its input example.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pave.errors import Unavailable
from pave.serving.compiled import Predict, agrees, compile_estimator, probe_rows
from pave.serving.protocol import TensorMeta, datatype_of
from pave.serving.schema import Features, InputSchema, schema_from_signature

log = logging.getLogger(__name__)

Outputs = dict[str, np.ndarray]
# Predict on the event loop when a 32-row batch takes less than this (seconds); otherwise in a thread.
# sklearn's per-call overhead is Python code holding the GIL: a thread would not free the loop anyway.
INLINE_BUDGET = 0.005


@dataclass
class LoadedModel:
    """A model ready to predict, with everything precomputed."""

    uri: str
    flavor: str  # "sklearn", "lightgbm" or "pyfunc"
    schema: InputSchema
    predict: Callable[[Features], Outputs]
    outputs: list[TensorMeta] = field(default_factory=list)
    batchable: bool = True  # every output has one row per input row
    inline: bool = False  # predict is fast enough to run on the event loop
    check: Callable[[Features], Outputs] | None = None  # the reference predict of a shortcut
    estimator: Any = None  # the native model object (sklearn, LightGBM), for explanations
    environment: str | None = None  # why it runs in a process of its own (``environments.py``)
    example: Features | None = None  # the logged input example, bound (the explanations' background)
    explainer: Any = None  # built on the first explanation (``explain.py``)


def resolve(uri: str, *, tracking_uri: str | None, cache_dir: Path, location: str | None = None) -> Path:
    """The local directory of a model URI, downloading remote artifacts into the cache once.

    ``location``: where the registry says a ``models:/`` URI's artifacts are, if the caller
    asked it already (one registry lookup, not two).
    """
    if uri.startswith("models:"):
        uri = location or _registry_location(uri, tracking_uri)
    local = _local_path(uri)
    if local is not None:
        if not (local / "MLmodel").is_file():
            raise Unavailable(f"no MLflow model at {local}: MLmodel is missing")
        return local
    digest = hashlib.blake2b(f"{tracking_uri}|{uri}".encode(), digest_size=10).hexdigest()
    target = cache_dir / digest
    if (target / "MLmodel").is_file():
        return target
    import mlflow.artifacts

    staging = cache_dir / f"{digest}.partial-{time.monotonic_ns()}"
    staging.mkdir(parents=True, exist_ok=True)
    path = Path(mlflow.artifacts.download_artifacts(uri, dst_path=str(staging), tracking_uri=tracking_uri))
    # atomic: a crash never leaves a half-written model in the cache; OSError: another process won
    with contextlib.suppress(OSError):
        path.rename(target)
    _rmtree(staging)
    return target


def _local_path(uri: str) -> Path | None:
    if uri.startswith("file://"):
        return Path(uri.removeprefix("file://"))
    if "://" in uri or uri.startswith(("runs:", "models:", "mlflow-artifacts:")):
        return None  # remote: downloaded (an mlflow-artifacts: URI, through the tracking server)
    return Path(uri).expanduser()


def _registry_location(uri: str, tracking_uri: str | None) -> str:
    """Where a ``models:/NAME/VERSION``, ``models:/NAME@ALIAS`` or ``models:/MODEL_ID`` URI points.

    Resolved here with an explicit client: MLflow's own resolution reads the process-wide registry
    URI, and a gateway must not depend on global state.
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    path = uri.removeprefix("models:").lstrip("/")
    if "/" in path:
        name, version = path.rsplit("/", 1)
        return str(client.get_model_version_download_uri(name, version))
    if "@" in path:
        name, alias = path.split("@", 1)
        version = client.get_model_version_by_alias(name, alias).version
        return str(client.get_model_version_download_uri(name, version))
    return str(client.get_logged_model(path).artifact_location)


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


def load_model(
    uri: str,
    *,
    tracking_uri: str | None,
    cache_dir: Path,
    envs_dir: Path | None = None,
    location: str | None = None,
) -> LoadedModel:
    """Load the model at ``uri`` and probe it.

    A model whose pinned libraries differ from the gateway's is not loaded here at all: it runs
    in a worker process with a virtualenv of its own (``environments.py``; kept under
    ``envs_dir``, default ``cache_dir/../envs``). ``location``: see :func:`resolve`.

    Raises:
        Unavailable: the model cannot be found, downloaded or loaded; the message says why.
    """
    try:
        path = resolve(uri, tracking_uri=tracking_uri, cache_dir=cache_dir, location=location)
        from pave.serving.environments import own_environment_reason

        meta = read_mlmodel(path)
        flavors = meta.flavors
        reason = own_environment_reason(path)
        if reason is not None:
            model = _own_environment(uri, path, meta, reason, envs_dir or cache_dir.parent / "envs")
        elif "sklearn" in flavors:
            model = _native(uri, path, meta, "sklearn")
        elif "lightgbm" in flavors:
            model = _native(uri, path, meta, "lightgbm")
        else:
            model = _pyfunc(uri, path, meta)
        _probe(model, path, meta)
        if model.environment is not None:
            model.inline = False  # a round trip to another process never runs on the event loop
    except Unavailable:
        raise
    except Exception as exc:
        raise Unavailable(
            f"model {uri} could not be loaded: {type(exc).__name__}: {exc}",
            hint="check the URI with `mlflow models predict -m URI` or look at the gateway log",
        ) from exc
    return model


def read_mlmodel(path: Path) -> Any:
    """The model's ``MLmodel`` (an ``mlflow.models.Model``), parsed once, with libyaml's parser where
    PyYAML has it (what ``Model.load`` does, a tenth of its time: measured 0.2 ms against 3 ms)."""
    import yaml
    from mlflow.models import Model

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # both safe: plain YAML types only
    with (path / "MLmodel").open() as handle:
        return Model.from_dict(yaml.load(handle, Loader=loader))  # noqa: S506


def _own_environment(uri: str, path: Path, meta: Any, reason: str, envs_dir: Path) -> LoadedModel:
    from pave.serving.environments import WorkerModel, ensure_environment, environment_requirements

    log.info("model %s runs in its own environment: %s", uri, reason)
    python = ensure_environment(environment_requirements(path), envs_dir)
    schema = schema_from_signature(meta.signature, native=False, feature_order=None)
    worker = WorkerModel(
        python, path, schema.kind, [c.name for c in schema.columns], _output_name(meta.signature)
    )
    return LoadedModel(
        uri=uri, flavor=worker.flavor, schema=schema, predict=worker.predict, environment=reason
    )


def _native(uri: str, path: Path, meta: Any, flavor: str) -> LoadedModel:
    if flavor == "sklearn":
        from pave.tracking.stores import load_sklearn

        estimator = load_sklearn(str(path), meta.flavors["sklearn"])  # MLmodel is not read again
    else:
        import mlflow.lightgbm

        estimator = mlflow.lightgbm.load_model(str(path))
    order = getattr(estimator, "feature_names_in_", None)
    feature_order = [str(n) for n in order] if order is not None else None
    schema = schema_from_signature(meta.signature, native=True, feature_order=feature_order)
    if schema.kind == "matrix":
        # The matrix is built in the estimator's own column order, so the warning sklearn gives
        # for a nameless array is noise; silencing it also saves its cost on every call.
        warnings.filterwarnings("ignore", message="X does not have valid feature names")
    out_name = _output_name(meta.signature)
    predict_fn = estimator.predict
    compiled = compile_estimator(estimator) if schema.kind == "matrix" else None
    if not _is_classifier(estimator):

        def predict(features: Features) -> Outputs:
            return {out_name: np.asarray(predict_fn(features))}

        model = LoadedModel(uri=uri, flavor=flavor, schema=schema, predict=predict, estimator=estimator)
        if compiled is not None:
            model.predict = _compiled_outputs(compiled, out_name, predict, with_proba=False)
            model.check = predict  # _probe compares the two and keeps sklearn's on a mismatch
        return model

    proba_fn = estimator.predict_proba
    classes = np.asarray(estimator.classes_)

    def predict_both(features: Features) -> Outputs:
        return {out_name: np.asarray(predict_fn(features)), "predict_proba": np.asarray(proba_fn(features))}

    def predict_from_proba(features: Features) -> Outputs:
        # sklearn's own predict is classes_[argmax(proba)] for these estimators: one call, not two
        proba = np.asarray(proba_fn(features))
        return {out_name: classes[proba.argmax(axis=1)], "predict_proba": proba}

    model = LoadedModel(uri=uri, flavor=flavor, schema=schema, predict=predict_both, estimator=estimator)
    if compiled is not None:
        model.predict = _compiled_outputs(compiled, out_name, predict_both, with_proba=True)
        model.check = predict_both  # _probe compares the two and keeps predict_both on a mismatch
    elif _final_step(estimator) in ARGMAX_CLASSIFIERS:
        model.predict = predict_from_proba
        model.check = predict_both
    return model


def _compiled_outputs(
    compiled: Predict, out_name: str, reference: Callable[[Features], Outputs], *, with_proba: bool
) -> Callable[[Features], Outputs]:
    def predict(features: Features) -> Outputs:
        matrix = np.asarray(features, dtype=np.float64)
        if not np.isfinite(matrix).all():
            # NaN (an optional input left out) or infinity: the model's own predict decides, with
            # its own handling of missing values or its own error (a 400 for the caller)
            return reference(features)
        values, proba = compiled(matrix)
        if with_proba:
            return {out_name: values, "predict_proba": proba}  # type: ignore[dict-item]
        return {out_name: values}

    return predict


# Classifiers whose predict() is exactly classes_[argmax(predict_proba())].
ARGMAX_CLASSIFIERS = frozenset(
    {
        "LogisticRegression",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "DecisionTreeClassifier",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
        "KNeighborsClassifier",
        "GaussianNB",
        "MLPClassifier",
        "LGBMClassifier",
    }
)


def _final_step(estimator: Any) -> str:
    steps = getattr(estimator, "steps", None)
    final = steps[-1][1] if steps else estimator
    return type(final).__name__


def _is_classifier(estimator: Any) -> bool:
    return hasattr(estimator, "classes_") and callable(getattr(estimator, "predict_proba", None))


def _pyfunc(uri: str, path: Path, meta: Any) -> LoadedModel:
    import mlflow.pyfunc

    pyfunc = mlflow.pyfunc.load_model(str(path))
    schema = schema_from_signature(meta.signature, native=False, feature_order=None)
    out_name = _output_name(meta.signature)
    predict_fn = pyfunc.predict

    def predict(features: Features) -> Outputs:
        return _as_outputs(predict_fn(features), out_name)

    return LoadedModel(uri=uri, flavor="pyfunc", schema=schema, predict=predict)


def _as_outputs(result: Any, default_name: str) -> Outputs:
    if isinstance(result, pd.DataFrame):
        if result.shape[1] == 1:
            return {default_name: result.iloc[:, 0].to_numpy()}
        return {str(c): result[c].to_numpy() for c in result.columns}
    if isinstance(result, pd.Series):
        return {default_name: result.to_numpy()}
    if isinstance(result, dict):
        return {str(k): np.asarray(v) for k, v in result.items()}
    return {default_name: np.asarray(result)}


def _output_name(signature: Any) -> str:
    outputs = getattr(signature, "outputs", None)
    if outputs is not None and len(outputs.inputs) == 1 and outputs.inputs[0].name:
        return str(outputs.inputs[0].name)
    return "predict"


def _probe(model: LoadedModel, path: Path, meta: Any) -> None:
    """Call the model once on its example: output metadata, batch safety, inline budget."""
    example = _example(model.schema, path, meta)
    if example is None:
        return
    from pave.serving.batching import concat

    features, n_rows, synthesized = example
    if not synthesized:
        model.example = features
    if model.check is not None:
        _keep_if_agrees(model, features)
    try:
        outputs = model.predict(features)  # also the warm-up
    except Exception:
        if not synthesized:  # the model fails on its own example: refuse to serve it
            raise
        log.warning("model %s failed on a synthesized row of zeros; serving it unprobed", model.uri)
        return
    start = time.perf_counter()
    outputs = model.predict(features)
    single = time.perf_counter() - start
    model.batchable = all(a.ndim >= 1 and a.shape[0] == n_rows for a in outputs.values())
    batch_time = single
    if model.batchable:
        batch = concat([features] * 32)
        batch_time = _timed(model.predict, batch)
        single = min(single, _timed(model.predict, features))
    model.inline = max(single, batch_time) < INLINE_BUDGET
    model.outputs = [
        TensorMeta(name, datatype_of(a), (-1, *a.shape[1:]) if model.batchable else a.shape)
        for name, a in outputs.items()
    ]


def _keep_if_agrees(model: LoadedModel, features: Features) -> None:
    """Keep a shortcut predict only where it answers what the model's own predict answers."""
    reference = model.check
    assert reference is not None
    model.check = None
    rows = features
    if isinstance(features, np.ndarray) and features.ndim == 2 and features.dtype.kind == "f":
        rows = probe_rows(features)
    try:
        expected, actual = reference(rows), model.predict(rows)
        same = expected.keys() == actual.keys() and all(agrees(expected[k], actual[k]) for k in expected)
    except Exception:  # a shortcut that fails where the model does not is not kept
        log.debug("the shortcut predict of %s failed its check", model.uri, exc_info=True)
        same = False
    if not same:
        log.info("model %s: the shortcut predict disagrees with the model's; using the model's", model.uri)
        model.predict = reference


def _timed(predict: Callable[[Features], Outputs], features: Features) -> float:
    best = float("inf")
    for _ in range(3):  # the best of three: a busy machine should not push a model off the loop
        start = time.perf_counter()
        predict(features)
        best = min(best, time.perf_counter() - start)
    return best


def _example(schema: InputSchema, path: Path, meta: Any) -> tuple[Features, int, bool] | None:
    """The model's input example as model input, else a row of zeros built from the schema."""
    frame: pd.DataFrame | None = None
    if schema.columns:
        try:
            loaded = meta.load_input_example(str(path))
        except Exception:  # an example that does not load is only a lost probe
            loaded = None
        synthesized = not (
            isinstance(loaded, pd.DataFrame) and all(c.name in loaded.columns for c in schema.columns)
        )
        if not synthesized:
            frame = loaded
        else:
            frame = pd.DataFrame(
                {c.name: np.zeros(1, dtype=c.dtype) if c.dtype.kind != "O" else [""] for c in schema.columns}
            )
        inputs = [
            {
                "name": c.name,
                "datatype": c.datatype,
                "shape": [len(frame)],
                "data": frame[c.name].astype(c.dtype).tolist(),
            }
            for c in schema.columns
        ]
        features, n_rows = schema.bind(inputs)
        return features, n_rows, synthesized
    if schema.tensors and all(-1 not in t.shape[1:] for t in schema.tensors):
        from pave.serving.protocol import DATATYPES

        arrays = {
            t.name: np.zeros((1, *t.shape[1:]) if t.shape else (), dtype=DATATYPES[t.datatype])
            for t in schema.tensors
        }
        if schema.kind == "tensor":
            return arrays[schema.tensors[0].name], 1, True
        return arrays, 1, True
    return None
