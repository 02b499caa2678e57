"""GenAI evaluation gates: ``mlflow.genai.evaluate`` on a prompt version, the gates, the alias.

A real ``pave up`` (the shared server), the real MLflow client and ``mlflow.genai.evaluate`` with
deterministic scorers (no LLM here: the judge path is tested for its refusal when none is set).
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pave.client import Client
from pave.errors import Forbidden, InvalidInput
from pave_testing import World, mlflow_globals

APP = '''
def noop():
    return 1


def answer(prompt, question):
    """The app: a real one would send the formatted prompt to an LLM."""
    return prompt.format(question=question)
'''
SCORERS = """
from mlflow.genai.scorers import scorer


@scorer
def mentions_topic(outputs, expectations):
    return expectations["topic"] in outputs
"""
SPEC = """
name: {project}
steps:
  - {{name: noop, function: app:noop}}
prompts:
  qa:
    data: eval.jsonl
    predict: app:answer
    scorers:
      - {{builtin: RegexMatch, args: {{pattern: "^Answer:"}}}}
      - {{function: scorers:mentions_topic}}
    gates:
      - {{metric: regex_match/mean, min: 1.0}}
      - {{metric: mentions_topic/mean, min: 0.5}}
{extra}
"""
RECORDS = [
    {"inputs": {"question": "what is churn?"}, "expectations": {"topic": "churn"}},
    {"inputs": {"question": "how do I cancel?"}, "expectations": {"topic": "cancel"}},
]


@pytest.fixture(scope="module")
def genai(world: World, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    suffix = secrets.token_hex(3)
    project = f"genai-{suffix}"
    world.project(project)
    world.member(project, f"dana-{suffix}", "developer")
    world.member(project, f"april-{suffix}", "approver")
    folder = tmp_path_factory.mktemp("genai")
    (folder / "app.py").write_text(APP)
    (folder / "scorers.py").write_text(SCORERS)
    (folder / "eval.jsonl").write_text("\n".join(json.dumps(r) for r in RECORDS))
    (folder / "pave.yaml").write_text(SPEC.format(project=project, extra=""))
    return {
        "world": world,
        "project": project,
        "folder": folder,
        "developer": world.token(f"dana-{suffix}", "developer"),
        "approver": world.token(f"april-{suffix}", "approver"),
    }


@pytest.fixture
def registered(genai: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """Prompt ``<project>.qa``: version 1 answers in the expected format, version 2 does not."""
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", genai["developer"])
    name = f"{genai['project']}.qa"
    with mlflow_globals(f"{genai['world'].server.url}/mlflow"):
        try:
            mlflow.genai.load_prompt(f"prompts:/{name}/2")
        except Exception:
            mlflow.genai.register_prompt(name=name, template="Answer: about {{question}}")
            mlflow.genai.register_prompt(name=name, template="Well, {{question}} is a good one")
        yield {**genai, "name": name}


def _client(genai: dict[str, Any], role: str = "developer") -> Client:
    return Client(genai["world"].server.url, genai[role])


def test_a_passing_version_is_recorded_and_gets_the_alias(registered: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    with _client(registered) as client:
        result = client.evaluate_prompt(registered["folder"], "qa", 1)
    assert result["passed"] is True
    assert result["metrics"]["regex_match/mean"] == 1.0
    assert result["metrics"]["mentions_topic/mean"] == 1.0
    assert result["alias"] == "candidate"

    mlflow = MlflowClient()
    version = mlflow.get_prompt_version(registered["name"], 1)
    assert version.tags["pave.gates"] == "passed"
    assert version.tags["pave.eval.run_id"] == result["run_id"]
    run = mlflow.get_run(result["run_id"])
    assert run.data.tags["pave.prompt.name"] == registered["name"]
    assert run.data.tags["pave.prompt.version"] == "1"
    assert mlflow.get_experiment(run.info.experiment_id).name == registered["project"]
    assert mlflow.get_prompt_version_by_alias(registered["name"], "candidate").version == 1


def test_a_failing_version_is_recorded_and_the_alias_stays(registered: dict[str, Any]) -> None:
    from mlflow import MlflowClient

    with _client(registered) as client:
        client.evaluate_prompt(registered["folder"], f"{registered['project']}.qa", 1)
        result = client.evaluate_prompt(registered["folder"], f"{registered['project']}.qa", 2)
    assert result["passed"] is False
    assert result["metrics"]["regex_match/mean"] == 0.0
    failed = [g for g in result["gates"] if not g["passed"]]
    assert [g["metric"] for g in failed] == ["regex_match/mean"]
    assert result["alias"] is None
    mlflow = MlflowClient()
    assert mlflow.get_prompt_version(registered["name"], 2).tags["pave.gates"] == "failed"
    assert mlflow.get_prompt_version_by_alias(registered["name"], "candidate").version == 1

    with _client(registered, "approver") as approver, pytest.raises(Forbidden, match="failed its gates"):
        approver.promote_prompt(registered["name"], 2)


def test_promotion_to_production_needs_the_approve_action(registered: dict[str, Any], tmp_path: Path) -> None:
    from mlflow import MlflowClient

    with _client(registered) as client:
        client.evaluate_prompt(registered["folder"], "qa", 1)
        with pytest.raises(Forbidden, match="'approve'"):
            client.promote_prompt(registered["name"], 1)
    with _client(registered, "approver") as approver:
        approver.promote_prompt(registered["name"], 1)
    assert MlflowClient().get_prompt_version_by_alias(registered["name"], "production").version == 1

    # A relative gate compares with the evaluation of the version in production.
    for name in ("app.py", "scorers.py", "eval.jsonl"):
        (tmp_path / name).write_text((registered["folder"] / name).read_text())
    relative = "      - {metric: mentions_topic/mean, compare_to: champion, max_drop: 0.1}"
    (tmp_path / "pave.yaml").write_text(
        SPEC.format(project=registered["project"], extra="") + relative + "\n"
    )
    with _client(registered) as client:
        result = client.evaluate_prompt(tmp_path, "qa", 2)
    compared = result["gates"][-1]
    assert (compared["rule"], compared["skipped"], compared["baseline"]) == ("max_drop", False, 1.0)


def test_an_llm_judge_without_a_judge_model_is_a_clear_error(
    registered: dict[str, Any], tmp_path: Path
) -> None:
    for name in ("app.py", "scorers.py", "eval.jsonl"):
        (tmp_path / name).write_text((registered["folder"] / name).read_text())
    spec = SPEC.format(project=registered["project"], extra="").replace(
        "      - {function: scorers:mentions_topic}", "      - {builtin: Correctness}"
    )
    (tmp_path / "pave.yaml").write_text(spec)
    with _client(registered) as client, pytest.raises(InvalidInput) as raised:
        client.evaluate_prompt(tmp_path, "qa", 1)
    assert "Correctness is an LLM judge" in raised.value.message
    assert "judge" in (raised.value.hint or "")


def test_a_gate_on_a_metric_the_evaluation_did_not_produce_names_the_closest(
    registered: dict[str, Any], tmp_path: Path
) -> None:
    for name in ("app.py", "scorers.py", "eval.jsonl"):
        (tmp_path / name).write_text((registered["folder"] / name).read_text())
    spec = SPEC.format(project=registered["project"], extra="").replace("regex_match/mean", "regex_mach/mean")
    (tmp_path / "pave.yaml").write_text(spec)
    with _client(registered) as client, pytest.raises(InvalidInput) as raised:
        client.evaluate_prompt(tmp_path, "qa", 1)
    assert "regex_mach/mean" in raised.value.message
    assert "regex_match/mean" in (raised.value.hint or "")


def test_the_cli_exits_with_the_gates_code_when_a_gate_fails(registered: dict[str, Any]) -> None:
    env = {
        **os.environ,
        "PAVE_URL": registered["world"].server.url,
        "PAVE_TOKEN": registered["developer"],
        "PAVE_HOME": str(registered["folder"] / ".pave-home"),
    }
    command = [sys.executable, "-m", "pave", "prompt", "evaluate", "qa", "2", "--json"]
    done = subprocess.run(command, cwd=registered["folder"], env=env, capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert json.loads(done.stdout)["passed"] is False
