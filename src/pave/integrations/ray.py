"""Run pipeline steps on a Ray cluster: the same project, unchanged, on shared compute.

``RayExecutor`` implements the pipeline engine's one-method :class:`~pave.pipelines.executor.Executor`
protocol by submitting each :class:`~pave.pipelines.executor.StepTask` as a Ray task. On the worker
the step runs exactly as it does locally (``LocalExecutor``: seeded, retried, its output captured),
and the value, the metrics and the step's log come back to the machine that runs ``pave run``, which
caches, tracks and registers as usual. So caching, lineage and reproducibility do not depend on
where a step ran; the step's log names the node and process it ran on.

The project folder is shipped to the cluster as the job's Ray ``working_dir`` (its modules are
importable there; ``ctx.project_dir`` is that copy), so the cluster needs Pave and the project's
packages installed, not the project. With ``working_dir=False`` (what ``pave tune`` uses: a
runtime environment makes Ray start every worker through its setup script, and only workers without
one are started as the driver connects) the project travels instead as its snapshot, put into Ray's
object store once: a worker on a host that has the project folder imports the steps from it, any
other unpacks the snapshot once per worker process. Addresses follow ``ray.init``: ``None`` starts a
Ray instance for this run on this machine, ``"auto"`` joins the cluster this machine is part of,
and ``"ray://host:10001"`` connects through Ray Client.

Ray moves task arguments and results with pickle between the driver and its own cluster, as every
Ray program does: run steps only on a cluster you operate, as you only load models you registered.
"""

from __future__ import annotations

import atexit
import contextlib
import copy
import hashlib
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from pave import telemetry
from pave.errors import PaveError
from pave.pipelines.errors import StepTimedOut
from pave.pipelines.executor import StepOutcome, StepTask, portable, run_here

# Not shipped to the cluster with the project: version control, environments, caches, local state.
WORKING_DIR_EXCLUDES = [".git/", ".venv/", "venv/", "__pycache__/", ".pave/", "mlruns/", "*.pyc"]


class StepCancelled(Exception):
    """A step's task was cancelled (or never started) because its run was stopped (Ctrl-C)."""


class RayUnavailable(PaveError):
    status_code = 503
    code = "ray_unavailable"


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailable(
            "the ray executor needs Ray, which is not installed",
            hint="pip install 'pave[ray]' (or set executor = \"local\")",
        ) from exc
    return ray


class RayExecutor:
    """Runs each step as a Ray task; use as a context manager around the pipeline run.

    Steps run concurrently (the engine calls :meth:`run` from several threads; Ray queues what the
    cluster cannot run yet) with the step's ``resources`` as the task's ``num_cpus``, ``num_gpus``
    and ``memory``; a step that no node of the cluster could ever hold fails at once, naming the
    largest node, instead of waiting forever. A ``timeout`` cancels the task (force: the worker
    process is stopped).
    """

    capacity: float | None = None  # Ray queues what the cluster cannot run yet

    def __init__(
        self,
        project_dir: Path,
        address: str | None = None,
        *,
        env: dict[str, str] | None = None,
        working_dir: bool = True,
        pool: int = 0,
        project: str = "",
    ) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.address = address
        self.env = dict(env or {})  # environment variables of the job's workers
        # False: no runtime environment for the job (the caller ships what its tasks need). Ray then
        # starts the job's workers as the driver connects, and each starts once, not twice (a
        # runtime environment's worker runs Ray's setup script, which imports Ray, before the worker).
        self.working_dir = working_dir
        # Without a working_dir: up to this many long-lived workers of the pool run the default-sized
        # steps (pave.integrations.ray_pool); 0: every step is a task of this job's workers.
        self.pool_size = pool if not working_dir else 0
        self.project = project  # the pool's workers are this project's (ray_pool.pool_key)
        self.pool: Any = None  # the WorkerPool, once connected
        self._digest = ""  # of the shipped snapshot: a pool worker imports the project afresh when it differs
        self._remote: Any = None
        self._shipped: Any = None  # without a working_dir: the project's snapshot in the object store
        # Epoch seconds: when ray.init returned, the snapshot was put, the first task was submitted.
        self.connected = self.shipped = self.submitted = 0.0
        self._running: dict[Any, Any] = {}  # refs of the tasks submitted and not yet back -> pool worker
        self._lock = threading.RLock()  # re-entrant: cancel() may run in a signal handler
        self._stopped = threading.Event()
        self._largest: dict[str, float] = {}
        self._total: dict[str, float] = {}

    def __enter__(self) -> RayExecutor:
        ray = _ray()
        if ray.is_initialized():
            raise RayUnavailable(
                "Ray is already initialised in this process",
                hint="run one pipeline on Ray at a time per process, or call ray.shutdown() first",
            )
        _check_reachable(self.address)
        runtime_env: dict[str, Any] = {}
        if self.working_dir:
            runtime_env |= {"working_dir": str(self.project_dir), "excludes": WORKING_DIR_EXCLUDES}
        if self.env:
            runtime_env["env_vars"] = self.env
        try:
            ray.init(
                address=self.address,
                runtime_env=runtime_env or None,
                namespace="pave",
                log_to_driver=False,
                include_dashboard=False if self.address is None else None,
                configure_logging=False,
            )
        except Exception as exc:
            raise RayUnavailable(
                f"could not reach Ray at {self.address or 'a new local instance'}: "
                f"{type(exc).__name__}: {exc}",
                hint='check the address (`ray status` on the cluster), e.g. executor_address = "auto" '
                'on a cluster node or "ray://HEAD:10001" from outside',
            ) from exc
        self.connected = time.time()
        for node in ray.nodes():
            if node.get("Alive"):
                for name, amount in (node.get("Resources") or {}).items():
                    self._largest[name] = max(self._largest.get(name, 0.0), float(amount))
                    self._total[name] = self._total.get(name, 0.0) + float(amount)
        if self.pool_size:
            from pave.integrations.ray_pool import WorkerPool

            # No more workers than the cluster has CPUs: they reserve none (ray_pool's docstring).
            # Asked for before the snapshot is made: a worker that must start begins now.
            size = max(1, min(self.pool_size, int(self._total.get("CPU", 1))))
            self.pool = WorkerPool(ray, size, self.project)
        if self.working_dir:
            self._remote = ray.remote(max_retries=0)(_run_on_worker)
        else:
            from pave.pipelines.snapshot import ARCHIVE, make_snapshot

            self._remote = ray.remote(max_retries=0)(_run_shipped_on_worker)
            with tempfile.TemporaryDirectory(prefix="pave-ray-") as folder:
                archive = make_snapshot(self.project_dir, Path(folder) / ARCHIVE).read_bytes()
            self._digest = hashlib.sha256(archive).hexdigest()
            self._shipped = ray.put(archive)
            self.shipped = time.time()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        _ray().shutdown()  # the pool's workers are detached: they stay for the next tuning
        self._remote = self._shipped = self.pool = None

    @property
    def cancelled(self) -> bool:
        return self._stopped.is_set()

    def run(self, task: StepTask) -> StepOutcome:
        if self._remote is None:
            raise RuntimeError("RayExecutor.run outside its `with` block")
        ray = _ray()
        if self.cancelled:
            return StepOutcome(error=StepCancelled(f"step {task.name} was not started: the run was stopped"))
        refusal = self._unschedulable(task)
        if refusal is not None:
            return StepOutcome(error=refusal, attempts=0)
        log_path = task.log_path
        task.log_path = Path("step.log")  # replaced on the worker; the driver's path means nothing there
        resources = task.resources
        remote = self._remote.options(
            num_cpus=resources.cpus,
            num_gpus=resources.gpus,
            memory=resources.memory_bytes,
            name=f"pave-step-{task.name}",
        )
        worker = None
        try:
            if self._shipped is None:
                ref = remote.remote(task)
            else:  # the task's step function is imported from the project on the worker: pickled here
                blob = ray.cloudpickle.dumps(_travelling(task))
                worker = self._pooled(resources)
                if self.cancelled:  # while it waited for a pool worker
                    return StepOutcome(error=StepCancelled(f"step {task.name} was not started: run stopped"))
                if worker is not None:
                    ref = worker.run.options(name=f"pave-step-{task.name}").remote(
                        self._shipped, str(self.project_dir), self._digest, blob
                    )
                else:
                    ref = remote.remote(self._shipped, str(self.project_dir), blob)
        except Exception as exc:  # the step's inputs or function did not pickle
            if worker is not None:
                self.pool.give_back(worker)
            return StepOutcome(error=portable(exc), attempts=0)
        finally:
            task.log_path = log_path
        self.submitted = self.submitted or time.time()
        outcome, log_text = self._wait(task, ref, worker)
        if isinstance(outcome, _WorkerLost):
            ref = remote.remote(self._shipped, str(self.project_dir), blob)
            outcome, log_text = self._wait(task, ref, None)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as stream:
            stream.write(log_text)
        return outcome

    def _pooled(self, resources: Any) -> Any:
        """A pool worker for a step of the default size (one CPU, nothing else), else None (a task)."""
        if self.pool is None or (resources.cpus, resources.gpus, resources.memory_bytes) != (1, 0, None):
            return None
        return self.pool.take(self._stopped)

    def _wait(self, task: StepTask, ref: Any, worker: Any) -> tuple[StepOutcome, str]:
        """The step's outcome and log; a step over its timeout or cancelled meanwhile is stopped."""
        ray = _ray()
        with self._lock:
            self._running[ref] = worker
        if self.cancelled:  # cancel() ran while this task was being submitted
            self._stop(ref, worker)
        healthy = worker is not None
        try:
            outcome, log_text = ray.get(ref, timeout=task.timeout)
        except ray.exceptions.GetTimeoutError:
            self._stop(ref, worker, replace=True)
            healthy = False
            outcome = StepOutcome(error=StepTimedOut(task.name, task.timeout or 0.0), attempts=1)
            log_text = f"--- stopped: the step ran longer than its timeout of {task.timeout:g} s ---\n"
        except Exception as exc:  # the task could not run (serialisation, a lost worker): the step failed
            healthy = False
            if worker is not None and not self.cancelled and isinstance(exc, ray.exceptions.RayActorError):
                return _WorkerLost(), ""  # the pool worker ended as it was lent: a task runs the step
            error = StepCancelled(f"step {task.name} was stopped with its run") if self.cancelled else exc
            outcome, log_text = (
                StepOutcome(error=portable(error), attempts=1),
                f"Ray could not run the step: {error}\n",
            )
        finally:
            with self._lock:
                self._running.pop(ref, None)
        if healthy and not self.cancelled:
            self.pool.give_back(worker)
        return outcome, log_text

    def _stop(self, ref: Any, worker: Any, *, replace: bool = False) -> None:
        """Stop a running step: its task cancelled with force, or its pool worker's process killed
        (and, with ``replace``, another started in its place)."""
        with contextlib.suppress(Exception):  # finished meanwhile
            if worker is not None:
                self.pool.kill(worker, replace=replace)
            else:
                _ray().cancel(ref, force=True)

    def cancel(self) -> int:
        """Stop every task of this executor now (their worker processes are stopped) and start no
        more: a ``run`` waiting for one returns a failed outcome at once. How many were running.

        Safe from a signal handler and from any thread (``pave tune`` calls it on Ctrl-C).
        """
        self._stopped.set()
        with self._lock:
            running = list(self._running.items())
        for ref, worker in running:
            self._stop(ref, worker)
        return len(running)

    def _unschedulable(self, task: StepTask) -> PaveError | None:
        wanted = {
            "CPU": task.resources.cpus,
            "GPU": task.resources.gpus,
            "memory": task.resources.memory_bytes or 0,
        }
        for name, amount in wanted.items():
            largest = self._largest.get(name, 0.0)
            if amount and amount > largest:
                return RayUnavailable(
                    f"step {task.name} asks for {amount:g} {name}, "
                    f"and the largest node of the cluster has {largest:g}",
                    hint=f"lower resources of step {task.name} in pave.yaml, "
                    "or add a node that has them to the cluster",
                )
        return None


class _WorkerLost(StepOutcome):
    """A pool worker ended while it was lent (its idle time ran out, its process died): the step runs
    once more, as a task of this job."""


def _check_reachable(address: str | None) -> None:
    """Fail at once on a cluster address nothing listens on (Ray itself waits for minutes)."""
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(
            f"{address!r} is not a Ray cluster address",
            hint='use "auto", "HOST:PORT" (the head\'s GCS port, 6379 by default) or "ray://HOST:10001"',
        )
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=3).close()
    except OSError as exc:
        raise RayUnavailable(
            f"no Ray cluster answers at {address}: {exc.strerror or exc}",
            hint="start one with `ray start --head`, or check the address with `ray status` on the head",
        ) from exc


def _travelling(task: StepTask) -> StepTask:
    """``task`` as it goes to a worker: without its resources (they were read here, and their class
    would import the spec's module there, with pandas and scipy, before the step needs anything)."""
    shipped = copy.copy(task)
    shipped.resources = None  # type: ignore[assignment]
    return shipped


def _run_shipped_on_worker(archive: bytes, project_dir: str, task: bytes) -> tuple[StepOutcome, str]:
    """On a Ray worker of a job without a working_dir: the step, its project found or unpacked."""
    import ray

    project = project_here(archive, Path(project_dir))
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))  # the step's module (pickled by name) is imported from here
    step: StepTask = ray.cloudpickle.loads(task)  # from this job's driver, as every task's arguments
    return _run_on_worker(step, project)


_UNPACKED: dict[str, Path] = {}  # archive digest -> its copy, unpacked once per worker process


def project_here(archive: bytes, project_dir: Path) -> Path:
    """``project_dir`` where this host has it, else a copy unpacked from ``archive`` (the project's
    snapshot), once per process and removed when the process ends."""
    if project_dir.is_dir():
        return project_dir
    digest = hashlib.sha256(archive).hexdigest()
    if digest not in _UNPACKED:
        from pave.tracking.paths import safe_extract

        folder = Path(tempfile.mkdtemp(prefix="pave-project-"))
        atexit.register(shutil.rmtree, folder, True)
        packed = folder / "snapshot.tar.gz"
        packed.write_bytes(archive)
        safe_extract(packed, folder / project_dir.name)
        packed.unlink()
        _UNPACKED[digest] = folder / project_dir.name
    return _UNPACKED[digest]


def _run_on_worker(task: StepTask, project: Path | None = None) -> tuple[StepOutcome, str]:
    """On a Ray worker: run the step as LocalExecutor does; return its outcome and its log."""
    import ray

    context = ray.get_runtime_context()
    with tempfile.TemporaryDirectory(prefix="pave-step-") as folder:
        task.log_path = Path(folder) / "step.log"
        node = context.get_node_id()
        task.log_path.write_text(
            f"--- ran on Ray node {socket.gethostname()} {node}, pid {os.getpid()} ---\n"
        )
        if task.context is not None:
            task.context.project_dir = project or Path.cwd()  # else the working_dir copy of the project
        with telemetry.environment(task.traceparent):  # a worker runs many tasks: set for this one
            outcome = run_here(task)
        outcome.node = node
        outcome.assigned = {k: float(v) for k, v in context.get_assigned_resources().items()}
        outcome.error = portable(outcome.error) if outcome.error is not None else None
        return outcome, task.log_path.read_text(encoding="utf-8", errors="replace")
