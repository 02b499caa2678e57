"""Lineage: what a run records so it can be explained and reproduced later.

A Pave run is one MLflow run in the experiment named after the project, tagged with:

=============================  ===================================================================
tag                            value
=============================  ===================================================================
``pave.project``               the project name
``pave.project_dir``           the project folder the run was started from
``pave.git.commit``            HEAD of the project's git repository (absent outside git)
``pave.git.dirty``             ``true`` when the worktree had uncommitted changes
``pave.git.path``              the project folder relative to the repository root
``pave.data.<source>``         sha256 of that data source (its version in the dataset store)
``pave.env.hash``              sha256 of the environment lock (``env/requirements.lock``)
``pave.seed``                  the project seed
``pave.template``              template ``name==version`` when the project came from one
``pave.version``               the Pave version that ran it
``pave.metrics.primary``       the spec's primary metric (``pave runs`` shows it first)
``pave.error``                 on failure: the error headline (``error.json`` holds the rest)
=============================  ===================================================================

This module is MLflow-only (foundation layer): it never imports the domain packages.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pave.errors import InvalidInput, NotFound

TAG_PROJECT = "pave.project"
TAG_PROJECT_DIR = "pave.project_dir"
TAG_GIT_COMMIT = "pave.git.commit"
TAG_GIT_DIRTY = "pave.git.dirty"
TAG_GIT_PATH = "pave.git.path"
TAG_DATA_PREFIX = "pave.data."
TAG_FINGERPRINT_PREFIX = "pave.fingerprint."  # + source: its fingerprint when the run read it
TAG_ENV_HASH = "pave.env.hash"
TAG_SEED = "pave.seed"
TAG_TEMPLATE = "pave.template"
TAG_VERSION = "pave.version"
TAG_ERROR = "pave.error"
TAG_ERROR_CODE = "pave.error.code"
TAG_FAILED_STEP = "pave.failed_step"
TAG_FROM_STEP = "pave.from_step"
TAG_CACHED_STEPS = "pave.steps.cached"
TAG_EXECUTOR = "pave.executor"  # where the steps ran: local, or ray (with the cluster address)
TAG_MODEL_NAME = "pave.model.name"
TAG_MODEL_VERSION = "pave.model.version"
TAG_GATES = "pave.gates"
TAG_REPRODUCES = "pave.reproduces"
TAG_PRIMARY_METRIC = "pave.metrics.primary"  # metrics.primary of the spec the run ran

ENV_LOCK_ARTIFACT = "env/requirements.lock"


@dataclass(frozen=True)
class GitInfo:
    """Where the project's code came from."""

    commit: str
    dirty: bool
    root: Path
    path: str  # the project folder relative to ``root`` ("." at the root)


def git_info(project_dir: Path) -> GitInfo | None:
    """The git commit of ``project_dir``, or None when it is not in a git repository (or no git)."""
    try:
        root = _git(project_dir, "rev-parse", "--show-toplevel")
        commit = _git(project_dir, "rev-parse", "HEAD")
        status = _git(project_dir, "status", "--porcelain", "--untracked-files=normal", "--", ".")
    except (OSError, subprocess.CalledProcessError):
        return None
    root_path = Path(root).resolve()
    relative = project_dir.resolve().relative_to(root_path).as_posix()
    return GitInfo(commit=commit, dirty=bool(status.strip()), root=root_path, path=relative or ".")


def _git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True, timeout=30)
    return done.stdout.strip()


def environment_lock() -> list[str]:
    """Every installed distribution as ``name==version``, sorted: a ``pip freeze`` without pip.

    Reading every distribution's metadata takes about half a second, so what each folder on
    ``sys.path`` holds is kept while the folder is unchanged (installing or removing a package
    changes the modification time of the folder it lands in): a tuning's trials read it once. Kept
    per folder, not for ``sys.path`` as a whole, which changes whenever a run puts its project
    folder first (``pave tune`` on Ray runs trials in threads, so it always differed: every trial
    read every distribution again, 0.24 CPU-s of each).
    """
    seen: dict[str, str] = {}
    for entry in list(sys.path):  # another thread may add or remove its project folder meanwhile
        for name, line in _distributions_in(entry):
            seen.setdefault(name, line)  # the first on sys.path is the one imported
    return sorted(seen.values())


_FOLDERS: dict[str, tuple[Any, tuple[tuple[str, str], ...]]] = {}  # folder -> (its state, its dists)


def _distributions_in(entry: str) -> tuple[tuple[str, str], ...]:
    """(normalised name, ``name==version``) of the distributions installed in one ``sys.path`` entry."""
    folder = os.path.abspath(entry or ".")
    try:  # the folder's state: its time and the names of its metadata folders (with their versions)
        state = (os.stat(folder).st_mtime_ns, sorted(n for n in os.listdir(folder) if n.endswith(_INFO)))
    except OSError:  # a missing entry (python311.zip) or not a folder holds nothing
        return ()
    cached = _FOLDERS.get(folder)
    if cached is not None and cached[0] == state:
        return cached[1]
    found: list[tuple[str, str]] = []
    for dist in importlib.metadata.distributions(path=[folder]):
        name = dist.metadata["Name"]
        if name:
            found.append((_normalise(name), f"{_normalise(name)}=={dist.version}"))
    _FOLDERS[folder] = (state, tuple(found))
    return tuple(found)


_INFO = (".dist-info", ".egg-info")


def environment_hash(lock: list[str]) -> str:
    """sha256 of the lock's lines."""
    return hashlib.sha256("\n".join(lock).encode()).hexdigest()


def installed_version(distribution: str) -> str | None:
    """The installed version of ``distribution``, or None."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _normalise(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


# --- listing ---------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    """One run of a project, as ``pave runs`` and the API show it."""

    run_id: str
    status: str
    start_time: int | None
    end_time: int | None
    metrics: dict[str, float]
    params: dict[str, str]
    git_commit: str | None
    git_dirty: bool | None
    data_versions: dict[str, str]
    model_name: str | None
    model_version: str | None
    gates: str | None
    error: str | None
    primary_metric: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "tags"}


def run_summary(run: Any) -> RunSummary:
    """A :class:`RunSummary` of an ``mlflow.entities.Run``."""
    tags: dict[str, str] = dict(run.data.tags)
    dirty = tags.get(TAG_GIT_DIRTY)
    return RunSummary(
        run_id=run.info.run_id,
        status=run.info.status,
        start_time=run.info.start_time,
        end_time=run.info.end_time,
        metrics=dict(run.data.metrics),
        params=dict(run.data.params),
        git_commit=tags.get(TAG_GIT_COMMIT),
        git_dirty=None if dirty is None else dirty == "true",
        data_versions={
            k.removeprefix(TAG_DATA_PREFIX): v for k, v in tags.items() if k.startswith(TAG_DATA_PREFIX)
        },
        model_name=tags.get(TAG_MODEL_NAME),
        model_version=tags.get(TAG_MODEL_VERSION),
        gates=tags.get(TAG_GATES),
        error=tags.get(TAG_ERROR),
        primary_metric=tags.get(TAG_PRIMARY_METRIC),
        tags=tags,
    )


def list_runs(project: str, *, tracking_uri: str, max_results: int = 50) -> list[RunSummary]:
    """The project's runs, newest first (empty when the project never ran)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(project)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id], order_by=["attributes.start_time DESC"], max_results=max_results
    )
    return [run_summary(r) for r in runs]


def resolve_run_id(prefix: str, *, tracking_uri: str) -> str:
    """The full id of the one run whose id starts with ``prefix`` (``pave runs`` shows 12 characters).

    Only the runs the caller may see are searched (the platform filters the experiments).

    Raises:
        InvalidInput: not hexadecimal, shorter than 4 characters, or the start of several runs' ids.
        NotFound: no run's id starts with it.
    """
    from mlflow.tracking import MlflowClient

    text = prefix.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{4,32}", text):
        raise InvalidInput(
            f"{prefix!r} is not a run id: expected at least 4 of its hexadecimal characters",
            hint="copy one from `pave runs PROJECT`",
        )
    if len(text) == 32:
        return text
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [e.experiment_id for e in client.search_experiments(max_results=1000)]
    found = (
        client.search_runs(experiments, filter_string=f"attributes.run_id LIKE '{text}%'", max_results=3)
        if experiments
        else []
    )
    if not found:
        raise NotFound(f"no run's id starts with {text}", hint="list runs with `pave runs PROJECT`")
    if len(found) > 1:
        ids = ", ".join(r.info.run_id for r in found)
        raise InvalidInput(f"{text} is the start of several runs' ids ({ids})", hint="give more characters")
    return str(found[0].info.run_id)


def get_run(run_id: str, *, tracking_uri: str) -> Any:
    """The MLflow run ``run_id``.

    Raises:
        NotFound: no such run.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    try:
        return MlflowClient(tracking_uri=tracking_uri).get_run(run_id)
    except MlflowException as exc:
        raise NotFound(f"run {run_id} not found", hint="list runs with `pave runs`") from exc
