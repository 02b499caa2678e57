"""The monitoring store on the real PostgreSQL: index, labels, performance, alerts and deliveries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from monitoring_kit import DRIFT, StaticSpecs, traffic, write_log
from sqlalchemy import select

from pave.config import Settings
from pave.data.profile import profile_frame
from pave.monitoring.feedback import Label, record_feedback
from pave.monitoring.ingest import ingest
from pave.monitoring.performance import performance_by_version
from pave.monitoring.scheduler import Monitoring, Scheduler
from pave.monitoring.spec import MonitorSpec
from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory
from pave.store.tables import AlertRow, DeploymentRow, Project

pytestmark = pytest.mark.postgres


def test_labels_performance_and_alerts_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    engine = make_engine(postgres_url)
    check_connection(engine)
    migrate.upgrade(engine, tmp_path)
    sessions = session_factory(engine)
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    log_dir = tmp_path / "log"
    with sessions() as session, session.begin():
        session.add(Project(name="churn", owner="admin", created_by="admin"))
        spec = {"name": "churn", "versions": [{"version": "1", "uri": "x", "weight": 100.0}]}
        session.add(DeploymentRow(name="churn", project="churn", spec=spec, created_by="t", updated_by="t"))

    ids = write_log(
        log_dir, "churn", "1", pd.DataFrame({"x": [1.0, 2.0, 3.0]}), {"predict": np.array([1, 0, 1])}
    )
    assert ingest(sessions, log_dir) == 3
    assert ingest(sessions, log_dir) == 0  # read once: the cursor moved
    with sessions() as session, session.begin():
        labels = [Label(i, v) for i, v in zip(ids, [1, 1, 1], strict=True)]
        assert record_feedback(session, labels, actor="t", may_write=lambda _: True)["created"] == 3
    with sessions() as session, session.begin():
        again = record_feedback(session, [Label(ids[1], 0)], actor="t", may_write=lambda _: True)
        assert again["updated"] == 1
    since = datetime.now(UTC) - timedelta(hours=1)
    perf = performance_by_version(settings, sessions, "churn", since=since)
    assert perf["1"].metrics["accuracy"] == pytest.approx(1.0)

    monitoring = Monitoring(
        MonitorSpec.model_validate({"monitors": [{**DRIFT, "method": "psi"}]}),
        {"train": profile_frame(traffic(5_000, seed=0))},
        "1",
    )
    scheduler = Scheduler(sessions, settings, specs=StaticSpecs("churn", monitoring), log_directory=log_dir)
    now = datetime.now(UTC) - timedelta(minutes=30)
    frame = traffic(1_000, seed=7, shift={"income": 2.0})
    write_log(
        log_dir,
        "churn",
        "1",
        frame,
        {"predict": np.zeros(len(frame), dtype=int)},
        rows_per_request=50,
        ts=now.timestamp(),
    )
    scheduler.tick(now + timedelta(seconds=1))
    scheduler.tick(now + timedelta(minutes=6))
    with sessions() as session:
        alerts = list(session.scalars(select(AlertRow).where(AlertRow.project == "churn")))
    assert [(a.subject, a.status) for a in alerts] == [("income", "open")]
    assert alerts[0].last_seen_at == now + timedelta(minutes=6)
    engine.dispose()
