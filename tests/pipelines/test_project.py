"""End to end: real projects, real MLflow (SQLite), real registry. No mocks."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlflow
import pytest
from mlflow import MlflowClient

from pave.config import Settings
from pave.data.errors import DataFileMissing, DataValidationError
from pave.errors import InvalidInput
from pave.pipelines import execute_project, reproduce
from pave.pipelines.errors import PipelineStepFailed
from pave.registry.versions import list_model_versions, set_alias
from pave.tracking.lineage import list_runs
from pave_testing import mlflow_globals

ProjectFactory = Callable[..., Path]


def client(uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_a_run_records_lineage_registers_and_sets_candidate(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project()
    commit = git_commit_all(root)

    result = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)

    assert result.status == "FINISHED"
    assert result.ran_steps == ["prepare", "train", "evaluate"]
    assert result.gates_passed
    assert result.alias == "candidate"
    assert result.metrics["roc_auc"] > 0.5
    assert result.metrics["train_rows"] == 180.0
    run = client(tracking_uri).get_run(result.run_id)
    tags = run.data.tags
    assert tags["pave.git.commit"] == commit
    assert tags["pave.git.dirty"] == "false"
    assert tags["pave.data.train"] == result.data_versions["train"]
    assert len(result.data_versions["train"]) == 64
    assert tags["pave.env.hash"] == result.env_hash
    assert tags["pave.seed"] == "7"
    assert tags["pave.template"] == "tabular-classification==0.1.0"
    assert tags["pave.version"] == "0.1.0"
    assert run.data.params["train.C"] == "1.0"
    assert run.data.params["prepare.test_size"] == "0.25"
    artifacts = {a.path for a in client(tracking_uri).list_artifacts(result.run_id)}
    assert {"data", "env", "logs", "pave", "gates.json"} <= artifacts
    profile = json.loads(
        Path(
            mlflow.artifacts.download_artifacts(
                run_id=result.run_id, artifact_path="data/profile.json", tracking_uri=tracking_uri
            )
        ).read_text()
    )
    assert profile["train"]["columns"]["age"]["kind"] == "numeric"
    lock = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/env/requirements.lock")
    assert "mlflow==" in lock
    log = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/logs/train.log")
    assert "training with C = 1.0" in log

    (version,) = list_model_versions(result.model_name or "", tracking_uri=tracking_uri)
    assert version.version == result.model_version == "1"
    assert version.aliases == ["candidate"]
    assert version.run_id == result.run_id
    assert version.tags["pave.data.train"] == result.data_versions["train"]
    assert version.tags["pave.git.commit"] == commit
    assert version.tags["pave.profile"] == f"runs:/{result.run_id}/data/profile.json"
    with mlflow_globals(tracking_uri):
        model = mlflow.pyfunc.load_model(f"models:/{result.model_name}@candidate")
    assert model.metadata.signature is not None
    (summary,) = list_runs(result.project, tracking_uri=tracking_uri)
    assert summary.run_id == result.run_id
    assert summary.model_version == "1"
    assert summary.git_commit == commit


def test_a_rerun_is_cached_and_a_param_override_reruns_downstream(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  []")
    first = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    again = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert again.cached_steps == ["prepare", "train", "evaluate"]
    assert again.metrics == first.metrics
    assert (
        client(tracking_uri).get_run(again.run_id).data.tags["pave.steps.cached"] == "prepare,train,evaluate"
    )
    tuned = execute_project(
        root,
        tracking_uri=tracking_uri,
        settings=settings,
        progress=False,
        params_override={"train.C": "0.01"},
    )
    assert tuned.ran_steps == ["train", "evaluate"]
    assert tuned.params["train.C"] == "0.01"
    with pytest.raises(InvalidInput, match="cannot override"):
        execute_project(root, tracking_uri=tracking_uri, settings=settings, params_override={"nope.x": 1})


def test_a_cached_no_op_run_registers_nothing_new(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  []")

    def run(**kwargs: Any) -> Any:
        return execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False, **kwargs)

    first = run()
    again = run()
    assert again.cached_steps == ["prepare", "train", "evaluate"]
    assert again.reused
    assert again.model_version == first.model_version == "1"
    assert again.alias == "candidate"
    assert "nothing changed since version 1" in " ".join(again.warnings)
    versions = list_model_versions(first.model_name or "", tracking_uri=tracking_uri)
    assert [v.version for v in versions] == ["1"]
    assert client(tracking_uri).get_run(again.run_id).data.tags["pave.model.version"] == "1"

    tuned = run(params_override={"train.C": "0.5"})
    assert not tuned.reused
    assert tuned.model_version == "2"
    back = run()  # the first params again: the first run's cached model, so its version
    assert back.reused
    assert back.model_version == "1"
    assert back.alias == "candidate"
    forced = run(from_step="train")  # the model step ran again: a model of its own
    assert not forced.reused
    assert forced.model_version == "3"
    listed = list_runs(first.project, tracking_uri=tracking_uri)
    assert [r.model_version for r in listed] == ["3", "1", "2", "1", "1"]
    assert {r.primary_metric for r in listed} == {"roc_auc"}


def test_a_misspelled_gate_metric_fails_the_run_naming_the_metric_it_meant(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  - {metric: roc_auc, min: 0.5}\n  - {metric: acuracy, min: 0.5}")
    with pytest.raises(InvalidInput) as info:
        execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert info.value.message.startswith("gates[1] names metric 'acuracy', which the run did not log")
    assert "accuracy" in info.value.message
    assert (info.value.hint or "").startswith("did you mean accuracy? fix gates[1].metric in pave.yaml")
    _assert_failed(tracking_uri, root.name, info.value, "invalid_input")


def test_failing_absolute_gates_register_but_move_no_alias(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  - {metric: roc_auc, min: 0.999}\n  - {metric: accuracy, max: 2.0}")
    result = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert result.status == "FINISHED"
    assert not result.gates_passed
    assert result.alias is None
    failed, passed = result.gates
    assert (failed.metric, failed.rule, failed.threshold, failed.passed) == ("roc_auc", "min", 0.999, False)
    assert failed.shortfall == pytest.approx(0.999 - result.metrics["roc_auc"])
    assert passed.passed
    (version,) = list_model_versions(result.model_name or "", tracking_uri=tracking_uri)
    assert version.aliases == []
    assert version.tags["pave.gates"] == "failed"


def test_relative_gates_compare_to_the_champion(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  - {metric: roc_auc, compare_to: champion, max_drop: 0.0}")
    weak = {"train.C": 1e-6, "train.max_iter": 1}

    def run(params: dict[str, float] | None = None) -> Any:
        return execute_project(
            root, tracking_uri=tracking_uri, settings=settings, progress=False, params_override=params
        )

    first, second = run(), run(weak)
    assert first.gates[0].skipped
    assert first.gates[0].message == "no champion yet: relative gate skipped"
    assert first.alias == "candidate"
    assert first.metrics["roc_auc"] != second.metrics["roc_auc"]
    best, worst = (None, weak) if first.metrics["roc_auc"] > second.metrics["roc_auc"] else (weak, None)
    champion = first if best is None else second
    name = champion.model_name or ""
    set_alias(name, "champion", champion.model_version or "", tracking_uri=tracking_uri)

    worse = run(worst)
    gate = worse.gates[0]
    assert gate.baseline == champion.metrics["roc_auc"]
    assert not gate.passed
    assert gate.shortfall == pytest.approx(champion.metrics["roc_auc"] - worse.metrics["roc_auc"])
    assert worse.alias is None
    assert not worse.gates_passed

    same = run(best)  # the champion's own params: its cached model, so its own version
    assert same.gates[0].passed
    assert same.alias == "candidate"
    assert same.reused
    assert same.model_version == champion.model_version
    versions = {v.version: v.aliases for v in list_model_versions(name, tracking_uri=tracking_uri)}
    assert versions[champion.model_version or ""] == ["candidate", "champion"]
    assert versions[worse.model_version or ""] == []


def _assert_failed(uri: str, project: str, err: Exception, code: str) -> None:
    run_id = err.run_id  # type: ignore[attr-defined]
    run = client(uri).get_run(run_id)
    assert run.info.status == "FAILED"
    assert run.data.tags["pave.error.code"] == code
    assert run.data.tags["pave.error"]
    error = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/error.json"))
    assert error["code"] == code
    assert "Traceback" in error["traceback"]
    assert client(uri).search_registered_models(f"name = '{project}'") == []


def test_invalid_data_fails_the_run_with_a_report(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings, churn_frame: Callable[..., Any]
) -> None:
    frame = churn_frame()
    frame.loc[[3, 8], "age"] = -1
    frame.loc[5, "plan"] = "gold"
    root = churn_project(frame=frame)
    with pytest.raises(DataValidationError) as info:
        execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    err = info.value
    assert "data source train does not match TrainSchema" in err.message
    assert "column age: greater_than_or_equal_to(0) failed 2x (rows 3, 8)" in err.message
    problems = {p["column"]: p for p in err.details["problems"]}
    assert problems["plan"]["values"] == ["gold"]
    assert problems["plan"]["rows"] == [5]
    assert err.details["failed_rows"] == 3
    _assert_failed(tracking_uri, root.name, err, "data_validation_failed")
    run = client(tracking_uri).get_run(err.run_id)  # type: ignore[attr-defined]
    report = json.loads(mlflow.artifacts.load_text(f"{run.info.artifact_uri}/data/validation.json"))
    assert report["train"]["valid"] is False


def test_a_raising_step_fails_the_run_and_registers_nothing(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(
        edit=lambda s: s.replace("    proba = ", "    raise ValueError('bad metric')\n    proba = ")
    )
    with pytest.raises(PipelineStepFailed) as info:
        execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert "pave run --from-step evaluate" in (info.value.hint or "")
    _assert_failed(tracking_uri, root.name, info.value, "pipeline_step_failed")
    run = client(tracking_uri).get_run(info.value.run_id)  # type: ignore[attr-defined]
    assert run.data.tags["pave.failed_step"] == "evaluate"
    log = mlflow.artifacts.load_text(f"{run.info.artifact_uri}/logs/evaluate.log")
    assert "ValueError: bad metric" in log


def test_a_missing_data_file_fails_the_run(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project()
    (root / "data" / "train.csv").unlink()
    with pytest.raises(DataFileMissing) as info:
        execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert "data/train.csv" in info.value.message
    assert info.value.hint
    _assert_failed(tracking_uri, root.name, info.value, "data_file_missing")


def test_reproduce_gives_identical_metrics_from_the_stored_data(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  []")
    original = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    # the project's copy of the data changes afterwards, then the folder goes away entirely:
    # reproduce uses the recorded data version and the run's code snapshot
    (root / "data" / "train.csv").write_text("age,income,plan,churn\n1,1.0,basic,0\n")
    shutil.rmtree(root)
    # `pave runs` shows 12 characters of an id
    again = reproduce(original.run_id[:12], tracking_uri=tracking_uri, settings=settings)
    assert again.original_run_id == original.run_id
    assert again.code == f"code snapshot {original.code_snapshot[:12]}"
    assert not again.warnings
    assert again.identical, again.metrics
    assert again.run.metrics["roc_auc"] == original.metrics["roc_auc"]
    assert again.run.ran_steps == ["prepare", "train", "evaluate"]
    assert again.run.data_versions == original.data_versions
    assert again.run.model_version is None
    tags = client(tracking_uri).get_run(again.run.run_id).data.tags
    assert tags["pave.reproduces"] == original.run_id


def git_commit_all(root: Path) -> str:
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "."], cwd=root, check=True)
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-qm", "init"], cwd=root, check=True
    )
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True
    ).stdout.strip()


def test_reproduce_runs_the_snapshot_not_the_edited_folder(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  []")
    commit = git_commit_all(root)
    original = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    steps = root / "steps.py"  # an uncommitted edit that changes the metrics
    steps.write_text(steps.read_text().replace('"accuracy": float(', '"accuracy": 0.5 * float('))
    again = reproduce(original.run_id, tracking_uri=tracking_uri, settings=settings)
    assert again.code == f"code snapshot {original.code_snapshot[:12]} of git commit {commit[:12]}"
    assert again.identical, again.metrics
    assert all(d.diff == 0 for d in again.metrics.values())


def test_runs_without_a_snapshot_check_out_the_recorded_commit(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  []")
    commit = git_commit_all(root)
    original = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    client(tracking_uri).delete_tag(original.run_id, "pave.code.snapshot")  # as runs recorded before 0.2
    steps = root / "steps.py"
    steps.write_text(steps.read_text().replace('"accuracy": float(', '"accuracy": 0.5 * float('))
    again = reproduce(original.run_id, tracking_uri=tracking_uri, settings=settings)
    assert again.code == f"git commit {commit} (worktree)"
    assert again.identical, again.metrics
    worktrees = subprocess.run(["git", "worktree", "list"], cwd=root, capture_output=True, text=True).stdout
    assert len(worktrees.strip().splitlines()) == 1  # the temporary worktree is gone


def test_unknown_runs_and_projects(tracking_uri: str, settings: Settings) -> None:
    from pave.errors import NotFound

    assert list_runs("never-ran", tracking_uri=tracking_uri) == []
    with pytest.raises(NotFound, match="no run's id starts with 0123"):
        reproduce("0123", tracking_uri=tracking_uri, settings=settings)
    with pytest.raises(InvalidInput, match="not a run id"):
        reproduce("run-1", tracking_uri=tracking_uri, settings=settings)


def test_from_step_reruns_downstream_and_is_tagged(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project(gates="  []")
    execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    again = execute_project(
        root, tracking_uri=tracking_uri, settings=settings, progress=False, from_step="train"
    )
    assert again.cached_steps == ["prepare"]
    assert again.ran_steps == ["train", "evaluate"]
    assert client(tracking_uri).get_run(again.run_id).data.tags["pave.from_step"] == "train"
    with pytest.raises(InvalidInput, match="no such step"):
        execute_project(root, tracking_uri=tracking_uri, settings=settings, from_step="nope")


PYFUNC_STEPS = """
import mlflow.pyfunc
import pandas as pd


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input[["age"]] * 2


def train(df: pd.DataFrame) -> Doubler:
    return Doubler()


def split(df: pd.DataFrame) -> dict:
    return {"X": df[["age"]]}


def evaluate(model: Doubler) -> dict:
    return {"score": 1.0}
"""


def test_a_pyfunc_model_from_the_project_loads_without_the_project(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings, tmp_path: Path
) -> None:
    root = churn_project(gates="  []")
    name = root.name
    (root / "steps.py").write_text(PYFUNC_STEPS)
    (root / "pave.yaml").write_text(
        f"""
name: {name}
data: {{sources: {{train: {{path: data/train.csv}}}}}}
steps:
  - {{name: split, function: steps:split, inputs: {{df: data.train}}}}
  - {{name: train, function: steps:train, inputs: {{df: data.train}}}}
  - {{name: evaluate, function: steps:evaluate, inputs: {{model: train}}}}
model: {{step: train, flavor: pyfunc, input_example_from: split}}
metrics: {{step: evaluate, primary: score}}
"""
    )
    result = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert result.alias == "candidate"
    # a fresh interpreter, elsewhere, without the project folder on sys.path (like the gateway)
    script = (
        "import mlflow, pandas as pd\n"
        f"mlflow.set_registry_uri({tracking_uri!r})\n"
        f"m = mlflow.pyfunc.load_model('models:/{name}@candidate')\n"
        "print(m.predict(pd.DataFrame({'age': [21]})).iloc[0, 0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "42"
