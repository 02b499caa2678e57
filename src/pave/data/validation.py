"""Validating a DataFrame against a pandera ``DataFrameModel``, with a report people can read.

The report is plain JSON (logged to the MLflow run as ``data/validation.json``)::

    {"source": "train", "schema": "TrainSchema", "valid": false, "rows": 1000, "failed_rows": 3,
     "problems": [{"column": "age", "check": "greater_than_or_equal_to(0)", "failures": 2,
                   "rows": [17, 40], "values": [-1, -3]}, ...]}
"""

from __future__ import annotations

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
    """Raise :class:`DataValidationError` (with the report as details) when the report is not valid."""
    if report["valid"]:
        return
    parts = []
    for p in report["problems"][:5]:
        where = f"column {p['column']}" if p["column"] else "table"
        rows = f" (rows {', '.join(str(r) for r in p['rows'][:5])})" if p["rows"] else ""
        parts.append(f"{where}: {p['check']} failed {p['failures']}x{rows}")
    more = f"; and {len(report['problems']) - 5} more" if len(report["problems"]) > 5 else ""
    raise DataValidationError(
        f"data source {report['source']} does not match {report['schema']}: {'; '.join(parts)}{more}",
        hint="fix the rows listed, or relax the schema if the data is right (see data/validation.json)",
        details=report,
    )


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
