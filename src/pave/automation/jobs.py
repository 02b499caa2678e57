"""Jobs: the platform's own runs (the closed loop's retrains) as workers outside the control plane.

A job is one ``pave`` command (``pave run --from-run RUN_ID FOLDER ...``: the run's code snapshot
and data versions restored into a fresh folder, run there) executed by a :class:`JobExecutor`:

- ``local`` (default): a worker process of its own, in its own session, in a fresh temporary
  folder that is removed when the job ends. Its environment holds only ``PAVE_URL``, a short-lived
  token scoped to the job's project, what Python needs (``PATH``, ``LANG``...) and, when tracing
  is on, the OTLP endpoint and the ``TRACEPARENT`` it continues: never the
  control plane's ``PAVE_HOME``, database URL, object-store keys or credentials. A control plane
  running as root starts it as ``job_user`` (``nobody``) through ``setpriv`` with no supplementary
  groups and no new privileges, in a PID namespace of its own (``unshare``: it sees no other
  process), so the job cannot read the control plane's home
  (``credentials.json`` and ``pave.db`` are the control plane's, mode 0600); where that cannot
  work, the job runs as the control plane's user and a warning says so once.
- ``ray`` (``job_executor = "ray"``): the same command in a detached actor on a node of the Ray
  cluster at ``executor_address`` (:mod:`pave.automation.ray_jobs`).

Either way the job talks to the platform only over HTTP, with its token, as any remote client
does: it reads the snapshot and stores data versions, artifacts and its model version through the
platform's routes, under the project's permissions. Its standard output and error land in files
the control plane opened for it, which a restarted control plane still reads. A control plane that
stops (``pave down``, SIGTERM) ends the local jobs it started (:func:`stop_started`); one that
crashes leaves them running, and the next one adopts them.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pave import telemetry
from pave.config import Settings

log = logging.getLogger("pave.jobs")
_processes: dict[int, subprocess.Popen[bytes]] = {}  # pid -> a job process this control plane started
_folders: dict[int, Path] = {}  # pid -> that job's temporary folder

GRACE = 10.0  # seconds a job has to end after SIGTERM before SIGKILL
# What Python and Pave need in a job, and nothing of the control plane's secrets.
ENV_KEEP = ("PATH", "LANG", "TZ", "PYTHONPATH", "SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")


@dataclass(frozen=True)
class Job:
    """One job: ``pave ARGS...`` for ``project`` with ``token``, its output into two files."""

    key: str  # e.g. "loop-12": names the job's folder and identifies its process
    project: str
    args: tuple[str, ...]  # the pave command's arguments; "{folder}" is replaced by the job's folder
    url: str  # the platform, for PAVE_URL
    token: str  # a token scoped to the project, revoked by the caller when the job ends
    stdout: Path  # files of the control plane's, opened for the job (it never sees their path)
    stderr: Path
    env: dict[str, str] = field(default_factory=dict)  # what the platform team opted in (source_env)


@dataclass
class Handle:
    """Where a started job is: enough for a control plane that restarted to find it again."""

    executor: str
    folder: str
    pid: int | None = None
    ref: str | None = None  # the executor's own id (a Ray job's submission id)
    user: str | None = None  # the account it runs as, when not the control plane's
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Handle:
        return cls(**{k: doc[k] for k in ("executor", "folder", "pid", "ref", "user", "extra") if k in doc})


class JobExecutor(Protocol):
    """Runs jobs somewhere outside the control-plane process."""

    name: str

    def start(self, job: Job) -> Handle:
        """Start ``job``; raise OSError (or a PaveError) when it cannot start."""

    def running(self, handle: Handle) -> bool:
        """Whether the job is still running (also for a job started before a restart)."""

    def stop(self, handle: Handle) -> None:
        """Stop the job (SIGTERM to its process group, then SIGKILL, or the executor's equivalent)."""

    def cleanup(self, handle: Handle) -> None:
        """Remove what the job left (its folder); called once it ended."""


def job_environment(job: Job, folder: Path) -> dict[str, str]:
    """The job's whole environment: the platform's URL, its token, Python's needs, its own folder."""
    env = {k: v for k, v in os.environ.items() if k in ENV_KEEP or k.startswith("LC_")}
    env.setdefault("PATH", os.defpath)
    env |= job.env
    env |= {
        "HOME": str(folder),
        "TMPDIR": str(folder / "tmp"),
        "PAVE_HOME": str(folder / ".pave"),  # the job's own step cache and logs
        "PAVE_URL": job.url,
        "PAVE_TOKEN": job.token,
        "PAVE_JOB": job.key,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    return env | telemetry.child_environment()  # tracing on: where spans go, and the parent span


def command(job: Job, folder: Path) -> list[str]:
    return [sys.executable, "-m", "pave", *(a.replace("{folder}", str(folder)) for a in job.args)]


@functools.cache
def _drop_privileges(user: str) -> tuple[str, ...]:
    """The prefix that runs a command as ``user`` (``setpriv``) in a PID namespace of its own
    (``unshare``: it sees its own processes only), or () (with one warning) when the control plane
    is not root, or ``setpriv`` is missing, or ``user`` cannot run Pave here. Without ``unshare``
    the job still runs as ``user`` (a warning says it sees the host's processes)."""
    if os.geteuid() != 0:
        return ()
    setpriv = shutil.which("setpriv")
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        account = None
    if setpriv is None or account is None:
        log.warning(
            "jobs run as root: %s; install util-linux (setpriv) and set job_user to an existing account",
            "setpriv is missing" if setpriv is None else f"there is no account {user!r}",
        )
        return ()
    prefix: tuple[str, ...] = (
        setpriv,
        f"--reuid={account.pw_uid}",
        f"--regid={account.pw_gid}",
        "--clear-groups",
        "--no-new-privs",
        "--",
    )
    unshare = shutil.which("unshare")
    hidden = (unshare, "--pid", "--fork", "--mount-proc", "--kill-child", "--") if unshare else ()
    if hidden and subprocess.run([*hidden, "true"], capture_output=True, timeout=60, check=False).returncode:
        hidden = ()
    if not hidden:
        log.warning("jobs see the host's processes: unshare --pid --mount-proc is not available here")
    prefix = (*hidden, *prefix)
    probe = subprocess.run(  # can that account run this Python and import Pave?
        [*prefix, sys.executable, "-c", "import sys, pave.cli.main; print(sys.version)"],
        capture_output=True,
        cwd="/",
        env={"PATH": os.environ.get("PATH", os.defpath), "HOME": "/"},
        timeout=120,
        check=False,
    )
    if probe.returncode != 0:
        log.warning(
            "jobs run as root: account %s cannot run %s (%s); install Pave where %s can read it",
            user,
            sys.executable,
            probe.stderr.decode(errors="replace").strip().splitlines()[-1:] or "no output",
            user,
        )
        return ()
    if probe.stdout.decode(errors="replace").strip() != sys.version:
        log.warning(  # e.g. a virtual environment whose base interpreter is in root's home
            "jobs run as %s with another Python than the control plane's (%s): install Pave's Python "
            "where %s can read it",
            user,
            probe.stdout.decode(errors="replace").strip().split()[0:1],
            user,
        )
    return prefix


class LocalExecutor:
    """Each job a worker process on this host, in its own session and temporary folder."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def start(self, job: Job) -> Handle:
        folder = Path(tempfile.mkdtemp(prefix=f"pave-job-{job.key}-"))
        try:
            (folder / "tmp").mkdir()
            prefix = _drop_privileges(self.settings.job_user)
            user = None
            if prefix:
                account = pwd.getpwnam(self.settings.job_user)
                for path in (folder, folder / "tmp"):
                    os.chown(path, account.pw_uid, account.pw_gid)
                user = self.settings.job_user
            job.stdout.parent.mkdir(parents=True, exist_ok=True)
            with job.stdout.open("wb") as out, job.stderr.open("wb") as err:
                process = subprocess.Popen(  # our own interpreter and command, no shell
                    [*prefix, *command(job, folder)],
                    cwd=folder,
                    env=job_environment(job, folder),
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,  # survives a control-plane crash; stopped as a group
                )
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        _processes[process.pid] = process
        _folders[process.pid] = folder
        return Handle(executor=self.name, folder=str(folder), pid=process.pid, user=user)

    def running(self, handle: Handle) -> bool:
        if handle.pid is None:
            return False
        process = _processes.get(handle.pid)
        if process is not None:
            if process.poll() is None:
                return True
            _processes.pop(handle.pid, None)
            return False
        return _alive(handle.pid, handle.folder)

    def stop(self, handle: Handle) -> None:
        """SIGTERM to the job's process group, SIGKILL to it :data:`GRACE` seconds later if it is
        still there: a job in a PID namespace of its own ignores SIGTERM (``unshare`` does while it
        waits, and the namespace's first process, ``pave run``, has no handler for it)."""
        if handle.pid is None or not self.running(handle):
            return
        _end_groups({handle.pid: lambda: self.running(handle)}, GRACE)

    def cleanup(self, handle: Handle) -> None:
        if handle.pid is not None:
            _processes.pop(handle.pid, None)
            _folders.pop(handle.pid, None)
        folder = Path(handle.folder)
        if folder.name.startswith("pave-job-") and folder.parent == Path(tempfile.gettempdir()):
            shutil.rmtree(folder, ignore_errors=True)


_stoppers: list[Callable[[float], list[str]]] = []  # other executors' own stop_started


def on_stop(stopper: Callable[[float], list[str]]) -> None:
    """Have :func:`stop_started` call ``stopper(grace)`` too: an executor that started jobs elsewhere
    (``ray_jobs``) ends them when the control plane stops."""
    if stopper not in _stoppers:
        _stoppers.append(stopper)


def stop_started(grace: float = GRACE) -> list[int]:
    """End the jobs this control plane started that still run, and remove their folders; the local
    jobs' pids. The jobs it started on Ray end at the same time (:func:`on_stop`).

    Called when the control plane stops (``pave down``, SIGTERM): SIGTERM to each job's process
    group, SIGKILL to those still there after ``grace`` seconds. A control plane that crashes
    cannot do this, and a restarted one adopts what still runs (:meth:`LocalExecutor.running`);
    the closed loop then reports a stopped job's turn as failed, with what the job wrote.
    """
    threads = []
    for stopper in list(_stoppers):  # the jobs on other executors (Ray) end at the same time
        ending = threading.Thread(target=_guarded, args=(stopper, grace), name="pave-stop-jobs")
        ending.start()
        threads.append(ending)
    alive = [(pid, process) for pid, process in list(_processes.items()) if process.poll() is None]
    for pid, _ in alive:
        log.warning("stopping job pid %d: the control plane is stopping", pid)
    _end_groups({pid: functools.partial(_unfinished, process) for pid, process in alive}, grace)
    for pid, process in alive:
        process.wait(timeout=30)
        _processes.pop(pid, None)
        folder = _folders.pop(pid, None)
        if folder is not None:  # its output is in the control plane's files; the folder is scratch
            shutil.rmtree(folder, ignore_errors=True)
    for ending in threads:
        ending.join()
    return [pid for pid, _ in alive]


def _guarded(stopper: Callable[[float], list[str]], grace: float) -> None:
    try:
        stopper(grace)
    except Exception:  # the cluster is away: its jobs cannot be reached to stop them
        log.exception("could not stop the jobs started on another executor")


def _unfinished(process: subprocess.Popen[bytes]) -> bool:
    return process.poll() is None


def _end_groups(groups: Mapping[int, Callable[[], bool]], grace: float) -> None:
    """SIGTERM to each process group (by its leader's pid), SIGKILL to those whose ``running()`` is
    still true ``grace`` seconds later."""
    for pid in groups:
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(running() for running in groups.values()) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid, running in groups.items():
        if running():
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)


def _alive(pid: int, folder: str) -> bool:
    """A job this control plane did not start (before a restart) is still running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # the pid may have been reused by another program
        with contextlib.suppress(OSError):
            return folder.encode() in cmdline.read_bytes()
    return True


EXECUTORS = {  # name -> "module:class"; each built with the settings
    "local": "pave.automation.jobs:LocalExecutor",
    "ray": "pave.automation.ray_jobs:RayJobExecutor",
}


def executor(settings: Settings, name: str | None = None) -> JobExecutor:
    """The executor named ``name`` (default: the ``job_executor`` setting)."""
    import importlib

    module, _, attr = EXECUTORS[name or settings.job_executor].partition(":")
    built: JobExecutor = getattr(importlib.import_module(module), attr)(settings)
    return built
