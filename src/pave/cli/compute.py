"""Compute at scale: ``pave tune`` (hyperparameter tuning)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

import typer
from rich.table import Table

from pave.cli.console import console, err_console, print_json
from pave.client import Client
from pave.config import load_settings

app = typer.Typer()


@app.command("tune")
def tune(
    project_dir: Path = typer.Argument(Path("."), help="The project folder (with pave.yaml and its tune:)."),
    study: str | None = typer.Option(
        None, "--study", help="The study to run or resume (default: named after the project and its spec)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
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
    from pave.cli.golden import EXIT_GATES_FAILED, _client_env
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
    if as_json:
        print_json(result.to_dict())
    else:
        table = Table(title=f"study {result.study} (parent run {result.parent_run_id})")
        for column in ("trial", "state", result.metric, "params", "node"):
            table.add_column(column)
        for trial in result.trials:
            value = "-" if trial.value is None else f"{trial.value:.4g}"
            params = ", ".join(
                f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial.params.items()
            )
            table.add_row(str(trial.number), trial.state.lower(), value, params, trial.node or "-")
        console.print(table)
        if result.best is not None:
            console.print(f"best: trial {result.best.number}, {result.metric} = {result.best.value:.4g}")
        if result.importances:
            console.print(
                "importances: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(result.importances.items()))
            )
        if result.run is not None and result.run.model_version:
            alias = f", alias [bold]{result.run.alias}[/]" if result.run.alias else ", no alias moved"
            console.print(f"model {result.run.model_name} version {result.run.model_version}{alias}")
    for note in result.notes:
        err_console.print(f"[yellow]note:[/] {note}")
    if result.run is not None and not result.run.gates_passed:
        err_console.print("the best trial's model failed its gates: the aliases did not move")
        raise typer.Exit(EXIT_GATES_FAILED)
