"""Test helpers shared by every test package: real services, a real `pave up` in a subprocess.

Imported by name (``from pave_testing import PaveServer``); fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

POSTGRES_URL = os.environ.get("PAVE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
REDIS_URL = os.environ.get("PAVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_SERVICES = os.environ.get("PAVE_REQUIRE_SERVICES") == "1"


def need_service(name: str, how: str, check: Callable[[], None]) -> None:
    """Skip (or, under .ci/run, fail) when a real service is not reachable."""
    try:
        check()
    except Exception as exc:
        message = f"{name} is not reachable ({exc.__class__.__name__}: {str(exc)[:120]}); {how}"
        if REQUIRE_SERVICES:
            pytest.fail(message)
        pytest.skip(message)


@contextlib.contextmanager
def mlflow_globals(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking and registry URIs set to ``uri``, and both reset after.

    ``execute_project`` leaves no global behind, but ``models:/`` loading needs one; another test
    may have set either, so a test that needs them sets both.
    """
    import mlflow

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)  # type: ignore[arg-type]


def register_sklearn(url: str, project: str, model: Any, example: Any) -> None:
    """Log a fitted scikit-learn ``model`` through the platform at ``url`` (its MLflow, the caller's
    MLFLOW_TRACKING_TOKEN) into the project's experiment, registered as the project's model (its next
    version), with its requirements named as `pave run` names them (no slow inference of them)."""
    import mlflow

    from pave.registry.flavors import pip_requirements

    with mlflow_globals(f"{url}/mlflow"):
        mlflow.set_experiment(project)
        with mlflow.start_run():
            mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=example.head(3),
                registered_model_name=project,
                pip_requirements=pip_requirements("sklearn"),
            )


# For `ray start` in tests: no usage report, and a raylet that waits up to 120 s for its agents (Ray's
# default gives up after about 16 s, which a loaded 2-core machine can exceed).
RAY_START_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_raylet_start_wait_time_s": "120"}


def drop_schemas(*names: str) -> None:
    """Drop test schemas on the real PostgreSQL, even while a process still reads them.

    Fixture teardown can run before the `pave up` that used the schema has stopped (fixtures
    tear down in reverse order of set-up), and DROP SCHEMA then deadlocks with the server's
    open transactions. The sessions holding locks in those schemas are ended first, and the
    drop is retried if one slipped in between.
    """
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    engine = create_engine(POSTGRES_URL)
    holders = text(
        "SELECT DISTINCT l.pid FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = ANY(:names) AND l.pid <> pg_backend_pid()"
    )
    try:
        for attempt in range(5):
            try:
                with engine.begin() as conn:
                    for (pid,) in conn.execute(holders, {"names": list(names)}).all():
                        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                with engine.begin() as conn:
                    for name in names:
                        conn.execute(text(f'DROP SCHEMA IF EXISTS "{name}" CASCADE'))
                return
            except OperationalError:
                if attempt == 4:
                    raise
                time.sleep(0.5)
    finally:
        engine.dispose()


def mlflow_store(path: Path) -> str:
    """The URL of a new MLflow SQLite store at ``path``, its schema copied from the machine's template
    as `pave up` makes one (MLflow's own migrations take seconds per new store)."""
    from pave.config import Settings
    from pave.tracking import schema

    url = f"sqlite:///{path}"
    schema.seed(url, Settings(home=path.parent).cache_path)
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def processes_where(match: Callable[[bytes], bool]) -> set[int]:
    """The processes but this one whose command line (its arguments joined by spaces) ``match`` accepts."""
    found = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and match((entry / "cmdline").read_bytes().replace(b"\0", b" ")):
                found.add(int(entry.name))
    return found - {os.getpid()}


def processes_naming(text: str) -> set[int]:
    """The processes whose command line holds ``text``."""
    return processes_where(lambda command: text.encode() in command)


def process_tree(roots: set[int]) -> set[int]:
    """The processes in ``roots`` and all their descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
    found = set(roots)
    while more := {pid for pid, parent in parents.items() if parent in found and pid not in found}:
        found |= more
    return found


def stop_processes(pids: set[int], grace: float = 1.0) -> None:
    """SIGTERM to ``pids``, then SIGKILL to those still there after ``grace`` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(grace)


def stop_ray_cluster(temp: Path, client_port: int) -> None:
    """Stop one test's Ray cluster only (``ray stop`` would stop every cluster on the machine): the
    processes naming its temporary folder, its Ray Client server (found by its port: it names neither
    the folder nor a parent of this cluster) and their descendants."""
    folder, client = str(temp).encode(), f"--port={client_port} ".encode()
    roots = processes_where(
        lambda command: folder in command or (b"ray.util.client.server" in command and client in command)
    )
    stop_processes(process_tree(roots), grace=2.0)


def pave_env(home: Path, **extra: str) -> dict[str, str]:
    # COLUMNS: pytest exports the terminal's width, which would narrow the CLI's piped tables
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_")) and k != "COLUMNS"}
    env["PAVE_HOME"] = str(home)
    # Every platform a test starts gets its own gateway port, and one gateway process is enough.
    env["PAVE_GATEWAY_PORT"] = str(free_port())
    env["PAVE_GATEWAY_GRPC_PORT"] = str(free_port())
    env["PAVE_GATEWAY_WORKERS"] = "1"
    env.update(extra)
    return env


def run_pave(
    *args: str, env: dict[str, str], timeout: float = 120, **kwargs: Any
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pave", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        **kwargs,
    )


@dataclass
class PaveServer:
    home: Path
    port: int
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.home / "up.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.env['PAVE_GATEWAY_PORT']}"

    @property
    def gateway_headers(self) -> dict[str, str]:
        """The gateway's model routes and /metrics need a token, like the control plane."""
        return {"Authorization": f"Bearer {self.token}"}

    def wait_gateway(self, timeout: float = 120) -> str:
        """Wait until the gateway that `pave up` started answers; return its URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.gateway_url}/v2/health/live", timeout=1).status_code == 200:
                    return self.gateway_url
            time.sleep(0.1)
        raise RuntimeError(f"gateway not live after {timeout}s")

    @property
    def token(self) -> str:
        token: str = json.loads((self.home / "credentials.json").read_text())["token"]
        return token

    @classmethod
    def up(cls, home: Path, *extra: str, **env: str) -> PaveServer:
        """`pave up` on ``home`` (SQLite unless ``env`` names a database), on free ports, ready."""
        return cls(home=home, port=free_port(), env=pave_env(home, **env)).start(*extra)

    def start(self, *extra: str, timeout: float = 120, attempts: int = 3) -> PaveServer:
        """Start `pave up` and wait until it is ready. A port picked free may be taken by the time
        `pave up` binds it (another test's server, an outgoing connection's ephemeral port): then
        `pave up` says so and exits, and this tries again on fresh ports."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        written = self.log.stat().st_size
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "pave", "up", "--port", str(self.port), *extra],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                said = self.log.read_bytes()[written:].decode(errors="replace")
                if "Address already in use" in said and attempts > 1:
                    self.port = free_port()
                    for name in ("PAVE_GATEWAY_PORT", "PAVE_GATEWAY_GRPC_PORT"):
                        if name in self.env:
                            self.env[name] = str(free_port())
                    return self.start(*extra, timeout=timeout, attempts=attempts - 1)
                raise RuntimeError(f"pave up exited with {self.process.returncode}:\n{self.log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        with contextlib.suppress(subprocess.TimeoutExpired):  # no fixture stops a server that never
            self.stop()  # came up: it (and its gateway) would outlive the test
        self.kill()
        raise RuntimeError(f"pave up not ready after {timeout}s:\n{self.log.read_text()}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)
        # a gateway left behind by a killed control plane keeps serving by design: stop it too
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads((self.home / "run" / "gateway.json").read_text())["pid"])
            os.kill(pid, signal.SIGTERM)

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token or self.token}"}, timeout=30
        )


@dataclass
class World:
    """Drive a real control plane as its admin: tokens, projects, MLflow objects, the audit trail."""

    server: PaveServer

    def admin(self) -> httpx.Client:
        return self.server.client()

    def token(self, identity: str, role: str = "developer", project: str | None = None) -> str:
        with self.admin() as admin:
            response = admin.post(
                "/api/v1/tokens",
                json={
                    "identity": identity,
                    "name": f"t-{secrets.token_hex(3)}",
                    "role": role,
                    "project": project,
                },
            )
        assert response.status_code == 201, response.text
        secret: str = response.json()["secret"]
        return secret

    def state(self) -> dict[str, Any]:
        """What a write could change: Pave's objects and MLflow's, and the artifact store.

        Tests that prove a refused call changed nothing compare this before and after.
        """
        with self.admin() as admin:
            experiments = admin.post(
                "/mlflow/api/2.0/mlflow/experiments/search", json={"max_results": 1000, "view_type": "ALL"}
            ).json()
            return {
                "projects": admin.get("/api/v1/projects").json(),
                "tokens": [(t["id"], t["revoked_at"]) for t in admin.get("/api/v1/tokens").json()],
                "teams": admin.get("/api/v1/teams").json(),
                "deployments": admin.get("/api/v1/deployments").json(),
                "experiments": experiments.get("experiments", []),
                "models": admin.get("/mlflow/api/2.0/mlflow/registered-models/search").json(),
                "webhooks": admin.get("/mlflow/api/2.0/mlflow/webhooks").json(),
                "artifacts": sorted(
                    p.relative_to(self.server.home).as_posix()
                    for p in (self.server.home / "artifacts").rglob("*")
                ),
            }

    def project(self, name: str, owner: str | None = None) -> None:
        with self.admin() as admin:
            response = admin.post("/api/v1/projects", json={"name": name, "owner": owner})
        assert response.status_code == 201, response.text

    def member(self, project: str, identity: str, role: str) -> None:
        with self.admin() as admin:
            response = admin.put(f"/api/v1/projects/{project}/members/{identity}", json={"role": role})
        assert response.status_code == 200, response.text

    def mlflow(self, method: str, endpoint: str, token: str | None = None, **kwargs: Any) -> httpx.Response:
        with self.server.client(token) as client:
            return client.request(method, f"/mlflow/api/2.0/mlflow/{endpoint}", **kwargs)

    def experiment(self, name: str) -> str:
        response = self.mlflow("POST", "experiments/create", json={"name": name})
        assert response.status_code == 200, response.text
        experiment_id: str = response.json()["experiment_id"]
        return experiment_id

    def run(self, experiment_id: str, token: str | None = None) -> str:
        response = self.mlflow("POST", "runs/create", token, json={"experiment_id": experiment_id})
        assert response.status_code == 200, response.text
        run_id: str = response.json()["run"]["info"]["run_id"]
        return run_id

    def version(self, name: str, run_id: str, token: str | None = None) -> str:
        self.mlflow("POST", "registered-models/create", json={"name": name})
        response = self.mlflow(
            "POST",
            "model-versions/create",
            token,
            json={"name": name, "source": f"runs:/{run_id}/model", "run_id": run_id},
        )
        assert response.status_code == 200, response.text
        version: str = response.json()["model_version"]["version"]
        return version

    def audit(self, **params: Any) -> list[dict[str, Any]]:
        with self.admin() as admin:
            response = admin.get("/api/v1/audit", params={"limit": 1000, **params})
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()
        return rows

    def last_audit(self, request_id: str) -> dict[str, Any]:
        rows = self.audit(request_id=request_id)
        assert len(rows) == 1, f"expected one audit record for request {request_id}, found {rows}"
        return rows[0]


# --- an S3-compatible object store (moto's standalone server) -------------------------------------


@dataclass
class S3Server:
    """moto's S3 server on a free port: ``env`` holds the standard AWS variables that reach it."""

    endpoint: str
    server: Any = None

    @property
    def env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": "pave-test",
            "AWS_SECRET_ACCESS_KEY": "pave-test-secret",
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    @classmethod
    def start(cls, address: str = "127.0.0.1") -> S3Server:
        """moto's server on ``address`` (a test's own network namespace bridge, or loopback)."""
        from moto.server import ThreadedMotoServer

        port = free_port()
        server = ThreadedMotoServer(ip_address=address, port=port, verbose=False)
        server.start()
        return cls(f"http://{address}:{port}", server)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()

    def client(self) -> Any:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )

    @contextlib.contextmanager
    def checking_credentials(self) -> Iterator[None]:
        """moto accepts any key unless told otherwise: check keys (real IAM rules) inside the block."""
        httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"0", timeout=5).raise_for_status()
        try:
            yield
        finally:
            httpx.post(f"{self.endpoint}/moto-api/reset-auth", content=b"inf", timeout=5)

    def bucket(self) -> str:
        """A new empty bucket."""
        name = f"pave-{secrets.token_hex(6)}"
        self.client().create_bucket(Bucket=name)
        return name


# --- a client environment with another scikit-learn ------------------------------------------------

# What a data scientist's laptop might have: scikit-learn 1.7 (the seed's liblinear on three
# classes needs one older than 1.8), MLflow's client, pandas, skops (MLflow saves scikit-learn
# models with it by default). Built once per machine by the same
# code that builds the gateway's per-model environments, and kept between runs (pip's own cache
# makes a fresh build a minute or two).
OLD_SKLEARN = "1.7.2"


def envs_for_tests() -> Path:
    """Where the tests' virtualenvs are built, once per set of requirements: the laptop
    environment below, and the per-model environments of the gateways the tests start (the
    shared server's ``model_envs``), so that one model environment is built once per session and
    kept across sessions (``PAVE_TEST_ENVS``, default ``~/.cache/pave-tests/envs``)."""
    return Path(os.environ.get("PAVE_TEST_ENVS", Path.home() / ".cache" / "pave-tests" / "envs"))


def old_sklearn_python() -> Path:
    """The python of a virtualenv with scikit-learn 1.7 and the MLflow client."""
    from importlib import metadata

    from pave.serving.environments import ensure_environment

    root = envs_for_tests()
    requirements = (
        f"mlflow-skinny=={metadata.version('mlflow')}\npandas=={metadata.version('pandas')}\n"
        f"scikit-learn=={OLD_SKLEARN}\nskops=={metadata.version('skops')}\n"
    )
    return ensure_environment(requirements, root)


# --- an OTLP/HTTP trace receiver -------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_id: str
    kind: int
    attributes: dict[str, Any]
    status: tuple[int, str]  # OTLP's Status: code (0 unset, 1 ok, 2 error), message


class OtlpReceiver:
    """An OTLP/HTTP trace endpoint: ``POST /v1/traces`` with an ``ExportTraceServiceRequest``."""

    def __init__(self, port: int = 0) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        spans: list[ReceivedSpan] = []
        self.spans = spans
        self.posts = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                if self.path != "/v1/traces" or self.headers["content-type"] != "application/x-protobuf":
                    self.send_response(404)
                    self.end_headers()
                    return
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                receiver.posts += 1
                for resource_spans in request.resource_spans:
                    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                    for scope_spans in resource_spans.scope_spans:
                        for span in scope_spans.spans:
                            spans.append(
                                ReceivedSpan(
                                    service=resource.get("service.name", ""),
                                    name=span.name,
                                    trace_id=span.trace_id.hex(),
                                    span_id=span.span_id.hex(),
                                    parent_id=span.parent_span_id.hex(),
                                    kind=span.kind,
                                    attributes={a.key: _otlp_value(a.value) for a in span.attributes},
                                    status=(span.status.code, span.status.message),
                                )
                            )
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, what: str, match: Callable[[ReceivedSpan], bool], timeout: float = 60) -> ReceivedSpan:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [s for s in list(self.spans) if match(s)]
            if found:
                return found[-1]
            time.sleep(0.1)
        names = sorted({(s.service, s.name) for s in self.spans})
        raise AssertionError(f"no span {what} after {timeout}s; received: {names}")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _otlp_value(value: Any) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None
