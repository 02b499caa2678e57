"""Hyperparameter tuning: ``pave tune`` runs the project's pipeline as Optuna trials.

One tuning is one Optuna study, stored in the platform's database (``Settings.tuning_db_url``: its
own SQLite file beside Pave's, or its own PostgreSQL schema), and one MLflow parent run in the
project's experiment. Each trial is a child run (``mlflow.parentRunId``): the pipeline with the
trial's params, its params and metrics, and the tag ``pave.tune.state`` (complete or pruned). Steps
upstream of the tuned params have the same cache key in every trial, so they are computed once (the
first trial runs alone to fill the cache) and read from the cache after that.

Trials run one at a time in this process (``parallel: 1``), in ``parallel`` local processes, or as
``parallel`` Ray tasks when the executor is ``ray``; inside a trial the steps run locally. Sampling
is TPE (or random), seeded with the project seed; pruning is Optuna's median pruner, fed by
``ctx.report(value, position)`` in a step.

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
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from pave.config import Settings
from pave.errors import InvalidInput, MissingExtra
from pave.pipelines import context as step_context
from pave.pipelines.datasets import pin_sources
from pave.pipelines.errors import PipelineStepFailed
from pave.pipelines.project import (
    RunResult,
    apply_overrides,
    direct_objects,
    project_experiment,
    run_spec,
)
from pave.pipelines.snapshot import ARCHIVE, make_snapshot
from pave.pipelines.spec import ProjectSpec, SearchSpace, TuneSpec, load_spec
from pave.tracking import lineage as L

TAG_STUDY = "pave.tune.study"
TAG_TRIAL = "pave.tune.trial"
TAG_STATE = "pave.tune.state"  # on a trial's run: complete, pruned
TAG_TUNE_RUN = "pave.tune.parent"  # on the best trial's registration run: the parent run
TAG_KIND = "pave.kind"  # "tune" on the parent run
TRIALS_ARTIFACT = "tune/trials.json"
IMPORTANCES_ARTIFACT = "tune/importances.json"
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

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("trials", "best", "run")}
        out["trials"] = [asdict(t) for t in self.trials]
        out["best"] = asdict(self.best) if self.best else None
        out["run"] = self.run.to_dict() if self.run else None
        return out


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as exc:
        raise MissingExtra("pave tune", "tune") from exc
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def study_name(spec: ProjectSpec) -> str:
    """The default study of a spec: the project and a digest of everything that shapes the trials."""
    text = json.dumps(spec.model_dump(mode="json", by_alias=True), sort_keys=True)
    return f"{spec.name}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def open_storage(url: str) -> Any:
    """Optuna's RDB storage at ``url`` (the PostgreSQL schema it names is created first).

    On SQLite every transaction takes the write lock when it begins (``BEGIN IMMEDIATE``) and waits
    for it (busy timeout): trial workers in other processes read and then write the same rows (two
    claiming one queued trial), and a read that turns into a write after another process committed
    would otherwise fail at once instead of waiting its turn.
    """
    from pave.store.db import check_connection, make_engine

    optuna = _optuna()
    engine = make_engine(url)
    try:
        check_connection(engine)
    finally:
        engine.dispose()
    kwargs: dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    storage = optuna.storages.RDBStorage(
        url.replace("postgresql://", "postgresql+psycopg://"), engine_kwargs=kwargs
    )
    if url.startswith("sqlite"):
        _begin_immediate(storage.engine)
    return storage


def _begin_immediate(engine: Any) -> None:
    from sqlalchemy import event

    def connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # the driver's own deferred BEGIN off: ours below

    def begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    event.listen(engine, "connect", connect)
    event.listen(engine, "begin", begin)
    engine.dispose()  # connections opened before the listeners: closed, opened again with them


def _study(job: _Job, storage: Any, worker: int = 0) -> Any:
    optuna = _optuna()
    tune = job.tune
    seed = job.seed + 7919 * worker  # workers sample differently, reproducibly
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if tune.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    pruner = optuna.pruners.MedianPruner() if tune.pruner == "median" else optuna.pruners.NopPruner()
    return optuna.create_study(
        study_name=job.study,
        storage=storage,
        sampler=sampler,
        pruner=pruner,
        direction=tune.direction,
        load_if_exists=True,
    )


@dataclass
class _Job:
    """Everything a trial worker needs, in a form that pickles (a process or a Ray task)."""

    project_dir: str
    spec: dict[str, Any]
    tracking_uri: str
    settings: dict[str, Any]
    storage_url: str
    study: str
    parent_run_id: str
    env: dict[str, str]
    pinned: dict[str, dict[str, str]] = field(default_factory=dict)  # sources read once (pin_sources)

    @property
    def project_spec(self) -> ProjectSpec:
        return ProjectSpec.model_validate(self.spec)

    @property
    def tune(self) -> TuneSpec:
        tune = self.project_spec.tune
        assert tune is not None
        return tune

    @property
    def seed(self) -> int:
        return int(self.spec.get("seed", 42))


def run_trials(job: _Job, worker: int = 0, *, after_first: bool = False) -> int:
    """Run queued trials of the study in this process until none is left; returns how many ran.

    The driver queues the trials to run (``_queue``); each worker (a process or a Ray task, started
    once and running many trials) claims the next one when it is free, so a worker that started
    sooner or runs faster takes more. With ``after_first`` it first waits until a trial of the study
    has finished (the driver's first trial fills the cache of the shared steps meanwhile), and runs
    nothing if that trial failed.
    """
    os.environ.update(job.env)
    optuna = _optuna()
    storage = open_storage(job.storage_url)
    try:
        study = _study(job, storage, worker)
        objective = _Objective(job, job.project_dir, optuna.TrialPruned, worker=True)
        if after_first and not _first_finished(study):
            return 0
        ran = 0
        while (trial_id := _claim(study)) is not None:
            run_trial(study, trial_id, objective)
            ran += 1
        return ran
    finally:
        # Close this storage's connections now: an idle pooled SQLite connection of this process
        # must not outlive the trials other processes write.
        storage.remove_session()
        storage.engine.dispose()


def run_shipped_trials(archive: bytes, job: _Job, worker: int, *, after_first: bool = False) -> int:
    """On a Ray worker: :func:`run_trials` in the project's folder (see :func:`project_copy`)."""
    with project_copy(archive, job.project_dir) as project:
        return run_trials(replace(job, project_dir=project), worker, after_first=after_first)


@contextmanager
def project_copy(archive: bytes, project_dir: str) -> Iterator[str]:
    """``project_dir`` where this host has it, else a copy unpacked from ``archive`` (the project's
    snapshot, put into the cluster once), removed afterwards."""
    if Path(project_dir).is_dir():
        yield project_dir
        return
    from pave.tracking.paths import safe_extract

    with tempfile.TemporaryDirectory(prefix="pave-tune-") as folder:
        packed = Path(folder) / ARCHIVE
        packed.write_bytes(archive)
        safe_extract(packed, Path(folder) / "project")
        packed.unlink()
        yield str(Path(folder) / "project")


def _queue(study: Any, remaining: int) -> None:
    """Queue trials (no fixed params: the sampler chooses when one is claimed) up to ``remaining``."""
    optuna = _optuna()
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    for _ in range(remaining - waiting):
        study.enqueue_trial({}, skip_if_exists=False)


def _claim(study: Any) -> int | None:
    """The id of a queued trial this process now runs (RUNNING), or None when none is left."""
    optuna = _optuna()
    waiting = optuna.trial.TrialState.WAITING
    for trial in study.get_trials(deepcopy=False, states=(waiting,)):
        try:
            if study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.RUNNING):
                return int(trial._trial_id)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker claimed and finished it meanwhile
    return None


def run_trial(study: Any, trial_id: int, objective: Callable[[Any], float]) -> None:
    """Run one claimed trial and tell the study how it ended (ask-and-tell, as ``study.optimize``)."""
    optuna = _optuna()
    trial = optuna.Trial(study, trial_id)
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    except BaseException:
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    study.tell(trial, value)


def _first_finished(study: Any) -> bool:
    """Wait until a trial of the study finished (True) or the one running failed (False)."""
    optuna = _optuna()
    states = optuna.trial.TrialState
    while True:
        seen = {t.state for t in study.get_trials(deepcopy=False)}
        if states.COMPLETE in seen or states.PRUNED in seen:
            return True
        if states.RUNNING not in seen:  # the driver claims the first trial before it starts workers
            return False
        time.sleep(0.5)


class _Objective:
    def __init__(self, job: _Job, project_dir: str, pruned: type[Exception], *, worker: bool = False) -> None:
        self.job, self.project_dir, self.pruned = job, project_dir, pruned
        self.worker = worker  # a worker's trial (a Ray task has a node); else the driver's, even with Ray up
        self.spec = job.project_spec
        self.settings = Settings.model_validate(job.settings | {"executor": "local"})

    def __call__(self, trial: Any) -> float:
        import socket

        import mlflow

        tune = self.job.tune
        values = {key: _suggest(trial, key, space) for key, space in tune.params.items()}
        spec = apply_overrides(self.spec, values).model_copy(update={"model": None})
        tags = {
            "mlflow.parentRunId": self.job.parent_run_id,
            TAG_STUDY: self.job.study,
            TAG_TRIAL: str(trial.number),
            "mlflow.runName": f"trial {trial.number}",
        }
        trial.set_user_attr("node", socket.gethostname() + (_ray_node() if self.worker else ""))
        step_context.reporter = _Reporter(trial, self.pruned)
        client = mlflow.MlflowClient(tracking_uri=self.job.tracking_uri)
        try:
            result = run_spec(
                self.project_dir,
                spec,
                tracking_uri=self.job.tracking_uri,
                settings=self.settings,
                tags=tags,
                pinned=self.job.pinned,
            )
        except PipelineStepFailed as exc:
            if isinstance(exc.__cause__, step_context.StepPruned):
                run_id = getattr(exc, "run_id", None)
                if run_id:
                    trial.set_user_attr("run_id", run_id)
                    client.set_tag(run_id, TAG_STATE, "pruned")
                    client.update_run(run_id, status="KILLED")
                raise self.pruned(str(exc.__cause__)) from None
            raise
        finally:
            step_context.reporter = None
        trial.set_user_attr("run_id", result.run_id)
        if tune.metric not in result.metrics:
            raise InvalidInput(
                f"tune.metric {tune.metric} was not logged by trial {trial.number} "
                f"(it logged: {', '.join(sorted(result.metrics)) or 'nothing'})",
                hint="name a metric the metrics step returns or a step logs with ctx.log_metric",
            )
        client.set_tag(result.run_id, TAG_STATE, "complete")
        return float(result.metrics[tune.metric])


class _Reporter:
    """``ctx.report`` during a trial: report to Optuna, raise StepPruned when the pruner says so."""

    def __init__(self, trial: Any, pruned: type[Exception]) -> None:
        self.trial, self.pid, self.pruned = trial, os.getpid(), pruned

    def __call__(self, step: str, value: float, position: int) -> None:
        trial = self.trial
        if os.getpid() != self.pid:  # a step in a process of its own: its own connection to the study
            optuna = _optuna()
            study = optuna.load_study(
                study_name=trial.study.study_name,
                storage=open_storage(trial.study._storage.url),
                pruner=trial.study.pruner,
            )
            trial = optuna.trial.Trial(study, trial._trial_id)
        trial.report(value, position)
        if trial.should_prune():
            raise step_context.StepPruned(f"trial {trial.number} pruned at {step} position {position}")


def _ray_node() -> str:
    ray = sys.modules.get("ray")  # only a process Ray runs in has it: importing Ray costs seconds
    if ray is None or not ray.is_initialized():
        return ""
    return f" ray:{ray.get_runtime_context().get_node_id()}"


def _suggest(trial: Any, key: str, space: SearchSpace) -> Any:
    if space.type == "categorical":
        return trial.suggest_categorical(key, space.choices)
    assert space.low is not None
    assert space.high is not None
    if space.type == "int":
        step = int(space.step or 1)
        return trial.suggest_int(key, int(space.low), int(space.high), step=step, log=space.log)
    return trial.suggest_float(key, space.low, space.high, step=space.step, log=space.log)


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
    job = _Job(
        project_dir=str(project),
        spec=spec.model_dump(mode="json", by_alias=True),
        tracking_uri=tracking_uri,
        settings=settings.model_dump(mode="json"),
        storage_url=storage_url,
        study=name,
        parent_run_id="",
        env={k: v for k, v in os.environ.items() if k == "MLFLOW_TRACKING_TOKEN"},
    )
    storage = open_storage(storage_url)
    the_study = _study(job, storage)
    job.pinned = _pinned(the_study, spec, settings)
    notes = _recover(the_study, client, name)
    job.parent_run_id = _parent_run(the_study, client, spec, tune, name, tracking_uri, settings)
    done = _finished(the_study)
    display = _Progress(tune, total=tune.trials, done=done, enabled=progress)
    _queue(the_study, tune.trials - done)
    try:
        with display:
            _distribute(job, settings, (the_study, storage), display, first=done == 0)
    except BaseException as exc:
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        client.set_tag(job.parent_run_id, L.TAG_ERROR, str(exc)[:4000] or type(exc).__name__)
        client.set_terminated(job.parent_run_id, status)
        raise
    return _finish(the_study, client, job, spec, settings, done, notes)


def _pinned(study: Any, spec: ProjectSpec, settings: Settings) -> dict[str, dict[str, str]]:
    """The study's data: its sources beyond the project folder are read once, when it starts, and
    every trial (and a resumed study) reads those versions, not the sources as they are then."""
    pinned: dict[str, dict[str, str]] | None = study.user_attrs.get(_SOURCES_ATTR)
    if pinned is None:
        pinned = pin_sources(spec, direct_objects(settings))
        study.set_user_attr(_SOURCES_ATTR, pinned)
    return pinned


def _finished(study: Any) -> int:
    optuna = _optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _recover(study: Any, client: Any, name: str) -> list[str]:
    """Trials a stopped ``pave tune`` left running: failed, and their params queued again."""
    optuna = _optuna()
    notes = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        study.enqueue_trial(trial.params, skip_if_exists=False)
        notes.append(f"trial {trial.number} was interrupted: its params run again")
    for run in client.search_runs(
        [str(e.experiment_id) for e in client.search_experiments()],
        filter_string=f"tags.`{TAG_STUDY}` = '{name}' and attributes.status = 'RUNNING'",
    ):
        if run.data.tags.get("mlflow.parentRunId"):
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


def _distribute(
    job: _Job, settings: Settings, study_storage: tuple[Any, Any], display: _Progress, *, first: bool
) -> None:
    """Run the queued trials: here one at a time, or on ``parallel`` workers started at once.

    With ``first`` (a new study) one trial runs here, alone, to fill the cache of the shared steps,
    while the workers start (importing Pave, MLflow and the project's libraries) and wait for it.
    """
    optuna = _optuna()
    tune, (study, storage) = job.tune, study_storage
    objective = _Objective(job, job.project_dir, optuna.TrialPruned)
    queued = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    if tune.parallel == 1 or queued <= 1:
        while (trial_id := _claim(study)) is not None:
            run_trial(study, trial_id, objective)
            display.update(study)
        return
    opening = _claim(study) if first else None  # claimed before the workers start: they wait for it

    def meanwhile() -> None:
        if opening is not None:
            run_trial(study, opening, objective)
            display.update(study)
        # No idle pooled connection of this process to the study's file while the workers write
        # it (SQLite): it is opened again when the trials are read back.
        storage.remove_session()
        storage.engine.dispose()

    workers = min(tune.parallel, queued - (opening is not None))
    calls = [(job, i + 1) for i in range(workers)]
    refresh = _Refresh(display, study)
    if settings.executor == "ray":
        from pave.integrations.ray import RayExecutor

        cpus = max(s.resources.cpus for s in job.project_spec.steps)
        # No runtime environment (a job-level working_dir made every worker start through Ray's setup
        # script: 7 s against 39 s for four workers' first task at load 10-13): the project goes to the
        # cluster once, as its snapshot in Ray's object store, and the job's env in the job.
        with tempfile.TemporaryDirectory(prefix="pave-tune-") as folder:
            archive = make_snapshot(Path(job.project_dir), Path(folder) / ARCHIVE).read_bytes()
        with RayExecutor(Path(job.project_dir), settings.executor_address, working_dir=False) as ray:
            shipped = ray.put(archive)
            ray.run_all(
                run_shipped_trials,
                [(shipped, *call) for call in calls],
                num_cpus=cpus,
                waiting=refresh,
                meanwhile=meanwhile,
                after_first=first,
            )
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_trials, *call, after_first=first) for call in calls]
        meanwhile()
        pending = set(futures)
        while pending:
            finished, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
            refresh()
            for future in finished:
                future.result()  # a worker's error ends the tuning (the study keeps what finished)


class _Refresh:
    def __init__(self, display: _Progress, study: Any) -> None:
        self.display, self.study, self.last = display, study, 0.0

    def __call__(self) -> None:
        if self.display.enabled and time.monotonic() - self.last > 1:
            self.last = time.monotonic()
            self.display.update(self.study)


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
    study: Any, client: Any, job: _Job, spec: ProjectSpec, settings: Settings, resumed: int, notes: list[str]
) -> TuneResult:
    optuna = _optuna()
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
        )
        study.set_user_attr(_FINAL_ATTR, final.run_id)
        client.set_tag(parent, "pave.tune.final_run", final.run_id)
        result.run = final
    else:
        notes.append(f"the best trial was registered before, by run {study.user_attrs[_FINAL_ATTR]}")
    client.set_terminated(parent, "FINISHED")
    return result
