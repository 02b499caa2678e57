"""A two-worker gateway shares a burst of keep-alive connections evenly between its workers.

The gateway runs in a subprocess as `pave up` runs it (on a listening socket the caller holds and
passes down) or as ``python -m pave.serving --workers 2`` runs it (on the master's own socket). Which
worker holds a connection is read from the kernel: the server-side socket of each client
connection is found in ``/proc/net/tcp`` and its owner among the workers' open files.

The burst arrives while both workers are stopped (SIGSTOP), as it does when they are busy: both
then find eight connections pending when they resume.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_server import free_port, write

from pave.cli.supervisor import listen
from pave.serving.loading import resolve

pytestmark = pytest.mark.timeout(600)

# `pave serve` under `pave up`: run_gateway on the socket its supervisor holds.
HELD = """
import os, socket, sys
from pave.config import load_settings
from pave.serving.server import run_gateway
run_gateway(load_settings(), sys.argv[1], workers=2, sock=socket.socket(fileno=int(os.environ["TEST_FD"])))
"""


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def _server_sockets(port: int) -> dict[str, int]:
    """Inode -> client port of every connection to ``port`` that the server side still has open."""
    found = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if int(local.rsplit(":", 1)[1], 16) == port and state != "0A" and inode != "0":  # 0A: LISTEN
                found[f"socket:[{inode}]"] = int(remote.rsplit(":", 1)[1], 16)
    return found


def held_by_process(root: int, port: int, client_ports: set[int] | None = None) -> dict[int, int]:
    """Connections to ``port`` (from ``client_ports``, or all) each process under ``root`` holds open."""
    sockets = {
        inode
        for inode, client in _server_sockets(port).items()
        if client_ports is None or client in client_ports
    }
    held = {}
    for pid in _descendants(root):
        try:
            links = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
        count = sum(link in sockets for link in links)
        if count:
            held[pid] = count
    return held


def _answer(conn: socket.socket) -> bytes:
    """One HTTP response read off a keep-alive connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"the gateway closed the connection: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        body += conn.recv(65536)
    return head.split(b"\r\n", 1)[0] + b" " + body[:200]


def _ask(conn: socket.socket) -> None:
    host, port = conn.getpeername()[:2]
    conn.sendall(f"GET /v2/health/live HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode())


def _wait(condition, what: str, proc: subprocess.Popen[bytes], timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert proc.poll() is None, "the gateway process exited"
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


@pytest.fixture(params=["held", "bound"])
def gateway(request, models, tmp_path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A two-worker gateway serving one model, on a socket held by the caller ("held") or its own."""
    uri = resolve(models.uri("1"), tracking_uri=models.tracking_uri, cache_dir=tmp_path / "models")
    deployments = tmp_path / "deployments.json"
    write(deployments, "1", uri)
    port = free_port()
    env = {
        **os.environ,
        "PAVE_HOME": str(tmp_path / "home"),
        "PAVE_GATEWAY_PORT": str(port),
        "PAVE_GATEWAY_GRPC_PORT": str(free_port()),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    held = None
    if request.param == "held":
        held = listen("127.0.0.1", port)
        env["TEST_FD"] = str(held.fileno())
        command = [sys.executable, "-c", HELD, str(deployments)]
        proc = subprocess.Popen(command, env=env, pass_fds=(held.fileno(),), start_new_session=True)
    else:
        command = [sys.executable, "-m", "pave.serving", "--deployments", str(deployments), "--workers", "2"]
        proc = subprocess.Popen(command, env=env, start_new_session=True)
    try:
        yield proc, port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)
        if held is not None:
            held.close()


def test_a_burst_of_keep_alive_connections_is_split_evenly_between_two_workers(gateway) -> None:
    proc, port = gateway
    # both workers serve: connections kept open until two processes hold some
    warm: list[socket.socket] = []
    try:

        def both_serve() -> bool:
            try:
                conn = socket.create_connection(("127.0.0.1", port), timeout=60)
            except OSError:
                return False
            warm.append(conn)
            _ask(conn)
            status = _answer(conn)
            assert status.startswith(b"HTTP/1.1 200"), status
            return len(held_by_process(proc.pid, port)) == 2

        _wait(both_serve, "the two workers did not both start serving", proc)
    finally:
        for conn in warm:
            conn.close()
    _wait(
        lambda: not held_by_process(proc.pid, port), "the workers did not close the warm-up connections", proc
    )
    workers = [pid for pid in _descendants(proc.pid) if pid != proc.pid]

    for pid in workers:
        os.kill(pid, signal.SIGSTOP)
    burst: list[socket.socket] = []
    try:
        for _ in range(8):
            conn = socket.create_connection(("127.0.0.1", port), timeout=60)
            burst.append(conn)
            _ask(conn)  # the handshake is done by the kernel: the request waits in the socket
    finally:
        for pid in workers:
            os.kill(pid, signal.SIGCONT)
    try:
        for conn in burst:
            status = _answer(conn)
            assert status.startswith(b"HTTP/1.1 200"), status
        client_ports = {conn.getsockname()[1] for conn in burst}
        split = held_by_process(proc.pid, port, client_ports)
        assert sum(split.values()) == 8, split
        assert len(split) == 2, f"one worker holds every connection: {split}"
        assert max(split.values()) - min(split.values()) <= 2, (
            f"connections per worker pid: {split} (4/4 or 5/3)"
        )
    finally:
        for conn in burst:
            conn.close()
