"""Batch scoring's arithmetic: a table bound to the model, its parts predicted a slice of rows at a time.

Binding: the table's columns are bound to the model's input schema by the rules the gateway
applies to a request (a missing column, or one of a type the model does not accept, is refused
naming the column).

A matrix model (native scikit-learn, LightGBM, compiled) takes its rows as a ``(rows, columns)``
float matrix in its own column order, as the gateway builds it. Here a part's columns stay where
Arrow decoded them (zero-copy numpy views of its buffers), and its rows are predicted
:data:`PREDICT_ROWS` at a time: each thread copies a slice's values from the columns into a matrix
buffer of its own, reused for every slice it predicts in the job (:class:`Matrices`). A slice's
matrix, the model's temporaries (a scaled copy of the rows, scores) and its outputs then stay in the
CPU's cache and in memory already mapped; a matrix of the whole part would be fresh pages that the
kernel zeroes first and that miss the cache when the model reads them back. Other models (a
DataFrame schema) get the part as a DataFrame (:func:`score_frame`).

The output of a part is its input's columns (the same Arrow buffers, no copy), the columns the model
adds (``predict``, ``predict_proba_<i>`` ...) and ``model_version``.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pandas as pd

from pave.errors import InvalidInput
from pave.serving.loading import LoadedModel
from pave.serving.protocol import datatype_of
from pave.serving.schema import Features, InputSchema, accepts

VERSION_COLUMN = "model_version"
PREDICT_ROWS = 16_384  # rows a native model predicts at once within a part


# --- binding a table to the model ------------------------------------------------------------------


def check_columns(schema: InputSchema, columns: dict[str, str], source: str) -> None:
    """Refuse a table that lacks a column the model needs, or has one of a type it does not take.

    Args:
        schema: the model's input schema.
        columns: the table's column name -> OIP datatype.
        source: the input, for the message.
    """
    if not schema.columns:
        raise InvalidInput(
            f"the model takes tensors ({', '.join(t.name for t in schema.tensors) or 'unnamed'}), "
            "not a table",
            hint="batch scoring reads tables: use a model whose signature has columns",
        )
    names = ", ".join(f"'{c.name}'" for c in schema.columns)
    for column in schema.columns:
        given = columns.get(column.name)
        if given is None:
            if column.required or column.dtype.kind != "f":
                raise InvalidInput(
                    f"{source}: column '{column.name}' is missing; the model takes {names}",
                    hint=f"add the column '{column.name}' to the input, "
                    "or score it with the version it was made for",
                )
            continue
        if not accepts(column.datatype, given):
            raise InvalidInput(
                f"{source}: column '{column.name}' holds {given}, the model expects {column.datatype}",
                hint=f"convert '{column.name}' to {column.datatype.lower()} values in the input",
            )


def refuse_text_in_numbers(schema: InputSchema, frame: pd.DataFrame, first_line: int, source: str) -> None:
    """Name the first value that is not a number in a column the model reads as numbers (a CSV
    column with one such value is read as text whole): its column, its line and the value."""
    for column in schema.columns:
        if column.name not in frame.columns or column.dtype.kind not in "fiu":
            continue
        values = frame[column.name]
        if values.dtype != object:
            continue
        bad = (values.notna() & pd.to_numeric(values, errors="coerce").isna()).to_numpy()
        if bad.any():
            row = int(bad.argmax())
            raise InvalidInput(
                f"{source}: column '{column.name}' holds {str(values.iloc[row])[:60]!r} on line "
                f"{first_line + row}, not a number; the model expects {column.datatype} values",
                hint=f"fix or remove the values of '{column.name}' that are not numbers, then run again",
            )


def frame_columns(frame: pd.DataFrame) -> dict[str, str]:
    """A DataFrame's column name -> OIP datatype, for :func:`check_columns`."""
    return {str(c): datatype_of(frame[c].to_numpy()[:0]) for c in frame.columns}


def bind_frame(schema: InputSchema, frame: pd.DataFrame, source: str) -> Features:
    """The model input for the rows of ``frame`` (the gateway's binding, for a table)."""
    check_columns(schema, frame_columns(frame), source)
    n_rows = len(frame)
    given = {
        c.name: frame[c.name].to_numpy()
        if c.name in frame.columns
        else np.full(n_rows, np.nan, dtype=c.dtype)
        for c in schema.columns
    }
    if schema.kind == "matrix":
        return matrix_of([given[name] for name in schema.order], n_rows, schema.matrix_dtype)
    return pd.DataFrame({c.name: given[c.name].astype(c.dtype, copy=False) for c in schema.columns})


def matrix_of(columns: list[Any], n_rows: int, dtype: Any) -> np.ndarray:
    """The columns as one C-ordered ``(n_rows, len(columns))`` matrix, as the gateway builds it.

    Filled row by row of its transpose, then transposed in one copy: writing a column of a
    C-ordered matrix strides through memory (eight bytes per cache line), ten times slower.
    """
    transposed = np.empty((len(columns), n_rows), dtype=dtype)
    for j, values in enumerate(columns):
        transposed[j] = values
    return transposed.T.copy()


def score_frame(model: LoadedModel, frame: pd.DataFrame, version: str, source: str) -> pd.DataFrame:
    """``frame`` with the prediction columns and ``model_version`` added."""
    features = bind_frame(model.schema, frame, source)
    outputs = _predict(model, features, source)
    scored = frame.copy()
    for name, values in outputs.items():
        array = np.asarray(values)
        if array.ndim == 2:
            for i in range(array.shape[1]):
                scored[f"{name}_{i}"] = array[:, i]
        else:
            scored[name] = array.reshape(len(frame), -1)[:, 0] if array.ndim > 1 else array
    scored[VERSION_COLUMN] = version
    return scored


# --- predicting a part's slices ---------------------------------------------------------------------


class Matrices:
    """Each thread's matrix buffer for one model's slices: filled from a part's columns, reused.

    One object per job: the buffers go with it (at most one slice of :data:`PREDICT_ROWS` rows, or
    one part for a model whose outputs are not one row per input row, per thread).
    """

    def __init__(self, schema: InputSchema) -> None:
        self.dtype = schema.matrix_dtype
        self.width = len(schema.order)
        self._local = threading.local()

    def rows(self, columns: list[Any], start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` of ``columns`` (arrays, or a scalar for a column left out) as a
        ``(rows, columns)`` matrix in Fortran order: a column after the other, each filled by one
        contiguous copy (numpy and scikit-learn take either order; a model that needs C order
        converts it itself, as the compiled trees do on their way to float32). Valid until this
        thread's next call."""
        count = stop - start
        flat = getattr(self._local, "flat", None)
        if flat is None or flat.size < count * self.width:
            flat = self._local.flat = np.empty(max(count, PREDICT_ROWS) * self.width, dtype=self.dtype)
        transposed = flat[: count * self.width].reshape(self.width, count)
        for j, values in enumerate(columns):
            transposed[j] = values[start:stop] if isinstance(values, np.ndarray) else values
        return transposed.T


def arrow_columns(schema: InputSchema, table: Any) -> list[Any]:
    """The model's columns of ``table`` in its order: numpy views of Arrow's buffers where they
    allow it (no nulls; else a copy with NaN for nulls), NaN for an optional float column left out
    (missing values, as the gateway fills them)."""
    names = set(table.column_names)
    return [table.column(n).to_numpy(zero_copy_only=False) if n in names else np.nan for n in schema.order]


def slices(model: LoadedModel, n_rows: int) -> list[tuple[int, int]]:
    """The rows predicted at once: :data:`PREDICT_ROWS` at a time when every output has a row per
    input row (the slices of one part can then be predicted on several threads), else the part."""
    step = PREDICT_ROWS if model.batchable else max(n_rows, 1)
    return [(start, min(start + step, n_rows)) for start in range(0, max(n_rows, 1), step)]


def predict_rows(
    model: LoadedModel, columns: list[Any], start: int, stop: int, source: str, matrices: Matrices
) -> dict[str, np.ndarray]:
    """The model's outputs for rows ``start:stop`` of a part's ``columns``."""
    matrix = matrices.rows(columns, start, stop)
    outputs = _predict(model, matrix, source)
    # The buffer is refilled by this thread's next slice: an output that is a view of it (a model
    # that hands its input back) is copied.
    return {
        name: np.array(values) if np.may_share_memory(values, matrix) else np.asarray(values)
        for name, values in outputs.items()
    }


def joined(pieces: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The outputs of a part's slices, in order, as the part's outputs."""
    if len(pieces) == 1:
        return pieces[0]
    return {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}


def score_arrow(
    model: LoadedModel, table: Any, version: str, source: str, matrices: Matrices | None = None
) -> Any:
    """``table`` (a ``pyarrow.Table``) with the prediction columns and ``model_version`` appended,
    in this thread (the job's threads queue a part's slices themselves: ``pave.serving.batch``)."""
    import pyarrow as pa

    if model.schema.kind != "matrix":
        return pa.Table.from_pandas(
            score_frame(model, table.to_pandas(), version, source), preserve_index=False
        )
    matrices = matrices or Matrices(model.schema)
    columns = arrow_columns(model.schema, table)
    pieces = [
        predict_rows(model, columns, start, stop, source, matrices)
        for start, stop in slices(model, table.num_rows)
    ]
    return with_outputs(table, joined(pieces), version)


def with_outputs(table: Any, outputs: dict[str, np.ndarray], version: str) -> Any:
    """``table`` with the model's outputs (``predict``, ``predict_proba_<i>`` ...) and
    ``model_version`` appended."""
    import pyarrow as pa

    def append(table: Any, name: str, column: Any) -> Any:
        # Declared not null: a numpy output has no nulls (NaN is a value), and Parquet then stores
        # the column without definition levels (``batch_dataset.declared_required``).
        return table.append_column(pa.field(name, column.type, nullable=False), column)

    n_rows = table.num_rows
    for name, values in outputs.items():
        array = np.asarray(values)
        if array.ndim == 2:
            for i in range(array.shape[1]):
                table = append(table, f"{name}_{i}", pa.array(array[:, i]))
        else:
            flat = array.reshape(n_rows, -1)[:, 0] if array.ndim > 1 else array
            table = append(table, name, pa.array(flat))
    indices = pa.array(np.zeros(n_rows, dtype=np.int32))
    return append(table, VERSION_COLUMN, pa.DictionaryArray.from_arrays(indices, pa.array([version])))


def _predict(model: LoadedModel, features: Any, source: str) -> dict[str, Any]:
    """The model's outputs; its own refusal of the rows (NaN, a value out of range) named by ``source``."""
    try:
        return model.predict(features)
    except Exception as exc:
        raise InvalidInput(
            f"{source}: the model failed on these rows: {type(exc).__name__}: {str(exc)[:300]}",
            hint="fix the rows (missing values, out-of-range values), then run the job again",
        ) from exc
