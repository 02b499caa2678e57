"""Running the gateway: uvicorn with uvloop and httptools (``http.py``), one or several worker processes."""

from __future__ import annotations

import os
import shutil
import socket
import sys
from dataclasses import replace
from pathlib import Path

from pave import logs, telemetry
from pave.config import Settings, load_settings
from pave.serving.accept import CONNECTIONS_ENV
from pave.serving.deployments import DeploymentSource, JsonFileDeployments
from pave.serving.gateway import Gateway, GatewayOptions, create_gateway
from pave.serving.http import OneWriteHttpToolsProtocol
from pave.serving.metrics import MULTIPROC_ENV
from pave.serving.readiness import READINESS_ENV
from pave.serving.shipping import ships

# How worker processes find their deployments (uvicorn builds the app again in each worker):
# a file path, or STORE for Pave's store.
DEPLOYMENTS_ENV = "PAVE_SERVING_DEPLOYMENTS"
STORE = "store"


def _source(value: str, settings: Settings) -> DeploymentSource:
    if value == STORE:
        from pave.serving.store import StoreDeployments

        return StoreDeployments(settings)
    return JsonFileDeployments(Path(value))


# Longest time (seconds) another thread (a model loading, a slow model predicting in the thread
# pool) keeps the GIL from the event loop; Python's default is 5 ms, all of it tail latency.
SWITCH_INTERVAL = 0.0005


def _with_auth(options: GatewayOptions | None, source: object, settings: Settings) -> GatewayOptions:
    """The store's gateway checks tokens (unless ``gateway_auth`` is ``none``); a file's has no tokens.

    Every gateway run here serves gRPC too, on ``gateway_grpc_port`` (unless it is 0).
    """
    options = options or GatewayOptions()
    if options.grpc_port is None and settings.gateway_grpc_port:
        options = replace(options, grpc_port=settings.gateway_grpc_port)
    if source == STORE and ships(settings) and not options.ship_log:
        options = replace(options, ship_log=True)  # the store's gateway may run on any host
    if source == STORE and settings.gateway_auth == "token" and options.auth is None:
        from pave.serving.auth import GatewayAuth

        options = replace(options, auth=GatewayAuth(settings))
    return options


def app_from_env() -> Gateway:
    """The app factory uvicorn calls in each worker process."""
    sys.setswitchinterval(SWITCH_INTERVAL)
    value = os.environ.get(DEPLOYMENTS_ENV)
    if not value:
        raise RuntimeError(f"{DEPLOYMENTS_ENV} is not set; start the gateway with run_gateway()")
    settings = load_settings()
    logs.configure(settings.log_format, settings.log_level)
    telemetry.configure(settings, "pave-gateway")
    return create_gateway(settings, _source(value, settings), _with_auth(None, value, settings))


def metrics_dir(settings: Settings) -> Path:
    """A new, empty directory for the workers' metric files (one per gateway port).

    Emptied at every start: values left by a previous run would otherwise be added to this one's.
    """
    path = settings.run_dir / f"gateway-metrics-{settings.gateway_port}"
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def run_gateway(
    settings: Settings,
    source: DeploymentSource | Path | str,
    options: GatewayOptions | None = None,
    *,
    workers: int | None = None,
    sock: socket.socket | None = None,
) -> None:
    """Serve the gateway on ``settings.gateway_host:gateway_port`` until interrupted.

    Args:
        settings: Pave's settings.
        source: a DeploymentSource, the path of a deployments JSON file, or ``"store"`` for the
            deployments in Pave's store (what ``pave serve`` and ``pave up`` use).
        options: gateway tuning (single-process mode only: each worker builds its gateway from
            the settings, as ``pave serve`` does in both modes, so the two serve alike).
        workers: processes; default ``settings.gateway_workers`` (0: one per core). Several workers
            need a file or the store, since each process reads the deployments on its own.
        sock: a listening socket to serve on instead of binding ``gateway_host:gateway_port``
            (`pave up` passes its own, which outlives a gateway that dies: ``pave.cli.supervisor``).
    """
    import uvicorn
    from uvicorn.config import LOGGING_CONFIG

    sys.setswitchinterval(SWITCH_INTERVAL)
    count = settings.gateway_workers if workers is None else workers
    if count == 0:
        count = os.cpu_count() or 1
    logs.configure(settings.log_format, settings.log_level)
    common = {
        "host": settings.gateway_host,
        "port": settings.gateway_port,
        "log_level": "warning",
        "log_config": None if logs.json_enabled() else LOGGING_CONFIG,
        "access_log": False,
        "loop": "uvloop",
        "http": OneWriteHttpToolsProtocol,
        "lifespan": "on",
        # The gateway reads no client address: uvicorn's X-Forwarded-For middleware would be a
        # call on every request for nothing.
        "proxy_headers": False,
    }
    if count > 1:
        if not isinstance(source, Path | str):
            raise ValueError("several gateway workers need a deployments file or the store")
        os.environ[DEPLOYMENTS_ENV] = source if source == STORE else str(Path(source).resolve())
        # each worker serves gRPC itself (on a port they share): it reads where from the environment
        os.environ["PAVE_GATEWAY_HOST"] = settings.gateway_host
        os.environ["PAVE_GATEWAY_GRPC_PORT"] = str(settings.gateway_grpc_port)
        shared = metrics_dir(settings)
        os.environ[MULTIPROC_ENV] = str(shared)
        # the workers share new connections through their own accept loop (pave.serving.accept)
        (shared / "connections").mkdir()
        os.environ[CONNECTIONS_ENV] = str(shared / "connections")
        # each worker publishes what it has loaded there: a ready answer holds for every worker
        (shared / "readiness").mkdir()
        os.environ[READINESS_ENV] = str(shared / "readiness")
        common["loop"] = "pave.serving.accept:BalancedLoop"
        if sock is None:
            uvicorn.run("pave.serving.server:app_from_env", factory=True, workers=count, **common)  # type: ignore[arg-type]
            return
        from uvicorn.supervisors import Multiprocess

        config = uvicorn.Config("pave.serving.server:app_from_env", factory=True, workers=count, **common)  # type: ignore[arg-type]
        Multiprocess(config, sockets=[sock]).run()
        return
    telemetry.configure(settings, "pave-gateway")
    real_source = _source(str(source), settings) if isinstance(source, Path | str) else source
    app = create_gateway(settings, real_source, _with_auth(options, source, settings))
    if sock is None:
        uvicorn.run(app, **common)  # type: ignore[arg-type]
        return
    server = uvicorn.Server(uvicorn.Config(app, **common))  # type: ignore[arg-type]
    server.run(sockets=[sock])
    if not server.started:
        raise SystemExit(3)  # uvicorn's STARTUP_FAILURE: the supervisor backs off
