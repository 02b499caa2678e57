"""uvicorn's httptools protocol, writing each response in one piece.

uvicorn writes a response's status line and headers, then its body, with two ``transport.write``
calls: two ``send`` system calls and two wake-ups of the client for a small JSON answer, which at
concurrency 1 on a busy machine is a measurable part of the gateway's latency. This protocol holds
the head until the body arrives and writes both together; a streamed body (``more_body``) is
written as it comes, after the head.

The head of the gateway's usual answer (the header names below, a content length, no access log)
is written here rather than by uvicorn: the same bytes and the same state uvicorn's ``send``
leaves, but its two regular-expression checks per header become one over all the values (a tab,
the separator, is allowed in a value) and a set lookup per name (the names are checked against
uvicorn's rule once, at import). Any other response is uvicorn's to write.

It also tells the gateway how many requests the worker holds (see ``OneWriteHttpToolsProtocol``).
Everything else (parsing, keep-alive, pipelining, flow control, 100-continue) is uvicorn's own:
the protocol only changes the class of each request's ``RequestResponseCycle`` to a subclass
whose ``send`` does the buffering.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from pave.serving import binary
from pave.serving.batching import OPEN_REQUESTS

# The header names the gateway answers with (and uvicorn's own ``server`` and ``date``); not
# ``connection`` or ``transfer-encoding``, which change how uvicorn frames the response.
_NAMES = frozenset(
    name
    for name in (
        b"server",
        b"date",
        b"content-type",
        b"content-length",
        b"content-encoding",
        b"retry-after",
        b"pave-model-version",
        b"pave-inference-id",
        binary.HEADER,
    )
    if not HEADER_RE.search(name) and name == name.lower()
)


class _Held:
    """Stands in for the transport while uvicorn writes part of a response: keeps the bytes."""

    __slots__ = ("chunks", "close_after", "transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.chunks: list[bytes] = []
        self.close_after = False

    def write(self, data: bytes) -> None:
        self.chunks.append(data)

    def close(self) -> None:
        self.close_after = True

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class _OneWriteCycle(RequestResponseCycle):
    _held: _Held | None = None

    async def _send_into(self, held: _Held, message: Any) -> None:
        transport = self.transport
        self.transport = held  # type: ignore[assignment]
        try:
            await super().send(message)
        finally:
            self.transport = transport

    def _head(self, message: Any) -> bytes | None:
        """The status line and headers uvicorn's ``send`` would write for this start message, with
        the state it would leave; None (nothing changed) when it is not the usual answer."""
        line = STATUS_LINE.get(message["status"])
        if (
            line is None
            or self.access_log
            or self.chunked_encoding is not None
            or self.flow.write_paused
            or self.disconnected
        ):
            return None
        content = [line]
        values = []
        length = None
        for headers in (self.default_headers, message.get("headers", ())):
            for name, value in headers:
                if name not in _NAMES:
                    return None
                if name == b"content-length":
                    length = value
                content += (name, b": ", value, b"\r\n")
                values.append(value)
        if length is None or not length.isdigit() or HEADER_VALUE_RE.search(b"\t".join(values)):
            return None  # uvicorn's send frames it or raises its own error
        if not self.keep_alive:
            content.append(b"connection: close\r\n")
        content.append(b"\r\n")
        self.response_started = True
        self.waiting_for_100_continue = False
        self.expected_content_length = int(length)
        self.chunked_encoding = False
        return b"".join(content)

    async def send(self, message: Any) -> None:
        held = self._held
        if held is None:
            if message["type"] == "http.response.start" and not self.response_started:
                held = _Held(self.transport)
                head = self._head(message)
                if head is None:
                    await self._send_into(held, message)
                else:
                    held.chunks.append(head)
                self._held = held
                return
            await super().send(message)
            return
        self._held = None
        await self._send_into(held, message)
        if held.chunks and not self.disconnected:
            self.transport.write(b"".join(held.chunks))
        if held.close_after:
            self.transport.close()


class OneWriteHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose responses leave in one write (pass as uvicorn's ``http``).

    It also puts the worker's set of request tasks in the scope (``OPEN_REQUESTS``): requests
    read and not yet answered, on every connection. The gateway's batcher predicts at once when
    a request is the only one, instead of yielding to the event loop for others to join.
    """

    def on_headers_complete(self) -> None:
        self.scope[OPEN_REQUESTS] = self.server_state.tasks  # type: ignore[literal-required]
        super().on_headers_complete()
        cycle = self.cycle
        if type(cycle) is RequestResponseCycle:
            cycle.__class__ = _OneWriteCycle
