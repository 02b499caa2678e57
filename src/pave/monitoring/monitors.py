"""Evaluating one monitor over its sliding window: verdicts per feature, per prediction, per metric.

* ``drift``: the deployment's logged inputs of the last ``window`` against the training profile's
  drift reference, feature by feature, with every listed method (a feature drifts when any
  method says so). Features with fewer than ``min_samples`` values get no verdict.
* ``prediction_drift``: the logged predictions of the last ``window`` against a baseline of the
  same version's own predictions: the first window that held ``min_samples`` predictions of the
  version now taking most of the traffic (kept in ``monitor_state.baseline``, rebuilt when that
  version changes). Training profiles hold no predictions, so this is drift against how the model
  behaved when it went live.
* ``performance``: :func:`~pave.monitoring.performance.performance_by_version` over the window for
  the primary version; it fires when the metric is worse than ``threshold`` with at least
  ``min_samples`` labelled rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.errors import InvalidInput
from pave.monitoring.alerts import Verdict
from pave.monitoring.drift import INSUFFICIENT_DATA, MISSING_COLUMN, compute_drift
from pave.monitoring.feedback import prediction_output
from pave.monitoring.performance import metric_is_worse, performance_by_version
from pave.monitoring.reference import Reference, build_reference, reference_from_profile
from pave.monitoring.rules import NUMERIC_ONLY_METHODS, DriftConfig, DriftRule
from pave.monitoring.spec import MonitorDef
from pave.serving.inference_log import log_documents


def window_rows(
    log_dir: Path, deployment: str, start: datetime, end: datetime
) -> tuple[pd.DataFrame, list[str]]:
    """One row per predicted row in ``(start, end]``, and the names of the input columns.

    Reads the log files itself and extends one list per column with each request's values: three
    times faster than ``read_inference_log`` + ``explode_rows`` on a window of 100,000 requests
    (no DataFrame of dicts, no dict per row). Shadow answers are left out.
    """
    lo, hi = start.timestamp(), end.timestamp()
    inputs: list[str] = []
    columns: dict[str, list[Any]] = {"id": [], "version": [], "ts": []}
    total = 0
    for doc in log_documents(log_dir, lo, hi):
        if doc.get("deployment") != deployment or doc.get("shadow") or not lo < doc.get("ts", 0.0) <= hi:
            continue
        doc_in: dict[str, Any] = doc["inputs"] if isinstance(doc.get("inputs"), dict) else {}
        doc_out: dict[str, Any] = doc["outputs"] if isinstance(doc.get("outputs"), dict) else {}
        n = max((len(v) for v in doc_out.values() if isinstance(v, list)), default=0)
        if n == 0:
            continue
        for key, values in (doc_in | doc_out).items():
            if isinstance(values, list) and len(values) == n:
                if key not in columns:
                    columns[key] = [None] * total  # earlier requests did not have it
                    if key in doc_in:
                        inputs.append(key)
                columns[key].extend(values)
        total += n
        columns["id"].extend([doc.get("id")] * n)
        columns["version"].extend([str(doc.get("version"))] * n)
        columns["ts"].extend([doc["ts"]] * n)
        for column in columns.values():
            if len(column) < total:  # a column this request did not have
                column.extend([None] * (total - len(column)))
    frame = pd.DataFrame(columns)
    frame.insert(0, "timestamp", pd.to_datetime(frame.pop("ts"), unit="s", utc=True))
    frame.insert(1, "deployment", deployment)
    return frame, inputs


def pick_reference(profile: Mapping[str, Any], columns: list[str]) -> Reference | None:
    """The reference of the profiled source that shares the most columns with the traffic."""
    candidates = (
        [profile] if "reference" in profile else [p for p in profile.values() if isinstance(p, Mapping)]
    )
    best: Reference | None = None
    overlap = 0
    for candidate in candidates:
        try:
            reference = reference_from_profile(candidate)
        except InvalidInput:  # an old or malformed profile: no reference from it
            continue
        shared = len(set(reference.features) & set(columns))
        if shared > overlap:
            best, overlap = reference, shared
    return best


def drift_config(rule: DriftRule, min_samples: int) -> DriftConfig:
    if rule.method in NUMERIC_ONLY_METHODS:  # categoricals need a binned test: same kind of threshold
        categorical = DriftRule("chi2", rule.limit) if rule.method == "ks" else DriftRule("psi")
    else:
        categorical = rule
    return DriftConfig(numeric=rule, categorical=categorical, min_samples=min_samples)


def drift_verdicts(
    reference: Reference, rows: pd.DataFrame, features: list[str], monitor: MonitorDef, kind: str = "drift"
) -> list[Verdict]:
    """One verdict per feature that had enough data (no verdict, no change, otherwise)."""
    subset = Reference({name: reference.features[name] for name in features if name in reference.features})
    if not subset.features:
        return []
    results: dict[str, dict[str, Any]] = {}
    for rule in monitor.rules():
        report = compute_drift(subset, rows, drift_config(rule, monitor.min_samples))
        for item in report.features:
            if item.status in (INSUFFICIENT_DATA, MISSING_COLUMN):
                continue
            entry = results.setdefault(
                item.feature, {"methods": {}, "n_current": item.n_current, "drifted": False}
            )
            entry["methods"][item.method] = {
                "statistic": item.statistic,
                "p_value": item.p_value,
                "threshold": item.threshold,
                "drifted": item.drifted,
            }
            entry["drifted"] = entry["drifted"] or item.drifted
    verdicts = []
    for feature, entry in results.items():
        first = next(iter(entry["methods"].items()))
        details = {
            "feature": feature,
            "method": first[0],
            **{k: v for k, v in first[1].items() if k != "drifted"},
            "n_current": entry["n_current"],
            "methods": entry["methods"],
            "window_seconds": monitor.window,
        }
        verdicts.append(Verdict(kind, feature, bool(entry["drifted"]), details))
    return verdicts


def evaluate_drift(
    log_dir: Path, deployment: str, monitor: MonitorDef, profile: Mapping[str, Any], now: datetime
) -> tuple[list[Verdict], dict[str, Any]]:
    """Input drift of the last window; the verdicts and a summary for ``monitor_state``."""
    rows, inputs = window_rows(log_dir, deployment, now - timedelta(seconds=monitor.window), now)
    reference = pick_reference(profile, inputs)
    if reference is None:
        return [], {
            "rows": len(rows),
            "note": "no training profile with a drift reference shares these inputs",
        }
    wanted = inputs if monitor.features == "all" else list(monitor.features)
    tested = [f for f in wanted if f in inputs and f in reference.features]
    verdicts = drift_verdicts(reference, rows, tested, monitor)
    summary: dict[str, Any] = {"rows": len(rows), "drifted": [v.subject for v in verdicts if v.firing]}
    if monitor.features != "all":
        # Listed features the traffic or the training data lack: say so rather than stay silent.
        summary["untested"] = [f for f in wanted if f not in tested]
    return verdicts, summary


def evaluate_prediction_drift(
    log_dir: Path,
    deployment: str,
    version: str,
    monitor: MonitorDef,
    baseline: dict[str, Any] | None,
    now: datetime,
) -> tuple[list[Verdict], dict[str, Any], dict[str, Any] | None]:
    """Prediction drift of the last window; verdicts, a summary and the (possibly new) baseline."""
    rows, inputs = window_rows(log_dir, deployment, now - timedelta(seconds=monitor.window), now)
    if len(rows):
        rows = rows[rows["version"] == version]
    meta = ("id", "deployment", "version", "timestamp")
    names = [c for c in rows.columns if c not in meta and c not in inputs]  # the outputs
    output = prediction_output(dict.fromkeys(names)) if names else None
    if output is None or not len(rows):
        return [], {"rows": 0}, baseline
    column = rows[[output]]
    if baseline is None or baseline.get("version") != version or baseline.get("output") != output:
        if len(column) < monitor.min_samples:
            return [], {"rows": len(column), "note": "collecting the baseline"}, baseline
        categorical = [output] if not pd.api.types.is_float_dtype(column[output]) else []
        reference = build_reference(column, categorical=categorical)
        new = {
            "version": version,
            "output": output,
            "reference": reference.to_dict(),
            "built_at": now.isoformat(),
        }
        return [], {"rows": len(column), "note": "baseline built"}, new
    reference = Reference.from_dict(baseline["reference"])
    verdicts = drift_verdicts(reference, column, [output], monitor, kind="prediction_drift")
    for verdict in verdicts:
        verdict.details["version"] = version
    return verdicts, {"rows": len(column)}, baseline


def evaluate_performance(
    settings: Settings,
    sessions: sessionmaker[Session],
    deployment: str,
    version: str,
    monitor: MonitorDef,
    now: datetime,
) -> tuple[list[Verdict], dict[str, Any]]:
    """The monitor's metric for the primary version over the window, against its threshold."""
    assert monitor.metric is not None
    assert monitor.threshold is not None
    since = now - timedelta(seconds=monitor.window)
    results = performance_by_version(settings, sessions, deployment, since=since, until=now)
    summary = {"versions": {v: p.to_dict() for v, p in results.items()}}
    current = results.get(version)
    if current is None or current.n_labelled < monitor.min_samples or monitor.metric not in current.metrics:
        return [], summary
    value = current.metrics[monitor.metric]
    details = {
        "metric": monitor.metric,
        "value": value,
        "threshold": monitor.threshold,
        "version": version,
        "n_labelled": current.n_labelled,
        "window_seconds": monitor.window,
    }
    return [
        Verdict(
            "performance", monitor.metric, metric_is_worse(monitor.metric, value, monitor.threshold), details
        )
    ], summary
