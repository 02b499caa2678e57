"""Run pipeline steps on a Ray cluster: the same project, unchanged, on shared compute.

``RayExecutor`` implements the pipeline engine's one-method :class:`~pave.pipelines.executor.Executor`
protocol by submitting each :class:`~pave.pipelines.executor.StepTask` as a Ray task. On the worker
the step runs exactly as it does locally (``LocalExecutor``: seeded, retried, its output captured),
and the value, the metrics and the step's log come back to the machine that runs ``pave run``, which
caches, tracks and registers as usual. So caching, lineage and reproducibility do not depend on
where a step ran; the step's log names the node and process it ran on.

The project folder is shipped to the cluster as the job's Ray ``working_dir`` (its modules are
importable there; ``ctx.project_dir`` is that copy), so the cluster needs Pave and the project's
packages installed, not the project. Addresses follow ``ray.init``: ``None`` starts a Ray instance
for this run on this machine, ``"auto"`` joins the cluster this machine is part of, and
``"ray://host:10001"`` connects through Ray Client.

Ray moves task arguments and results with pickle between the driver and its own cluster, as every
Ray program does: run steps only on a cluster you operate, as you only load models you registered.
"""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path
from types import TracebackType
from typing import Any

from pave.errors import PaveError
from pave.pipelines.executor import LocalExecutor, StepOutcome, StepTask

# Not shipped to the cluster with the project: version control, environments, caches, local state.
WORKING_DIR_EXCLUDES = [".git/", ".venv/", "venv/", "__pycache__/", ".pave/", "mlruns/", "*.pyc"]


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
    """Runs each step as a Ray task; use as a context manager around the pipeline run."""

    def __init__(self, project_dir: Path, address: str | None = None, *, num_cpus: float = 1.0) -> None:
        self.project_dir = Path(project_dir).resolve()
        self.address = address
        self.num_cpus = num_cpus
        self._remote: Any = None

    def __enter__(self) -> RayExecutor:
        ray = _ray()
        if ray.is_initialized():
            raise RayUnavailable(
                "Ray is already initialised in this process",
                hint="run one pipeline on Ray at a time per process, or call ray.shutdown() first",
            )
        _check_reachable(self.address)
        runtime_env = {"working_dir": str(self.project_dir), "excludes": WORKING_DIR_EXCLUDES}
        try:
            ray.init(
                address=self.address,
                runtime_env=runtime_env,
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
        self._remote = ray.remote(max_retries=0)(_run_on_worker)
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        _ray().shutdown()
        self._remote = None

    def run(self, task: StepTask) -> StepOutcome:
        if self._remote is None:
            raise RuntimeError("RayExecutor.run outside its `with` block")
        ray = _ray()
        log_path = task.log_path
        task.log_path = Path("step.log")  # replaced on the worker; the driver's path means nothing there
        try:
            ref = self._remote.options(num_cpus=self.num_cpus, name=f"pave-step-{task.name}").remote(task)
            outcome, log_text = ray.get(ref)
        except Exception as exc:  # the task could not run (serialisation, a lost worker): the step failed
            outcome, log_text = (
                StepOutcome(error=_portable(exc), attempts=1),
                f"Ray could not run the step: {exc}\n",
            )
        finally:
            task.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("a", encoding="utf-8") as stream:
            stream.write(log_text)
        return outcome


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


def _run_on_worker(task: StepTask) -> tuple[StepOutcome, str]:
    """On a Ray worker: run the step as LocalExecutor does; return its outcome and its log."""
    with tempfile.TemporaryDirectory(prefix="pave-step-") as folder:
        task.log_path = Path(folder) / "step.log"
        task.log_path.write_text(f"--- ran on Ray node {socket.gethostname()}, pid {os.getpid()} ---\n")
        if task.context is not None:
            task.context.project_dir = Path.cwd()  # the working_dir copy of the project
        outcome = LocalExecutor().run(task)
        outcome.error = _portable(outcome.error) if outcome.error is not None else None
        return outcome, task.log_path.read_text(encoding="utf-8", errors="replace")


def _portable(error: BaseException) -> BaseException:
    """The error itself when it survives pickling, else a RuntimeError that keeps its message."""
    import pickle

    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, never from the wire
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error
