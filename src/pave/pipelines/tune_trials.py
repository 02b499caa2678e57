"""Tuning trials: what one trial is, and where trials run (one at a time, local processes, Ray).

A trial is :class:`Objective`: the pipeline with the trial's params as an MLflow child run of the
tuning's parent run (:func:`pave.pipelines.project.run_spec`), whose tuned metric is the trial's
value. ``ctx.report`` in a step reaches the study through the trial's :class:`Reporter`.

Where trials run (:func:`run_queued`, called by :func:`pave.pipelines.tune.tune_project`):

- ``parallel: 1``: one at a time, here.
- ``parallel: N``, local executor: ``N`` processes, each claiming queued trials of the study (in the
  platform's database) until none is left (:func:`run_trials`).
- ``parallel: N``, Ray executor: ``N`` threads here, each running a trial at a time, whose steps run
  on the cluster (one :class:`~pave.integrations.ray.RayExecutor` for the tuning, without a runtime
  environment: the project travels as its snapshot): default-sized steps on the long-lived workers
  of :mod:`pave.integrations.ray_pool`, which the next tuning reuses, others as Ray tasks. This process
  owns the study (ask and tell) and every MLflow write; a Ray worker imports what the steps need and
  Pave's executor, not MLflow or Optuna (only a step that calls ``ctx.report`` opens the study there,
  to report and ask the pruner).

A new study's first trial runs alone before the others start, so that the steps upstream of the
tuned params (the same cache key in every trial) are computed once and read from the cache after.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_EXCEPTION, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from pave.config import Settings
from pave.errors import InvalidInput
from pave.pipelines import context as step_context
from pave.pipelines.errors import PipelineStepFailed
from pave.pipelines.executor import Executor, StepOutcome, StepTask
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


class Phases:
    """When a tuning first reached each of its phases, in seconds after it began: where its time
    goes before trials overlap (``TuneResult.phases``, the parent run's ``tune/phases.json``).

    Marks are epoch-based, so a step's start on a Ray worker (its outcome's ``started``) counts too;
    a phase reached again (every trial starts) keeps its first time.
    """

    def __init__(self) -> None:
        self.began = time.time()
        self.marks: dict[str, float] = {}
        self._lock = threading.Lock()

    def mark(self, name: str, at: float | None = None) -> None:
        with self._lock:
            self.marks.setdefault(name, round((at or time.time()) - self.began, 3))

    def earliest(self, name: str, at: float) -> None:
        """Mark ``name`` at ``at`` unless it was marked earlier (a step's start, reported later)."""
        with self._lock:
            seconds = round(at - self.began, 3)
            self.marks[name] = min(self.marks.get(name, seconds), seconds)


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


def run_trial(
    study: Any, trial_id: int, objective: Callable[[Any], float], interrupted: threading.Event | None = None
) -> None:
    """Run one claimed trial and tell the study how it ended (ask-and-tell, as ``study.optimize``).

    A trial that ends because the tuning was ``interrupted`` (Ctrl-C) is left RUNNING: the driver
    then marks it failed and queues its params again (``pave.pipelines.tune``), as a resumed
    ``pave tune`` does for a trial that a killed one left.
    """
    optuna = optuna_module()
    trial = optuna.Trial(study, trial_id)
    try:
        value = objective(trial)
    except optuna.TrialPruned:
        study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        return
    except BaseException:
        if interrupted is None or not interrupted.is_set():
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        raise
    study.tell(trial, value)


class Objective:
    """One trial: the pipeline with the trial's params, as a child run of the tuning's parent run.

    ``executor`` runs the steps (a RayExecutor open for the whole tuning); without one they run here,
    with the local executor.
    """

    def __init__(
        self, job: Job, project_dir: str, *, executor: Executor | None = None, phases: Phases | None = None
    ) -> None:
        self.job, self.project_dir, self.executor = job, project_dir, executor
        self.phases = phases or Phases()
        self._asked = itertools.count(1)
        self.pruned: type[Exception] = optuna_module().TrialPruned
        self.spec = job.project_spec
        self.settings = Settings.model_validate(job.settings | ({} if executor else {"executor": "local"}))

    def __call__(self, trial: Any) -> float:
        import mlflow

        tune = self.job.tune
        values = {key: _suggest(trial, key, space) for key, space in tune.params.items()}
        self.phases.mark("first trial asked" if next(self._asked) == 1 else "second trial asked")
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
        if submitted := getattr(self.executor, "submitted", 0.0):
            self.phases.mark("first task submitted", submitted)
        self.phases.mark("a trial ended")
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


class Cluster:
    """The tuning's :class:`~pave.integrations.ray.RayExecutor`, connecting on a thread from the
    moment it is made: the driver opens the study, creates the parent run and prepares the first
    trial's run meanwhile. An :class:`~pave.pipelines.executor.Executor` itself (``run`` waits for
    the connection), used as a context manager (what :func:`cluster` does): the trials and the best
    trial's final run share it, so a tuning connects to Ray once.

    ``shared`` is set once the steps every trial shares (none of their inputs depends on a tuned
    param) are cached: when a step that reads all of them is submitted (the engine caches a step's
    output before it submits the steps that read it).
    """

    capacity: float | None = None

    def __init__(self, job: Job, settings: Settings, phases: Phases) -> None:
        from pave.integrations.ray import RayExecutor

        self.phases = phases
        # The project's pool of long-lived workers runs the steps (pave.integrations.ray_pool): a
        # tuning of the project after another on the same cluster does not start and import again.
        self.ray = RayExecutor(
            Path(job.project_dir),
            settings.executor_address,
            working_dir=False,
            pool=job.tune.parallel,
            project=job.project_spec.name,
        )
        self.shared = threading.Event()
        self._shared, self._ancestors = _shared_steps(job.project_spec)
        self._covered: set[str] = set()
        self._lock = threading.Lock()
        if not self._shared:
            self.shared.set()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pave-ray-connect")
        self._connected: Future[None] = self._pool.submit(self._connect)

    def _connect(self) -> None:
        with _quiet_ray_thread_warning():
            self.ray.__enter__()
        self.phases.mark("ray connected", self.ray.connected)
        self.phases.mark("snapshot shipped", self.ray.shipped)

    def wait(self) -> Cluster:
        self._connected.result()  # a connection error is raised here
        return self

    def failure(self) -> BaseException | None:
        """Why the connection failed (RayUnavailable names the address), once it did."""
        return self._connected.exception() if self._connected.done() else None

    @property
    def submitted(self) -> float:
        return self.ray.submitted

    def run(self, task: StepTask) -> StepOutcome:
        if not self.shared.is_set():
            with self._lock:
                self._covered |= self._ancestors.get(task.name, set())
                if self._shared <= self._covered:
                    self.phases.mark("shared steps cached")
                    self.shared.set()
        try:
            self.wait()
        except Exception as exc:
            return StepOutcome(error=exc, attempts=0)
        outcome = self.ray.run(task)
        if outcome.started:
            self.phases.earliest("first step started", outcome.started)
        return outcome

    def cancel(self) -> None:
        self.ray.cancel()

    def close(self) -> None:
        try:
            self._connected.result()
        except BaseException:  # noqa: S110 - whoever waited for it has seen the error; nothing to close
            pass
        else:
            self.ray.__exit__(None, None, None)
        finally:
            self._pool.shutdown()


def _shared_steps(spec: ProjectSpec) -> tuple[set[str], dict[str, set[str]]]:
    """The steps with the same cache key in every trial (no tuned step upstream, not tuned), and
    each step's ancestors."""
    from pave.pipelines.dag import build_dag

    assert spec.tune is not None
    dag = build_dag(spec.steps, spec.data.sources)
    steps = set(dag.names)
    tuned = set().union(*(dag.descendants(key.partition(".")[0]) for key in spec.tune.params))
    ancestors: dict[str, set[str]] = {}
    for step in dag.order:  # upstream first
        ancestors[step.name] = set().union(
            *({up} | ancestors.get(up, set()) for up in dag.upstream[step.name] if up in steps)
        )
    return steps - tuned, ancestors


@contextlib.contextmanager
def cluster(job: Job, settings: Settings, phases: Phases) -> Iterator[Cluster | None]:
    """The tuning's :class:`Cluster` for the Ray executor (connecting from now on), else None."""
    if settings.executor != "ray":
        yield None
        return
    connection = Cluster(job, settings, phases)
    try:
        yield connection
    finally:
        connection.close()


@contextlib.contextmanager
def _quiet_ray_thread_warning() -> Iterator[None]:
    """ray.init on a thread warns that it leaves SIGTERM's handler alone: the default (the process
    ends) is what ``pave tune`` wants, and a resumed study recovers what it left running."""

    def keep(record: logging.LogRecord) -> bool:
        return "SIGTERM handler is not set" not in record.getMessage()

    logger = logging.getLogger("ray._private.worker")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def run_queued(
    job: Job,
    settings: Settings,
    study: Any,
    storage: Any,
    update: Callable[[], None],
    *,
    first: bool,
    ray: Cluster | None = None,
    phases: Phases | None = None,
) -> None:
    """Run the study's queued trials: here one at a time, or ``parallel`` at once.

    With ``first`` (a new study) one trial runs alone first, to fill the cache of the shared steps
    (while local worker processes start and wait for it). ``update`` is called as trials finish.
    With ``ray`` (the executor is ``ray``), trials run from threads here, their steps on the cluster.
    """
    optuna = optuna_module()
    tune = job.tune
    queued = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)))
    if ray is not None:
        _on_ray(job, ray, study, update, first=first, phases=phases or Phases())
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


def _on_ray(
    job: Job, ray: Cluster, study: Any, update: Callable[[], None], *, first: bool, phases: Phases
) -> None:
    """``parallel`` threads here, each running trials whose steps are Ray tasks (module docstring).

    Ctrl-C (SIGINT) cancels the cluster's tasks at once (their workers are stopped) instead of
    waiting for the running trials; those trials are left RUNNING for the driver to recover, and
    KeyboardInterrupt is raised here once every trial thread has ended.
    """
    from pave.tracking import stores

    interrupted = threading.Event()
    objective = Objective(job, job.project_dir, executor=ray, phases=phases)
    stop, lock = threading.Event(), threading.Lock()

    def trials(opening: int | None = None) -> None:
        while not stop.is_set() and (trial_id := claim(study) if opening is None else opening) is not None:
            opening = None
            try:
                run_trial(study, trial_id, objective, interrupted)
            except BaseException:
                stop.set()  # the others finish the trial they run and claim no more
                raise
            with lock:
                update()

    # One process-wide MLflow URI for every trial thread (a run sets it and puts back what it found).
    with stores.mlflow_uris(job.tracking_uri), _stopping_on_interrupt(ray, interrupted):
        pool = ThreadPoolExecutor(max_workers=job.tune.parallel, thread_name_prefix="pave-trial")
        try:
            futures = []
            if first and (opening := claim(study)) is not None:
                # A new study's first trial runs alone until the steps all trials share are cached.
                futures.append(pool.submit(trials, opening))
                while not ray.shared.wait(0.2) and not futures[0].done():
                    pass
                if futures[0].done() and futures[0].exception() is not None:
                    futures[0].result()  # it failed before the others started: its error
                phases.mark("parallel trials started")
            futures += [pool.submit(trials) for _ in range(job.tune.parallel - len(futures))]
            _wait_all(futures, lambda: None)
        except BaseException:
            stop.set()
            raise
        finally:
            pool.shutdown(wait=True)  # interrupted: at once, the trials' tasks are cancelled


@contextlib.contextmanager
def _stopping_on_interrupt(ray: Cluster, interrupted: threading.Event) -> Iterator[None]:
    """While the block runs (in the main thread), SIGINT cancels the cluster's tasks and then raises
    KeyboardInterrupt as usual; a second SIGINT is Python's default again."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGINT, previous)
        interrupted.set()
        ray.cancel()
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, stop)
    try:
        yield
    finally:
        if signal.getsignal(signal.SIGINT) is stop:
            signal.signal(signal.SIGINT, previous)


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
