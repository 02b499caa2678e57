"""Executors run step tasks; the engine decides what to run, and what runs at the same time.

The :class:`Executor` protocol is deliberately small (one method and one number):
:class:`LocalExecutor` runs a :class:`StepTask` in this process, or in a forked child process when
the engine runs several steps at once or the step has a timeout, and
``pave.integrations.ray.RayExecutor`` submits the same task to a Ray cluster, where it runs through
:class:`LocalExecutor` again. The engine calls ``run`` from several threads at once; ``capacity``
tells it how many CPUs' worth of steps to keep running (``None``: as many as are ready, the
cluster queues them).

Every outcome says where the step ran (``host``, ``node``, ``pid``), when (``started``, ``ended``,
epoch seconds) and what it used (``cpu_seconds``, ``peak_memory``): the run records them, and cost
accounting prices them.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import random
import resource
import socket
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pave import telemetry
from pave.pipelines.context import StepContext, StepPruned
from pave.pipelines.errors import StepTimedOut

if TYPE_CHECKING:  # the spec's module imports pandas and scipy: a Ray worker running a step need not
    from pave.pipelines.spec import ResourcesSpec

_LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@dataclass
class StepTask:
    """One step execution: the function, its keyword arguments and how to run it."""

    name: str
    function: Callable[..., Any]
    kwargs: dict[str, Any]
    retries: int
    seed: int
    log_path: Path
    context: StepContext | None = None  # also in kwargs["ctx"] when the function asks for it
    resources: ResourcesSpec = field(default_factory=lambda: _resources())
    timeout: float | None = None  # seconds for all attempts together
    isolate: bool = False  # LocalExecutor: run in a child process (other steps run at the same time)
    traceparent: str | None = None  # the step's span (tracing on): TRACEPARENT of its process


@dataclass
class StepOutcome:
    """What happened: the value, or the error of the last attempt; where, when, and what it used."""

    value: Any = None
    error: BaseException | None = None
    attempts: int = 0
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)
    host: str = ""
    node: str = ""  # the host locally; the Ray node id on a cluster
    pid: int = 0
    started: float = 0.0
    ended: float = 0.0
    cpu_seconds: float = 0.0
    peak_memory: int = 0  # bytes: the peak resident memory of the process that ran the step
    assigned: dict[str, float] = field(default_factory=dict)  # what the scheduler gave it (Ray)

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs a step task to completion (all attempts) and reports the outcome; never raises."""

    capacity: float | None

    def run(self, task: StepTask) -> StepOutcome: ...


class LocalExecutor:
    """Runs steps on this machine, capturing their output to the log file.

    A task runs in this process unless ``task.isolate`` is set or it has a timeout: then it runs in
    a forked child process (its value comes back pickled, as for the cache), so that steps running
    at the same time do not share stdout, and a step over its timeout can be stopped.
    stdout, stderr and log records (of any logger, while the step runs) go to ``task.log_path``.
    ``random`` and numpy are seeded with the project seed before each attempt.

    Args:
        capacity: CPUs to fill with steps at once (default: the CPUs this process may use).
    """

    def __init__(self, capacity: float | None = None) -> None:
        self.capacity: float | None = capacity or float(len(os.sched_getaffinity(0)))

    def run(self, task: StepTask) -> StepOutcome:
        if (task.isolate or task.timeout is not None) and _can_fork():
            return _run_in_child(task)
        return run_here(task)


def _resources() -> ResourcesSpec:
    from pave.pipelines.spec import ResourcesSpec

    return ResourcesSpec()


def run_here(task: StepTask) -> StepOutcome:
    """Run ``task`` in this process (all attempts); what a child process and a Ray worker call."""
    outcome = StepOutcome(host=socket.gethostname(), pid=os.getpid(), started=time.time())
    outcome.node = outcome.host
    started, cpu_before = time.perf_counter(), _cpu_seconds()
    task.log_path.parent.mkdir(parents=True, exist_ok=True)
    with task.log_path.open("a", encoding="utf-8") as stream:
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter(_LOG_FORMAT))
        root = logging.getLogger()
        root.addHandler(handler)
        try:
            for attempt in range(1, task.retries + 2):
                outcome.attempts = attempt
                _seed(task.seed)
                try:
                    with contextlib.redirect_stdout(stream), contextlib.redirect_stderr(stream):
                        outcome.value = task.function(**task.kwargs)
                    outcome.error = None
                    break
                except StepPruned as exc:  # the tuner stopped this trial: no retry
                    outcome.error = exc
                    stream.write(f"--- pruned at attempt {attempt}: {exc} ---\n")
                    break
                except Exception as exc:  # the step's own error: recorded, maybe retried
                    outcome.error = exc
                    stream.write(f"--- attempt {attempt} of {task.retries + 1} failed ---\n")
                    stream.write("".join(traceback.format_exception(exc)))
                    stream.flush()
        finally:
            root.removeHandler(handler)
    if task.context is not None:
        outcome.metrics = dict(task.context.metrics)
    outcome.seconds = time.perf_counter() - started
    outcome.ended = time.time()
    outcome.cpu_seconds = _cpu_seconds() - cpu_before
    outcome.peak_memory = _peak_memory()
    return outcome


def _cpu_seconds() -> float:
    """CPU time of this process and of the children it waited for (a step's subprocesses)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _peak_memory() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024  # Linux: kilobytes


def _can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def _run_in_child(task: StepTask) -> StepOutcome:
    """Fork, run the task there, receive the outcome; stop the child at the task's timeout."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(
        target=_child_main, args=(task, sender), name=f"pave-step-{task.name}", daemon=True
    )
    started = time.time()
    child.start()
    sender.close()
    try:
        if receiver.poll(task.timeout):
            try:
                outcome: StepOutcome = receiver.recv()
            except EOFError:  # the child died without an answer (killed, out of memory, os._exit)
                child.join()
                outcome = StepOutcome(
                    error=RuntimeError(f"the step's process ended with exit code {child.exitcode}"),
                    attempts=1,
                )
        else:
            outcome = StepOutcome(error=StepTimedOut(task.name, task.timeout or 0.0), attempts=1)
            with task.log_path.open("a", encoding="utf-8") as stream:
                stream.write(f"--- stopped: the step ran longer than its timeout of {task.timeout:g} s ---\n")
    finally:
        if child.is_alive():
            child.kill()
        child.join()
        receiver.close()
    if not outcome.host:
        outcome.host = outcome.node = socket.gethostname()
        outcome.pid = child.pid or 0
        outcome.started, outcome.ended = started, time.time()
        outcome.seconds = outcome.ended - started
    return outcome


def _child_main(task: StepTask, sender: Any) -> None:
    if task.traceparent:  # the step's code (and what it starts) may continue the step's trace
        os.environ[telemetry.TRACEPARENT] = task.traceparent
    outcome = run_here(task)
    outcome.error = portable(outcome.error) if outcome.error is not None else None
    try:
        sender.send(outcome)
    except Exception as exc:  # the value does not pickle: the step failed, say why
        outcome.value = None
        outcome.error = RuntimeError(
            f"the output of step {task.name} cannot be sent back from its process: "
            f"{type(exc).__name__}: {exc} "
            "(steps that run at the same time or with a timeout must return a picklable value)"
        )
        sender.send(outcome)
    finally:
        sender.close()


def portable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else a RuntimeError that keeps its message."""
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, never from the wire
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _seed(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with pandas
        return
    np.random.seed(seed % 2**32)
