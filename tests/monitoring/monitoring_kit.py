"""Helpers of the monitoring tests: an in-process control plane and a real inference log writer."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from starlette.testclient import TestClient

from pave.api.platform import Platform
from pave.config import Settings
from pave.serving.inference_log import InferenceLog, Record
from pave.store.tables import DeploymentRow, Project


@dataclass
class ControlPlane:
    platform: Platform
    client: TestClient
    token: str

    @property
    def settings(self) -> Settings:
        return self.platform.settings

    @property
    def log_dir(self) -> Path:
        return self.settings.home / "inference-log"

    def add_deployment(self, prefix: str, versions: tuple[str, ...] = ("1",)) -> str:
        """A new project and its deployment, named ``prefix-<random>``; returns the name."""
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        spec = {
            "name": name,
            "versions": [{"version": v, "uri": f"/nowhere/{v}", "weight": 1} for v in versions],
        }
        with self.platform.sessions() as session, session.begin():
            session.add(Project(name=name, owner="admin", created_by="admin"))
            session.add(DeploymentRow(name=name, project=name, spec=spec, created_by="t", updated_by="t"))
        return name


def write_log(
    directory: Path,
    deployment: str,
    version: str,
    inputs: pd.DataFrame,
    outputs: dict[str, Any],
    *,
    rows_per_request: int = 1,
    ts: float | None = None,
    shadow: bool = False,
) -> list[str]:
    """Append requests to a real inference log and wait for them; returns their inference ids."""
    log = InferenceLog(directory)
    log.start()
    ids = []
    now = time.time() if ts is None else ts
    for start in range(0, len(inputs), rows_per_request):
        part = slice(start, start + rows_per_request)
        inference_id = uuid.uuid4().hex
        ids.append(inference_id)
        log.record(
            Record(
                id=inference_id,
                deployment=deployment,
                version=version,
                ts=now,
                latency=0.001,
                inputs=inputs.iloc[part],
                columns=list(inputs.columns),
                outputs={k: np.asarray(v)[part] for k, v in outputs.items()},
                shadow=shadow,
            )
        )
    log.flush()
    log.close()
    return ids
