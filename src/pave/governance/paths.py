"""Path and source checks for everything a request names on the server's disk or artifact store.

The path checks (full decoding, relative paths, symlinks, archives) are
:mod:`pave.tracking.paths`, shared with the data layer; this module adds the model-source rule:
model sources must point into the platform's own artifact store.
"""

from __future__ import annotations

from pave.errors import InvalidInput
from pave.tracking.paths import check_inside, check_relative_path, fully_decoded, safe_extract

__all__ = [
    "ALLOWED_MODEL_SOURCES",
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
