"""A ``fairness`` monitor: the sensitive groups' differences on labelled traffic.

The rows the primary version answered in the window (sensitive features from the logged inputs,
decisions from its prediction output) are joined, by inference id and row, to the labels posted to
``/api/v1/feedback``; :func:`pave.registry.fairness.fairness_report` computes the same numbers as
at evaluation. The monitor fires when the metric (the worst over the features) is above
``threshold``; with fewer than ``min_samples`` labelled rows it gives no verdict.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.monitoring.alerts import Verdict
from pave.monitoring.feedback import prediction_output
from pave.monitoring.monitors import window_rows
from pave.monitoring.spec import MonitorDef
from pave.registry.fairness import fairness_report
from pave.store.tables import FeedbackRow


def labelled_rows(sessions: sessionmaker[Session], rows: pd.DataFrame) -> tuple[pd.DataFrame, list[Any]]:
    """The rows that have a label, and their labels (a request's label list is matched row by row)."""
    ids = [str(i) for i in rows["id"].dropna().unique()]
    labels: dict[str, list[Any]] = {}
    with sessions() as session:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            found = session.execute(
                select(FeedbackRow.inference_id, FeedbackRow.label).where(FeedbackRow.inference_id.in_(part))
            )
            for inference_id, label in found:
                labels[inference_id] = label if isinstance(label, list) else [label]
    position = rows.groupby("id", sort=False).cumcount()
    keep, values = [], []
    for index, inference_id, at in zip(rows.index, rows["id"], position, strict=True):
        label = labels.get(str(inference_id))
        if label is not None and at < len(label) and label[at] is not None:
            keep.append(index)
            values.append(label[at])
    return rows.loc[keep], values


def evaluate_fairness(
    sessions: sessionmaker[Session],
    log_dir: Path,
    deployment: str,
    version: str,
    monitor: MonitorDef,
    now: datetime,
) -> tuple[list[Verdict], dict[str, Any]]:
    """The monitor's fairness metric over the window's labelled rows of ``version``."""
    assert monitor.metric is not None
    assert monitor.threshold is not None
    rows, inputs = window_rows(log_dir, deployment, now - timedelta(seconds=monitor.window), now)
    if len(rows):
        rows = rows[rows["version"] == version]
    features = [] if monitor.features == "all" else list(monitor.features)
    missing = [f for f in features if f not in inputs]
    meta = ("id", "deployment", "version", "timestamp")
    output = prediction_output(dict.fromkeys(c for c in rows.columns if c not in meta and c not in inputs))
    if not len(rows) or output is None or not features or missing:
        note = f"the traffic has no input {missing[0]!r}" if missing else "no rows to judge"
        return [], {"rows": len(rows), "note": note}
    labelled, labels = labelled_rows(sessions, rows)
    summary: dict[str, Any] = {"rows": len(rows), "labelled": len(labels)}
    if len(labels) < monitor.min_samples:
        return [], summary
    report = fairness_report(labels, labelled[output].tolist(), labelled[features], monitor.positive_label)
    value = report["metrics"][monitor.metric]
    summary["report"] = report
    if value is None:
        return [], summary
    details = {
        "metric": monitor.metric,
        "value": value,
        "threshold": monitor.threshold,
        "version": version,
        "n_labelled": len(labels),
        "features": {name: f[monitor.metric] for name, f in report["features"].items()},
        "groups": {name: f["groups"] for name, f in report["features"].items()},
        "window_seconds": monitor.window,
    }
    return [Verdict("fairness", monitor.metric, value > monitor.threshold, details)], summary
