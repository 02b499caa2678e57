"""The generated `.github/workflows/pave.yml`, executed step by step against a live platform.

The workflow's YAML is parsed and its `run:` steps are executed in order, as GitHub's runner does
(`bash -eo pipefail`, the job's and the step's `env:`, `${{ }}` expressions, `if:` conditions,
stop at the first failure unless a step runs `always()`), with GitHub's variables set. What stands
in for the runner: `uses:` steps are skipped (the checkout is the generated project, the Python is
this one); `python -m pip` only records what it was asked to install (this venv already has Pave
and the project's dependencies; the real workflow installs the platform's wheel, downloaded for
real here by `curl`, and the rest from PyPI); `gh` records the comment it would post.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from pave_testing import PaveServer, World, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

SHIM_PYTHON = """#!/bin/sh
if [ "$1" = "-m" ] && [ "$2" = "pip" ]; then
  shift 2
  printf '%s\\n' "$*" >> "$SHIM_LOG.pip"
  exit 0
fi
exec {python} "$@"
"""
SHIM_GH = """#!/bin/sh
printf '%s\\n' "$*" >> "$SHIM_LOG.gh"
"""


@dataclass
class Job:
    """The outcome of one simulated job: each step's name and exit code, the files it left."""

    steps: list[tuple[str, int]] = field(default_factory=list)
    output: str = ""

    @property
    def green(self) -> bool:
        return all(code == 0 for _, code in self.steps)


def _expression(expr: str, context: dict[str, Any]) -> Any:
    """The handful of `${{ }}` expressions the template uses, evaluated like GitHub does."""
    expr = expr.strip()
    if expr.startswith("always() && "):
        return all(_expression(part, context) for part in expr.split(" && ")[1:])
    match = re.fullmatch(r"hashFiles\('([^']+)'\) != ''", expr)
    if match:
        return (Path(context["workspace"]) / match[1]).exists()
    match = re.fullmatch(r"([\w.]+) (==|!=) '([^']*)'", expr)
    if match:
        return (_expression(match[1], context) == match[3]) == (match[2] == "==")
    if re.fullmatch(r"(secrets|github)(\.\w+)+", expr):
        value: Any = context
        for part in expr.split("."):
            value = value.get(part, "") if isinstance(value, dict) else ""
        return value
    raise AssertionError(f"the test does not know the expression {expr!r}: teach it")


def _substitute(text: str, context: dict[str, Any]) -> str:
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: str(_expression(m[1], context)), text)


def run_workflow(project: Path, tmp: Path, context: dict[str, Any]) -> Job:
    """Execute the project's workflow as GitHub would for the event in ``context``."""
    workflow = yaml.safe_load((project / ".github" / "workflows" / "pave.yml").read_text())
    assert set(workflow[True]) == {"push", "pull_request"}  # YAML reads `on:` as True
    (job,) = workflow["jobs"].values()
    shims = tmp / "shims"
    shims.mkdir(exist_ok=True)
    (shims / "python").write_text(SHIM_PYTHON.format(python=shlex.quote(sys.executable)))
    (shims / "gh").write_text(SHIM_GH)
    for shim in shims.iterdir():
        shim.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PAVE_", "MLFLOW_", "GITHUB_"))}
    env |= {
        "PATH": f"{shims}:{Path(sys.executable).parent}:{env['PATH']}",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_EVENT_NAME": context["github"]["event_name"],
        "GITHUB_REF": context["github"]["ref"],
        "GITHUB_WORKSPACE": str(project),
        "GITHUB_STEP_SUMMARY": str(tmp / "step_summary.md"),
        "RUNNER_TEMP": tempfile.mkdtemp(dir=tmp),
        "SHIM_LOG": str(tmp / "shim"),
        "HOME": str(tmp),
        "PAVE_HOME": str(tmp / "pave-home"),  # the runner has no credentials of its own
    }
    for key, value in (workflow.get("env") or {}).items():
        env[key] = _substitute(str(value), context)
    result, failed = Job(), False
    for step in job["steps"]:
        if "uses" in step:
            continue
        condition = step.get("if")
        if condition is not None:
            inner = re.fullmatch(r"\$\{\{(.*)\}\}", str(condition).strip())
            expr = inner[1] if inner else str(condition)
            if ("always()" not in expr and failed) or not _expression(expr, context):
                continue
        elif failed:
            continue
        step_env = env | {k: _substitute(str(v), context) for k, v in (step.get("env") or {}).items()}
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", _substitute(step["run"], context)],
            cwd=project,
            env=step_env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        result.steps.append((step.get("name", step["run"]), done.returncode))
        result.output += f"--- {step.get('name')}: exit {done.returncode}\n{done.stdout}\n{done.stderr}\n"
        failed = failed or done.returncode != 0
    return result


def _context(server: PaveServer, token: str, project: Path, event: str, ref: str) -> dict[str, Any]:
    return {
        "secrets": {"PAVE_URL": server.url, "PAVE_TOKEN": token},
        "github": {
            "event_name": event,
            "ref": ref,
            "token": "gh-test-token",
            "event": {"repository": {"default_branch": "main"}, "pull_request": {"number": 7}},
        },
        "workspace": str(project),
    }


def _new_project(server: PaveServer, tmp: Path, name: str) -> Path:
    env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
    created = run_pave("new", name, "--template", "tabular-classification", "--dir", str(tmp / name), env=env)
    assert created.returncode == 0, created.stderr
    return tmp / name


def _edit(project: Path, old: str, new: str) -> None:
    spec = project / "pave.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new))
    git = ["git", "-c", "user.name=ci", "-c", "user.email=ci@example.com", "-C", str(project)]
    subprocess.run([*git, "commit", "-qam", "the change"], check=True)  # what the event is about


def test_the_workflow_is_green_for_a_good_change_and_promotes_from_main(
    shared_server: PaveServer, tmp_path: Path
) -> None:
    world = World(shared_server)
    project = _new_project(shared_server, tmp_path, "ci-good")
    token = world.token("ci-bot", "maintainer", "ci-good")
    _champion(shared_server, project, "ci-good")
    with world.admin() as admin:  # deployed, and its policy wants an approval before production
        assert admin.put("/api/v1/projects/ci-good/deployment", json={"version": "1"}).status_code == 200
        policy = admin.put("/api/v1/projects/ci-good/policy", json={"require_approval": True})
        assert policy.status_code == 200, policy.text

    _edit(project, "params: {C: 1.0}", "params: {C: 0.5}")  # the change, pushed to main
    job = run_workflow(project, tmp_path, _context(shared_server, token, project, "push", "refs/heads/main"))

    assert job.green, job.output
    assert [name for name, _ in job.steps] == [
        "Install Pave",
        "Install the project",
        "Test the steps",
        "Run on the platform and compare with the champion",
    ]
    wheel = next(tmp_path.glob("*/pave-*.whl"))  # downloaded from the platform by the workflow's curl
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    info = "pave-0.1.0.dist-info"
    assert {"pave/cli/ci.py", f"{info}/METADATA", f"{info}/entry_points.txt", f"{info}/RECORD"} <= names
    pip_calls = (tmp_path / "shim.pip").read_text().splitlines()
    assert pip_calls == [f"install {wheel}[golden-path]", "install -e .[test]"]

    report = (project / "pave-ci.md").read_text()
    assert report == (tmp_path / "step_summary.md").read_text()
    assert "| metric | this change | champion (v1) | difference |" in report
    assert re.search(r"\| \*\*roc_auc\*\* \(primary, maximize\) \| 0\.\d+ \| 0\.\d+ \| [+-]", report), report
    assert "gates passed" in report
    # approvals respected: the policy wants one, version 2 has none, so nothing took traffic
    assert "version 2 waits for an approval: an approver runs `pave approve ci-good 2`" in report
    with world.admin() as admin:
        assert admin.get("/api/v1/projects/ci-good/rollout").status_code == 404
        assert admin.post("/api/v1/projects/ci-good/approvals", json={"version": "2"}).status_code == 200

    main = _context(shared_server, token, project, "push", "refs/heads/main")
    again = run_workflow(project, tmp_path, main)

    assert again.green, again.output
    report = (project / "pave-ci.md").read_text()
    assert "rollout of version 2 started" in report, report
    with world.admin() as admin:
        rollout = admin.get("/api/v1/projects/ci-good/rollout").json()
    assert rollout["candidate_version"] == "2", rollout


def _champion(server: PaveServer, project: Path, name: str) -> None:
    """The platform before the change: the project's model as it stands, version 1, is champion."""
    admin_env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
    assert run_pave("run", str(project), env=admin_env, timeout=600).returncode == 0
    with World(server).admin() as admin:
        response = admin.post(
            "/mlflow/api/2.0/mlflow/registered-models/alias",
            json={"name": name, "alias": "champion", "version": "1"},
        )
    assert response.status_code == 200, response.text


def test_the_workflow_is_red_for_a_failed_gate_and_comments_on_the_pull_request(
    shared_server: PaveServer, tmp_path: Path
) -> None:
    world = World(shared_server)
    project = _new_project(shared_server, tmp_path, "ci-gate")
    token = world.token("ci-bot", "maintainer", "ci-gate")
    _champion(shared_server, project, "ci-gate")
    # The pull request regularises much harder: the project's own tests still pass (accuracy and
    # roc_auc above their minimums) but roc_auc drops by more than the champion gate allows.
    _edit(project, "params: {C: 1.0}", "params: {C: 0.001}")
    _edit(project, "compare_to: champion, max_drop: 0.01}", "compare_to: champion, max_drop: 0.001}")

    job = run_workflow(
        project, tmp_path, _context(shared_server, token, project, "pull_request", "refs/pull/7/merge")
    )

    assert not job.green
    assert job.steps[-3] == ("Test the steps", 0), job.output
    assert job.steps[-2] == ("Run on the platform and compare with the champion", 3), job.output
    assert job.steps[-1] == ("Comment on the pull request", 0), job.output  # always(), after the failure
    comment = (tmp_path / "shim.gh").read_text().splitlines()[0]
    assert comment == "pr comment 7 --body-file pave-ci.md --edit-last"
    report = (project / "pave-ci.md").read_text()
    assert report == (tmp_path / "step_summary.md").read_text()
    assert "gates **FAILED**" in report
    assert "champion (v1)" in report
    assert re.search(
        r"\| roc_auc \| max_drop vs champion \(0\.99\d+\) \| [^|]+ \| 0\.99\d+ \| \*\*FAIL\*\*", report
    ), report
    assert "Promotion: none (a gate failed)." in report
    with world.admin() as admin:
        versions = admin.get("/api/v1/projects/ci-gate/models").json()
    assert [v["aliases"] for v in versions if v["version"] == "2"] == [[]]
