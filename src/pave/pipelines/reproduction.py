"""Reproducing a past run: its code snapshot, spec, params, seed and data versions brought back and run again.

:func:`check_out` brings a run back into a folder (``pave run --from-run``); :func:`reproduce`
runs it again through :mod:`pave.pipelines.project`, with no cache and nothing registered, and
compares the metrics (``pave reproduce``).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from pave.config import Settings
from pave.data.errors import DataFileMissing
from pave.data.objects import ObjectStore
from pave.data.versioning import stored_file
from pave.errors import NotFound
from pave.pipelines.mlflow_run import SPEC_ARTIFACT, TAG_SNAPSHOT
from pave.pipelines.project import RunResult, _execute, direct_objects
from pave.pipelines.snapshot import restore_snapshot
from pave.pipelines.spec import ProjectSpec
from pave.tracking import lineage as L
from pave.tracking import stores


@dataclass
class MetricDiff:
    original: float | None
    reproduced: float | None

    @property
    def diff(self) -> float | None:
        if self.original is None or self.reproduced is None:
            return None
        return self.reproduced - self.original


@dataclass
class ReproduceResult:
    """A reproduction: the new run and how its metrics compare with the original's."""

    original_run_id: str
    run: RunResult
    metrics: dict[str, MetricDiff]
    identical: bool
    code: str  # "code snapshot <sha>", "git commit <sha> (worktree)" or "current code in <dir>"
    warnings: list[str] = field(default_factory=list)


def reproduce(
    run_id: str,
    *,
    tracking_uri: str,
    settings: Settings,
    project_dir: str | Path | None = None,
    progress: bool = False,
    objects_for: Callable[[str], ObjectStore] | None = None,
) -> ReproduceResult:
    """Re-execute run ``run_id`` from its recorded code snapshot, spec, params, seed and data versions.

    The code is the run's snapshot (any machine that may read the project has it). Runs recorded
    before snapshots existed fall back to their git commit, checked out in a temporary
    ``git worktree``, and then to the current code in ``project_dir`` (with a warning). Steps all
    run (no cache); nothing is registered; the new run is tagged ``pave.reproduces=<run_id>``.

    Args:
        run_id: the run to reproduce, or a unique start of its id (4 characters or more).
        tracking_uri: MLflow tracking URI.
        settings: Pave settings.
        project_dir: where the project is now (only for runs without a snapshot).
        progress: show the live progress display.
        objects_for: the object store of a project, where the run's snapshot and data versions are
            read (default: the object store at ``settings.artifacts``, directly).

    Raises:
        NotFound: no such run, or (without a snapshot) its project folder is gone.
        DataFileMissing: a recorded data version is not in the dataset store.
    """
    run_id = L.resolve_run_id(run_id, tracking_uri=tracking_uri)
    original = L.get_run(run_id, tracking_uri=tracking_uri)
    tags = dict(original.data.tags)
    if not tags.get(L.TAG_PROJECT_DIR) and not tags.get(TAG_SNAPSHOT) and project_dir is None:
        raise NotFound(f"run {run_id} was not made by pave run", hint="reproduce a run listed by `pave runs`")
    project_name = tags.get(L.TAG_PROJECT, "")
    objects = objects_for(project_name) if objects_for is not None else direct_objects(settings)
    with tempfile.TemporaryDirectory(prefix="pave-reproduce-") as tmp:
        checkout = check_out(run_id, Path(tmp), tracking_uri=tracking_uri, objects=objects, tags=tags)
        notes: list[str] = []
        code_at = (  # a folder path the run recorded is looked at only for runs without a snapshot
            contextlib.nullcontext((checkout.code_dir, checkout.code))
            if checkout.code_dir is not None
            else _code_at(
                Path(project_dir or tags.get(L.TAG_PROJECT_DIR) or tmp).resolve(), tags, Path(tmp), notes
            )
        )
        with code_at as (code_dir, code), stores.mlflow_uris(tracking_uri):
            run = _execute(
                code_dir,
                checkout.spec,
                tracking_uri=tracking_uri,
                settings=settings,
                from_step=None,
                progress=progress,
                cache=False,
                objects=objects,
                data_files=checkout.data_files,
                extra_tags={L.TAG_REPRODUCES: run_id, L.TAG_PROJECT_DIR: tags.get(L.TAG_PROJECT_DIR, "")},
                register=False,
                notes=notes,
            )
    before = dict(original.data.metrics)
    diffs = {k: MetricDiff(before.get(k), run.metrics.get(k)) for k in sorted(set(before) | set(run.metrics))}
    identical = all(d.diff == 0 for d in diffs.values())
    return ReproduceResult(
        original_run_id=run_id, run=run, metrics=diffs, identical=identical, code=code, warnings=notes
    )


@dataclass
class Checkout:
    """A past run brought back into a folder: its spec, its code (when snapshotted) and its data."""

    spec: ProjectSpec
    code_dir: Path | None  # None: the run has no snapshot
    code: str
    data_files: dict[str, Path]


def check_out(
    run_id: str,
    folder: Path,
    *,
    tracking_uri: str,
    objects: ObjectStore,
    tags: Mapping[str, str] | None = None,
) -> Checkout:
    """Bring run ``run_id`` back into ``folder``: spec, code snapshot in ``folder/project`` with the
    recorded data versions at their declared paths (so ``pave run`` there runs it again).

    Raises:
        NotFound: no such run.
        DataFileMissing: a recorded data version is not in the store.
        ObjectMissing: the recorded snapshot is not in the store.
    """
    import mlflow

    from pave.data.paths import project_path

    tags = dict(tags if tags is not None else L.get_run(run_id, tracking_uri=tracking_uri).data.tags)
    client = mlflow.MlflowClient(tracking_uri=tracking_uri)
    spec_file = client.download_artifacts(run_id, SPEC_ARTIFACT, str(folder))
    spec = ProjectSpec.model_validate(json.loads(Path(spec_file).read_text(encoding="utf-8")))
    snapshot = tags.get(TAG_SNAPSHOT)
    code_dir = restore_snapshot(objects, snapshot, folder / "project") if snapshot else None
    data_files: dict[str, Path] = {}
    for name, source in spec.data.sources.items():
        sha = tags.get(f"{L.TAG_DATA_PREFIX}{name}")
        if sha is None:
            raise DataFileMissing(f"run {run_id} recorded no version of data source {name}")
        fetched = stored_file(sha, objects=objects, folder=folder / "data" / name)
        if code_dir is not None and source.path is not None:  # where the project's steps expect it
            target = project_path(code_dir, source.path, must_exist=False)
            target.parent.mkdir(parents=True, exist_ok=True)
            fetched = fetched.replace(target)
        data_files[name] = fetched
    commit = tags.get(L.TAG_GIT_COMMIT)
    code = (
        f"code snapshot {snapshot[:12]}" + (f" of git commit {commit[:12]}" if commit else "")
        if snapshot
        else ""
    )
    return Checkout(spec=spec, code_dir=code_dir, code=code, data_files=data_files)


@contextmanager
def _code_at(
    project: Path, tags: Mapping[str, str], tmp: Path, notes: list[str]
) -> Iterator[tuple[Path, str]]:
    commit = tags.get(L.TAG_GIT_COMMIT)
    git = L.git_info(project) if project.is_dir() else None
    if commit and git and _has_commit(git.root, commit):
        worktree = tmp / "worktree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(worktree), commit],
            cwd=git.root,
            check=True,
            capture_output=True,
            timeout=120,
        )
        if tags.get(L.TAG_GIT_DIRTY) == "true":
            notes.append(f"the original run had uncommitted changes: the code at {commit[:12]} may differ")
        try:
            yield worktree / tags.get(L.TAG_GIT_PATH, "."), f"git commit {commit} (worktree)"
        finally:
            subprocess.run(
                ["git", "worktree", "remove", "--force", str(worktree)],
                cwd=git.root,
                capture_output=True,
                timeout=120,
            )
            shutil.rmtree(worktree, ignore_errors=True)
        return
    if not project.is_dir():
        raise NotFound(
            f"the project folder {project} of this run is gone",
            hint="pass the project folder: pave reproduce RUN_ID --project-dir PATH",
        )
    why = "the run has no git commit" if not commit else f"commit {commit[:12]} is not available here"
    notes.append(f"{why}: reproducing with the current code in {project}")
    warnings.warn(notes[-1], stacklevel=3)
    yield project, f"current code in {project}"


def _has_commit(root: Path, commit: str) -> bool:
    done = subprocess.run(
        ["git", "cat-file", "-e", f"{commit}^{{commit}}"], cwd=root, capture_output=True, timeout=30
    )
    return done.returncode == 0
