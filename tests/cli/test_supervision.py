"""`pave up` supervises its gateway: kill -9 drills of a worker, the whole gateway and `pave up` itself.

One platform for the file (a template project trained and deployed once, two gateway workers);
the drills run in order on it. Each keeps a client sending predictions through the kill and checks
that requests are answered before and after; the failures during recovery are measured by
``benchmarks/recovery.py`` (docs/deploy.md), not bounded here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from pave_testing import PaveServer, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
NAME = "sup"


@dataclass
class Served:
    server: PaveServer
    body: dict[str, Any]

    def gateway(self) -> dict[str, Any]:
        """The pid file of the gateway (written by the gateway once it starts)."""
        path = self.server.home / "run" / "gateway.json"
        _wait(path.exists, "the gateway wrote no pid file")
        info: dict[str, Any] = json.loads(path.read_text())
        return info

    def infer(self, client: httpx.Client) -> int:
        url = f"{self.server.gateway_url}/v2/models/{NAME}/infer"
        return client.post(url, json=self.body, headers=self.server.gateway_headers).status_code

    def platform_log(self) -> str:
        return (self.server.home / "logs" / "platform.log").read_text()


@dataclass
class Stream:
    """A client sending predictions one after another, counting answers and failures."""

    served: Served
    answered: int = 0
    failed: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                try:
                    ok = self.served.infer(client) == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    self.answered += 1
                else:
                    self.failed += 1
                    time.sleep(0.01)

    def wait_answered(self, more: int, timeout: float = 120) -> None:
        target = self.answered + more
        deadline = time.monotonic() + timeout
        while self.answered < target:
            assert time.monotonic() < deadline, f"{self.answered} answered, {self.failed} failed"
            time.sleep(0.05)


@contextlib.contextmanager
def streaming(served: Served) -> Iterator[Stream]:
    stream = Stream(served)
    thread = threading.Thread(target=stream.run, daemon=True)
    thread.start()
    try:
        stream.wait_answered(20)  # answered before
        yield stream
    finally:
        stream.stop.set()
        thread.join(timeout=60)


def _children(pid: int) -> set[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return set()
    return {int(child) for child in text.split()}


def _workers(pid: int) -> set[int]:
    return {c for c in _children(pid) if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # a zombie is gone too: it only waits for its parent to read its status
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    return True


def _wait(condition: Any, what: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("supervised")
    server = PaveServer.up(home, PAVE_GATEWAY_WORKERS="2")
    env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
    project = home / "project"
    assert (
        run_pave("new", NAME, "-t", "tabular-classification", "--dir", str(project), env=env).returncode == 0
    )
    ran = run_pave("run", str(project), "--json", env=env, timeout=600)
    assert ran.returncode == 0, ran.stderr[-2000:]
    deployed = run_pave("deploy", NAME, "--version", "1", env=env)
    assert deployed.returncode == 0, deployed.stderr
    rows = pd.read_csv(project / "data" / "train.csv").drop(columns=["target"]).head(3)
    body = {
        "inputs": [
            {"name": c, "datatype": "FP64", "shape": [len(rows)], "data": rows[c].astype(float).tolist()}
            for c in rows.columns
        ]
    }
    result = Served(server, body)
    with httpx.Client(timeout=30) as client:
        _wait(lambda: result.infer(client) == 200, "the deployment is not served")
    yield result
    server.stop()


def test_a_worker_killed_with_9_is_replaced(served: Served) -> None:
    master = int(served.gateway()["pid"])
    before = _workers(master)
    assert len(before) == 2, before
    with streaming(served) as stream:
        victim = min(before)
        os.kill(victim, signal.SIGKILL)
        _wait(lambda: len(_workers(master) - before) == 1, "the killed worker was not replaced")
        stream.wait_answered(50)  # answered after
    assert int(served.gateway()["pid"]) == master, "the gateway itself stayed"


def test_the_gateway_killed_with_9_is_restarted_without_its_workers(served: Served) -> None:
    old = served.gateway()
    master = int(old["pid"])
    old_workers = _workers(master)
    with streaming(served) as stream:
        os.kill(master, signal.SIGKILL)
        _wait(lambda: int(served.gateway()["pid"]) != master, "no new gateway")
        stream.wait_answered(50)
    new = served.gateway()
    assert new["supervisor"] == served.server.process.pid  # type: ignore[union-attr]
    _wait(lambda: all(_gone(w) for w in old_workers), "the dead gateway's workers live on")
    assert f"the gateway (pid {master}) was killed by SIGKILL" in served.platform_log()


def test_a_restarted_pave_up_adopts_or_replaces_its_gateway_and_down_stops_all(served: Served) -> None:
    server = served.server
    with streaming(served) as stream:
        server.kill()  # pave up dies: inference goes on
        stream.wait_answered(50)
    # a gateway that runs but does not answer is replaced
    frozen = int(served.gateway()["pid"])
    os.killpg(frozen, signal.SIGSTOP)
    server.start()
    assert f"replacing gateway pid {frozen}: it runs but does not answer" in served.platform_log()
    _wait(lambda: _gone(frozen), "the frozen gateway was left running")
    # one that answers is adopted, and supervised from then on
    server.wait_gateway()
    server.kill()
    adopted = int(served.gateway()["pid"])
    server.start()
    assert f"adopted the gateway already running for this home (pid {adopted}" in served.platform_log()
    with streaming(served) as stream:
        os.kill(adopted, signal.SIGKILL)
        _wait(lambda: int(served.gateway()["pid"]) != adopted, "the adopted gateway was not restarted")
        stream.wait_answered(50)
    gateway = int(served.gateway()["pid"])
    workers = _workers(gateway)
    down = run_pave("down", env=server.env)
    assert down.returncode == 0, down.stderr
    assert server.process is not None
    assert server.process.wait(timeout=60) == 0
    for pid in (gateway, *workers):
        _wait(lambda pid=pid: _gone(pid), f"pid {pid} still runs after pave down")
    assert "stopping: received SIGTERM" in served.platform_log()
    assert not (server.home / "run" / "gateway.json").exists()
