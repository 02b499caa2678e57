"""`pave up` supervises the inference gateway it starts: restarted when it dies, adopted when found.

::

    pave up ──holds the listening socket of the gateway port──┐
      └─ supervisor thread: every 0.2 s, is the gateway alive?  │ (passed down as a file descriptor)
           no  -> kill what is left of its process group,       │
                  start `pave serve` again on the same socket ──┘
           (a gateway found running at start-up is adopted when it answers, replaced when it does not)

The socket stays open in `pave up` while the gateway restarts, so connections that arrive meanwhile
wait in its backlog and are answered by the new gateway: only the requests in flight on the dead
process fail (docs/deploy.md has the numbers). Workers of a several-process gateway are restarted by
the gateway's own master (uvicorn's); a gateway runs in a process group of its own so that the
workers of a master killed with -9 are stopped with it, never left holding the port.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from pave.config import Settings
from pave.errors import ConfigError
from pave.processes import alive

GATEWAY = "gateway"
FD_ENV = "PAVE_GATEWAY_FD"  # the listening socket `pave serve` inherits from its supervisor
SUPERVISOR_ENV = "PAVE_GATEWAY_SUPERVISOR"  # the supervisor's pid, written into the pid file
ADOPT_PROBE_SECONDS = 5.0
MAX_BACKOFF = 30.0
QUICK_DEATH = 10.0  # seconds: a gateway that dies younger than this is restarted with a back-off

log = logging.getLogger("pave.up")


def gateway_pidfile(settings: Settings) -> Path:
    return settings.run_dir / f"{GATEWAY}.json"


def write_gateway_pidfile(settings: Settings) -> None:
    """Written by the gateway process itself (`pave serve`), supervised or not."""
    info = {
        "pid": os.getpid(),
        "pgid": os.getpgid(0),
        "url": settings.gateway_url,
        "started": time.time(),
        "supervisor": int(os.environ[SUPERVISOR_ENV]) if os.environ.get(SUPERVISOR_ENV) else None,
    }
    gateway_pidfile(settings).write_text(json.dumps(info))


def stop_process(pid: int, timeout: float, *, group: bool = False) -> bool:
    """SIGTERM, wait, then SIGKILL (of the whole group when ``group``); True when it stopped in time.

    ``group`` is only for a process that leads its own group (the supervisor starts the gateway so):
    what its workers left behind goes too.
    """
    try:
        os.kill(pid, signal.SIGTERM)
        # a stopped process (and its stopped workers) acts on the SIGTERM only once continued
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGCONT) if group else os.kill(pid, signal.SIGCONT)
    except OSError:
        graceful = True
    else:
        graceful = _wait_gone(pid, timeout)
        if not graceful:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 5.0)
    if group:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
    return graceful


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # reap it if it is our child, so it does not linger as a zombie
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        if not alive(pid):
            return True
        time.sleep(0.05)
    return False


def listen(host: str, port: int, *, wait: float = 0.0) -> socket.socket:
    """The gateway's listening socket, bound here so that it outlives any one gateway process.

    Args:
        host, port: where the gateway listens.
        wait: seconds to keep trying while the port is taken (a gateway just killed releases it
            only once its processes have exited).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + wait
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            break
        except OSError as exc:
            sock.close()
            if time.monotonic() < deadline:
                time.sleep(0.1)
                continue
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint=f"stop what uses it, or pick another port: `pave up --gateway-port {port + 1}`",
            ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class GatewaySupervisor:
    """Starts (or adopts) the gateway of ``settings`` and keeps one running until :meth:`stop`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log_path = settings.home / "logs" / "gateway.log"
        self.restarts = 0
        self._socket: socket.socket | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._adopted: dict[str, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = 0.0
        self._backoff = 0.0
        self._quick_deaths = 0

    @property
    def adopted(self) -> bool:
        """Whether the gateway is one found running (rather than started here)."""
        return self._adopted is not None

    @property
    def pid(self) -> int | None:
        if self._child is not None:
            return self._child.pid
        return int(self._adopted["pid"]) if self._adopted else None

    def prepare(self) -> None:
        """Adopt a running gateway of this home, or bind the port (fails fast when it is taken)."""
        found = _read(gateway_pidfile(self.settings))
        if found is not None and alive(int(found["pid"])):
            pid = int(found["pid"])
            if _answers(str(found.get("url", self.settings.gateway_url))):
                self._adopted = found
                age = time.time() - float(found.get("started") or time.time())
                self._started_at = time.monotonic() - max(0.0, age)
                log.info("adopted the gateway already running for this home (pid %s, %s)", pid, found["url"])
                return
            log.warning("replacing gateway pid %s: it runs but does not answer on %s", pid, found.get("url"))
            stop_process(pid, 10.0, group=found.get("pgid") == pid)
            self._socket = listen(self.settings.gateway_host, self.settings.gateway_port, wait=10.0)
            return
        self._socket = listen(self.settings.gateway_host, self.settings.gateway_port)

    def start(self) -> None:
        if self._adopted is None:
            self._spawn()
        self._thread = threading.Thread(target=self._watch, name="pave-gateway-supervisor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop watching, then stop the gateway (own or adopted) and its workers."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        pid = self.pid
        if pid is not None:
            group = self._child is not None or (self._adopted or {}).get("pgid") == pid
            graceful = stop_process(pid, timeout, group=group)
            log.info("gateway pid %s %s", pid, "stopped" if graceful else f"killed after {timeout:.0f}s")
            found = _read(gateway_pidfile(self.settings))
            if found is not None and int(found["pid"]) == pid:
                gateway_pidfile(self.settings).unlink(missing_ok=True)
        if self._socket is not None:
            self._socket.close()

    # --- the watch loop ------------------------------------------------------------------------------

    def _spawn(self) -> None:
        if self._socket is None:
            self._socket = listen(self.settings.gateway_host, self.settings.gateway_port)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fd = self._socket.fileno()
        env = os.environ | {
            "PAVE_HOME": str(self.settings.home),
            "PAVE_GATEWAY_HOST": self.settings.gateway_host,
            "PAVE_GATEWAY_PORT": str(self.settings.gateway_port),
            "PAVE_GATEWAY_GRPC_PORT": str(self.settings.gateway_grpc_port),
            FD_ENV: str(fd),
            SUPERVISOR_ENV: str(os.getpid()),
        }
        with self.log_path.open("ab") as out:
            self._child = subprocess.Popen(
                [sys.executable, "-m", "pave", "serve"],
                env=env,
                stdout=out,
                stderr=out,
                pass_fds=(fd,),
                start_new_session=True,  # its own group: its workers are stopped with it
            )
        self._started_at = time.monotonic()
        log.info("started the gateway (pid %s) on %s", self._child.pid, self.settings.gateway_url)

    def _watch(self) -> None:
        while not self._stop.wait(0.2):
            try:
                self._check()
            except Exception:  # the supervisor must outlive whatever went wrong this time
                log.exception("gateway supervision failed; trying again")

    def _check(self) -> None:
        if self._child is not None:
            code = self._child.poll()
            if code is None:
                return
            pid = self._child.pid
            how = f"exited with code {code}" if code >= 0 else f"was killed by {signal.Signals(-code).name}"
            self._child = None
        elif self._adopted is not None:
            pid = int(self._adopted["pid"])
            if alive(pid):
                return
            how = "is gone"
            self._adopted = None
        else:
            return
        # what a killed master leaves behind (its workers) would keep the port or serve stale models
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        lived = time.monotonic() - self._started_at
        # the first death restarts at once; a gateway that keeps dying young is retried ever slower
        self._quick_deaths = self._quick_deaths + 1 if lived < QUICK_DEATH else 0
        quick = self._quick_deaths
        self._backoff = 0.0 if quick <= 1 else min(MAX_BACKOFF, 0.5 * 2 ** (quick - 2))
        log.warning(
            "the gateway (pid %s) %s after %.1f s; restarting%s",
            pid,
            how,
            lived,
            f" in {self._backoff:.1f} s" if self._backoff else "",
        )
        if self._stop.wait(self._backoff):
            return
        self.restarts += 1
        if self._socket is None:  # an adopted gateway's workers may hold the port a moment longer
            self._socket = listen(self.settings.gateway_host, self.settings.gateway_port, wait=10.0)
        self._spawn()


def _read(path: Path) -> dict[str, Any] | None:
    try:
        info: dict[str, Any] = json.loads(path.read_text())
        int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def _answers(url: str) -> bool:
    deadline = time.monotonic() + ADOPT_PROBE_SECONDS
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v2/health/live", timeout=1.0).status_code == 200:
                return True
        time.sleep(0.2)
    return False
