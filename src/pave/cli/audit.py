"""``pave audit``: list, verify and export the hash-chained audit trail (admin token)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from pave.cli.console import EXIT_FAILED, JSON, console, emit, err_console, table
from pave.client import Client
from pave.schemas.access import AuditRecord

app = typer.Typer(help="The audit trail: who did what, allowed or denied.", invoke_without_command=True)

_PAGE = 1000


@app.callback()
def list_(
    ctx: typer.Context,
    identity: str | None = typer.Option(None, "--identity", help="Only this user or service account."),
    project: str | None = typer.Option(None, "--project", help="Only requests about this project."),
    outcome: str | None = typer.Option(None, "--outcome", help="allowed, denied or failed."),
    since: str | None = typer.Option(None, "--since", help="30m, 2h, 7d or an ISO date."),
    limit: int = typer.Option(100, "--limit", min=1, max=1000),
    as_json: bool = JSON,
) -> None:
    """List audit records, oldest first (filters combine)."""
    if ctx.invoked_subcommand is not None:
        return
    with Client() as client:
        rows = client.audit(identity=identity, project=project, outcome=outcome, since=since, limit=limit)
    emit(rows, _render, as_json=as_json)


def _render(rows: list[AuditRecord]) -> None:
    shown = table(
        "Audit trail", "seq", "at", "identity", "method", "path", "project", "status", "outcome", "client"
    )
    for r in rows:
        shown.add_row(
            str(r.seq),
            r.at[:23],
            r.identity or "-",
            r.method,
            r.path[:60],
            r.project or "-",
            str(r.status),
            r.outcome,
            r.client or "-",
        )
    console.print(shown if rows else "no matching audit records")


@app.command("verify")
def verify(as_json: bool = JSON) -> None:
    """Check the whole chain; exit 1 and name the first bad record if a row was edited or deleted."""
    with Client() as client:
        result = client.verify_audit()
    if as_json:
        emit(result, lambda _: None, as_json=True)
        if not result.ok:
            sys.exit(EXIT_FAILED)
        return
    if result.ok:
        console.print(f"audit chain intact: {result.checked} records verified")
        return
    err_console.print(f"[bold red]audit chain broken[/] at record {result.first_bad_seq}: {result.problem}")
    err_console.print(f"{result.checked} records before it are intact; the head says {result.head}")
    # sys.exit, not typer.Exit: main() runs Typer with standalone_mode=False, which swallows Exit codes.
    sys.exit(EXIT_FAILED)


@app.command("export")
def export(
    output: Path = typer.Option(..., "--output", "-o", help="File to write (JSON lines, one record a line)."),
    since: str | None = typer.Option(None, "--since", help="30m, 2h, 7d or an ISO date."),
) -> None:
    """Write every record (with its hashes) as JSON lines, for a SIEM."""
    count = 0
    after = 0
    with Client() as client, output.open("w", encoding="utf-8") as handle:
        while True:
            rows = client.audit(since=since, after_seq=after, limit=_PAGE)
            for row in rows:
                handle.write(json.dumps(row.model_dump(mode="json"), sort_keys=True) + "\n")
            count += len(rows)
            if len(rows) < _PAGE:
                break
            after = rows[-1].seq
    console.print(f"{count} audit records written to {output}")
