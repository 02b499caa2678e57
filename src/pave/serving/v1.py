"""KServe's V1 data plane (the TensorFlow Serving style protocol), on the gateway's REST port.

Routes::

    GET  /v1/models                      {"models": [names the caller may call]}
    GET  /v1/models/{name}               {"name", "ready"} (503 while not ready)
    POST /v1/models/{name}:predict       {"instances": [...]} or {"inputs": [...]} -> {"predictions": [...]}
    POST /v1/models/{name}:explain       the same body -> {"explanations": [one per instance], ...}
                                         (SHAP attributions: ``explain.py``)

An instance is a row: a list of values in the model's column order, or an object of column ->
value; a tensor model takes each instance as one item of its batch. JSON carries no datatypes, so
the values are cast to what the model declares. Predictions are the model's first output
(``predict``), one per instance. A request is routed, logged, counted and mirrored to a shadow
exactly as an OIP request is (``Gateway.run_inference``). Errors answer ``{"error": "..."}``
with the same status codes as the V2 routes, as KServe's own server does.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

from pave.errors import InvalidInput, NotFound
from pave.serving.protocol import DATATYPES, NUMPY_OPTS, InferenceRequest, new_id
from pave.serving.schema import InputSchema

if TYPE_CHECKING:
    from pave.serving.gateway import Gateway, Scope

VERBS = ("predict", "explain")


def split_target(segment: str) -> tuple[str, str | None]:
    """``"iris:predict"`` -> ``("iris", "predict")``; a name alone -> ``(name, None)``."""
    name, colon, verb = segment.rpartition(":")
    if not colon:
        return segment, None
    if verb not in VERBS:
        raise NotFound(f"no V1 verb ':{verb}'; use :predict or :explain")
    return name, verb


def parse(body: bytes, schema: InputSchema | None) -> InferenceRequest:
    """The OIP request a V1 body stands for, cast to the model's declared datatypes.

    Raises:
        InvalidInput: not JSON, no ``instances`` (or ``inputs``) list, or rows that do not fit.
    """
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidInput('a V1 request is a JSON object: {"instances": [...]}')
    instances = doc.get("instances", doc.get("inputs"))
    if not isinstance(instances, list) or not instances:
        raise InvalidInput('a V1 request needs a non-empty "instances" list (one item per row)')
    if schema is not None and schema.columns:
        inputs = _column_inputs(instances, schema)
    else:
        inputs = [_tensor_input(instances, schema)]
    return InferenceRequest(id=new_id(), inputs=inputs, parameters={}, outputs=None, id_given=False)


def _column_inputs(instances: list[Any], schema: InputSchema) -> list[dict[str, Any]]:
    columns = schema.columns
    names = [c.name for c in columns]
    if all(isinstance(row, dict) for row in instances):
        unknown = sorted({k for row in instances for k in row} - set(names))
        if unknown:
            raise InvalidInput(f"unknown column '{unknown[0]}'; the model takes {', '.join(names)}")
        given = [c for c in columns if any(c.name in row for row in instances)]
        return [
            _input(c.name, c.datatype, [[row.get(c.name)] for row in instances], [len(instances)])
            for c in given
        ]
    if all(isinstance(row, list) for row in instances):
        widths = {len(row) for row in instances}
        if widths != {len(columns)}:
            raise InvalidInput(
                f"each instance needs {len(columns)} values (the columns {', '.join(names)}), "
                f"got rows of {', '.join(str(w) for w in sorted(widths))}"
            )
        return [
            _input(c.name, c.datatype, [[row[j]] for row in instances], [len(instances)])
            for j, c in enumerate(columns)
        ]
    raise InvalidInput("each instance is a list of values in column order, or an object of column: value")


def _tensor_input(instances: list[Any], schema: InputSchema | None) -> dict[str, Any]:
    spec = schema.tensors[0] if schema is not None and schema.tensors else None
    datatype = spec.datatype if spec is not None else None
    name = spec.name if spec is not None else "instances"
    array = _array(name, instances, datatype)
    return {"name": name, "datatype": datatype or _datatype(array), "shape": list(array.shape), "data": array}


def _input(name: str, datatype: str, values: list[list[Any]], shape: list[int]) -> dict[str, Any]:
    array = _array(name, values, datatype).reshape(shape)
    return {"name": name, "datatype": datatype, "shape": shape, "data": array}


def _array(name: str, values: list[Any], datatype: str | None) -> np.ndarray:
    if any(v is None for v in _flat(values)):
        raise InvalidInput(f"input '{name}' has a null value; give every instance a value for it")
    try:
        if datatype == "BYTES":
            return np.asarray(values, dtype=object)
        array = np.asarray(values)
        if datatype is None:
            return array
        target = DATATYPES[datatype]
        if array.dtype.kind not in "biuf" or (array.dtype.kind == "f" and target.kind in "biu"):
            raise InvalidInput(f"input '{name}': the values are not {datatype}")
        return array.astype(target)
    except (ValueError, TypeError):
        raise InvalidInput(f"input '{name}': the instances are not a regular array of values") from None


def _flat(values: list[Any]) -> list[Any]:
    return [v for row in values for v in (row if isinstance(row, list) else [row])]


def _datatype(array: np.ndarray) -> str:
    kind = array.dtype.kind
    return {"b": "BOOL", "i": "INT64", "u": "INT64", "f": "FP64"}.get(kind, "BYTES")


def predictions(outputs: dict[str, np.ndarray]) -> bytes:
    """The V1 answer: the first output, one prediction per instance."""
    first = next(iter(outputs.values()))
    return orjson.dumps({"predictions": first}, option=NUMPY_OPTS)


async def models(gateway: Gateway, scope: Scope) -> bytes:
    """``GET /v1/models``: the deployments the caller may call (401 without a valid token).

    Raises:
        Unauthenticated: no token, or one the platform does not know (as on every model route).
    """
    await gateway.authorize(scope, "")  # who the caller is: no deployment has an empty name
    names = []
    for name in gateway.table.entries:
        try:
            await gateway.authorize(scope, name)
        except Exception:  # noqa: S112 - a deployment the caller may not call is not listed
            continue
        names.append(name)
    return orjson.dumps({"models": names})


async def route(gateway: Gateway, scope: Scope, receive: Any, send: Any, parts: list[str]) -> None:
    """Answer a ``/v1/...`` request (``parts``: the path's segments). Raises the caller's PaveError."""
    from pave.serving.gateway import READ_METHODS, MethodNotAllowed, respond

    method = scope["method"]
    if parts[1:] == ["models"]:
        if method not in READ_METHODS:
            raise MethodNotAllowed(method)
        await respond(send, 200, await models(gateway, scope))
        return
    if len(parts) != 3 or parts[1] != "models" or not parts[2]:
        raise NotFound(f"no route {scope['path']}")
    name, verb = split_target(parts[2])
    await gateway.authorize(scope, name)
    entry = gateway.entry(name)
    if verb is None:
        if method not in READ_METHODS:
            raise MethodNotAllowed(method)
        await gateway.ready(send, name, None)
        return
    if method != "POST":
        raise MethodNotAllowed(method)
    if verb == "explain":
        from pave.serving import explain

        await explain.route(gateway, scope, receive, send, name, None, v1=True)
        return
    inference = None
    try:
        body = await gateway.read_body(scope, receive)
        runtime = gateway.runtime(entry, entry.main_version)
        model = runtime.model or await runtime.ensure_loaded()
        request = parse(body.data, model.schema)
        inference = await gateway.run_inference(name, None, request, scope["headers"], None)
        answer = predictions(inference.outputs)
    except Exception as exc:
        runtime_failed, status, message = gateway.failure(exc, name, inference)
        version = runtime_failed.version if runtime_failed is not None else None
        await respond(send, status, orjson.dumps({"error": message}), version=version)
        return
    latency = gateway.answered(inference)
    await respond(
        send,
        200,
        answer,
        version=inference.runtime.version,
        request_id=inference.request.id,
        accept=body.accept_encoding,
    )
    gateway.follow_up(inference, latency)
