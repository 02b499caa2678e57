"""Errors of the pipeline engine.

The tree (bases from :mod:`pave.errors`)::

    InvalidInput
    └── PipelineDefinitionError   a cycle, an unknown input, a step function that cannot be found
    UserError
    └── PipelineStepFailed        a step raised; the hint is `pave run --from-step <step>`
    Exception
    └── StepTimedOut              a step's outcome error: it ran past its ``timeout``

Spec problems (``pave.yaml``) are plain :class:`~pave.errors.InvalidInput` from ``load_spec``.
"""

from __future__ import annotations

from typing import Any

from pave.errors import InvalidInput, UserError


class PipelineDefinitionError(InvalidInput):
    code = "pipeline_definition"


class PipelineStepFailed(UserError):
    """A step raised after all its attempts. ``details``: step, attempts, error, log."""

    code = "pipeline_step_failed"

    def __init__(self, step: str, error: BaseException, *, attempts: int, log: str | None) -> None:
        kind = type(error).__name__
        where = f"; its log: {log}" if log else ""
        fix = (
            f"make it faster, or raise `timeout:` of step {step} in pave.yaml"
            if isinstance(error, StepTimedOut)
            else "fix the step"
        )
        super().__init__(
            f"step {step} failed after {attempts} attempt(s): {kind}: {error}{where}",
            hint=f"{fix}, then run `pave run --from-step {step}` to resume",
            details={"step": step, "attempts": attempts, "error": f"{kind}: {error}", "log": log},
        )
        self.step = step
        self.result: Any = None  # the engine's PipelineResult so far


class StepTimedOut(Exception):
    """A step ran longer than its ``timeout`` and was stopped (the outcome's error, not raised)."""

    def __init__(self, step: str, seconds: float) -> None:
        super().__init__(f"step {step} ran longer than its timeout of {seconds:g} s and was stopped")
        self.step = step
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (StepTimedOut, (self.step, self.seconds))
