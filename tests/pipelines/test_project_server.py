"""execute_project against a real `pave up` (embedded MLflow over HTTP, artifacts proxied)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest

from pave.config import Settings
from pave.pipelines import execute_project
from pave.registry.versions import list_model_versions
from pave_testing import mlflow_globals

pytestmark = pytest.mark.slow


def test_a_run_through_the_control_plane(
    churn_project: Callable[..., Path],
    settings: Settings,
    shared_server: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", shared_server.token)
    uri = f"{shared_server.url}/mlflow"
    result = execute_project(churn_project(), tracking_uri=uri, settings=settings, progress=False)
    assert result.status == "FINISHED"
    assert result.alias == "candidate"
    assert result.artifact_uri.startswith("mlflow-artifacts:")
    (version,) = list_model_versions(result.model_name or "", tracking_uri=uri)
    assert version.aliases == ["candidate"]
    profile = mlflow.artifacts.download_artifacts(
        run_id=result.run_id, artifact_path="data/profile.json", tracking_uri=uri
    )
    assert "train" in json.loads(Path(profile).read_text())
    with mlflow_globals(uri):
        model = mlflow.pyfunc.load_model(f"models:/{result.model_name}@candidate")
    assert model.metadata.run_id == result.run_id
