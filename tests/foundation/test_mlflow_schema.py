"""A new MLflow store gets MLflow's schema from the template in the cache (`pave.tracking.schema`).

The template must be what MLflow itself builds: a store seeded from it has the same tables,
indexes and revision as one MLflow migrated, and MLflow's own client works on it. A store that
already has tables is never touched, and a damaged or outdated template is rebuilt, not copied.
"""

from __future__ import annotations

import logging
import sqlite3
from contextlib import closing
from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient

from pave.config import Settings
from pave.tracking import schema, stores
from pave_testing import POSTGRES_URL


def _schema_of(path: Path) -> list[tuple[str, str, object]]:
    """Every table, index and trigger of a SQLite file with its definition, and the Alembic revision.

    A definition is compared as the set of its lines (columns, constraints): MLflow's migrations
    recreate tables with their constraints in an order that varies from one run to the next.
    """
    with closing(sqlite3.connect(path)) as db:
        rows: list[tuple[str, str, object]] = [
            (kind, name, sorted(line.strip().rstrip(",") for line in sql.splitlines()))
            for kind, name, sql in db.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
            )
        ]
        revision = db.execute("SELECT version_num FROM alembic_version").fetchone()[0]
    rows.append(("revision", "alembic_version", revision))
    return sorted(rows)


def _revision(path: Path) -> str:
    with closing(sqlite3.connect(path)) as db:
        return str(db.execute("SELECT version_num FROM alembic_version").fetchone()[0])


def _empty(path: Path) -> str:
    sqlite3.connect(path).close()  # what `pave up` leaves before MLflow's store opens it
    return f"sqlite:///{path}"


def test_a_seeded_store_is_the_store_mlflow_builds_and_mlflow_works_on_it(tmp_path: Path) -> None:
    by_mlflow = tmp_path / "mlflow-built.db"
    MlflowClient(tracking_uri=f"sqlite:///{by_mlflow}").search_experiments()  # MLflow migrates it
    seeded = tmp_path / "seeded.db"
    url = _empty(seeded)
    cache = Settings(home=tmp_path / "home").cache_path  # the machine's cache, as `pave up` uses it

    assert schema.seed(url, cache)
    assert _schema_of(seeded) == _schema_of(by_mlflow)
    assert _revision(seeded) == stores.schema_head()
    client = MlflowClient(tracking_uri=url, registry_uri=url)
    assert [e.name for e in client.search_experiments()] == ["Default"]
    experiment = client.create_experiment("seeded", artifact_location=(tmp_path / "a").as_uri())
    run = client.create_run(experiment)
    client.log_metric(run.info.run_id, "auc", 0.9)
    client.create_registered_model("seeded-model")
    assert client.get_run(run.info.run_id).data.metrics == {"auc": 0.9}
    assert [m.name for m in client.search_registered_models()] == ["seeded-model"]


def test_a_store_with_tables_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "mlflow.db"
    with closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE mine (x)")
        db.execute("INSERT INTO mine VALUES (1)")
        db.commit()
    assert not schema.seed(f"sqlite:///{path}", tmp_path / "cache")
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == [("mine",)]
    assert not (tmp_path / "cache").exists(), "no template is built for a store that needs none"
    assert not schema.seed(f"{POSTGRES_URL}?options=-csearch_path%3Dx", tmp_path / "cache")


def test_a_store_not_yet_created_is_created_private_and_seeded(tmp_path: Path) -> None:
    path = tmp_path / "new" / "mlflow.db"
    assert schema.seed(f"sqlite:///{path}", Settings(home=tmp_path).cache_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert _revision(path) == stores.schema_head()


def test_a_damaged_or_outdated_template_is_rebuilt_not_copied(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    template = cache / f"mlflow-{mlflow.__version__}-{stores.schema_head()}.db"
    template.write_bytes(b"SQLite format 3\x00" + b"\x17" * 5000)  # a torn copy
    assert schema.ensure_template(cache) == template
    assert _revision(template) == stores.schema_head()
    with closing(sqlite3.connect(template)) as db:
        db.execute("UPDATE alembic_version SET version_num = 'older'")  # a template at another revision
        db.commit()
    assert _revision(template) == "older"
    seeded = tmp_path / "seeded.db"
    assert schema.seed(_empty(seeded), cache)
    assert _revision(seeded) == stores.schema_head()
    assert [p.name for p in cache.iterdir()] == [template.name], "no half-built file is left behind"


def test_a_cache_that_cannot_be_written_leaves_the_store_to_mlflow(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache would go")
    path = tmp_path / "mlflow.db"
    with caplog.at_level(logging.WARNING, logger="pave"):
        assert not schema.seed(_empty(path), blocked / "pave")
    assert "MLflow builds the schema itself" in caplog.text
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT count(*) FROM sqlite_master").fetchone() == (0,)
