"""Errors of the pipeline engine.

The tree (bases from :mod:`pave.errors`)::

    InvalidInput
    └── PipelineDefinitionError   a cycle, an unknown input, a step function that cannot be found
    UserError
    └── PipelineStepFailed        a step raised; the hint is `pave run --from-step <step>`

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
        super().__init__(
            f"step {step} failed after {attempts} attempt(s): {kind}: {error}{where}",
            hint=f"fix the step, then run `pave run --from-step {step}` to resume",
            details={"step": step, "attempts": attempts, "error": f"{kind}: {error}", "log": log},
        )
        self.step = step
        self.result: Any = None  # the engine's PipelineResult so far
