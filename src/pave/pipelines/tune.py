"""Hyperparameter tuning: ``pave tune`` runs the project's pipeline as Optuna trials.

One tuning is one Optuna study, stored in the platform's database (``Settings.tuning_db_url``: its
own SQLite file beside Pave's, or its own PostgreSQL schema), and one MLflow parent run in the
project's experiment. Each trial is a child run (``mlflow.parentRunId``): the pipeline with the
trial's params, its params and metrics, and the tag ``pave.tune.state`` (complete or pruned). Steps
upstream of the tuned params have the same cache key in every trial, so they are computed once (the
first trial runs alone to fill the cache) and read from the cache after that.

Trials run one at a time in this process (``parallel: 1``), in ``parallel`` local processes, or,
when the executor is ``ray``, ``parallel`` at once from this process with their steps as Ray tasks
(:mod:`pave.pipelines.tune_trials`). Sampling is TPE (or random), seeded with the project seed;
pruning is Optuna's median pruner, fed by ``ctx.report(value, position)`` in a step.

The study's name derives from the spec, so running ``pave tune`` again after it was stopped (even
killed) resumes: trials left running are marked failed and their params queued again, their MLflow
runs marked KILLED, and only the missing trials run. At the end the best trial's params run once
more as an ordinary run (every step cached) whose model is logged, gated and registered like any
``pave run``'s; the parent run holds the trials and the parameter importances as artifacts.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pave.config import Settings
from pave.errors import InvalidInput
from pave.pipelines.datasets import pin_sources
from pave.pipelines.executor import Executor
from pave.pipelines.project import RunResult, apply_overrides, direct_objects, project_experiment, run_spec
from pave.pipelines.spec import ProjectSpec, TuneSpec
from pave.pipelines.spec_file import load_spec
from pave.pipelines.tune_trials import (
    TAG_STATE,
    TAG_STUDY,
    TAG_TRIAL,
    Job,
    Phases,
    cluster,
    load_study,
    open_storage,
    optuna_module,
    queue,
    run_queued,
)
from pave.tracking import lineage as L

__all__ = [
    "TAG_STATE",
    "TAG_STUDY",
    "TAG_TRIAL",
    "TuneResult",
    "TuningInterrupted",
    "open_storage",
    "study_name",
    "tune_project",
]

TAG_TUNE_RUN = "pave.tune.parent"  # on the best trial's registration run: the parent run
TAG_KIND = "pave.kind"  # "tune" on the parent run
TRIALS_ARTIFACT = "tune/trials.json"
IMPORTANCES_ARTIFACT = "tune/importances.json"
PHASES_ARTIFACT = "tune/phases.json"  # seconds after the start when each phase was reached
_PARENT_ATTR = "mlflow_parent_run_id"
_FINAL_ATTR = "mlflow_final_run_id"
_SOURCES_ATTR = "pave_sources"  # the study's versions of its s3://, https:// and SQL sources


@dataclass
class TrialRecord:
    """One trial as the study stored it."""

    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None
    params: dict[str, Any]
    run_id: str | None
    node: str | None
    started: float | None
    ended: float | None


@dataclass
class TuneResult:
    """What ``pave tune`` did: the study, its trials, the best one and its registered model."""

    study: str
    parent_run_id: str
    metric: str
    direction: str
    trials: list[TrialRecord]
    best: TrialRecord | None
    importances: dict[str, float]
    resumed_from: int  # trials already done when this call started
    run: RunResult | None = None  # the best trial's registration run
    notes: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds after the start (Phases)

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("trials", "best", "run")}
        out["trials"] = [asdict(t) for t in self.trials]
        out["best"] = asdict(self.best) if self.best else None
        out["run"] = self.run.to_dict() if self.run else None
        return out


def study_name(spec: ProjectSpec) -> str:
    """The default study of a spec: the project and a digest of everything that shapes the trials."""
    text = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True)
    return f"{spec.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


# --- the driver ------------------------------------------------------------------------------------


def tune_project(
    project_dir: str | Path,
    *,
    tracking_uri: str,
    settings: Settings,
    study: str | None = None,
    progress: bool = True,
) -> TuneResult:
    """Run (or resume) the tuning of the project in ``project_dir``; register the best trial's model.

    Raises:
        InvalidInput: no ``tune:`` in pave.yaml, or a bad space (before anything runs, naming the line).
        MissingExtra: Optuna is not installed.
        PipelineStepFailed / PaveError: a trial failed (the study keeps what finished; run again to resume).
    """
    import mlflow

    project = Path(project_dir).resolve()
    spec = load_spec(project)
    if spec.tune is None:
        raise InvalidInput(
            f"{project / 'pave.yaml'} has no tune: section",
            hint="add one, e.g. tune: {metric: roc_auc, trials: 20, params: "
            "{train.C: {type: float, low: 0.001, high: 10, log: true}}} (docs/spec.md)",
        )
    tune = spec.tune
    name = study or study_name(spec)
    storage_url = settings.tuning_db_url
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    job = Job(
        project_dir=str(project),
        spec=spec.model_dump(mode="json", by_alias=True),
        tracking_uri=tracking_uri,
        settings=settings.model_dump(mode="json"),
        storage_url=storage_url,
        study=name,
        parent_run_id="",
        env={k: v for k, v in os.environ.items() if k == "MLFLOW_TRACKING_TOKEN"},
    )
    phases = Phases()
    with cluster(job, settings, phases) as ray:  # Ray: connecting from now on, on a thread
        storage = open_storage(storage_url)
        the_study = load_study(job, storage)
        job.pinned = _pinned(the_study, spec, settings)
        notes = _recover(the_study, client, name)
        phases.mark("study ready")
        job.parent_run_id = _parent_run(the_study, client, spec, tune, name, tracking_uri, settings)
        phases.mark("parent run created")
        done = _finished(the_study)
        display = _Progress(tune, total=tune.trials, done=done, enabled=progress)
        queue(the_study, tune.trials - done)
        try:
            with display:
                run_queued(
                    job,
                    settings,
                    the_study,
                    storage,
                    lambda: display.update(the_study),
                    first=done == 0,
                    ray=ray,
                    phases=phases,
                )
        except BaseException as exc:
            interrupted = isinstance(exc, KeyboardInterrupt)
            client.set_tag(job.parent_run_id, L.TAG_ERROR, str(exc)[:4000] or type(exc).__name__)
            client.set_terminated(job.parent_run_id, "KILLED" if interrupted else "FAILED")
            if interrupted:
                raise _interrupted(the_study, client, job, project, named=study is not None) from exc
            if ray is not None and (unreachable := ray.failure()) is not None:
                raise unreachable from exc  # the cluster, not the steps it failed
            raise
        phases.mark("trials ended")
        result = _finish(the_study, client, job, spec, settings, done, notes, executor=ray)
    phases.mark("best trial registered")
    result.phases = phases.marks
    client.log_dict(job.parent_run_id, phases.marks, PHASES_ARTIFACT)
    return result


class TuningInterrupted(KeyboardInterrupt):
    """``pave tune`` was stopped (Ctrl-C): what it left, and the command that resumes it."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message, self.hint = message, hint


def _interrupted(study: Any, client: Any, job: Job, project: Path, *, named: bool) -> TuningInterrupted:
    """After Ctrl-C: the trials it stopped are failed with their params queued again and their runs
    KILLED (what a resumed ``pave tune`` does for a killed one's); the way to resume."""
    stopped = _recover(study, client, job.study)
    done = _finished(study)
    again = f"pave tune {project}" + (f" --study {job.study}" if named else "")
    return TuningInterrupted(
        f"tuning {job.study} interrupted: {done} of {job.tune.trials} trials finished"
        + (f"; {len(stopped)} stopped, their params run again on resume" if stopped else ""),
        hint=f"run `{again}` to resume (finished trials are kept, cached steps are reused)",
    )


def _pinned(study: Any, spec: ProjectSpec, settings: Settings) -> dict[str, dict[str, str]]:
    """The study's data: its sources beyond the project folder are read once, when it starts, and
    every trial (and a resumed study) reads those versions, not the sources as they are then."""
    pinned: dict[str, dict[str, str]] | None = study.user_attrs.get(_SOURCES_ATTR)
    if pinned is None:
        pinned = pin_sources(spec, direct_objects(settings))
        study.set_user_attr(_SOURCES_ATTR, pinned)
    return pinned


def _finished(study: Any) -> int:
    optuna = optuna_module()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _recover(study: Any, client: Any, name: str) -> list[str]:
    """Trials a stopped ``pave tune`` left running: failed, and their params queued again."""
    optuna = optuna_module()
    notes, numbers = [], set()
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
        notes.append(f"trial {trial.number} was interrupted: its params run again")
        numbers.add(str(trial.number))
    for run in client.search_runs(
        [str(e.experiment_id) for e in client.search_experiments()],
        filter_string=f"tags.`{TAG_STUDY}` = '{name}' and attributes.status != 'FINISHED'",
    ):
        tags = run.data.tags
        if not tags.get("mlflow.parentRunId") or tags.get(TAG_STATE) in ("pruned", "interrupted"):
            continue
        # Left running by a killed pave tune, or ended FAILED by a Ctrl-C that stopped its trial.
        if run.info.status == "RUNNING" or tags.get(TAG_TRIAL) in numbers:
            client.set_tag(run.info.run_id, TAG_STATE, "interrupted")
            client.set_terminated(run.info.run_id, "KILLED")
    return notes


def _parent_run(
    study: Any,
    client: Any,
    spec: ProjectSpec,
    tune: TuneSpec,
    name: str,
    tracking_uri: str,
    settings: Settings,
) -> str:
    existing = study.user_attrs.get(_PARENT_ATTR)
    if existing:
        client.update_run(existing, status="RUNNING")
        return str(existing)
    experiment = project_experiment(spec, tracking_uri=tracking_uri, settings=settings)
    run = client.create_run(
        experiment,
        run_name=f"tune {name}",
        tags={L.TAG_PROJECT: spec.name, TAG_STUDY: name, TAG_KIND: "tune"},
    )
    run_id = run.info.run_id
    client.log_param(run_id, "tune.metric", tune.metric)
    client.log_param(run_id, "tune.direction", tune.direction)
    client.log_param(run_id, "tune.trials", tune.trials)
    client.log_param(run_id, "tune.sampler", tune.sampler)
    for key, space in tune.params.items():
        client.log_param(run_id, f"tune.param.{key}", json.dumps(space.model_dump(exclude_none=True)))
    client.log_dict(run_id, tune.model_dump(mode="json"), "tune/spec.json")
    study.set_user_attr(_PARENT_ATTR, run_id)
    return str(run_id)


class _Progress:
    """A progress bar of the finished trials, with the best value so far."""

    def __init__(self, tune: TuneSpec, *, total: int, done: int, enabled: bool) -> None:
        self.tune, self.total, self.done, self.enabled = tune, total, done, enabled
        self._bar: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._bar.__enter__()
            self._task = self._bar.add_task(f"trials ({self.tune.metric}: no value yet)", total=self.total)
            self._bar.update(self._task, completed=self.done)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)

    def update(self, study: Any) -> None:
        if self._bar is None:
            return
        done = _finished(study)
        try:
            best = f"best {self.tune.metric} = {study.best_value:.4g}"
        except ValueError:  # no complete trial yet
            best = f"{self.tune.metric}: no value yet"
        self._bar.update(self._task, completed=done, description=f"trials ({best})")


def _records(study: Any) -> list[TrialRecord]:
    return [
        TrialRecord(
            number=t.number,
            state=t.state.name,
            value=t.value,
            params=dict(t.params),
            run_id=t.user_attrs.get("run_id"),
            node=t.user_attrs.get("node"),
            started=t.datetime_start.timestamp() if t.datetime_start else None,
            ended=t.datetime_complete.timestamp() if t.datetime_complete else None,
        )
        for t in study.get_trials(deepcopy=False)
    ]


def _finish(
    study: Any,
    client: Any,
    job: Job,
    spec: ProjectSpec,
    settings: Settings,
    resumed: int,
    notes: list[str],
    *,
    executor: Executor | None = None,
) -> TuneResult:
    optuna = optuna_module()
    tune = job.tune
    records = _records(study)
    complete = [r for r in records if r.state == "COMPLETE"]
    best = None
    if complete:
        number = study.best_trial.number
        best = next(r for r in records if r.number == number)
    importances: dict[str, float] = {}
    if len(complete) >= 2 and len(tune.params) >= 1:
        try:
            importances = {k: float(v) for k, v in optuna.importance.get_param_importances(study).items()}
        except (RuntimeError, ValueError) as exc:  # e.g. every trial had the same params
            notes.append(f"no parameter importances: {exc}")
    parent = job.parent_run_id
    client.log_dict(parent, {"trials": [asdict(r) for r in records]}, TRIALS_ARTIFACT)
    client.log_dict(parent, importances, IMPORTANCES_ARTIFACT)
    result = TuneResult(
        study=job.study,
        parent_run_id=parent,
        metric=tune.metric,
        direction=tune.direction,
        trials=records,
        best=best,
        importances=importances,
        resumed_from=resumed,
        notes=notes,
    )
    if best is None:
        client.set_terminated(parent, "FAILED")
        raise InvalidInput(
            f"no trial of study {job.study} completed ({len(records)} trial(s), all pruned or failed)",
            hint="loosen the pruner (tune.pruner: none) or check the trials' logs in MLflow",
        )
    assert best.value is not None
    client.set_tag(parent, "pave.tune.best_trial", str(best.number))
    client.log_metric(parent, f"best_{tune.metric}", best.value)
    for key, value in best.params.items():
        client.log_param(parent, f"best.{key}", value)
    if study.user_attrs.get(_FINAL_ATTR) is None:
        final = run_spec(
            job.project_dir,
            apply_overrides(spec, best.params),
            tracking_uri=job.tracking_uri,
            settings=settings,
            tags={TAG_TUNE_RUN: parent, TAG_STUDY: job.study, "mlflow.runName": f"best of {job.study}"},
            register=True,
            pinned=job.pinned,
            executor=executor,  # the tuning's cluster connection (every step is cached: nothing runs)
        )
        study.set_user_attr(_FINAL_ATTR, final.run_id)
        client.set_tag(parent, "pave.tune.final_run", final.run_id)
        result.run = final
    else:
        notes.append(f"the best trial was registered before, by run {study.user_attrs[_FINAL_ATTR]}")
    client.set_terminated(parent, "FINISHED")
    return result
