"""Tuning trials: what one trial is, and where trials run (one at a time, local processes, Ray).

A trial is :class:`Objective`: the pipeline with the trial's params as an MLflow child run of the
tuning's parent run (:func:`pave.pipelines.project.run_spec`), whose tuned metric is the trial's
value. ``ctx.report`` in a step reaches the study through the trial's :class:`Reporter`.

Where trials run (:func:`run_queued`, called by :func:`pave.pipelines.tune.tune_project`):

- ``parallel: 1``: one at a time, here.
- ``parallel: N``, local executor: ``N`` processes, each claiming queued trials of the study (in the
  platform's database) until none is left (:func:`run_trials`).
- ``parallel: N``, Ray executor: ``N`` threads here, each running a trial at a time, whose steps run
  as Ray tasks on the cluster's prestarted workers (one :class:`~pave.integrations.ray.RayExecutor`
  for the tuning, without a runtime environment: the project travels as its snapshot). This process
  owns the study (ask and tell) and every MLflow write; a Ray worker imports what the steps need and
  Pave's executor, not MLflow or Optuna (only a step that calls ``ctx.report`` opens the study there,
  to report and ask the pruner).

A new study's first trial runs alone before the others start, so that the steps upstream of the
tuned params (the same cache key in every trial) are computed once and read from the cache after.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from pave.config import Settings
from pave.errors import InvalidInput
from pave.pipelines import context as step_context
from pave.pipelines.errors import PipelineStepFailed
from pave.pipelines.executor import Executor
from pave.pipelines.project import apply_overrides, run_spec
from pave.pipelines.spec import ProjectSpec, SearchSpace, TuneSpec
from pave.pipelines.tune_storage import Reporter, open_storage, optuna_module, pruner

TAG_STUDY = "pave.tune.study"
TAG_TRIAL = "pave.tune.trial"
TAG_STATE = "pave.tune.state"  # on a trial's run: complete, pruned


@dataclass
class Job:
    """Everything a trial needs, in a form that pickles (a trial worker process gets it)."""

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


def load_study(job: Job, storage: Any, worker: int = 0) -> Any:
    """The job's study (created when missing), with its sampler seeded for ``worker``."""
    optuna = optuna_module()
    tune = job.tune
    seed = job.seed + 7919 * worker  # worker processes sample differently, reproducibly
    sampler = (
        optuna.samplers.TPESampler(seed=seed)
        if tune.sampler == "tpe"
        else optuna.samplers.RandomSampler(seed=seed)
    )
    return optuna.create_study(
        study_name=job.study,
        storage=storage,
        sampler=sampler,
        pruner=pruner(tune.pruner),
        direction=tune.direction,
        load_if_exists=True,
    )


def queue(study: Any, remaining: int) -> None:
    """Queue trials (no fixed params: the sampler chooses when one is claimed) up to ``remaining``."""
    optuna = optuna_module()
    waiting = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    for _ in range(remaining - waiting):
        study.enqueue_trial({}, skip_if_exists=False)


def claim(study: Any) -> int | None:
    """The id of a queued trial this process now runs (RUNNING), or None when none is left."""
    optuna = optuna_module()
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
    optuna = optuna_module()
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


class Objective:
    """One trial: the pipeline with the trial's params, as a child run of the tuning's parent run.

    ``executor`` runs the steps (a RayExecutor open for the whole tuning); without one they run here,
    with the local executor.
    """

    def __init__(self, job: Job, project_dir: str, *, executor: Executor | None = None) -> None:
        self.job, self.project_dir, self.executor = job, project_dir, executor
        self.pruned: type[Exception] = optuna_module().TrialPruned
        self.spec = job.project_spec
        self.settings = Settings.model_validate(job.settings | ({} if executor else {"executor": "local"}))

    def __call__(self, trial: Any) -> float:
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
        trial.set_user_attr("node", socket.gethostname())
        client = mlflow.MlflowClient(tracking_uri=self.job.tracking_uri)
        reporter = Reporter(trial, self.job.storage_url, tune.pruner)
        try:
            with step_context.reporting(reporter):
                result = run_spec(
                    self.project_dir,
                    spec,
                    tracking_uri=self.job.tracking_uri,
                    settings=self.settings,
                    tags=tags,
                    pinned=self.job.pinned,
                    executor=self.executor,
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
        trial.set_user_attr("run_id", result.run_id)
        nodes = sorted({s.node for s in result.steps if s.status == "ran" and s.node})
        if self.executor is not None and nodes:  # the Ray nodes its steps ran on
            trial.set_user_attr("node", "ray:" + ",".join(nodes))
        if tune.metric not in result.metrics:
            raise InvalidInput(
                f"tune.metric {tune.metric} was not logged by trial {trial.number} "
                f"(it logged: {', '.join(sorted(result.metrics)) or 'nothing'})",
                hint="name a metric the metrics step returns or a step logs with ctx.log_metric",
            )
        client.set_tag(result.run_id, TAG_STATE, "complete")
        return float(result.metrics[tune.metric])


def _suggest(trial: Any, key: str, space: SearchSpace) -> Any:
    if space.type == "categorical":
        return trial.suggest_categorical(key, space.choices)
    assert space.low is not None
    assert space.high is not None
    if space.type == "int":
        step = int(space.step or 1)
        return trial.suggest_int(key, int(space.low), int(space.high), step=step, log=space.log)
    return trial.suggest_float(key, space.low, space.high, step=space.step, log=space.log)


# --- where the trials run --------------------------------------------------------------------------


def run_queued(
    job: Job,
    settings: Settings,
    study: Any,
    storage: Any,
    update: Callable[[], None],
    *,
    first: bool,
) -> None:
    """Run the study's queued trials: here one at a time, or ``parallel`` at once.

    With ``first`` (a new study) one trial runs alone first, to fill the cache of the shared steps
    (while local worker processes start and wait for it). ``update`` is called as trials finish.
    """
    optuna = optuna_module()
    tune = job.tune
    queued = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    if settings.executor == "ray":
        _on_ray(job, settings, study, update, first=first)
        return
    objective = Objective(job, job.project_dir)
    if tune.parallel == 1 or queued <= 1:
        while (trial_id := claim(study)) is not None:
            run_trial(study, trial_id, objective)
            update()
        return
    opening = claim(study) if first else None  # claimed before the workers start: they wait for it
    workers = min(tune.parallel, queued - (opening is not None))
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(run_trials, job, i + 1, after_first=first) for i in range(workers)]
        if opening is not None:
            run_trial(study, opening, objective)
            update()
        # No idle pooled connection of this process to the study's file while the workers write
        # it (SQLite): it is opened again when the trials are read back.
        storage.remove_session()
        storage.engine.dispose()
        _wait_all(futures, update)


def _on_ray(job: Job, settings: Settings, study: Any, update: Callable[[], None], *, first: bool) -> None:
    """``parallel`` threads here, each running trials whose steps are Ray tasks (module docstring)."""
    from pave.integrations.ray import RayExecutor
    from pave.tracking import stores

    # One process-wide MLflow URI for every trial thread (a run sets it and puts back what it found).
    with (
        stores.mlflow_uris(job.tracking_uri),
        RayExecutor(Path(job.project_dir), settings.executor_address, working_dir=False) as ray,
    ):
        ray.warm_up(sorted({step.function.partition(":")[0] for step in job.project_spec.steps}))
        objective = Objective(job, job.project_dir, executor=ray)
        if first and (opening := claim(study)) is not None:
            run_trial(study, opening, objective)
            update()
        stop, lock = threading.Event(), threading.Lock()

        def trials() -> None:
            while not stop.is_set() and (trial_id := claim(study)) is not None:
                try:
                    run_trial(study, trial_id, objective)
                except BaseException:
                    stop.set()  # the others finish the trial they run and claim no more
                    raise
                with lock:
                    update()

        with ThreadPoolExecutor(max_workers=job.tune.parallel, thread_name_prefix="pave-trial") as pool:
            try:
                _wait_all([pool.submit(trials) for _ in range(job.tune.parallel)], lambda: None)
            except BaseException:
                stop.set()
                raise


def _wait_all(futures: list[Future[Any]], update: Callable[[], None]) -> None:
    """Wait for every future (calling ``update`` each second); the first error is raised."""
    pending = set(futures)
    last = time.monotonic()
    while pending:
        finished, pending = wait(pending, timeout=0.5, return_when=FIRST_EXCEPTION)
        if time.monotonic() - last > 1:
            last = time.monotonic()
            update()
        for future in finished:
            future.result()  # a trial's error ends the tuning (the study keeps what finished)


def run_trials(job: Job, worker: int = 0, *, after_first: bool = False) -> int:
    """In a local worker process: run queued trials of the study until none is left; how many ran.

    Each worker claims the next queued trial when it is free, so a worker that started sooner or
    runs faster takes more. With ``after_first`` it first waits until a trial of the study has
    finished (the driver's first trial fills the cache of the shared steps meanwhile), and runs
    nothing if that trial failed.
    """
    os.environ.update(job.env)
    storage = open_storage(job.storage_url)
    try:
        study = load_study(job, storage, worker)
        objective = Objective(job, job.project_dir)
        if after_first and not _first_finished(study):
            return 0
        ran = 0
        while (trial_id := claim(study)) is not None:
            run_trial(study, trial_id, objective)
            ran += 1
        return ran
    finally:
        # Close this storage's connections now: an idle pooled SQLite connection of this process
        # must not outlive the trials other processes write.
        storage.remove_session()
        storage.engine.dispose()


def _first_finished(study: Any) -> bool:
    """Wait until a trial of the study finished (True) or the one running failed (False)."""
    optuna = optuna_module()
    states = optuna.trial.TrialState
    while True:
        seen = {t.state for t in study.get_trials(deepcopy=False)}
        if states.COMPLETE in seen or states.PRUNED in seen:
            return True
        if states.RUNNING not in seen:  # the driver claims the first trial before it starts workers
            return False
        time.sleep(0.5)
