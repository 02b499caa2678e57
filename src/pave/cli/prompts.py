"""``pave prompt evaluate`` and ``pave prompt promote``: prompt versions gated like model versions."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from pave.cli.console import EXIT_GATES, JSON, console, emit, err_console, table
from pave.client import Client

app = typer.Typer(help="Evaluate and promote prompts of MLflow's prompt registry.", no_args_is_help=True)


@app.command("evaluate")
def evaluate(
    prompt: str = typer.Argument(..., help="The prompt: its key in pave.yaml, or PROJECT.KEY."),
    version: int = typer.Argument(..., help="The prompt version to evaluate."),
    project_dir: Path = typer.Option(Path("."), "--dir", help="The project folder (its pave.yaml)."),
    as_json: bool = JSON,
) -> None:
    """Run mlflow.genai.evaluate on VERSION, apply the gates, record them, move the alias if they pass."""
    # MLflow prints its evaluation summary on stdout: keep stdout for the result (--json parses it).
    with Client() as client, contextlib.redirect_stdout(sys.stderr):
        result = client.evaluate_prompt(project_dir, prompt, version)
    emit(result, _render, as_json=as_json)
    if not result["passed"]:
        raise typer.Exit(EXIT_GATES)


def _render(result: dict[str, Any]) -> None:
    shown = table(f"{result['prompt']} version {result['version']}", "metric", "value")
    for metric, value in sorted(result["metrics"].items()):
        shown.add_row(metric, f"{value:.4g}")
    console.print(shown)
    for gate in result["gates"]:
        mark = "skipped" if gate["skipped"] else ("passed" if gate["passed"] else "FAILED")
        console.print(f"gate {escape(gate['metric'])}: {mark}: {escape(gate['message'])}")
    console.print(f"evaluation run {result['run_id']}")
    if result["alias"]:
        console.print(f"alias {result['alias']} -> version {result['version']}")
    elif result["alias_refused"]:
        err_console.print(f"gates passed, but the alias did not move: {escape(result['alias_refused'])}")
    elif not result["passed"]:
        err_console.print("gates failed: the alias did not move")


@app.command("promote")
def promote(
    name: str = typer.Argument(..., help="The prompt, PROJECT.KEY."),
    version: int = typer.Argument(..., help="A version whose gates passed."),
    alias: str = typer.Option("production", "--alias", help="The alias to move."),
) -> None:
    """Point ALIAS (default production) of prompt NAME at VERSION (gates passed; approvals respected)."""
    with Client() as client:
        client.promote_prompt(name, version, alias=alias)
    console.print(f"{name}@{alias} -> version {version}")
