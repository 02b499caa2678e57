"""From a fresh clone to a live demo: `scripts/up --demo` with pip and with uv, side by side.

Each variant clones the repository into a new folder (its own .venv), runs `scripts/up --demo`
with ``PAVE_INSTALLER`` set and its own ``PAVE_HOME`` and free ports, and times three moments: the
install done (scripts/install's last line), the control plane ready (``/readyz``), and the demo
live (project ``demo-churn`` deployed and answering on the gateway). pip runs with its cache as the
machine has it (warm when Pave was installed before); uv with an empty cache of its own (cold),
so the comparison does not favour uv.

    python benchmarks/up.py [--repo /path/to/clone-from]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from harness import free_port


def measure(repo: str, installer: str, work: Path) -> dict[str, float]:
    clone = work / f"clone-{installer}"
    subprocess.run(["git", "clone", "--quiet", repo, str(clone)], check=True)
    home, port, gateway = work / f"home-{installer}", free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_", "VIRTUAL_ENV"))}
    env |= {"PAVE_INSTALLER": installer, "PAVE_HOME": str(home), "UV_CACHE_DIR": str(work / "uv-cache")}
    env |= {"PAVE_GATEWAY_PORT": str(gateway), "PAVE_GATEWAY_GRPC_PORT": str(free_port())}
    log = (work / f"up-{installer}.log").open("w")
    started = time.monotonic()
    process = subprocess.Popen(
        ["scripts/up", "--demo", "--port", str(port)],
        cwd=clone,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    times: dict[str, float] = {}
    try:
        while "demo_live_s" not in times:
            assert process.poll() is None, (work / f"up-{installer}.log").read_text()[-3000:]
            text = (work / f"up-{installer}.log").read_text()
            if "installed_s" not in times and "==> installed" in text:
                times["installed_s"] = time.monotonic() - started
            try:
                if (
                    "ready_s" not in times
                    and httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
                ):
                    times["ready_s"] = time.monotonic() - started
                if "ready_s" in times:
                    token = json.loads((home / "credentials.json").read_text())["token"]
                    auth = {"Authorization": f"Bearer {token}"}
                    ready = httpx.get(
                        f"http://127.0.0.1:{gateway}/v2/models/demo-churn/ready", headers=auth, timeout=2
                    )
                    if ready.status_code == 200:
                        times["demo_live_s"] = time.monotonic() - started
            except (httpx.HTTPError, OSError, KeyError, ValueError):
                pass
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parents[1]))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pave-up-bench-") as folder:
        results = {}
        for installer in ("pip", "uv"):
            results[installer] = measure(args.repo, installer, Path(folder))
            print(installer, {k: round(v, 1) for k, v in results[installer].items()}, flush=True)
    load = os.getloadavg()
    for key in ("installed_s", "ready_s", "demo_live_s"):
        ratio = results["pip"][key] / results["uv"][key]
        print(f"{key}: pip {results['pip'][key]:.1f} s, uv {results['uv'][key]:.1f} s, pip/uv {ratio:.2f}x")
    print(
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on {os.cpu_count()} cores; "
        f"python {sys.version.split()[0]}"
    )


if __name__ == "__main__":
    main()
