"""Registry helpers against a real MLflow SQLite store."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
from mlflow import MlflowClient
from sklearn.dummy import DummyClassifier

from pave.errors import NotFound
from pave.registry.flavors import input_example, pip_requirements
from pave.registry.versions import (
    champion_metrics,
    get_version,
    list_model_versions,
    register_version,
    set_alias,
)
from pave_testing import mlflow_store


@pytest.fixture
def uri(tmp_path: Path) -> str:
    return mlflow_store(tmp_path / "mlflow.db")


def log_version(uri: str, name: str, auc: float) -> str:
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("registry") or client.get_experiment(
        client.create_experiment(
            "registry", artifact_location=(Path(uri.removeprefix("sqlite:///")).parent / "a").as_uri()
        )
    )
    with mlflow.start_run(experiment_id=experiment.experiment_id) as run:
        mlflow.log_metric("auc", auc)
        info = mlflow.sklearn.log_model(
            DummyClassifier().fit([[0], [1]], [0, 1]),
            name="model",
            pip_requirements=pip_requirements("sklearn"),
        )
    version = register_version(
        client,
        name=name,
        model_uri=info.model_uri,
        run_id=run.info.run_id,
        model_id=info.model_id,
        tags={"pave.run_id": run.info.run_id},
    )
    return str(version.version)


def test_versions_aliases_and_the_champion(uri: str) -> None:
    assert list_model_versions("churn", tracking_uri=uri) == []
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    assert champion_metrics(client, "churn") is None
    one = log_version(uri, "churn", 0.8)
    two = log_version(uri, "churn", 0.9)
    set_alias("churn", "champion", one, tracking_uri=uri)
    set_alias("churn", "candidate", two, tracking_uri=uri)
    versions = list_model_versions("churn", tracking_uri=uri)
    assert [(v.version, v.aliases) for v in versions] == [("2", ["candidate"]), ("1", ["champion"])]
    assert versions[0].tags["pave.run_id"] == versions[0].run_id
    assert champion_metrics(client, "churn") == ("1", {"auc": 0.8})
    assert get_version("churn", "2", tracking_uri=uri).aliases == ["candidate"]
    with pytest.raises(NotFound):
        get_version("churn", "9", tracking_uri=uri)


def test_requirements_pin_the_installed_versions() -> None:
    reqs = pip_requirements("sklearn")
    assert any(r.startswith("scikit-learn==") for r in reqs)
    assert all("==" in r for r in reqs)


def test_the_input_example_is_found_by_key_or_attribute() -> None:
    import pandas as pd

    frame = pd.DataFrame({"a": range(10)})

    class Split:
        X_test = frame

    assert len(input_example(frame)) == 5
    assert input_example({"X_train": frame, "X_test": frame.tail(3)}).equals(frame.tail(3))
    assert input_example(Split()).equals(frame.head(5))
    assert input_example({"nothing": 1}) is None
