"""The ``monitor:`` section of ``pave.yaml``: which monitors run, how often, and where alerts go.

::

    monitor:
      schedule: 5m                 # how often the control plane evaluates the monitors
      on_alert: notify             # or retrain (the automation loop acts on it)
      sinks:
        - {kind: slack, url: https://hooks.slack.com/services/...}
        - {kind: pagerduty, url: https://events.pagerduty.com/v2/enqueue, routing_key: R0UT1NG}
        - {kind: webhook, url: https://alerts.example.com/pave}
      monitors:
        - {name: inputs, type: drift, method: psi, features: all, threshold: 0.2, window: 1h}
        - {name: outputs, type: prediction_drift, method: js, window: 1h}
        - {name: quality, type: performance, metric: accuracy, threshold: 0.8, window: 1d, min_samples: 50}
        - {name: fair, type: fairness, metric: demographic_parity_difference, threshold: 0.1, window: 1d}
        - {name: reasons, type: attribution_drift, threshold: 0.1, window: 1h}

Durations are seconds (``90``) or a number with a unit: ``30s``, ``5m``, ``1h``, ``1d``. A drift
monitor's ``threshold`` means what it means for its method (see :mod:`pave.monitoring.drift`); a
performance monitor alerts when the metric is worse than ``threshold`` (below it for accuracy, f1,
roc_auc and precision_at_k, above it for rmse and mae). A fairness monitor alerts when the
difference between the sensitive groups of its ``features`` (default: ``fairness.sensitive_features``
of ``pave.yaml``), computed on labelled traffic, is above ``threshold``. An attribution drift
monitor alerts for a feature whose mean absolute SHAP attribution on the window's inputs differs
from the training reference's by more than ``threshold`` (default 0.1) times the reference's total
(:mod:`pave.monitoring.attributions`).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from pave.errors import InvalidInput
from pave.monitoring.rules import DEFAULT_THRESHOLDS, DriftRule
from pave.registry.fairness import METRICS as FAIRNESS_METRICS

DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d)?\s*$")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
HIGHER_IS_BETTER = frozenset({"accuracy", "f1", "roc_auc", "precision_at_k"})
LOWER_IS_BETTER = frozenset({"rmse", "mae"})
METRICS = HIGHER_IS_BETTER | LOWER_IS_BETTER
MONITOR_NAME = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# Ten years: past it a duration is a typo, and a date that far back overflows Python's datetime.
MAX_DURATION = 3650 * 86400.0


def parse_duration(value: Any, *, what: str = "duration") -> float:
    """Seconds from ``90``, ``"90"``, ``"30s"``, ``"5m"``, ``"1h"`` or ``"1d"``.

    Raises:
        ValueError: not a positive duration (the message says how to write one).
    """
    if isinstance(value, bool):
        raise ValueError(f"{what} {value!r} is not a duration: write seconds (90) or 30s, 5m, 1h, 1d")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = DURATION.match(str(value))
        if not match:
            raise ValueError(f"{what} {value!r} is not a duration: write seconds (90) or 30s, 5m, 1h, 1d")
        seconds = float(match[1]) * _UNITS[match[2]]
    if not seconds > 0:
        raise ValueError(f"{what} must be positive, got {value!r}: e.g. 5m")
    if seconds > MAX_DURATION:
        raise ValueError(f"{what} {value!r} is longer than ten years (3650d): e.g. 30d")
    return seconds


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SinkSpec(_Model):
    """Where alerts are sent: a generic webhook (Pave's JSON), Slack, or PagerDuty Events v2."""

    kind: Literal["webhook", "slack", "pagerduty"] = Field(description="The payload shape.")
    url: str = Field(pattern=r"^https?://", max_length=2000, description="http(s) URL to POST to.")
    routing_key: str | None = Field(
        default=None, max_length=200, description="PagerDuty integration key (pagerduty only)."
    )

    @model_validator(mode="after")
    def _routing_key(self) -> SinkSpec:
        if self.kind == "pagerduty" and not self.routing_key:
            raise ValueError(
                "a pagerduty sink needs routing_key: the integration key of the PagerDuty service"
            )
        if self.kind != "pagerduty" and self.routing_key:
            raise ValueError(f"routing_key is for pagerduty sinks only; remove it from this {self.kind} sink")
        return self


class MonitorDef(_Model):
    """One monitor: data drift per feature, drift of the predictions, or a model metric on labels."""

    name: str = Field(pattern=MONITOR_NAME, description="Unique name; alerts carry it.")
    type: Literal["drift", "prediction_drift", "performance", "fairness", "attribution_drift"] = Field(
        default="drift", description="What is watched."
    )
    method: str | list[str] = Field(
        default="psi",
        description="Drift test(s): psi, js, wasserstein, ks, chi2 (a feature drifts when any says so).",
    )
    features: Literal["all"] | list[str] = Field(
        default="all", description="Drift: the input columns to watch, or all the reference has."
    )
    metric: str | None = Field(
        default=None,
        description=(
            "Performance: accuracy, f1, roc_auc, rmse, mae or precision_at_k. Fairness: "
            "demographic_parity_difference or equalized_odds_difference."
        ),
    )
    positive_label: str | int | float | bool | None = Field(
        default=None, description="Fairness: the favourable outcome (default: fairness.positive_label, or 1)."
    )
    threshold: float | None = Field(
        default=None,
        description=(
            "Drift: the method's threshold (default per method). Performance: the worst acceptable value."
        ),
    )
    window: float = Field(default=3600.0, description="Sliding window evaluated, e.g. 1h.")
    min_samples: int = Field(default=100, ge=1, description="Fewer rows (or labels) than this: no verdict.")
    severity: Literal["info", "warning", "critical"] = Field(default="warning", description="Alert severity.")

    @field_validator("window", mode="before")
    @classmethod
    def _window(cls, value: Any) -> float:
        return parse_duration(value, what="window")

    @field_validator("method")
    @classmethod
    def _methods(cls, value: str | list[str]) -> str | list[str]:
        methods = [value] if isinstance(value, str) else value
        if not methods:
            raise ValueError("list at least one method: psi, js, wasserstein, ks or chi2")
        for method in methods:
            if method not in DEFAULT_THRESHOLDS:
                raise ValueError(
                    f"unknown drift method {method!r}: use one of {', '.join(sorted(DEFAULT_THRESHOLDS))}"
                )
        return value

    @property
    def methods(self) -> list[str]:
        """The drift methods, as a list."""
        return [self.method] if isinstance(self.method, str) else list(self.method)

    @model_validator(mode="after")
    def _consistent(self) -> MonitorDef:
        if self.type == "fairness":
            if self.metric not in FAIRNESS_METRICS:
                raise ValueError(f"a fairness monitor needs metric: one of {', '.join(FAIRNESS_METRICS)}")
            if self.threshold is None or not 0.0 <= self.threshold < 1.0:
                raise ValueError(
                    "a fairness monitor needs threshold: the largest acceptable difference, in [0, 1), "
                    "e.g. 0.1"
                )
            return self
        if self.positive_label is not None:
            raise ValueError("positive_label is for fairness monitors")
        if self.type == "performance":
            if self.metric is None:
                raise ValueError(f"a performance monitor needs metric: one of {', '.join(sorted(METRICS))}")
            if self.metric not in METRICS:
                raise ValueError(f"unknown metric {self.metric!r}: use one of {', '.join(sorted(METRICS))}")
            if self.threshold is None:
                raise ValueError(f"a performance monitor needs threshold: the worst acceptable {self.metric}")
            return self
        if self.metric is not None:
            raise ValueError("metric is for performance monitors; remove it or set type: performance")
        return self

    @field_validator("threshold")
    @classmethod
    def _threshold(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None or info.data.get("type") == "fairness":  # checked with the metric, below
            return value
        if info.data.get("type") == "attribution_drift":
            if not 0.0 < value <= 1.0:
                raise ValueError(
                    f"threshold {value} is impossible for attribution drift: a share of the total "
                    "reference importance, in (0, 1], e.g. 0.1"
                )
            return value
        if info.data.get("type") == "performance":
            metric = info.data.get("metric")
            if metric in HIGHER_IS_BETTER and not 0.0 < value <= 1.0:
                raise ValueError(
                    f"threshold {value} is impossible for {metric}, which lies in [0, 1]: use e.g. 0.8"
                )
            if metric in LOWER_IS_BETTER and not value > 0.0:
                raise ValueError(f"threshold {value} is impossible for {metric}: it must be > 0")
            return value
        methods = info.data.get("method", "psi")
        for method in [methods] if isinstance(methods, str) else methods:
            try:
                DriftRule(method, value)
            except InvalidInput as exc:
                raise ValueError(f"{exc.message}; {exc.hint}") from exc
        return value

    def rules(self) -> list[DriftRule]:
        """One drift rule per method (threshold default applied)."""
        return [DriftRule(method, self.threshold) for method in self.methods]


class MonitorSpec(_Model):
    """The ``monitor:`` section of ``pave.yaml``; empty means no monitoring."""

    schedule: float = Field(default=300.0, description="How often the monitors are evaluated, e.g. 5m.")
    on_alert: Literal["notify", "retrain"] = Field(
        default="notify", description="What an alert triggers: notify the sinks, or also retrain."
    )
    sinks: list[SinkSpec] = Field(default_factory=list, description="Where alerts are sent.")
    monitors: list[MonitorDef] = Field(default_factory=list, description="The monitors.")

    @field_validator("schedule", mode="before")
    @classmethod
    def _schedule(cls, value: Any) -> float:
        return parse_duration(value, what="schedule")

    @model_validator(mode="after")
    def _unique_names(self) -> MonitorSpec:
        names = [m.name for m in self.monitors]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(
                f"monitor names {duplicates} appear more than once: give each monitor its own name"
            )
        return self
