"""``pave projects``: what lives on the platform."""

from __future__ import annotations

import typer
from rich.table import Table

from pave.cli.console import console
from pave.client import Client

app = typer.Typer()


@app.command("projects")
def projects() -> None:
    """List the projects on the platform."""
    with Client() as client:
        rows = client.list_projects()
    table = Table(title="Projects")
    for column in ("name", "owner", "template", "created"):
        table.add_column(column)
    for p in rows:
        template = f"{p['template']} {p['template_version'] or ''}".strip() if p["template"] else "-"
        table.add_row(p["name"], p["owner"], template, p["created_at"][:19])
    console.print(table if rows else "no projects yet: `pave new NAME --template tabular-classification`")
