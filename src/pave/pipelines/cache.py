"""The step cache: outputs stored with joblib under a key that hashes everything they depend on.

Layout: ``<cache_dir>/<step>.<key>.joblib``, one flat folder (fewer filesystem calls per step).
The files are written by this machine for this machine (pickles: never copy a cache from somewhere
you do not trust). Writes are atomic, so an interrupted run leaves no half-written entry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any

CACHE_FORMAT = 1

log = logging.getLogger(__name__)


def step_key(*, fingerprint: str, inputs: dict[str, str], params: dict[str, Any], seed: int) -> str:
    """The cache key of one step execution.

    Args:
        fingerprint: the step function's code fingerprint.
        inputs: argument -> the hash of what it receives (a data sha, or the upstream step's key).
        params: the step's params (JSON; non-JSON values hash by their ``repr``).
        seed: the project seed.
    """
    payload = json.dumps(
        {"v": CACHE_FORMAT, "code": fingerprint, "inputs": inputs, "params": params, "seed": seed},
        sort_keys=True,
        default=repr,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


class StepCache:
    """Cached step outputs under ``root`` (``None``: a cache that never hits and never stores)."""

    def __init__(self, root: Path | None) -> None:
        self.root = root
        self._ready = False

    def path(self, step: str, key: str) -> Path | None:
        return None if self.root is None else self.root / f"{step}.{key}.joblib"

    def has(self, step: str, key: str) -> bool:
        path = self.path(step, key)
        return path is not None and path.is_file()

    def load(self, step: str, key: str) -> Any:
        import joblib

        path = self.path(step, key)
        assert path is not None
        return joblib.load(path)

    def metrics(self, step: str, key: str) -> dict[str, float]:
        """The metrics the step logged (``ctx.log_metric``) when its cached output was made."""
        path = self.path(step, key)
        sidecar = None if path is None else path.with_suffix(".metrics.json")
        if sidecar is None or not sidecar.is_file():
            return {}
        return {str(k): float(v) for k, v in json.loads(sidecar.read_text(encoding="utf-8")).items()}

    def store(self, step: str, key: str, value: Any, metrics: dict[str, float] | None = None) -> bool:
        """Store ``value`` (and the step's logged metrics); False (logged why) when it cannot be pickled."""
        import joblib

        path = self.path(step, key)
        if path is None:
            return False
        if not self._ready:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._ready = True
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        try:
            joblib.dump(value, tmp)
            if metrics:
                path.with_suffix(".metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
            os.replace(tmp, path)
        except Exception as exc:
            tmp.unlink(missing_ok=True)
            log.warning("step %s: output not cached (%s: %s)", step, type(exc).__name__, exc)
            return False
        return True
