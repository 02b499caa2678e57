"""The binary tensor data extension of the Open Inference Protocol (REST), and raw tensor bytes.

What ``tritonclient.http`` sends by default: the JSON inference request, immediately followed by
the raw bytes of the inputs whose ``parameters`` carry ``binary_data_size``, in input order. The
``Inference-Header-Content-Length`` header gives the JSON part's length. Bytes are little-endian,
row-major, unpadded; BOOL is one byte; a BYTES element is a 4-byte little-endian length and then
its bytes. An answer asked for in binary (``"binary_data_output": true`` in the request's
parameters, or ``"binary_data": true`` on a requested output) is the JSON response, with
``binary_data_size`` instead of ``data`` on those outputs, followed by their bytes.

The same raw layout carries tensors over gRPC (``raw_input_contents`` / ``raw_output_contents``),
so :func:`from_raw` and :func:`to_raw` are shared with ``grpc_server.py``. Bytes become numpy
arrays with ``np.frombuffer``: nothing is ever unpickled.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import numpy as np
import orjson

from pave.errors import InvalidInput
from pave.serving.protocol import DATATYPES, NUMPY_OPTS, encode_output

EXTENSION = "binary_tensor_data"
HEADER = b"inference-header-content-length"
_LITTLE = {name: dtype.newbyteorder("<") for name, dtype in DATATYPES.items() if name != "BYTES"}


def split(body: bytes, header_length: bytes) -> tuple[bytes, memoryview]:
    """The JSON part of a binary request and the bytes after it.

    Raises:
        InvalidInput: the header's length is not a number or is past the end of the body.
    """
    try:
        length = int(header_length)
    except ValueError:
        raise InvalidInput("the Inference-Header-Content-Length header is not a number") from None
    if not 0 <= length <= len(body):
        raise InvalidInput(
            f"Inference-Header-Content-Length is {length}, but the body has only {len(body)} bytes",
            hint="it is the length of the JSON part, which comes first in the body",
        )
    view = memoryview(body)
    return bytes(view[:length]), view[length:]


def attach_inputs(inputs: list[dict[str, Any]], tail: memoryview) -> None:
    """Decode the binary data of the inputs that announce some, in order, into their ``data``.

    Raises:
        InvalidInput: a size that does not match the tensor's shape and datatype, or bytes missing
            or left over.
    """
    offset = 0
    for item in inputs:
        params = item.get("parameters") or {}
        size = params.get("binary_data_size")
        if size is None:
            continue
        name = item["name"]
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidInput(f"input '{name}': 'binary_data_size' must be a non-negative integer")
        if offset + size > len(tail):
            raise InvalidInput(
                f"input '{name}' announces {size} bytes of binary data, only {len(tail) - offset} follow"
            )
        item["data"] = from_raw(name, item["datatype"], item["shape"], tail[offset : offset + size])
        offset += size
    if offset != len(tail):
        raise InvalidInput(
            f"the request has {len(tail) - offset} bytes of binary data that no input announces",
            hint="give each binary input 'parameters': {'binary_data_size': N}",
        )


def from_raw(name: str, datatype: str, shape: list[int], raw: memoryview | bytes) -> np.ndarray:
    """The array held by raw tensor bytes (the layout of the module docstring).

    Raises:
        InvalidInput: the byte count does not fit the shape and datatype.
    """
    count = math.prod(shape)
    if datatype == "BYTES":
        return _bytes_elements(name, shape, count, memoryview(raw))
    dtype = _LITTLE[datatype]
    if len(raw) != count * dtype.itemsize:
        raise InvalidInput(
            f"input '{name}': shape {shape} of {datatype} needs {count * dtype.itemsize} bytes, "
            f"the request has {len(raw)}"
        )
    array = np.frombuffer(raw, dtype=dtype)
    if datatype == "BOOL" and array.size and array.view(np.uint8).max() > 1:
        raise InvalidInput(f"input '{name}': a BOOL byte is neither 0 nor 1")
    return array.astype(DATATYPES[datatype], copy=False).reshape(shape)


def _bytes_elements(name: str, shape: list[int], count: int, raw: memoryview) -> np.ndarray:
    values: list[str] = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise InvalidInput(f"input '{name}': a BYTES element's 4-byte length is cut off")
        (length,) = struct.unpack_from("<I", raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise InvalidInput(f"input '{name}': a BYTES element is longer than the data left")
        try:
            values.append(bytes(raw[offset : offset + length]).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidInput(f"input '{name}': a BYTES element is not UTF-8 text") from None
        offset += length
    if len(values) != count:
        raise InvalidInput(f"input '{name}': shape {shape} needs {count} BYTES elements, got {len(values)}")
    array = np.empty(count, dtype=object)
    array[:] = values
    return array.reshape(shape)


def to_raw(array: np.ndarray, datatype: str) -> bytes:
    """The raw bytes of an output tensor (little-endian, row-major)."""
    if datatype == "BYTES":
        parts = []
        for value in array.ravel().tolist():
            data = value if isinstance(value, bytes) else str(value).encode("utf-8")
            parts.append(struct.pack("<I", len(data)))
            parts.append(data)
        return b"".join(parts)
    if datatype == "BOOL":
        return np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    return np.ascontiguousarray(array, dtype=_LITTLE[datatype]).tobytes()


def encode_response(
    head: dict[str, Any], outputs: dict[str, np.ndarray], names: list[str], binary: bool | frozenset[str]
) -> tuple[bytes, int | None]:
    """A response body with the ``binary`` outputs as raw bytes after the JSON.

    Returns:
        The body, and the JSON part's length (None when no output is binary: a plain JSON answer).
    """
    tails: list[bytes] = []
    encoded = []
    for name in names:
        if binary is True or (not isinstance(binary, bool) and name in binary):
            out = encode_output(name, outputs[name])
            raw = to_raw(outputs[name], out["datatype"])
            del out["data"]
            out["parameters"] = {"binary_data_size": len(raw)}
            tails.append(raw)
            encoded.append(out)
        else:
            encoded.append(encode_output(name, outputs[name]))
    document = orjson.dumps({**head, "outputs": encoded}, option=NUMPY_OPTS)
    if not tails:
        return document, None
    return document + b"".join(tails), len(document)
