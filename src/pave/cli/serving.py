"""``pave deploy``, ``pave undeploy``, ``pave deployments`` and ``pave serve`` (the gateway)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from pave import logs
from pave.cli.console import console, err_console, print_json
from pave.client import Client
from pave.config import load_settings
from pave.errors import Unavailable
from pave.schemas.serving import RolloutOut

app = typer.Typer()
# The longest `pave deploy --wait` waits for a gateway (a model in an environment of its own may
# have a virtualenv built first: minutes).
WAIT_SECONDS = 600.0


def _describe(spec: dict[str, Any]) -> str:
    versions: list[Any] = spec.get("versions") or []
    parts = [f"v{v['version']} {v['weight']:g}%" for v in versions if isinstance(v, dict)]
    shadow = spec.get("shadow")
    if isinstance(shadow, dict):
        parts.append(f"shadow v{shadow['version']}")
    if spec.get("sticky"):
        parts.append(f"sticky on {spec['sticky']}")
    if spec.get("scale_to_zero_after"):
        parts.append(f"scale to zero after {spec['scale_to_zero_after']:g}s")
    return ", ".join(parts)


@app.command("deploy")
def deploy(
    project: str = typer.Argument(..., help="The project whose model to serve."),
    alias: str | None = typer.Option(None, "--alias", help="Serve this alias (default: champion)."),
    version: str | None = typer.Option(None, "--version", help="Serve this version instead of an alias."),
    canary: str | None = typer.Option(None, "--canary", help="Also send some traffic to this version."),
    canary_weight: float = typer.Option(10.0, "--canary-weight", help="Percent of traffic to the canary."),
    shadow: str | None = typer.Option(None, "--shadow", help="Mirror traffic to this version."),
    sticky: str | None = typer.Option(None, "--sticky", help="Header that pins a caller to one version."),
    scale_to_zero_after: float | None = typer.Option(
        None, "--scale-to-zero-after", help="Unload after this many idle seconds."
    ),
    model: str | None = typer.Option(
        None,
        "--model",
        help="A model registered with plain MLflow: NAME/VERSION or NAME@ALIAS. It is adopted into "
        "the project (created if needed) and served.",
    ),
    wait: bool = typer.Option(
        False,
        "--wait",
        help=f"Return once every running gateway (each of its workers) serves the versions deployed "
        f"(at most {WAIT_SECONDS:g} s).",
    ),
) -> None:
    """Serve a project's model on the inference gateway (Open Inference Protocol v2)."""
    options = {
        "model": model,
        "alias": alias,
        "version": version,
        "canary_version": canary,
        "canary_weight": canary_weight,
        "shadow_version": shadow,
        "sticky": sticky,
        "scale_to_zero_after": scale_to_zero_after,
    }
    with Client() as client:
        row = client.deploy(project, **{k: v for k, v in options.items() if v is not None})
        gateways = [p.url for p in client.list_processes() if p.role == "gateway" and p.healthy]
        console.print(f"deployed {project}: {_describe(row.spec)}")
        for url in gateways:  # where the gateways registered themselves, not a guess
            console.print(f"infer: POST {url}/v2/models/{project}/infer")
        if not gateways and wait:  # nothing to wait for: a script's next request would fail
            raise Unavailable(
                f"no gateway is running: {project} is deployed, and served once one starts",
                hint="start one (`pave up`, or `pave serve` on any host), then `pave deploy --wait` again",
            )
        if not gateways:
            err_console.print(
                "no gateway is running: it is served once one starts (`pave up`, or `pave serve` on any host)"
            )
        if wait:
            versions = [str(v["version"]) for v in row.spec.get("versions") or []]
            if isinstance(row.spec.get("shadow"), dict):
                versions.append(str(row.spec["shadow"]["version"]))
            for url in gateways:
                client.wait_served(url, row.name, versions, WAIT_SECONDS)
                console.print(f"served by {url}: {', '.join(f'v{v}' for v in versions)} (every worker ready)")


@app.command("undeploy")
def undeploy(project: str = typer.Argument(...)) -> None:
    """Stop serving a project's model."""
    with Client() as client:
        client.undeploy(project)
    console.print(f"undeployed {project}")


@app.command("deployments")
def deployments(as_json: bool = typer.Option(False, "--json")) -> None:
    """List deployments and their traffic."""
    with Client() as client:
        rows = client.list_deployments()
    if as_json:
        print_json(rows)
        return
    table = Table(title="Deployments")
    for column in ("name", "traffic", "updated", "by"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.name, _describe(row.spec), row.updated_at.isoformat()[:19], row.updated_by)
    console.print(table if rows else "nothing deployed yet: `pave deploy PROJECT`")


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="Interface (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default 8080)."),
    workers: int | None = typer.Option(None, "--workers", help="Processes (default: one per core)."),
    grpc_port: int | None = typer.Option(None, "--grpc-port", help="gRPC port (default 8081; 0: none)."),
    database_url: str | None = typer.Option(
        None, "--database-url", help="The platform's store (PostgreSQL on another host); PAVE_DATABASE_URL."
    ),
    artifact_root: str | None = typer.Option(
        None, "--artifact-root", help="The platform's object store, s3://BUCKET/PREFIX; PAVE_ARTIFACT_ROOT."
    ),
    public_url: str | None = typer.Option(
        None, "--public-url", help="Where callers reach this gateway (registered); PAVE_GATEWAY_PUBLIC_URL."
    ),
) -> None:
    """Run the inference gateway alone (`pave up` starts it too), serving the store's deployments.

    On a host of its own it needs only the platform's store and object store: it learns the
    deployments from the store, loads the models from the object store and ships its inference
    log there (docs/deploy.md).
    """
    # the gateway's worker processes read their settings from the environment
    for name, value in (
        ("PAVE_DATABASE_URL", database_url),
        ("PAVE_ARTIFACT_ROOT", artifact_root),
        ("PAVE_GATEWAY_PUBLIC_URL", public_url),
    ):
        if value is not None:
            os.environ[name] = value
    from pave.cli.platform import ensure_port_free
    from pave.cli.supervisor import FD_ENV, gateway_pidfile, write_gateway_pidfile
    from pave.serving.server import run_gateway
    from pave.storage import open_storage

    settings = load_settings(
        gateway_host=host, gateway_port=port, gateway_workers=workers, gateway_grpc_port=grpc_port
    )
    settings.check_production("gateway")
    inherited = os.environ.pop(FD_ENV, None)  # `pave up` holds the port and passes its socket down
    sock = socket.socket(fileno=int(inherited)) if inherited else None
    if sock is None:
        ensure_port_free(settings.gateway_host, settings.gateway_port, "--port")
        # A gateway of its own: a wrong object store is said now, in one line, not at the first
        # model load (under `pave up`, the control plane checked it before starting this process).
        open_storage(settings.artifacts).check()
    if settings.gateway_grpc_port:
        ensure_port_free(settings.gateway_host, settings.gateway_grpc_port, "--grpc-port")
    settings.ensure_home()
    write_gateway_pidfile(settings)
    grpc = f", gRPC on port {settings.gateway_grpc_port}" if settings.gateway_grpc_port else ""
    logs.configure(settings.log_format, settings.log_level)
    banner = f"inference gateway {settings.gateway_url}/v2{grpc} (Ctrl-C stops)"
    if logs.json_enabled():
        logging.getLogger("pave.serve").info(banner)
    else:
        err_console.print(banner)
    try:
        run_gateway(settings, "store", sock=sock)
    finally:
        found = gateway_pidfile(settings)
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            if json.loads(found.read_text())["pid"] == os.getpid():
                found.unlink()


rollout_app = typer.Typer(help="Progressive rollouts under guard metrics.", no_args_is_help=True)
app.add_typer(rollout_app, name="rollout")


def _policy_from_spec(project_dir: Path) -> dict[str, Any]:
    """``deploy.rollout`` of the project's pave.yaml, if there is one."""
    if not (project_dir / "pave.yaml").exists():
        return {}
    from pave.pipelines import load_spec

    deploy = load_spec(project_dir).deploy or {}
    rollout = deploy.get("rollout", {}) if isinstance(deploy, dict) else {}
    return dict(rollout) if isinstance(rollout, dict) else {}


def _print_rollout(r: RolloutOut) -> None:
    where = f", at {r.step:g}% of {r.steps}" if r.step is not None else ""
    console.print(
        f"{r.deployment}: v{r.candidate_version} replacing v{r.baseline_version}: [bold]{r.state}[/]{where}"
    )
    if r.waiting_for:
        console.print(f"waiting: {escape(r.waiting_for)}")
    table = Table(title="history")
    for column in ("at", "event", "detail"):
        table.add_column(column)
    for event in r.history:
        rest = {k: v for k, v in event.items() if k not in ("at", "event")}
        table.add_row(event["at"][:19], event["event"], json.dumps(rest, default=str)[:300])
    console.print(table)


def _steps(text: str) -> list[float]:
    """``--steps 10,50,100`` as numbers; anything else is a usage error (exit 2) naming the value."""
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is not a list of percents: write e.g. 10,50,100", param_hint="'--steps'"
        ) from None


@rollout_app.command("start")
def rollout_start(
    project: str = typer.Argument(...),
    version: str = typer.Option(..., "--version", help="The candidate version."),
    steps: str | None = typer.Option(None, "--steps", help="Percent steps, e.g. 10,50,100."),
    interval: float | None = typer.Option(None, "--interval", help="Seconds per step."),
    min_requests: int | None = typer.Option(None, "--min-requests", help="Candidate answers per step."),
    max_error_rate: float | None = typer.Option(None, "--max-error-rate"),
    max_p99_ms: float | None = typer.Option(None, "--max-p99-ms"),
    project_dir: Path = typer.Option(Path("."), "--dir", help="Read deploy.rollout from this pave.yaml."),
) -> None:
    """Start a progressive rollout (defaults: pave.yaml's deploy.rollout, then Pave's)."""
    policy = _policy_from_spec(project_dir)
    flags = {
        "steps": _steps(steps) if steps else None,
        "interval_seconds": interval,
        "min_requests": min_requests,
        "max_error_rate": max_error_rate,
        "max_p99_ms": max_p99_ms,
    }
    policy |= {k: v for k, v in flags.items() if v is not None}
    with Client() as client:
        _print_rollout(client.start_rollout(project, version, policy))


@rollout_app.command("status")
def rollout_status(project: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """The latest rollout: state, step, and each decision with the test that made it."""
    with Client() as client:
        rollout = client.get_rollout(project)
    if as_json:
        print_json(rollout)
    else:
        _print_rollout(rollout)


@rollout_app.command("promote")
def rollout_promote(project: str = typer.Argument(...), reason: str = typer.Option("", "--reason")) -> None:
    """Give the candidate all the traffic and the alias champion now."""
    with Client() as client:
        _print_rollout(client.promote_rollout(project, reason))


@rollout_app.command("rollback")
def rollout_rollback(project: str = typer.Argument(...), reason: str = typer.Option("", "--reason")) -> None:
    """Send all the traffic back to the baseline now."""
    with Client() as client:
        _print_rollout(client.rollback_rollout(project, reason))
