"""Making an engine on an SQLite file this process already uses must not drop its locks on it.

Closing any descriptor of a file drops every POSIX lock the process holds on that file, SQLite's
included. ``make_engine`` once opened and closed the database file to set its mode, so a second
engine made while a connection of the same process held a lock (a tuning's study opened again by
the next tuning, a Ray worker's reporter) let other processes write under it: Optuna's SQLite
study was corrupted ("database disk image is malformed") in about two runs of five of
``test_a_tuning_reuses_the_pool_workers_of_the_last_and_pave_down_stops_them``.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from pave.store.db import make_engine

TRY_WRITE = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    connection.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print(exc)
else:
    print("took the write lock")
"""


def test_a_second_engine_leaves_this_process_s_write_lock_in_place(tmp_path: Path) -> None:
    path = tmp_path / "study.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # this process holds the write lock
    holder.execute("INSERT INTO t VALUES (1)")

    make_engine(f"sqlite:///{path}").dispose()

    other = subprocess.run([sys.executable, "-c", TRY_WRITE, str(path)], capture_output=True, text=True)
    assert other.stdout.strip() == "database is locked", other.stdout + other.stderr
    holder.execute("COMMIT")
    holder.close()
