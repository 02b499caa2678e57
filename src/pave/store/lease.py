"""The leader lease: which control plane runs the platform's background jobs.

Several control planes may serve one PostgreSQL database; the periodic jobs (rollout steps,
monitoring, the closed loop, retention) must run in exactly one of them. The lease is a
session-level PostgreSQL advisory lock held on a connection of its own:

- every second each control plane either confirms it still holds the lock (a ``SELECT 1`` on that
  connection) or tries to take it (``pg_try_advisory_lock``, which never waits);
- when the leader dies, even by ``kill -9``, its connection closes and PostgreSQL releases the lock
  at once, so another control plane takes it on its next try (about a second);
- when the leader's connection fails, it stops leading before its next job round.

The key is derived from the schema, so platforms sharing a database in different schemas (tests
do) each have their own leader. On SQLite there is one process, and it is the leader.
"""

from __future__ import annotations

import contextlib
import logging
import threading

from sqlalchemy import Connection, Engine, text

log = logging.getLogger("pave")
_TRY = text("SELECT pg_try_advisory_lock(hashtext('pave-leader:' || current_schema()))")


class Lease:
    """One process's view of the lease; :meth:`hold` is called before each round of jobs.

    Args:
        engine: the platform's metadata database engine.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.shared = engine.dialect.name == "postgresql"
        self._conn: Connection | None = None
        self._leading = not self.shared
        self._lock = threading.Lock()

    @property
    def leading(self) -> bool:
        """Whether this process held the lease at its last check."""
        return self._leading

    def hold(self) -> bool:
        """Confirm or try to take the lease; True when this process may run the jobs now."""
        if not self.shared:
            return True
        with self._lock:
            try:
                if self._conn is None:
                    self._conn = self.engine.connect()
                    self._conn.execution_options(isolation_level="AUTOCOMMIT")
                if self._leading:
                    self._conn.execute(text("SELECT 1"))
                else:
                    self._leading = bool(self._conn.execute(_TRY).scalar())
                    if self._leading:
                        log.info("this control plane now leads the background jobs")
            except Exception as exc:
                if self._leading:
                    log.warning("lost the background-jobs lease (%s); another control plane takes over", exc)
                self._drop()
            return self._leading

    def release(self) -> None:
        """Give the lease up (on shutdown), so another control plane takes it without waiting."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        self._leading = not self.shared
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()  # closes it: PostgreSQL releases a lock it held
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None
