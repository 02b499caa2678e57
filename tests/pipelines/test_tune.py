"""pave tune: Optuna trials as MLflow child runs, shared steps cached, resumable, checked up front."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from mlflow import MlflowClient

from pave.config import Settings
from pave.errors import InvalidInput
from pave.pipelines.tune import TAG_STATE, TAG_STUDY, tune_project
from pave_testing import PaveServer, run_pave

ProjectFactory = Callable[..., Path]

STEPS = """
import time
from pathlib import Path


def prepare(ctx, marks: str) -> list:
    Path(marks, f"prepare.{time.time_ns()}").write_text("ran")  # how often the shared step ran
    return [1.0, 2.0, 3.0]


def train(data: list, x: float, nap: float, ctx) -> float:
    time.sleep(nap)
    score = -((x - 2.0) ** 2) + sum(data)
    for epoch in range(3):
        ctx.report(score - (2 - epoch), epoch)
    return score


def evaluate(score: float) -> dict:
    return {"score": score}
"""


def tuning_yaml(
    name: str,
    marks: Path,
    *,
    trials: int = 8,
    parallel: int = 1,
    nap: float = 0.0,
    extra: str = "",
    pruner: str = "none",
) -> str:
    return textwrap.dedent(f"""\
        name: {name}
        seed: 5
        steps:
          - {{name: prepare, function: steps:prepare, params: {{marks: '{marks}'}}}}
          - {{name: train, function: steps:train, inputs: {{data: prepare}}, params: {{x: 0.0, nap: {nap}}}}}
          - {{name: evaluate, function: steps:evaluate, inputs: {{score: train}}}}
        metrics: {{step: evaluate, primary: score}}
        tune:
          metric: score
          direction: maximize
          trials: {trials}
          parallel: {parallel}
          pruner: {pruner}
          params:
            train.x: {{type: float, low: -5.0, high: 5.0}}
        {extra}""")


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    folder = tmp_path / "marks"
    folder.mkdir()
    return folder


def _children(tracking_uri: str, parent: str) -> list:
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.`mlflow.parentRunId` = '{parent}'")


def test_eight_trials_are_eight_child_runs_of_one_parent_sharing_the_upstream_step(
    make_project: ProjectFactory, tracking_uri: str, settings: Settings, marks: Path
) -> None:
    root = make_project({"pave.yaml": tuning_yaml("tune-eight", marks), "steps.py": STEPS})
    result = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    children = _children(tracking_uri, result.parent_run_id)
    assert len(children) == 8
    assert {c.info.status for c in children} == {"FINISHED"}
    assert {c.data.tags[TAG_STATE] for c in children} == {"complete"}
    assert len({c.data.params["train.x"] for c in children}) == 8
    assert {c.data.tags[TAG_STUDY] for c in children} == {result.study}
    assert len(list(marks.iterdir())) == 1, (
        "the step upstream of the tuned param ran once, then came from the cache"
    )
    assert [t.state for t in result.trials] == ["COMPLETE"] * 8
    assert result.best is not None
    assert result.best.value == max(c.data.metrics["score"] for c in children)
    parent = MlflowClient(tracking_uri=tracking_uri).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["best_score"] == result.best.value
    assert set(result.importances) == {"train.x"}
    # the best trial's params ran once more as an ordinary run: every step cached
    assert result.run is not None
    assert result.run.cached_steps == ["prepare", "train", "evaluate"]
    assert result.run.params["train.x"] == str(result.best.params["train.x"])

    again = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert again.parent_run_id == result.parent_run_id
    assert again.resumed_from == 8
    assert len(_children(tracking_uri, result.parent_run_id)) == 8  # nothing ran twice
    assert again.run is None  # and the best was not registered twice


@pytest.mark.slow
def test_the_best_trial_s_model_is_registered_and_gated_like_any_run(
    churn_project: ProjectFactory, tracking_uri: str, settings: Settings
) -> None:
    root = churn_project()
    text = (root / "pave.yaml").read_text() + textwrap.dedent("""\
        tune:
          metric: roc_auc
          trials: 3
          params:
            train.C: {type: float, low: 0.01, high: 10.0, log: true}
        """)
    (root / "pave.yaml").write_text(text)
    result = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert result.run is not None
    assert result.run.model_version is not None
    assert result.run.gates_passed
    assert result.run.alias == "candidate"
    best = MlflowClient(tracking_uri=tracking_uri).get_run(result.run.run_id)
    assert float(best.data.params["train.C"]) == pytest.approx(result.best.params["train.C"])  # type: ignore[union-attr]
    assert best.data.tags["pave.tune.parent"] == result.parent_run_id


@pytest.mark.slow
def test_unpromising_trials_are_pruned_by_the_median_of_their_reports(
    make_project: ProjectFactory, tracking_uri: str, settings: Settings, marks: Path
) -> None:
    text = tuning_yaml("tune-pruned", marks, trials=14, pruner="median")
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    result = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    pruned = [t for t in result.trials if t.state == "PRUNED"]
    assert pruned, "some trials reported below the median and were stopped"
    runs = {c.info.run_id: c for c in _children(tracking_uri, result.parent_run_id)}
    for trial in pruned:
        assert trial.run_id is not None
        assert runs[trial.run_id].data.tags[TAG_STATE] == "pruned"
        assert runs[trial.run_id].info.status == "KILLED"


@pytest.mark.parametrize(
    ("space", "line", "message"),
    [
        ("train.x: {type: float, low: 5.0, high: -5.0}", 15, "low (5) is greater than high (-5)"),
        ("train.gamma: {type: float, low: 0, high: 1}", 15, "unknown param 'gamma' of step train"),
        ("trian.x: {type: float, low: 0, high: 1}", 15, "unknown step 'trian'"),
    ],
)
def test_a_bad_space_is_refused_before_anything_runs_naming_its_line(
    make_project: ProjectFactory,
    tracking_uri: str,
    settings: Settings,
    marks: Path,
    space: str,
    line: int,
    message: str,
) -> None:
    text = tuning_yaml("tune-bad", marks).replace("train.x: {type: float, low: -5.0, high: 5.0}", space)
    assert text.splitlines()[line - 1].strip() == space
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    with pytest.raises(InvalidInput) as info:
        tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert f"line {line}, tune.params" in info.value.message
    assert message in info.value.message
    assert not list(marks.iterdir())
    assert not (settings.home / "optuna.db").exists()


@pytest.mark.slow
def test_a_killed_pave_tune_resumes_where_it_stopped(
    make_project: ProjectFactory, shared_server: PaveServer, marks: Path
) -> None:
    root = make_project({"pave.yaml": tuning_yaml("tune-killed", marks, nap=0.5), "steps.py": STEPS})
    env = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    tracking = f"{shared_server.url}/mlflow"
    os.environ["MLFLOW_TRACKING_TOKEN"] = shared_server.token
    process = subprocess.Popen(
        [sys.executable, "-m", "pave", "tune", str(root)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while _complete(tracking) < 3:
            assert process.poll() is None, "the tuning ended before it was killed"
            assert time.monotonic() < deadline, "three trials did not finish"
            time.sleep(0.1)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    before = _complete(tracking)
    assert before < 8
    resumed = run_pave("tune", str(root), "--json", env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    result = json.loads(resumed.stdout)
    assert result["resumed_from"] == before
    assert [t["state"] for t in result["trials"]].count("COMPLETE") == 8
    children = _children(tracking, result["parent_run_id"])
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert len(finished) == 8
    assert len(children) - len(finished) <= 1  # the trial the kill interrupted, marked as such
    assert all(c.data.tags[TAG_STATE] == "interrupted" for c in children if c.info.status != "FINISHED")
    assert result["run"]["model_version"] is None  # no model: spec has none; the best run still ran
    assert [step["status"] for step in result["run"]["steps"]] == ["cached"] * 3


def _complete(tracking_uri: str) -> int:
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name("tune-killed")
    if experiment is None:
        return 0
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`{TAG_STATE}` = 'complete'", max_results=100
    )
    return len(runs)


@pytest.mark.postgres
def test_the_study_lives_in_postgres_and_resumes_from_it(
    make_project: ProjectFactory, tracking_uri: str, postgres_url: str, tmp_path: Path, marks: Path
) -> None:
    settings = Settings(home=tmp_path / "home", database_url=postgres_url)
    assert "_optuna" in settings.tuning_db_url
    root = make_project({"pave.yaml": tuning_yaml("tune-pg", marks, trials=3), "steps.py": STEPS})
    first = tune_project(root, tracking_uri=tracking_uri, settings=settings, study="pg-study", progress=False)
    (root / "pave.yaml").write_text(tuning_yaml("tune-pg", marks, trials=5))
    second = tune_project(
        root, tracking_uri=tracking_uri, settings=settings, study="pg-study", progress=False
    )
    assert second.parent_run_id == first.parent_run_id
    assert second.resumed_from == 3
    assert len(second.trials) == 5
    assert len(_children(tracking_uri, first.parent_run_id)) == 5
    assert not (settings.home / "optuna.db").exists()


@pytest.mark.slow
def test_parallel_trials_run_in_processes_at_the_same_time(
    make_project: ProjectFactory, tracking_uri: str, settings: Settings, marks: Path
) -> None:
    text = tuning_yaml("tune-parallel", marks, trials=5, parallel=2, nap=3.0)
    root = make_project({"pave.yaml": text, "steps.py": STEPS})
    result = tune_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert len(_children(tracking_uri, result.parent_run_id)) == 5
    later = sorted(result.trials, key=lambda t: t.number)[1:]  # the first runs alone, to fill the cache
    assert any(
        a.started < b.ended and b.started < a.ended  # type: ignore[operator]
        for i, a in enumerate(later)
        for b in later[i + 1 :]
    )
    assert len(list(marks.iterdir())) == 1


def test_a_ray_worker_without_the_project_folder_runs_steps_in_a_copy_of_its_snapshot(
    tmp_path: Path,
) -> None:
    from pave.integrations.ray import project_here
    from pave.pipelines.snapshot import make_snapshot

    project = tmp_path / "project"
    project.mkdir()
    (project / "steps.py").write_text(STEPS)
    (project / "pave.yaml").write_text("name: shipped\n")
    archive = make_snapshot(project, tmp_path / "code.tar.gz").read_bytes()
    assert project_here(archive, project) == project  # this host has the folder: steps run in it
    gone = tmp_path / "elsewhere" / "project"  # another host: the driver's path does not exist there
    copy = project_here(archive, gone)
    assert copy != gone
    assert (copy / "steps.py").read_text() == STEPS
    assert (copy / "pave.yaml").read_text() == "name: shipped\n"
    assert project_here(archive, gone) == copy  # unpacked once per worker process, not per step
