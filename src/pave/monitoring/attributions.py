"""An ``attribution_drift`` monitor: has what the model's answers rest on moved since training?

The reference is the run's global importances (``explain/importances.json``: mean |SHAP| per
feature on the reference sample, :mod:`pave.serving.attributions`). Each evaluation takes the
primary version's logged inputs of the window (the last :data:`LIVE_ROWS` rows), computes the
same importances of the same model on them in a process of its own, and compares feature by
feature: a feature drifts when ``|live - reference| > threshold * sum(reference)`` (threshold
0.1 by default: a move of a tenth of the model's whole attribution). Inputs can drift without the
model caring (a feature it ignores) and the attributions can move with the inputs within their
training ranges: this watches what the answers rest on, not the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pave.config import Settings
from pave.monitoring.alerts import Verdict
from pave.monitoring.monitors import window_rows
from pave.monitoring.spec import MonitorDef

LIVE_ROWS = 200
DEFAULT_THRESHOLD = 0.1


def attribution_verdicts(
    reference: Mapping[str, float], live: Mapping[str, float], threshold: float
) -> list[Verdict]:
    """One verdict per feature both sides have (see the module docstring)."""
    total = sum(reference.values())
    verdicts = []
    for feature, before in reference.items():
        if feature not in live:
            continue
        shift = abs(live[feature] - before) / total if total > 0 else 0.0
        details = {"feature": feature, "reference": before, "live": live[feature], "shift": shift}
        verdicts.append(
            Verdict("attribution_drift", feature, shift > threshold, details | {"threshold": threshold})
        )
    return verdicts


def evaluate_attribution_drift(
    settings: Settings,
    log_dir: Path,
    deployment: str,
    version: str,
    uri: str | None,
    monitor: MonitorDef,
    reference: Mapping[str, Any] | None,
    now: datetime,
) -> tuple[list[Verdict], dict[str, Any]]:
    """Attribution drift of the window against the reference; the verdicts and a summary."""
    from pave.serving.attributions import importances_in_subprocess

    if not reference or not reference.get("features") or uri is None:
        return [], {"note": "the version has no global importances to compare with (pave run logs them)"}
    rows, inputs = window_rows(log_dir, deployment, now - timedelta(seconds=monitor.window), now)
    if len(rows):
        rows = rows[rows["version"] == version]
    summary: dict[str, Any] = {"rows": len(rows)}
    if len(rows) < monitor.min_samples:
        return [], summary
    live = importances_in_subprocess(
        uri,
        rows[inputs].tail(LIVE_ROWS),
        tracking_uri=settings.mlflow_db_url,
        home=settings.home,
        envs_dir=settings.envs_dir,
    )
    threshold = monitor.threshold if monitor.threshold is not None else DEFAULT_THRESHOLD
    verdicts = attribution_verdicts(reference["features"], live["features"], threshold)
    for verdict in verdicts:
        verdict.details.update(version=version, window_seconds=monitor.window, rows=live["rows"])
    summary |= {"reference": reference["features"], "live": live["features"], "method": live["method"]}
    return verdicts, summary
