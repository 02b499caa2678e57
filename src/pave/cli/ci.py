"""``pave ci``: what a project's CI runs (the templates' ``.github/workflows/pave.yml``).

A run against the platform, like ``pave run``; then a comparison with the champion as a Markdown
table, written to ``$GITHUB_STEP_SUMMARY`` (GitHub shows it on the run's page) and to a file that
the workflow's pull-request step posts as a comment. Exit 3 when a gate failed. On the branch that
promotes (``--promote-branch``, on a push), a version whose gates passed is put forward for
production: a rollout (which moves the alias ``champion`` when it completes) when the project is
deployed; when the project's policy wants an approval the version lacks, nothing takes traffic and
the summary says who must run what.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from pave.cli.console import EXIT_GATES, JSON, console, err_console, print_json
from pave.cli.golden import execute_run, print_run
from pave.client import Client
from pave.config import load_settings
from pave.errors import NotFound

app = typer.Typer()

CHAMPION = "champion"


@dataclass
class Promotion:
    """What ``pave ci`` did about production: ``done``, ``waiting`` (approval) or ``skipped``."""

    state: str
    message: str


def _champion(client: Client, project: str) -> tuple[str | None, dict[str, float]]:
    """The champion's version and its run's metrics (none when no version is champion)."""
    from mlflow.tracking import MlflowClient

    os.environ["MLFLOW_TRACKING_TOKEN"] = client.token  # MLflow's client authenticates with it
    for version in client.list_model_versions(project):
        if CHAMPION in version.aliases and version.run_id:
            run = MlflowClient(tracking_uri=client.mlflow_tracking_uri).get_run(version.run_id)
            return str(version.version), dict(run.data.metrics)
    return None, {}


def _on_promote_branch(branch: str) -> bool:
    pushed = os.environ.get("GITHUB_EVENT_NAME") == "push"
    return pushed and os.environ.get("GITHUB_REF") == f"refs/heads/{branch}"


def _promote(client: Client, project: str, version: str) -> Promotion:
    """Put ``version`` forward for production, as far as the project's policy allows today."""
    policy = client.get_policy(project)
    approval = client.request("GET", f"/api/v1/projects/{project}/approvals/{version}")
    if policy.require_approval and not approval:
        return Promotion(
            "waiting",
            f"version {version} waits for an approval: an approver runs `pave approve {project} {version}`, "
            f"then `pave rollout start {project} --version {version}`",
        )
    try:
        client.get_deployment(project)
    except NotFound:
        return Promotion(
            "skipped",
            f"none ({project} is not deployed: `pave deploy {project} --version {version}` "
            "puts it in production)",
        )
    rollout = client.start_rollout(project, version)
    return Promotion("done", f"rollout of version {version} started ({rollout.state})")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def summary(
    result: Any, spec: Any, champion: str | None, baseline: dict[str, float], promotion: Promotion
) -> str:
    """The Markdown report: metrics against the champion, the gates, the model, the promotion."""
    primary = spec.metrics.primary if spec.metrics else None
    direction = spec.metrics.direction if spec.metrics else "maximize"
    verdict = "passed" if result.gates_passed else "**FAILED**"
    lines = [f"## Pave: {result.project}, run `{result.run_id}`: gates {verdict}", ""]
    against = f"champion (v{champion})" if champion else "champion (none yet)"
    lines += [f"| metric | this change | {against} | difference |", "|---|---:|---:|---:|"]
    for name in sorted(result.metrics, key=lambda m: (m != primary, m)):
        value, before = result.metrics[name], baseline.get(name)
        label = f"**{name}** (primary, {direction})" if name == primary else name
        diff = "-" if before is None else f"{value - before:+.4g}"
        lines.append(f"| {label} | {_number(value)} | {_number(before)} | {diff} |")
    if result.gates:
        lines += ["", "| gate | rule | threshold | observed | result |", "|---|---|---:|---:|---|"]
        for gate in result.gates:
            rule = gate.rule if gate.baseline is None else f"{gate.rule} vs champion ({gate.baseline:.4g})"
            if gate.skipped:
                outcome = f"skipped: {gate.message}"
            elif gate.passed:
                outcome = "pass"
            else:
                outcome = f"**FAIL** {gate.message or f'short by {gate.shortfall:.4g}'}"
            numbers = f"{_number(gate.threshold)} | {_number(gate.observed)}"
            lines.append(f"| {gate.metric} | {rule} | {numbers} | {outcome} |")
    lines.append("")
    if result.model_version:
        reused = " (unchanged: nothing new registered)" if result.reused else ""
        alias = f", alias `{result.alias}`" if result.alias else ", no alias moved"
        lines.append(f"Model: `{result.model_name}` version {result.model_version}{reused}{alias}.")
    lines.append(f"Promotion: {promotion.message}.")
    return "\n".join(lines) + "\n"


@app.command("ci")
def ci(
    project_dir: Path = typer.Argument(Path("."), help="The project folder (with pave.yaml)."),
    comment: Path = typer.Option(
        Path("pave-ci.md"), "--comment", help="Where to write the Markdown report (for a PR comment)."
    ),
    promote_branch: str = typer.Option(
        "main",
        "--promote-branch",
        envvar="PAVE_PROMOTE_BRANCH",
        help="A push to this branch puts a version whose gates passed forward for production.",
    ),
    as_json: bool = JSON,
) -> None:
    """Run the pipeline on the platform, compare with the champion, promote from the main branch.

    Needs PAVE_URL and PAVE_TOKEN. Writes the report to --comment and appends it to
    $GITHUB_STEP_SUMMARY when set. Exits 3 when a gate failed.
    """
    from pave.pipelines import load_spec

    spec = load_spec(project_dir)
    with Client(settings=load_settings()) as client:
        champion, baseline = _champion(client, spec.name)
        result = execute_run(client, project_dir, progress=False)
        if not result.gates_passed:
            promotion = Promotion("skipped", "none (a gate failed)")
        elif not _on_promote_branch(promote_branch):
            promotion = Promotion("skipped", f"none (versions are promoted from pushes to {promote_branch})")
        elif result.model_version is None or (result.reused and champion == result.model_version):
            promotion = Promotion("skipped", "none (no new version)")
        else:
            promotion = _promote(client, spec.name, str(result.model_version))
    report = summary(result, spec, champion, baseline, promotion)
    comment.write_text(report, encoding="utf-8")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with open(step_summary, "a", encoding="utf-8") as out:
            out.write(report)
    if as_json:
        print_json(
            result.to_dict() | {"champion": champion, "promotion": promotion.__dict__, "report": str(comment)}
        )
    else:
        print_run(result)
        console.print(f"promotion: {promotion.message}", markup=False)
        err_console.print(f"report written to {comment}", markup=False)
    if not result.gates_passed:
        raise typer.Exit(EXIT_GATES)
