"""Start-up time: `pave up` (MLflow embedded) against a plain `mlflow server`, same backend kind.

Both are launched as a user would launch them, alternated in one run, on SQLite, once on a fresh
home ("cold": databases created and migrated) and then on the existing one ("warm"). Time is
measured from the launch to the first successful readiness probe (`/readyz` for Pave, `/health`
for MLflow). Prints medians and the ratio Pave / MLflow (lower is better; the aim is <= 0.5).

    .venv/bin/python benchmarks/startup.py --rounds 5
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import free_port
from rich.console import Console
from rich.progress import track
from rich.table import Table

BIN = Path(sys.executable).parent
console = Console()


def _time_to_ready(cmd: list[str], probe: str, env: dict[str, str], timeout: float = 180) -> float:
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        while time.perf_counter() - started < timeout:
            if proc.poll() is not None:
                raise RuntimeError(f"{cmd[0]} exited with {proc.returncode}")
            try:
                if httpx.get(probe, timeout=0.5).status_code == 200:
                    return time.perf_counter() - started
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"{cmd} not ready after {timeout}s")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def pave(home: Path) -> float:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_"))}
    env["PAVE_HOME"] = str(home)
    # every port free, not only the control plane's: 8080 or 8081 may be taken on a shared machine
    command = [str(BIN / "pave"), "up", "--port", str(port), "--gateway-port", str(free_port())]
    command += ["--gateway-grpc-port", str(free_port())]
    return _time_to_ready(command, f"http://127.0.0.1:{port}/readyz", env)


def mlflow(home: Path) -> float:
    port = free_port()
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_"))}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    cmd = [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        f"sqlite:///{home / 'mlflow.db'}",
        "--artifacts-destination",
        str(home / "artifacts"),
        "--port",
        str(port),
    ]
    return _time_to_ready(cmd, f"http://127.0.0.1:{port}/health", env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternations per mode")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pave-bench-startup-"))
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for mode in ("cold", "warm"):
            for i in track(range(args.rounds), description=f"{mode} starts"):
                for name, launch in (("pave up", pave), ("mlflow server", mlflow)):
                    home = scratch / f"{name.split()[0]}-{mode}-{i if mode == 'cold' else 0}"
                    if mode == "warm" and not home.exists():
                        launch(home)  # create the databases once; not measured
                    results.setdefault((name, mode), []).append(launch(home))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)

    table = Table(title=f"Launch to ready, median of {args.rounds} (seconds; {os.cpu_count()} cores)")
    for column in ("mode", "pave up", "mlflow server", "ratio pave/mlflow"):
        table.add_column(column)
    for mode in ("cold", "warm"):
        p = statistics.median(results[("pave up", mode)])
        m = statistics.median(results[("mlflow server", mode)])
        table.add_row(mode, f"{p:.2f}", f"{m:.2f}", f"{p / m:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
