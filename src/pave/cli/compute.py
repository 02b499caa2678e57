"""Compute at scale: ``pave tune`` (hyperparameter tuning)."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from pave.cli.console import EXIT_GATES, EXIT_INTERRUPTED, JSON, console, emit, err_console, table
from pave.client import Client
from pave.config import load_settings
from pave.schemas.platform import CostReport
from pave.schemas.serving import BatchResult

if TYPE_CHECKING:
    from pave.pipelines.engine import StepRecord
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
    from pave.pipelines.tune import TuningInterrupted, tune_project

    settings = load_settings(executor=executor, executor_address=executor_address)
    from pave.pipelines import load_spec

    with Client(settings=settings) as client, contextlib.redirect_stdout(sys.stderr):
        _client_env(client)
        client.admit(load_spec(project_dir).name)
        try:
            result = tune_project(
                project_dir,
                tracking_uri=client.mlflow_tracking_uri,
                settings=settings,
                study=study,
                progress=not as_json and sys.stderr.isatty(),
            )
        except TuningInterrupted as stopped:  # Ctrl-C: what was kept, and how to resume
            err_console.print(f"[bold]interrupted:[/] {escape(stopped.message)}", highlight=False)
            err_console.print(f"[bold]hint:[/] {escape(stopped.hint)}", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        client.record_usage((result.trials and load_spec(project_dir).name) or "", tuning_usage(result))
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


@app.command("batch")
def batch(
    project: str = typer.Argument(..., help="The project whose registered model scores the table."),
    input_uri: str = typer.Option(..., "--input", help="A .parquet or .csv file: a path or s3://BUCKET/KEY."),
    output_uri: str = typer.Option(
        ...,
        "--output",
        help="Where the scored table goes: a .parquet or .csv file, or a folder ending with / "
        "(Parquet part files written in parallel, with a _SUCCESS manifest once complete).",
    ),
    version: str | None = typer.Option(
        None, "--version", help="The model version (default: alias champion)."
    ),
    alias: str | None = typer.Option(None, "--alias", help="The alias of the version, e.g. candidate."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="Workers at once (default: CPUs)."),
    monitor: bool = typer.Option(
        False,
        "--monitor",
        help="Send a sample of the scored rows to the platform for the project's drift monitors.",
    ),
    as_json: bool = JSON,
) -> None:
    """Score a table offline with a registered model: the input rows, the predictions, the version.

    Same predict path as the gateway; read part by part; the output appears whole or not at all.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    settings = load_settings()
    shown = not as_json and sys.stderr.isatty()
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    )
    with (
        Client(settings=settings) as client,
        contextlib.redirect_stdout(sys.stderr),
        bar if shown else contextlib.nullcontext(),
    ):
        task = bar.add_task("scoring", total=None)

        def moved(rows: int, parts: int) -> None:
            bar.update(task, description=f"scored {rows:,} rows ({parts} parts)")

        result = client.batch(
            project,
            input_uri,
            output_uri,
            version=version,
            alias=alias,
            workers=workers,
            progress=moved if shown else None,
            monitor=monitor,
        )

    def render(job: BatchResult) -> None:
        console.print(
            f"scored {job.rows:,} rows with {project} v{job.model_version} into {escape(output_uri)} "
            f"in {job.seconds:.1f}s ({job.rows_per_second:,.0f} rows/s, {job.workers} workers); "
            f"job recorded as run {job.run_id}"
            + (
                f"; {job.monitored:,} rows sent to the project's monitors"
                if job.monitored is not None
                else ""
            )
        )

    emit(result, render, as_json=as_json)


def step_usage(kind: str, run_id: str, steps: list[StepRecord]) -> list[dict[str, object]]:
    """Usage items of the steps that ran (cached steps used nothing)."""
    return [
        {
            "kind": kind,
            "ref": f"{run_id}/{s.name}",
            "cpu_seconds": s.cpu_seconds,
            "gpu_seconds": s.seconds * s.assigned.get("GPU", 0.0),
            "peak_memory": s.peak_memory,
        }
        for s in steps
        if s.status in ("ran", "failed")
    ]


def tuning_usage(result: TuneResult) -> list[dict[str, object]]:
    """One usage item per trial that ran in this call: the CPU-seconds of its run's steps."""
    import mlflow

    items: list[dict[str, object]] = []
    for trial in result.trials:
        if trial.run_id is None or trial.number < 0:
            continue
        with contextlib.suppress(Exception):
            steps = mlflow.artifacts.load_dict(f"runs:/{trial.run_id}/pave/steps.json")["steps"]
            items.append(
                {
                    "kind": "trial",
                    "ref": trial.run_id,
                    "cpu_seconds": sum(float(s.get("cpu_seconds", 0.0)) for s in steps),
                    "peak_memory": max([int(s.get("peak_memory", 0)) for s in steps] or [0]),
                }
            )
    return items[result.resumed_from :] or [{"kind": "trial", "ref": result.parent_run_id}]


@app.command("costs")
def costs_command(
    project: str | None = typer.Argument(None, help="One project (default: every project; admins)."),
    since: str | None = typer.Option(None, "--since", help="ISO date or time (UTC); default 30 days ago."),
    as_json: bool = JSON,
) -> None:
    """What projects used and cost: per kind (steps, trials, batch jobs, deployments, storage)."""
    with Client() as client:
        data = client.costs(project, since=since)

    def render(found: CostReport) -> None:
        title = f"costs since {found.since[:10]}"
        rows = table(title, "project", "kind", "CPU-hours", "GPU-hours", "requests", "cost")
        for name, info in found.projects.items():
            for kind, line in sorted(info.kinds.items()):
                rows.add_row(
                    name,
                    kind,
                    f"{line['cpu_seconds'] / 3600:.3f}",
                    f"{line['gpu_seconds'] / 3600:.3f}",
                    f"{line['requests']:,}",
                    f"{line['cost']:.4f}",
                )
            rows.add_row(name, "[bold]total[/]", "", "", "", f"[bold]{info.total:.4f}[/]")
        console.print(rows)
        for name, info in found.projects.items():
            if info.budget is not None:
                budget = info.budget
                share = 100 * budget["spent_this_month"] / budget["budget"]
                spent = budget["spent_this_month"]
                console.print(f"{name}: {spent:.2f} of {budget['budget']:g} this month ({share:.0f}%)")

    emit(data, render, as_json=as_json)
