"""Helpers of the monitoring tests: an in-process control plane and a real inference log writer."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from starlette.testclient import TestClient

from pave.api.platform import Platform
from pave.config import Settings
from pave.data.profile import profile_frame
from pave.governance.egress import EgressPolicy
from pave.monitoring.scheduler import Monitoring, Scheduler
from pave.monitoring.spec import MonitorSpec
from pave.serving.inference_log import InferenceLog, Record
from pave.store.tables import AlertDeliveryRow, AlertRow, DeploymentRow, Project


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
        return self.settings.inference_log_dir

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
    ids: list[str] | None = None,
) -> list[str]:
    """Append requests to a real inference log and wait for them; returns their inference ids
    (``ids``, when given: one per request)."""
    given = iter(ids or [])
    log = InferenceLog(directory)
    log.start()
    written: list[str] = []
    now = time.time() if ts is None else ts
    for start in range(0, len(inputs), rows_per_request):
        part = slice(start, start + rows_per_request)
        inference_id = next(given, None) or uuid.uuid4().hex
        written.append(inference_id)
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
    return written


def traffic(rows: int, seed: int, shift: dict[str, float] | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(40, 12, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "tenure": rng.integers(0, 30, rows).astype(float),
            "plan": rng.choice(["basic", "pro", "team"], rows, p=[0.6, 0.3, 0.1]),
        }
    )
    for name, sigmas in (shift or {}).items():
        frame[name] += sigmas * frame[name].std()
    return frame


class StaticSpecs:
    """The monitors of one deployment (the store is shared with other tests' deployments)."""

    def __init__(self, name: str, monitoring: Monitoring) -> None:
        self.name = name
        self.monitoring = monitoring

    def get(self, deployment: DeploymentRow, version: str) -> Monitoring | None:
        return self.monitoring if deployment.name == self.name else None


def scheduler_for(cp: ControlPlane, name: str, spec: dict[str, Any], *, timeout: float = 5.0) -> Scheduler:
    training = traffic(5_000, seed=0)
    monitoring = Monitoring(MonitorSpec.model_validate(spec), {"train": profile_frame(training)}, "1")
    return Scheduler(
        cp.platform.sessions,
        cp.settings,
        specs=StaticSpecs(name, monitoring),
        egress=EgressPolicy(allowed_networks=["127.0.0.0/8"]),
        delivery_timeout=timeout,
        base_delay=30.0,
    )


def alerts_of(cp: ControlPlane, project: str) -> list[AlertRow]:
    with cp.platform.sessions() as session:
        return list(
            session.scalars(select(AlertRow).where(AlertRow.project == project).order_by(AlertRow.id))
        )


def deliveries_of(cp: ControlPlane, project: str) -> list[AlertDeliveryRow]:
    with cp.platform.sessions() as session:
        query = (
            select(AlertDeliveryRow)
            .join(AlertRow, AlertRow.id == AlertDeliveryRow.alert_id)
            .where(AlertRow.project == project)
            .order_by(AlertDeliveryRow.id)
        )
        return list(session.scalars(query))


def send(cp: ControlPlane, name: str, frame: pd.DataFrame, ts: float) -> None:
    write_log(
        cp.log_dir, name, "1", frame, {"predict": np.zeros(len(frame), dtype=int)}, rows_per_request=50, ts=ts
    )


DRIFT = {
    "name": "inputs",
    "type": "drift",
    "method": "psi",
    "threshold": None,
    "window": "1h",
    "min_samples": 200,
}


class Receiver:
    """A real HTTP server that records what it is sent; ``mode`` is ok, fail (500) or slow."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.mode = "ok"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if owner.mode == "slow":
                    time.sleep(1.0)
                if owner.mode == "ok":
                    owner.received.append({"path": self.path, "body": json.loads(body)})
                self.send_response(200 if owner.mode == "ok" else 500)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
