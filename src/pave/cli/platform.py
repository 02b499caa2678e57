"""``pave up``, ``pave down``, ``pave status``: the platform's lifecycle on one machine."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table
from rich.text import Text

from pave import logs, telemetry
from pave.cli.console import console, err_console
from pave.cli.supervisor import GATEWAY, GatewaySupervisor, stop_process
from pave.config import Settings, load_settings, mask_url, write_credentials
from pave.errors import ConfigError, Conflict

app = typer.Typer()

CONTROL_PLANE = "control-plane"
log = logging.getLogger("pave.up")


def _pidfile(settings: Settings, component: str) -> Path:
    return settings.run_dir / f"{component}.json"


def read_pidfile(settings: Settings, component: str) -> dict[str, Any] | None:
    """The pid file of a running component, None if absent, stale or unreadable."""
    path = _pidfile(settings, component)
    try:
        info: dict[str, Any] = json.loads(path.read_text())
        os.kill(int(info["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return info


def _write_pidfile(settings: Settings, component: str, url: str) -> None:
    path = _pidfile(settings, component)
    path.write_text(json.dumps({"pid": os.getpid(), "url": url, "started": time.time()}))


def ensure_port_free(host: str, port: int, flag: str) -> None:
    """Fail fast, before any slow start-up work, when the port is taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                hint=f"stop what uses it, or pick another port: `pave up {flag} {port + 1}`",
            ) from exc


def _graceful_server_class() -> type:
    import uvicorn

    class GracefulServer(uvicorn.Server):
        """Stop cleanly on SIGTERM/SIGINT and exit 0, instead of re-raising the signal afterwards."""

        stopped_by: str | None = None

        def handle_exit(self, sig: int, frame: object) -> None:
            if self.should_exit and sig == signal.SIGINT:
                self.force_exit = True
            self.should_exit = True
            self.stopped_by = self.stopped_by or signal.Signals(sig).name

    return GracefulServer


def _log_to_home(settings: Settings) -> None:
    """`pave up` says what it does and why it stops on stderr and in ``$PAVE_HOME/logs/platform.log``."""
    path = settings.home / "logs" / "platform.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    log.setLevel(logging.INFO)
    log.propagate = False
    formatter = logging.Formatter("%(asctime)s %(levelname)s pave up[%(process)d]: %(message)s")
    for handler in (logging.FileHandler(path), logging.StreamHandler(sys.stderr)):
        handler.setFormatter(formatter)
        log.addHandler(handler)


def _say(markup: str) -> None:
    """A line for whoever started `pave up`: on the terminal, or a log record under JSON logs."""
    if logs.json_enabled():
        log.info(Text.from_markup(markup).plain)
    else:
        err_console.print(markup)


@app.command("up")
def up(
    host: str | None = typer.Option(None, "--host", help="Interface to bind (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Control-plane port (default 8000)."),
    gateway_port: int | None = typer.Option(None, "--gateway-port", help="Gateway port (default 8080)."),
    gateway_grpc_port: int | None = typer.Option(
        None, "--gateway-grpc-port", help="Gateway gRPC port (default 8081; 0: no gRPC)."
    ),
    no_gateway: bool = typer.Option(False, "--no-gateway", help="Start the control plane only."),
    demo: bool = typer.Option(False, "--demo", help="Also seed a small demo project."),
) -> None:
    """Start the platform: migrate the store, then serve the API, the portal and MLflow."""
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    from pave.api.app import create_app

    GracefulServer = _graceful_server_class()
    from pave.api.platform import open_platform

    settings = load_settings(
        host=host, port=port, gateway_port=gateway_port, gateway_grpc_port=gateway_grpc_port
    )
    running = read_pidfile(settings, CONTROL_PLANE)
    if running:
        raise Conflict(
            f"Pave is already running for {settings.home} (pid {running['pid']}, {running['url']})",
            hint="`pave status` to inspect it, `pave down` to stop it",
        )
    ensure_port_free(settings.host, settings.port, "--port")
    settings.ensure_home()
    _log_to_home(settings)
    logs.configure(settings.log_format, settings.log_level)
    telemetry.configure(settings, "pave-control-plane")
    supervisor = None if no_gateway else GatewaySupervisor(settings)
    if supervisor is not None:
        supervisor.prepare()  # adopts this home's running gateway, or takes its port now
        if not supervisor.adopted and settings.gateway_grpc_port:
            ensure_port_free(settings.gateway_host, settings.gateway_grpc_port, "--gateway-grpc-port")
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        _say(f"[yellow]warning:[/] listening on {settings.host}: reachable from other machines")

    with console.status("opening the store and applying migrations..."):
        platform = open_platform(settings)
    for revision in platform.applied_migrations:
        _say(f"applied migration {revision}")
    if platform.bootstrap_token:
        write_credentials(settings.credentials_path, settings.url, platform.bootstrap_token)
        _say(
            "[bold]First start: an admin token was created.[/] It is shown only this once and was "
            f"written to {settings.credentials_path} (mode 0600):"
        )
        console.print(platform.bootstrap_token)

    application = create_app(platform)
    config = uvicorn.Config(
        application,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        log_config=None if logs.json_enabled() else LOGGING_CONFIG,
    )
    server = GracefulServer(config)
    _write_pidfile(settings, CONTROL_PLANE, settings.url)
    if demo:
        from pave.cli.demo import seed_in_background

        seed_in_background(settings, platform)
    if supervisor is not None:
        supervisor.start()
    _say(
        f"Pave {settings.url}  (API {settings.url}/api/v1, MLflow {settings.url}/mlflow, "
        f"inference {settings.gateway_url}/v2); Ctrl-C stops"
    )
    reason = "the control plane's server returned"
    try:
        server.run()
        if server.stopped_by:
            reason = f"received {server.stopped_by}"
        elif not server.started:
            reason = "the control plane could not start (see the messages above)"
    except BaseException as exc:
        reason = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        log.info("stopping: %s", reason)
        _pidfile(settings, CONTROL_PLANE).unlink(missing_ok=True)
        platform.engine.dispose()
        if supervisor is not None:
            supervisor.stop()
        log.info("stopped")
    if not server.started:
        raise ConfigError(
            f"the control plane could not start on {settings.host}:{settings.port}",
            hint="see the messages above; `pave status` shows what runs",
        )


@app.command("down")
def down(timeout: float = typer.Option(15.0, "--timeout", help="Seconds to wait before killing.")) -> None:
    """Stop the platform started by `pave up` for this PAVE_HOME (control plane and gateway)."""
    settings = load_settings()
    stopped = False
    for component, label in ((CONTROL_PLANE, "control plane"), (GATEWAY, "gateway")):
        info = read_pidfile(settings, component)
        if info is None:
            continue
        pid = int(info["pid"])
        # a gateway leads its own process group when `pave up` started it: its workers go with it
        # the control plane stops its gateway before it exits: give it the gateway's time too
        wait = timeout * 2 if component == CONTROL_PLANE else timeout
        graceful = stop_process(pid, wait, group=info.get("pgid") == pid)
        console.print(f"{label} {'stopped' if graceful else f'killed after {wait:.0f}s'} (pid {pid})")
        stopped = True
    stopped = _stop_ray_pool(settings) or stopped
    if not stopped:
        console.print("Pave is not running for " + str(settings.home))


def _stop_ray_pool(settings: Settings) -> bool:
    """Stop the long-lived Ray workers `pave tune` left on the configured cluster (if any)."""
    if settings.executor != "ray" or not settings.executor_address:
        return False
    from pave.errors import PaveError
    from pave.integrations.ray_pool import stop_pool

    try:
        workers = stop_pool(settings.executor_address)
    except PaveError as exc:
        err_console.print(f"the Ray workers' pool was not stopped: {exc.message} ({exc.hint})")
        return False
    if workers:
        console.print(f"{workers} pooled Ray worker(s) stopped at {settings.executor_address}")
    return bool(workers)


@app.command("status")
def status() -> None:
    """Show what runs where and whether it is healthy: this home's processes, then every control
    plane, gateway and worker registered in the platform's store, and the stores."""
    settings = load_settings()
    table = Table(title=f"Pave at {settings.home}")
    for column in ("component", "state", "pid", "url", "detail"):
        table.add_column(column, overflow="fold")
    components = (
        ("control plane", CONTROL_PLANE, settings.url, "/readyz", "start it with `pave up`"),
        ("gateway", GATEWAY, settings.gateway_url, "/v2/health/ready", "`pave up` or `pave serve`"),
    )
    for label, component, default_url, probe, hint in components:
        info = read_pidfile(settings, component)
        if info is None:
            table.add_row(label, "[red]stopped[/]", "-", default_url, hint)
            continue
        try:
            ready = httpx.get(f"{info['url']}{probe}", timeout=3.0)
            state = "[green]ready[/]" if ready.status_code == 200 else f"[yellow]{ready.status_code}[/]"
            detail = "" if ready.status_code == 200 else ready.text[:80]
        except httpx.HTTPError as exc:
            state, detail = "[red]not answering[/]", exc.__class__.__name__
        table.add_row(label, state, str(info["pid"]), info["url"], detail)
    table.add_row("metadata store", "", "", mask_url(settings.db_url), "")
    table.add_row("MLflow store", "", "", mask_url(settings.mlflow_db_url), "")
    table.add_row("object store", *_artifact_store_state(settings))
    console.print(table)
    console.print(_processes_table())


def _artifact_store_state(settings: Settings) -> tuple[str, str, str, str]:
    """The object store (or folder) of the artifact root: usable now, or what is wrong with it."""
    from pave.errors import PaveError
    from pave.storage import open_storage

    root = settings.artifacts
    try:
        open_storage(root).check()
    except PaveError as exc:
        return "[red]not usable[/]", "", root, exc.message[:120]
    return "[green]ready[/]", "", root, "an object store" if "://" in root else "a local folder"


def _processes_table() -> Table | str:
    """The processes registered in the store, as the control plane reports them."""
    from pave.client import Client
    from pave.errors import PaveError

    try:
        with Client(timeout=5.0) as client:
            processes = client.list_processes()
    except (PaveError, httpx.HTTPError) as exc:
        return f"[yellow]the platform's processes are not known:[/] {exc}"
    table = Table(title="The platform's processes (heartbeats in the store)")
    for column in ("role", "state", "host / pid", "url", "detail"):
        table.add_column(column, overflow="fold")  # a URL cut short is no use
    for process in processes:
        info = process.info
        if process.healthy:
            state = "[green]alive[/]"
        else:
            state = f"[red]silent for {process.seconds_since_seen:.0f} s[/]"
        if process.role == "gateway":
            models = info.get("models") or {}
            detail = ", ".join(
                f"{name} " + " ".join(f"v{v} {s}" for v, s in versions.items())
                for name, versions in models.items()
            )
            detail = detail or "no models loaded"
        elif process.role == "control-plane":
            detail = "leads the background jobs" if info.get("leader") else "standby for the background jobs"
        else:
            detail = ""
        table.add_row(process.role, state, f"{process.host} / {process.pid}", process.url, detail)
    return table if processes else "no process of the platform has registered yet"
