"""What a step sees of Pave: the :class:`StepContext` passed as its ``ctx`` argument."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path

Reporter = Callable[[str, float, int], None]

# Set by `pave tune` around a trial (in the thread that runs it: trials run in threads at once):
# (step, value, position) -> None, raising StepPruned when the pruner stops the trial. A step's
# context takes it when it is made, and carries it where the step runs (a child process, a Ray
# worker: the reporter pickles). None outside tuning, where ctx.report only logs the value.
_reporter: ContextVar[Reporter | None] = ContextVar("pave_trial_reporter", default=None)


@contextmanager
def reporting(reporter: Reporter) -> Iterator[None]:
    """Steps whose context is made in this block report to ``reporter`` (one tuning trial)."""
    token = _reporter.set(reporter)
    try:
        yield
    finally:
        _reporter.reset(token)


class StepPruned(Exception):
    """Raised by :meth:`StepContext.report` when the tuner stops an unpromising trial (never retried)."""


@dataclass
class StepContext:
    """Handed to a step function that declares a parameter named ``ctx``.

    Attributes:
        seed: the project seed (``seed:`` in pave.yaml); use it for every random state.
        project_dir: the project folder (read extra files relative to it).
        step: the name of the running step.
        logger: a logger whose records land in the step's log file.
        metrics: what the step logged with :meth:`log_metric`.
    """

    seed: int
    project_dir: Path
    step: str
    logger: logging.Logger
    metrics: dict[str, float] = field(default_factory=dict)
    reporter: Reporter | None = field(default_factory=_reporter.get, repr=False, compare=False)

    def log_metric(self, name: str, value: float) -> None:
        """Record a metric; it is logged to the MLflow run and can be used by gates."""
        number = float(value)
        if not math.isfinite(number):
            self.logger.warning("metric %s is %s", name, number)
        self.metrics[str(name)] = number

    def report(self, value: float, position: int) -> None:
        """Report an intermediate value of the tuned metric (an epoch's, an iteration's score).

        While ``pave tune`` runs, the pruner compares it with other trials at the same position and
        may stop this trial here (raising :class:`StepPruned`, which ends the step; it is not
        retried). Outside tuning it is only logged.
        """
        self.logger.info("reported %s at %d", value, position)
        if self.reporter is not None:
            self.reporter(self.step, float(value), int(position))
