"""Serving benchmark: Pave's gateway as `pave up` runs it, against MLServer, KServe's Python model
server, `mlflow models serve` and a bare uvicorn+httptools hello-world, side by side in one run.

The same scikit-learn model (StandardScaler + LogisticRegression on breast_cancer, 30 features) is
served by each server in turn, on loopback. Pave runs as users run it: `pave up` (token on, the
default gateway workers, the inference log on), the model registered through MLflow against the
platform and deployed with the API; every request carries the token. Two request shapes are sent
to Pave: one [1, 30] tensor, and the template's own (30 named inputs). A second Pave gateway on
the same store with one worker (`pave serve --workers 1`) gives the default's p99 a reference
(`--only pave` runs both; `benchmarks/gateway_workers.py` alternates the two at c=8).

Each cell (server x client x concurrency 1, 8, 64) runs for at least ``--seconds`` (10 s) with
two load generators: our own keep-alive HTTP/1.1 client on asyncio streams (it checks every
answer against the model's own prediction) and `wrk` (Debian package: apt-get install wrk;
skipped with a note when missing). The load average is recorded before and after each server.

MLServer and KServe conflict with Pave's dependencies: each is installed into its own venv under
``~/.cache/pave-bench`` on first run. KServe's sklearn server (`sklearnserver`) is not published on
PyPI: its model class is a few lines over `kserve.Model` (joblib load, `predict` on the V2 input),
written here and run by KServe's own `ModelServer` from the `kserve` package.

    .venv/bin/python benchmarks/serving.py                    # everything (about 15 minutes)
    .venv/bin/python benchmarks/serving.py --only pave --only hello --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from harness import free_port, load_average
from rich.console import Console
from rich.table import Table

console = Console(width=200)  # the tables are wide; a log file should not wrap them
CACHE = Path("~/.cache/pave-bench").expanduser()
MLSERVER_PINS = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1"]
KSERVE_PINS = ["kserve==0.21.0"]
LEVELS = (1, 8, 64)
SERVERS = ("pave", "pave-1w", "mlserver", "kserve", "mlflow", "hello")


@dataclass
class Result:
    server: str
    client: str
    concurrency: int
    requests: int
    seconds: float
    p50: float  # ms
    p99: float  # ms
    errors: int
    load: str = ""
    cpu_us: float = float("nan")  # the server's CPU time (user + system, all its processes) per request
    spread: str = ""  # the client's connections held by each server process, mid-cell ("7/1")

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


@dataclass
class Server:
    name: str
    command: list[str]
    url: str
    health: str
    request: Callable[[int], tuple[str, bytes]]  # row index -> (path, body)
    label: Callable[[dict[str, Any]], int] | None  # response JSON -> predicted label (None: not checked)
    env: dict[str, str] | None = None
    cwd: Path | None = None
    headers: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None  # started elsewhere (pave up)


def descendants(pid: int) -> list[int]:
    """A process and all its descendants (from /proc)."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def serving_root(pid: int) -> int:
    """The process that serves: under `pave up`, its gateway (`pave serve`), whose CPU alone is
    counted (the control plane's background work is not the gateway's per-request cost)."""
    for candidate in descendants(pid):
        try:
            command = Path(f"/proc/{candidate}/cmdline").read_bytes().split(b"\0")
        except FileNotFoundError:
            continue
        if b"pave" in command and b"serve" in command:
            return candidate
    return pid


def connection_spread(root: int, port: int) -> str:
    """Established connections to ``port`` held by each process under ``root``, most first ("7/1").

    Several gateway workers accept from one shared socket: how evenly the clients' keep-alive
    connections land on them is part of the p99 (a worker holding 7 of 8 serves alone).
    """
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 01: ESTABLISHED
                inodes.add(f"socket:[{fields[9]}]")
    counts = []
    for pid in descendants(root):
        try:
            fds = list(Path(f"/proc/{pid}/fd").iterdir())
        except (FileNotFoundError, PermissionError):
            continue
        held = 0
        for fd in fds:
            try:
                held += os.readlink(fd) in inodes
            except OSError:
                continue
        if held:
            counts.append(held)
    return "/".join(map(str, sorted(counts, reverse=True)))


def _sample_spread(into: list[str], root: int, port: int) -> None:
    into.append(connection_spread(root, port))


def tree_cpu(pid: int) -> float:
    """CPU seconds (user + system) used so far by a process and all its descendants, from /proc.

    A busy machine stretches wall-clock times far more than the CPU a request costs the server,
    so this column compares servers across runs where the load average differs.
    """
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for current in descendants(pid):
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rpartition(")")[2].split()
        except FileNotFoundError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def train(workdir: Path) -> tuple[Any, Any, Path, Path]:
    """Train the model; save it as an MLflow model (mlflow serve) and as joblib (MLServer, KServe)."""
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
    joblib_dir = workdir / "joblib"
    joblib_dir.mkdir()
    joblib.dump(model, joblib_dir / "model.joblib")
    return model, X, model_dir, joblib_dir


def ensure_venv(name: str, pins: list[str], probe: str) -> Path:
    """A venv of its own under ~/.cache/pave-bench with ``pins`` and Pave's scikit-learn."""
    import sklearn

    venv = CACHE / name
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0:
        return venv / "bin"
    console.print(f"installing {' '.join(pins)} into {venv} ...")
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", *pins, f"scikit-learn=={sklearn.__version__}", "joblib"],
        check=True,
    )
    return venv / "bin"


def tensor_body(X: Any, i: int) -> bytes:
    row = X.iloc[i].to_numpy(dtype=np.float64).tolist()
    body = {
        "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, len(row)], "data": row}],
        "outputs": [{"name": "predict"}],
    }
    return json.dumps(body).encode()


def named_body(X: Any, i: int) -> bytes:
    """The golden-path template's request: one named input per column."""
    row = X.iloc[i]
    inputs = [{"name": c, "datatype": "FP64", "shape": [1], "data": [float(row[c])]} for c in X.columns]
    return json.dumps({"inputs": inputs, "outputs": [{"name": "predict"}]}).encode()


def oip_label(doc: dict[str, Any]) -> int:
    return int(doc["outputs"][0]["data"][0])


# --- Pave, as `pave up` runs it ------------------------------------------------------------------


def start_pave(workdir: Path, model: Any, X: Any) -> tuple[subprocess.Popen[bytes], dict[str, str], str, str]:
    """`pave up` on a fresh home with the model registered and deployed; (process, env, url, token)."""
    import mlflow

    home = workdir / "pave-home"
    port, gateway_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_"))}
    env |= {"PAVE_HOME": str(home)}
    command = [sys.executable, "-m", "pave", "up", "--port", str(port), "--gateway-port", str(gateway_port)]
    command += ["--gateway-grpc-port", str(free_port())]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=(workdir / "pave-up.log").open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait(url + "/readyz", proc, "pave up")
    token = json.loads((home / "credentials.json").read_text())["token"]
    auth = {"Authorization": f"Bearer {token}"}
    httpx.post(f"{url}/api/v1/projects", json={"name": "cancer"}, headers=auth, timeout=30).raise_for_status()
    os.environ |= {"MLFLOW_TRACKING_URI": f"{url}/mlflow", "MLFLOW_TRACKING_TOKEN": token}
    try:
        mlflow.set_experiment("cancer")
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model, name="model", registered_model_name="cancer", input_example=X.head(3)
            )
    finally:
        for key in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN"):
            os.environ.pop(key, None)
        mlflow.set_tracking_uri(None)
    deployed = httpx.put(
        f"{url}/api/v1/projects/cancer/deployment", json={"version": "1"}, headers=auth, timeout=60
    )
    deployed.raise_for_status()
    gateway = f"http://127.0.0.1:{gateway_port}"
    wait(gateway + "/v2/models/cancer/ready", proc, "the gateway", headers=auth)
    return proc, env, gateway, token


def servers(
    X: Any, model_dir: Path, joblib_dir: Path, workdir: Path, only: set[str], pave: tuple[Any, ...] | None
) -> list[Server]:
    out: list[Server] = []
    tensors = [tensor_body(X, i) for i in range(len(X))]
    named = [named_body(X, i) for i in range(len(X))]
    if pave is not None:
        proc, env, gateway, token = pave
        auth = {"Authorization": f"Bearer {token}"}
        if "pave" in only:
            for shape, bodies in (("tensor", tensors), ("named", named)):
                out.append(
                    Server(
                        name=f"pave ({shape})",
                        command=[],
                        url=gateway,
                        health="/v2/models/cancer/ready",
                        request=lambda i, b=bodies: ("/v2/models/cancer/infer", b[i]),  # type: ignore[misc]
                        label=oip_label,
                        headers=auth,
                        process=proc,
                    )
                )
        if "pave-1w" in only:
            port = free_port()
            # The gateway's rate limit is per token and process: the default gateway's workers give
            # the benchmark's token one bucket each. The one-worker reference gets the same budget per
            # gateway, or its c=8 and c=64 cells would measure 429s instead of answers.
            from pave.config import Settings

            defaults = Settings()
            workers = defaults.gateway_workers or os.cpu_count() or 1
            rates = {role: rate * workers for role, rate in defaults.gateway_rate_limits.items()}
            out.append(
                Server(
                    name="pave (1 worker)",
                    command=[
                        sys.executable,
                        "-m",
                        "pave",
                        "serve",
                        "--port",
                        str(port),
                        "--workers",
                        "1",
                        "--grpc-port",
                        "0",
                    ],
                    url=f"http://127.0.0.1:{port}",
                    health="/v2/health/ready",
                    request=lambda i: ("/v2/models/cancer/infer", tensors[i]),
                    label=oip_label,
                    headers=auth,
                    env=env | {"PAVE_GATEWAY_RATE_LIMITS": json.dumps(rates)},
                )
            )
    if "mlserver" in only:
        bindir = ensure_venv("mlserver", MLSERVER_PINS, "import mlserver_sklearn")
        port = free_port()
        folder = workdir / "mlserver"
        shutil.copytree(joblib_dir, folder)
        settings = {
            "host": "127.0.0.1",
            "http_port": port,
            "grpc_port": free_port(),
            "metrics_port": free_port(),
            # in-process inference: 1.7.1's worker processes die at start here ("no current event
            # loop"), and no IPC is also its fastest setting
            "parallel_workers": 0,
        }
        (folder / "settings.json").write_text(json.dumps(settings))
        model_settings = {
            "name": "cancer",
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }
        (folder / "model-settings.json").write_text(json.dumps(model_settings))
        out.append(
            Server(
                name="MLServer (sklearn)",
                command=[str(bindir / "mlserver"), "start", str(folder)],
                url=f"http://127.0.0.1:{port}",
                health="/v2/models/cancer/ready",
                request=lambda i: ("/v2/models/cancer/infer", tensors[i]),
                label=oip_label,
                cwd=folder,
            )
        )
    if "kserve" in only:
        bindir = ensure_venv("kserve", KSERVE_PINS, "import kserve")
        port = free_port()
        script = workdir / "kserve_sklearn.py"
        script.write_text(KSERVE_SKLEARN)
        out.append(
            Server(
                name="KServe (sklearn)",
                command=[str(bindir / "python"), str(script), str(joblib_dir), str(port), str(free_port())],
                url=f"http://127.0.0.1:{port}",
                health="/v2/models/cancer/ready",
                request=lambda i: ("/v2/models/cancer/infer", tensors[i]),
                label=oip_label,
            )
        )
    if "mlflow" in only:
        port = free_port()
        columns = list(X.columns)
        frames = [
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
                request=lambda i: ("/invocations", frames[i]),
                label=lambda doc: int(doc["predictions"][0]),
                env={"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
            )
        )
    if "hello" in only:
        port = free_port()
        script = workdir / "hello.py"
        script.write_text(HELLO)
        out.append(
            Server(
                name="hello-world (uvicorn+httptools)",
                command=[
                    sys.executable,
                    "-m",
                    "uvicorn",
                    "hello:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--http",
                    "httptools",
                    "--loop",
                    "uvloop",
                    "--workers",
                    str(os.cpu_count() or 1),
                    "--log-level",
                    "warning",
                    "--no-access-log",
                ],
                url=f"http://127.0.0.1:{port}",
                health="/",
                request=lambda i: ("/", tensors[i]),
                label=None,
                cwd=workdir,
            )
        )
    return out


# The ceiling: as little as an ASGI app can do per request (read the body, answer fixed JSON).
HELLO = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    more = True
    while more:
        more = (await receive()).get("more_body", False)
    body = b'{"hello":"world"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""

# What KServe's sklearnserver does (joblib load; predict on the V2 input), over kserve.Model and
# KServe's own ModelServer.
KSERVE_SKLEARN = """
import sys
import uuid
import joblib
import kserve
from kserve import InferOutput, InferRequest, InferResponse


class SKLearnModel(kserve.Model):
    def __init__(self, name, model_dir):
        super().__init__(name)
        self.model_dir = model_dir

    def load(self):
        self._model = joblib.load(f"{self.model_dir}/model.joblib")
        self.ready = True
        return self.ready

    def predict(self, payload, headers=None, response_headers=None):
        instances = payload.inputs[0].as_numpy()
        result = self._model.predict(instances)
        output = InferOutput(name="predict", shape=list(result.shape), datatype="INT64", data=result.tolist())
        return InferResponse(
            model_name=self.name, infer_outputs=[output], response_id=payload.id or str(uuid.uuid4())
        )


if __name__ == "__main__":
    model = SKLearnModel("cancer", sys.argv[1])
    model.load()
    kserve.ModelServer(http_port=int(sys.argv[2]), grpc_port=int(sys.argv[3]), workers=1).start([model])
"""


def wait(
    url: str,
    proc: subprocess.Popen[bytes],
    what: str,
    headers: dict[str, str] | None = None,
    timeout: float = 300,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited")
        try:
            if httpx.get(url, timeout=2, headers=headers).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{what} did not become ready at {url}")


def start(server: Server, log: Path) -> subprocess.Popen[bytes]:
    if server.process is not None:
        return server.process
    env = {**os.environ, **(server.env or {})}
    proc = subprocess.Popen(
        server.command,
        env=env,
        cwd=server.cwd,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait(server.url + server.health, proc, server.name, server.headers)
    except RuntimeError:
        stop(proc)
        raise
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


# --- load generators -------------------------------------------------------------------------------


async def load_raw(server: Server, expected: list[int], concurrency: int, seconds: float) -> Result:
    """A minimal keep-alive HTTP/1.1 client on asyncio streams (tens of microseconds a request:
    a general-purpose client would measure itself); every answer is checked."""
    latencies: list[float] = []
    errors = 0
    counter = 0
    n_rows = len(expected)
    host = server.url.removeprefix("http://")
    extra = "".join(f"{k}: {v}\r\n" for k, v in server.headers.items())

    def raw(i: int) -> bytes:
        path, body = server.request(i)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{extra}"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode() + body

    requests = [raw(i) for i in range(n_rows)]

    async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, i: int) -> bool:
        writer.write(requests[i])
        status, body = await read_answer(reader)
        return status == 200 and (server.label is None or server.label(json.loads(body)) == expected[i])

    streams = [await asyncio.open_connection(*host.split(":")) for _ in range(concurrency)]
    for i in range(200):  # warm-up, not measured
        await exchange(*streams[i % concurrency], i % n_rows)
    start_at = time.perf_counter()
    deadline = start_at + seconds

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal counter, errors
        while time.perf_counter() < deadline:
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
    elapsed = time.perf_counter() - start_at
    for _, writer in streams:
        writer.close()
    return summarise(server, "own", concurrency, latencies, elapsed, errors)


async def read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 answer framed by its content length: (status, body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return int(head.split(b" ", 2)[1]), await reader.readexactly(length)


def summarise(
    server: Server, client: str, concurrency: int, latencies: list[float], elapsed: float, errors: int
) -> Result:
    """A cell's result from its latencies (seconds): the median and the 99th percentile in ms."""
    ordered = sorted(latencies)
    return Result(
        server.name,
        client,
        concurrency,
        len(latencies),
        elapsed,
        ordered[len(ordered) // 2] * 1000,
        ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
        errors,
    )


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
{headers}
"""


def load_wrk(server: Server, concurrency: int, seconds: float, workdir: Path) -> Result | None:
    """The same load from wrk (one fixed request body); None when wrk is not installed."""
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    path, body = server.request(0)
    script = workdir / "wrk.lua"
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in server.headers.items())
    script.write_text(WRK_SCRIPT.format(body=json.dumps(body.decode()), headers=headers))
    threads = min(concurrency, 2)
    done = subprocess.run(
        [
            wrk,
            "-t",
            str(threads),
            "-c",
            str(concurrency),
            "-d",
            f"{seconds:.0f}s",
            "--latency",
            "-s",
            str(script),
            server.url + path,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    out = done.stdout
    match = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    if done.returncode != 0 or match is None:
        console.print(f"[red]wrk failed:[/] {done.stderr or out}")
        return None
    scale = {"s": 1.0, "ms": 0.001, "m": 60.0}[match[3]]
    errors = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors += sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return Result(
        server.name,
        "wrk",
        concurrency,
        int(match[1]),
        float(match[2]) * scale,
        _wrk_ms(out, "50%"),
        _wrk_ms(out, "99%"),
        errors,
    )


def _wrk_ms(out: str, percentile: str) -> float:
    match = re.search(rf"^\s*{re.escape(percentile)}\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    if match is None:
        return float("nan")
    return float(match[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]


# --- the run ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", action="append", choices=SERVERS)
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each cell (at least 10)")
    args = parser.parse_args()
    only = set(args.only or SERVERS)
    if "pave" in only:  # the aim "p99 at c=8, default workers <= one worker" needs both
        only.add("pave-1w")
    seconds = max(args.seconds, 10.0)

    workdir = Path(tempfile.mkdtemp(prefix="pave-bench-"))
    model, X, model_dir, joblib_dir = train(workdir)
    expected = model.predict(X).tolist()
    console.print(f"load average at start: {load_average()} ({os.cpu_count()} cores)")
    pave = start_pave(workdir, model, X) if only & {"pave", "pave-1w"} else None
    results: list[Result] = []
    try:
        for server in servers(X, model_dir, joblib_dir, workdir, only, pave):
            console.print(f"[bold]{server.name}[/bold]: starting (load average {load_average()})")
            proc = start(server, workdir / f"{re.sub(r'[^a-z0-9]+', '-', server.name.lower())}.log")
            try:
                root = serving_root(proc.pid)
                for concurrency in LEVELS:
                    cells = []
                    for client in ("own", "wrk"):
                        before = tree_cpu(root)
                        spread: list[str] = []
                        port = int(server.url.rsplit(":", 1)[1])
                        sampler = threading.Timer(seconds / 2, _sample_spread, args=(spread, root, port))
                        sampler.start()
                        if client == "own":
                            result = asyncio.run(load_raw(server, expected, concurrency, seconds))
                        else:
                            result = load_wrk(server, concurrency, seconds, workdir)  # type: ignore[assignment]
                        sampler.join()
                        if result is not None and result.requests:
                            result.cpu_us = (tree_cpu(root) - before) / result.requests * 1e6
                            result.spread = spread[0] if spread else ""
                        cells.append(result)
                    for result in cells:
                        if result is None:
                            continue
                        result.load = load_average()
                        results.append(result)
                        console.print(
                            f"  {result.client} c={concurrency}: {result.throughput:,.0f} req/s, "
                            f"p50 {result.p50:.2f} ms, p99 {result.p99:.2f} ms, {result.errors} errors, "
                            f"server CPU {result.cpu_us:.0f} µs/request, connections by process "
                            f"{result.spread or '-'}, load {result.load}"
                        )
            finally:
                if server.process is None:
                    stop(proc)
    finally:
        if pave is not None:
            stop(pave[0])
    console.print(f"load average at the end: {load_average()}")
    report(results)


def report(results: list[Result]) -> None:
    table = Table(title="Serving, loopback, side by side")
    columns = (
        "client",
        "server",
        "c",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p99 ms",
        "CPU µs/req",
        "conns",
    )
    for column in (*columns, "load avg"):
        table.add_column(column, justify="left" if column in ("client", "server") else "right")
    for r in results:
        table.add_row(
            r.client,
            r.server,
            str(r.concurrency),
            str(r.requests),
            str(r.errors),
            f"{r.throughput:,.0f}",
            f"{r.p50:.2f}",
            f"{r.p99:.2f}",
            f"{r.cpu_us:.0f}",
            r.spread,
            r.load,
        )
    console.print(table)
    by = {(r.client, r.server, r.concurrency): r for r in results}
    pave = "pave (tensor)"
    peers = (
        "MLServer (sklearn)",
        "KServe (sklearn)",
        "mlflow models serve",
        "hello-world (uvicorn+httptools)",
    )
    ratios = Table(
        title="Pave (as `pave up` runs it) relative to each: throughput ratio; p99 ratio (lower is better)"
    )
    for column in ("client", "c", *peers):
        ratios.add_column(column, justify="right")
    for client in ("own", "wrk"):
        for c in LEVELS:
            mine = by.get((client, pave, c))
            if mine is None:
                continue
            cells = []
            for peer in peers:
                them = by.get((client, peer, c))
                cells.append(
                    f"{mine.throughput / them.throughput:.2f}x; p99 {mine.p99 / them.p99:.2f}x"
                    if them
                    else "-"
                )
            ratios.add_row(client, str(c), *cells)
    console.print(ratios)
    aims = Table(title="Aims")
    for column in ("client", "aim", "measured", "met"):
        aims.add_column(column)
    for client in ("own", "wrk"):
        for c in LEVELS:
            named, tensor = by.get((client, "pave (named)", c)), by.get((client, pave, c))
            if named and tensor:
                ratio = named.throughput / tensor.throughput
                aims.add_row(
                    client,
                    f"named inputs within 20% of one tensor, c={c}",
                    f"{ratio:.2f}x",
                    str(ratio >= 0.8),
                )
        default, one = by.get((client, pave, 8)), by.get((client, "pave (1 worker)", 8))
        if default and one:
            aims.add_row(
                client,
                "p99 at c=8, default workers <= one worker",
                f"{default.p99:.2f} vs {one.p99:.2f} ms",
                str(default.p99 <= one.p99),
            )
        mine, hello = by.get((client, pave, 64)), by.get((client, peers[-1], 64))
        if mine and hello:
            ratio = mine.throughput / hello.throughput
            aims.add_row(
                client, "c=64: at least half the hello-world's req/s", f"{ratio:.2f}x", str(ratio >= 0.5)
            )
    console.print(aims)


if __name__ == "__main__":
    main()
