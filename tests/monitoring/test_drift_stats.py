"""The drift statistics agree with scipy's exact computations on the same samples.

Tolerances (also stated in pave.monitoring.stats):
- exact references (every distinct value kept): KS to 1e-12, Wasserstein to 1e-9 of the data's range;
- sketched references: within the sketch's own ks_error / wasserstein_error bound;
- chi-squared, Jensen-Shannon, KS p-values (effective n <= 10,000): 1e-9 relative;
- KS p-values beyond effective n 10,000 (Kolmogorov limit, Stephens' correction): 0.5% relative
  for p >= 0.001.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from pave.monitoring import stats
from pave.monitoring.reference import NumericReference, build_reference

finite_floats = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
# Small integers give many ties, the case where CDF bookkeeping usually goes wrong.
samples = st.one_of(
    st.lists(finite_floats, min_size=1, max_size=80),
    st.lists(st.integers(-5, 5).map(float), min_size=1, max_size=80),
)


def numeric_reference(values: np.ndarray, sketch_size: int = 1000) -> NumericReference:
    ref = build_reference(pd.DataFrame({"x": values}), sketch_size=sketch_size).features["x"]
    assert isinstance(ref, NumericReference)
    return ref


@pytest.mark.filterwarnings("ignore:divide by zero:RuntimeWarning")  # scipy's p-value for 1-vs-1 samples
@settings(max_examples=300, deadline=None)
@given(reference=samples, current=samples)
def test_exact_ks_and_wasserstein_match_scipy(reference: list[float], current: list[float]) -> None:
    a, b = np.array(reference), np.array(current)
    ref = numeric_reference(a)
    assert ref.sketch_exact

    ks, distance = stats.ks_wasserstein(ref.sketch_points, ref.sketch_counts, np.sort(b))

    scale = 1.0 + np.ptp(np.concatenate([a, b]))
    assert ks == pytest.approx(sps.ks_2samp(a, b, method="asymp").statistic, abs=1e-12)
    assert distance == pytest.approx(sps.wasserstein_distance(a, b), abs=1e-9 * scale)


def distribution(kind: str, rng: np.random.Generator, size: int, shift: float) -> np.ndarray:
    if kind == "normal":
        return rng.normal(shift, 1.0, size)
    if kind == "lognormal":
        return rng.lognormal(shift, 1.0, size)
    if kind == "spike":  # a point mass at 0 that fills whole sketch slices
        return np.where(rng.random(size) < 0.3 + shift, 0.0, rng.normal(size=size))
    return rng.integers(0, 3000, size).astype(float) + shift  # many distinct ties


@settings(max_examples=25, deadline=None)
@given(
    kind=st.sampled_from(["normal", "lognormal", "spike", "integers"]),
    shift=st.floats(0.0, 0.3),
    seed=st.integers(0, 2**32 - 1),
    sketch_size=st.integers(20, 400),
)
def test_sketched_ks_and_wasserstein_stay_within_their_error_bounds(
    kind: str, shift: float, seed: int, sketch_size: int
) -> None:
    rng = np.random.default_rng(seed)
    a = distribution(kind, rng, 20_000, 0.0)
    b = np.sort(distribution(kind, rng, 5_000, shift))
    ref = numeric_reference(a, sketch_size)
    assert not ref.sketch_exact

    ks = stats.ks_interpolated(ref.sketch_knots, ref.knot_probs, b)
    ks_discrete, distance = stats.ks_wasserstein(ref.sketch_points, ref.sketch_counts, b)

    exact_ks = sps.ks_2samp(a, b, method="asymp").statistic
    assert abs(ks - exact_ks) <= ref.ks_error + 1e-12
    assert abs(ks_discrete - exact_ks) <= ref.ks_error + 1e-12
    assert abs(distance - sps.wasserstein_distance(a, b)) <= ref.wasserstein_error * (1 + 1e-9) + 1e-12


def test_sketch_error_bounds_shrink_with_sketch_size() -> None:
    a = np.random.default_rng(0).normal(size=50_000)
    coarse, fine = numeric_reference(a, 50), numeric_reference(a, 1000)
    assert fine.ks_error == pytest.approx(1 / 1000)
    assert fine.ks_error < coarse.ks_error
    assert fine.wasserstein_error < coarse.wasserstein_error


@pytest.mark.parametrize(("n", "m", "shift"), [(150, 200, 0.3), (3000, 5000, 0.05), (9000, 11000, 0.02)])
def test_ks_pvalue_matches_scipy_asymptotic(n: int, m: int, shift: float) -> None:
    rng = np.random.default_rng(n)
    a, b = rng.normal(size=n), rng.normal(shift, size=m)
    expected = sps.ks_2samp(a, b, method="asymp")

    p = stats.ks_pvalue(expected.statistic, n, m)

    assert p == pytest.approx(expected.pvalue, rel=1e-9)


@pytest.mark.parametrize("shift", [0.0, 0.005, 0.01])
def test_ks_pvalue_for_large_samples_is_within_half_a_percent_of_scipy(shift: float) -> None:
    a = np.random.default_rng(7).normal(size=40_000)
    b = np.random.default_rng(8).normal(shift, size=30_000)
    expected = sps.ks_2samp(a, b, method="asymp")
    assert 1e-3 <= expected.pvalue < 0.5  # where thresholds live

    assert stats.ks_pvalue(expected.statistic, len(a), len(b)) == pytest.approx(expected.pvalue, rel=0.005)


counts = st.lists(st.integers(0, 10_000), min_size=2, max_size=40)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), reference=counts)
def test_chi2_matches_scipy_contingency(data: st.DataObject, reference: list[int]) -> None:
    current = data.draw(st.lists(st.integers(0, 10_000), min_size=len(reference), max_size=len(reference)))
    table = np.array([reference, current])
    table = table[:, table.sum(axis=0) > 0]

    statistic, p_value = stats.chi2_homogeneity(reference, current)

    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        assert (statistic, p_value) == (0.0, 1.0)
        return
    expected = sps.chi2_contingency(table, correction=False)
    assert statistic == pytest.approx(expected.statistic, rel=1e-9, abs=1e-9)
    assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), reference=counts)
def test_js_distance_matches_scipy(data: st.DataObject, reference: list[int]) -> None:
    current = data.draw(st.lists(st.integers(0, 10_000), min_size=len(reference), max_size=len(reference)))
    if sum(reference) == 0 or sum(current) == 0:
        return  # scipy returns nan for an empty histogram; drift never asks (min_samples)

    assert stats.js_distance(reference, current) == pytest.approx(
        jensenshannon(reference, current, base=2), abs=1e-9
    )


def test_psi_matches_the_textbook_formula() -> None:
    # Two bins, 50/50 -> 90/10: 0.4*ln(1.8) + 0.4*ln(5) by hand.
    assert stats.psi([50, 50], [90, 10]) == pytest.approx(0.4 * np.log(1.8) + 0.4 * np.log(5))
    assert stats.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)
    # An empty reference bin is floored at 1e-4 instead of dividing by zero.
    assert stats.psi([100, 0], [50, 50]) == pytest.approx(
        (0.5 - 1.0) * np.log(0.5 / 1.0) + (0.5 - 1e-4) * np.log(0.5 / 1e-4)
    )


@settings(max_examples=100, deadline=None)
@given(values=samples, edges=st.lists(finite_floats, min_size=1, max_size=10, unique=True))
def test_histogram_of_sorted_values_matches_per_value_binning(
    values: list[float], edges: list[float]
) -> None:
    e = np.sort(np.array(edges))
    x = np.array(values)
    expected = np.bincount(np.searchsorted(e, x, side="right"), minlength=len(e) + 1)

    assert stats.histogram_sorted(np.sort(x), e).tolist() == expected.tolist()


def test_binned_statistics_agree_with_scipy_on_the_reference_binning() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=20_000), rng.normal(0.2, 1.1, size=8_000)
    ref = numeric_reference(a)
    # scipy's view of the same binning: each value's bin, one by one.
    current_counts = np.bincount(np.searchsorted(ref.edges, b, side="right"), minlength=len(ref.edges) + 1)
    reference_counts = np.bincount(np.searchsorted(ref.edges, a, side="right"), minlength=len(ref.edges) + 1)
    assert ref.bin_counts.tolist() == reference_counts.tolist()

    counts = stats.histogram_sorted(np.sort(b), ref.edges)

    assert counts.tolist() == current_counts.tolist()
    used = (reference_counts + current_counts) > 0
    expected = sps.chi2_contingency(np.array([reference_counts, current_counts])[:, used], correction=False)
    assert stats.chi2_homogeneity(ref.bin_counts, counts)[0] == pytest.approx(expected.statistic, rel=1e-9)
    assert stats.js_distance(ref.bin_counts, counts) == pytest.approx(
        jensenshannon(reference_counts, current_counts, base=2), abs=1e-9
    )
