"""Open Inference Protocol over gRPC: ``inference.GRPCInferenceService`` on the gateway's gRPC port.

The service of ``oip/grpc_predict_v2.proto`` (what ``tritonclient.grpc`` and KServe's clients
call): ServerLive, ServerReady, ServerMetadata, ModelReady, ModelMetadata, ModelInfer. It runs in
every gateway worker, on the worker's own event loop, beside the REST app (the workers share the
port, as they share the REST one), and calls the same gateway: the same token check (the
``authorization`` metadata, as an HTTP header), routing, canary, shadow, inference log and
metrics. Tensors come as ``raw_input_contents`` (the binary layout of ``binary.py``) or as typed
``contents``; answers carry ``raw_output_contents``. Errors are gRPC status codes with the same
message the REST routes give (400 -> INVALID_ARGUMENT, 401 -> UNAUTHENTICATED, 403 ->
PERMISSION_DENIED, 404 -> NOT_FOUND, 413 -> RESOURCE_EXHAUSTED, 503 -> UNAVAILABLE, else INTERNAL).

The message classes are built from the proto's descriptor in a pool of Pave's own, so a process
that also imports a client's copy of the same messages (tritonclient) sees no clash.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

import pave
from pave import telemetry
from pave.errors import InvalidInput, PaveError
from pave.serving import binary
from pave.serving.oip.descriptor import FILE_DESCRIPTOR
from pave.serving.protocol import DATATYPES, InferenceRequest, datatype_of, new_id, output_names

if TYPE_CHECKING:
    from pave.serving.gateway import Gateway
    from pave.serving.outcomes import Inference

log = logging.getLogger(__name__)

SERVICE = "inference.GRPCInferenceService"
_POOL = descriptor_pool.DescriptorPool()
_FILE = _POOL.Add(descriptor_pb2.FileDescriptorProto.FromString(FILE_DESCRIPTOR))


def _message(name: str) -> Any:
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"inference.{name}"))


MESSAGES = {
    name: _message(name)
    for name in (
        "ServerLiveRequest",
        "ServerLiveResponse",
        "ServerReadyRequest",
        "ServerReadyResponse",
        "ModelReadyRequest",
        "ModelReadyResponse",
        "ServerMetadataRequest",
        "ServerMetadataResponse",
        "ModelMetadataRequest",
        "ModelMetadataResponse",
        "ModelInferRequest",
        "ModelInferResponse",
    )
}
STATUS = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    403: grpc.StatusCode.PERMISSION_DENIED,
    404: grpc.StatusCode.NOT_FOUND,
    405: grpc.StatusCode.UNIMPLEMENTED,
    413: grpc.StatusCode.RESOURCE_EXHAUSTED,
    415: grpc.StatusCode.INVALID_ARGUMENT,
    429: grpc.StatusCode.RESOURCE_EXHAUSTED,
    503: grpc.StatusCode.UNAVAILABLE,
}
# The typed ``contents`` field of each datatype (FP16 travels only as raw bytes).
_CONTENTS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _parameters(fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in fields.items():
        choice = value.WhichOneof("parameter_choice")
        if choice is not None:
            out[key] = getattr(value, choice)
    return out


def to_request(message: Any, limit: int) -> InferenceRequest:
    """The gateway's request for a ``ModelInferRequest`` (tensors decoded, checked like REST's).

    Raises:
        InvalidInput: a datatype, shape or content that does not fit.
    """
    raw = list(message.raw_input_contents)
    if raw and len(raw) != len(message.inputs):
        raise InvalidInput(
            f"the request has {len(message.inputs)} inputs but {len(raw)} raw_input_contents; "
            "give every input its raw contents, or none"
        )
    inputs = []
    for position, tensor in enumerate(message.inputs):
        name, datatype, shape = tensor.name, tensor.datatype, list(tensor.shape)
        if not name:
            raise InvalidInput(f"inputs[{position}] needs a 'name'")
        if datatype not in DATATYPES:
            raise InvalidInput(
                f"input '{name}': unknown datatype {datatype!r}; use one of {', '.join(DATATYPES)}"
            )
        if any(d < 0 for d in shape):
            raise InvalidInput(f"input '{name}': 'shape' must be non-negative integers")
        if raw:
            data = binary.from_raw(name, datatype, shape, raw[position])
        else:
            data = _from_contents(name, datatype, tensor.contents)
        inputs.append({"name": name, "datatype": datatype, "shape": shape, "data": data})
    if not inputs:
        raise InvalidInput("request needs at least one input")
    parameters = _parameters(message.parameters)
    return InferenceRequest(
        id=message.id or new_id(),
        inputs=inputs,
        parameters=parameters,
        outputs=[o.name for o in message.outputs] or None,
        id_given=bool(message.id),
    )


def _from_contents(name: str, datatype: str, contents: Any) -> np.ndarray:
    field = _CONTENTS.get(datatype)
    if field is None:
        raise InvalidInput(f"input '{name}': {datatype} data must come as raw_input_contents")
    values = getattr(contents, field)
    if datatype == "BYTES":
        try:
            texts = [bytes(v).decode("utf-8") for v in values]
        except UnicodeDecodeError:
            raise InvalidInput(f"input '{name}': a BYTES element is not UTF-8 text") from None
        array = np.empty(len(texts), dtype=object)
        array[:] = texts
        return array
    try:
        return np.asarray(values, dtype=DATATYPES[datatype])
    except OverflowError:
        raise InvalidInput(f"input '{name}': a value is out of the {datatype} range") from None


def to_response(name: str, inference: Inference) -> Any:
    """The ``ModelInferResponse`` of an answered inference (every output as raw bytes).

    Raises:
        InvalidInput: the request asked for an output the model does not produce.
    """
    request = inference.request
    names = output_names(name, inference.outputs, request.outputs)
    response = MESSAGES["ModelInferResponse"](
        model_name=name, model_version=inference.runtime.version, id=request.id
    )
    for output in names:
        array = np.asarray(inference.outputs[output])
        datatype = datatype_of(array)
        tensor = response.outputs.add()
        tensor.name, tensor.datatype = output, datatype
        tensor.shape.extend(array.shape)
        response.raw_output_contents.append(binary.to_raw(array, datatype))
    return response


class InferenceService:
    """The six methods of ``inference.GRPCInferenceService``, over one gateway."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def _authorize(self, context: Any, name: str) -> None:
        authorization = next(
            (v for k, v in context.invocation_metadata() or () if k == "authorization"), None
        )
        await self.gateway.check_token(
            authorization.encode("latin-1") if isinstance(authorization, str) else authorization, name
        )

    async def ServerLive(self, request: Any, context: Any) -> Any:
        return MESSAGES["ServerLiveResponse"](live=True)

    async def ServerReady(self, request: Any, context: Any) -> Any:
        try:
            self.gateway.check_server_ready()
        except PaveError:
            return MESSAGES["ServerReadyResponse"](ready=False)
        return MESSAGES["ServerReadyResponse"](ready=True)

    async def ServerMetadata(self, request: Any, context: Any) -> Any:
        return MESSAGES["ServerMetadataResponse"](
            name="pave", version=pave.__version__, extensions=[binary.EXTENSION]
        )

    async def ModelReady(self, request: Any, context: Any) -> Any:
        try:
            await self._authorize(context, request.name)
            self.gateway.check_model_ready(request.name, request.version or None)
        except PaveError as exc:
            if exc.status_code == 503:
                return MESSAGES["ModelReadyResponse"](ready=False)
            await _abort(context, exc.status_code, exc.message)
        return MESSAGES["ModelReadyResponse"](ready=True)

    async def ModelMetadata(self, request: Any, context: Any) -> Any:
        try:
            await self._authorize(context, request.name)
            entry = self.gateway.entry(request.name)
            runtime = self.gateway.runtime(entry, request.version or entry.main_version)
            described = await self.gateway.describe(entry, runtime)
        except PaveError as exc:
            await _abort(context, exc.status_code, exc.message)
        response = MESSAGES["ModelMetadataResponse"](
            name=described["name"], versions=described["versions"], platform=described["platform"]
        )
        for key in ("inputs", "outputs"):
            for tensor in described[key]:
                getattr(response, key).add(
                    name=tensor["name"], datatype=tensor["datatype"], shape=tensor["shape"]
                )
        return response

    async def ModelInfer(self, request: Any, context: Any) -> Any:
        if not telemetry.enabled():
            return await self._model_infer(request, context)
        metadata = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        attributes = {"rpc.system": "grpc", "rpc.method": "ModelInfer", "pave.model": request.model_name}
        with telemetry.server_span("inference.GRPCInferenceService/ModelInfer", metadata, attributes):
            return await self._model_infer(request, context)

    async def _model_infer(self, request: Any, context: Any) -> Any:
        gateway = self.gateway
        start = time.perf_counter()
        name = request.model_name
        inference = None
        try:
            await self._authorize(context, name)
            parsed = to_request(request, gateway.max_body)
            headers = [(k.encode("latin-1"), _bytes(v)) for k, v in context.invocation_metadata() or ()]
            inference = await gateway.run_inference(
                name, request.model_version or None, parsed, headers, None, start
            )
            response = to_response(name, inference)
        except Exception as exc:
            _, status, message = gateway.failure(exc, name, inference)
            await _abort(context, status, message)
        latency = gateway.answered(inference)
        gateway.follow_up(inference, latency)
        return response


def _bytes(value: str | bytes) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


async def _abort(context: Any, status: int, message: str) -> NoReturn:
    await context.abort(STATUS.get(status, grpc.StatusCode.INTERNAL), message)
    raise AssertionError("context.abort returned")  # it raises; this tells the type checker


def _handlers(service: InferenceService) -> Any:
    methods = {}
    for method, (request, response) in {
        "ServerLive": ("ServerLiveRequest", "ServerLiveResponse"),
        "ServerReady": ("ServerReadyRequest", "ServerReadyResponse"),
        "ServerMetadata": ("ServerMetadataRequest", "ServerMetadataResponse"),
        "ModelReady": ("ModelReadyRequest", "ModelReadyResponse"),
        "ModelMetadata": ("ModelMetadataRequest", "ModelMetadataResponse"),
        "ModelInfer": ("ModelInferRequest", "ModelInferResponse"),
    }.items():
        methods[method] = grpc.unary_unary_rpc_method_handler(
            getattr(service, method),
            request_deserializer=MESSAGES[request].FromString,
            response_serializer=MESSAGES[response].SerializeToString,
        )
    return grpc.method_handlers_generic_handler(SERVICE, methods)


async def start_server(gateway: Gateway, host: str, port: int) -> Any:
    """Serve the gateway over gRPC on ``host:port`` (the workers of one gateway share the port).

    Returns:
        The started ``grpc.aio.Server``; stop it with ``await server.stop(grace)``.
    """
    limit = gateway.max_body
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", -1),
            ("grpc.so_reuseport", 1),
        ]
    )
    server.add_generic_rpc_handlers((_handlers(InferenceService(gateway)),))
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if server.add_insecure_port(address) == 0:
        raise OSError(f"the gateway's gRPC port {address} could not be bound")
    await server.start()
    log.info("gateway gRPC on %s", address)
    return server
