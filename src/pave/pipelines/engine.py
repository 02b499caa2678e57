"""The pipeline engine: order the steps, decide what is cached, run the rest, pass outputs along.

Decisions are made from cache keys alone (a key depends on code, params, seed and the keys or data
hashes of the inputs, never on output values), so a fully cached pipeline loads nothing but the
outputs somebody asks for.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from rich.console import Console

from pave import telemetry
from pave.pipelines.cache import StepCache, step_key
from pave.pipelines.context import StepContext
from pave.pipelines.dag import Dag, build_dag
from pave.pipelines.errors import PipelineDefinitionError, PipelineStepFailed
from pave.pipelines.executor import Executor, LocalExecutor, StepOutcome, StepTask
from pave.pipelines.modules import Fingerprints, callable_or_raise, project_imports, resolve
from pave.pipelines.spec import DATA_PREFIX, ProjectSpec, StepSpec

Status = Literal["ran", "cached", "failed", "not run"]


@dataclass
class StepRecord:
    """What the engine did with one step, where it ran and what it used."""

    name: str
    status: Status
    key: str
    seconds: float = 0.0
    attempts: int = 0
    log_path: Path | None = None
    reason: str = ""  # why it ran: "changed", "forced (--from-step)", "cache off", "not cacheable"
    host: str = ""
    node: str = ""  # the Ray node id on a cluster, else the host; foreach: the nodes, comma-separated
    started: float = 0.0  # epoch seconds
    ended: float = 0.0
    cpu_seconds: float = 0.0
    peak_memory: int = 0
    items: int = 0  # foreach: how many items ran
    assigned: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the run's ``steps`` and the ``pave/steps.json`` artifact)."""
        out = {k: v for k, v in self.__dict__.items() if k != "log_path"}
        out["log_path"] = str(self.log_path) if self.log_path else None
        return out


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
        run = _Run(spec, project_dir, dag, keys, functions, sources, cache, forced, executor, result, display)
        run.go()
    return result


@dataclass
class _Unit:
    """One task of a step: the step itself, or one item of a ``foreach`` step."""

    step: StepSpec
    index: int | None
    task: StepTask


class _Run:
    """The scheduler of one pipeline run: launches ready steps up to the executor's capacity.

    Steps whose inputs are all there are ready; a ``foreach`` step is one unit per item. A unit runs
    in this thread when it is the only thing to do (no process, no thread: a chain of steps runs as
    it always did), otherwise on a thread of a pool that calls ``executor.run`` (isolated: the local
    executor forks). The first failure stops new launches; what is running finishes (and is cached).
    """

    def __init__(
        self,
        spec: ProjectSpec,
        project_dir: Path,
        dag: Dag,
        keys: dict[str, str],
        functions: dict[str, Any],
        sources: Mapping[str, Any],
        cache: StepCache,
        forced: set[str],
        executor: Executor,
        result: PipelineResult,
        display: _Display,
    ) -> None:
        self.spec, self.project_dir, self.dag, self.keys = spec, project_dir, dag, keys
        self.functions, self.sources, self.cache, self.forced = functions, sources, cache, forced
        self.executor, self.result, self.display = executor, result, display
        self.records: dict[str, StepRecord] = {}
        self.reasons: dict[str, str] = {}
        self.outcomes: dict[str, dict[int | None, StepOutcome]] = {}
        self.left: dict[str, int] = {}  # units of a step not back yet
        self.queue: list[_Unit] = []
        self.running: dict[Future[StepOutcome], _Unit] = {}
        self.failure: tuple[str, StepOutcome] | None = None
        self.trace = telemetry.current()  # the run's span: the parent of the steps' (on any thread)

    def go(self) -> None:
        for step in self.dag.order:
            reason = _why_run(step, self.keys[step.name], self.cache, self.forced)
            if reason is None:
                record = StepRecord(step.name, "cached", self.keys[step.name])
                self.records[step.name] = record
                self.result.steps.append(record)
                self.result.metrics.update(self.cache.metrics(step.name, record.key))
                self.display.done(record)
            else:
                self.reasons[step.name] = reason
        waiting = [s for s in self.dag.order if s.name not in self.records]
        with ThreadPoolExecutor(max_workers=32, thread_name_prefix="pave-step") as pool:
            while True:
                if self.failure is None:
                    for step in [s for s in waiting if self._ready(s)]:
                        waiting.remove(step)
                        self.queue += self._units(step)
                if not self.running and (self.failure is not None or not self.queue):
                    break
                self._launch(pool)
                if not self.running:
                    continue
                finished, _ = wait(list(self.running), return_when=FIRST_COMPLETED)
                for future in finished:
                    self._finished(self.running.pop(future), future.result())
        self.result.steps[:] = [  # in DAG order, whatever order they finished in
            self.records.get(step.name) or StepRecord(step.name, "not run", self.keys[step.name])
            for step in self.dag.order
        ]
        if self.failure is not None:
            name, outcome = self.failure
            assert outcome.error is not None
            log = self.records[name].log_path
            error = PipelineStepFailed(name, outcome.error, attempts=outcome.attempts, log=str(log))
            error.result = self.result
            raise error from outcome.error

    def _ready(self, step: StepSpec) -> bool:
        return all(
            up in self.records and self.records[up].status in ("ran", "cached")
            for up in self.dag.upstream[step.name]
        )

    def _units(self, step: StepSpec) -> list[_Unit]:
        signature = inspect.signature(self.functions[step.name])
        kwargs = _arguments(step, signature, self.sources, self.result)
        items: list[int | None] = (
            [None] if step.foreach is None else list(range(len(step.params[step.foreach])))
        )
        self.outcomes[step.name] = {}
        self.left[step.name] = len(items)
        self.display.start(step.name)
        units = []
        for index in items:
            args = dict(kwargs)
            if index is not None:
                assert step.foreach is not None
                args[step.foreach] = step.params[step.foreach][index]
            context = None
            if "ctx" in signature.parameters:
                logger = logging.getLogger(f"pave.step.{step.name}")
                logger.setLevel(logging.INFO)
                context = StepContext(
                    seed=self.spec.seed, project_dir=self.project_dir, step=step.name, logger=logger
                )
                args["ctx"] = context
            log_path = self.result.log_dir / (
                f"{step.name}.log" if index is None else f"{step.name}.{index}.log"
            )
            log_path.unlink(missing_ok=True)
            task = StepTask(
                step.name,
                self.functions[step.name],
                args,
                step.retries,
                self.spec.seed,
                log_path,
                context,
                resources=step.resources,
                timeout=step.timeout,
            )
            units.append(_Unit(step, index, task))
        return units

    def _launch(self, pool: ThreadPoolExecutor) -> None:
        capacity = self.executor.capacity
        while self.queue and self.failure is None:
            unit = self.queue[0]
            if not self.running and len(self.queue) == 1 and unit.step.timeout is None:
                # The only thing to do: run it right here (a chain of steps needs no process or thread).
                self.queue.pop(0)
                self._finished(unit, self._execute(unit))
                return
            busy = sum(u.task.resources.cpus for u in self.running.values())
            if capacity is not None and self.running and busy + unit.task.resources.cpus > capacity:
                return
            self.queue.pop(0)
            unit.task.isolate = True
            self.running[pool.submit(self._execute, unit)] = unit

    def _execute(self, unit: _Unit) -> StepOutcome:
        """Run one unit, in the span of its step when tracing is on."""
        attributes = {"pave.step": unit.step.name}
        if unit.index is not None:
            attributes["pave.item"] = str(unit.index)
        with telemetry.span(f"step {unit.step.name}", attributes, parent=self.trace) as span:
            unit.task.traceparent = telemetry.traceparent()
            outcome = self.executor.run(unit.task)
            if span is not None:
                span.set_attribute("pave.attempts", outcome.attempts)
                if outcome.error is not None:
                    telemetry.failed(span, outcome.error)
        return outcome

    def _finished(self, unit: _Unit, outcome: StepOutcome) -> None:
        name = unit.step.name
        done = self.outcomes[name]
        done[unit.index] = outcome
        self.left[name] -= 1
        if outcome.error is not None and self.failure is None:
            self.failure = (name, outcome)
            self.left[name] -= sum(1 for u in self.queue if u.step.name == name)
            self.queue = [u for u in self.queue if u.step.name != name]
        if (
            self.left[name] == 0
        ):  # every item of the step is back (a failed foreach waits for its running ones)
            self._record(unit.step, done)

    def _record(self, step: StepSpec, done: dict[int | None, StepOutcome]) -> None:
        outcomes = [done[i] for i in sorted(done, key=lambda i: -1 if i is None else i)]
        failed = next((o for o in outcomes if o.error is not None), None)
        log_path = self.result.log_dir / f"{step.name}.log"
        if step.foreach is not None:
            _gather_logs(step.name, log_path, sorted(i for i in done if i is not None), self.result.log_dir)
        record = StepRecord(
            step.name,
            "failed" if failed else "ran",
            self.keys[step.name],
            max(o.ended for o in outcomes) - min(o.started for o in outcomes),
            max(o.attempts for o in outcomes),
            log_path,
            self.reasons[step.name],
            host=",".join(dict.fromkeys(o.host for o in outcomes)),
            node=",".join(dict.fromkeys(o.node for o in outcomes)),
            started=min(o.started for o in outcomes),
            ended=max(o.ended for o in outcomes),
            cpu_seconds=sum(o.cpu_seconds for o in outcomes),
            peak_memory=max(o.peak_memory for o in outcomes),
            items=len(outcomes) if step.foreach is not None else 0,
            assigned=outcomes[0].assigned,
        )
        self.records[step.name] = record
        self.result.steps.append(record)
        for outcome in outcomes:
            self.result.metrics.update(outcome.metrics)
        self.display.done(record)
        if failed is not None:
            if self.failure is not None and self.failure[0] == step.name:
                self.failure = (step.name, failed)
            return
        value = [o.value for o in outcomes] if step.foreach is not None else outcomes[0].value
        self.result._values[step.name] = value
        if step.cache and self.cache.root is not None:
            metrics = {k: v for o in outcomes for k, v in o.metrics.items()}
            if not self.cache.store(step.name, record.key, value, metrics):
                record.reason += " (output not cacheable)"


def _gather_logs(step: str, log_path: Path, indexes: list[int], log_dir: Path) -> None:
    """One ``<step>.log`` for a foreach step: each item's log under a header, in item order."""
    with log_path.open("w", encoding="utf-8") as out:
        for index in indexes:
            part = log_dir / f"{step}.{index}.log"
            out.write(f"--- {step} item {index} ---\n")
            if part.is_file():
                out.write(part.read_text(encoding="utf-8", errors="replace"))
                part.unlink()


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
        self._running: list[str] = []

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
        self._running.append(name)
        if self._progress is not None:
            self._progress.update(self._task, description=f"running [bold]{', '.join(self._running)}[/]")

    def done(self, record: StepRecord) -> None:
        if record.name in self._running:
            self._running.remove(record.name)
        if self._progress is None:
            return
        if record.status == "cached":
            line = f"  [dim]- {record.name}: unchanged, skipped (cached)[/]"
        elif record.status == "ran":
            where = f" on {record.node}" if record.node and record.node != record.host else ""
            items = f", {record.items} items" if record.items else ""
            line = (
                f"  [green]✓[/] {record.name}: ran in {record.seconds:.2f}s{where}{items} ({record.reason})"
            )
        else:
            line = (
                f"  [red]✗[/] {record.name}: failed after {record.attempts} attempt(s), log {record.log_path}"
            )
        self._progress.console.print(line)
        self._progress.advance(self._task)
