"""uvicorn's httptools protocol, writing each response in one piece.

uvicorn writes a response's status line and headers, then its body, with two ``transport.write``
calls: two ``send`` system calls and two wake-ups of the client for a small JSON answer, which at
concurrency 1 on a busy machine is a measurable part of the gateway's latency. This protocol holds
the head until the body arrives and writes both together; a streamed body (``more_body``) is
written as it comes, after the head.

It also tells the gateway how many requests the worker holds (see ``OneWriteHttpToolsProtocol``).
Everything else (parsing, keep-alive, pipelining, flow control, 100-continue) is uvicorn's own:
the protocol only changes the class of each request's ``RequestResponseCycle`` to a subclass
whose ``send`` does the buffering.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

from pave.serving.batching import OPEN_REQUESTS


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

    async def send(self, message: Any) -> None:
        held = self._held
        if held is None:
            if message["type"] == "http.response.start" and not self.response_started:
                held = _Held(self.transport)
                await self._send_into(held, message)
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
