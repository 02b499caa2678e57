"""``pave project member add|list|remove``, ``pave project policy`` and ``pave approve``."""

from __future__ import annotations

import typer
from rich.table import Table

from pave.cli.console import console, print_json
from pave.client import Client

app = typer.Typer()
project_app = typer.Typer(help="A project's members and governance policy.", no_args_is_help=True)
member_app = typer.Typer(help="Who has which role on a project.", no_args_is_help=True)
project_app.add_typer(member_app, name="member")
app.add_typer(project_app, name="project")


@member_app.command("add")
def add(
    project: str = typer.Argument(...),
    identity: str = typer.Argument(..., help="User or service account."),
    role: str = typer.Argument(..., help="viewer|developer|maintainer|approver"),
) -> None:
    """Give IDENTITY ROLE on PROJECT (replacing the role it had there)."""
    with Client() as client:
        member = client.set_member(project, identity, role)
    console.print(f"{member['identity']} is {member['role']} on {member['project']}")


@member_app.command("list")
def list_(project: str = typer.Argument(...)) -> None:
    """List the members of PROJECT and their roles."""
    with Client() as client:
        members = client.list_members(project)
    table = Table(title=f"Members of {project}")
    for column in ("identity", "role", "granted by", "granted at"):
        table.add_column(column)
    for m in members:
        table.add_row(m["identity"], m["role"], m["granted_by"], m["granted_at"][:19])
    console.print(table if members else f"{project} has no members besides its owner and the admins")


@member_app.command("remove")
def remove(project: str = typer.Argument(...), identity: str = typer.Argument(...)) -> None:
    """Take IDENTITY's role on PROJECT away."""
    with Client() as client:
        client.remove_member(project, identity)
    console.print(f"{identity} has no role on {project} any more")


@project_app.command("policy")
def policy(
    project: str = typer.Argument(...),
    require_approval: bool | None = typer.Option(
        None, "--require-approval/--no-require-approval", help="Approval before champion."
    ),
    max_concurrent_runs: int | None = typer.Option(None, "--max-concurrent-runs", min=0),
    max_deployments: int | None = typer.Option(None, "--max-deployments", min=0),
    max_stored_bytes: int | None = typer.Option(None, "--max-stored-bytes", min=0),
) -> None:
    """Show PROJECT's policy, or change the fields given (admin)."""
    changes = {
        "require_approval": require_approval,
        "max_concurrent_runs": max_concurrent_runs,
        "max_deployments": max_deployments,
        "max_stored_bytes": max_stored_bytes,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    with Client() as client:
        result = client.set_policy(project, **changes) if changes else client.get_policy(project)
    print_json(result)


@app.command("approve")
def approve(
    project: str = typer.Argument(...),
    version: str = typer.Argument(..., help="The model version number."),
    comment: str = typer.Option("", "--comment", "-m", help="Why it may go to production."),
) -> None:
    """Approve VERSION of PROJECT's model for production (you must not be its author)."""
    with Client() as client:
        approval = client.approve(project, version, comment=comment)
    console.print(
        f"{approval['project']} version {approval['version']} approved by {approval['approved_by']} "
        f"(author {approval['author']}, gates {approval['gates']})"
    )
