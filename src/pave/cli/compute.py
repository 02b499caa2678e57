"""Compute at scale: ``pave tune`` (hyperparameter tuning)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from pave.cli.console import EXIT_GATES, JSON, console, emit, err_console, table
from pave.client import Client
from pave.config import load_settings

if TYPE_CHECKING:
    from pave.pipelines.tune import TuneResult

app = typer.Typer()


@app.command("tune")
def tune(
    project_dir: Path = typer.Argument(Path("."), help="The project folder (with pave.yaml and its tune:)."),
    study: str | None = typer.Option(
        None, "--study", help="The study to run or resume (default: named after the project and its spec)."
    ),
    as_json: bool = JSON,
    executor: str | None = typer.Option(
        None, "--executor", help="Where parallel trials run: local or ray (default: the `executor` setting)."
    ),
    executor_address: str | None = typer.Option(
        None, "--executor-address", help="The Ray cluster: auto, ray://HEAD:10001 or HOST:PORT."
    ),
) -> None:
    """Tune the project's params with Optuna: trials as MLflow child runs, the best one registered.

    Run it again after a stop to resume the same study. Exits 3 when the best model fails its gates.
    """
    from pave.cli.golden import _client_env
    from pave.pipelines.tune import tune_project

    settings = load_settings(executor=executor, executor_address=executor_address)
    with Client(settings=settings) as client, contextlib.redirect_stdout(sys.stderr):
        _client_env(client)
        result = tune_project(
            project_dir,
            tracking_uri=client.mlflow_tracking_uri,
            settings=settings,
            study=study,
            progress=not as_json and sys.stderr.isatty(),
        )
    emit(result.to_dict(), lambda _: _print_tuning(result), as_json=as_json)
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {escape(note)}")
    if result.run is not None and not result.run.gates_passed:
        err_console.print("the best trial's model failed its gates: the aliases did not move")
        raise typer.Exit(EXIT_GATES)


def _print_tuning(result: TuneResult) -> None:
    title = f"study {result.study} (parent run {result.parent_run_id})"
    rows = table(title, "trial", "state", result.metric, "params", "node")
    for trial in result.trials:
        value = "-" if trial.value is None else f"{trial.value:.4g}"
        params = ", ".join(
            f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
        )
        rows.add_row(str(trial.number), trial.state.lower(), value, params, trial.node or "-")
    console.print(rows)
    if result.best is not None:
        console.print(f"best: trial {result.best.number}, {result.metric} = {result.best.value:.4g}")
    if result.importances:
        console.print(
            "importances: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(result.importances.items()))
        )
    if result.run is not None and result.run.model_version:
        alias = f", alias [bold]{result.run.alias}[/]" if result.run.alias else ", no alias moved"
        console.print(f"model {result.run.model_name} version {result.run.model_version}{alias}")
