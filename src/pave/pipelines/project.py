"""Running a whole project: data, steps, MLflow run with lineage, model version, gates, alias.

:func:`execute_project` is what ``pave run`` and the API call (:mod:`pave.pipelines.reproduction`
re-executes a past run from what it recorded). One call is one MLflow run in the experiment named
after the project:

1. lineage tags (git commit and dirty flag, environment hash and lock, seed, template, Pave version)
   and the code snapshot (an archive of the project in the object store, :mod:`pave.pipelines.snapshot`);
2. each data source is read, versioned in the content-addressed store, validated, profiled;
3. the steps run (cached ones are skipped) with their logs captured;
4. metrics are logged; the model is logged with signature, input example and pinned requirements;
5. gates are evaluated; the model is registered as a new version tagged back to the run;
   all gates pass -> alias ``candidate`` moves to it, otherwise no alias moves. A version that
   already holds the same model (tag ``pave.model.key``: the model step's cache key, its flavor
   and the environment) is reused when the model step was cached: a no-op run registers nothing.

Any failure (invalid data, a raising step, a missing file) ends the run FAILED with tag
``pave.error`` and artifact ``error.json``; nothing is registered and no alias moves.

This module holds the run itself: its result, the order of its parts, the snapshot, the data, the
steps and their executor. What it writes to MLflow (the experiment, the record names, the failure
record) is in :mod:`pave.pipelines.mlflow_run`; the metrics, model, gates and registration (4 and
5) in :mod:`pave.pipelines.registration`.

Dataset versions and code snapshots go to an :class:`~pave.data.objects.ObjectStore`: the
platform's routes for a client (``pave run``), the store itself for code with direct access.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pave import telemetry
from pave.config import Settings, mask_url
from pave.data.objects import ObjectStore, StorageObjects
from pave.data.profile import profile_frame
from pave.data.validation import check, validate_frame
from pave.errors import InvalidInput, PaveError, Unavailable
from pave.pipelines.dag import build_dag
from pave.pipelines.datasets import load_sources
from pave.pipelines.engine import PipelineResult, StepRecord, run_pipeline
from pave.pipelines.errors import PipelineStepFailed
from pave.pipelines.executor import Executor, LocalExecutor
from pave.pipelines.mlflow_run import (
    PROFILE_ARTIFACT,
    SPEC_ARTIFACT,
    TAG_SNAPSHOT,
    VALIDATION_ARTIFACT,
    VERSIONS_ARTIFACT,
    as_outage,
    ensure_experiment,
    flatten_params,
    log_batch,
    log_dir_artifacts,
    log_steps,
    record_failure,
)
from pave.pipelines.modules import project_imports, resolve
from pave.pipelines.registration import model_and_gates, run_metrics
from pave.pipelines.snapshot import ARCHIVE, make_snapshot
from pave.pipelines.spec import ProjectSpec
from pave.pipelines.spec_file import load_spec
from pave.registry import fairness
from pave.registry.gates import GateResult
from pave.storage import open_storage
from pave.tracking import lineage as L
from pave.tracking import stores


@dataclass
class RunResult:
    """What one ``pave run`` did. ``gates_passed`` is True when there are no gates."""

    run_id: str
    experiment_id: str
    project: str
    status: str
    metrics: dict[str, float]
    params: dict[str, str]
    steps: list[StepRecord]
    data_versions: dict[str, str]
    validation: list[dict[str, Any]]
    model_name: str | None
    model_version: str | None
    model_uri: str | None
    gates: list[GateResult]
    gates_passed: bool
    alias: str | None
    git_commit: str | None
    git_dirty: bool | None
    env_hash: str
    artifact_uri: str
    log_dir: Path
    code_snapshot: str | None = None
    warnings: list[str] = field(default_factory=list)
    reused: bool = False  # model_version already held this model: nothing new was registered
    fingerprints: dict[str, str] = field(default_factory=dict)  # source -> its fingerprint when read

    @property
    def cached_steps(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "cached"]

    @property
    def ran_steps(self) -> list[str]:
        return [s.name for s in self.steps if s.status == "ran"]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (for the API and ``--json`` output)."""
        out = {k: v for k, v in self.__dict__.items() if k not in ("steps", "gates", "log_dir")}
        out["log_dir"] = str(self.log_dir)
        out["gates"] = [g.to_dict() for g in self.gates]
        out["steps"] = [s.to_dict() for s in self.steps]
        return out


def execute_project(
    project_dir: str | Path,
    *,
    tracking_uri: str,
    settings: Settings,
    from_step: str | None = None,
    params_override: Mapping[str, Any] | None = None,
    progress: bool = True,
    cache: bool = True,
    objects: ObjectStore | None = None,
) -> RunResult:
    """Run the project in ``project_dir`` end to end, as one MLflow run.

    Args:
        project_dir: the folder with ``pave.yaml``.
        tracking_uri: the MLflow tracking (and registry) URI, e.g. ``http://127.0.0.1:8000/mlflow``
            or ``sqlite:////path/mlflow.db``.
        settings: Pave settings (``home`` holds the step cache and logs, ``artifacts`` the datasets).
        from_step: re-run this step and everything downstream, reusing the cache above it.
        params_override: ``{"step.param": value}``; string values are parsed as YAML (``"0.5"`` -> 0.5).
        progress: show the live progress display (turn off for tests and non-terminals).
        cache: False runs every step and stores nothing.
        objects: where dataset versions and the code snapshot go (default: the object store at
            ``settings.artifacts``, written directly).

    Raises:
        NotFound / InvalidInput: no or invalid ``pave.yaml``, unknown ``from_step`` or override
            (before any MLflow run exists).
        DataFileMissing, DataValidationError, PipelineStepFailed, PaveError: the run failed; it is
            recorded FAILED in MLflow and the error carries ``run_id``.
    """
    project = Path(project_dir).resolve()
    spec = apply_overrides(load_spec(project), params_override or {})
    with stores.mlflow_uris(tracking_uri):
        return _execute(
            project,
            spec,
            tracking_uri=tracking_uri,
            settings=settings,
            from_step=from_step,
            progress=progress,
            cache=cache,
            objects=objects or direct_objects(settings),
        )


def direct_objects(settings: Settings) -> ObjectStore:
    """The object store at ``settings.artifacts``, written without going through the platform."""
    return StorageObjects(open_storage(settings.artifacts))


def run_spec(
    project_dir: str | Path,
    spec: ProjectSpec,
    *,
    tracking_uri: str,
    settings: Settings,
    tags: Mapping[str, str] | None = None,
    register: bool = True,
    progress: bool = False,
    objects: ObjectStore | None = None,
    pinned: Mapping[str, Mapping[str, str]] | None = None,
    executor: Executor | None = None,
) -> RunResult:
    """Run a spec already loaded (and changed: a tuning trial's params) as one MLflow run.

    What ``pave tune`` calls for each trial (``register=False``) and for the best trial's model,
    which is logged, gated and registered as by :func:`execute_project`. ``pinned`` holds the
    versions of the sources read once for the whole study (:func:`pave.pipelines.datasets.pin_sources`);
    ``executor``, one already open (a tuning's Ray executor, shared by its trials), instead of the
    one the settings name.
    """
    with stores.mlflow_uris(tracking_uri):
        return _execute(
            Path(project_dir).resolve(),
            spec,
            tracking_uri=tracking_uri,
            settings=settings,
            from_step=None,
            progress=progress,
            cache=True,
            extra_tags=tags,
            register=register,
            objects=objects or direct_objects(settings),
            pinned=pinned,
            executor=executor,
        )


def project_experiment(spec: ProjectSpec, *, tracking_uri: str, settings: Settings) -> str:
    """The id of the project's MLflow experiment (created when missing)."""
    import mlflow

    return ensure_experiment(mlflow.MlflowClient(tracking_uri=tracking_uri), spec, tracking_uri, settings)


def apply_overrides(spec: ProjectSpec, overrides: Mapping[str, Any]) -> ProjectSpec:
    """A copy of ``spec`` with ``{"step.param": value}`` applied (``seed`` overrides the seed)."""
    if not overrides:
        return spec
    data = spec.model_dump(by_alias=True)
    names = {s["name"]: s for s in data["steps"]}
    for target, raw in overrides.items():
        value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        if target == "seed":
            data["seed"] = int(value)
            continue
        step, dot, param = target.partition(".")
        if not dot or not param or step not in names:
            raise InvalidInput(
                f"cannot override {target!r}: expected <step>.<param> with a step of {spec.name}",
                hint=f"steps: {spec.step_names()}, e.g. --param {spec.steps[-1].name}.<param>=<value>",
            )
        names[step]["params"][param] = value
    return ProjectSpec.model_validate(data)


def _execute(project: Path, spec: ProjectSpec, **options: Any) -> RunResult:
    """:func:`_run`, in the span of the pipeline run when tracing is on (its steps' spans under it)."""
    with telemetry.span("pipeline run", {"pave.project": spec.name}) as span:
        result = _run(project, spec, **options)  # a failure ends the span with its exception
        if span is not None:
            span.set_attribute("pave.run_id", result.run_id)
            span.set_attribute("pave.run_status", result.status)
        return result


def _run(
    project: Path,
    spec: ProjectSpec,
    *,
    tracking_uri: str,
    settings: Settings,
    from_step: str | None,
    progress: bool,
    cache: bool,
    objects: ObjectStore,
    data_files: Mapping[str, Path] | None = None,
    extra_tags: Mapping[str, str] | None = None,
    register: bool = True,
    notes: list[str] | None = None,
    pinned: Mapping[str, Mapping[str, str]] | None = None,
    executor: Executor | None = None,
) -> RunResult:
    import mlflow

    dag = build_dag(spec.steps, spec.data.sources)  # definition errors come before any run exists
    if from_step is not None and from_step not in dag.upstream:
        raise InvalidInput(f"--from-step {from_step}: no such step", hint=f"steps: {spec.step_names()}")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("GIT_PYTHON_REFRESH", "quiet")
    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    from mlflow.exceptions import MlflowException

    try:
        experiment_id = ensure_experiment(client, spec, tracking_uri, settings)
    except MlflowException as exc:
        raise Unavailable(
            f"MLflow tracking at {mask_url(tracking_uri)} did not answer: {exc.message[:300]}",
            hint="start the control plane: `pave up` (or check the tracking URI and MLFLOW_TRACKING_TOKEN)",
        ) from exc

    git = L.git_info(project)
    lock = L.environment_lock()
    env_hash = L.environment_hash(lock)
    tags = {
        L.TAG_PROJECT: spec.name,
        L.TAG_PROJECT_DIR: str(project),
        L.TAG_ENV_HASH: env_hash,
        L.TAG_SEED: str(spec.seed),
        L.TAG_VERSION: L.installed_version("pave") or "unknown",
        **({L.TAG_TEMPLATE: f"{spec.template.name}=={spec.template.version}"} if spec.template else {}),
        **({L.TAG_FROM_STEP: from_step} if from_step else {}),
        **({L.TAG_PRIMARY_METRIC: spec.metrics.primary} if spec.metrics else {}),
        **(
            {L.TAG_GIT_COMMIT: git.commit, L.TAG_GIT_DIRTY: str(git.dirty).lower(), L.TAG_GIT_PATH: git.path}
            if git
            else {}
        ),
        **(extra_tags or {}),
    }
    params = flatten_params(spec)
    run = mlflow.start_run(experiment_id=experiment_id, tags=tags)
    run_id = run.info.run_id
    log_dir = settings.home / "logs" / spec.name / run_id
    result = RunResult(
        run_id=run_id,
        experiment_id=experiment_id,
        project=spec.name,
        status="RUNNING",
        metrics={},
        params=params,
        steps=[],
        data_versions={},
        validation=[],
        model_name=None,
        model_version=None,
        model_uri=None,
        gates=[],
        gates_passed=False,
        alias=None,
        git_commit=git.commit if git else None,
        git_dirty=git.dirty if git else None,
        env_hash=env_hash,
        artifact_uri=run.info.artifact_uri,
        log_dir=log_dir,
        warnings=list(notes or []),
    )
    try:
        mlflow.log_text("\n".join(lock) + "\n", L.ENV_LOCK_ARTIFACT)
        mlflow.log_dict(spec.model_dump(mode="json", by_alias=True), SPEC_ARTIFACT)
        _snapshot(spec, project, objects, result)
        log_batch(client, run_id, params=params, tags={TAG_SNAPSHOT: result.code_snapshot or ""})
        frames = _load_data(spec, project, objects, data_files, result, pinned or {})
        data_tags = {f"{L.TAG_DATA_PREFIX}{k}": v for k, v in result.data_versions.items()}
        data_tags |= {f"{L.TAG_FINGERPRINT_PREFIX}{k}": v[:5000] for k, v in result.fingerprints.items()}
        if data_tags:
            mlflow.set_tags(data_tags)
        _validate(spec, project, frames, result)
        if frames:
            mlflow.log_dict({name: profile_frame(df) for name, df in frames.items()}, PROFILE_ARTIFACT)
        pipeline = _run_steps(
            spec, project, frames, result, settings, from_step, progress, cache, log_dir, executor
        )
        result.metrics = run_metrics(spec, pipeline)
        if spec.fairness is not None and spec.model is not None:
            source = str(spec.fairness.data_from or spec.model.input_example_from)
            report = fairness.evaluate_model(
                spec.fairness, pipeline.output(spec.model.step), pipeline.output(source), source
            )
            mlflow.log_dict(report, fairness.FAIRNESS_ARTIFACT)
            result.metrics.update({k: v for k, v in report["metrics"].items() if v is not None})
        log_batch(
            client, run_id, metrics=result.metrics, tags={L.TAG_CACHED_STEPS: ",".join(pipeline.cached)}
        )
        model_and_gates(spec, pipeline, client, result, register, project, settings)
    except BaseException as caught:
        error = as_outage(caught, tracking_uri) or caught
        if isinstance(error, Unavailable):  # the object store, MLflow or the platform went away
            error.hint = _resume_hint(error.hint, project, from_step)
        record_failure(client, run_id, error, log_dir)
        if isinstance(error, PaveError):
            error.run_id = run_id  # type: ignore[attr-defined]
            if isinstance(error.details, dict):
                error.details.setdefault("run_id", run_id)
            elif error.details is None:
                error.details = {"run_id": run_id}
        if error is caught:
            raise
        raise error from caught
    log_dir_artifacts(client, run_id, log_dir)
    mlflow.end_run("FINISHED")
    result.status = "FINISHED"
    return result


def _resume_hint(hint: str | None, project: Path, from_step: str | None) -> str:
    """What to do after an outage: fix it, then the same command (finished steps are cached)."""
    again = f"pave run {project}" + (f" --from-step {from_step}" if from_step else "")
    first = f"{hint}; then" if hint else "when it is back,"
    return f"{first} run `{again}` again (the steps that finished come from the cache)"


def _snapshot(spec: ProjectSpec, project: Path, objects: ObjectStore, result: RunResult) -> None:
    """Store the run's code (declared data files left out: they are dataset versions)."""
    from pave.data.versioning import sha256_file

    with tempfile.TemporaryDirectory(prefix="pave-snapshot-") as tmp:
        archive = make_snapshot(
            project,
            Path(tmp) / ARCHIVE,
            skip=[s.path for s in spec.data.sources.values() if s.path is not None],
        )
        sha = sha256_file(archive)
        if not objects.has("code", sha):
            objects.put("code", sha, archive, {"filename": ARCHIVE, "project": spec.name})
    result.code_snapshot = sha


def _load_data(
    spec: ProjectSpec,
    project: Path,
    objects: ObjectStore,
    data_files: Mapping[str, Path] | None,
    result: RunResult,
    pinned: Mapping[str, Mapping[str, str]],
) -> dict[str, Any]:
    import mlflow

    loaded = load_sources(spec, project, objects, data_files=data_files, pinned=pinned)
    result.data_versions.update({name: v.sha256 for name, v in loaded.versions.items()})
    if not data_files:  # a reproduction reads the stored versions, not the sources
        result.fingerprints.update({name: str(v.fingerprint) for name, v in loaded.versions.items()})
    if loaded.versions:
        mlflow.log_dict({v.name: v.to_dict() for v in loaded.versions.values()}, VERSIONS_ARTIFACT)
    return loaded.frames


def _validate(spec: ProjectSpec, project: Path, frames: Mapping[str, Any], result: RunResult) -> None:
    import mlflow

    if spec.data.schema_ref is None or not spec.data.validated:
        return
    with project_imports(project):
        schema = resolve(spec.data.schema_ref, project, what="data.schema")
    result.validation = [validate_frame(frames[name], schema, source=name) for name in spec.data.validated]
    mlflow.log_dict({r["source"]: r for r in result.validation}, VALIDATION_ARTIFACT)
    for report in result.validation:
        check(report)


def _run_steps(
    spec: ProjectSpec,
    project: Path,
    frames: Mapping[str, Any],
    result: RunResult,
    settings: Settings,
    from_step: str | None,
    progress: bool,
    cache: bool,
    log_dir: Path,
    given: Executor | None = None,
) -> PipelineResult:
    try:
        with _executor(settings, project, given) as executor:
            pipeline = run_pipeline(
                spec,
                project,
                sources=frames,
                source_hashes=result.data_versions,
                cache_dir=settings.home / "cache" / spec.name if cache else None,
                log_dir=log_dir,
                from_step=from_step,
                executor=executor,
                progress=progress,
            )
    except PipelineStepFailed as exc:
        if exc.result is not None:
            result.steps = exc.result.steps
            log_steps(result.steps)
        raise
    result.steps = pipeline.steps
    log_steps(result.steps)
    return pipeline


@contextmanager
def _executor(settings: Settings, project: Path, given: Executor | None) -> Iterator[Executor]:
    """The executor the settings name (or ``given``, already open), open for the run; its name is
    tagged on the MLflow run."""
    import mlflow

    if settings.executor == "local":
        mlflow.set_tag(L.TAG_EXECUTOR, "local")
        yield given or LocalExecutor()
        return
    mlflow.set_tag(L.TAG_EXECUTOR, f"ray {settings.executor_address or '(local instance)'}")
    if given is not None:
        yield given
        return
    from pave.integrations.ray import RayExecutor

    with RayExecutor(project, settings.executor_address) as executor:
        yield executor
