"""The step graph: dependencies from ``inputs``, cycle detection, a stable topological order."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from pave.pipelines.errors import PipelineDefinitionError
from pave.pipelines.spec import DATA_PREFIX, StepSpec


@dataclass(frozen=True)
class Dag:
    """Steps in execution order and who depends on whom."""

    order: list[StepSpec]
    upstream: dict[str, list[str]]
    downstream: dict[str, list[str]]

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.order]

    def descendants(self, name: str) -> set[str]:
        """``name`` and every step that reads its output, directly or not."""
        if name not in self.upstream:
            raise PipelineDefinitionError(
                f"there is no step {name!r}", hint=f"pick one of: {', '.join(self.names)}"
            )
        seen = {name}
        todo = [name]
        while todo:
            for child in self.downstream[todo.pop()]:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen


def build_dag(steps: Iterable[StepSpec], sources: Iterable[str] = ()) -> Dag:
    """Order ``steps`` so every step runs after the steps it reads; ties keep the spec order.

    Raises:
        PipelineDefinitionError: a duplicate name, an unknown input, or a cycle (named in full).
    """
    steps = list(steps)
    known_sources = set(sources)
    by_name: dict[str, StepSpec] = {}
    for step in steps:
        if step.name in by_name:
            raise PipelineDefinitionError(f"two steps are named {step.name!r}", hint="rename one of them")
        by_name[step.name] = step
    upstream: dict[str, list[str]] = {}
    downstream: dict[str, list[str]] = {s.name: [] for s in steps}
    for step in steps:
        deps: list[str] = []
        for arg, ref in step.inputs.items():
            if ref.startswith(DATA_PREFIX):
                if known_sources and ref.removeprefix(DATA_PREFIX) not in known_sources:
                    raise PipelineDefinitionError(
                        f"step {step.name}: input {arg} reads unknown data source {ref!r}",
                        hint=f"declare it under data.sources ({', '.join(sorted(known_sources))})",
                    )
                continue
            if ref not in by_name:
                raise PipelineDefinitionError(
                    f"step {step.name}: input {arg} reads unknown step {ref!r}",
                    hint=f"use data.<source> or one of: {', '.join(by_name)}",
                )
            if ref not in deps:
                deps.append(ref)
                downstream[ref].append(step.name)
        upstream[step.name] = deps
    position = {s.name: i for i, s in enumerate(steps)}
    waiting = {name: len(deps) for name, deps in upstream.items()}
    ready = sorted((n for n, c in waiting.items() if c == 0), key=position.__getitem__)
    order: list[StepSpec] = []
    while ready:
        name = ready.pop(0)
        order.append(by_name[name])
        for child in downstream[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
                ready.sort(key=position.__getitem__)
    if len(order) < len(steps):
        cycle = _find_cycle({n: d for n, d in upstream.items() if waiting[n] > 0})
        raise PipelineDefinitionError(
            f"the steps form a cycle: {' -> '.join(cycle)}",
            hint="a step can only read steps that do not read it back; break the loop in inputs",
        )
    return Dag(order=order, upstream=upstream, downstream=downstream)


def _find_cycle(upstream: dict[str, list[str]]) -> list[str]:
    start = next(iter(upstream))
    path = [start]
    while True:
        nxt = next(d for d in upstream[path[-1]] if d in upstream)
        if nxt in path:
            loop = [*path[path.index(nxt) :], nxt]
            return list(reversed(loop))
        path.append(nxt)
