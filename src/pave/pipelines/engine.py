"""The pipeline engine: order the steps, decide what is cached, run the rest, pass outputs along.

Decisions are made from cache keys alone (a key depends on code, params, seed and the keys or data
hashes of the inputs, never on output values), so a fully cached pipeline loads nothing but the
outputs somebody asks for.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from pave.pipelines.cache import StepCache, step_key
from pave.pipelines.context import StepContext
from pave.pipelines.dag import build_dag
from pave.pipelines.errors import PipelineDefinitionError, PipelineStepFailed
from pave.pipelines.executor import Executor, LocalExecutor, StepTask
from pave.pipelines.modules import Fingerprints, callable_or_raise, project_imports, resolve
from pave.pipelines.spec import DATA_PREFIX, ProjectSpec, StepSpec

Status = Literal["ran", "cached", "failed", "not run"]


@dataclass
class StepRecord:
    """What the engine did with one step."""

    name: str
    status: Status
    key: str
    seconds: float = 0.0
    attempts: int = 0
    log_path: Path | None = None
    reason: str = ""  # why it ran: "changed", "forced (--from-step)", "cache off", "not cacheable"


@dataclass
class PipelineResult:
    """The steps' records in execution order, step metrics, and lazy access to outputs."""

    steps: list[StepRecord]
    metrics: dict[str, float]
    log_dir: Path
    _values: dict[str, Any] = field(default_factory=dict, repr=False)
    _cache: StepCache | None = field(default=None, repr=False)

    def output(self, step: str) -> Any:
        """The return value of ``step`` (loaded from the cache when the step was skipped)."""
        if step not in self._values:
            record = self.record(step)
            if self._cache is None or not self._cache.has(step, record.key):
                raise KeyError(f"no output for step {step}")
            self._values[step] = self._cache.load(step, record.key)
        return self._values[step]

    def record(self, step: str) -> StepRecord:
        for record in self.steps:
            if record.name == step:
                return record
        raise KeyError(step)

    @property
    def cached(self) -> list[str]:
        return [r.name for r in self.steps if r.status == "cached"]

    @property
    def ran(self) -> list[str]:
        return [r.name for r in self.steps if r.status == "ran"]


def run_pipeline(
    spec: ProjectSpec,
    project_dir: Path,
    *,
    sources: Mapping[str, Any],
    source_hashes: Mapping[str, str],
    cache_dir: Path | None,
    log_dir: Path,
    from_step: str | None = None,
    executor: Executor | None = None,
    progress: bool = False,
) -> PipelineResult:
    """Run the steps of ``spec``; skip those whose cache key already has an output.

    Args:
        spec: the project spec (params already overridden).
        project_dir: the project folder; its modules are imported fresh.
        sources: source name -> the loaded data (a DataFrame) for ``data.<source>`` inputs.
        source_hashes: source name -> content hash (part of the cache keys).
        cache_dir: where outputs are cached; ``None`` turns caching off.
        log_dir: one ``<step>.log`` per step is written here.
        from_step: run this step and everything downstream even if cached.
        executor: how to run a step (default: :class:`LocalExecutor`).
        progress: show a live progress display on the terminal.

    Raises:
        PipelineDefinitionError: a cycle, unknown input, or step function that cannot be imported.
        PipelineStepFailed: a step raised on every attempt (``.result`` holds the records so far).
    """
    dag = build_dag(spec.steps, spec.data.sources)
    forced = dag.descendants(from_step) if from_step else set()
    cache = StepCache(cache_dir)
    executor = executor or LocalExecutor()
    log_dir.mkdir(parents=True, exist_ok=True)
    result = PipelineResult(steps=[], metrics={}, log_dir=log_dir, _cache=cache)
    display = _Display(len(dag.order), enabled=progress)
    with project_imports(project_dir), display:
        functions = {
            s.name: callable_or_raise(resolve(s.function, project_dir, what="step"), s.function)
            for s in dag.order
        }
        fingerprints = Fingerprints(project_dir)
        keys: dict[str, str] = {}
        for step in dag.order:
            inputs = {
                arg: source_hashes[ref.removeprefix(DATA_PREFIX)]
                if ref.startswith(DATA_PREFIX)
                else keys[ref]
                for arg, ref in step.inputs.items()
            }
            keys[step.name] = step_key(
                fingerprint=fingerprints.of(step.function), inputs=inputs, params=step.params, seed=spec.seed
            )
        for step in dag.order:
            key = keys[step.name]
            log_path = log_dir / f"{step.name}.log"
            reason = _why_run(step, key, cache, forced)
            if reason is None:
                record = StepRecord(step.name, "cached", key, log_path=None)
                result.steps.append(record)
                result.metrics.update(cache.metrics(step.name, key))
                display.done(record)
                continue
            display.start(step.name)
            signature = inspect.signature(functions[step.name])
            kwargs = _arguments(step, signature, sources, result)
            context = None
            if "ctx" in signature.parameters:
                logger = logging.getLogger(f"pave.step.{step.name}")
                logger.setLevel(logging.INFO)
                context = StepContext(seed=spec.seed, project_dir=project_dir, step=step.name, logger=logger)
                kwargs["ctx"] = context
            log_path.unlink(missing_ok=True)
            task = StepTask(
                step.name, functions[step.name], kwargs, step.retries, spec.seed, log_path, context
            )
            outcome = executor.run(task)
            result.metrics.update(outcome.metrics)
            record = StepRecord(
                step.name,
                "ran" if outcome.ok else "failed",
                key,
                outcome.seconds,
                outcome.attempts,
                log_path,
                reason,
            )
            result.steps.append(record)
            display.done(record)
            if outcome.error is not None:
                for later in dag.order[len(result.steps) :]:
                    result.steps.append(StepRecord(later.name, "not run", keys[later.name]))
                error = PipelineStepFailed(
                    step.name, outcome.error, attempts=outcome.attempts, log=str(log_path)
                )
                error.result = result
                raise error from outcome.error
            result._values[step.name] = outcome.value
            if (
                step.cache
                and cache.root is not None
                and not cache.store(step.name, key, outcome.value, outcome.metrics)
            ):
                record.reason += " (output not cacheable)"
    return result


def _why_run(step: StepSpec, key: str, cache: StepCache, forced: set[str]) -> str | None:
    if step.name in forced:
        return "forced (--from-step)"
    if cache.root is None or not step.cache:
        return "cache off"
    if cache.has(step.name, key):
        return None
    return "changed"


def _arguments(
    step: StepSpec, signature: inspect.Signature, sources: Mapping[str, Any], result: PipelineResult
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    for arg, ref in step.inputs.items():
        kwargs[arg] = (
            sources[ref.removeprefix(DATA_PREFIX)] if ref.startswith(DATA_PREFIX) else result.output(ref)
        )
    kwargs.update(step.params)
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    if not accepts_any:
        unknown = sorted(set(kwargs) - set(signature.parameters))
        if unknown:
            raise PipelineDefinitionError(
                f"step {step.name}: {step.function} has no parameter(s) {', '.join(unknown)}",
                hint=f"add them to the function signature, or remove them from inputs/params of {step.name}",
            )
    missing = [
        name
        for name, p in signature.parameters.items()
        if name != "ctx"
        and name not in kwargs
        and p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if missing:
        raise PipelineDefinitionError(
            f"step {step.name}: {step.function} needs {', '.join(missing)}, which pave.yaml does not give",
            hint=f"add them to inputs (data.<source> or a step name) or params of step {step.name}",
        )
    return kwargs


class _Display:
    """A rich progress bar on stderr, plus one line per finished step."""

    def __init__(self, total: int, *, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> _Display:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                console=Console(stderr=True),
                transient=True,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("pipeline", total=self.total)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)

    def start(self, name: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=f"running [bold]{name}[/]")

    def done(self, record: StepRecord) -> None:
        if self._progress is None:
            return
        if record.status == "cached":
            line = f"  [dim]- {record.name}: unchanged, skipped (cached)[/]"
        elif record.status == "ran":
            line = f"  [green]✓[/] {record.name}: ran in {record.seconds:.2f}s ({record.reason})"
        else:
            line = (
                f"  [red]✗[/] {record.name}: failed after {record.attempts} attempt(s), log {record.log_path}"
            )
        self._progress.console.print(line)
        self._progress.advance(self._task)
