"""Pave pipelines: the project spec (``pave.yaml``), the step DAG, caching and executors.

Step functions import their helpers from here: ``from pave.pipelines import StepContext``.
The heavier entry points are imported on first use so a step module stays cheap to import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pave.pipelines.context import StepContext

__all__ = [
    "ProjectSpec",
    "ReproduceResult",
    "RunResult",
    "StepContext",
    "execute_project",
    "load_spec",
    "reproduce",
]

if TYPE_CHECKING:
    from pave.pipelines.project import RunResult, execute_project
    from pave.pipelines.reproduction import ReproduceResult, reproduce
    from pave.pipelines.spec import ProjectSpec
    from pave.pipelines.spec_file import load_spec

_LAZY = {
    "ProjectSpec": "pave.pipelines.spec",
    "load_spec": "pave.pipelines.spec_file",
    "RunResult": "pave.pipelines.project",
    "ReproduceResult": "pave.pipelines.reproduction",
    "execute_project": "pave.pipelines.project",
    "reproduce": "pave.pipelines.reproduction",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(name)
