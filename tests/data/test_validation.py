from __future__ import annotations

import pandas as pd
import pandera.pandas as pa
import pytest
from pandera.typing import Series

from pave.data.errors import DataValidationError
from pave.data.validation import check, validate_frame


class People(pa.DataFrameModel):
    age: Series[int] = pa.Field(ge=0)
    plan: Series[str] = pa.Field(isin=["basic", "pro"])


def test_valid_data_gives_a_valid_report() -> None:
    report = validate_frame(pd.DataFrame({"age": [1, 2], "plan": ["basic", "pro"]}), People, source="train")
    assert report == {
        "source": "train",
        "schema": "People",
        "valid": True,
        "rows": 2,
        "failed_rows": 0,
        "problems": [],
    }
    check(report)


def test_violations_are_listed_by_column_check_and_row() -> None:
    frame = pd.DataFrame({"age": [1, -2, 3, -5], "plan": ["basic", "gold", "pro", "pro"]})
    report = validate_frame(frame, People, source="train")
    assert not report["valid"]
    assert report["failed_rows"] == 2  # rows 1 and 3; row 1 fails twice
    by_column = {p["column"]: p for p in report["problems"]}
    assert by_column["age"] == {
        "column": "age",
        "check": "greater_than_or_equal_to(0)",
        "failures": 2,
        "rows": [1, 3],
        "values": [-2, -5],
    }
    assert by_column["plan"]["rows"] == [1]
    with pytest.raises(DataValidationError) as info:
        check(report)
    assert "column age: greater_than_or_equal_to(0) failed 2x (rows 1, 3)" in info.value.message
    assert info.value.details == report


def test_a_missing_column_is_a_table_level_problem() -> None:
    report = validate_frame(pd.DataFrame({"age": [1]}), People, source="train")
    assert not report["valid"]
    assert any(p["check"] == "column_in_dataframe" and p["values"] == ["plan"] for p in report["problems"])


def test_something_that_is_not_a_schema_is_explained() -> None:
    with pytest.raises(DataValidationError, match="not a pandera DataFrameModel"):
        validate_frame(pd.DataFrame(), object(), source="train")


class StrictPeople(People):
    class Config:
        strict = True


def test_a_renamed_column_is_named_in_the_headline_and_the_hint() -> None:
    frame = pd.DataFrame({"age": [1, 2], "plan_name": ["basic", "pro"]})  # plan renamed
    report = validate_frame(frame, StrictPeople, source="train")
    with pytest.raises(DataValidationError) as info:
        check(report)
    assert info.value.message == (
        "data source train does not match StrictPeople: "
        "missing column plan; column plan_name not in the schema"
    )
    assert info.value.hint is not None
    assert info.value.hint.startswith("renamed column? (plan -> plan_name)")
    assert "the run's artifact data/validation.json" in info.value.hint  # not a file of the project


def test_a_missing_column_says_add_it_or_change_the_schema() -> None:
    with pytest.raises(DataValidationError, match="missing column plan \\(hint") as info:
        check(validate_frame(pd.DataFrame({"age": [1]}), People, source="train"))
    assert (info.value.hint or "").startswith("add the missing columns to the file")
