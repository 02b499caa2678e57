"""The golden path: ``pave templates``, ``pave new``, ``pave run``, ``pave reproduce``, ``pave runs``,
``pave models`` and ``pave template upgrade``."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from pave import telemetry
from pave.cli.console import EXIT_GATES, JSON, console, emit, err_console, print_json, table
from pave.client import Client
from pave.config import load_settings
from pave.errors import InvalidInput, PaveError
from pave.schemas.projects import RunOut

app = typer.Typer()
template_app = typer.Typer(help="Work with golden-path templates.", no_args_is_help=True)


def _client_env(client: Client) -> None:
    """Let the in-process MLflow client authenticate to the platform with the same token."""
    os.environ["MLFLOW_TRACKING_TOKEN"] = client.token


def _parse_sets(values: list[str]) -> dict[str, str]:
    overrides: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or ("." not in key and key != "seed"):
            raise InvalidInput(
                f"--set {item!r} is not of the form STEP.PARAM=VALUE", hint="e.g. --set train.C=0.5"
            )
        overrides[key.strip()] = value
    return overrides


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


@app.command("templates")
def templates(as_json: bool = JSON) -> None:
    """List the golden-path templates."""
    from dataclasses import asdict

    from pave.templates import list_templates

    found = [asdict(info) for info in list_templates()]
    emit(found, _render_templates, as_json=as_json)


def _render_templates(found: list[dict[str, Any]]) -> None:
    shown = table(
        "Golden-path templates (`pave new NAME --template T`)",
        "template",
        "version",
        "description",
        "generates",
    )
    for info in found:
        shown.add_row(info["name"], info["versions"][-1], info["description"], info["generates"])
    console.print(shown)


@app.command("new")
def new(
    name: str = typer.Argument(..., help="Project name: lower-case letters, digits and dashes."),
    template: str = typer.Option(..., "--template", "-t", help="See `pave templates`."),
    directory: Path | None = typer.Option(None, "--dir", help="Where to create it (default ./NAME)."),
    owner: str | None = typer.Option(None, "--owner", help="Default: you (the token's identity)."),
    description: str = typer.Option("", "--description"),
) -> None:
    """Create a project from a template and register it with the platform."""
    from pave.templates import generate, get_template

    info = get_template(template)
    with Client() as client:
        owner = owner or client.whoami().identity
        target = (directory or Path.cwd() / name).expanduser().resolve()
        existed = target.exists()
        answers = {"project_name": name, "owner": owner, "description": description or info.description}
        with console.status(f"generating {name} from {info.name} {info.version}..."):
            path = generate(info.name, target, answers)
        try:
            client.create_project(
                name,
                owner=owner,
                description=answers["description"],
                template=info.name,
                template_version=info.version,
            )
        except PaveError:
            if not existed:  # undo only what this command created
                shutil.rmtree(path, ignore_errors=True)
            raise
    console.print(f"created project [bold]{name}[/] in {path} ({info.name} {info.version})")
    console.print(f"next: cd {path} && pave run")


@template_app.command("upgrade")
def upgrade(
    project_dir: Path = typer.Argument(Path("."), help="The project folder."),
    to: str | None = typer.Option(None, "--to", help="Template version (default: the latest)."),
) -> None:
    """Merge a newer template version into a project, keeping your own edits."""
    from pave.templates import upgrade as do_upgrade

    with console.status("merging the new template version..."):
        result = do_upgrade(project_dir, to)
    console.print(
        f"{result.template}: {result.from_version} -> {result.to_version} in {result.project_dir}; "
        "review with `git diff`, then commit"
    )
    if result.conflicts:
        err_console.print("conflicts to resolve by hand: " + ", ".join(result.conflicts))
        raise typer.Exit(1)


def print_run(result: Any) -> None:
    steps = Table(title=f"run {result.run_id} ({result.status})")
    for column in ("step", "status", "seconds", "note"):
        steps.add_column(column)
    for step in result.steps:
        status = {"cached": "[cyan]cached[/]", "ran": "[green]ran[/]"}.get(step.status, step.status)
        steps.add_row(step.name, status, f"{step.seconds:.2f}", step.reason or "")
    console.print(steps)
    if result.metrics:
        console.print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(result.metrics.items())))
    if result.gates:
        gates = Table(title="promotion gates")
        for column in ("metric", "rule", "threshold", "observed", "result"):
            gates.add_column(column)
        for gate in result.gates:
            if gate.skipped:
                verdict = f"[dim]skipped[/] {gate.message}"
            elif gate.passed:
                verdict = "[green]pass[/]"
            elif gate.observed is None:
                verdict = f"[red]FAIL[/] {escape(gate.message)}"
            else:
                verdict = f"[red]FAIL[/] short by {gate.shortfall:.4g} {escape(gate.message)}"
            rule = gate.rule if gate.baseline is None else f"{gate.rule} vs champion ({gate.baseline:.4g})"
            observed = "-" if gate.observed is None else f"{gate.observed:.4g}"
            threshold = "-" if gate.threshold is None else f"{gate.threshold:.4g}"
            gates.add_row(gate.metric, rule, threshold, observed, verdict)
        console.print(gates)
    for note in result.warnings:
        err_console.print(f"[yellow]note:[/] {escape(note)}")
    if result.model_version:
        alias = f", alias [bold]{result.alias}[/]" if result.alias else ", no alias moved"
        new = " (unchanged: nothing new registered)" if result.reused else ""
        console.print(f"model {result.model_name} version {result.model_version}{new}{alias}")


def _upload_progress(enabled: bool) -> Any:
    """A progress bar on stderr for large uploads (data versions over 16 MB), None when off."""
    if not enabled:
        return None
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    state: dict[str, Any] = {}

    def update(sent: int, total: int) -> None:
        if total < 16 << 20:
            return
        if "bar" not in state:
            state["bar"] = Progress(
                "uploading", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err_console
            )
            state["bar"].start()
            state["task"] = state["bar"].add_task("upload", total=total)
        state["bar"].update(state["task"], completed=sent)
        if sent >= total:
            state.pop("bar").stop()

    return update


def _record_run(client: Client, project: str, result: Any, retrains: bool) -> None:
    """Record the finished run as what the project's retrains re-run (best effort: the run is done)."""
    if result.code_snapshot is None:
        return
    try:
        client.record_run(project, result.run_id)
    except PaveError as exc:
        if retrains:
            err_console.print(
                f"[yellow]note:[/] this run is not recorded for retraining: {escape(exc.message)}"
            )


def _check_out(client: Client, run_id: str, folder: Path) -> Path:
    """Bring run ``run_id`` (its code snapshot, data versions and effective spec) into ``folder``."""
    import yaml

    from pave.pipelines.mlflow_run import TAG_SNAPSHOT
    from pave.pipelines.reproduction import check_out
    from pave.tracking import lineage

    client.whoami()  # a platform that does not answer fails here, at once (MLflow would retry)
    tracking_uri = client.mlflow_tracking_uri
    run_id = lineage.resolve_run_id(run_id, tracking_uri=tracking_uri)
    tags = dict(lineage.get_run(run_id, tracking_uri=tracking_uri).data.tags)
    if not tags.get(TAG_SNAPSHOT):
        raise InvalidInput(
            f"run {run_id} has no code snapshot to run from",
            hint="run the project from its folder: `pave run PROJECT_DIR` (it stores a snapshot)",
        )
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise InvalidInput(
            f"{folder} is not an empty folder: --from-run checks the run out there",
            hint="name a new folder: pave run --from-run RUN_ID NEW_DIR",
        )
    staging = folder.parent / f".{folder.name}.checkout"
    staging.mkdir(parents=True, exist_ok=False)
    try:
        project = tags.get(lineage.TAG_PROJECT, "")
        checkout = check_out(
            run_id, staging, tracking_uri=tracking_uri, objects=client.objects(project), tags=tags
        )
        assert checkout.code_dir is not None
        effective = yaml.safe_dump(checkout.spec.model_dump(mode="json", by_alias=True), sort_keys=False)
        (checkout.code_dir / "pave.yaml").write_text(  # the run's own spec, its --set overrides applied
            f"# the effective spec of run {run_id} (pave run --from-run)\n{effective}", encoding="utf-8"
        )
        folder.mkdir(parents=True, exist_ok=True)
        folder.rmdir()
        checkout.code_dir.rename(folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def _record_usage(client: Client, project: str, run_id: str, steps: list[Any]) -> None:
    """Report what the steps that ran used, for cost accounting (best effort: the run is done)."""
    from pave.cli.compute import step_usage

    items = step_usage("step", run_id, steps)
    if items:
        try:
            client.record_usage(project, items)
        except PaveError as exc:
            err_console.print(f"[yellow]note:[/] the run's usage was not recorded: {escape(exc.message)}")


def execute_run(
    client: Client,
    project_dir: Path,
    *,
    from_step: str | None = None,
    from_run: str | None = None,
    sets: list[str] | None = None,
    cache: bool = True,
    progress: bool = True,
) -> Any:
    """Run the project's pipeline against the platform ``client`` reaches (``pave run``, ``pave ci``).

    Returns the run's :class:`~pave.pipelines.RunResult`. A finished run is recorded as what the
    project's retrains re-run, unless it re-ran a recorded one (``from_run``); the steps' usage is
    recorded too (best effort).
    """
    from pave.pipelines import execute_project, load_spec

    # MLflow writes its run links to stdout; keep stdout for Pave's own output (--json).
    with contextlib.redirect_stdout(sys.stderr):
        _client_env(client)
        if from_run is not None:
            project_dir = _check_out(client, from_run, project_dir.expanduser().absolute())
        spec = load_spec(project_dir)
        project = spec.name
        client.admit(project)
        result = execute_project(
            project_dir,
            tracking_uri=client.mlflow_tracking_uri,
            settings=client.settings,
            from_step=from_step,
            params_override=_parse_sets(sets or []),
            progress=progress and sys.stderr.isatty(),
            cache=cache,
            objects=client.objects(project, on_progress=_upload_progress(sys.stderr.isatty())),
        )
        if from_run is None:
            _record_run(client, project, result, retrains=spec.retrain is not None)
        _record_usage(client, project, result.run_id, result.steps)
    return result


@app.command("run")
def run(
    project_dir: Path = typer.Argument(Path("."), help="The project folder (with pave.yaml)."),
    from_step: str | None = typer.Option(None, "--from-step", help="Re-run this step and what follows."),
    set_: list[str] = typer.Option([], "--set", help="Override a parameter: STEP.PARAM=VALUE (repeatable)."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Run every step; store nothing in the cache."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    executor: str | None = typer.Option(
        None, "--executor", help="Where the steps run: local or ray (default: the `executor` setting)."
    ),
    executor_address: str | None = typer.Option(
        None, "--executor-address", help="The Ray cluster: auto, ray://HEAD:10001 or HOST:PORT."
    ),
    from_run: str | None = typer.Option(
        None,
        "--from-run",
        help="Check this run's code snapshot and data versions out into PROJECT_DIR (new) and run it again.",
    ),
) -> None:
    """Run the project's pipeline as one tracked MLflow run; register the model; apply the gates.

    A finished run is recorded as what the project's retrains re-run (its code snapshot), except a
    run made with --from-run (a re-run of a recorded run: the closed loop's retrain jobs).
    Exits 0 when the gates pass, 3 when the run succeeded but a gate failed, 1 when the run failed.
    """
    settings = load_settings(executor=executor, executor_address=executor_address)
    telemetry.configure(settings, "pave-run")
    with Client(settings=settings) as client:
        result = execute_run(
            client,
            project_dir,
            from_step=from_step,
            from_run=from_run,
            sets=set_,
            cache=not no_cache,
            progress=not as_json,
        )
    if as_json:
        print_json(result.to_dict())
    else:
        print_run(result)
    if not result.gates_passed:
        failed = [g for g in result.gates if not g.passed and not g.skipped]
        err_console.print(f"gates failed ({len(failed)}): the aliases did not move")
        raise typer.Exit(EXIT_GATES)


@app.command("reproduce")
def reproduce(
    run_id: str = typer.Argument(..., help="The run to re-execute, or the start of its id (`pave runs`)."),
    project_dir: Path | None = typer.Option(None, "--dir", help="Where the project is now."),
    as_json: bool = JSON,
) -> None:
    """Re-execute a past run from its recorded code, data versions, params and seed."""
    from pave.pipelines import reproduce as do_reproduce

    settings = load_settings()
    telemetry.configure(settings, "pave-run")
    with Client(settings=settings) as client, contextlib.redirect_stdout(sys.stderr):
        _client_env(client)
        result = do_reproduce(
            run_id,
            tracking_uri=client.mlflow_tracking_uri,
            settings=settings,
            project_dir=project_dir,
            progress=not as_json and sys.stderr.isatty(),
            objects_for=client.objects,
        )
    if as_json:
        print_json(
            {
                "original_run_id": result.original_run_id,
                "run": result.run.to_dict(),
                "metrics": {
                    k: {"original": d.original, "reproduced": d.reproduced} for k, d in result.metrics.items()
                },
                "identical": result.identical,
                "code": result.code,
                "warnings": result.warnings,
            }
        )
        return
    table = Table(title=f"reproduction of {result.original_run_id} as {result.run.run_id} ({result.code})")
    for column in ("metric", "original", "reproduced", "difference"):
        table.add_column(column)
    for metric, diff in result.metrics.items():
        table.add_row(
            metric,
            "-" if diff.original is None else f"{diff.original:.6g}",
            "-" if diff.reproduced is None else f"{diff.reproduced:.6g}",
            "-" if diff.diff is None else f"{diff.diff:+.3g}",
        )
    console.print(table)
    for note in result.warnings:
        err_console.print(f"[yellow]note:[/] {note}")
    console.print("identical metrics" if result.identical else "[yellow]metrics differ[/]")


@app.command("runs")
def runs(
    project: str = typer.Argument(..., help="The project."),
    limit: int = typer.Option(20, "--limit", min=1, max=500),
    as_json: bool = JSON,
) -> None:
    """List a project's runs, newest first: the primary metric, the others, the parameters.

    The run column shows the first 12 characters of each id; every command that takes a run id
    takes any unique start of it (4 characters or more).
    """
    with Client() as client:
        rows = client.list_runs(project, limit=limit)
    emit(rows, lambda found: _render_runs(project, found), as_json=as_json)


def _render_runs(project: str, rows: list[RunOut]) -> None:
    if not rows:
        console.print(f"{project} has no runs yet: `pave run`")
        return
    primaries = {str(r.primary_metric) for r in rows if r.primary_metric}
    primary_header = primaries.pop() if len(primaries) == 1 else "primary metric"
    shown = table(f"runs of {project}", "run", "status", "started", primary_header, "metrics", "params")
    shown.add_column("model")
    shown.add_column("commit")
    for r in rows:
        primary = r.primary_metric
        value = r.metrics.get(primary) if primary else None
        if value is None:
            first = "-"
        elif primary_header == primary:
            first = f"[bold]{value:.4g}[/]"
        else:
            first = f"[bold]{primary}={value:.4g}[/]"
        others = ", ".join(f"{k}={v:.3g}" for k, v in sorted(r.metrics.items()) if k != primary)
        params = ", ".join(f"{k}={escape(str(v))}" for k, v in sorted(r.params.items()))
        model = f"v{r.model_version}" if r.model_version else "-"
        commit = (r.git_commit or "-")[:8] + ("*" if r.git_dirty else "")
        status = r.status if not r.error else f"{r.status}: {escape(r.error[:60])}"
        shown.add_row(r.run_id[:12], status, _when(r.start_time), first, others, params, model, commit)
    console.print(shown)


@app.command("models")
def models(
    project: str = typer.Argument(..., help="The project."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """List the versions of a project's registered model, with their aliases."""
    with Client() as client:
        rows = client.list_model_versions(project)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"model versions of {project}")
    for column in ("version", "aliases", "status", "run", "created"):
        table.add_column(column)
    for v in rows:
        table.add_row(
            v.version,
            ", ".join(v.aliases) or "-",
            v.status,
            (v.run_id or "-")[:12],
            _when(v.created),
        )
    console.print(table if rows else f"{project} has no registered versions yet")


app.add_typer(template_app, name="template")
