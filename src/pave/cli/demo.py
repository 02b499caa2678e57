"""``pave up --demo``: seed a small, real demo so a newcomer sees something at once.

The seeding runs in a child process, as an ordinary MLflow client of the platform would, once the
control plane answers: an experiment, a run with params and metrics, a registered model version
with the alias ``champion``.
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

DEMO_MODEL = "demo-iris"


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
        env = os.environ | {
            "MLFLOW_TRACKING_URI": f"{settings.url}/mlflow",
            "MLFLOW_TRACKING_TOKEN": secret,
        }
        log_path = settings.home / "logs" / "demo.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            subprocess.run(
                [sys.executable, "-m", "pave.cli.demo"], env=env, check=False, stdout=log, stderr=log
            )

    thread = threading.Thread(target=run, name="pave-demo-seed", daemon=True)
    thread.start()
    return thread


def _seed() -> None:
    import mlflow
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    x, y = load_iris(return_X_y=True, as_frame=True)
    mlflow.set_experiment("demo")
    with mlflow.start_run(run_name="demo-logistic-regression"):
        model = LogisticRegression(max_iter=500, random_state=0).fit(x, y)
        mlflow.log_params({"max_iter": 500, "random_state": 0})
        mlflow.log_metric("train_accuracy", float(model.score(x, y)))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            registered_model_name=DEMO_MODEL,
            input_example=x.head(3),
            pip_requirements=["scikit-learn"],
        )
    version = info.registered_model_version
    mlflow.MlflowClient().set_registered_model_alias(DEMO_MODEL, "champion", str(version))
    print(f"demo: registered {DEMO_MODEL} version {version} as champion")


if __name__ == "__main__":
    _seed()
