"""Wall time of the golden path per template: `pave new` + first `pave run` + cached re-run.

Starts its own `pave up` on a scratch home, then for each template times, as a user runs them:
`pave new NAME --template T`, the first `pave run` (train, register, gates), and a second
`pave run` with nothing changed (every step cached).

    .venv/bin/python benchmarks/golden_path.py
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
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

TEMPLATES = ("tabular-classification", "tabular-regression", "recommendation")
console = Console()


def _timed(cmd: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode not in (0,):
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - started


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="pave-bench-golden-"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_"))}
    env["PAVE_HOME"] = str(scratch / "home")
    pave = [sys.executable, "-m", "pave"]
    grpc = str(free_port())
    server = subprocess.Popen(
        # every port free: 8080 or 8081 may be taken on a shared machine
        [*pave, "up", "--port", str(port), "--gateway-port", str(free_port()), "--gateway-grpc-port", grpc],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(1800):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        token = json.loads((scratch / "home" / "credentials.json").read_text())["token"]
        env |= {"PAVE_URL": url, "PAVE_TOKEN": token}
        rows = []
        for template in track(TEMPLATES, description="golden paths"):
            project = scratch / template
            new = _timed(
                [*pave, "new", f"bench-{template}", "--template", template, "--dir", str(project)], env
            )
            first = _timed([*pave, "run", str(project)], env)
            cached = _timed([*pave, "run", str(project)], env)
            rows.append((template, new, first, cached))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
        shutil.rmtree(scratch, ignore_errors=True)

    table = Table(title=f"Golden path wall time, seconds ({os.cpu_count()} cores)")
    for column in ("template", "pave new", "first pave run", "new + first run", "cached re-run"):
        table.add_column(column)
    for template, new, first, cached in rows:
        table.add_row(template, f"{new:.1f}", f"{first:.1f}", f"{new + first:.1f}", f"{cached:.1f}")
    console.print(table)


if __name__ == "__main__":
    main()
