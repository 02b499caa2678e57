"""The platform's jobs on a Ray cluster (``job_executor = "ray"``, at ``executor_address``).

Each job is a detached Ray actor on a node of the cluster that runs the job's one ``pave`` command
(the same as the local executor's: ``pave run --from-run RUN_ID FOLDER ...``) as a child process in
a fresh temporary folder of that node, with the same environment: the platform's URL, the job's
token, what Python needs; nothing of the control plane's. Detached and named, the actor outlives a
control plane that restarts, which finds it again by its name. When the command ends, the actor
hands back its exit code, output and error, which the control plane writes where the local
executor's job would have written them; its folder is removed, and so is the actor.

The cluster needs Pave installed (as for ``executor = "ray"``), and reaches the platform at
``PAVE_URL``: set ``public_url`` when the nodes reach the control plane at another address.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from pave.automation import jobs
from pave.automation.jobs import Handle, Job, command, job_environment
from pave.config import Settings
from pave.errors import InvalidInput
from pave.integrations.ray import RayUnavailable, _check_reachable, _ray

NAMESPACE = "pave-jobs"
log = logging.getLogger("pave.jobs")


class JobActor:
    """On a node of the cluster: one job's process, its folder, and its output when it ended."""

    def __init__(self, job: Job) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix=f"pave-job-{job.key}-"))
        (self.folder / "tmp").mkdir()
        env = job_environment(job, self.folder)
        with (self.folder / "stdout").open("wb") as out, (self.folder / "stderr").open("wb") as err:
            self.process = subprocess.Popen(  # Pave's own command, no shell
                command(job, self.folder),
                cwd=self.folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )

    def where(self) -> dict[str, Any]:
        return {"pid": self.process.pid, "folder": str(self.folder), "node": os.uname().nodename}

    def poll(self) -> dict[str, Any] | None:
        """None while the job runs; then its exit code and output (its folder is removed)."""
        code = self.process.poll()
        if code is None:
            return None
        done = {
            "code": code,
            "stdout": (self.folder / "stdout").read_bytes(),
            "stderr": (self.folder / "stderr").read_bytes(),
        }
        shutil.rmtree(self.folder, ignore_errors=True)
        return done

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def end(self, grace: float) -> dict[str, Any]:
        """Stop the job now (SIGTERM to its process group, SIGKILL ``grace`` seconds later if it is
        still there); its exit code and output, as :meth:`poll` gives them."""
        self.stop()
        try:
            self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        done = self.poll()
        assert done is not None
        return done


class RayJobExecutor:
    """Jobs as detached actors on the Ray cluster at ``executor_address``."""

    name = "ray"

    def __init__(self, settings: Settings) -> None:
        if not settings.executor_address:
            raise InvalidInput(
                "job_executor = ray needs the cluster's address",
                hint='set executor_address (PAVE_EXECUTOR_ADDRESS), e.g. "HEAD:6379" or "ray://HEAD:10001"',
            )
        self.address = settings.executor_address

    def _connect(self) -> Any:
        ray = _ray()
        if not ray.is_initialized():
            _check_reachable(self.address)
            try:
                ray.init(
                    address=self.address,
                    namespace=NAMESPACE,
                    log_to_driver=False,
                    configure_logging=False,
                )
            except Exception as exc:
                raise RayUnavailable(
                    f"could not reach Ray at {self.address}: {type(exc).__name__}: {exc}",
                    hint="check executor_address (`ray status` on the cluster)",
                ) from exc
        return ray

    def start(self, job: Job) -> Handle:
        ray = self._connect()
        name = f"pave-{job.key}-{secrets.token_hex(4)}"
        actor = (
            ray.remote(JobActor)
            .options(name=name, namespace=NAMESPACE, lifetime="detached", num_cpus=1, max_restarts=0)
            .remote(job)
        )
        where = ray.get(actor.where.remote(), timeout=300)
        handle = Handle(
            executor=self.name,
            folder=where["folder"],
            pid=None,
            ref=name,
            extra={"node": where["node"], "stdout": str(job.stdout), "stderr": str(job.stderr)},
        )
        _started[name] = (self, handle)
        jobs.on_stop(stop_started)
        return handle

    def _actor(self, handle: Handle) -> Any:
        ray = self._connect()
        try:
            return ray.get_actor(handle.ref, namespace=NAMESPACE)
        except ValueError:
            return None

    def running(self, handle: Handle) -> bool:
        actor = self._actor(handle)
        if actor is None:
            _started.pop(str(handle.ref), None)
            stderr = handle.extra.get("stderr")
            if not (stderr and Path(stderr).exists()):  # else its output was kept when it was stopped
                # Gone (a node lost): what the job wrote is lost with it.
                _write(handle, "stderr", b"error: the job's Ray actor is gone (its node may have died)\n")
            return False
        ray = self._connect()
        try:
            done = ray.get(actor.poll.remote(), timeout=60)
        except Exception as exc:  # the actor died mid-call
            _write(handle, "stderr", f"error: the job's Ray actor failed: {type(exc).__name__}\n".encode())
            return False
        if done is None:
            return True
        _write(handle, "stdout", done["stdout"])
        _write(handle, "stderr", done["stderr"])
        return False

    def stop(self, handle: Handle) -> None:
        actor = self._actor(handle)
        if actor is not None:
            self._connect().get(actor.stop.remote(), timeout=60)

    def cleanup(self, handle: Handle) -> None:
        _started.pop(str(handle.ref), None)
        actor = self._actor(handle)
        if actor is not None:
            self._connect().kill(actor)


_started: dict[str, tuple[RayJobExecutor, Handle]] = {}  # actor name -> a job this control plane started


def stop_started(grace: float) -> list[str]:
    """End the jobs this control plane started on Ray that still run (called with the local ones'
    :func:`pave.automation.jobs.stop_started` when the control plane stops): each job's process
    gets SIGTERM, SIGKILL after ``grace`` seconds; what it wrote is kept where the control plane
    reads a job's output, ending with a line saying it was stopped, and its actor is removed. A
    detached actor would otherwise keep the job running with nobody to read it, and keep its CPU.
    The jobs' names.
    """
    started = list(_started.items())
    ending = []
    for name, (executor, handle) in started:
        actor = executor._actor(handle)
        if actor is None:
            continue
        log.warning("stopping Ray job %s: the control plane is stopping", name)
        ending.append((name, executor, handle, actor, actor.end.remote(grace)))
    stopped = []
    for name, executor, handle, actor, pending in ending:
        ray = executor._connect()
        try:
            done = ray.get(pending, timeout=grace + 60)
        except Exception as exc:  # the actor died meanwhile: its output is lost with it
            failed = f"error: the job's Ray actor failed: {type(exc).__name__}\n"
            done = {"stdout": b"", "stderr": failed.encode()}
        _write(handle, "stdout", done["stdout"])
        _write(handle, "stderr", done["stderr"] + STOPPED)
        with contextlib.suppress(Exception):
            ray.kill(actor)
        _started.pop(name, None)
        stopped.append(name)
    return stopped


STOPPED = b"\nerror: the job was stopped: the control plane that started it stopped (pave down)\n"


def _write(handle: Handle, stream: str, data: bytes) -> None:
    target = handle.extra.get(stream)
    if target:
        Path(target).parent.mkdir(parents=True, exist_ok=True)
        Path(target).write_bytes(data)
