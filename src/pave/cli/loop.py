"""``pave retrain PROJECT`` and ``pave loop PROJECT``: the closed loop, by hand and in a table."""

from __future__ import annotations

import typer
from rich.table import Table

from pave.cli.console import console, print_json
from pave.client import Client
from pave.schemas.projects import LoopRun

app = typer.Typer()

_STATE_STYLE = {
    "promoted": "green",
    "rolled_back": "yellow",
    "gates_failed": "yellow",
    "unchanged": "dim",
    "failed": "red",
    "registered": "cyan",
}


@app.command("retrain")
def retrain(project: str = typer.Argument(..., help="The project to retrain now.")) -> None:
    """Retrain now: pave run on its current data, the gates, then a progressive rollout."""
    with Client() as client:
        row = client.retrain(project)
    console.print(f"loop run {row.id} of {project} queued (pave run -> gates -> rollout)")
    console.print(f"follow it: pave loop {project}")


@app.command("loop")
def loop(
    project: str = typer.Argument(..., help="The project."),
    limit: int = typer.Option(20, "--limit", min=1, max=500),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """The project's closed loop: its retrain policy and every retrain, with gates and rollout."""
    with Client() as client:
        doc = client.get_loop(project, limit=limit)
    if as_json:
        print_json(doc)
        return
    source = doc.source
    if source is None:
        console.print(f"{project} has no recorded run yet: `pave run` records its run for retraining")
    else:
        retrain_policy = source.retrain
        schedule = (retrain_policy or {}).get("schedule") or "none"
        console.print(
            f"{project} retrains from run {source.run_id or '- (record one: `pave run`)'} "
            f"(recorded {source.recorded_at[:19]}); "
            f"retrain: {'yes' if retrain_policy else 'no retrain: section'}, schedule {schedule}, "
            f"on alert: {source.on_alert}, next scheduled: {(source.next_retrain_at or '-')[:19]}"
        )
    table = loop_table(doc.runs, f"closed loop of {project}")
    console.print(table if doc.runs else f"{project} has not been retrained yet: `pave retrain {project}`")


def loop_table(runs: list[LoopRun], title: str) -> Table:
    """The turns of a project's closed loop, newest first: trigger, run, version, gates, rollout."""
    table = Table(title=title, title_justify="left")
    for column in ("#", "started", "trigger", "state", "run", "version", "gates", "rollout", "outcome"):
        table.add_column(column)
    for run in runs:
        gates = run.gates
        passed = sum(1 for g in gates if g.get("passed") or g.get("skipped"))
        state = run.state
        style = _STATE_STYLE.get(state)
        table.add_row(
            str(run.id),
            run.created_at[:19],
            f"{run.trigger} ({run.triggered_by})",
            f"[{style}]{state}[/]" if style else state,
            (run.run_id or "-")[:12],
            run.model_version or "-",
            f"{passed}/{len(gates)}" if gates else "-",
            str(run.rollout_id or "-"),
            run.error or run.outcome or "",
        )
    return table
