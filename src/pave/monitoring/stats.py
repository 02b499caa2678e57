"""Drift statistics over precomputed reference histograms and sketches.

Every function here is pure numpy (scipy only for the p-value distributions) and
works on already-cleaned finite values: :mod:`pave.monitoring.drift` does the
cleaning, the configuration and the verdicts.

The current window is sorted once per feature; after that every statistic costs
O(bins) or O(n) with a handful of vectorised passes. Sorting is cheaper than
binning unsorted values (``np.searchsorted`` of a million unsorted needles is
about twice as slow as ``np.sort`` of them), and a sorted window gives the
histogram, KS and Wasserstein from the same array.

Agreement with scipy, on the same samples and the same binning (asserted by
``tests/monitoring/test_drift_stats.py``):

* :func:`ks_wasserstein` against ``scipy.stats.ks_2samp`` and
  ``scipy.stats.wasserstein_distance`` to 1e-9 (relative, floating point only)
  when the reference is exact, i.e. it kept every distinct value.  When the
  reference is a sketch, the error is bounded by the sketch's own
  ``ks_error`` and ``wasserstein_error`` (see :mod:`pave.monitoring.reference`).
* :func:`ks_pvalue` is Smirnov's asymptotic distribution, the same as
  ``ks_2samp(method="asymp")`` (scipy's default for samples over 10,000), to
  1e-9 up to an effective size of 10,000 and to 0.5% beyond (see there).
* :func:`chi2_homogeneity` against ``scipy.stats.chi2_contingency(correction=False)``
  and :func:`js_distance` against ``scipy.spatial.distance.jensenshannon(base=2)``
  to 1e-9.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy import stats as sps

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Floor for bin proportions in PSI: an empty bin on either side would make the
# logarithm infinite; 1e-4 is the customary floor and keeps one empty bin's
# contribution below ~0.001 when the other side is also near empty.
PSI_EPSILON = 1e-4
# Largest effective sample size for which ks_pvalue asks scipy's exact-N Smirnov tail.
KS_EXACT_N = 10_000


def histogram_sorted(sorted_values: FloatArray, edges: FloatArray) -> IntArray:
    """Counts of sorted values in the bins defined by ``edges``, outer bins open-ended.

    Bin ``k`` holds the values with exactly ``k`` edges less than or equal to them,
    so there are ``len(edges) + 1`` bins: ``(-inf, e0)``, ``[e0, e1)``, ..., ``[e_last, inf)``.

    Args:
        sorted_values: finite values in ascending order.
        edges: strictly increasing bin edges.

    Returns:
        The ``len(edges) + 1`` counts.
    """
    below = np.searchsorted(sorted_values, edges, side="left")
    bounds = np.concatenate(([0], below, [len(sorted_values)]))
    return np.diff(bounds).astype(np.int64)


def psi(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Population stability index over the same bins.

    ``sum((c - r) * ln(c / r))`` over bin proportions, each floored at
    :data:`PSI_EPSILON` so that empty bins stay finite.

    Args:
        reference_counts: counts per bin in the reference.
        current_counts: counts per bin in the current window, same bins.

    Returns:
        The PSI, >= 0; 0.1 is usually read as a small shift, 0.2 as a real one.
    """
    r = _proportions(reference_counts)
    c = _proportions(current_counts)
    r = np.maximum(r, PSI_EPSILON)
    c = np.maximum(c, PSI_EPSILON)
    return float(np.sum((c - r) * np.log(c / r)))


def js_distance(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> float:
    """Jensen-Shannon distance (base 2, so within [0, 1]) between two histograms.

    Args:
        reference_counts: counts per bin in the reference.
        current_counts: counts per bin in the current window, same bins.

    Returns:
        The distance, the square root of the JS divergence, as scipy's
        ``jensenshannon(p, q, base=2)`` computes it.
    """
    p = _proportions(reference_counts)
    q = _proportions(current_counts)
    mid = (p + q) / 2.0
    divergence = (_kl(p, mid) + _kl(q, mid)) / 2.0
    return float(np.sqrt(max(divergence, 0.0) / np.log(2.0)))


def chi2_homogeneity(reference_counts: npt.ArrayLike, current_counts: npt.ArrayLike) -> tuple[float, float]:
    """Pearson's chi-squared test that two histograms come from one distribution.

    The 2 x k contingency test (no Yates correction); bins empty on both sides are
    dropped because they carry no information and would divide by zero.

    Args:
        reference_counts: counts per bin (or category) in the reference.
        current_counts: counts per bin in the current window, same bins.

    Returns:
        ``(statistic, p_value)``; ``(0.0, 1.0)`` when fewer than two bins are used.
    """
    table = np.vstack([np.asarray(reference_counts, float), np.asarray(current_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    rows = table.sum(axis=1)
    if table.shape[1] < 2 or np.any(rows == 0):
        return 0.0, 1.0
    expected = np.outer(rows, table.sum(axis=0)) / table.sum()
    statistic = float(np.sum((table - expected) ** 2 / expected))
    dof = table.shape[1] - 1
    return statistic, float(sps.chi2.sf(statistic, dof))


def ks_pvalue(statistic: float, n_reference: int, n_current: int) -> float:
    """Two-sided p-value of a two-sample KS statistic, Smirnov's asymptotic form.

    Up to an effective size ``n*m/(n+m)`` of 10,000 this is scipy's
    ``kstwo.sf``, exactly what ``ks_2samp(method="asymp")`` returns. Beyond it,
    ``kstwo.sf`` can take most of a second per call, so the Kolmogorov limit
    with Stephens' finite-size correction, ``kstwobign.sf(D * (sqrt(N) + 0.12 +
    0.11 / sqrt(N)))``, is used instead: within 0.5% (relative) of scipy's value
    for p-values >= 0.001, where thresholds live, and within 2.5% below that.

    Args:
        statistic: the KS statistic D.
        n_reference: size of the reference sample.
        n_current: size of the current sample.

    Returns:
        The p-value in [0, 1].
    """
    big, small = max(n_reference, n_current), min(n_reference, n_current)
    # At least 1: scipy divides by the size, and a 1-vs-1 comparison rounds to 0.
    effective = max(float(np.round(big * small / (big + small))), 1.0)
    if effective <= KS_EXACT_N:
        p = sps.kstwo.sf(statistic, effective)
    else:
        root = np.sqrt(effective)
        p = sps.kstwobign.sf(statistic * (root + 0.12 + 0.11 / root))
    return float(np.clip(p, 0.0, 1.0))


def ks_interpolated(knots: FloatArray, probs: FloatArray, sorted_current: FloatArray) -> float:
    """KS statistic against a reference CDF known at knots and interpolated linearly between them.

    ``probs[k]`` is the share of reference values strictly below ``knots[k]``
    (1 at the last knot, the maximum). The true reference CDF between two knots
    lies between their probabilities, and so does the interpolation; hence the
    result is within ``max(diff(probs))`` of the exact statistic. Repeated knots
    (a value that fills whole slices) are a jump, handled by taking the CDF's
    left limit (knots ``<`` x) and its value (knots ``<=`` x) separately.

    Args:
        knots: ascending, possibly repeated, at least two.
        probs: reference CDF just below each knot, ascending, last one 1.
        sorted_current: finite current values, ascending, at least one.

    Returns:
        The KS statistic.
    """
    m = len(sorted_current)
    c = sorted_current
    width = np.diff(knots)
    slope = np.divide(np.diff(probs), width, out=np.zeros_like(width), where=width > 0)
    # Segment s = number of knots at or below a value: 0 is below the first knot
    # (CDF 0), len(knots) at or above the maximum (CDF 1), and in between the CDF
    # rises linearly from probs[s-1] at knots[s-1].
    seg_start = np.concatenate(([knots[0]], knots))  # below the first knot the slope is 0 anyway
    seg_prob = np.concatenate(([0.0], probs[:-1], [1.0]))
    seg_slope = np.concatenate(([0.0], slope, [0.0]))

    def cdf(at_or_below: bool) -> FloatArray:
        # Segment of each current value = number of knots <= it (the CDF's value)
        # or < it (its left limit). Current values are sorted, so that count is a
        # step function of the position: spread with repeat, not m binary searches.
        side: Literal["left", "right"] = "left" if at_or_below else "right"
        steps = np.diff(np.concatenate(([0], np.searchsorted(c, knots, side=side), [m])))
        seg = np.repeat(np.arange(len(knots) + 1), steps)
        return seg_prob[seg] + seg_slope[seg] * (c - seg_start[seg])

    positions = np.arange(m, dtype=np.float64)
    d_plus = float(np.max((positions + 1) / m - cdf(at_or_below=True)))
    d_minus = float(np.max(cdf(at_or_below=False) - positions / m))
    return max(d_plus, d_minus, 0.0)


def ks_wasserstein(points: FloatArray, weights: IntArray, sorted_current: FloatArray) -> tuple[float, float]:
    """KS statistic and Wasserstein-1 distance between a weighted reference and a sample.

    The reference is a discrete distribution: ``points`` (ascending, repeats
    allowed) carrying integer ``weights``. With the reference's distinct values
    and their counts this is exact; with a sketch it is off by at most the
    sketch's error bounds, by the triangle inequality.

    The current sample enters sorted, and the cost is O(m + k) for m current
    values and k reference points: reference points are located in the sample
    with k binary searches, the reference CDF at every current value is spread
    with ``np.repeat``, and the few current gaps that contain reference points
    are corrected afterwards rather than merged in.

    Args:
        points: reference support points, ascending.
        weights: reference count at each point (all > 0).
        sorted_current: finite current values, ascending, at least one.

    Returns:
        ``(ks_statistic, wasserstein_distance)``.
    """
    m = len(sorted_current)
    n = float(weights.sum())
    c = sorted_current
    cum = np.cumsum(weights) / n  # R just after each reference point
    before = cum - weights / n  # R just before it

    left = np.searchsorted(c, points, side="left")  # current values < point
    right = np.searchsorted(c, points, side="right")  # current values <= point

    # R at each current value: reference mass at or below it. A point with
    # `left` current values below it sits at or below c[left:], hence a step
    # function of the index, spread by repeat instead of m binary searches.
    steps = np.diff(np.concatenate(([0], left, [m])))
    r_at_c = np.repeat(np.concatenate(([0.0], cum)), steps)

    # C - R at each current value; within a run of ties the last one is C's
    # true value and also the largest, so the max needs no tie handling.
    # (In-place arithmetic throughout: at a million values, fresh 8 MB arrays
    # cost as much in page faults as the arithmetic itself.)
    c_minus_r = np.arange(1, m + 1, dtype=np.float64)
    c_minus_r /= m
    c_minus_r -= r_at_c
    d_plus = float(c_minus_r.max())
    # R - C peaks right at a reference point, where C counts values <= point.
    d_minus = float(np.max(cum - right / m))
    ks = max(d_plus, d_minus, 0.0)

    # Integral of |R - C| over each gap between consecutive current values,
    # assuming R constant in the gap...
    np.abs(c_minus_r, out=c_minus_r)
    area = float(np.dot(np.diff(c), c_minus_r[:-1]))
    # ...then corrected for reference points strictly inside a gap: from the
    # point to the gap's end the integrand is |R_after - C| instead of |R_before - C|.
    inside = (left == right) & (left > 0) & (left < m)
    if inside.any():
        gap_c = left[inside] / m
        gap_end = c[left[inside]]
        delta = np.abs(cum[inside] - gap_c) - np.abs(before[inside] - gap_c)
        area += float(np.dot(gap_end - points[inside], delta))
    # Tails beyond the current sample's range: C is 0 below and 1 above.
    below = right == 0
    above = left == m
    area += float(np.dot(c[0] - points[below], weights[below])) / n
    area += float(np.dot(points[above] - c[-1], weights[above])) / n
    return ks, area


def _proportions(counts: npt.ArrayLike) -> FloatArray:
    values = np.asarray(counts, dtype=np.float64)
    total = values.sum()
    return values / total if total > 0 else values


def _kl(p: FloatArray, q: FloatArray) -> float:
    used = p > 0
    return float(np.sum(p[used] * np.log(p[used] / q[used])))
