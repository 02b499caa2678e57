"""Serving throughput with the inference log shipped to the object store vs written to the local disk.

One platform (`pave up --no-gateway` on SQLite, artifact root an S3 bucket on moto's standalone
server, started here in a process of its own), one template model trained and deployed, then two
gateways side by side, each `pave serve` on a home of its own with the platform's defaults (token
on, one worker per core, every request logged):

- ``local``: ``PAVE_INFERENCE_LOG_SHIP=off``, the log appended to files in its home (today's way);
- ``shipped``: ``PAVE_INFERENCE_LOG_SHIP=on``, the same files closed every 2 s and sent to the
  bucket with a row each in the database (``serving/shipping.py``).

Each is loaded in turn, interleaved (local then shipped, then shipped then local), by wrk (an independent
load generator, 2 threads, ``--connections`` connections) and by an async httpx client of this repo
(``--connections`` concurrent requests), ``--seconds`` per cell (at least 10). Reported: requests per
second of each cell, the shipped/local ratio (median of the rounds), the load average, and what
the shipper did (files and records shipped).

    .venv/bin/python benchmarks/log_shipping.py
    .venv/bin/python benchmarks/log_shipping.py --seconds 15 --rounds 3

Unequal on purpose: none. Both gateways share the machine, the database file and the bucket (the
local one reads only its model from it); gRPC is off on both.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from harness import free_port, load_average
from rich.console import Console
from rich.table import Table

console = Console()


def base_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_", "AWS_"))}
    return env | {"PAVE_HOME": str(home)} | extra


def wait(condition: Any, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


def pave(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pave", *args], env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"pave {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done.stdout


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {token}"
"""


def run_wrk(url: str, body: str, token: str, connections: int, seconds: float, workdir: Path) -> float:
    script = workdir / "wrk.lua"
    script.write_text(WRK_SCRIPT.format(body=json.dumps(body), token=token))
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(seconds)}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"wrk saw {errors.group(1)} error answers:\n{out}")
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if found is None:
        raise RuntimeError(out)
    return float(found.group(1))


async def run_httpx(url: str, body: bytes, token: str, connections: int, seconds: float) -> float:
    headers = {"Authorization": f"Bearer {token}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    done = 0
    errors = 0
    until = time.monotonic() + seconds
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal done, errors
            while time.monotonic() < until:
                response = await client.post(url, content=body, headers=headers)
                if response.status_code == 200:
                    done += 1
                else:
                    errors += 1

        started = time.monotonic()
        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.monotonic() - started
    if errors:
        raise RuntimeError(f"{errors} error answers")
    return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=12.0, help="per cell (at least 10)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed: apt-get install wrk")
    # moto in a process of its own: in this one its threads would share the GIL with the client
    s3_port = free_port()
    moto = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(s3_port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    wait(lambda: httpx.get(f"http://127.0.0.1:{s3_port}/", timeout=2).status_code < 500, "moto")
    aws = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=aws["AWS_ENDPOINT_URL"],
        aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
        region_name=aws["AWS_DEFAULT_REGION"],
    )
    s3.create_bucket(Bucket="bench")
    processes: list[subprocess.Popen[bytes]] = []
    results: dict[tuple[str, str], list[float]] = {}
    console.print(f"load average before: {load_average()}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory(prefix="pave-shipping-") as tmp:
        root = Path(tmp)
        port = free_port()
        db = f"sqlite:///{root / 'control-plane' / 'pave.db'}"
        shared = aws | {"PAVE_DATABASE_URL": db, "PAVE_ARTIFACT_ROOT": "s3://bench/pave"}
        cp_env = base_env(root / "control-plane", **shared)
        (root / "control-plane").mkdir()
        try:
            processes.append(
                start(
                    [sys.executable, "-m", "pave", "up", "--no-gateway", "--port", str(port)],
                    cp_env,
                    root / "up.log",
                )
            )
            url = f"http://127.0.0.1:{port}"
            wait(lambda: httpx.get(f"{url}/readyz", timeout=2).status_code == 200, "the control plane")
            token = json.loads((root / "control-plane" / "credentials.json").read_text())["token"]
            client_env = base_env(root / "client", PAVE_URL=url, PAVE_TOKEN=token)
            project = root / "client" / "bench"
            pave(client_env, "new", "bench", "-t", "tabular-classification", "--dir", str(project))
            pave(client_env, "run", str(project))
            pave(client_env, "deploy", "bench", "--version", "1")
            rows = pd.read_csv(project / "data" / "train.csv").drop(columns=["target"]).head(1)
            body = json.dumps(
                {
                    "inputs": [
                        {"name": c, "datatype": "FP64", "shape": [1], "data": rows[c].astype(float).tolist()}
                        for c in rows.columns
                    ]
                }
            )
            gateways: dict[str, str] = {}
            for mode, ship in (("local", "off"), ("shipped", "on")):
                home = root / f"gateway-{mode}"
                home.mkdir()
                gport = free_port()
                env = base_env(
                    home,
                    **shared,
                    PAVE_INFERENCE_LOG_SHIP=ship,
                    PAVE_GATEWAY_PORT=str(gport),
                    PAVE_GATEWAY_GRPC_PORT="0",
                )
                processes.append(start([sys.executable, "-m", "pave", "serve"], env, home / "serve.log"))
                gateways[mode] = f"http://127.0.0.1:{gport}/v2/models/bench/infer"
            headers = {"Authorization": f"Bearer {token}"}
            for mode, target in gateways.items():
                wait(
                    lambda t=target: (
                        httpx.post(t, content=body, headers=headers, timeout=30).status_code == 200
                    ),
                    mode,
                )
            for n in range(args.rounds):
                # alternate which goes first: the machine's load drifts within a round
                order = list(gateways.items()) if n % 2 == 0 else list(reversed(gateways.items()))
                for mode, target in order:
                    rps = run_wrk(target, body, token, args.connections, args.seconds, root)
                    results.setdefault(("wrk", mode), []).append(rps)
                    console.print(f"round {n + 1} wrk {mode}: {rps:,.0f} req/s (load {load_average()})")
                    rps = asyncio.run(run_httpx(target, body.encode(), token, args.connections, args.seconds))
                    results.setdefault(("httpx", mode), []).append(rps)
                    console.print(f"round {n + 1} httpx {mode}: {rps:,.0f} req/s (load {load_average()})")
            time.sleep(5)  # the last files close and ship
            shipped = list(
                s3.list_objects_v2(Bucket="bench", Prefix="pave/inference-log/").get("Contents", [])
            )
            local_files = list((root / "gateway-local" / "inference-log").glob("inference-*.jsonl"))
            spool_left = list(
                (root / "gateway-shipped" / "spool" / "inference-log").glob("inference-*.jsonl")
            )
        finally:
            for process in reversed(processes):
                stop(process)
            stop(moto)
    table = Table(
        title=f"inference log shipped vs local ({args.connections} connections, {args.seconds:g} s per cell)"
    )
    for column in ("client", "local req/s", "shipped req/s", "shipped / local"):
        table.add_column(column, justify="right")
    for client in ("wrk", "httpx"):
        local = results[(client, "local")]
        shipped_rps = results[(client, "shipped")]
        ratio = statistics.median(s / b for s, b in zip(shipped_rps, local, strict=True))
        table.add_row(
            client,
            " / ".join(f"{x:,.0f}" for x in local),
            " / ".join(f"{x:,.0f}" for x in shipped_rps),
            f"{ratio:.3f}",
        )
    console.print(table)
    console.print(
        f"shipped: {len(shipped)} object(s) in the bucket, {len(spool_left)} file(s) left in the spool; "
        f"local: {len(local_files)} file(s)"
    )
    console.print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
