"""The MLflow internals Pave reaches through `pave.tracking.stores`, against the pinned MLflow.

`stores` is the one module allowed to touch MLflow's private names; when an MLflow upgrade moves
one of them, this file fails and names it, instead of a gate or a run misbehaving later. The
embedded server is configured through process-wide environment variables, so the checks that need
it run in a child process of their own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from pave.tracking import stores


def test_models_uris_are_read_by_mlflow_s_own_parser() -> None:
    assert stores.parse_model_uri("models:/churn/3") == stores.ModelUri(name="churn")
    assert stores.parse_model_uri("models:/churn@champion") == stores.ModelUri(name="churn")
    assert stores.parse_model_uri("models:/m-0123abcd") == stores.ModelUri(model_id="m-0123abcd")
    assert stores.parse_model_uri("models:/") is None


def test_a_run_s_uris_are_put_back_as_the_caller_had_them() -> None:
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    # The names `mlflow_uris` saves and restores must exist: a rename would make it restore None.
    before = (tracking_utils._tracking_uri, registry_utils._registry_uri)
    with stores.mlflow_uris("http://127.0.0.1:1/mlflow"):
        assert tracking_utils._tracking_uri == "http://127.0.0.1:1/mlflow"
        assert registry_utils._registry_uri == "http://127.0.0.1:1/mlflow"
    assert (tracking_utils._tracking_uri, registry_utils._registry_uri) == before


def test_the_embedded_server_s_stores_answer(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        from pave.config import Settings
        from pave.tracking import server, stores

        settings = Settings(home={str(tmp_path / "home")!r})
        server.configure(settings)
        server.init_stores(settings)  # as the control plane does: the schema from the template
        assert not stores.name_taken("churn")
        stores.tracking_store().create_experiment("churn")
        assert stores.experiment_exists("churn") and stores.name_taken("churn")
        assert not stores.registered_model_exists("churn")
        stores.registry_store().create_registered_model("churn-model")
        assert stores.registered_model_exists("churn-model")
        experiment = stores.tracking_store().get_experiment_by_name("churn")
        assert stores.running_runs([experiment.experiment_id], limit=5) == 0
        assert stores.project_experiment("churn") == (
            experiment.experiment_id, "mlflow-artifacts:/" + experiment.experiment_id
        )
        made, location = stores.project_experiment("iris")  # made, its files where the server keeps them
        assert location == "mlflow-artifacts:/" + made
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok")
