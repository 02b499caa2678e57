"""The embedded MLflow tracking server, model registry and UI, served under ``/mlflow``.

MLflow reads its server configuration from environment variables when ``mlflow.server`` is first
imported, so :func:`configure` must run before :func:`mlflow_app`. Artifacts are proxied through
the server (``mlflow-artifacts:/``), so clients never need the server's filesystem.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pave.config import Settings

MOUNT = "/mlflow"

# MLflow's own knobs, set for every process that embeds it.
_ALWAYS = {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "true",
    "MLFLOW_ENABLE_ASSISTANT": "false",
    "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    "GIT_PYTHON_REFRESH": "quiet",
}


def configure(settings: Settings) -> None:
    """Point MLflow's server machinery at Pave's stores (call before importing ``mlflow.server``)."""
    if "mlflow.server" in sys.modules and os.environ.get("_MLFLOW_SERVER_FILE_STORE") not in (
        None,
        settings.mlflow_db_url,
    ):
        raise RuntimeError("mlflow.server was already configured for another store in this process")
    os.environ.update(_ALWAYS)
    os.environ.update(
        {
            "_MLFLOW_SERVER_FILE_STORE": settings.mlflow_db_url,
            "_MLFLOW_SERVER_REGISTRY_STORE": settings.mlflow_db_url,
            "_MLFLOW_SERVER_ARTIFACT_ROOT": "mlflow-artifacts:/",
            "_MLFLOW_SERVER_ARTIFACT_DESTINATION": settings.artifacts,
            "_MLFLOW_SERVER_SERVE_ARTIFACTS": "true",
            "_MLFLOW_STATIC_PREFIX": MOUNT,
            # Pave checks the Host header first; MLflow's own check stays on as a second line.
            "MLFLOW_SERVER_ALLOWED_HOSTS": ",".join(
                pattern for host in settings.allowed_hosts for pattern in (host, f"{host}:*")
            ),
            # Pave's own middleware enforces CORS/Origin rules in front of MLflow.
            "MLFLOW_SERVER_CORS_ALLOWED_ORIGINS": "",
        }
    )


def init_stores(settings: Settings) -> None:
    """Create (or migrate) MLflow's backend store now, not on the first request (call it under the
    migration lock). A new SQLite store gets MLflow's schema from the template in the cache instead
    of running MLflow's migrations (``pave.tracking.schema``)."""
    from pave.tracking import schema, stores

    schema.seed(settings.mlflow_db_url, settings.cache_path)
    stores.init_stores()


def mlflow_app() -> Any:
    """MLflow's ASGI application (FastAPI wrapping the Flask server), routes under ``/mlflow``."""
    # Importing the module builds the app from the environment set by configure().
    from mlflow.server.fastapi_app import app

    return app
