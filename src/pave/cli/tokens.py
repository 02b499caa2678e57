"""``pave token``: create, list and revoke API tokens."""

from __future__ import annotations

import typer

from pave.cli.console import JSON, console, emit, err_console, table
from pave.client import Client
from pave.config import load_settings, write_credentials
from pave.schemas.access import TokenOut

app = typer.Typer(help="Manage API tokens.", no_args_is_help=True)


@app.command("create")
def create(
    identity: str = typer.Argument(..., help="User or service account the token is for."),
    name: str = typer.Option("default", "--name", help="What the token is for, e.g. ci."),
    role: str = typer.Option("developer", "--role", help="viewer|developer|maintainer|approver|admin"),
    project: str | None = typer.Option(None, "--project", help="Limit the token to one project."),
    expires_in_days: int | None = typer.Option(None, "--expires-in-days", min=1, max=3650),
    service: bool = typer.Option(False, "--service", help="The identity is a service account."),
) -> None:
    """Create a token; its secret is printed once and never stored."""
    with Client() as client:
        token = client.create_token(
            identity,
            name,
            role=role,
            project=project,
            expires_in_days=expires_in_days,
            kind="service" if service else "user",
        )
    err_console.print(f"token {token.id} for {identity} ({role}); the secret is shown only once:")
    console.print(token.secret)


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """List tokens (never their secrets)."""
    with Client() as client:
        tokens = client.list_tokens()
    emit(tokens, _render, as_json=as_json)


def _render(tokens: list[TokenOut]) -> None:
    shown = table(
        "API tokens", "id", "identity", "name", "prefix", "role", "project", "created", "expires", "status"
    )
    for t in tokens:
        shown.add_row(
            str(t.id),
            t.identity,
            t.name,
            t.prefix + "…",
            t.role,
            t.project or "*",
            t.created_at.isoformat()[:19],
            t.expires_at.isoformat()[:19] if t.expires_at else "never",
            "revoked" if t.revoked_at else "active",
        )
    console.print(shown)


@app.command("revoke")
def revoke(token_id: int = typer.Argument(..., help="The id from `pave token list`.")) -> None:
    """Revoke a token; it stops working at once."""
    with Client() as client:
        client.revoke_token(token_id)
    console.print(f"token {token_id} revoked")


@app.command("bootstrap")
def bootstrap(name: str = typer.Option("break-glass", "--name")) -> None:
    """Write a new admin token straight into the local store (needs access to PAVE_HOME).

    For when the admin token is lost or the credentials file is corrupt: it replaces the
    credentials file and does not touch anything else.
    """
    from pave.api.platform import open_platform
    from pave.governance.tokens import create_token
    from pave.store.db import transaction

    settings = load_settings()
    platform = open_platform(settings, bootstrap_admin=False)
    with transaction(platform.sessions) as session:
        _, secret = create_token(session, identity="admin", name=name, role="admin")
    write_credentials(settings.credentials_path, settings.url, secret)
    err_console.print(f"new admin token written to {settings.credentials_path} (mode 0600):")
    console.print(secret)
