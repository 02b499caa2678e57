"""`kill -9` in the middle of a stream of writes loses no acknowledged write."""

from __future__ import annotations

import threading
from collections.abc import Callable

import httpx
import pytest

from pave_testing import PaveServer

pytestmark = pytest.mark.slow


def _stream_writes(server: PaveServer, acknowledged: list[str], stop: threading.Event) -> None:
    with server.client() as client:
        i = 0
        while not stop.is_set():
            name = f"p{i:05d}"
            try:
                response = client.post("/api/v1/projects", json={"name": name})
            except httpx.HTTPError:
                return  # the server died under us: what was acknowledged is what counts
            if response.status_code == 201:
                acknowledged.append(name)
            i += 1


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_9_loses_no_acknowledged_write(
    backend: str, pave_server_factory: Callable[..., PaveServer], request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if backend == "postgres" else None
    server = pave_server_factory(url)
    acknowledged: list[str] = []
    stop = threading.Event()
    writer = threading.Thread(target=_stream_writes, args=(server, acknowledged, stop))
    writer.start()
    while len(acknowledged) < 50:
        writer.join(timeout=0.05)
        assert writer.is_alive(), "the writer stopped before the crash"
    server.kill()  # SIGKILL: no shutdown handler runs
    stop.set()
    writer.join(timeout=30)
    server.start()
    with server.client() as client:
        stored = {p["name"] for p in client.get("/api/v1/projects").json()}
    missing = [name for name in acknowledged if name not in stored]
    assert missing == [], f"{len(missing)} acknowledged writes lost"
