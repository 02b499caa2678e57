"""``pave up --demo``: seed a small, real demo so a newcomer sees something at once.

Once the control plane answers, a child process walks the golden path exactly as a data
scientist would: ``pave new demo-churn --template tabular-classification`` into
``$PAVE_HOME/demo`` and ``pave run`` there (a tracked run, a data version, a registered model
version with the alias ``candidate``), ``pave deploy demo-churn --version 1``, and a few hundred
predictions of the project's own rows through the gateway, so that the portal's deployment page
has traffic, latency and a drift window to show. Its output goes to ``$PAVE_HOME/logs/demo.log``.
A demo that is already there is left as it is.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pandas as pd

from pave.api.platform import Platform
from pave.config import Settings
from pave.governance.tokens import create_token
from pave.store.db import transaction

DEMO_PROJECT = "demo-churn"
DEMO_REQUESTS = 300


def seed_in_background(settings: Settings, platform: Platform) -> threading.Thread:
    with transaction(platform.sessions) as session:
        _, secret = create_token(
            session, identity="demo-seeder", name="demo", role="maintainer", kind="service"
        )

    def run() -> None:
        for _ in range(600):
            try:
                if httpx.get(f"{settings.url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        env = os.environ | {
            "PAVE_URL": settings.url,
            "PAVE_TOKEN": secret,
            "PAVE_HOME": str(settings.home),
            "PAVE_GATEWAY_PORT": str(settings.gateway_port),
        }
        project = settings.home / "demo" / DEMO_PROJECT
        log_path = settings.home / "logs" / "demo.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        pave = [sys.executable, "-m", "pave"]
        with log_path.open("ab") as log:
            if not (project / "pave.yaml").exists():
                new = [
                    *pave,
                    "new",
                    DEMO_PROJECT,
                    "--template",
                    "tabular-classification",
                    "--dir",
                    str(project),
                ]
                if subprocess.run(new, env=env, stdout=log, stderr=log, check=False).returncode != 0:
                    return
            elif (settings.home / "demo" / ".seeded").exists():
                return
            for step in (["run", str(project)], ["deploy", DEMO_PROJECT, "--version", "1"]):
                if subprocess.run([*pave, *step], env=env, stdout=log, stderr=log, check=False).returncode:
                    return
            sent = _send_traffic(settings.gateway_url, secret, project)
            log.write(f"demo: {sent} of {DEMO_REQUESTS} predictions answered by the gateway\n".encode())
            (settings.home / "demo" / ".seeded").touch()

    thread = threading.Thread(target=run, name="pave-demo-seed", daemon=True)
    thread.start()
    return thread


def _send_traffic(gateway_url: str, token: str, project: Path) -> int:
    """Predict the project's own rows through the gateway, a row per request, as a client would."""
    rows = pd.read_csv(project / "data" / "train.csv").drop(columns=["target"])
    infer = f"{gateway_url}/v2/models/{DEMO_PROJECT}/infer"
    answered = 0
    with httpx.Client(headers={"Authorization": f"Bearer {token}"}, timeout=10.0) as client:
        deadline = time.monotonic() + 120  # the gateway picks the deployment up within seconds
        while time.monotonic() < deadline:
            try:
                if client.get(f"{gateway_url}/v2/models/{DEMO_PROJECT}/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        for i in range(DEMO_REQUESTS):
            row = rows.iloc[i % len(rows)]
            inputs = [
                {"name": str(name), "datatype": "FP64", "shape": [1], "data": [float(value)]}
                for name, value in row.items()
            ]
            with contextlib.suppress(httpx.HTTPError):
                answered += client.post(infer, json={"inputs": inputs}).status_code == 200
    return answered
