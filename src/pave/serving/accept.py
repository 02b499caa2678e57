"""Several gateway workers accepting from one listening socket, each taking its share of connections.

The gateway's workers (uvicorn's ``Multiprocess``) all serve one listening socket: the master's own,
or the one `pave up` holds so that the port stays open while the gateway restarts
(``pave.cli.supervisor``). Left to uvloop, a worker woken by a new connection accepts every pending
one in a loop (libuv accepts until ``EAGAIN``): eight keep-alive connections opened at once by a
benchmark or a client pool land 8/0 or 7/1, and the busy worker serves alone while the other idles,
which made the p99 at c=8 of two workers three times that of one.

Here each worker accepts through its own event loop instead of uvloop's server:

- ``add_reader`` on the shared socket, and one non-blocking ``accept`` per wake-up, handed to
  uvicorn's own protocol with ``loop.connect_accepted_socket`` (the same transport and protocol
  uvloop's server would have made: the per-request path is unchanged);
- before accepting, the worker compares the connections it holds with the other workers' in a
  tiny shared table (one 8-byte memory-mapped file per worker, named by its pid, in a directory of
  the gateway's own, ``PAVE_GATEWAY_CONNECTIONS``); when another live worker holds fewer, it stops
  watching the socket for ``WAIT`` seconds and lets that worker take the connection, then looks
  again. After ``MAX_WAITS`` looks it accepts anyway: a worker that is stopped, hung or busy in a
  long request delays a new connection by a few tens of milliseconds at most, never refuses it.

Weighed and not chosen: per-worker ``SO_REUSEPORT`` sockets, where the kernel spreads connections by
a hash of their addresses: eight connections land 4/4 only about a quarter of the time (5/3 or
worse the rest), and a socket held by `pave up` in the same group would take its share of
connections that no process accepts; the held socket (and its backlog across restarts) would be lost.
``EPOLLEXCLUSIVE`` wakes one worker per connection but is not reachable through libuv, and the
worker woken still drains the whole backlog.

Only the multi-worker gateway uses this (``run_gateway`` selects the loop); one worker has no one
to share with and keeps uvloop's server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import mmap
import os
import socket
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop

from pave.processes import alive

# The directory of the workers' connection counts; set by ``run_gateway`` before the workers start.
CONNECTIONS_ENV = "PAVE_GATEWAY_CONNECTIONS"
WAIT = 0.001  # seconds a worker holding more than another leaves a pending connection to it
MAX_WAITS = 50  # then it accepts anyway (a worker that does not accept must not stall clients)
ACCEPT_RETRY = 1.0  # seconds without accepting after accept() failed (e.g. out of file descriptors)
_COUNT = struct.Struct("q")

log = logging.getLogger("pave.gateway")


def _map(path: Path, *, create: bool) -> mmap.mmap:
    fd = os.open(path, os.O_RDWR | (os.O_CREAT | os.O_TRUNC if create else 0), 0o600)
    try:
        if create:
            os.ftruncate(fd, _COUNT.size)
        return mmap.mmap(fd, _COUNT.size)
    finally:
        os.close(fd)


class ConnectionTable:
    """How many connections each live worker of this gateway holds; this worker's entry is written here."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.name = str(os.getpid())
        self.count = 0
        self._own = _map(directory / self.name, create=True)
        self._peers: dict[str, mmap.mmap] = {}

    def add(self, delta: int) -> None:
        self.count = max(0, self.count + delta)
        if not self._own.closed:  # closed: the worker stopped accepting, no one reads it any more
            _COUNT.pack_into(self._own, 0, self.count)

    def fewest_elsewhere(self) -> int | None:
        """The fewest connections another live worker holds (None: no other worker accepts)."""
        fewest: int | None = None
        try:
            names = set(os.listdir(self.directory))
        except OSError:
            return None
        for name in list(self._peers):
            if name not in names:
                self._peers.pop(name).close()
        for name in names:
            if name == self.name or not name.isdigit():
                continue
            if not alive(int(name)):  # a worker killed with -9 left its entry
                with contextlib.suppress(OSError):
                    (self.directory / name).unlink()
                continue
            peer = self._peers.get(name)
            if peer is None:
                try:
                    peer = self._peers[name] = _map(self.directory / name, create=False)
                except (OSError, ValueError):  # removed meanwhile, or not yet sized
                    continue
            held = _COUNT.unpack_from(peer, 0)[0]
            fewest = held if fewest is None else min(fewest, held)
        return fewest

    def close(self) -> None:
        with contextlib.suppress(OSError):
            (self.directory / self.name).unlink()
        self._own.close()
        for peer in self._peers.values():
            peer.close()
        self._peers.clear()


class BalancedListener:
    """Accepts from a shared listening socket on ``loop``, in place of the ``asyncio.Server`` of uvicorn."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol_factory: Callable[[], asyncio.Protocol],
        sock: socket.socket,
        table: ConnectionTable,
        backlog: int = 100,
    ) -> None:
        self.loop = loop
        self.protocol_factory = protocol_factory
        self.sock = sock
        self.sockets = [sock]
        self.table = table
        self._waits = 0
        self._closed = False
        sock.listen(backlog)  # uvicorn's master binds without listening; a held socket listens already
        sock.setblocking(False)
        loop.add_reader(sock.fileno(), self._readable)

    def _pause(self, seconds: float) -> None:
        self.loop.remove_reader(self.sock.fileno())
        self.loop.call_later(seconds, self._resume)

    def _resume(self) -> None:
        if not self._closed:
            self.loop.add_reader(self.sock.fileno(), self._readable)

    def _readable(self) -> None:
        fewest = self.table.fewest_elsewhere()
        if fewest is not None and self.table.count > fewest and self._waits < MAX_WAITS:
            self._waits += 1
            self._pause(WAIT)
            return
        self._waits = 0
        try:
            conn, _ = self.sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the client gave up
        except OSError as exc:  # out of file descriptors or memory: the clients wait in the backlog
            log.error("cannot accept connections, trying again in %.0f s: %s", ACCEPT_RETRY, exc)
            self._pause(ACCEPT_RETRY)
            return
        conn.setblocking(False)
        self.table.add(1)
        self.loop.create_task(self._serve(conn))

    async def _serve(self, conn: socket.socket) -> None:
        try:
            await self.loop.connect_accepted_socket(self._counted, conn)
        except Exception:
            self.table.add(-1)
            conn.close()
            log.exception("a new connection could not be served")

    def _counted(self) -> asyncio.Protocol:
        """uvicorn's protocol, whose ``connection_lost`` also takes the connection off the table."""
        protocol = self.protocol_factory()
        lost = protocol.connection_lost
        table = self.table

        def connection_lost(exc: Exception | None) -> None:
            try:
                lost(exc)
            finally:
                table.add(-1)

        protocol.connection_lost = connection_lost  # type: ignore[method-assign]
        return protocol

    def close(self) -> None:
        """Stop accepting (the socket is uvicorn's to close); the others take every new connection."""
        if self._closed:
            return
        self._closed = True
        self.loop.remove_reader(self.sock.fileno())
        self.table.close()

    async def wait_closed(self) -> None:
        return None


class BalancedLoop(uvloop.Loop):
    """uvloop, serving a listening socket handed to ``create_server`` through a ``BalancedListener``.

    uvicorn's ``loop`` option ``"pave.serving.accept:BalancedLoop"`` selects it (``run_gateway``).

    Only when ``PAVE_GATEWAY_CONNECTIONS`` names the workers' table (a multi-worker gateway) and the
    socket is given (uvicorn's workers get the master's); everything else is uvloop's own.
    """

    async def create_server(  # type: ignore[override]
        self, protocol_factory: Callable[[], asyncio.Protocol], *args: Any, **kwargs: Any
    ) -> Any:
        directory = os.environ.get(CONNECTIONS_ENV)
        sock = kwargs.get("sock")
        if not directory or sock is None or args or kwargs.get("ssl") is not None:
            return await super().create_server(protocol_factory, *args, **kwargs)
        table = ConnectionTable(Path(directory))
        return BalancedListener(self, protocol_factory, sock, table, kwargs.get("backlog", 100))
