"""Per-feature statistics of a DataFrame as plain JSON.

Saved with every training run (``data/profile.json``) and later compared with live traffic by
monitoring. Numeric columns: count, missing, mean, std, min, max, quantiles and a 10-bin histogram;
other columns: count, missing, distinct and the 10 most frequent values.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

PROFILE_VERSION = 1
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
BINS = 10
TOP = 10


def profile_frame(frame: pd.DataFrame) -> dict[str, Any]:
    """The profile of ``frame``: ``{"version", "rows", "columns": {name: stats}}``."""
    columns: dict[str, Any] = {}
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_bool_dtype(series) or not pd.api.types.is_numeric_dtype(series):
            columns[str(name)] = _categorical(series)
        else:
            columns[str(name)] = _numeric(series)
    return {"version": PROFILE_VERSION, "rows": len(frame), "columns": columns}


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
