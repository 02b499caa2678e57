"""Fixtures: real models trained here and logged to a real MLflow store, and gateway factories."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import uvicorn
from mlflow.models import infer_signature
from serving_kit import deployment
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from starlette.testclient import TestClient

from pave.config import Settings
from pave.registry.flavors import pip_requirements
from pave.serving.deployments import Deployment, StaticDeployments
from pave.serving.gateway import Gateway, GatewayOptions, create_gateway
from pave_testing import mlflow_store


class RowSum(mlflow.pyfunc.PythonModel):
    """A pyfunc model (the fallback path): the sum of each row."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        return model_input.sum(axis=1).to_numpy()


class Exploding(mlflow.pyfunc.PythonModel):
    """A model that loads fine and fails on every prediction (a broken shadow)."""

    def predict(self, context: Any, model_input: Any, params: Any = None) -> Any:
        raise RuntimeError("shadow model exploded")


@dataclass
class Models:
    tracking_uri: str
    X: pd.DataFrame
    y: pd.Series
    estimators: dict[str, Any]  # registered version -> the estimator that was logged
    exploding_uri: str
    tensor_uri: str
    tensor_estimator: Any
    lightgbm_uri: str
    lightgbm_estimator: Any
    pyfunc_uri: str
    experiment_id: str

    @contextmanager
    def run(self) -> Iterator[Any]:
        """A run in these models' own store and experiment, named explicitly: the fluent API's URIs
        and active experiment are process-wide, and a module that ran before on this worker may have
        moved them (an experiment id of another store: "No Experiment with id=9 exists")."""
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            with mlflow.start_run(experiment_id=self.experiment_id) as run:
                yield run
        finally:
            mlflow.set_tracking_uri(None)

    def uri(self, version: str) -> str:
        return f"models:/cancer/{version}"


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> Models:
    """Models logged with MLflow's API, their requirements named as `pave run` names them (the
    installed versions): MLflow's own inference of them imports each model in a subprocess, tens of
    seconds per model on a busy machine (the tests of plain MLflow's defaults are in tests/e2e)."""
    root = tmp_path_factory.mktemp("mlflow")
    tracking_uri = mlflow_store(root / "mlflow.db")
    # Both process-wide URIs, explicitly: a test that ran before may have left either pointing elsewhere.
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    # An explicit artifact location: an in-process control plane of another test module may have left
    # MLflow's server settings in this worker's environment, and with them a proxied default.
    experiment_id = mlflow.create_experiment("serving-tests", artifact_location=(root / "artifacts").as_uri())
    mlflow.set_experiment(experiment_id=experiment_id)
    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    estimators = {
        "1": make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y),
        "2": make_pipeline(StandardScaler(), LogisticRegression(C=0.0005, max_iter=1000)).fit(X, y),
    }
    for estimator in estimators.values():
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                estimator,
                name="model",
                input_example=X.head(3),
                registered_model_name="cancer",
                pip_requirements=pip_requirements("sklearn"),
            )
    signature = infer_signature(X.head(3), np.array([0, 1, 0]))
    with mlflow.start_run():
        exploding = mlflow.pyfunc.log_model(
            name="model",
            python_model=Exploding(),
            signature=signature,
            pip_requirements=pip_requirements("pyfunc"),
        )
    # a tensor model: float32 matrix in, no column names
    Xt = X.to_numpy(dtype=np.float32)
    tensor_estimator = LogisticRegression(max_iter=2000).fit(Xt, y)
    with mlflow.start_run():
        tensor = mlflow.sklearn.log_model(
            tensor_estimator,
            name="model",
            signature=infer_signature(Xt[:3], tensor_estimator.predict(Xt[:3])),
            pip_requirements=pip_requirements("sklearn"),
        )
    import lightgbm

    lgbm = lightgbm.LGBMClassifier(n_estimators=20, num_leaves=7, verbose=-1).fit(X, y)
    with mlflow.start_run():
        lightgbm_info = mlflow.lightgbm.log_model(
            lgbm, name="model", input_example=X.head(3), pip_requirements=pip_requirements("lightgbm")
        )
    with mlflow.start_run():
        row_sum = mlflow.pyfunc.log_model(
            name="model",
            python_model=RowSum(),
            signature=infer_signature(X.head(3), np.zeros(3)),
            pip_requirements=pip_requirements("pyfunc"),
        )
    mlflow.set_tracking_uri(None)  # the gateway must get the URI from its options, not a global
    mlflow.set_registry_uri(None)  # type: ignore[arg-type]
    return Models(
        tracking_uri=tracking_uri,
        X=X,
        y=y,
        estimators=estimators,
        exploding_uri=exploding.model_uri,
        tensor_uri=tensor.model_uri,
        tensor_estimator=tensor_estimator,
        lightgbm_uri=lightgbm_info.model_uri,
        lightgbm_estimator=lgbm,
        pyfunc_uri=row_sum.model_uri,
        experiment_id=experiment_id,
    )


GatewayFactory = Callable[..., tuple[Gateway, StaticDeployments]]


@pytest.fixture
def make_gateway(models: Models, tmp_path: Path) -> GatewayFactory:
    """Build a gateway over in-memory deployments, on a fresh PAVE_HOME."""

    def make(
        *deployments: Deployment, settings: dict[str, Any] | None = None, **options: Any
    ) -> tuple[Gateway, StaticDeployments]:
        source = StaticDeployments(deployments or [deployment()])
        options.setdefault("tracking_uri", models.tracking_uri)
        options.setdefault("model_cache", tmp_path.parent / "model-cache")  # shared across tests
        options.setdefault("poll_interval", 0.05)
        gateway = create_gateway(
            Settings(home=tmp_path / "home", **(settings or {})), source, GatewayOptions(**options)
        )
        return gateway, source

    return make


@pytest.fixture
def make_client(make_gateway: GatewayFactory) -> Iterator[Callable[..., tuple[TestClient, Gateway, Any]]]:
    """A Starlette TestClient over a new gateway (lifespan run, so models are loaded)."""
    clients: list[TestClient] = []

    def make(*deployments: Deployment, **kw: Any) -> tuple[TestClient, Gateway, StaticDeployments]:
        gateway, source = make_gateway(*deployments, **kw)
        client = TestClient(gateway)
        client.__enter__()
        clients.append(client)
        return client, gateway, source

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@dataclass
class LiveServer:
    url: str
    gateway: Gateway
    source: StaticDeployments


@pytest.fixture
def live_server(make_gateway: GatewayFactory) -> Iterator[Callable[..., LiveServer]]:
    """A real uvicorn server on a free loopback port, in a thread."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(*deployments: Deployment, **kw: Any) -> LiveServer:
        gateway, source = make_gateway(*deployments, **kw)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        config = uvicorn.Config(gateway, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the gateway did not start")
            time.sleep(0.01)
        servers.append((server, thread))
        return LiveServer(f"http://127.0.0.1:{port}", gateway, source)

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=30)
