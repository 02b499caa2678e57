"""Reference profiles: the compact, JSON-safe summary of training data that drift is measured against.

Per numeric feature a reference keeps:

* ``bins`` quantile bins (fewer when values tie) with the training counts, plus
  two open-ended outer bins, below the training minimum and above the maximum,
  that are empty in training and catch out-of-range traffic;
* a weighted sketch for KS and Wasserstein: the distinct values and their counts
  when there are at most ``sketch_size`` of them (then KS and Wasserstein are
  exact), otherwise ``sketch_size`` equal-count slices of the sorted values, each
  replaced by its mean.  Moving every value to its slice mean moves the
  distribution by a known amount, stored with the sketch: ``ks_error`` (the
  largest slice's share) and ``wasserstein_error`` (the mean distance to the slice
  mean).  By the triangle inequality a statistic computed from the sketch is
  within that much of the exact one.  The first value of each slice is kept too
  (``sketch_knots``): KS uses the CDF interpolated between them, which is as
  safe (within ``ks_error``) and, for continuous data, far closer in practice.

Per categorical feature it keeps the ``max_categories`` most frequent values with
their counts and an "other" bucket that takes the rest and, later, unseen values.

A prediction column is profiled the same way as any feature: numeric for scores
and regression outputs, categorical (list it in ``categorical``) for class labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from pave.errors import InvalidInput
from pave.monitoring.stats import FloatArray, IntArray, histogram_sorted

FORMAT_VERSION = 1
Category = str | int | float | bool


@dataclass(frozen=True)
class NumericReference:
    """Profile of one numeric feature. Counts cover finite values only."""

    count: int
    missing: int  # NaN / None in training
    invalid: int  # +-inf in training
    mean: float
    std: float
    edges: FloatArray  # strictly increasing; len(edges) + 1 bins, the outer two open-ended
    bin_counts: IntArray
    sketch_points: FloatArray  # ascending
    sketch_counts: IntArray
    sketch_exact: bool
    sketch_knots: FloatArray  # sketch only: first value of each slice, then the maximum
    ks_error: float
    wasserstein_error: float

    kind: ClassVar[str] = "numeric"

    @property
    def knot_probs(self) -> FloatArray:
        """Share of reference values strictly below each sketch knot (1 at the last)."""
        below = np.cumsum(self.sketch_counts) - self.sketch_counts
        return np.append(below / max(self.count, 1), 1.0)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only; floats keep full precision through ``json``."""
        return {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "invalid": self.invalid,
            "mean": self.mean,
            "std": self.std,
            "edges": self.edges.tolist(),
            "bin_counts": self.bin_counts.tolist(),
            "sketch": {
                "points": self.sketch_points.tolist(),
                "counts": self.sketch_counts.tolist(),
                "exact": self.sketch_exact,
                "knots": self.sketch_knots.tolist(),
                "ks_error": self.ks_error,
                "wasserstein_error": self.wasserstein_error,
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericReference:
        """Rebuild from :meth:`to_dict` output."""
        sketch = data["sketch"]
        ref = cls(
            count=int(data["count"]),
            missing=int(data["missing"]),
            invalid=int(data["invalid"]),
            mean=float(data["mean"]),
            std=float(data["std"]),
            edges=np.asarray(data["edges"], dtype=np.float64),
            bin_counts=np.asarray(data["bin_counts"], dtype=np.int64),
            sketch_points=np.asarray(sketch["points"], dtype=np.float64),
            sketch_counts=np.asarray(sketch["counts"], dtype=np.int64),
            sketch_exact=bool(sketch["exact"]),
            sketch_knots=np.asarray(sketch["knots"], dtype=np.float64),
            ks_error=float(sketch["ks_error"]),
            wasserstein_error=float(sketch["wasserstein_error"]),
        )
        if (
            len(ref.bin_counts) != len(ref.edges) + 1
            or len(ref.sketch_points) != len(ref.sketch_counts)
            or (not ref.sketch_exact and len(ref.sketch_knots) != len(ref.sketch_counts) + 1)
        ):
            raise ValueError("bin or sketch arrays have inconsistent lengths")
        return ref


@dataclass(frozen=True)
class CategoricalReference:
    """Profile of one categorical feature; the last count is the "other" bucket."""

    count: int
    missing: int
    categories: tuple[Category, ...]
    counts: IntArray  # len(categories) + 1

    kind: ClassVar[str] = "categorical"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only."""
        return {
            "kind": self.kind,
            "count": self.count,
            "missing": self.missing,
            "categories": list(self.categories),
            "counts": self.counts.tolist(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalReference:
        """Rebuild from :meth:`to_dict` output."""
        ref = cls(
            count=int(data["count"]),
            missing=int(data["missing"]),
            categories=tuple(data["categories"]),
            counts=np.asarray(data["counts"], dtype=np.int64),
        )
        if len(ref.counts) != len(ref.categories) + 1:
            raise ValueError("counts must have one entry per category plus 'other'")
        return ref


FeatureReference = NumericReference | CategoricalReference


@dataclass(frozen=True)
class Reference:
    """Reference profiles of every feature of a training set, by column name."""

    features: dict[str, FeatureReference]

    def to_dict(self) -> dict[str, Any]:
        """A dict of plain JSON types (``json.dumps`` works on it as is)."""
        return {
            "format": FORMAT_VERSION,
            "features": {name: ref.to_dict() for name, ref in self.features.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Reference:
        """Rebuild a reference saved with :meth:`to_dict`.

        Raises:
            InvalidInput: the data is not a reference of a format this Pave reads.
        """
        hint = "rebuild it with pave.monitoring.reference.build_reference(training_df)"
        if not isinstance(data, Mapping) or data.get("format") != FORMAT_VERSION:
            raise InvalidInput(f"not a drift reference of format {FORMAT_VERSION}", hint=hint)
        features: dict[str, FeatureReference] = {}
        for name, item in dict(data.get("features", {})).items():
            try:
                kind = item["kind"]
                if kind == NumericReference.kind:
                    features[name] = NumericReference.from_dict(item)
                elif kind == CategoricalReference.kind:
                    features[name] = CategoricalReference.from_dict(item)
                else:
                    raise ValueError(f"unknown kind {kind!r}")
            except (KeyError, TypeError, ValueError) as exc:
                raise InvalidInput(
                    f"drift reference feature {name!r} is malformed: {exc}", hint=hint
                ) from exc
        return cls(features=features)


def build_reference(
    df: pd.DataFrame,
    categorical: list[str] | None = None,
    *,
    bins: int = 30,
    sketch_size: int = 1000,
    max_categories: int = 50,
) -> Reference:
    """Profile every column of a training DataFrame.

    Columns listed in ``categorical`` and non-numeric columns (strings, booleans,
    pandas categoricals) are categorical; integer and float columns are numeric.

    Args:
        df: the training data (features and, if wanted, the prediction column).
        categorical: columns to treat as categorical even if numeric (codes, labels).
        bins: number of quantile bins per numeric feature (fewer when values tie).
        sketch_size: numeric features with at most this many distinct values are
            kept exactly; others are summarised in this many slices.
        max_categories: most frequent categories kept; the rest count as "other".

    Returns:
        The reference; ``reference.to_dict()`` is what to store.

    Raises:
        InvalidInput: a parameter is out of range, a listed column is missing, or a
            column has a type that has no distribution to compare (dates, times).
    """
    if bins < 2 or sketch_size < 2 or max_categories < 1:
        raise InvalidInput(
            f"build_reference needs bins >= 2, sketch_size >= 2 and max_categories >= 1 "
            f"(got {bins}, {sketch_size}, {max_categories})",
            hint="use the defaults: bins=30, sketch_size=1000, max_categories=50",
        )
    listed = set(categorical or [])
    unknown = sorted(listed - set(map(str, df.columns)))
    if unknown:
        raise InvalidInput(
            f"categorical columns {unknown} are not in the training data",
            hint=f"pick from {sorted(map(str, df.columns))}",
        )
    features: dict[str, FeatureReference] = {}
    for column in df.columns:
        name = str(column)
        series = df[column]
        if pd.api.types.is_datetime64_any_dtype(series) or pd.api.types.is_timedelta64_dtype(series):
            raise InvalidInput(
                f"column {name!r} holds dates or durations, which drift cannot compare",
                hint="drop it or convert it to a number (e.g. age in days) before build_reference",
            )
        if name in listed or not is_numeric_column(series):
            features[name] = _categorical_reference(series, max_categories)
        else:
            features[name] = _numeric_reference(
                series.to_numpy(dtype=np.float64, na_value=np.nan), bins, sketch_size
            )
    return Reference(features=features)


def is_numeric_column(series: pd.Series) -> bool:
    """Integers and floats are numeric; booleans are categorical."""
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _numeric_reference(values: FloatArray, bins: int, sketch_size: int) -> NumericReference:
    nan = np.isnan(values)
    finite = np.isfinite(values)
    data = np.sort(values if finite.all() else values[finite])
    n = len(data)
    if n == 0:
        none = np.empty(0, np.float64)
        return NumericReference(
            count=0, missing=int(nan.sum()), invalid=int((~finite & ~nan).sum()), mean=0.0, std=0.0,
            edges=none, bin_counts=np.zeros(1, np.int64), sketch_points=none,
            sketch_counts=np.empty(0, np.int64), sketch_exact=True, sketch_knots=none, ks_error=0.0,
            wasserstein_error=0.0,
        )  # fmt: skip

    edges = np.unique(_sorted_quantiles(data, np.linspace(0.0, 1.0, bins + 1)))
    # The top edge sits just above the maximum so the maximum falls in the last
    # inner bin and only values beyond training land in the upper outer bin.
    edges[-1] = np.nextafter(data[-1], np.inf)
    if len(edges) == 1:
        edges = np.array([data[0], np.nextafter(data[0], np.inf)])
    bin_counts = histogram_sorted(data, edges)

    changes = data[1:] != data[:-1]
    if np.count_nonzero(changes) < sketch_size:  # few distinct values: keep them all
        first = np.concatenate(([0], np.flatnonzero(changes) + 1))
        points, counts = data[first], np.diff(np.append(first, n))
        exact, knots, ks_error, w_error = True, np.empty(0, np.float64), 0.0, 0.0
    else:
        # Equal-count slices of the sorted data, each replaced by its mean.
        starts = (np.arange(sketch_size) * n) // sketch_size
        counts = np.diff(np.append(starts, n))
        points = np.add.reduceat(data, starts) / counts
        exact = False
        knots = np.append(data[starts], data[-1])
        ks_error = float(counts.max() / n)
        w_error = _distance_to_slice_means(data, starts, points) / n
        # Summation order can leave a mean a hair outside its slice; keep ascending.
        points = np.maximum.accumulate(points)
    return NumericReference(
        count=n,
        missing=int(nan.sum()),
        invalid=int((~finite & ~nan).sum()),
        mean=float(data.mean()),
        std=float(data.std()),
        edges=edges,
        bin_counts=bin_counts,
        sketch_points=points.astype(np.float64),
        sketch_counts=counts.astype(np.int64),
        sketch_exact=exact,
        sketch_knots=knots,
        ks_error=ks_error,
        wasserstein_error=w_error,
    )


def _sorted_quantiles(data: FloatArray, probs: FloatArray) -> FloatArray:
    # np.quantile's "linear" method, without its O(n) partition: data is sorted.
    position = probs * (len(data) - 1)
    low = np.floor(position).astype(np.int64)
    high = np.minimum(low + 1, len(data) - 1)
    result: FloatArray = data[low] + (position - low) * (data[high] - data[low])
    return result


def _distance_to_slice_means(data: FloatArray, starts: IntArray, means: FloatArray) -> float:
    """Sum of |x - mean of x's slice| over sorted data, in two reduceat passes.

    Each slice splits at its mean into values below (contributing mean - x) and
    at or above (x - mean); the split points come from one binary search per
    slice, clipped to the slice because tied values may straddle slices.
    """
    n = len(data)
    ends = np.append(starts[1:], n)
    split = np.clip(np.searchsorted(data, means, side="left"), starts, ends)
    bounds = np.empty(2 * len(starts), dtype=np.int64)
    bounds[0::2], bounds[1::2] = starts, split
    sums = np.add.reduceat(data, np.minimum(bounds, n - 1))
    sums[np.diff(np.append(bounds, n)) == 0] = 0.0  # reduceat gives data[i] for an empty segment
    below, above = sums[0::2], sums[1::2]
    n_below, n_above = split - starts, ends - split
    return float(np.sum(n_below * means - below) + np.sum(above - n_above * means))


def _categorical_reference(series: pd.Series, max_categories: int) -> CategoricalReference:
    missing = int(series.isna().sum())
    freq = series.dropna().value_counts(sort=True)
    kept = freq.iloc[:max_categories]
    categories = tuple(_json_scalar(v) for v in kept.index)
    counts = np.append(kept.to_numpy(dtype=np.int64), int(freq.iloc[max_categories:].sum()))
    return CategoricalReference(count=int(freq.sum()), missing=missing, categories=categories, counts=counts)


def _json_scalar(value: Any) -> Category:
    # numpy scalars become their Python twins so json.dumps takes them; anything
    # else (tuples, objects) is compared by its string form.
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, str | bool | int | float):
        return value
    return str(value)


def reference_from_profile(profile: Mapping[str, Any]) -> Reference:
    """The drift reference embedded in a training profile (``data/profile.json`` of a run).

    Args:
        profile: one source's profile (:func:`pave.data.profile.profile_frame`), or the whole
            ``profile.json`` (source name -> profile) when the run had a single source.

    Raises:
        InvalidInput: the profile predates embedded references, or holds several sources.
    """
    if "reference" not in profile and len(profile) == 1:
        profile = next(iter(profile.values()))
    if not isinstance(profile, Mapping) or "reference" not in profile:
        raise InvalidInput(
            "this training profile has no drift reference (it predates Pave's monitoring)",
            hint="run `pave run` again: new runs save the reference with the profile",
        )
    return Reference.from_dict(profile["reference"])
