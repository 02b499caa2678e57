"""Reading a request body on the gateway's REST routes: size, media type, encoding, binary format.

One read for every REST protocol (OIP v2, KServe V1, explanations): the declared and the streamed
size are held to the limit, a body that is neither JSON nor in the binary tensor format is refused
unread (a pickle is never parsed), and a gzip or deflate body is inflated within the limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pave.errors import InvalidInput, PayloadTooLarge, UserError
from pave.serving import binary, compression
from pave.serving.protocol import InferenceRequest, parse_request


class Disconnected(Exception):
    """The client went away before its body was read."""


@dataclass(slots=True)
class Body:
    """A request body as read, with the headers that say how to read it."""

    data: bytes = b""
    content_type: bytes | None = None
    binary_header: bytes | None = None  # Inference-Header-Content-Length: the binary tensor extension
    encoding: bytes | None = None  # Content-Encoding
    accept_encoding: bytes | None = None

    def parse(self) -> InferenceRequest:
        """The OIP inference request, JSON or in the binary tensor format.

        Raises:
            InvalidInput: not a valid request; the message names what is wrong.
        """
        if self.binary_header is None:
            return parse_request(self.data)
        document, tail = binary.split(self.data, self.binary_header)
        request = parse_request(document)
        binary.attach_inputs(request.inputs, tail)
        return request


async def read_body(scope: dict[str, Any], receive: Any, limit: int) -> Body:
    """The body of an ASGI request and what its headers say about it.

    Raises:
        InvalidInput: a malformed header or compressed body.
        PayloadTooLarge: more than ``limit`` bytes, declared, sent or inflated.
        UnsupportedMediaType: neither JSON nor the binary tensor format; an unknown encoding.
        Disconnected: the client left.
    """
    body = Body()
    for name, value in scope["headers"]:
        if name == b"content-type":
            body.content_type = value
        elif name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                raise InvalidInput("invalid Content-Length header") from None
            if declared > limit:
                raise PayloadTooLarge(f"request body of {declared} bytes is over the limit of {limit}")
        elif name == binary.HEADER:
            body.binary_header = value
        elif name == b"content-encoding":
            body.encoding = value
        elif name == b"accept-encoding":
            body.accept_encoding = value
    content_type = body.content_type
    if content_type is not None and not _is_json(content_type) and body.binary_header is None:
        raise UnsupportedMediaType(
            f"content type {content_type.decode('latin-1')[:100]!r} is not accepted; send the "
            "request as application/json, or in the binary tensor format (Inference-Header-"
            "Content-Length)"
        )
    if body.encoding is not None and not compression.accepted(body.encoding):
        compression.inflate(b"", body.encoding, 0)  # raises the refusal naming the encoding
    message = await receive()
    if message["type"] == "http.disconnect":
        raise Disconnected
    data: bytes = message.get("body", b"")
    if message.get("more_body", False):
        chunks = [data]
        size = len(data)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        data = b"".join(chunks)
    elif len(data) > limit:
        raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    if body.encoding is not None:
        data = compression.inflate(data, body.encoding, limit)
    body.data = data
    return body


def _is_json(content_type: bytes) -> bool:
    """``application/json`` or a ``+json`` type, parameters (charset) aside."""
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class UnsupportedMediaType(UserError):
    status_code = 415
    code = "unsupported_media_type"
