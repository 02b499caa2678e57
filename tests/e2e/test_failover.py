"""Two control planes on one PostgreSQL: both serve the API, one leads the background jobs, and
the other takes over when the leader is killed with -9, losing no acknowledged write."""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from pave_testing import PaveServer

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(600)]


def _ready(server: PaveServer) -> dict[str, Any]:
    body: dict[str, Any] = httpx.get(f"{server.url}/readyz", timeout=10).json()
    return body


def _wait(condition: Callable[[], bool], what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _write(
    servers: list[PaveServer], acknowledged: list[str], failed: list[str], stop: threading.Event
) -> None:
    """Create projects through each control plane in turn; a refused connection is not a loss."""
    clients = [server.client() for server in servers]
    i = 0
    while not stop.is_set():
        name = f"fo{i:05d}"
        try:
            response = clients[i % len(clients)].post("/api/v1/projects", json={"name": name})
            (acknowledged if response.status_code == 201 else failed).append(name)
        except httpx.HTTPError:
            failed.append(name)
            time.sleep(0.01)
        i += 1
    for client in clients:
        client.close()


def test_the_other_control_plane_takes_the_jobs_over_when_the_leader_dies(
    postgres_url: str, tmp_path: Path
) -> None:
    first = PaveServer.up(tmp_path / "a", "--no-gateway", PAVE_DATABASE_URL=postgres_url)
    (tmp_path / "b").mkdir()
    shutil.copy(first.home / "credentials.json", tmp_path / "b" / "credentials.json")
    second = PaveServer.up(tmp_path / "b", "--no-gateway", PAVE_DATABASE_URL=postgres_url)
    servers = [first, second]
    try:
        _wait(lambda: sum(_ready(s)["leader"] for s in servers) == 1, "no leader")
        [leader] = [s for s in servers if _ready(s)["leader"]]
        [follower] = [s for s in servers if s is not leader]
        rounds = _ready(leader)["job_rounds"]
        _wait(lambda: _ready(leader)["job_rounds"] >= rounds + 3, "the leader runs no jobs")
        assert _ready(follower)["job_rounds"] == 0, "the jobs ran twice"

        acknowledged: list[str] = []
        failed: list[str] = []
        stop = threading.Event()
        writer = threading.Thread(target=_write, args=(servers, acknowledged, failed, stop))
        writer.start()
        _wait(lambda: len(acknowledged) >= 40, "no writes answered before the kill")
        leader.kill()  # SIGKILL: no shutdown, no lease released by hand
        killed_at = time.monotonic()
        _wait(lambda: _ready(follower)["leader"], "the follower never took the lease over")
        print(f"failover: {time.monotonic() - killed_at:.2f} s")
        before = len(acknowledged)
        _wait(lambda: len(acknowledged) >= before + 40, "no writes answered after the kill")
        taken = _ready(follower)["job_rounds"]
        _wait(lambda: _ready(follower)["job_rounds"] >= taken + 3, "the new leader runs no jobs")
        stop.set()
        writer.join(timeout=60)

        with follower.client() as client:
            stored = {p["name"] for p in client.get("/api/v1/projects").json()}
        missing = [name for name in acknowledged if name not in stored]
        assert missing == [], f"{len(missing)} acknowledged writes lost"

        leader.start()  # back, as a follower: the lease stays where it is
        time.sleep(3)
        assert _ready(follower)["leader"]
        assert not _ready(leader)["leader"]
    finally:
        for server in servers:
            server.stop()
