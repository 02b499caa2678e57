"""Reference profiles: what they keep, JSON round trips, and the errors for data they cannot profile."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pave.errors import InvalidInput
from pave.monitoring.drift import compute_drift
from pave.monitoring.reference import CategoricalReference, NumericReference, Reference, build_reference


def training_frame(rows: int = 5_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows),
            "income": rng.lognormal(10, 1, rows),
            "clicks": rng.integers(0, 6, rows),  # few distinct values: kept exactly
            "city": rng.choice(["paris", "lyon", "nice"], rows, p=[0.6, 0.3, 0.1]),
            "segment": rng.integers(0, 4, rows),  # numeric codes, listed as categorical
            "is_member": rng.random(rows) < 0.3,
            "prediction": rng.random(rows),
        }
    )


def test_kinds_follow_dtypes_and_the_categorical_list() -> None:
    ref = build_reference(training_frame(), categorical=["segment"])

    kinds = {name: f.kind for name, f in ref.features.items()}
    assert kinds == {
        "age": "numeric",
        "income": "numeric",
        "clicks": "numeric",
        "city": "categorical",
        "segment": "categorical",
        "is_member": "categorical",
        "prediction": "numeric",
    }


def test_numeric_profile_has_quantile_bins_and_open_outer_bins() -> None:
    df = training_frame()
    age = build_reference(df, bins=20).features["age"]
    assert isinstance(age, NumericReference)

    assert len(age.edges) == 21
    assert np.all(np.diff(age.edges) > 0)
    assert age.edges[0] == df["age"].min()
    assert age.edges[-1] > df["age"].max()
    assert len(age.bin_counts) == 22
    assert age.bin_counts[0] == 0
    assert age.bin_counts[-1] == 0
    assert age.bin_counts.sum() == len(df)
    # Quantile bins hold about the same number of rows each.
    assert age.bin_counts[1:-1].max() - age.bin_counts[1:-1].min() <= 1
    assert age.mean == pytest.approx(df["age"].mean())
    assert age.std == pytest.approx(df["age"].std(ddof=0))


def test_sketch_is_exact_for_few_distinct_values_and_sliced_otherwise() -> None:
    ref = build_reference(training_frame(), sketch_size=100)
    clicks, income = ref.features["clicks"], ref.features["income"]
    assert isinstance(clicks, NumericReference)
    assert isinstance(income, NumericReference)

    assert clicks.sketch_exact
    assert clicks.sketch_points.tolist() == [0, 1, 2, 3, 4, 5]
    assert clicks.ks_error == 0
    assert clicks.wasserstein_error == 0
    assert not income.sketch_exact
    assert len(income.sketch_points) == 100
    assert len(income.sketch_knots) == 101
    assert income.sketch_counts.sum() == 5_000
    assert income.ks_error == pytest.approx(50 / 5_000)
    assert income.knot_probs[0] == 0
    assert income.knot_probs[-1] == 1


def test_categorical_profile_keeps_the_most_frequent_values_and_an_other_bucket() -> None:
    df = pd.DataFrame({"colour": ["red"] * 50 + ["blue"] * 30 + ["green"] * 15 + ["pink"] * 5 + [None] * 7})
    colour = build_reference(df, max_categories=2).features["colour"]
    assert isinstance(colour, CategoricalReference)

    assert colour.categories == ("red", "blue")
    assert colour.counts.tolist() == [50, 30, 20]  # green and pink went to "other"
    assert colour.count == 100
    assert colour.missing == 7


def test_reference_round_trips_through_json() -> None:
    df = training_frame()
    df.loc[:10, "age"] = np.nan
    df.loc[11:12, "income"] = np.inf
    ref = build_reference(df, categorical=["segment"], sketch_size=200)

    text = json.dumps(ref.to_dict(), allow_nan=False)  # strict JSON: no NaN, no Infinity
    again = Reference.from_dict(json.loads(text))

    assert again.to_dict() == ref.to_dict()
    window = training_frame(2_000, seed=1)
    assert compute_drift(again, window).to_dict() == compute_drift(ref, window).to_dict()


def test_missing_and_infinite_training_values_are_counted_not_profiled() -> None:
    df = pd.DataFrame({"x": [1.0, 2.0, np.nan, np.inf, -np.inf, 3.0], "empty": [np.nan] * 6})
    ref = build_reference(df)
    x, empty = ref.features["x"], ref.features["empty"]
    assert isinstance(x, NumericReference)
    assert isinstance(empty, NumericReference)

    assert (x.count, x.missing, x.invalid) == (3, 1, 2)
    assert (empty.count, empty.missing) == (0, 6)
    json.dumps(ref.to_dict(), allow_nan=False)


def test_constant_feature_gets_one_inner_bin() -> None:
    x = build_reference(pd.DataFrame({"x": [7.0] * 50})).features["x"]
    assert isinstance(x, NumericReference)

    assert x.edges[0] == 7.0
    assert x.edges[1] > 7.0
    assert x.bin_counts.tolist() == [0, 50, 0]


def test_unprofilable_input_is_rejected_with_a_hint() -> None:
    df = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=3), "x": [1.0, 2.0, 3.0]})
    with pytest.raises(InvalidInput, match="'when' holds dates") as info:
        build_reference(df)
    assert info.value.hint
    assert "convert" in info.value.hint

    with pytest.raises(InvalidInput, match=r"categorical columns \['nope'\] are not in the training data"):
        build_reference(df[["x"]], categorical=["nope"])
    with pytest.raises(InvalidInput, match="bins >= 2"):
        build_reference(df[["x"]], bins=1)


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"format": 99, "features": {}},
        {"format": 1, "features": {"x": {"kind": "numeric"}}},
        {"format": 1, "features": {"x": {"kind": "mystery"}}},
        {"format": 1, "features": {"c": {"kind": "categorical", "count": 1, "missing": 0,
                                         "categories": ["a"], "counts": [1]}}},
    ],
)  # fmt: skip
def test_malformed_reference_is_rejected_with_a_hint(data: dict[str, object]) -> None:
    with pytest.raises(InvalidInput) as info:
        Reference.from_dict(data)

    assert info.value.hint
    assert "build_reference" in info.value.hint
