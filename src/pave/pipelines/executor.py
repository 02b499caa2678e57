"""Executors run one step at a time; the engine decides what to run.

The :class:`Executor` protocol is deliberately small (one method): :class:`LocalExecutor` runs a
:class:`StepTask` in this process, and ``pave.integrations.ray.RayExecutor`` submits the same task
to a Ray cluster, where it runs through :class:`LocalExecutor` again.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pave.pipelines.context import StepContext

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


@dataclass
class StepOutcome:
    """What happened: the value, or the error of the last attempt."""

    value: Any = None
    error: BaseException | None = None
    attempts: int = 0
    seconds: float = 0.0
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error is None


class Executor(Protocol):
    """Runs a step task to completion (all attempts) and reports the outcome; never raises."""

    def run(self, task: StepTask) -> StepOutcome: ...


class LocalExecutor:
    """Runs steps in this process, one after the other, capturing their output to the log file.

    stdout, stderr and log records (of any logger, while the step runs) go to ``task.log_path``.
    ``random`` and numpy are seeded with the project seed before each attempt.
    """

    def run(self, task: StepTask) -> StepOutcome:
        outcome = StepOutcome()
        started = time.perf_counter()
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
        return outcome


def _seed(seed: int) -> None:
    random.seed(seed)
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy comes with pandas
        return
    np.random.seed(seed % 2**32)
