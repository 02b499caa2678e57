"""Path and source checks for everything a request names on the server's disk or artifact store.

The path checks (full decoding, relative paths, symlinks, archives) are
:mod:`pave.tracking.paths`, shared with the data layer; this module adds the model-source rule:
model sources, and experiments' artifact locations, must point into the platform's own artifact store.
"""

from __future__ import annotations

from pathlib import Path

from pave.errors import Forbidden, InvalidInput
from pave.tracking.paths import check_inside, check_relative_path, fully_decoded, safe_extract

__all__ = [
    "ALLOWED_MODEL_SOURCES",
    "check_artifact_location",
    "check_experiment_location",
    "check_inside",
    "check_model_source",
    "check_relative_path",
    "fully_decoded",
    "safe_extract",
]

ALLOWED_MODEL_SOURCES = ("mlflow-artifacts:/", "runs:/", "models:/")


def check_model_source(source: str) -> str:
    """A model version's source must be in the platform's artifact store (or a run/model in it)."""
    decoded = fully_decoded(source)
    if not decoded.startswith(ALLOWED_MODEL_SOURCES):
        raise InvalidInput(
            f"model source {source[:200]!r} is outside the platform's artifact store",
            hint="register models logged to this platform: runs:/<run_id>/<path>, models:/<id> or "
            "mlflow-artifacts:/...",
        )
    _scheme, _, rest = decoded.partition(":/")
    check_relative_path(rest.lstrip("/"), what="model source")
    return decoded


PLATFORM_ARTIFACTS = "mlflow-artifacts:/"


def check_artifact_location(location: object) -> None:
    """Nobody but the platform chooses where an experiment keeps its artifacts.

    MLflow lets ``experiments/create`` name any ``artifact_location`` (``file:///etc``, ``/tmp``,
    another project's folder); runs of such an experiment would read and write there as the
    platform's own user, past the artifact store's path checks and quotas.
    """
    if location not in (None, ""):
        raise InvalidInput(
            f"artifact_location {str(location)[:200]!r} is not allowed: the platform keeps every "
            "experiment's artifacts in its own store",
            hint="create the experiment without artifact_location (mlflow.create_experiment(name))",
        )


def check_experiment_location(experiment_id: str, name: str | None, location: str | None, root: str) -> None:
    """Refuse artifact I/O of an experiment whose artifacts are not in the platform's store.

    The platform's locations: ``mlflow-artifacts:/<id>`` (experiments made through the server),
    and ``<root>/mlflow/<name>`` (made by a run that tracks straight into the database). Only an
    experiment made before :func:`check_artifact_location` existed can have another.
    """
    if location is None or name is None:  # no such experiment: MLflow answers that
        return
    folder = f"mlflow/{name}"
    allowed = {
        f"{PLATFORM_ARTIFACTS}{experiment_id}",
        f"{root.rstrip('/')}/{folder}" if "://" in root else (Path(root).resolve() / folder).as_uri(),
    }
    if location.rstrip("/") not in allowed:
        raise Forbidden(
            f"experiment {experiment_id} keeps its artifacts at {location[:200]!r}, outside the "
            "platform's artifact store; its artifacts cannot be read or written through Pave",
            hint="log to an experiment the platform created (no artifact_location)",
        )
