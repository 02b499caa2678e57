"""``pave deploy``, ``pave undeploy``, ``pave deployments`` and ``pave serve`` (the gateway)."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import typer
from rich.table import Table

from pave.cli.console import console, err_console, print_json
from pave.cli.platform import GATEWAY
from pave.client import Client
from pave.config import load_settings

app = typer.Typer()


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
) -> None:
    """Serve a project's model on the inference gateway (Open Inference Protocol v2)."""
    options = {
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
    settings = load_settings()
    console.print(f"deployed {project}: {_describe(row['spec'])}")
    console.print(f"infer: POST {settings.gateway_url}/v2/models/{project}/infer")


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
        table.add_row(row["name"], _describe(row["spec"]), row["updated_at"][:19], row["updated_by"])
    console.print(table if rows else "nothing deployed yet: `pave deploy PROJECT`")


@app.command("serve")
def serve(
    host: str | None = typer.Option(None, "--host", help="Interface (default 127.0.0.1)."),
    port: int | None = typer.Option(None, "--port", help="Port (default 8080)."),
    workers: int | None = typer.Option(None, "--workers", help="Processes (default: one per core)."),
) -> None:
    """Run the inference gateway alone (`pave up` starts it too), serving the store's deployments."""
    from pave.cli.platform import ensure_port_free
    from pave.serving.server import run_gateway

    settings = load_settings(gateway_host=host, gateway_port=port, gateway_workers=workers)
    ensure_port_free(settings.gateway_host, settings.gateway_port, "--port")
    pidfile = settings.run_dir / f"{GATEWAY}.json"
    settings.ensure_home()
    pidfile.write_text(json.dumps({"pid": os.getpid(), "url": settings.gateway_url, "started": time.time()}))
    err_console.print(f"inference gateway {settings.gateway_url}/v2 (Ctrl-C stops)")
    try:
        run_gateway(settings, "store")
    finally:
        pidfile.unlink(missing_ok=True)
