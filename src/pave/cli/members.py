"""``pave project member add|list|remove``, ``pave project policy`` and ``pave approve``."""

from __future__ import annotations

from typing import Any

import typer

from pave.cli.console import JSON, console, emit, table
from pave.client import Client
from pave.errors import InvalidInput
from pave.schemas.access import PolicyOut

app = typer.Typer()
project_app = typer.Typer(help="A project's members and governance policy.", no_args_is_help=True)
member_app = typer.Typer(help="Who has which role on a project.", no_args_is_help=True)
project_app.add_typer(member_app, name="member")
app.add_typer(project_app, name="project")


@member_app.command("add")
def add(
    project: str = typer.Argument(...),
    identity: str | None = typer.Argument(None, help="User or service account (or use --team)."),
    role_arg: str | None = typer.Argument(
        None, metavar="[ROLE]", help="viewer|developer|maintainer|approver"
    ),
    team: str | None = typer.Option(None, "--team", help="Give the role to every member of this team."),
    role: str | None = typer.Option(None, "--role", help="viewer|developer|maintainer|approver"),
) -> None:
    """Give IDENTITY (or --team TEAM) ROLE on PROJECT (replacing the role it had there)."""
    chosen = role or role_arg
    if (identity is None) == (team is None) or chosen is None or (role and role_arg):
        raise InvalidInput(
            "name one identity or one --team, and one role",
            hint=f"pave project member add {project} alice viewer  |  "
            f"pave project member add {project} --team T --role viewer",
        )
    with Client() as client:
        if team is not None:
            bound = client.set_team_role(project, team, chosen)
            console.print(f"every member of team {bound.team} is {bound.role} on {bound.project}")
            return
        assert identity is not None
        member = client.set_member(project, identity, chosen)
    console.print(f"{member.identity} is {member.role} on {member.project}")


@member_app.command("list")
def list_(project: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """List the members of PROJECT and their roles, teams included."""
    with Client() as client:
        found = {"members": client.list_members(project), "teams": client.list_team_roles(project)}
    emit(found, lambda doc: _render_members(project, doc), as_json=as_json)


def _render_members(project: str, found: dict[str, Any]) -> None:
    shown = table(f"Members of {project}", "identity", "role", "granted by", "granted at")
    for m in found["members"]:
        shown.add_row(m.identity, m.role, m.granted_by, m.granted_at.isoformat()[:19])
    for t in found["teams"]:
        shown.add_row(f"team:{t.team}", t.role, t.granted_by, t.granted_at.isoformat()[:19])
    empty = not found["members"] and not found["teams"]
    console.print(f"{project} has no members besides its owner and the admins" if empty else shown)


@member_app.command("remove")
def remove(
    project: str = typer.Argument(...),
    identity: str | None = typer.Argument(None),
    team: str | None = typer.Option(None, "--team", help="Take the team's role away."),
) -> None:
    """Take IDENTITY's (or --team TEAM's) role on PROJECT away."""
    if (identity is None) == (team is None):
        raise InvalidInput(
            "name one identity or one --team",
            hint=f"pave project member remove {project} alice  |  ... remove {project} --team T",
        )
    with Client() as client:
        if team is not None:
            client.remove_team_role(project, team)
            console.print(f"team {team} has no role on {project} any more")
            return
        assert identity is not None
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
    as_json: bool = JSON,
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
    emit(result, lambda doc: _render_policy(project, doc), as_json=as_json)


def _render_policy(project: str, policy: PolicyOut) -> None:
    shown = table(f"Policy of {project}", "setting", "value")
    for key, value in policy.model_dump().items():
        if key != "project":
            shown.add_row(key, "-" if value is None else str(value))
    console.print(shown)


@app.command("approve")
def approve(
    project: str = typer.Argument(...),
    version: str = typer.Argument(..., help="The model version number."),
    comment: str = typer.Option("", "--comment", "-m", help="Why it may go to production."),
    prompt: str | None = typer.Option(
        None, "--prompt", help="Approve a version of this prompt of PROJECT (PROJECT.NAME) instead."
    ),
) -> None:
    """Approve VERSION of PROJECT's model (or of a prompt) for production (you must not be its author)."""
    with Client() as client:
        approval = client.approve(project, version, comment=comment, prompt=prompt)
    console.print(
        f"{approval.project} version {approval.version} approved by {approval.approved_by} "
        f"(author {approval.author}, gates {approval.gates})"
    )
