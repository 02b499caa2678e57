"""``pave up --demo``: seed a small, real demo so a newcomer sees something at once.

Once the control plane answers, a child process walks the golden path exactly as a data
scientist would: ``pave new demo-churn --template tabular-classification`` into
``$PAVE_HOME/demo`` and ``pave run`` there (a tracked run, a data version, a registered model
version with the alias ``candidate``). Its output goes to ``$PAVE_HOME/logs/demo.log``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import httpx

from pave.api.platform import Platform
from pave.config import Settings
from pave.governance.tokens import create_token
from pave.store.db import transaction

DEMO_PROJECT = "demo-churn"


def seed_in_background(settings: Settings, platform: Platform) -> threading.Thread:
    with transaction(platform.sessions) as session:
        _, secret = create_token(
            session, identity="demo-seeder", name="demo", role="developer", kind="service"
        )

    def run() -> None:
        for _ in range(600):
            try:
                if httpx.get(f"{settings.url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        env = os.environ | {"PAVE_URL": settings.url, "PAVE_TOKEN": secret, "PAVE_HOME": str(settings.home)}
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
            subprocess.run([*pave, "run", str(project)], env=env, stdout=log, stderr=log, check=False)

    thread = threading.Thread(target=run, name="pave-demo-seed", daemon=True)
    thread.start()
    return thread
