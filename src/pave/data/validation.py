"""Validating a DataFrame against a pandera ``DataFrameModel``, with a report people can read.

The report is plain JSON (logged to the MLflow run as ``data/validation.json``)::

    {"source": "train", "schema": "TrainSchema", "valid": false, "rows": 1000, "failed_rows": 3,
     "problems": [{"column": "age", "check": "greater_than_or_equal_to(0)", "failures": 2,
                   "rows": [17, 40], "values": [-1, -3]}, ...]}
"""

from __future__ import annotations

import difflib
import math
from typing import Any

import pandas as pd

from pave.data.errors import DataValidationError

_MAX_EXAMPLES = 10


def validate_frame(frame: pd.DataFrame, schema: Any, *, source: str) -> dict[str, Any]:
    """Check ``frame`` against ``schema`` (a pandera DataFrameModel class or DataFrameSchema).

    Returns:
        The report (``valid`` true or false); it never raises for data problems, see :func:`check`.
    """
    import pandera.errors

    name = getattr(schema, "__name__", None) or getattr(schema, "name", None) or type(schema).__name__
    report: dict[str, Any] = {
        "source": source,
        "schema": str(name),
        "valid": True,
        "rows": len(frame),
        "failed_rows": 0,
        "problems": [],
    }
    if not hasattr(schema, "validate"):
        raise DataValidationError(
            f"data.schema {name} is not a pandera DataFrameModel",
            hint="define `class TrainSchema(pandera.pandas.DataFrameModel)` and point data.schema at it",
        )
    try:
        schema.validate(frame, lazy=True)
    except pandera.errors.SchemaErrors as exc:
        report.update(_summarise(exc.failure_cases))
    except pandera.errors.SchemaError as exc:
        report.update(_summarise(exc.failure_cases) if exc.failure_cases is not None else {})
        if not report["problems"]:
            report["problems"] = [
                {"column": None, "check": str(exc), "failures": 1, "rows": [], "values": []}
            ]
        report["valid"] = False
    return report


def check(report: dict[str, Any]) -> None:
    """Raise :class:`DataValidationError` (with the report as details) when the report is not valid.

    The headline names what failed: missing and unexpected columns by name, then the checks that
    failed with example rows; a missing column close to an unexpected one is named as a rename.
    """
    if report["valid"]:
        return
    problems = report["problems"]
    missing = _columns(problems, "column_in_dataframe")
    extra = _columns(problems, "column_in_schema")
    parts = []
    if missing:
        parts.append(f"missing column{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    if extra:
        parts.append(f"column{'s' if len(extra) > 1 else ''} {', '.join(extra)} not in the schema")
    rest = [p for p in problems if p["check"] not in ("column_in_dataframe", "column_in_schema")]
    for p in rest[:5]:
        where = f"column {p['column']}" if p["column"] else "table"
        rows = f" (rows {', '.join(str(r) for r in p['rows'][:5])})" if p["rows"] else ""
        parts.append(f"{where}: {p['check']} failed {p['failures']}x{rows}")
    more = f"; and {len(rest) - 5} more" if len(rest) > 5 else ""
    renamed = [(m, close[0]) for m in missing if (close := difflib.get_close_matches(m, extra, n=1))]
    if renamed:
        pairs = ", ".join(f"{old} -> {new}" for old, new in renamed)
        plural = "s" if len(renamed) > 1 else ""
        fix = f"renamed column{plural}? ({pairs}): rename back in the file, or in the schema"
    elif missing or extra:
        fix = "add the missing columns to the file, or change the schema to the file's columns"
    else:
        fix = "fix the rows listed, or relax the schema if the data is right"
    raise DataValidationError(
        f"data source {report['source']} does not match {report['schema']}: {'; '.join(parts)}{more}",
        hint=f"{fix}; the whole report is the run's artifact data/validation.json (in MLflow)",
        details=report,
    )


def _columns(problems: list[dict[str, Any]], check_name: str) -> list[str]:
    """The column names a column-presence check of pandera failed on (they are its failure cases)."""
    return [str(v) for p in problems if p["check"] == check_name for v in p["values"] if v is not None]


def _summarise(cases: pd.DataFrame) -> dict[str, Any]:
    problems: list[dict[str, Any]] = []
    failed_rows: set[Any] = set()
    for (column, check_name), group in cases.groupby(["column", "check"], dropna=False, sort=False):
        rows = [_plain(i) for i in group["index"].tolist() if _plain(i) is not None]
        failed_rows.update(rows)
        problems.append(
            {
                "column": None if _plain(column) is None else str(column),
                "check": str(check_name),
                "failures": len(group),
                "rows": rows[:_MAX_EXAMPLES],
                "values": [_plain(v) for v in group["failure_case"].tolist()[:_MAX_EXAMPLES]],
            }
        )
    return {"valid": not problems, "failed_rows": len(failed_rows), "problems": problems}


def _plain(value: Any) -> Any:
    """A JSON-friendly scalar (numpy types, NaN -> None)."""
    if value is None:
        return None
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, (int, float, str, bool)):
        return value
    return str(value)
