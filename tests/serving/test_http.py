"""Pave's uvicorn protocol: a response leaves in one write; the app learns the open requests."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from pave.serving.batching import OPEN_REQUESTS
from pave.serving.http import OneWriteHttpToolsProtocol

BODY = b'{"answer":42}'


class App:
    """Answers every request; remembers what the server told it and how many writes it made."""

    def __init__(self) -> None:
        self.open_requests: list[int | None] = []
        self.writes: list[int] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        tasks = scope.get(OPEN_REQUESTS)
        self.open_requests.append(None if tasks is None else len(tasks))
        await receive()
        if scope["path"] == "/stream":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for part in (b"a", b"b", b"c"):
                await send({"type": "http.response.body", "body": part, "more_body": part != b"c"})
            return
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})


@pytest.fixture
def served() -> Iterator[tuple[App, int, list[bytes]]]:
    """A real uvicorn server with Pave's protocol; every transport write is recorded."""
    app = App()
    writes: list[bytes] = []
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    class Recording(OneWriteHttpToolsProtocol):
        def connection_made(self, transport: Any) -> None:
            write = transport.write

            class Spy:
                def __getattr__(self, name: str) -> Any:
                    return getattr(transport, name)

                def write(self, data: bytes) -> None:
                    writes.append(bytes(data))
                    write(data)

            super().connection_made(Spy())  # type: ignore[arg-type]

    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=Recording, log_level="warning", lifespan="off"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    yield app, port, writes
    server.should_exit = True
    thread.join(timeout=10)


def _exchange(port: int, raw: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(raw)
        data = b""
        while not data.endswith(BODY) and not data.endswith(b"0\r\n\r\n"):
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        return data


def test_a_response_leaves_in_one_write_and_the_app_sees_the_open_requests(served):
    app, port, writes = served
    request = b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    for _ in range(3):
        answer = _exchange(port, request)
        assert answer.startswith(b"HTTP/1.1 200")
        assert answer.endswith(BODY)
    responses = [w for w in writes if w.startswith(b"HTTP/1.1")]
    assert len(responses) == 3
    assert all(w.endswith(BODY) for w in responses), writes  # head and body together
    assert writes == responses  # and nothing written on its own
    assert app.open_requests == [1, 1, 1]  # one request at a time: each was alone


def test_pipelined_requests_and_streamed_bodies_still_work(served):
    _, port, writes = served
    one = b"POST /infer HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(one * 3)
        data = b""
        while data.count(BODY) < 3:
            chunk = conn.recv(65536)
            assert chunk, data
            data += chunk
    assert data.count(b"HTTP/1.1 200") == 3
    assert [w.endswith(BODY) for w in writes] == [True] * 3  # each pipelined answer in one write
    streamed = _exchange(port, b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    assert streamed.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in streamed
    assert streamed.endswith(b"1\r\na\r\n1\r\nb\r\n1\r\nc\r\n0\r\n\r\n")
