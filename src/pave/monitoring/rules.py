"""Drift rules: which statistical test decides drift for a feature, and at what threshold.

:class:`DriftRule` is one test and threshold; :class:`DriftConfig` assigns rules to
features (a default for numeric, one for categorical, overrides by name) and
holds ``min_samples`` and the dataset-level ``drift_share``. Both validate on
construction and raise :class:`~pave.errors.InvalidInput` naming the bad value.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from pave.errors import InvalidInput
from pave.monitoring.reference import CategoricalReference, FeatureReference, NumericReference, Reference

DEFAULT_THRESHOLDS = {"psi": 0.2, "js": 0.1, "wasserstein": 0.1, "ks": 0.05, "chi2": 0.05}
P_VALUE_METHODS = frozenset({"ks", "chi2"})
NUMERIC_ONLY_METHODS = frozenset({"ks", "wasserstein"})


@dataclass(frozen=True)
class DriftRule:
    """Which test decides drift for a feature, and its threshold.

    Args:
        method: one of ``psi``, ``js``, ``wasserstein``, ``ks``, ``chi2``.
        threshold: a distance above which the feature drifts (``psi``, ``js``,
            ``wasserstein``), or a significance level below which the p-value
            means drift (``ks``, ``chi2``). ``None`` takes the method's default.

    Raises:
        InvalidInput: unknown method, or a threshold the method can never meet.
    """

    method: str = "psi"
    threshold: float | None = None

    def __post_init__(self) -> None:
        if self.method not in DEFAULT_THRESHOLDS:
            raise InvalidInput(
                f"unknown drift method {self.method!r}",
                hint=f"use one of {sorted(DEFAULT_THRESHOLDS)}",
            )
        if self.threshold is None:
            object.__setattr__(self, "threshold", DEFAULT_THRESHOLDS[self.method])
        value = self.threshold
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not np.isfinite(value):
            raise InvalidInput(
                f"drift threshold {value!r} for method {self.method!r} is not a finite number",
                hint=f"the default is {DEFAULT_THRESHOLDS[self.method]}",
            )
        value = float(value)  # numpy scalars in, plain JSON floats out
        object.__setattr__(self, "threshold", value)
        if self.method in P_VALUE_METHODS and not 0.0 < value < 1.0:
            raise InvalidInput(
                f"drift threshold {value} for {self.method!r} is a p-value: it must lie strictly in (0, 1)",
                hint="use a significance level such as 0.05 or 0.01",
            )
        if self.method == "js" and not 0.0 < value <= 1.0:
            raise InvalidInput(
                f"drift threshold {value} for 'js' must be in (0, 1]: the base-2 Jensen-Shannon distance is",
                hint="use e.g. 0.1",
            )
        if value <= 0.0:
            raise InvalidInput(
                f"drift threshold {value} for {self.method!r} must be positive: the statistic is a distance",
                hint=f"use e.g. {DEFAULT_THRESHOLDS[self.method]}",
            )

    @property
    def limit(self) -> float:
        """The resolved threshold (never ``None`` after construction)."""
        assert self.threshold is not None
        return float(self.threshold)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftRule:
        """Read ``{"method": ..., "threshold": ...}`` (threshold optional)."""
        if not isinstance(data, Mapping) or "method" not in data:
            raise InvalidInput(
                f"drift rule {data!r} needs a 'method'", hint='e.g. {"method": "psi", "threshold": 0.2}'
            )
        return cls(method=data["method"], threshold=data.get("threshold"))


@dataclass(frozen=True)
class DriftConfig:
    """How to test every feature.

    Args:
        numeric: rule for numeric features without an entry in ``features``.
        categorical: rule for categorical features without an entry in ``features``.
        features: per-feature rules, by column name.
        min_samples: fewest usable values, in the reference and in the window, for
            a feature to be tested at all.
        drift_share: share of the tested features that must drift for the
            dataset as a whole to count as drifting.

    Raises:
        InvalidInput: a rule is invalid, or min_samples / drift_share are out of range.
    """

    numeric: DriftRule = field(default_factory=DriftRule)
    categorical: DriftRule = field(default_factory=DriftRule)
    features: Mapping[str, DriftRule] = field(default_factory=dict)
    min_samples: int = 100
    drift_share: float = 0.5

    def __post_init__(self) -> None:
        if (
            isinstance(self.min_samples, bool)
            or not isinstance(self.min_samples, int)
            or self.min_samples < 1
        ):
            raise InvalidInput(
                f"min_samples must be a positive integer, got {self.min_samples!r}", hint="e.g. 100"
            )
        wrong = sorted(name for name, rule in self.features.items() if not isinstance(rule, DriftRule))
        if wrong:
            raise InvalidInput(
                f"drift rules for {wrong} are not DriftRule objects",
                hint="use DriftRule(method, threshold), or DriftConfig.from_dict for plain dicts",
            )
        if not 0.0 < self.drift_share <= 1.0:
            raise InvalidInput(f"drift_share must be in (0, 1], got {self.drift_share!r}", hint="e.g. 0.5")
        if self.categorical.method in NUMERIC_ONLY_METHODS:
            raise InvalidInput(
                f"method {self.categorical.method!r} needs numeric values; it cannot be the categorical rule",
                hint="use 'psi', 'js' or 'chi2' for categorical features",
            )

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftConfig:
        """Read the API's JSON shape: rules as ``{"method", "threshold"}`` dicts."""
        allowed = {"numeric", "categorical", "features", "min_samples", "drift_share"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise InvalidInput(
                f"unknown drift config keys {unknown}", hint=f"allowed keys: {sorted(allowed)}"
            )
        kwargs: dict[str, Any] = {k: data[k] for k in ("min_samples", "drift_share") if k in data}
        for key in ("numeric", "categorical"):
            if key in data:
                kwargs[key] = DriftRule.from_dict(data[key])
        kwargs["features"] = {
            name: DriftRule.from_dict(r) for name, r in dict(data.get("features", {})).items()
        }
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types; :meth:`from_dict` reads it back."""
        return {
            "numeric": asdict(self.numeric),
            "categorical": asdict(self.categorical),
            "features": {name: asdict(rule) for name, rule in self.features.items()},
            "min_samples": self.min_samples,
            "drift_share": self.drift_share,
        }

    def rule_for(self, name: str, ref: FeatureReference) -> DriftRule:
        """The rule that applies to feature ``name`` with reference ``ref``."""
        if name in self.features:
            return self.features[name]
        return self.numeric if isinstance(ref, NumericReference) else self.categorical

    def check_against(self, reference: Reference) -> None:
        """Fail early if a per-feature rule names an unknown feature or cannot apply to it.

        Raises:
            InvalidInput: naming the feature and what to change.
        """
        unknown = sorted(set(self.features) - set(reference.features))
        if unknown:
            raise InvalidInput(
                f"drift rules name features {unknown} that the reference does not have",
                hint=f"the reference has {sorted(reference.features)}",
            )
        for name, rule in self.features.items():
            if rule.method in NUMERIC_ONLY_METHODS and isinstance(
                reference.features[name], CategoricalReference
            ):
                raise InvalidInput(
                    f"feature {name!r} is categorical; method {rule.method!r} needs numeric values",
                    hint="use 'psi', 'js' or 'chi2' for it",
                )
