"""``pave catalog export``: Pave's projects and deployments as Backstage catalog entities."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from pave.cli.console import console
from pave.client import Client
from pave.errors import PaveError

app = typer.Typer(help="Pave's projects in other catalogs (Backstage).", no_args_is_help=True)


@app.command("export")
def export(
    out: Path = typer.Option(Path("."), "--out", help="Folder to write catalog-info.yaml into."),
    gateway_url: str | None = typer.Option(
        None, "--gateway-url", help="Where clients reach the inference gateway (default: from settings)."
    ),
) -> None:
    """Write catalog-info.yaml: a Component per project, an API per deployment, User/Group owners."""
    from pave.config import load_settings
    from pave.portal.backstage import dump, entities

    with Client() as client:
        projects = client.list_projects()
        deployments = client.list_deployments()
        teams = []
        with contextlib.suppress(PaveError):  # listing teams is for admins; owners stay users
            teams = client.list_teams()
        url = client.url
    settings = load_settings()
    gateway = gateway_url or settings.gateway_url
    found = entities(
        [p.model_dump(mode="json") for p in projects],
        [d.model_dump(mode="json") for d in deployments],
        url=url,
        gateway_url=gateway,
        teams=[t.model_dump(mode="json") for t in teams],
    )
    out.mkdir(parents=True, exist_ok=True)
    target = out / "catalog-info.yaml"
    target.write_text(dump(found))
    kinds = {k: sum(1 for e in found if e["kind"] == k) for k in ("Component", "API", "User", "Group")}
    console.print(
        f"wrote {target}: " + ", ".join(f"{n} {k}{'s' if n != 1 else ''}" for k, n in kinds.items() if n)
    )
    console.print("next: register it in Backstage (a Location pointing at this file, or catalog.locations)")
