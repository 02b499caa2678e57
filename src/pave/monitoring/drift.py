"""Data drift: compare a window of current traffic with a training reference, feature by feature.

The pieces::

    build_reference(training_df) -> Reference        (pave.monitoring.reference; stored as JSON)
    DriftConfig(numeric=DriftRule("psi", 0.2), ...)  which test and threshold per feature
    compute_drift(reference, window, config) -> DriftReport
        DriftReport.features: one FeatureDrift per reference feature
        DriftReport.to_dict(): plain dicts for the API

Methods and what their threshold means:

=============  ===============================  =====================  =========
method         statistic                        drifted when           default
=============  ===============================  =====================  =========
psi            PSI over the reference bins      statistic > threshold  0.2
js             Jensen-Shannon distance, base 2  statistic > threshold  0.1
wasserstein    Wasserstein-1 / reference std    statistic > threshold  0.1
ks             two-sample KS (numeric only)     p_value < threshold    0.05
chi2           chi-squared, bins or categories  p_value < threshold    0.05
=============  ===============================  =====================  =========

Wasserstein is divided by the reference's standard deviation (by 1 when the
feature was constant) so that one threshold fits features of any scale; the raw
distance agrees with ``scipy.stats.wasserstein_distance`` (see
:mod:`pave.monitoring.stats` for the tolerances).

Corrupt data never raises: per feature the report counts NaN/None values
(``n_missing``) and infinities or values of the wrong type (``n_invalid``), and
computes the statistic on the remaining finite values; a column absent from the
window is reported with status ``missing_column``. A feature with fewer than
``min_samples`` usable values on either side has status ``insufficient_data``
and is never drifting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from pave.errors import InvalidInput
from pave.monitoring import stats
from pave.monitoring.reference import CategoricalReference, NumericReference, Reference, build_reference
from pave.monitoring.rules import DriftConfig, DriftRule

__all__ = [
    "DriftConfig",
    "DriftReport",
    "DriftRule",
    "FeatureDrift",
    "Reference",
    "build_reference",
    "compute_drift",
]

OK = "ok"
INSUFFICIENT_DATA = "insufficient_data"
MISSING_COLUMN = "missing_column"


@dataclass(frozen=True)
class FeatureDrift:
    """The verdict for one feature.

    ``statistic`` is ``None`` when the feature could not be tested (see ``status``);
    ``p_value`` is set only for ``ks`` and ``chi2``. ``n_missing`` counts NaN/None
    in the window, ``n_invalid`` infinities and values that are not numbers (for a
    numeric feature); both are left out of ``n_current`` and of the statistic.
    """

    feature: str
    method: str
    statistic: float | None
    p_value: float | None
    threshold: float
    drifted: bool
    n_reference: int
    n_current: int
    status: str = OK
    n_missing: int = 0
    n_invalid: int = 0
    note: str | None = None  # a data problem worth a look, e.g. a column whose type changed

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types."""
        return asdict(self)


@dataclass(frozen=True)
class DriftReport:
    """Every feature's verdict and the dataset-level summary."""

    features: list[FeatureDrift]
    drift_share: float

    @property
    def drifted_features(self) -> list[str]:
        """Names of the features that drift."""
        return [f.feature for f in self.features if f.drifted]

    @property
    def share_drifted(self) -> float:
        """Share of the tested features (status ``ok``) that drift; 0 when none was tested."""
        tested = sum(f.status == OK for f in self.features)
        return len(self.drifted_features) / tested if tested else 0.0

    @property
    def dataset_drift(self) -> bool:
        """True when at least ``drift_share`` of the tested features drift."""
        return bool(self.drifted_features) and self.share_drifted >= self.drift_share

    def to_dict(self) -> dict[str, Any]:
        """Plain dicts for the API."""
        return {
            "dataset_drift": self.dataset_drift,
            "share_drifted": self.share_drifted,
            "drift_share": self.drift_share,
            "drifted_features": self.drifted_features,
            "insufficient_data": [f.feature for f in self.features if f.status == INSUFFICIENT_DATA],
            "missing_columns": [f.feature for f in self.features if f.status == MISSING_COLUMN],
            "features": [f.to_dict() for f in self.features],
        }


def compute_drift(
    reference: Reference,
    current: pd.DataFrame | Mapping[str, npt.ArrayLike],
    config: DriftConfig | None = None,
) -> DriftReport:
    """Test every reference feature of a window of current data for drift.

    Args:
        reference: built at training time with :func:`~pave.monitoring.reference.build_reference`.
        current: the window, a DataFrame or a dict of 1-D arrays by column name;
            columns the reference does not know are ignored.
        config: tests and thresholds; ``DriftConfig()`` when omitted.

    Returns:
        One :class:`FeatureDrift` per reference feature, in reference order.

    Raises:
        InvalidInput: the config does not fit the reference, or a column is not 1-D.
    """
    config = config or DriftConfig()
    config.check_against(reference)
    results = []
    for name, ref in reference.features.items():
        rule = config.rule_for(name, ref)
        column = _column(current, name)
        if column is None:
            results.append(_untested(name, rule, ref.count, 0, MISSING_COLUMN, 0, 0))
        elif isinstance(ref, NumericReference):
            results.append(_numeric_drift(name, ref, rule, column, config.min_samples))
        else:
            results.append(_categorical_drift(name, ref, rule, column, config.min_samples))
    return DriftReport(features=results, drift_share=config.drift_share)


def _numeric_drift(
    name: str, ref: NumericReference, rule: DriftRule, column: Any, min_samples: int
) -> FeatureDrift:
    values, n_missing, n_invalid = numeric_values(column)
    if ref.count < min_samples or len(values) < min_samples:
        return _untested(name, rule, ref.count, len(values), INSUFFICIENT_DATA, n_missing, n_invalid)
    # Sorted once for every method: histogramming sorted values is O(bins log n),
    # and the sort costs less than binning the unsorted values would.
    current = np.sort(values)
    p_value: float | None = None
    if rule.method == "ks":
        if ref.sketch_exact:
            statistic, _ = stats.ks_wasserstein(ref.sketch_points, ref.sketch_counts, current)
        else:
            statistic = stats.ks_interpolated(ref.sketch_knots, ref.knot_probs, current)
        p_value = stats.ks_pvalue(statistic, ref.count, len(current))
    elif rule.method == "wasserstein":
        _, distance = stats.ks_wasserstein(ref.sketch_points, ref.sketch_counts, current)
        statistic = distance / ref.std if ref.std > 0 else distance
    else:
        counts = stats.histogram_sorted(current, ref.edges)
        statistic, p_value = _binned(rule.method, ref.bin_counts, counts)
    return _verdict(name, rule, statistic, p_value, ref.count, len(current), n_missing, n_invalid)


def _categorical_drift(
    name: str, ref: CategoricalReference, rule: DriftRule, column: Any, min_samples: int
) -> FeatureDrift:
    series = column if isinstance(column, pd.Series) else pd.Series(np.asarray(column))
    missing = series.isna().to_numpy()
    codes = pd.Categorical(series, categories=list(ref.categories)).codes
    note = None
    unknown = int(((codes < 0) & ~missing).sum())
    if ref.categories and unknown > (len(series) - missing.sum()) / 2:
        # Mostly unknown values: often the column's type changed ("0" vs 0,
        # "True" vs True). Match by text before calling it drift, and say so.
        text = pd.Categorical(series.astype(str), categories=[str(c) for c in ref.categories]).codes.copy()
        text[missing] = -1
        recovered = int((text >= 0).sum() - (codes >= 0).sum())
        if recovered > 0:
            codes = text
            note = (
                f"{recovered} values matched training categories only as text: the column's type "
                f"({series.dtype}) differs from training's ({type(ref.categories[0]).__name__})"
            )
    # Code -1 is "not a known category": unseen values (the "other" bucket) and NaN.
    known = np.bincount(codes.astype(np.int64) + 1, minlength=len(ref.categories) + 1)
    n_missing = int(missing.sum())
    counts = np.append(known[1:], known[0] - n_missing)
    n_current = len(series) - n_missing
    if ref.count < min_samples or n_current < min_samples:
        return _untested(name, rule, ref.count, n_current, INSUFFICIENT_DATA, n_missing, 0)
    statistic, p_value = _binned(rule.method, ref.counts, counts)
    return replace(_verdict(name, rule, statistic, p_value, ref.count, n_current, n_missing, 0), note=note)


def _binned(
    method: str, reference_counts: npt.ArrayLike, counts: npt.ArrayLike
) -> tuple[float, float | None]:
    if method == "psi":
        return stats.psi(reference_counts, counts), None
    if method == "js":
        return stats.js_distance(reference_counts, counts), None
    return stats.chi2_homogeneity(reference_counts, counts)


def _verdict(
    name: str,
    rule: DriftRule,
    statistic: float,
    p_value: float | None,
    n_reference: int,
    n_current: int,
    n_missing: int,
    n_invalid: int,
) -> FeatureDrift:
    drifted = p_value < rule.limit if p_value is not None else statistic > rule.limit
    return FeatureDrift(
        feature=name,
        method=rule.method,
        statistic=float(statistic),
        p_value=p_value,
        threshold=rule.limit,
        drifted=bool(drifted),
        n_reference=n_reference,
        n_current=n_current,
        n_missing=n_missing,
        n_invalid=n_invalid,
    )


def _untested(
    name: str, rule: DriftRule, n_reference: int, n_current: int, status: str, n_missing: int, n_invalid: int
) -> FeatureDrift:
    return FeatureDrift(
        feature=name,
        method=rule.method,
        statistic=None,
        p_value=None,
        threshold=rule.limit,
        drifted=False,
        n_reference=n_reference,
        n_current=n_current,
        status=status,
        n_missing=n_missing,
        n_invalid=n_invalid,
    )


def _column(current: pd.DataFrame | Mapping[str, npt.ArrayLike], name: str) -> Any:
    if isinstance(current, pd.DataFrame):
        return current[name] if name in current.columns else None
    column = current.get(name)
    if column is not None and not isinstance(column, pd.Series) and np.ndim(column) != 1:
        raise InvalidInput(
            f"current column {name!r} has {np.ndim(column)} dimensions; drift needs one value per row",
            hint="pass a 1-D array per column (e.g. arr.ravel() or one key per output)",
        )
    return column


def numeric_values(column: Any) -> tuple[stats.FloatArray, int, int]:
    """The finite values of a column meant to be numeric, and what was dropped.

    Args:
        column: a pandas Series or anything ``np.asarray`` takes.

    Returns:
        ``(finite_values, n_missing, n_invalid)``: NaN/None count as missing;
        infinities and values that are not numbers (strings...) count as invalid.
    """
    if isinstance(column, pd.Series) and (
        pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    ):
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        n_missing = int(np.isnan(values).sum())
    else:
        array = np.asarray(column)
        if array.dtype.kind in "biuf":
            values = array.astype(np.float64, copy=False)
            n_missing = int(np.isnan(values).sum())
        elif array.dtype.kind in "mM":
            # Dates are numbers to numpy but not to the model: all invalid.
            n_missing = int(pd.isna(array).sum())
            values = np.full(len(array), np.inf)
        else:
            # Strings, objects, dates: coerce what parses, count the rest as invalid.
            series = pd.Series(array.ravel())
            n_missing = int(series.isna().sum())
            values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(values)
    n_finite = int(finite.sum())
    n_invalid = len(values) - n_finite - n_missing
    return (values if n_finite == len(values) else values[finite]), n_missing, n_invalid
