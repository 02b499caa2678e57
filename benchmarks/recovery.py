"""Recovery drills, measured: kill -9 of a gateway worker, of the whole gateway, of the leading control plane.

Pave runs as users run it: `pave up` (token on, default gateway workers, logging on), a template
project trained with `pave run` and deployed with `pave deploy`. During each gateway drill, a closed
loop of ``--clients`` threads (keep-alive httpx clients) sends predictions for ``--seconds``; the
kill comes a third of the way in. Reported per drill: requests answered, requests failed (an error
status or a broken connection), the longest wait of one request, and the time from the kill until
the gateway (or its worker) is replaced.

The failover drill starts two control planes (`pave up --no-gateway`) on one PostgreSQL schema,
kills the one that leads the background jobs with -9 and measures the time until the other reports
``"leader": true`` on /readyz; ``--rounds`` times, the killed one restarted between rounds.

    .venv/bin/python benchmarks/recovery.py
    .venv/bin/python benchmarks/recovery.py --only failover --rounds 10
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
from harness import free_port, load_average
from rich.console import Console
from rich.table import Table

console = Console()
POSTGRES = os.environ.get("PAVE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass
class Platform:
    home: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PAVE_GATEWAY_PORT']}"

    @property
    def token(self) -> str:
        return str(json.loads((self.home / "credentials.json").read_text())["token"])

    def start(self, *extra: str) -> Platform:
        self.home.mkdir(parents=True, exist_ok=True)
        with (self.home / "up.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pave", "up", "--port", str(self.port), *extra],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        wait(lambda: ready(self) is not None, f"pave up on {self.home}", 180)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)

    def pave(self, *args: str) -> str:
        env = self.env | {"PAVE_URL": self.url, "PAVE_TOKEN": self.token}
        done = subprocess.run(
            [sys.executable, "-m", "pave", *args], env=env, capture_output=True, text=True, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"pave {' '.join(args)} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def gateway(self) -> dict[str, Any]:
        path = self.home / "run" / "gateway.json"
        wait(path.exists, "the gateway's pid file", 60)
        info: dict[str, Any] = json.loads(path.read_text())
        return info


def platform(home: Path, **env: str) -> Platform:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_"))}
    ports = {"PAVE_GATEWAY_PORT": str(free_port()), "PAVE_GATEWAY_GRPC_PORT": str(free_port())}
    return Platform(home, free_port(), base | {"PAVE_HOME": str(home)} | ports | env)


def ready(p: Platform) -> dict[str, Any] | None:
    try:
        response = httpx.get(f"{p.url}/readyz", timeout=2)
    except httpx.HTTPError:
        return None
    return response.json() if response.status_code == 200 else None


def wait(condition: Any, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except httpx.HTTPError:
            pass  # a restarting gateway holds connections in its backlog: a probe may time out
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.05)


@dataclass
class Drill:
    name: str
    answered: int = 0
    failed: int = 0
    longest: float = 0.0  # seconds, the slowest single request (answered or failed)
    replaced_after: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)  # what the failures were
    lock: threading.Lock = field(default_factory=threading.Lock)


def stream(p: Platform, body: bytes, drill: Drill, until: float) -> None:
    headers = {"Authorization": f"Bearer {p.token}", "content-type": "application/json"}
    url = f"{p.gateway_url}/v2/models/bench/infer"
    with httpx.Client(timeout=60) as client:
        while time.monotonic() < until:
            start = time.monotonic()
            try:
                status = client.post(url, content=body, headers=headers).status_code
                kind = str(status)
            except httpx.HTTPError as exc:
                kind = type(exc).__name__
            ok = kind == "200"
            took = time.monotonic() - start
            with drill.lock:
                drill.longest = max(drill.longest, took)
                if ok:
                    drill.answered += 1
                else:
                    drill.failed += 1
                    drill.kinds[kind] = drill.kinds.get(kind, 0) + 1
            if not ok:
                time.sleep(0.005)


def workers_of(pid: int) -> set[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return set()
    return {int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()}


def gateway_drill(p: Platform, body: bytes, what: str, clients: int, seconds: float) -> Drill:
    drill = Drill(what)
    until = time.monotonic() + seconds
    threads = [threading.Thread(target=stream, args=(p, body, drill, until)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    time.sleep(seconds / 3)
    master = int(p.gateway()["pid"])
    before = workers_of(master)
    killed = time.monotonic()
    if what == "worker":
        os.kill(min(before), signal.SIGKILL)
        wait(lambda: len(workers_of(master) - before) >= 1, "a new worker", 120)
        new = (workers_of(master) - before).pop()
        # replaced = the new worker answers: its metrics file appears once it serves; approximate by
        # waiting until it has a listening socket open (it inherited the gateway's)
        wait(
            lambda: any(
                os.readlink(f"/proc/{new}/fd/{fd}").startswith("socket:")
                for fd in os.listdir(f"/proc/{new}/fd")
            ),
            "the worker's socket",
            120,
        )
    else:
        os.kill(master, signal.SIGKILL)
        wait(lambda: int(p.gateway()["pid"]) != master, "a new gateway", 120)
        wait(
            lambda: httpx.get(f"{p.gateway_url}/v2/health/ready", timeout=5).status_code == 200, "ready", 120
        )
    drill.replaced_after = time.monotonic() - killed
    for thread in threads:
        thread.join()
    return drill


def prepare_gateway(root: Path) -> tuple[Platform, bytes]:
    p = platform(root / "gateway-home").start()
    project = root / "bench"
    p.pave("new", "bench", "-t", "tabular-classification", "--dir", str(project))
    p.pave("run", str(project))
    p.pave("deploy", "bench", "--version", "1")
    rows = pd.read_csv(project / "data" / "train.csv").drop(columns=["target"]).head(1)
    body = json.dumps(
        {
            "inputs": [
                {"name": c, "datatype": "FP64", "shape": [1], "data": rows[c].astype(float).tolist()}
                for c in rows.columns
            ]
        }
    ).encode()
    headers = {"Authorization": f"Bearer {p.token}"}
    wait(
        lambda: (
            httpx.post(
                f"{p.gateway_url}/v2/models/bench/infer", content=body, headers=headers, timeout=30
            ).status_code
            == 200
        ),
        "the deployment",
        180,
    )
    # every worker loads a new deployment on its own: until all have, some answer 404 or 503. A run of
    # answers on new connections (spread over the workers) says they all serve it.
    streak = 0

    def all_workers() -> bool:
        nonlocal streak
        ok = httpx.post(f"{p.gateway_url}/v2/models/bench/infer", content=body, headers=headers, timeout=30)
        streak = streak + 1 if ok.status_code == 200 else 0
        return streak >= 40

    wait(all_workers, "every worker serving the deployment", 180)
    return p, body


def failover(root: Path, rounds: int) -> list[float]:
    import sqlalchemy

    schema = f"pave_bench_{secrets.token_hex(4)}"
    url = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    first = platform(root / "cp-a", PAVE_DATABASE_URL=url).start("--no-gateway")
    (root / "cp-b").mkdir()
    shutil.copy(first.home / "credentials.json", root / "cp-b" / "credentials.json")
    second = platform(root / "cp-b", PAVE_DATABASE_URL=url).start("--no-gateway")
    planes = [first, second]
    times: list[float] = []
    try:
        for n in range(rounds):
            wait(lambda: sum(bool((ready(x) or {}).get("leader")) for x in planes) == 1, "a leader", 60)
            leader = next(x for x in planes if (ready(x) or {}).get("leader"))
            other = next(x for x in planes if x is not leader)
            leader.kill()
            killed = time.monotonic()
            wait(lambda other=other: bool((ready(other) or {}).get("leader")), "the follower to lead", 60)
            times.append(time.monotonic() - killed)
            console.print(f"failover round {n + 1}: {times[-1]:.2f} s")
            leader.start("--no-gateway")
    finally:
        for x in planes:
            x.stop()
        engine = sqlalchemy.create_engine(POSTGRES)
        with engine.begin() as conn:
            for name in (schema, f"{schema}_mlflow"):
                conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
        engine.dispose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=["gateway", "failover"], help="run one part")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=15.0, help="per gateway drill (at least 10)")
    parser.add_argument("--rounds", type=int, default=5, help="failover rounds")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (logs of every process)")
    args = parser.parse_args()
    console.print(f"load average before: {load_average()}  (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory(prefix="pave-recovery-") as tmp:
        root = args.keep or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        drills: list[Drill] = []
        if args.only in (None, "gateway"):
            p, body = prepare_gateway(root)
            try:
                for what in ("worker", "gateway"):
                    drills.append(gateway_drill(p, body, what, args.clients, args.seconds))
                    console.print(
                        f"{what} drill: failures {drills[-1].kinds or 'none'}; load {load_average()}"
                    )
            finally:
                p.stop()
        times = failover(root, args.rounds) if args.only in (None, "failover") else []
    if drills:
        table = Table(title=f"kill -9 under load ({args.clients} clients, {args.seconds:g} s per drill)")
        for column in ("killed", "answered", "failed", "failed %", "slowest request s", "replaced after s"):
            table.add_column(column, justify="right")
        for d in drills:
            share = 100 * d.failed / max(1, d.answered + d.failed)
            table.add_row(
                d.name,
                str(d.answered),
                str(d.failed),
                f"{share:.3f}",
                f"{d.longest:.2f}",
                f"{d.replaced_after:.2f}",
            )
        console.print(table)
    if times:
        ordered = sorted(times)
        console.print(
            f"control-plane failover over {len(times)} rounds: median {ordered[len(ordered) // 2]:.2f} s, "
            f"max {ordered[-1]:.2f} s, min {ordered[0]:.2f} s"
        )
    console.print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main()
