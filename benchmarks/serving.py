"""Serving benchmark: Pave's gateway vs `mlflow models serve` vs MLServer (sklearn runtime).

The same trained scikit-learn model (StandardScaler + LogisticRegression on breast_cancer, 30
features) is served by each server in turn, one process each, on loopback; the same async httpx
load generator drives it at concurrency 1, 8 and 64 (bounded by request count and by time) and
checks every answer against the model's own prediction. Also measured: the in-process predict
time of the model, to give Pave's overhead at concurrency 1.

MLServer conflicts with Pave's dependencies, so it is installed into its own venv
(``~/.cache/pave-bench/mlserver``) on first run.

    .venv/bin/python benchmarks/serving.py                 # all servers
    .venv/bin/python benchmarks/serving.py --only pave --requests 2000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from rich.console import Console
from rich.table import Table

console = Console()
MLSERVER_VENV = Path("~/.cache/pave-bench/mlserver").expanduser()
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1"]
LEVELS = (1, 8, 64)


@dataclass
class Result:
    server: str
    concurrency: int
    requests: int
    seconds: float
    latencies: list[float]
    errors: int
    client: str = "httpx"
    cpu: float = 0.0  # CPU seconds the server's processes used per request (user + system)

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass
class Server:
    name: str
    command: list[str]
    url: str
    health: str
    request: Callable[[int], tuple[str, bytes]]  # row index -> (path, body)
    label: Callable[[dict[str, Any]], int]  # response JSON -> predicted label
    env: dict[str, str] | None = None
    cwd: Path | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def train(workdir: Path) -> tuple[Any, Any, Path, Path]:
    """Train the model, log it with MLflow, and save the same estimator as joblib for MLServer."""
    import joblib
    import mlflow
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = load_breast_cancer(return_X_y=True, as_frame=True)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(X, y)
    model_dir = workdir / "mlflow-model"
    mlflow.sklearn.save_model(model, str(model_dir), input_example=X.head(3))
    mlserver_dir = workdir / "mlserver"
    mlserver_dir.mkdir()
    joblib.dump(model, mlserver_dir / "model.joblib")
    return model, X, model_dir, mlserver_dir


def ensure_mlserver() -> Path:
    python = MLSERVER_VENV / "bin" / "python"
    installed = (
        python.exists()
        and subprocess.run([str(python), "-c", "import mlserver_sklearn"], capture_output=True).returncode
        == 0
    )
    if not installed:
        console.print(f"installing MLServer into {MLSERVER_VENV} ...")
        import sklearn

        subprocess.run([sys.executable, "-m", "venv", str(MLSERVER_VENV)], check=True)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                *MLSERVER_PINS,
                f"scikit-learn=={sklearn.__version__}",
            ],
            check=True,
        )
    return MLSERVER_VENV / "bin"


def oip_body(X: Any, i: int) -> bytes:
    row = X.iloc[i].to_numpy(dtype=np.float64).tolist()
    body = {
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, len(row)], "data": row}],
        "outputs": [{"name": "predict"}],
    }
    return json.dumps(body).encode()


def servers(X: Any, model_dir: Path, mlserver_dir: Path, workdir: Path, only: set[str]) -> list[Server]:
    out: list[Server] = []
    bodies_oip = [oip_body(X, i) for i in range(len(X))]
    if "pave" in only:
        port = free_port()
        deployments = workdir / "deployments.json"
        deployments.write_text(
            json.dumps(
                {"deployments": [{"name": "cancer", "versions": [{"version": "1", "uri": str(model_dir)}]}]}
            )
        )
        out.append(
            Server(
                name="pave",
                command=[
                    sys.executable,
                    "-m",
                    "pave.serving",
                    "--deployments",
                    str(deployments),
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                url=f"http://127.0.0.1:{port}",
                health="/v2/health/ready",
                request=lambda i: ("/v2/models/cancer/infer", bodies_oip[i]),
                label=lambda doc: int(doc["outputs"][0]["data"][0]),
                env={"PAVE_HOME": str(workdir / "pave-home")},
            )
        )
    if "mlflow" in only:
        port = free_port()
        columns = list(X.columns)
        bodies = [
            json.dumps({"dataframe_split": {"columns": columns, "data": [X.iloc[i].tolist()]}}).encode()
            for i in range(len(X))
        ]
        mlflow_bin = str(Path(sys.executable).parent / "mlflow")
        out.append(
            Server(
                name="mlflow models serve",
                command=[
                    mlflow_bin,
                    "models",
                    "serve",
                    "-m",
                    str(model_dir),
                    "--env-manager",
                    "local",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-w",
                    "1",
                ],
                url=f"http://127.0.0.1:{port}",
                health="/ping",
                request=lambda i: ("/invocations", bodies[i]),
                label=lambda doc: int(doc["predictions"][0]),
                env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
            )
        )
    if "mlserver" in only:
        bindir = ensure_mlserver()
        port = free_port()
        (mlserver_dir / "settings.json").write_text(
            json.dumps(
                {
                    "host": "127.0.0.1",
                    "http_port": port,
                    "grpc_port": free_port(),
                    "metrics_port": free_port(),
                    # in-process inference: 1.7.1's worker processes die at start here
                    # ("no current event loop"), and no IPC is also its fastest setting
                    "parallel_workers": 0,
                }
            )
        )
        (mlserver_dir / "model-settings.json").write_text(
            json.dumps(
                {
                    "name": "cancer",
                    "implementation": "mlserver_sklearn.SKLearnModel",
                    "parameters": {"uri": "./model.joblib"},
                }
            )
        )
        out.append(
            Server(
                name="MLServer (sklearn)",
                command=[str(bindir / "mlserver"), "start", str(mlserver_dir)],
                url=f"http://127.0.0.1:{port}",
                health="/v2/models/cancer/ready",
                request=lambda i: ("/v2/models/cancer/infer", bodies_oip[i]),
                label=lambda doc: int(doc["outputs"][0]["data"][0]),
                cwd=mlserver_dir,
            )
        )
    return out


def start(server: Server, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **(server.env or {})}
    proc = subprocess.Popen(
        server.command,
        env=env,
        cwd=server.cwd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited; see {log}")
        try:
            if httpx.get(server.url + server.health, timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    stop(proc)
    raise RuntimeError(f"{server.name} did not become ready; see {log}")


def server_cpu(proc: subprocess.Popen[bytes]) -> float:
    """CPU seconds (user + system) used so far by every process of the server's session."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == proc.pid:  # session id: the server was started in a session of its own
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


async def load(server: Server, expected: list[int], concurrency: int, total: int, seconds: float) -> Result:
    """Send up to ``total`` requests from ``concurrency`` workers for at most ``seconds``."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    n_rows = len(expected)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"content-type": "application/json"}
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=60, headers=headers) as client:
        for i in range(min(100, total)):  # warm-up, not measured
            path, body = server.request(i % n_rows)
            await client.post(path, content=body)
        start = time.perf_counter()
        deadline = start + seconds

        async def worker() -> None:
            nonlocal counter, errors
            while counter < total and time.perf_counter() < deadline:
                i = counter % n_rows
                counter += 1
                path, body = server.request(i)
                t0 = time.perf_counter()
                try:
                    response = await client.post(path, content=body)
                    ok = response.status_code == 200 and server.label(response.json()) == expected[i]
                except (httpx.HTTPError, KeyError, ValueError):
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return Result(server.name, concurrency, len(latencies), elapsed, latencies, errors)


async def load_raw(
    server: Server, expected: list[int], concurrency: int, total: int, seconds: float
) -> Result:
    """The same load from a minimal keep-alive HTTP/1.1 client on asyncio streams.

    httpx costs the client milliseconds per request on a busy 2-core machine, so at high concurrency
    it measures itself more than the server; this client costs tens of microseconds.
    """
    latencies: list[float] = []
    errors = 0
    counter = 0
    n_rows = len(expected)
    host = server.url.removeprefix("http://")

    def raw(i: int) -> bytes:
        path, body = server.request(i)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    requests = [raw(i) for i in range(n_rows)]

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
        writer.write(requests[i])
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        body = await reader.readexactly(length)
        return status == 200 and server.label(json.loads(body)) == expected[i]

    streams = [await asyncio.open_connection(*host.split(":")) for _ in range(concurrency)]
    for i in range(min(100, total)):  # warm-up, not measured
        await exchange(*streams[0], i % n_rows)
    start = time.perf_counter()
    deadline = start + seconds

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter, errors
        while counter < total and time.perf_counter() < deadline:
            i = counter % n_rows
            counter += 1
            t0 = time.perf_counter()
            try:
                ok = await exchange(reader, writer, i)
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError):
                ok = False
            latencies.append(time.perf_counter() - t0)
            errors += not ok

    await asyncio.gather(*(worker(r, w) for r, w in streams))
    elapsed = time.perf_counter() - start
    for _, writer in streams:
        writer.close()
    return Result(server.name, concurrency, len(latencies), elapsed, latencies, errors)


def in_process(predict: Callable[[Any], Any], X: Any) -> tuple[list[float], float]:
    """Per-call time of a predict function on one row (a float64 numpy matrix, as the gateway
    builds it), and its CPU time per call."""
    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    rows = X.to_numpy(dtype=np.float64)
    times = []
    cpu0 = time.process_time()
    for i in range(2000):
        row = rows[i % len(rows)][None, :]
        t0 = time.perf_counter()
        predict(row)
        times.append(time.perf_counter() - t0)
    return times, (time.process_time() - cpu0) / 2000


def in_process_both(model: Any, X: Any, model_dir: Path, workdir: Path) -> list[InProcess]:
    """The estimator's own predict_proba, and the predict path Pave's gateway picked for it."""
    from pave.serving.loading import load_model

    loaded = load_model(str(model_dir), tracking_uri=None, cache_dir=workdir / "model-cache")
    path = "compiled" if "_compiled_outputs" in loaded.predict.__qualname__ else "sklearn"
    measured = []
    for label, predict in (
        ("sklearn predict_proba", model.predict_proba),
        (f"Pave's predict path ({path}: labels + probabilities)", loaded.predict),
    ):
        times, cpu = in_process(predict, X)
        measured.append(InProcess(label, times, cpu))
    return measured


@dataclass
class InProcess:
    label: str
    times: list[float]
    cpu: float

    def pct(self, q: float) -> float:
        ordered = sorted(self.times)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=["pave", "mlflow", "mlserver"])
    parser.add_argument("--requests", type=int, default=3000, help="most requests per run")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest run")
    args = parser.parse_args()
    only = set(args.only or ["pave", "mlflow", "mlserver"])

    workdir = Path(tempfile.mkdtemp(prefix="pave-bench-"))
    model, X, model_dir, mlserver_dir = train(workdir)
    expected = model.predict(X).tolist()
    console.print(f"load average at start: {load_average()}")
    measured = in_process_both(model, X, model_dir, workdir)
    results: list[Result] = []
    for server in servers(X, model_dir, mlserver_dir, workdir, only):
        console.print(f"[bold]{server.name}[/bold]: starting")
        proc = start(server, workdir / f"{server.name.split()[0].lower()}.log")
        try:
            for client, run in (("httpx", load), ("raw", load_raw)):
                for concurrency in LEVELS:
                    cpu0 = server_cpu(proc)
                    result = asyncio.run(run(server, expected, concurrency, args.requests, args.seconds))
                    result.client = client
                    result.cpu = (server_cpu(proc) - cpu0) / (len(result.latencies) + min(100, args.requests))
                    console.print(
                        f"  {client} c={concurrency}: {result.throughput:,.0f} req/s, "
                        f"p50 {result.pct(0.5):.2f} ms, p99 {result.pct(0.99):.2f} ms, "
                        f"{result.cpu * 1000:.2f} ms CPU/request, {result.errors} errors"
                    )
                    results.append(result)
        finally:
            stop(proc)
    console.print(f"load average at the end: {load_average()}")
    report(results, measured)


def report(results: list[Result], measured: list[InProcess]) -> None:
    table = Table(title="Serving: one process per server, loopback")
    columns = (
        "client",
        "server",
        "concurrency",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU ms/req",
    )
    for column in columns:
        table.add_column(column, justify="left" if column in ("client", "server") else "right")
    for r in results:
        table.add_row(
            r.client,
            r.server,
            str(r.concurrency),
            str(r.requests),
            str(r.errors),
            f"{r.throughput:,.0f}",
            f"{r.pct(0.5):.2f}",
            f"{r.pct(0.99):.2f}",
            f"{r.cpu * 1000:.3f}",
        )
    console.print(table)

    by = {(r.client, r.server, r.concurrency): r for r in results}
    ratios = Table(title="Pave relative to the others (throughput ratio; p99 ratio, lower is better)")
    for column in ("client", "concurrency", "vs", "throughput x", "p99 x"):
        ratios.add_column(column, justify="right")
    for client in ("httpx", "raw"):
        for other in ("mlflow models serve", "MLServer (sklearn)"):
            for c in LEVELS:
                pave, them = by.get((client, "pave", c)), by.get((client, other, c))
                if pave and them:
                    ratios.add_row(
                        client,
                        str(c),
                        other,
                        f"{pave.throughput / them.throughput:.2f}",
                        f"{pave.pct(0.99) / them.pct(0.99):.2f}",
                    )
    console.print(ratios)

    overhead = Table(title="Pave at concurrency 1 above in-process predict (ms)")
    for column in ("", "p50", "p99", "CPU"):
        overhead.add_column(column, justify="right")
    for m in measured:
        overhead.add_row(
            f"in-process: {m.label}", f"{m.pct(0.5):.3f}", f"{m.pct(0.99):.3f}", f"{m.cpu * 1000:.3f}"
        )
    for client in ("httpx", "raw"):
        pave1 = by.get((client, "pave", 1))
        if not pave1:
            continue
        overhead.add_row(
            f"pave c=1, {client} client",
            f"{pave1.pct(0.5):.3f}",
            f"{pave1.pct(0.99):.3f}",
            f"{pave1.cpu * 1000:.3f}",
        )
        for m in measured:
            overhead.add_row(
                f"  overhead above {m.label.split(' (')[0]} ({client} client included)",
                f"{pave1.pct(0.5) - m.pct(0.5):.3f}",
                f"{pave1.pct(0.99) - m.pct(0.99):.3f}",
                f"{(pave1.cpu - m.cpu) * 1000:.3f}",
            )
    console.print(overhead)


if __name__ == "__main__":
    main()
