from __future__ import annotations

import json

import numpy as np
import pandas as pd

from pave.data.profile import profile_frame


def test_numeric_and_categorical_columns_are_profiled() -> None:
    frame = pd.DataFrame(
        {
            "x": [1.0, 2.0, 3.0, 4.0, np.nan],
            "plan": ["a", "b", "a", None, "a"],
            "flag": [True, False, True, True, False],
        }
    )
    profile = profile_frame(frame)
    json.dumps(profile, allow_nan=False)  # plain JSON, no NaN
    assert profile["rows"] == 5
    x = profile["columns"]["x"]
    assert (x["kind"], x["count"], x["missing"], x["mean"], x["min"], x["max"]) == (
        "numeric",
        5,
        1,
        2.5,
        1.0,
        4.0,
    )
    assert x["std"] == float(np.std([1, 2, 3, 4], ddof=1))
    assert x["quantiles"]["0.5"] == 2.5
    assert sum(x["histogram"]["counts"]) == 4
    assert len(x["histogram"]["edges"]) == len(x["histogram"]["counts"]) + 1
    plan = profile["columns"]["plan"]
    assert plan["kind"] == "categorical"
    assert plan["missing"] == 1
    assert plan["distinct"] == 2
    assert plan["top"][0] == {"value": "a", "count": 3}
    assert profile["columns"]["flag"]["kind"] == "categorical"


def test_an_all_missing_numeric_column_has_empty_stats() -> None:
    profile = profile_frame(pd.DataFrame({"x": [np.nan, np.nan]}))
    assert profile["columns"]["x"]["mean"] is None
    assert profile["columns"]["x"]["histogram"] is None
