"""The one-call path for one named input per column gives what the checked path gives, or steps aside."""

from __future__ import annotations

import numpy as np
import pytest

from pave.errors import InvalidInput
from pave.serving.schema import Column, InputSchema

SCHEMA = InputSchema(
    kind="matrix",
    columns=(Column("a", "FP64", True), Column("b", "FP64", True), Column("c", "FP64", False)),
    order=("c", "a", "b"),  # the estimator's order differs from the signature's
)


def _inputs(**data):
    return [{"name": k, "datatype": "FP64", "shape": [len(v)], "data": v} for k, v in data.items()]


def test_the_fast_path_equals_the_checked_path():
    inputs = _inputs(b=[1.5, 2.0], a=[3, 4.25], c=[0.0, -1.0])
    fast = SCHEMA._fast_matrix(inputs)
    assert fast is not None
    slow = InputSchema(kind=SCHEMA.kind, columns=SCHEMA.columns, order=SCHEMA.order)
    # the checked path, taken by hand: one column at a time
    expected = np.array([[0.0, 3.0, 1.5], [-1.0, 4.25, 2.0]])
    np.testing.assert_array_equal(fast[0], expected)
    assert fast[1] == 2
    assert slow.bind(inputs)[0].tolist() == expected.tolist()


@pytest.mark.parametrize(
    ("inputs", "error"),
    [
        (_inputs(a=[1.0], b=[True], c=[1.0]), "does not hold FP64"),
        (_inputs(a=[1.0], b=["2"], c=[1.0]), "does not hold FP64"),
        (_inputs(a=[1.0, 2.0], b=[1.0], c=[1.0]), "has 1 rows"),
        (_inputs(a=[1.0], b=[1.0], d=[1.0]), "unknown input 'd'"),
    ],
)
def test_anything_irregular_takes_the_checked_path_and_its_message(inputs, error):
    assert SCHEMA._fast_matrix(inputs) is None
    with pytest.raises(InvalidInput, match=error):
        SCHEMA.bind(inputs)


@pytest.mark.parametrize(
    "names",
    [("a", "b", "c"), ("c", "a", "b"), ("b", "c", "a")],  # the signature's, the estimator's, neither
)
def test_the_fast_path_puts_columns_in_the_estimators_order_whatever_order_they_come_in(names):
    values = {"a": [1.0, 2.0], "b": [3.0, 4.0], "c": [5.0, 6.0]}
    inputs = _inputs(**{n: values[n] for n in names})
    fast = SCHEMA._fast_matrix(inputs)
    assert fast is not None
    np.testing.assert_array_equal(fast[0], np.array([[5.0, 1.0, 3.0], [6.0, 2.0, 4.0]]))
    assert fast[0].flags.c_contiguous
    assert fast[0].dtype == np.float64


@pytest.mark.parametrize(
    "inputs",
    [
        _inputs(a=[1.0], b=[2.0], c=[True]),  # a bool among numbers
        _inputs(a=[1.0], b=[None], c=[1.0]),
        _inputs(a=[1.0], b=[2.0], c=[[1.0]]),  # nested
        [*_inputs(a=[1.0], b=[2.0]), {"name": "a", "datatype": "FP64", "shape": [1], "data": [1.0]}],
        [*_inputs(a=[1.0], b=[2.0]), {"name": "c", "datatype": "FP32", "shape": [1], "data": [1.0]}],
        [*_inputs(a=[1.0], b=[2.0]), {"name": "c", "datatype": "FP64", "shape": [1, 2], "data": [1.0, 2.0]}],
        [*_inputs(a=[1.0], b=[2.0]), {"name": "c", "datatype": "FP64", "shape": [1], "data": 1.0}],
        [*_inputs(a=[1.0], b=[2.0]), {"name": "c", "datatype": "FP64", "shape": [2], "data": [1.0]}],
    ],
)
def test_the_fast_path_steps_aside_for_anything_else(inputs):
    assert SCHEMA._fast_matrix(inputs) is None


def test_a_column_shaped_n_by_1_takes_the_fast_path_too():
    inputs = [
        {"name": k, "datatype": "FP64", "shape": [1, 1], "data": [v]}
        for k, v in (("a", 1), ("b", 2), ("c", 3))
    ]
    fast = SCHEMA._fast_matrix(inputs)
    assert fast is not None
    assert fast[0].tolist() == [[3.0, 1.0, 2.0]]


def test_a_table_input_of_the_wrong_datatype_names_the_column():
    with pytest.raises(InvalidInput, match="column 'a' expects FP64"):
        SCHEMA.bind([{"name": "x", "datatype": "BYTES", "shape": [1, 3], "data": ["1", "2", "3"]}])


# --- the template's request shape (one scalar input per column): the fast path's refusals -----------

CHECKED = InputSchema(kind="frame", columns=SCHEMA.columns, order=SCHEMA.order)  # never the fast path


def _scalars(**values):
    return [{"name": k, "datatype": "FP64", "shape": [1], "data": [v]} for k, v in values.items()]


def _changed(index, **change):
    inputs = _scalars(a=1.0, b=2.0, c=3.0)
    inputs[index] = {**inputs[index], **change}
    return inputs


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        (_changed(1, datatype="BYTES", data=["2"]), "input 'b' has datatype BYTES, the model expects FP64"),
        (_changed(1, datatype="BOOL", data=[True]), "input 'b' has datatype BOOL, the model expects FP64"),
        (_scalars(b=2.0, c=3.0), "input 'a' is missing; the model takes 'a', 'b', 'c'"),
        (_scalars(a=1.0, c=3.0), "input 'b' is missing; the model takes 'a', 'b', 'c'"),
        (_changed(2, shape=[1, 2], data=[1.0, 2.0]), "input 'c' must have shape [n] or [n, 1], got [1, 2]"),
        (_changed(2, shape=[2], data=[1.0, 2.0]), "input 'c' has 2 rows, the other inputs have 1"),
        (_changed(0, shape=[2]), "input 'a': shape [2] needs 2 values, 'data' has 1"),
        (_changed(1, data=["2"]), "input 'b': 'data' does not hold FP64 values"),
        (_changed(1, data=[True]), "input 'b': 'data' does not hold FP64 values"),
        (_changed(1, data=[None]), "input 'b': 'data' does not hold FP64 values"),
        (_changed(1, name="a"), "input 'a' is given twice"),
        (_changed(1, name="zzz"), "unknown input 'zzz'; the model takes the columns 'a', 'b', 'c'"),
    ],
)
def test_the_template_shape_gets_the_checked_paths_refusal(inputs, message):
    assert SCHEMA._fast_matrix(inputs) is None
    with pytest.raises(InvalidInput) as fast:
        SCHEMA.bind(inputs)
    with pytest.raises(InvalidInput) as checked:
        CHECKED.bind(inputs)
    assert fast.value.message == checked.value.message == message
    assert fast.value.status_code == 400


def test_the_template_shape_takes_the_fast_path_and_equals_the_checked_path():
    inputs = _scalars(b=2.5, c=-1, a=1e300)  # an integer and any order: converted as numpy does
    fast = SCHEMA._fast_matrix(inputs)
    assert fast is not None
    checked, n_rows = CHECKED.bind(inputs)
    assert n_rows == fast[1] == 1
    assert fast[0].tolist() == checked[list(SCHEMA.order)].to_numpy().tolist() == [[-1.0, 1e300, 2.5]]


def test_no_rows_take_the_fast_path_too():
    inputs = [{"name": k, "datatype": "FP64", "shape": [0], "data": []} for k in "abc"]
    fast = SCHEMA._fast_matrix(inputs)
    assert fast is not None
    assert fast[0].shape == (0, 3)
    assert fast[1] == 0
