"""Pave's uvicorn protocol: a response leaves in one write; the app learns the open requests."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

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


# Responses of every shape the protocol writes itself or leaves to uvicorn: path -> (status, headers)
SHAPES: dict[str, tuple[int, list[tuple[bytes, bytes]]]] = {
    "/answer": (
        200,
        [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(BODY)).encode()),
            (b"pave-model-version", b"3"),
            (b"pave-inference-id", b"0123456789abcdef"),
        ],
    ),
    "/limited": (429, [(b"content-length", str(len(BODY)).encode()), (b"retry-after", b"2")]),
    "/custom": (200, [(b"x-custom", b"a\tb"), (b"content-length", str(len(BODY)).encode())]),
    "/upper": (200, [(b"Content-Length", str(len(BODY)).encode())]),
    "/close": (200, [(b"content-length", str(len(BODY)).encode()), (b"connection", b"close")]),
    "/bad": (200, [(b"content-length", str(len(BODY)).encode()), (b"pave-inference-id", b"a\nb")]),
}


class Shapes:
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await receive()
        status, headers = SHAPES[scope["path"]]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": BODY})


def _serve(app: Any, protocol: type[HttpToolsProtocol]) -> tuple[uvicorn.Server, threading.Thread, int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http=protocol,
        log_level="critical",
        lifespan="off",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        assert thread.is_alive(), "the server did not start"
        time.sleep(0.01)
    return server, thread, port


def _raw(port: int, request: bytes) -> bytes:
    """Everything the server sends until it closes or a second passes without a byte."""
    with socket.create_connection(("127.0.0.1", port)) as conn:
        conn.sendall(request)
        conn.settimeout(1.0)
        data = b""
        try:
            while chunk := conn.recv(65536):
                data += chunk
        except TimeoutError:
            pass
    return re.sub(rb"date: [^\r]*\r\n", b"", data)


@pytest.mark.parametrize("path", sorted(SHAPES))
@pytest.mark.parametrize("extra", [b"", b"Connection: close\r\n"], ids=["keep-alive", "close"])
@pytest.mark.parametrize("method", [b"POST", b"HEAD"])
def test_the_head_written_by_pave_is_byte_for_byte_uvicorns(path: str, extra: bytes, method: bytes) -> None:
    request = method + b" " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n" + extra
    request += b"Content-Length: 2\r\n\r\n{}" if method == b"POST" else b"\r\n"
    answers = []
    for protocol in (HttpToolsProtocol, OneWriteHttpToolsProtocol):
        server, thread, port = _serve(Shapes(), protocol)
        try:
            answers.append(_raw(port, request))
        finally:
            server.should_exit = True
            thread.join(timeout=10)
    assert answers[0] == answers[1]
    if path == "/bad":
        assert b"HTTP/1.1 200" not in answers[1]  # uvicorn refused the header value, as before
    else:
        assert answers[1].startswith(b"HTTP/1.1 ")


@pytest.fixture
def served() -> Iterator[tuple[App, int, list[bytes]]]:
    """A real uvicorn server with Pave's protocol; every transport write is recorded."""
    app = App()
    writes: list[bytes] = []

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

    server, thread, port = _serve(app, Recording)
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
