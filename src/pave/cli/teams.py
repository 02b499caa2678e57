"""``pave team``: groups of identities that hold project roles together (admin)."""

from __future__ import annotations

import typer

from pave.cli.console import JSON, console, emit, table
from pave.client import Client
from pave.schemas.access import TeamOut

app = typer.Typer(
    help="Teams: a member of a team holds the team's role on each project it is bound to.",
    no_args_is_help=True,
)


@app.command("create")
def create(
    team: str = typer.Argument(..., help="Lowercase letters, digits, '.', '_', '-'."),
    description: str = typer.Option("", "--description", "-d"),
) -> None:
    """Create TEAM (admin). Bind it to a project with `pave project member add P --team TEAM --role R`."""
    with Client() as client:
        created = client.create_team(team, description=description)
    console.print(f"team {created.name} created")


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List the teams, their members and their project roles (admin)."""
    with Client() as client:
        teams = client.list_teams()
    emit(teams, _render, as_json=as_json)


def _render(teams: list[TeamOut]) -> None:
    if not teams:
        console.print("no teams yet: `pave team create NAME`")
        return
    shown = table("Teams", "team", "members", "project roles", "description")
    for t in teams:
        roles = ", ".join(f"{p}={r}" for p, r in t.projects.items())
        shown.add_row(t.name, ", ".join(t.members), roles, t.description)
    console.print(shown)


@app.command("add")
def add(team: str = typer.Argument(...), identities: list[str] = typer.Argument(..., help="Users.")) -> None:
    """Add IDENTITIES to TEAM (admin): they hold the team's project roles from the next request."""
    with Client() as client:
        for identity in identities:
            client.add_team_member(team, identity)
    console.print(f"{', '.join(identities)} in team {team}")


@app.command("remove")
def remove(team: str = typer.Argument(...), identity: str = typer.Argument(...)) -> None:
    """Take IDENTITY out of TEAM (admin); its own project roles stay."""
    with Client() as client:
        client.remove_team_member(team, identity)
    console.print(f"{identity} is no longer in team {team}")


@app.command("delete")
def delete(
    team: str = typer.Argument(...),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
) -> None:
    """Delete TEAM with its memberships and project roles (admin)."""
    if not yes:
        typer.confirm(f"delete team {team} and every project role it gives?", abort=True)
    with Client() as client:
        client.delete_team(team)
    console.print(f"team {team} deleted")
