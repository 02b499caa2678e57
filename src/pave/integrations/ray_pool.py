"""Ray workers that outlive one ``pave tune``: a pool of detached actors, reused by the next tuning.

Ray starts a job's workers afresh and stops them when the job ends, so every ``pave tune`` paid each
worker's start and its imports of the steps' libraries (Ray, numpy, pandas, scikit-learn: about 2.5
CPU-seconds a worker, four workers on a two-core machine) before its first step. The pool's workers
are detached actors named ``pave-worker-<key>-<id>`` in Ray namespace ``pave``; ``<key>`` digests
the project's name, Pave's version, Python's and the installed packages (:func:`pool_key`), so a
worker only ever runs steps of the project and the environment it was started for: one project's
code never shares a process with another's (whatever a step leaves behind in its process, a module
patched, a cache, a file, stays within its project). A tuning takes the pool's live workers (starting the
missing ones, spread over the nodes), runs its default-sized steps on them, one step at a time per
worker, and leaves them running for the next tuning.

- A worker ends on its own after :data:`IDLE_SECONDS` without a step, and ``pave down`` stops the
  pool of the configured cluster (:func:`stop_pool`).
- Workers reserve no CPU of the cluster while they live (an idle pool must not hold the CPUs other
  jobs wait for): a tuning uses at most as many as the cluster has CPUs, and steps that ask for other
  resources than one CPU run as ordinary Ray tasks, which Ray schedules by their resources.
- A step's project modules are imported afresh when the project's snapshot differs from the one the
  worker ran last (edited code): a warm worker never runs stale code.
- Stopping a step (Ctrl-C, a timeout) kills its worker's process, as a forced task cancel does; the
  pool starts another next time.
- A worker it starts is lent once its process is up (its constructor ran), not in the order the
  workers were asked for: a cold pool's first steps go to the workers that came up first (on a node
  where Ray had started a worker process already, at once), not to one still starting its process.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import platform
import queue
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

NAMESPACE = "pave"
PREFIX = "pave-worker-"
IDLE_SECONDS = 600.0  # a worker without a step for this long ends


def pool_key(project: str) -> str:
    """What a pool's workers were started for: the project, Pave's version, Python's and the
    installed packages."""
    from pave.tracking import lineage as L

    lock = L.environment_hash(L.environment_lock())
    text = "\n".join([project, L.installed_version("pave") or "", platform.python_version(), lock])
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class PoolWorker:
    """The actor: runs shipped steps one at a time; ends itself after ``idle_seconds`` without one."""

    def __init__(self, idle_seconds: float) -> None:
        self._idle = idle_seconds
        self._last = time.monotonic()
        self._busy = False
        self._project: tuple[str, str] | None = None  # (snapshot digest, its folder) imported last
        threading.Thread(target=self._watch, name="pave-pool-idle", daemon=True).start()

    def ready(self) -> bool:
        """Answered once the worker's process is up: the pool lends it from then on."""
        return True

    def run(self, archive: bytes, project_dir: str, digest: str, task: bytes) -> tuple[Any, str]:
        from pave.integrations.ray import _run_shipped_on_worker, project_here

        self._busy = True
        try:
            folder = str(project_here(archive, Path(project_dir)))
            if self._project is not None and self._project != (digest, folder):
                _forget(Path(self._project[1]))  # the project's code changed
            self._project = (digest, folder)
            return _run_shipped_on_worker(archive, project_dir, task)
        finally:
            self._busy = False
            self._last = time.monotonic()

    def _watch(self) -> None:
        import ray

        while True:
            time.sleep(min(self._idle, 10.0) / 2)
            if not self._busy and time.monotonic() - self._last > self._idle:
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
                return


def _forget(project: Path) -> None:
    """Forget the modules a project folder provided and take it off ``sys.path``."""
    from pave.pipelines.modules import local_top_level_names

    local = local_top_level_names(project) if project.is_dir() else set()
    for name in list(sys.modules):
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) or ""
        if name.partition(".")[0] in local or path.startswith(str(project) + "/"):
            del sys.modules[name]
    with contextlib.suppress(ValueError):
        sys.path.remove(str(project))
    importlib.invalidate_caches()


class WorkerPool:
    """The tuning's share of the pool: up to ``size`` workers, each lent to one step at a time."""

    def __init__(self, ray: Any, size: int, project: str, *, idle_seconds: float = IDLE_SECONDS) -> None:
        self._ray = ray
        self.key = pool_key(project)
        self._idle: queue.Queue[Any] = queue.Queue()
        self.reused = 0  # workers of an earlier tuning taken up
        names = [n for n in _pool_names(ray) if n.startswith(f"{PREFIX}{self.key}-")][:size]
        for name in names:
            with contextlib.suppress(ValueError):  # ended meanwhile
                self._idle.put(ray.get_actor(name, namespace=NAMESPACE))
                self.reused += 1
        self._actor = ray.remote(PoolWorker)
        self._options = {
            "lifetime": "detached",
            "namespace": NAMESPACE,
            "num_cpus": 0,  # an idle pool holds no CPU other jobs wait for (module docstring)
            "max_restarts": 0,
            "scheduling_strategy": "SPREAD",
        }
        self._idle_seconds = idle_seconds
        for _ in range(size - self.reused):
            self._start()

    def _start(self) -> None:
        """Start a worker; it joins the idle ones once its process is up (or its start failed: then
        the step lent to it runs as a task, as for a worker that ended while lent)."""
        name = f"{PREFIX}{self.key}-{uuid.uuid4().hex[:8]}"
        worker = self._actor.options(name=name, **self._options).remote(self._idle_seconds)
        worker.ready.remote().future().add_done_callback(lambda _: self._idle.put(worker))

    def take(self, cancelled: threading.Event) -> Any | None:
        """An idle worker (waiting for one), or None once ``cancelled`` is set."""
        while not cancelled.is_set():
            with contextlib.suppress(queue.Empty):
                return self._idle.get(timeout=0.2)
        return None

    def give_back(self, worker: Any) -> None:
        self._idle.put(worker)

    def kill(self, worker: Any, *, replace: bool = False) -> None:
        """Stop ``worker``'s process (a step over its timeout, or cancelled): it is not lent again;
        with ``replace`` a new worker takes its place."""
        with contextlib.suppress(Exception):  # already gone
            self._ray.kill(worker, no_restart=True)
        if replace:
            self._start()


def _pool_names(ray: Any) -> list[str]:
    return [
        entry["name"]
        for entry in ray.util.list_named_actors(all_namespaces=True)
        if entry.get("namespace") == NAMESPACE and entry["name"].startswith(PREFIX)
    ]


def stop_pool(address: str | None) -> int:
    """Stop every pool worker on the cluster at ``address`` (``pave down``); how many were stopped."""
    from pave.integrations.ray import _check_reachable, _ray

    ray = _ray()
    _check_reachable(address)
    ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, configure_logging=False)
    try:
        stopped = 0
        for name in _pool_names(ray):
            with contextlib.suppress(ValueError):  # ended meanwhile
                ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
                stopped += 1
        return stopped
    finally:
        ray.shutdown()
