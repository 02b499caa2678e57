"""Compiled predict paths answer exactly what scikit-learn answers, or are not used."""

import lightgbm
import numpy as np
import pandas as pd
import pytest
from sklearn.decomposition import PCA
from sklearn.ensemble import (
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.linear_model import ElasticNet, Lasso, LinearRegression, LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import MaxAbsScaler, MinMaxScaler, StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from pave.serving.compiled import agrees, compile_estimator, probe_rows
from pave.serving.loading import LoadedModel, _keep_if_agrees
from pave.serving.schema import InputSchema

rng = np.random.default_rng(7)
X = rng.normal(3.0, 2.0, size=(400, 6))
y_binary = (X[:, 0] + X[:, 1] > 6).astype(int)
y_labels = np.array(["bronze", "silver", "gold"])[np.digitize(X[:, 2], [2.0, 4.0])]
y_value = X @ np.arange(1.0, 7.0) + rng.normal(size=400)
y_two = np.column_stack([y_value, -y_value])
# rows the models never saw, some far outside the training range
UNSEEN = np.vstack([rng.normal(3.0, 2.0, size=(200, 6)), rng.normal(0, 50, size=(50, 6))])

CLASSIFIERS = {
    "binary": (LogisticRegression(max_iter=2000), y_binary),
    "scaled binary": (make_pipeline(StandardScaler(), LogisticRegression(C=0.1)), y_binary),
    "multinomial, string classes": (
        make_pipeline(MinMaxScaler(), LogisticRegression(max_iter=2000)),
        y_labels,
    ),
    "clipped min-max": (make_pipeline(MinMaxScaler(clip=True), LogisticRegression()), y_binary),
    "max-abs, no centring": (
        make_pipeline(MaxAbsScaler(), StandardScaler(with_mean=False), LogisticRegression()),
        y_binary,
    ),
    "passthrough step": (make_pipeline("passthrough", LogisticRegression(max_iter=2000)), y_labels),
    "decision tree": (DecisionTreeClassifier(max_depth=6, random_state=0), y_labels),
    "random forest": (RandomForestClassifier(n_estimators=25, random_state=0), y_binary),
    "scaled random forest, string classes": (
        make_pipeline(StandardScaler(), RandomForestClassifier(n_estimators=10, random_state=0)),
        y_labels,
    ),
    "lightgbm binary": (lightgbm.LGBMClassifier(n_estimators=30, verbose=-1), y_binary),
    "lightgbm multiclass, string classes": (lightgbm.LGBMClassifier(n_estimators=30, verbose=-1), y_labels),
}
REGRESSORS = {
    "linear": (LinearRegression(), y_value),
    "scaled ridge": (make_pipeline(StandardScaler(), Ridge(alpha=2.0)), y_value),
    "lasso": (Lasso(alpha=0.1), y_value),
    "elastic net": (ElasticNet(alpha=0.1), y_value),
    "two targets": (Ridge(), y_two),
    "decision tree": (DecisionTreeRegressor(max_depth=8, random_state=0), y_value),
    "random forest": (RandomForestRegressor(n_estimators=20, random_state=0), y_value),
    "extra trees": (ExtraTreesRegressor(n_estimators=20, random_state=0), y_value),
    "lightgbm": (lightgbm.LGBMRegressor(n_estimators=40, verbose=-1), y_value),
}


def _fit_and_compile(estimator, y):
    estimator.fit(X, y)
    compiled = compile_estimator(estimator)
    assert compiled is not None
    return compiled(UNSEEN)


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_classifiers_agree_with_sklearn(name):
    estimator, y = CLASSIFIERS[name]
    labels, proba = _fit_and_compile(estimator, y)
    assert np.array_equal(labels, estimator.predict(UNSEEN))
    assert proba is not None
    assert agrees(estimator.predict_proba(UNSEEN), proba)


@pytest.mark.parametrize("name", REGRESSORS)
def test_regressors_agree_with_sklearn(name):
    estimator, y = REGRESSORS[name]
    values, proba = _fit_and_compile(estimator, y)
    assert proba is None
    assert agrees(estimator.predict(UNSEEN), values)


def test_a_lightgbm_booster_and_a_large_batch():
    booster = lightgbm.train({"objective": "binary", "verbose": -1}, lightgbm.Dataset(X, y_binary), 20)
    compiled = compile_estimator(booster)
    assert compiled is not None
    many = np.vstack([UNSEEN] * 8)  # above the one-thread limit: LightGBM's own threads, same answers
    for rows in (UNSEEN, many):
        values, proba = compiled(rows)
        assert proba is None
        assert agrees(booster.predict(rows), values)


def test_what_is_not_supported_is_not_compiled():
    assert compile_estimator(GradientBoostingClassifier(n_estimators=3).fit(X, y_binary)) is None
    two_outputs = RandomForestRegressor(n_estimators=3).fit(X, y_two)
    assert compile_estimator(two_outputs) is None
    assert compile_estimator(make_pipeline(PCA(2), LogisticRegression()).fit(X, y_binary)) is None
    assert compile_estimator(make_pipeline(PCA(2), RandomForestClassifier(3)).fit(X, y_binary)) is None


def test_agreement_is_strict():
    assert agrees(np.array([0.1, 0.2]), np.array([0.1, 0.2]) * (1 + 1e-12))
    assert not agrees(np.array([0.1, 0.2]), np.array([0.1, 0.2]) * (1 + 1e-6))
    assert not agrees(np.array(["a", "b"]), np.array(["a", "c"]))
    assert not agrees(np.array([1.0, 2.0]), np.array([[1.0, 2.0]]))


def test_probe_rows_keep_the_examples_and_their_dtype():
    example = X[:3].astype(np.float32)
    rows = probe_rows(example)
    assert rows.dtype == np.float32
    assert np.array_equal(rows[:3], example)
    assert len(rows) == 3 + 64


def _model(predict, check):
    schema = InputSchema(kind="matrix")
    return LoadedModel(uri="models:/m/1", flavor="sklearn", schema=schema, predict=predict, check=check)


def test_a_shortcut_that_disagrees_anywhere_is_dropped():
    estimator = LogisticRegression().fit(X, y_binary)

    example = X[:2]

    def reference(features):
        return {"predict": estimator.predict(features)}

    def wrong_far_from_the_example(features):
        labels = estimator.predict(features)
        # right on the example, wrong on rows unlike it
        labels[np.abs(features).max(axis=1) > np.abs(example).max() * 1.01] = 7
        return {"predict": labels}

    def crashing(features):
        raise ValueError("no")

    for shortcut in (wrong_far_from_the_example, crashing):
        model = _model(shortcut, reference)
        _keep_if_agrees(model, example)
        assert model.predict is reference
        assert model.check is None
    model = _model(reference, lambda features: {"predict": estimator.predict(features)})
    kept = model.predict
    _keep_if_agrees(model, example)
    assert model.predict is kept


def test_float32_models_keep_sklearn_arithmetic(tmp_path):
    # a model fitted on float32 computes in float32: the float64 compiled path must not replace it
    import mlflow
    from mlflow.models import infer_signature

    from pave.serving.loading import load_model

    X32 = X.astype(np.float32)
    estimator = LogisticRegression(max_iter=2000).fit(X32, y_binary)
    uri = tmp_path / "model"
    mlflow.sklearn.save_model(estimator, uri, signature=infer_signature(X32[:3], estimator.predict(X32[:3])))
    model = load_model(str(uri), tracking_uri=None, cache_dir=tmp_path / "cache")
    out = model.predict(UNSEEN.astype(np.float32))
    assert np.array_equal(out["predict"], estimator.predict(UNSEEN.astype(np.float32)))
    assert out["predict_proba"].dtype == estimator.predict_proba(X32[:1]).dtype


def test_the_golden_path_model_is_served_compiled(tmp_path):
    import mlflow

    from pave.serving.loading import load_model

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    estimator = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y_binary)
    uri = tmp_path / "model"
    mlflow.sklearn.save_model(estimator, uri, input_example=frame.head(3))
    model = load_model(str(uri), tracking_uri=None, cache_dir=tmp_path / "cache")
    assert "_compiled_outputs" in model.predict.__qualname__
    rows = pd.DataFrame(UNSEEN, columns=frame.columns)
    out = model.predict(UNSEEN)
    assert np.array_equal(out["predict"], estimator.predict(rows))
    assert agrees(estimator.predict_proba(rows), out["predict_proba"])


def test_missing_values_go_to_the_models_own_predict(tmp_path):
    import mlflow

    from pave.serving.loading import load_model

    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    holes = UNSEEN[:5].copy()
    holes[1, 2] = np.nan
    linear = make_pipeline(StandardScaler(), LogisticRegression()).fit(frame, y_binary)
    mlflow.sklearn.save_model(linear, tmp_path / "linear", input_example=frame.head(3))
    model = load_model(str(tmp_path / "linear"), tracking_uri=None, cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="NaN"):  # sklearn's own refusal (the gateway answers 400)
        model.predict(holes)
    gbm = lightgbm.LGBMClassifier(n_estimators=20, verbose=-1).fit(frame, y_binary)
    mlflow.lightgbm.save_model(gbm, tmp_path / "gbm", input_example=frame.head(3))
    model = load_model(str(tmp_path / "gbm"), tracking_uri=None, cache_dir=tmp_path / "cache")
    assert np.array_equal(model.predict(holes)["predict_proba"], gbm.predict_proba(holes))  # LightGBM's own
