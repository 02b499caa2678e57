"""The profile of a DataFrame as plain JSON: what people read and what drift compares against.

Saved with every training run (``data/profile.json``, one profile per data source) and attached to
the model version it trains (tag ``pave.profile``). One document serves both readers:

* ``columns``: per column, for people (model card, portal): numeric columns have count, missing,
  mean, std, min, max, quantiles and a 10-bin histogram; other columns count, missing, distinct and
  the 10 most frequent values;
* ``reference``: the drift reference of :mod:`pave.monitoring.reference` (quantile bins and a
  sketch per numeric column, category counts per categorical one); the control plane's monitors
  read it back with :func:`pave.monitoring.reference.reference_from_profile` and compare live
  traffic with it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

PROFILE_VERSION = 2  # 2: the drift reference is embedded
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BINS = 10
TOP = 10


def profile_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """The profile of ``frame``: ``{"version", "rows", "columns": {name: stats}, "reference": {...}}``."""
    # The one place the data layer reaches into monitoring: the reference format is monitoring's,
    # and building it here is what makes the training profile the drift baseline.
    from pave.monitoring.reference import build_reference

    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            columns[str(name)] = _categorical(series)
        else:
            columns[str(name)] = _numeric(series)
    drift_columns = [
        c
        for c in frame.columns
        if not (pd.api.types.is_datetime64_any_dtype(frame[c]) or pd.api.types.is_timedelta64_dtype(frame[c]))
    ]
    reference = build_reference(frame[drift_columns]).to_dict()
    return {"version": PROFILE_VERSION, "rows": len(frame), "columns": columns, "reference": reference}


def _numeric(series: pd.Series) -> dict[str, Any]:
    values = series.dropna().astype("float64")
    values = values[np.isfinite(values)]
    stats: dict[str, Any] = {
        "kind": "numeric",
        "dtype": str(series.dtype),
        "count": len(series),
        "missing": int(series.isna().sum()),
    }
    if values.empty:
        return stats | {
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "quantiles": {},
            "histogram": None,
        }
    counts, edges = np.histogram(values.to_numpy(), bins=BINS)
    return stats | {
        "mean": _num(values.mean()),
        "std": _num(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": _num(values.min()),
        "max": _num(values.max()),
        "quantiles": {str(q): _num(values.quantile(q)) for q in QUANTILES},
        "histogram": {"edges": [_num(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def _categorical(series: pd.Series) -> dict[str, Any]:
    present = series.dropna().astype(str)
    top = present.value_counts().head(TOP)
    return {
        "kind": "categorical",
        "dtype": str(series.dtype),
        "count": len(series),
        "missing": int(series.isna().sum()),
        "distinct": int(present.nunique()),
        "top": [{"value": str(v), "count": int(c)} for v, c in top.items()],
    }


def _num(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None
