"""Cost accounting on both stores: usage priced, budgets alerting once at 80% and 100%, quotas."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.automation import budgets
from pave.config import Settings
from pave.errors import InvalidInput, QuotaExceeded
from pave.governance import costs
from pave.store import migrate
from pave.store.db import check_connection, make_engine, session_factory, transaction
from pave.store.tables import AlertDeliveryRow, AlertRow, LoopSourceRow

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
# One unit of money per CPU-second: easy sums.
PRICES = {"cpu_hour": 3600.0, "gpu_hour": 7200.0, "gb_month": 10.0, "million_requests": 1e6}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'pave.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        check_connection(make_engine(url))
    engine = make_engine(url)
    migrate.upgrade(engine, tmp_path)
    yield session_factory(engine)
    engine.dispose()


def _settings(tmp_path: Path, **extra: object) -> Settings:
    return Settings(home=tmp_path / "home", prices=PRICES, **extra)  # type: ignore[arg-type]


def test_usage_is_priced_per_project_kind_and_day(store: sessionmaker[Session], tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with transaction(store) as session:
        costs.record(session, "a", [costs.Usage("step", "r1/train", cpu_seconds=10, peak_memory=5)], now=NOW)
        costs.record(session, "a", [costs.Usage("batch", "r2", cpu_seconds=2, gpu_seconds=1)], now=NOW)
        costs.record(session, "a", [costs.Usage("deployment", "h", requests=3)], now=NOW + timedelta(days=1))
        costs.record(session, "a", [costs.Usage("storage", stored_bytes=10**9)], now=NOW)
        costs.record(session, "b", [costs.Usage("trial", "t", cpu_seconds=7)], now=NOW)
        costs.record(
            session, "a", [costs.Usage("step", "old", cpu_seconds=999)], now=NOW - timedelta(days=60)
        )
    with store() as session:
        found = costs.report(session, settings, since=NOW - timedelta(days=1), now=NOW + timedelta(days=1))
    a = found.projects["a"]
    assert a["step"].cost == pytest.approx(10)
    assert a["batch"].cost == pytest.approx(2 + 2)  # a GPU-second costs two
    assert a["deployment"].cost == pytest.approx(3)
    assert a["storage"].cost == pytest.approx(10 * 24 / 730)  # 1 GB for a day of a 730-hour month
    assert found.total("b") == pytest.approx(7)
    assert set(found.days["a"]) == {"2026-12-06", "2026-12-07"}
    assert found.to_dict()["projects"]["a"]["kinds"]["step"]["cpu_seconds"] == 10


def test_a_budget_alert_fires_once_at_80_and_once_at_100_percent(
    store: sessionmaker[Session], tmp_path: Path
) -> None:
    settings = _settings(tmp_path, budgets={"churn": 10.0})
    hook = {"kind": "webhook", "url": "https://hooks.example.com/budget"}
    with transaction(store) as session:
        session.add(
            LoopSourceRow(project="churn", run_id=None, spec={"monitor": {"sinks": [hook]}}, recorded_by="t")
        )

    def spend(seconds: float, at: datetime) -> list[AlertRow]:
        with transaction(store) as session:
            costs.record(session, "churn", [costs.Usage("step", cpu_seconds=seconds)], now=at)
            session.flush()
            return budgets.check(session, settings, "churn", now=at)

    assert spend(7.9, NOW) == []
    opened = spend(0.2, NOW + timedelta(minutes=1))  # 8.1 of 10
    assert [(a.subject, a.severity) for a in opened] == [("2026-12 80%", "warning")]
    assert spend(0.5, NOW + timedelta(minutes=2)) == []  # still over 80%: no second alert
    assert spend(0.1, NOW + timedelta(minutes=3)) == []
    full = spend(1.5, NOW + timedelta(minutes=4))  # 10.2 of 10
    assert [(a.subject, a.severity) for a in full] == [("2026-12 100%", "critical")]
    with store() as session:
        alerts = list(session.scalars(select(AlertRow).where(AlertRow.project == "churn")))
        deliveries = list(session.scalars(select(AlertDeliveryRow)))
    assert sorted(a.subject for a in alerts) == ["2026-12 100%", "2026-12 80%"]
    assert len(deliveries) == 2  # one per alert, to the project's sink
    assert {d.url for d in deliveries} == {hook["url"]}
    # a new month starts from nothing
    assert spend(1.0, datetime(2027, 1, 1, 1, tzinfo=UTC)) == []


def test_quota_and_hard_stop_refuse_new_work(store: sessionmaker[Session], tmp_path: Path) -> None:
    quota = _settings(tmp_path, cpu_hours_per_day={"*": 1.0})
    with transaction(store) as session:
        costs.record(session, "busy", [costs.Usage("step", cpu_seconds=3000)], now=NOW)
    with store() as session:
        costs.admit(session, quota, "busy", now=NOW)  # 0.83 of 1 CPU-hour
    with transaction(store) as session:
        costs.record(session, "busy", [costs.Usage("batch", cpu_seconds=700)], now=NOW)
    with store() as session, pytest.raises(QuotaExceeded, match=r"used 1\.03 of its 1 CPU-hours today"):
        costs.admit(session, quota, "busy", now=NOW)
    with store() as session:
        costs.admit(session, quota, "busy", now=NOW + timedelta(days=1))  # a new day
    stop = _settings(tmp_path, budgets={"busy": 3000.0}, budget_hard_stop=True)
    with store() as session, pytest.raises(QuotaExceeded, match=r"spent 3700\.00 of its monthly budget"):
        costs.admit(session, stop, "busy", now=NOW)
    with store() as session:
        costs.admit(session, stop.model_copy(update={"budget_hard_stop": False}), "busy", now=NOW)


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"kind": "mining"}, "not one of step"),
        ({"kind": "step", "cpu_seconds": -1}, "cpu_seconds must be a number from 0"),
        ({"kind": "step", "cpu_seconds": "lots"}, "cpu_seconds must be a number"),
        ({"kind": "step", "cpus": 1}, "unknown usage field(s): cpus"),
    ],
)
def test_bad_usage_reports_are_refused(item: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        costs.Usage.parse(item)


def test_deployments_count_the_hours_they_served_and_idle_ones_nothing(
    store: sessionmaker[Session], tmp_path: Path
) -> None:
    from pave.store.tables import InferenceIndexRow

    settings = _settings(tmp_path)
    hour = NOW.replace(minute=0)
    with transaction(store) as session:
        for i in range(5):
            session.add(
                InferenceIndexRow(
                    inference_id=f"busy-{i}", deployment="served", version="1",
                    ts=hour - timedelta(minutes=30 - i), n_rows=1, outputs={},
                )
            )  # fmt: skip
    with transaction(store) as session:
        assert budgets.record_deployments(session, settings, now=hour + timedelta(minutes=5)) == 1
    with transaction(store) as session:  # the same hour again: recorded once
        assert budgets.record_deployments(session, settings, now=hour + timedelta(minutes=20)) == 0
    with transaction(store) as session:  # the next hour nobody called: nothing counts
        assert budgets.record_deployments(session, settings, now=hour + timedelta(hours=1, minutes=5)) == 0
    with store() as session:
        found = costs.report(session, settings, since=NOW - timedelta(days=1), now=NOW + timedelta(days=1))
    assert found.projects["served"]["deployment"].requests == 5
    assert found.projects["served"]["deployment"].cost == pytest.approx(5)


def test_stored_bytes_are_counted_each_hour_from_the_objects_and_the_artifacts(
    store: sessionmaker[Session], tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    from pave.store.tables import Project, ProjectObjectRow

    settings = _settings(tmp_path)
    with transaction(store) as session:
        for name in ("keeps", "empty"):
            session.add(Project(name=name, owner="admin", description="", created_by="admin"))
        session.add(
            ProjectObjectRow(project="keeps", kind="datasets", sha256="a" * 64, filename="x.csv", size=3_000,
                             created_by="admin")
        )  # fmt: skip
    client = MlflowClient(tracking_uri=settings.mlflow_db_url)
    location = (Path(settings.artifacts).resolve() / "mlflow" / "keeps").as_uri()
    run = client.create_run(client.create_experiment("keeps", artifact_location=location))
    artifact = tmp_path / "model.bin"
    artifact.write_bytes(b"m" * 5_000)
    client.log_artifact(run.info.run_id, str(artifact))
    hour = NOW.replace(minute=0)
    with transaction(store) as session:
        assert budgets.record_storage(session, settings, now=hour + timedelta(minutes=1)) == 2
    with transaction(store) as session:  # the same hour again: recorded once
        assert budgets.record_storage(session, settings, now=hour + timedelta(minutes=30)) == 0
    with store() as session:
        found = costs.report(session, settings, since=NOW - timedelta(days=1), now=hour + timedelta(days=30))
    assert found.projects["keeps"]["storage"].stored_bytes == 8_000
    assert found.projects["empty"]["storage"].stored_bytes == 0
    assert found.projects["keeps"]["storage"].cost > 0  # priced as GB-months until now
