"""A deployment's own request shape, decoded straight into the model input: the template's named inputs.

The golden-path template's client sends one input per column, in the signature's order, one row::

    {"inputs": [{"name": "mean radius", "datatype": "FP64", "shape": [1], "data": [17.99]}, ...], ...}

The general path (``orjson.loads``, the structural checks, then ``InputSchema.bind``) builds about
150 Python objects for 30 inputs and checks each of them. For a matrix schema of FP64 columns, this
module knows the text of exactly that ``inputs`` array as the usual encoders write it (Python's
``json.dumps`` with its default separators, or compact): the schema's names in order, the keys in
the order above, one row. The body is split around each value with a few calls in C, the text
between the values compared with the expected text in one comparison, and orjson reads the body
once with the array replaced by the list of values (``"inputs":[17.99,...]``): the numbers are
orjson's own, as on the general path, and go to numpy in one call (as ``_fast_matrix`` does). The
rest of the body (``id``, ``parameters``, ``outputs``) is checked by the code every request goes
through (``protocol.request_of``). In-process: 13 µs against 29 for the general parse and bind
(one ``[1, 30]`` tensor: 7).

Anything else is left to the general path, so every refusal keeps its status and message: another
layout, key order or input order, several rows, a name written with escapes, another datatype,
``parameters`` on an input, a value that is not one number, or a second ``"inputs"`` anywhere in
the body.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import repeat
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from pave.serving.protocol import InferenceRequest, request_of

if TYPE_CHECKING:
    from pave.serving.schema import InputSchema

_KEY = b'"inputs"'
_DATA = b'"data"'
_NUMBERS = frozenset({float, int})  # the Python types of JSON numbers (a bool is not one here)
_BEFORE, _AFTER = itemgetter(0), itemgetter(2)
# The separators of the encoders clients use: Python's json.dumps by default (", " and ": "),
# and compact (orjson, JavaScript's JSON.stringify, json.dumps with separators=(",", ":")).
_SEPARATORS = ((b", ", b": "), (b",", b":"))


class _Form:
    """The template's inputs array as one encoder writes it: the text around each value, known."""

    def __init__(self, names: list[str], comma: bytes, colon: bytes) -> None:
        def head(name: str) -> bytes:  # an input up to its value, its "data" key excluded
            fields = ((b"name", b'"' + name.encode() + b'"'), (b"datatype", b'"FP64"'), (b"shape", b"[1]"))
            return b"{" + b"".join(b'"' + k + b'"' + colon + v + comma for k, v in fields)

        self.data = b'"data"' + colon + b"["  # the text before each value
        self.start = _KEY + colon + b"[" + head(names[0])
        # the text after each value but the last, up to the next value's "data" key
        self.between = [b"}" + comma + head(name) for name in names[1:]]
        self.end = b"}]"

    def values(self, body: bytes) -> bytes | None:
        """The body with each input's value in place of the inputs array (``"inputs":[v1,v2...]``);
        None when the array is not in this form."""
        parts = body.split(self.data)
        if len(parts) != len(self.between) + 2 or not parts[0].endswith(self.start):
            return None
        split = list(map(bytes.partition, parts[1:], repeat(b"]")))
        if list(map(_AFTER, split[:-1])) != self.between or not split[-1][2].startswith(self.end):
            return None
        values = b",".join(map(_BEFORE, split))
        return parts[0][: -len(self.start)] + _KEY + b":[" + values + b"]" + split[-1][2][len(self.end) :]


def _plain(name: str) -> bool:
    """A name a JSON encoder writes as it is (no quote, backslash or control character)."""
    return name.isprintable() and '"' not in name and "\\" not in name


@dataclass(slots=True)
class Prebound:
    """A request's model input, bound by its schema's decoder (``InferenceRequest.prebound``)."""

    schema: InputSchema
    matrix: np.ndarray
    values: list[Any]  # the numbers as orjson read them
    _taken: bool = field(default=False)

    def take(self) -> np.ndarray:
        """The matrix; a copy after the first call (the shadow, a fallback version)."""
        if self._taken:
            return self.matrix.copy()
        self._taken = True
        return self.matrix

    def plain_inputs(self) -> list[dict[str, Any]]:
        """The OIP inputs the request held, for a version of another schema."""
        return [
            {"name": name, "datatype": "FP64", "shape": [1], "data": [value]}
            for name, value in zip(self.schema._column_names, self.values, strict=True)
        ]


class Decoder:
    """The decoder of one schema's own request shape (``InputSchema.decoder``)."""

    def __init__(self, schema: InputSchema) -> None:
        self.schema = schema
        self._forms = [_Form(schema._column_names, comma, colon) for comma, colon in _SEPARATORS]
        self._width = len(schema._column_names)
        self._index = schema._table_index  # signature order -> the estimator's, when they differ

    @staticmethod
    def applies(schema: InputSchema) -> bool:
        """Whether a schema has a decoder: a matrix of FP64 columns with plainly written names."""
        return schema._matrix_position is not None and all(map(_plain, schema._column_names))

    def decode(self, body: bytes) -> InferenceRequest | None:
        """The request, its model input bound; None when the body is not this schema's own shape.

        Raises:
            InvalidInput: the inputs are this schema's, but ``id``, ``parameters`` or ``outputs`` are
                malformed (the same refusal as the general path's).
        """
        if body.count(_KEY) != 1:  # then the one "inputs" is the top level's (checked below)
            return None
        # Each input of the form has a "data" key: a body with fewer (one tensor) is not this shape,
        # told by one count in C rather than a split per form.
        if body.count(_DATA) < self._width:
            return None
        for form in self._forms:
            found = form.values(body)
            if found is not None:
                break
        else:
            return None
        try:
            doc = orjson.loads(found)
        except orjson.JSONDecodeError:
            return None
        if type(doc) is not dict:
            return None
        values = doc.get("inputs")  # the top level's: the one "inputs" of the body
        # one number an input, as the general path checks them (a bool is not one)
        if type(values) is not list or len(values) != self._width:
            return None
        if not _NUMBERS.issuperset(map(type, values)):
            return None
        doc["inputs"] = []
        request = request_of(doc, [])
        row = np.array(values, dtype=np.float64)  # as the general path's InputSchema._fast_matrix
        if self._index is not None:
            row = row[self._index]
        request.prebound = Prebound(self.schema, row.reshape(1, -1), values)
        return request
