"""Open Inference Protocol v2 (REST) codec: request parsing, tensor decoding, response encoding.

The wire format is the one of the KServe/Triton/MLServer "v2" protocol::

    request  = {"id"?, "parameters"?, "inputs": [{"name", "shape", "datatype", "parameters"?, "data"}],
                "outputs"?: [{"name", "parameters"?}]}
    response = {"model_name", "model_version", "id", "parameters"?,
                "outputs": [{"name", "shape", "datatype", "data"}]}
    error    = {"error": "message"}

Tensor data is row-major, flat or nested. Only JSON is accepted: the body is parsed with orjson
and numbers become numpy arrays with ``np.asarray``; nothing from a request is ever unpickled.
"""

from __future__ import annotations

import math
import random
import uuid
from dataclasses import dataclass
from itertools import chain, repeat
from operator import contains, itemgetter
from typing import Any

import numpy as np
import orjson

from pave.errors import InvalidInput

# OIP datatype -> numpy dtype. BYTES tensors are object arrays of str.
DATATYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype(np.uint8),
    "UINT16": np.dtype(np.uint16),
    "UINT32": np.dtype(np.uint32),
    "UINT64": np.dtype(np.uint64),
    "INT8": np.dtype(np.int8),
    "INT16": np.dtype(np.int16),
    "INT32": np.dtype(np.int32),
    "INT64": np.dtype(np.int64),
    "FP16": np.dtype(np.float16),
    "FP32": np.dtype(np.float32),
    "FP64": np.dtype(np.float64),
    "BYTES": np.dtype(object),
}
# Which numpy kinds the JSON data of a datatype may come in (before the cast to the datatype).
_DATA_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}

NUMPY_OPTS = orjson.OPT_SERIALIZE_NUMPY
_INT = frozenset({int})
_STR = frozenset({str})
_LIST = frozenset({list})
_DATATYPE_NAMES = frozenset(DATATYPES)
# An input's fields, read for all inputs in one pass in C (here and in pave.serving.schema).
NAME_OF, SHAPE_OF, DATATYPE_OF, DATA_OF = map(itemgetter, ("name", "shape", "datatype", "data"))


@dataclass(frozen=True, slots=True)
class TensorMeta:
    """One input or output in model metadata; -1 marks a variable dimension."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(slots=True)
class InferenceRequest:
    """A parsed, structurally valid inference request (tensors not yet decoded)."""

    id: str
    inputs: list[dict[str, Any]]
    parameters: dict[str, Any]
    outputs: list[str] | None
    id_given: bool
    binary_outputs: bool | frozenset[str] = frozenset()  # outputs asked for as raw bytes
    # The model input already bound by a schema's own decoder (``schema.Prebound``); ``inputs`` is
    # then empty until a version of another schema asks for them (``InputSchema.bind_request``).
    prebound: Any = None


# Inference ids need to be unique, not secret: a generator seeded once from the OS is ~100x cheaper
# than uuid4(), which reads /dev/urandom on every call.
_ids = random.Random(uuid.uuid4().int)  # noqa: S311


def new_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


def parse_request(body: bytes) -> InferenceRequest:
    """Parse and check the structure of an inference request body.

    Raises:
        InvalidInput: the body is not JSON, or not an OIP inference request.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object with an 'inputs' list")
    inputs = doc.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("request needs a non-empty 'inputs' list")
    if len(inputs) < 3 or not _well_formed(inputs):  # one or two inputs: the loop costs less
        for position, item in enumerate(inputs):
            _check_input(item, position)  # raises, naming the first input that is not
    return request_of(doc, inputs)


def request_of(doc: dict[str, Any], inputs: list[dict[str, Any]]) -> InferenceRequest:
    """The request of a parsed body whose inputs are checked already: its id, parameters, outputs.

    Raises:
        InvalidInput: a malformed ``id``, ``parameters`` or ``outputs``.
    """
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput("'id' must be a string")
    parameters = doc.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise InvalidInput("'parameters' must be an object")
    outputs: list[str] | None = None
    binary: bool | frozenset[str] = parameters.get("binary_data_output") is True
    requested = doc.get("outputs")
    if requested is not None:
        outputs, asked_binary = _requested_outputs(requested)
        if binary is False:
            binary = asked_binary
    return InferenceRequest(
        id=request_id or new_id(),
        inputs=inputs,
        parameters=parameters,
        outputs=outputs,
        id_given=request_id is not None,
        binary_outputs=binary or frozenset(),
    )


def _requested_outputs(requested: Any) -> tuple[list[str] | None, frozenset[str]]:
    """The names of the outputs a request asks for (None: all), and those asked for as binary.

    One loop, no generator per request: this runs on every inference.
    """
    if not isinstance(requested, list):
        raise InvalidInput("'outputs' must be a list of objects with a 'name'")
    names: list[str] = []
    binary: list[str] = []
    for output in requested:
        name = output.get("name") if isinstance(output, dict) else None
        if not isinstance(name, str):
            raise InvalidInput("'outputs' must be a list of objects with a 'name'")
        names.append(name)
        parameters = output.get("parameters")
        if isinstance(parameters, dict) and parameters.get("binary_data") is True:
            binary.append(name)
    return names or None, frozenset(binary)


def _well_formed(inputs: list[Any]) -> bool:
    """Whether every input passes :func:`_check_input`, checked a field at a time for all inputs.

    The template's request has one input per column (30 for a 30-feature model): a few passes in C
    over all inputs cost a sixth of a loop body per input. False sends the request to the checked
    loop, which names the problem; inputs with ``parameters`` always go there.
    """
    try:
        names = list(map(NAME_OF, inputs))
        if set(map(type, names)) != _STR or "" in names:
            return False
        if not _DATATYPE_NAMES.issuperset(map(DATATYPE_OF, inputs)):
            return False
        shapes = list(map(SHAPE_OF, inputs))
    except (KeyError, TypeError):  # an input that is not an object, lacks a field, or a list as datatype
        return False
    if set(map(type, shapes)) != _LIST:
        return False
    dims = list(chain.from_iterable(shapes))
    if not _INT.issuperset(map(type, dims)) or (dims and min(dims) < 0):
        return False
    return all(map(contains, inputs, repeat("data"))) and not any(map(contains, inputs, repeat("parameters")))


def _check_input(item: Any, position: int) -> None:
    if not isinstance(item, dict):
        raise InvalidInput(f"inputs[{position}] must be an object")
    name = item.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidInput(f"inputs[{position}] needs a 'name'")
    shape = item.get("shape")
    # type() rather than isinstance(): a bool is an int to isinstance, and this runs per input
    if type(shape) is not list or not set(map(type, shape)) <= _INT or (shape and min(shape) < 0):
        raise InvalidInput(f"input '{name}': 'shape' must be a list of non-negative integers")
    datatype = item.get("datatype")
    if type(datatype) is not str or datatype not in DATATYPES:  # a list would not even hash
        raise InvalidInput(
            f"input '{name}': unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}"
        )
    params = item.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput(f"input '{name}': 'parameters' must be an object")
    if "data" not in item and not (params and "binary_data_size" in params):
        raise InvalidInput(f"input '{name}' has no 'data'")


def decode_tensor(item: dict[str, Any]) -> np.ndarray:
    """The numpy array of a request input, checked against its datatype and shape.

    Raises:
        InvalidInput: data of the wrong type, out of range, or not matching the shape.
    """
    name: str = item["name"]
    datatype: str = item["datatype"]
    shape: list[int] = item["shape"]
    data = item.get("data")
    if data is None:
        raise InvalidInput(
            f"input '{name}' announces {item['parameters']['binary_data_size']} bytes of binary data, "
            "but the request is not in the binary tensor format",
            hint="send the header Inference-Header-Content-Length with the JSON part's length",
        )
    dtype = DATATYPES[datatype]
    if isinstance(data, np.ndarray):  # decoded already (binary extension, gRPC)
        raw = data
    else:
        if not isinstance(data, list):
            data = [data]
        try:
            raw = np.asarray(data) if datatype != "BYTES" else np.asarray(data, dtype=object)
        except (ValueError, TypeError):
            raise InvalidInput(f"input '{name}': 'data' is not a regular (non-ragged) array") from None
    expected = math.prod(shape)
    if raw.size != expected:
        raise InvalidInput(f"input '{name}': shape {shape} needs {expected} values, 'data' has {raw.size}")
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in raw.flat):
            raise InvalidInput(f"input '{name}': BYTES data must be strings")
        return raw.reshape(shape)
    if raw.size and raw.dtype.kind not in _DATA_KINDS[dtype.kind]:
        raise InvalidInput(f"input '{name}': 'data' does not hold {datatype} values")
    if dtype.kind in "iu" and raw.size and raw.dtype != dtype:
        info = np.iinfo(dtype)
        if raw.min() < info.min or raw.max() > info.max:
            raise InvalidInput(f"input '{name}': a value is out of the {datatype} range")
    return raw.astype(dtype, copy=False).reshape(shape)


def datatype_of(array: np.ndarray) -> str:
    """The OIP datatype of a numpy array (strings and objects are BYTES)."""
    kind = array.dtype.kind
    if kind == "b":
        return "BOOL"
    if kind == "f":
        return f"FP{array.dtype.itemsize * 8}"
    if kind == "i":
        return f"INT{array.dtype.itemsize * 8}"
    if kind == "u":
        return f"UINT{array.dtype.itemsize * 8}"
    return "BYTES"


def encode_output(name: str, array: np.ndarray) -> dict[str, Any]:
    """One response output; numeric data stays a numpy array for orjson to serialise fast."""
    datatype = datatype_of(array)
    if datatype == "BYTES":
        data: Any = [v if isinstance(v, str) else str(v) for v in array.ravel().tolist()]
    elif datatype == "FP16":
        data = array.astype(np.float32).ravel()
    else:
        data = np.ascontiguousarray(array).ravel()
    return {"name": name, "datatype": datatype, "shape": list(array.shape), "data": data}


def output_names(model_name: str, outputs: dict[str, np.ndarray], requested: list[str] | None) -> list[str]:
    """The outputs an answer carries: the requested ones, else all.

    Raises:
        InvalidInput: the request asked for an output the model does not produce.
    """
    if requested is None:
        return list(outputs)
    unknown = [n for n in requested if n not in outputs]
    if unknown:
        raise InvalidInput(
            f"unknown output '{unknown[0]}'; model '{model_name}' produces {', '.join(outputs)}"
        )
    return requested


def encode_response(
    model_name: str,
    model_version: str,
    request_id: str,
    outputs: dict[str, np.ndarray],
    requested: list[str] | None,
) -> bytes:
    """The JSON body of an inference response.

    Raises:
        InvalidInput: the request asked for an output the model does not produce.
    """
    names = output_names(model_name, outputs, requested)
    body = {
        "model_name": model_name,
        "model_version": model_version,
        "id": request_id,
        "outputs": [encode_output(n, outputs[n]) for n in names],
    }
    return orjson.dumps(body, option=NUMPY_OPTS)


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})
