"""Drift end to end: quiet traffic, one shifted feature, small windows, bad configs, corrupt data."""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from pave.errors import InvalidInput
from pave.monitoring.drift import (
    DriftConfig,
    DriftRule,
    FeatureDrift,
    Reference,
    build_reference,
    compute_drift,
)
from pave.monitoring.reference import NumericReference

NUMERIC = ["age", "income", "balance", "tenure", "score"]
ALL_METHODS = ["psi", "js", "wasserstein", "ks", "chi2"]


def traffic(rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    """Rows from the 'training' distribution; ``shift`` moves a feature by that many std."""
    rng = np.random.default_rng(seed)
    shift = shift or {}
    df = pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "balance": rng.gamma(2.0, 1_000.0, rows),
            "tenure": rng.integers(0, 30, rows).astype(float),
            "score": rng.random(rows),
            "city": rng.choice(["paris", "lyon", "nice", "lille"], rows, p=[0.4, 0.3, 0.2, 0.1]),
        }
    )
    for name, sigmas in shift.items():
        df[name] += sigmas * df[name].std()
    return df


@pytest.fixture(scope="module")
def reference() -> Reference:
    return build_reference(traffic(50_000, seed=0), sketch_size=500)


def config_for(method: str) -> DriftConfig:
    """Every numeric feature on ``method``; p-value tests at 0.01 to keep false alarms rare."""
    level = 0.01 if method in ("ks", "chi2") else None
    categorical = DriftRule(method, level) if method in ("psi", "js", "chi2") else DriftRule("chi2", 0.01)
    return DriftConfig(numeric=DriftRule(method, level), categorical=categorical)


@pytest.mark.parametrize("method", ALL_METHODS)
def test_traffic_from_the_training_distribution_does_not_drift(reference: Reference, method: str) -> None:
    report = compute_drift(reference, traffic(20_000, seed=1), config_for(method))

    assert report.drifted_features == []
    assert not report.dataset_drift
    assert all(f.status == "ok" and f.statistic is not None for f in report.features)


@pytest.mark.parametrize("method", ALL_METHODS)
@pytest.mark.parametrize("feature", NUMERIC)
def test_one_shifted_feature_drifts_and_only_it(reference: Reference, method: str, feature: str) -> None:
    report = compute_drift(reference, traffic(20_000, seed=2, shift={feature: 0.5}), config_for(method))

    assert report.drifted_features == [feature]
    assert report.share_drifted == pytest.approx(1 / 6)
    assert not report.dataset_drift  # one feature in six is under the default drift_share of 0.5


def test_a_new_category_drifts_through_the_other_bucket(reference: Reference) -> None:
    window = traffic(5_000, seed=3)
    window.loc[: len(window) // 3, "city"] = "marseille"  # unseen in training

    report = compute_drift(reference, window)

    assert report.drifted_features == ["city"]


def test_small_windows_have_insufficient_data_and_never_drift(reference: Reference) -> None:
    shifted = traffic(99, seed=4, shift=dict.fromkeys(NUMERIC, 5.0))

    report = compute_drift(reference, shifted, DriftConfig(min_samples=100))

    assert report.drifted_features == []
    assert not report.dataset_drift
    assert {f.status for f in report.features} == {"insufficient_data"}
    assert all(f.statistic is None and f.p_value is None and f.n_current == 99 for f in report.features)
    assert report.to_dict()["insufficient_data"] == [*NUMERIC, "city"]
    # The same window passes the bar when the bar is lower.
    assert len(compute_drift(reference, shifted, DriftConfig(min_samples=50)).drifted_features) == 5


def test_a_tiny_reference_is_insufficient_too() -> None:
    ref = build_reference(traffic(40, seed=5))

    report = compute_drift(ref, traffic(10_000, seed=6, shift={"age": 3.0}))

    assert report.drifted_features == []
    assert all(f.status == "insufficient_data" and f.n_reference == 40 for f in report.features)


def test_nan_inf_and_strings_are_counted_not_fatal(reference: Reference) -> None:
    window = traffic(2_000, seed=7)
    window.loc[:99, "age"] = np.nan
    window.loc[100:109, "age"] = np.inf
    window["tenure"] = window["tenure"].astype(object)
    window.loc[:19, "tenure"] = "n/a"
    window.loc[20:24, "tenure"] = None
    window.loc[:49, "city"] = None

    report = compute_drift(reference, window)
    by_name = {f.feature: f for f in report.features}

    counts = {name: (f.n_missing, f.n_invalid, f.n_current) for name, f in by_name.items()}
    assert counts["age"] == (100, 10, 1_890)
    assert counts["tenure"] == (5, 20, 1_975)
    assert counts["city"] == (50, 0, 1_950)
    assert report.drifted_features == []


def test_a_categorical_column_whose_type_changed_is_matched_by_text_and_flagged() -> None:
    rng = np.random.default_rng(15)
    ref = build_reference(pd.DataFrame({"segment": rng.integers(0, 3, 5_000)}), categorical=["segment"])
    window = {"segment": rng.integers(0, 3, 2_000).astype(str)}  # "0", "1", "2" instead of 0, 1, 2

    (segment,) = compute_drift(ref, window).features

    assert not segment.drifted
    assert segment.note is not None
    assert "2000 values matched training categories only as text" in segment.note


def test_all_invalid_column_is_insufficient_data(reference: Reference) -> None:
    window = traffic(1_000, seed=8)
    window["score"] = "oops"

    score = next(f for f in compute_drift(reference, window).features if f.feature == "score")

    assert (score.status, score.n_invalid, score.n_current) == ("insufficient_data", 1_000, 0)
    assert not score.drifted


def test_missing_columns_are_reported_and_extra_ones_ignored(reference: Reference) -> None:
    window = traffic(1_000, seed=9).drop(columns=["income", "city"]).assign(request_id=range(1_000))

    report = compute_drift(reference, window)
    body = report.to_dict()

    assert body["missing_columns"] == ["income", "city"]
    assert [f["status"] for f in body["features"] if f["feature"] == "income"] == ["missing_column"]
    assert [f.feature for f in report.features] == [*NUMERIC, "city"]
    assert report.drifted_features == []


def test_a_dict_of_arrays_gives_the_same_answer_as_a_dataframe(reference: Reference) -> None:
    window = traffic(3_000, seed=10, shift={"balance": 1.0})
    arrays = {name: window[name].to_numpy() for name in window.columns}
    arrays["tenure"] = arrays["tenure"].astype(np.int32)  # another numeric dtype is fine

    from_arrays, from_frame = compute_drift(reference, arrays), compute_drift(reference, window)

    assert from_arrays.to_dict() == from_frame.to_dict()
    assert from_frame.drifted_features == ["balance"]


def test_a_two_dimensional_column_is_rejected(reference: Reference) -> None:
    with pytest.raises(InvalidInput, match="'age' has 2 dimensions"):
        compute_drift(reference, {"age": np.zeros((10, 2))})


def test_report_is_plain_json(reference: Reference) -> None:
    config = config_for("ks")
    body = compute_drift(reference, traffic(1_000, seed=11, shift={"age": 1.0}), config).to_dict()

    assert json.loads(json.dumps(body, allow_nan=False)) == body
    age = body["features"][0]
    assert set(age) == {*FeatureDrift.__dataclass_fields__}
    assert age["method"] == "ks"
    assert age["drifted"] is True
    assert 0 <= age["p_value"] < 0.01
    assert age["threshold"] == 0.01
    assert age["n_reference"] == 50_000
    assert age["n_current"] == 1_000


def test_dataset_drift_follows_drift_share(reference: Reference) -> None:
    window = traffic(3_000, seed=12, shift={"age": 1.0, "income": 1.0, "score": 1.0})

    assert compute_drift(reference, window).dataset_drift  # 3 of 6 >= 0.5
    assert not compute_drift(reference, window, DriftConfig(drift_share=0.6)).dataset_drift


def test_per_feature_rules_override_the_defaults(reference: Reference) -> None:
    config = DriftConfig(features={"age": DriftRule("wasserstein", 0.05), "city": DriftRule("chi2")})

    report = compute_drift(reference, traffic(2_000, seed=13), config)

    methods = {f.feature: (f.method, f.threshold) for f in report.features}
    assert methods["age"] == ("wasserstein", 0.05)
    assert methods["city"] == ("chi2", 0.05)
    assert methods["income"] == ("psi", 0.2)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: DriftRule("entropy"), "unknown drift method 'entropy'"),
        (lambda: DriftRule("psi", -0.1), "must be positive"),
        (lambda: DriftRule("wasserstein", 0.0), "must be positive"),
        (lambda: DriftRule("ks", 1.5), "must lie strictly in \\(0, 1\\)"),
        (lambda: DriftRule("chi2", 0.0), "must lie strictly in \\(0, 1\\)"),
        (lambda: DriftRule("js", 2.0), "must be in \\(0, 1\\]"),
        (lambda: DriftRule("psi", float("nan")), "not a finite number"),
        (lambda: DriftConfig(min_samples=0), "min_samples must be a positive integer"),
        (lambda: DriftConfig(drift_share=0.0), "drift_share must be in"),
        (lambda: DriftConfig(features={"age": {"method": "ks"}}), "are not DriftRule objects"),
        (lambda: DriftConfig(categorical=DriftRule("ks")), "cannot be the categorical rule"),
        (lambda: DriftConfig.from_dict({"numeric": {"threshold": 0.1}}), "needs a 'method'"),
        (lambda: DriftConfig.from_dict({"threshhold": 0.1}), "unknown drift config keys \\['threshhold'\\]"),
    ],
)
def test_bad_configs_fail_with_a_clear_message_and_hint(make: Callable[[], object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        make()

    assert info.value.hint


def test_config_must_fit_the_reference(reference: Reference) -> None:
    with pytest.raises(InvalidInput, match=r"features \['agee'\] that the reference does not have"):
        compute_drift(reference, traffic(200, seed=14), DriftConfig(features={"agee": DriftRule("ks")}))
    with pytest.raises(InvalidInput, match="'city' is categorical; method 'wasserstein' needs numeric"):
        compute_drift(
            reference, traffic(200, seed=14), DriftConfig(features={"city": DriftRule("wasserstein")})
        )


def test_config_round_trips_through_plain_dicts() -> None:
    config = DriftConfig(
        numeric=DriftRule("ks", 0.01),
        categorical=DriftRule("js"),
        features={"age": DriftRule("wasserstein", 0.2)},
        min_samples=500,
        drift_share=0.3,
    )

    again = DriftConfig.from_dict(json.loads(json.dumps(config.to_dict())))

    assert again == config
    assert again.categorical.threshold == 0.1  # the default was filled in


def test_compute_drift_reports_scipys_statistics_for_an_exact_reference() -> None:
    rng = np.random.default_rng(16)
    train = pd.DataFrame({"x": rng.normal(size=3_000), "c": rng.choice(list("abcd"), 3_000)})
    window = pd.DataFrame({"x": rng.normal(0.1, 1.2, 2_000), "c": rng.choice(list("abcde"), 2_000)})
    ref = build_reference(train, sketch_size=5_000)  # keeps every value: the exact path
    x = ref.features["x"]
    assert isinstance(x, NumericReference)
    assert x.sketch_exact

    def run(numeric: str, categorical: str = "psi") -> tuple[FeatureDrift, FeatureDrift]:
        config = DriftConfig(numeric=DriftRule(numeric), categorical=DriftRule(categorical))
        first, second = compute_drift(ref, window, config).features
        return first, second

    ks, chi2 = run("ks", "chi2")
    expected_ks = sps.ks_2samp(train["x"], window["x"], method="asymp")
    assert ks.statistic == pytest.approx(expected_ks.statistic, abs=1e-12)
    assert ks.p_value == pytest.approx(expected_ks.pvalue, rel=1e-9)
    # "e" is unseen in training: it lands in the "other" bucket, empty in training.
    table = pd.crosstab(
        np.r_[np.zeros(3_000), np.ones(2_000)], np.r_[train["c"], window["c"].to_numpy()]
    ).to_numpy()
    expected_chi2 = sps.chi2_contingency(table, correction=False)
    assert chi2.statistic == pytest.approx(expected_chi2.statistic, rel=1e-9)
    assert chi2.p_value == pytest.approx(expected_chi2.pvalue, rel=1e-9, abs=1e-300)

    wasserstein, _ = run("wasserstein")
    expected_w = sps.wasserstein_distance(train["x"], window["x"]) / train["x"].std(ddof=0)
    assert wasserstein.statistic == pytest.approx(expected_w, rel=1e-9)

    js, _ = run("js")
    bins = np.searchsorted(x.edges, window["x"], side="right")
    current_counts = np.bincount(bins, minlength=len(x.edges) + 1)
    assert js.statistic == pytest.approx(jensenshannon(x.bin_counts, current_counts, base=2), abs=1e-9)


def test_a_pandas_categorical_window_is_compared_by_value() -> None:
    rng = np.random.default_rng(17)
    ref = build_reference(pd.DataFrame({"c": rng.choice(["a", "b", "c"], 3_000)}))
    values = rng.choice(["c", "b", "a"], 1_000)
    window = pd.DataFrame({"c": pd.Categorical(values, categories=["z", "c", "b", "a"])})

    (c,) = compute_drift(ref, window).features
    (plain,) = compute_drift(ref, {"c": values}).features

    assert c.statistic == pytest.approx(plain.statistic)
    assert not c.drifted


def test_numpy_thresholds_become_plain_floats() -> None:
    rule = DriftRule("psi", np.float32(0.25))

    assert type(rule.threshold) is float
    assert json.loads(json.dumps(DriftConfig(numeric=rule).to_dict()))["numeric"]["threshold"] == 0.25
