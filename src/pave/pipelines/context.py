"""What a step sees of Pave: the :class:`StepContext` passed as its ``ctx`` argument."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path


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

    def log_metric(self, name: str, value: float) -> None:
        """Record a metric; it is logged to the MLflow run and can be used by gates."""
        number = float(value)
        if not math.isfinite(number):
            self.logger.warning("metric %s is %s", name, number)
        self.metrics[str(name)] = number
