"""A model's input schema, precomputed from its MLflow signature, and the binding of request inputs to it.

Four shapes of model input, chosen once at load time:

- ``matrix``: a 2-D float/int array in the estimator's feature order (native sklearn and LightGBM);
- ``frame``: a pandas DataFrame with the signature's columns (pyfunc, or non-numeric columns);
- ``tensor``: one numpy array (a TensorSpec signature with a single unnamed tensor, or no signature);
- ``tensors``: a dict of named numpy arrays (a TensorSpec signature with named tensors).

A tabular model takes one OIP input per column (shape ``[n]`` or ``[n, 1]``), or one 2-D input of
shape ``[n, n_columns]`` in column order, which is what generic OIP clients send.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache
from itertools import chain
from typing import Any, Literal

import numpy as np
import pandas as pd

from pave.errors import InvalidInput
from pave.serving.prebound import Decoder
from pave.serving.protocol import (
    DATA_OF,
    DATATYPE_OF,
    DATATYPES,
    NAME_OF,
    SHAPE_OF,
    InferenceRequest,
    TensorMeta,
    decode_tensor,
)

InputKind = Literal["matrix", "frame", "tensor", "tensors"]
Features = Any  # np.ndarray | pd.DataFrame | dict[str, np.ndarray]

# The Python types of JSON numbers (a bool is not one here: numpy would make True a silent 1.0).
_NUMBERS = frozenset({float, int})
_FP64 = frozenset({"FP64"})
_LIST = frozenset({list})

# MLflow column type -> OIP datatype.
_MLFLOW_TYPES = {
    "boolean": "BOOL",
    "integer": "INT32",
    "long": "INT64",
    "float": "FP32",
    "double": "FP64",
    "string": "BYTES",
    "binary": "BYTES",
    "datetime": "BYTES",
}


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    datatype: str
    required: bool

    @property
    def dtype(self) -> np.dtype[Any]:
        return DATATYPES[self.datatype]


@lru_cache(maxsize=512)
def accepts(expected: str, given: str) -> bool:
    """May data of OIP datatype ``given`` feed a column or tensor declared ``expected``?

    Lossless widening is accepted (INT32 into FP64, as MLflow's own enforcement does); booleans,
    strings and narrowing casts are not.
    """
    if expected == given:
        return True
    if "BOOL" in (expected, given) or "BYTES" in (expected, given):
        return False
    return bool(np.can_cast(DATATYPES[given], DATATYPES[expected], "safe"))


@dataclass(frozen=True)
class InputSchema:
    """What a model takes, and how to turn OIP inputs into it."""

    kind: InputKind
    columns: tuple[Column, ...] = ()
    order: tuple[str, ...] = ()  # feature order of a matrix (the estimator's own, when known)
    tensors: tuple[TensorMeta, ...] = ()  # TensorSpec inputs; empty when there is no signature

    @property
    def metadata(self) -> list[TensorMeta]:
        if self.columns:
            return [TensorMeta(c.name, c.datatype, (-1,)) for c in self.columns]
        return list(self.tensors)

    # Computed on first use and kept: a request does no per-column work that the schema already knows.
    @cached_property
    def matrix_dtype(self) -> np.dtype[Any]:
        dtypes = {c.dtype for c in self.columns}
        return dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float64)

    @cached_property
    def _datatypes(self) -> frozenset[str]:
        """The columns' datatypes, each once: a [n, n_columns] input is checked against these."""
        return frozenset(c.datatype for c in self.columns)

    @cached_property
    def _by_name(self) -> dict[str, Column]:
        return {c.name: c for c in self.columns}

    @cached_property
    def _table_index(self) -> list[int] | None:
        """Signature column positions in the estimator's order; None when they are the same."""
        signature_order = [c.name for c in self.columns]
        if list(self.order) == signature_order:
            return None
        return [signature_order.index(n) for n in self.order]

    def bind(self, inputs: list[dict[str, Any]]) -> tuple[Features, int]:
        """The model input for these OIP inputs, and its number of rows.

        Raises:
            InvalidInput: a missing, unknown, mistyped or misshapen input, named.
        """
        if self.columns:
            return self._bind_columns(inputs)
        if self.kind == "tensors":
            return self._bind_tensors(inputs)
        return self._bind_tensor(inputs)

    def bind_request(self, request: InferenceRequest) -> tuple[Features, int]:
        """:meth:`bind` of a request's inputs, or the input its decoder bound already (``prebound``).

        A request decoded for another schema (a canary's, a shadow's) gets its plain inputs back
        and is bound here like any other.
        """
        prebound = request.prebound
        if prebound is not None:
            if prebound.schema is self or prebound.schema == self:
                return prebound.take(), 1
            request.inputs = prebound.plain_inputs()
            request.prebound = None
        return self.bind(request.inputs)

    @cached_property
    def decoder(self) -> Decoder | None:
        """The decoder of this schema's own request shape (``serving/prebound.py``), if it has one."""
        return Decoder(self) if Decoder.applies(self) else None

    # --- tabular ---------------------------------------------------------------------------------

    @cached_property
    def _matrix_position(self) -> dict[str, int] | None:
        """Column -> its position in the matrix, when every column is FP64 (the fast path's case)."""
        if self.kind != "matrix" or any(c.datatype != "FP64" for c in self.columns):
            return None
        return {name: j for j, name in enumerate(self.order)}

    @cached_property
    def _column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @cached_property
    def _order_list(self) -> list[str]:
        return list(self.order)

    def _fast_matrix(self, inputs: list[dict[str, Any]]) -> tuple[Features, int] | None:
        """One input per column, all FP64 lists of one length: the matrix from one flat list.

        The template's own request shape (one named input per column) costs then little more than
        one combined tensor: each check is one pass in C over all the inputs (no Python loop body
        per column), the values go to numpy as one flat list, and inputs in the signature's or the
        estimator's order (what clients send) need no lookup per name. Anything else (a missing,
        unknown or repeated column, another datatype or shape, a value that is not a number)
        returns None and takes the checked path, which names the problem.
        """
        position = self._matrix_position
        if position is None or len(inputs) != len(position):
            return None
        try:
            if not _FP64.issuperset(map(DATATYPE_OF, inputs)):
                return None
            shapes = list(map(SHAPE_OF, inputs))
            columns = list(map(DATA_OF, inputs))
            names = list(map(NAME_OF, inputs))
            shape = shapes[0]
            if shapes.count(shape) != len(shapes) or not (len(shape) == 1 or shape[1:] == [1]):
                return None
            n_rows = shape[0]
            if set(map(type, columns)) != _LIST or set(map(len, columns)) != {n_rows}:
                return None
        except (KeyError, TypeError):  # not the plain shape: the checked path says what is wrong
            return None
        values = list(chain.from_iterable(columns))
        # numpy would make True a silent 1.0; a string, a null or a nested list goes to the checked
        # path for its message. orjson gives a float for an integer past 64 bits, so every value
        # left converts exactly as the checked path's np.asarray(...).astype(float64) does.
        if not _NUMBERS.issuperset(map(type, values)):
            return None
        reorder: list[int] | None = None  # rows of the block in the estimator's order
        if names == self._column_names:
            reorder = self._table_index
        elif names != self._order_list:
            index = [position.get(name) for name in names]
            if None in index or len(set(index)) != len(index):
                return None
            reorder = [0] * len(index)
            for given, j in enumerate(index):
                reorder[j] = given  # type: ignore[index]
        block = np.array(values, dtype=np.float64).reshape(len(columns), n_rows)
        if reorder is not None:
            block = block[reorder]
        return np.ascontiguousarray(block.T), n_rows

    def _bind_columns(self, inputs: list[dict[str, Any]]) -> tuple[Features, int]:
        by_name = self._by_name
        if len(inputs) == 1 and inputs[0]["name"] not in by_name and len(self.columns) > 1:
            return self._bind_table(inputs[0])
        fast = self._fast_matrix(inputs)
        if fast is not None:
            return fast
        given: dict[str, np.ndarray] = {}
        n_rows = -1
        for item in inputs:
            name = item["name"]
            column = by_name.get(name)
            if column is None:
                raise InvalidInput(
                    f"unknown input '{name}'; the model takes the columns {_listing(self.columns)}"
                )
            if name in given:
                raise InvalidInput(f"input '{name}' is given twice")
            if not accepts(column.datatype, item["datatype"]):
                raise InvalidInput(
                    f"input '{name}' has datatype {item['datatype']}, the model expects {column.datatype}"
                )
            shape = item["shape"]
            if not (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1)):
                raise InvalidInput(f"input '{name}' must have shape [n] or [n, 1], got {shape}")
            array = decode_tensor(item).reshape(-1)
            if n_rows == -1:
                n_rows = len(array)
            elif len(array) != n_rows:
                raise InvalidInput(f"input '{name}' has {len(array)} rows, the other inputs have {n_rows}")
            given[name] = array
        for column in self.columns:
            if column.name not in given:
                if column.required or column.dtype.kind != "f":
                    raise InvalidInput(
                        f"input '{column.name}' is missing; the model takes {_listing(self.columns)}"
                    )
                given[column.name] = np.full(n_rows, np.nan, dtype=column.dtype)
        if self.kind == "matrix":
            matrix = np.empty((n_rows, len(self.order)), dtype=self.matrix_dtype)
            for j, name in enumerate(self.order):
                matrix[:, j] = given[name]
            return matrix, n_rows
        frame = pd.DataFrame(
            {c.name: given[c.name].astype(c.dtype, copy=False) for c in self.columns}, copy=False
        )
        return frame, n_rows

    def _bind_table(self, item: dict[str, Any]) -> tuple[Features, int]:
        name, shape = item["name"], item["shape"]
        if len(shape) != 2 or shape[1] != len(self.columns):
            raise InvalidInput(
                f"input '{name}' is not a column of the model; a single input must have shape "
                f"[n, {len(self.columns)}] (one value per column: {_listing(self.columns)}), got {shape}"
            )
        given = item["datatype"]
        if not all(accepts(datatype, given) for datatype in self._datatypes):
            column = next(c for c in self.columns if not accepts(c.datatype, given))
            raise InvalidInput(
                f"input '{name}' has datatype {given}, column '{column.name}' expects {column.datatype}"
            )
        table = decode_tensor(item)
        if self.kind == "matrix":
            index = self._table_index
            if index is not None:
                table = table[:, index]
            return table.astype(self.matrix_dtype, copy=False), shape[0]
        frame = pd.DataFrame(
            {c.name: table[:, j].astype(c.dtype, copy=False) for j, c in enumerate(self.columns)}
        )
        return frame, shape[0]

    # --- tensors ---------------------------------------------------------------------------------

    def _bind_tensor(self, inputs: list[dict[str, Any]]) -> tuple[Features, int]:
        if len(inputs) != 1:
            raise InvalidInput(f"the model takes one input tensor, the request has {len(inputs)}")
        item = inputs[0]
        array = self._decode_against(item, self.tensors[0] if self.tensors else None)
        return array, (array.shape[0] if array.ndim else 1)

    def _bind_tensors(self, inputs: list[dict[str, Any]]) -> tuple[Features, int]:
        specs = {t.name: t for t in self.tensors}
        given: dict[str, np.ndarray] = {}
        for item in inputs:
            spec = specs.get(item["name"])
            if spec is None:
                raise InvalidInput(f"unknown input '{item['name']}'; the model takes {', '.join(specs)}")
            given[spec.name] = self._decode_against(item, spec)
        missing = [n for n in specs if n not in given]
        if missing:
            raise InvalidInput(f"input '{missing[0]}' is missing; the model takes {', '.join(specs)}")
        first = next(iter(given.values()))
        return given, (first.shape[0] if first.ndim else 1)

    @staticmethod
    def _decode_against(item: dict[str, Any], spec: TensorMeta | None) -> np.ndarray:
        name = item["name"]
        if spec is not None:
            if not accepts(spec.datatype, item["datatype"]):
                raise InvalidInput(
                    f"input '{name}' has datatype {item['datatype']}, the model expects {spec.datatype}"
                )
            shape = item["shape"]
            if len(shape) != len(spec.shape) or any(
                want not in (-1, got) for want, got in zip(spec.shape, shape, strict=True)
            ):
                raise InvalidInput(
                    f"input '{name}' has shape {shape}, the model expects {list(spec.shape)} (-1: any)"
                )
        array = decode_tensor(item)
        if spec is not None and spec.datatype != item["datatype"]:
            array = array.astype(DATATYPES[spec.datatype])
        return array


def _listing(columns: tuple[Column, ...]) -> str:
    names = [f"'{c.name}'" for c in columns]
    return ", ".join(names) if len(names) <= 8 else ", ".join(names[:8]) + f" and {len(names) - 8} more"


def schema_from_signature(signature: Any, *, native: bool, feature_order: list[str] | None) -> InputSchema:
    """Build the input schema of a model from its MLflow signature.

    Args:
        signature: the model's ``ModelSignature``, or None.
        native: the model is called natively (sklearn, LightGBM) and can take a numpy matrix.
        feature_order: the estimator's ``feature_names_in_``, when it has one.
    """
    inputs = getattr(signature, "inputs", None)
    if inputs is None:
        return InputSchema(kind="tensor")
    if not inputs.is_tensor_spec():
        columns = tuple(
            Column(
                name=spec.name if spec.name is not None else str(i),
                datatype=_MLFLOW_TYPES.get(getattr(spec.type, "name", ""), "BYTES"),
                required=bool(getattr(spec, "required", True)),
            )
            for i, spec in enumerate(inputs.inputs)
        )
        numeric = all(c.dtype.kind in "biuf" for c in columns)
        order = tuple(c.name for c in columns)
        if feature_order is not None and sorted(feature_order) == sorted(order):
            order = tuple(feature_order)
        kind: InputKind = "matrix" if native and numeric else "frame"
        return InputSchema(kind=kind, columns=columns, order=order)
    tensors = []
    for i, spec in enumerate(inputs.inputs):
        datatype = _datatype_of_dtype(spec.type)
        tensors.append(TensorMeta(spec.name or f"input-{i}", datatype, tuple(spec.shape)))
    if len(tensors) == 1 and inputs.inputs[0].name is None:
        return InputSchema(kind="tensor", tensors=tuple(tensors))
    return InputSchema(kind="tensors", tensors=tuple(tensors))


def _datatype_of_dtype(dtype: np.dtype[Any]) -> str:
    for name, candidate in DATATYPES.items():
        if candidate == dtype:
            return name
    return "BYTES"
