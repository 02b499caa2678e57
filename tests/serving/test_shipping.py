"""The inference log shipped through the object store: files wait in the spool while the store is
away and ship when it is back; a control plane mirrors them into the folder its readers read."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from sqlalchemy import select

from pave.config import Settings
from pave.serving.inference_log import InferenceLog, Record, read_inference_log
from pave.serving.shipping import LogShipper, Mirror
from pave.store import migrate
from pave.store.db import make_engine, session_factory
from pave.store.tables import InferenceSegmentRow


def _wait(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _record(i: int) -> Record:
    return Record(
        f"r{i}",
        "churn",
        "1",
        time.time(),
        0.001,
        np.array([[1.0, 2.0]]),
        ("a", "b"),
        {"predict": np.array([i % 2])},
    )


def test_files_wait_in_the_spool_while_the_store_is_away_then_ship_and_mirror(tmp_path: Path) -> None:
    store = tmp_path / "object-store"
    store.write_text("not a folder: every write to the store fails")  # the store is away
    url = f"sqlite:///{tmp_path}/pave.db"
    gateway = Settings(home=tmp_path / "gateway", database_url=url, artifact_root=str(store))
    engine = make_engine(url)
    migrate.upgrade(engine, tmp_path)
    sessions = session_factory(engine)

    spool = gateway.home / "spool"
    shipper = LogShipper(gateway, spool, engine)
    log = InferenceLog(spool, max_age=0.2, on_closed=shipper.closed)
    log.start()
    shipper.start()
    try:
        for i in range(10):
            log.record(_record(i))
        log.flush()
        _wait(lambda: shipper.failures >= 1, "no attempt to ship")
        assert list(spool.glob("inference-*.jsonl")), "the file waits in the spool"
        with sessions() as session:
            assert session.scalars(select(InferenceSegmentRow)).all() == []

        store.unlink()
        store.mkdir()  # the store is back
        _wait(lambda: shipper.shipped >= 1, "never shipped once the store was back")
        _wait(lambda: not list(spool.glob("inference-*.jsonl")), "the spool keeps a shipped file")
    finally:
        log.close()
        shipper.close()
    with sessions() as session:
        [segment] = session.scalars(select(InferenceSegmentRow)).all()
    assert segment.records == 10
    assert segment.key.startswith("inference-log/")
    assert (store / segment.key).is_file()

    # a control plane on another home mirrors it and reads it like its own log
    control = Settings(home=tmp_path / "control-plane", database_url=url, artifact_root=str(store))
    control.ensure_home()
    assert Mirror(control).pull(sessions) == 1
    assert Mirror(control).pull(sessions) == 0, "mirrored once (the last id is kept)"
    frame = read_inference_log(control.inference_log_dir, deployment="churn")
    assert sorted(frame["id"]) == sorted(f"r{i}" for i in range(10))
    engine.dispose()


def test_a_dead_workers_leftover_file_is_shipped_by_the_next_shipper(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/pave.db"
    settings = Settings(home=tmp_path / "gateway", database_url=url, artifact_root=str(tmp_path / "store"))
    (tmp_path / "store").mkdir()
    engine = make_engine(url)
    migrate.upgrade(engine, tmp_path)
    spool = settings.home / "spool"
    log = InferenceLog(spool)
    log.start()
    log.record(_record(1))
    log.close()
    [left] = spool.glob("inference-*.jsonl")
    dead = left.with_name(left.name.replace(f"-{os.getpid()}-", "-999999999-"))  # a pid nobody has
    shutil.move(left, dead)

    shipper = LogShipper(settings, spool, engine)
    shipper.start()
    try:
        _wait(lambda: shipper.shipped == 1, "the leftover was not shipped")
    finally:
        shipper.close()
    assert not list(spool.glob("inference-*.jsonl"))
    engine.dispose()
