"""MLflow's stores and private helpers, reached from this one module.

Pave embeds MLflow's server and needs a few things MLflow keeps private: the tracking and
registry stores the server built from its environment (:func:`pave.tracking.server.configure`),
its parser of ``models:/`` URIs, and its loader of a scikit-learn model's file (so that a model's
``MLmodel`` is parsed once). Every other module asks here, so an MLflow upgrade that
moves them breaks one file, which ``tests/foundation/test_stores.py`` checks against the pinned
MLflow.

The store functions only work in a process that configured the embedded server (the control
plane, or a test that called ``configure``); they block, so call them off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any


def tracking_store() -> Any:
    """The embedded server's tracking store (experiments, runs, logged models, traces)."""
    from mlflow.server import handlers

    return handlers._get_tracking_store()


def registry_store() -> Any:
    """The embedded server's model registry store (registered models, versions, prompts)."""
    from mlflow.server import handlers

    return handlers._get_model_registry_store()


def init_stores() -> None:
    """Create (or migrate) MLflow's backend store now, not on the first request."""
    tracking_store()
    registry_store()


def schema_head() -> str:
    """The Alembic revision of MLflow's newest schema (what its stores require to open)."""
    from mlflow.store.db.utils import _get_latest_schema_revision

    return str(_get_latest_schema_revision())


def create_schema(url: str) -> str | None:
    """Build MLflow's schema in the empty database at ``url`` exactly as MLflow's store does on a
    fresh database (its initial tables, then every migration); return the revision it stands at,
    None if it is not complete."""
    from mlflow.store.db.utils import _all_tables_exist, _get_schema_version, _initialize_tables
    from sqlalchemy import create_engine

    engine = create_engine(url)
    try:
        _initialize_tables(engine)
        return str(_get_schema_version(engine)) if _all_tables_exist(engine) else None
    finally:
        engine.dispose()


@dataclass(frozen=True)
class ModelUri:
    """What a ``models:/`` URI names: a registered model (by ``name``) or a logged model (``model_id``)."""

    name: str | None = None
    model_id: str | None = None


def parse_model_uri(uri: str) -> ModelUri | None:
    """``models:/churn/3`` -> name ``churn``; ``models:/m-abc`` -> model_id; None if unreadable."""
    from mlflow.exceptions import MlflowException
    from mlflow.store.artifact.utils.models import _parse_model_uri

    try:
        parsed = _parse_model_uri(uri)
    except MlflowException:
        return None
    return ModelUri(name=parsed.name, model_id=parsed.model_id)


def load_sklearn(model_dir: str, flavor: dict[str, Any]) -> Any:
    """The estimator of the MLflow model at ``model_dir`` whose ``sklearn`` flavor (from its
    ``MLmodel``, already read) is ``flavor``: what ``mlflow.sklearn.load_model`` does after it
    parses ``MLmodel`` itself a second time (its code paths added to ``sys.path``, the pickle or
    skops file loaded with the flavor's trusted types)."""
    import os

    from mlflow.sklearn import SERIALIZATION_FORMAT_PICKLE, _load_model_from_local_file
    from mlflow.utils.model_utils import _add_code_from_conf_to_system_path

    _add_code_from_conf_to_system_path(model_dir, flavor)
    return _load_model_from_local_file(
        path=os.path.join(model_dir, flavor["pickled_model"]),
        serialization_format=flavor.get("serialization_format", SERIALIZATION_FORMAT_PICKLE),
        skops_trusted_types=flavor.get("skops_trusted_types"),
    )


def experiment_exists(name: str) -> bool:
    """Whether MLflow has an experiment called ``name`` (deleted ones included)."""
    return tracking_store().get_experiment_by_name(name) is not None


def registered_model_exists(name: str) -> bool:
    """Whether MLflow has a registered model (or prompt) called ``name``."""
    from mlflow.exceptions import MlflowException

    try:
        registry_store().get_registered_model(name)
    except MlflowException:
        return False
    return True


def name_taken(name: str) -> bool:
    """Whether MLflow has an experiment or a registered model called ``name``."""
    return experiment_exists(name) or registered_model_exists(name)


def project_experiment(name: str) -> tuple[str, str]:
    """The id and artifact location of the experiment called ``name``, created if there is none
    (through the embedded server's store: its artifacts go to ``mlflow-artifacts:/<id>``)."""
    from mlflow.entities import ExperimentTag
    from mlflow.exceptions import MlflowException

    store = tracking_store()
    found = store.get_experiment_by_name(name)
    if found is None:
        with suppress(MlflowException):  # created meanwhile by a concurrent request
            store.create_experiment(name, tags=[ExperimentTag("pave.project", name)])
        found = store.get_experiment_by_name(name)
    return str(found.experiment_id), str(found.artifact_location)


def running_runs(experiment_ids: list[str], limit: int) -> int:
    """How many runs of these experiments are RUNNING (counting stops at ``limit``)."""
    from mlflow.entities import ViewType

    if not experiment_ids:
        return 0
    runs = tracking_store().search_runs(
        experiment_ids, "attributes.status = 'RUNNING'", ViewType.ACTIVE_ONLY, max_results=limit
    )
    return len(runs)


@contextmanager
def mlflow_uris(tracking_uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (log_model's registration reads process-wide URIs) at
    *tracking_uri* for the block, then put back what the caller had (read from MLflow's private
    module state: ``get_tracking_uri`` would answer a default, not "unset"), so that a run leaves
    no global state behind."""
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    previous = (
        getattr(tracking_utils, "_tracking_uri", None),
        getattr(registry_utils, "_registry_uri", None),
    )
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous[0])  # type: ignore[arg-type]
        mlflow.set_registry_uri(previous[1])  # type: ignore[arg-type]
