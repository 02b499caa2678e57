"""``pave projects``: what lives on the platform."""

from __future__ import annotations

import typer

from pave.cli.console import JSON, console, emit, table
from pave.client import Client
from pave.schemas.projects import ProjectOut

app = typer.Typer()


@app.command("projects")
def projects(as_json: bool = JSON) -> None:
    """List the projects on the platform."""
    with Client() as client:
        rows = client.list_projects()
    emit(rows, _render, as_json=as_json)


def _render(rows: list[ProjectOut]) -> None:
    found = table("Projects", "name", "owner", "template", "created")
    for p in rows:
        template = f"{p.template} {p.template_version or ''}".strip() if p.template else "-"
        found.add_row(p.name, p.owner, template, p.created_at.isoformat()[:19])
    console.print(found if rows else "no projects yet: `pave new NAME --template tabular-classification`")
