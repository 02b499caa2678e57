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

Dataset versions and code snapshots go to an :class:`~pave.data.objects.ObjectStore`: the
platform's routes for a client (``pave run``), the store itself for code with direct access.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
import traceback
import warnings
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
from pave.pipelines.modules import local_top_level_names, project_imports, resolve
from pave.pipelines.snapshot import ARCHIVE, make_snapshot
from pave.pipelines.spec import ProjectSpec
from pave.pipelines.spec_file import load_spec
from pave.registry import fairness, flavors
from pave.registry.gates import GateResult, all_passed, check_gate_metrics, evaluate_gates
from pave.registry.versions import CANDIDATE, champion_metrics, register_version, version_with_tag
from pave.storage import open_storage
from pave.tracking import lineage as L
from pave.tracking import stores

TAG_SNAPSHOT = "pave.code.snapshot"  # sha256 of the run's code archive in the object store

SPEC_ARTIFACT = "pave/spec.json"
STEPS_ARTIFACT = "pave/steps.json"  # each step: status, node, start and end, CPU-seconds, peak memory
PROFILE_ARTIFACT = "data/profile.json"
VALIDATION_ARTIFACT = "data/validation.json"
VERSIONS_ARTIFACT = "data/versions.json"
GATES_ARTIFACT = "gates.json"
ERROR_ARTIFACT = "error.json"
TAG_MODEL_KEY = "pave.model.key"  # on a model version: what makes two runs' models the same


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

    return _experiment(mlflow.MlflowClient(tracking_uri=tracking_uri), spec, tracking_uri, settings)


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
        experiment_id = _experiment(client, spec, tracking_uri, settings)
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
        _log_batch(client, run_id, params=params, tags={TAG_SNAPSHOT: result.code_snapshot or ""})
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
        result.metrics = _metrics(spec, pipeline)
        if spec.fairness is not None and spec.model is not None:
            source = str(spec.fairness.data_from or spec.model.input_example_from)
            report = fairness.evaluate_model(
                spec.fairness, pipeline.output(spec.model.step), pipeline.output(source), source
            )
            mlflow.log_dict(report, fairness.FAIRNESS_ARTIFACT)
            result.metrics.update({k: v for k, v in report["metrics"].items() if v is not None})
        _log_batch(
            client, run_id, metrics=result.metrics, tags={L.TAG_CACHED_STEPS: ",".join(pipeline.cached)}
        )
        _model_and_gates(spec, pipeline, client, result, register, project, settings)
    except BaseException as caught:
        error = _outage(caught, tracking_uri) or caught
        if isinstance(error, Unavailable):  # the object store, MLflow or the platform went away
            error.hint = _resume_hint(error.hint, project, from_step)
        _fail(client, run_id, error, log_dir)
        if isinstance(error, PaveError):
            error.run_id = run_id  # type: ignore[attr-defined]
            if isinstance(error.details, dict):
                error.details.setdefault("run_id", run_id)
            elif error.details is None:
                error.details = {"run_id": run_id}
        if error is caught:
            raise
        raise error from caught
    _log_dir_artifacts(client, run_id, log_dir)
    mlflow.end_run("FINISHED")
    result.status = "FINISHED"
    return result


def _outage(exc: BaseException, tracking_uri: str) -> Unavailable | None:
    """An MLflow request that found no answer (the platform, or the object store behind its
    artifact proxy, is down: MLflow gave up after its retries) as Unavailable; None otherwise."""
    from mlflow.exceptions import MlflowException

    message = str(exc)
    if not (isinstance(exc, MlflowException) and message.startswith("API request to ")):
        return None
    artifact = re.search(r"/artifacts/(?:[^/ ]+/)*?artifacts/(\S+?) failed with", message)
    status = re.search(r"too many (\d{3}) error responses", message)
    what = f"the run's artifact {artifact.group(1)}" if artifact else "the run"
    answer = f"answered {status.group(1)} to every try" if status else "did not answer"
    return Unavailable(
        f"{what} was not stored: MLflow at {mask_url(tracking_uri)} {answer}",
        hint="the platform or its object store is down (`pave status` says which)",
    )


def _resume_hint(hint: str | None, project: Path, from_step: str | None) -> str:
    """What to do after an outage: fix it, then the same command (finished steps are cached)."""
    again = f"pave run {project}" + (f" --from-step {from_step}" if from_step else "")
    first = f"{hint}; then" if hint else "when it is back,"
    return f"{first} run `{again}` again (the steps that finished come from the cache)"


def flatten_params(spec: ProjectSpec) -> dict[str, str]:
    """Step params as MLflow params ``<step>.<param>`` (values as text), plus ``seed``."""
    out = {"seed": str(spec.seed)}
    for step in spec.steps:
        for key, value in step.params.items():
            text = value if isinstance(value, str) else json.dumps(value, default=repr)
            out[f"{step.name}.{key}"] = text[:6000]
    return out


def _experiment(client: Any, spec: ProjectSpec, tracking_uri: str, settings: Settings) -> str:
    experiment = client.get_experiment_by_name(spec.name)
    if experiment is not None:
        return str(experiment.experiment_id)
    location = None
    if not tracking_uri.startswith(("http://", "https://")):
        # A direct database URI has no artifact proxy: keep artifacts under Pave's artifact root.
        root = settings.artifacts
        location = (
            root.rstrip("/") + f"/mlflow/{spec.name}"
            if "://" in root
            else ((Path(root).expanduser().resolve() / "mlflow" / spec.name).as_uri())
        )
    from mlflow.exceptions import MlflowException

    try:
        return str(
            client.create_experiment(spec.name, artifact_location=location, tags={L.TAG_PROJECT: spec.name})
        )
    except MlflowException:  # created meanwhile by a concurrent run
        return str(client.get_experiment_by_name(spec.name).experiment_id)


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


def _log_batch(
    client: Any,
    run_id: str,
    *,
    params: Mapping[str, str] | None = None,
    metrics: Mapping[str, float] | None = None,
    tags: Mapping[str, str] | None = None,
) -> None:
    """Params, metrics and tags in one write (a tuning trial's run makes few: each is a commit)."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()],
        params=[Param(k, str(v)) for k, v in (params or {}).items()],
        tags=[RunTag(k, v) for k, v in (tags or {}).items()],
    )


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
            _log_steps(result.steps)
        raise
    result.steps = pipeline.steps
    _log_steps(result.steps)
    return pipeline


def _log_steps(steps: list[StepRecord]) -> None:
    import mlflow

    mlflow.log_dict({"steps": [s.to_dict() for s in steps]}, STEPS_ARTIFACT)


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


def _metrics(spec: ProjectSpec, pipeline: PipelineResult) -> dict[str, float]:
    metrics = dict(pipeline.metrics)
    if spec.metrics is None:
        return metrics
    returned = pipeline.output(spec.metrics.step)
    if not isinstance(returned, Mapping):
        raise InvalidInput(
            f"metrics step {spec.metrics.step} returned a {type(returned).__name__}, not a dict of numbers",
            hint=f"make {spec.metrics.step} return e.g. {{'{spec.metrics.primary}': 0.91}}",
        )
    for key, value in returned.items():
        try:
            metrics[str(key)] = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"metrics step {spec.metrics.step}: metric {key} is {value!r}, not a number",
                hint="return only numbers in the metrics dict; log other things with ctx.logger",
            ) from exc
    if spec.metrics.primary not in metrics:
        raise InvalidInput(
            f"the primary metric {spec.metrics.primary} was not logged "
            f"(got: {', '.join(sorted(metrics)) or 'none'})",
            hint=f"return it from {spec.metrics.step}, or fix metrics.primary in pave.yaml",
        )
    return metrics


def _model_and_gates(
    spec: ProjectSpec,
    pipeline: PipelineResult,
    client: Any,
    result: RunResult,
    register: bool,
    project: Path,
    settings: Settings,
) -> None:
    import mlflow

    if spec.model is None:
        result.gates_passed = True
        return
    check_gate_metrics(spec.gates, result.metrics)
    name = spec.model_name
    champion = champion_metrics(client, name) if any(g.compare_to for g in spec.gates) else None
    direction = spec.metrics.direction if spec.metrics else "maximize"
    result.gates = evaluate_gates(
        spec.gates,
        result.metrics,
        direction=direction,
        champion=champion[1] if champion else None,
        champion_version=champion[0] if champion else None,
    )
    result.gates_passed = all_passed(result.gates)
    mlflow.log_dict(
        {"passed": result.gates_passed, "gates": [g.to_dict() for g in result.gates]}, GATES_ARTIFACT
    )
    mlflow.set_tag(L.TAG_GATES, "passed" if result.gates_passed else "failed")
    model_key = _model_key(spec, pipeline, result.env_hash)
    cached = pipeline.record(spec.model.step).status == "cached"  # the very output a version was made of
    same = version_with_tag(client, name, TAG_MODEL_KEY, model_key) if register and cached else None
    if same is not None:
        result.model_uri, result.reused = same.source, True
        result.warnings.append(
            f"nothing changed since version {same.version} (run {same.run_id}): no new version registered"
        )
        _set_version(client, result, name, str(same.version))
        return
    model = pipeline.output(spec.model.step)
    example = None
    if spec.model.input_example_from:
        example = flavors.input_example(pipeline.output(spec.model.input_example_from))
        if example is None:
            result.warnings.append(
                f"no input example found in the output of {spec.model.input_example_from} (see docs/spec.md)"
            )
    with _pickle_project_by_value(project):
        info = flavors.log_model(spec.model.flavor, model, example=example)
    result.model_uri = info.model_uri
    _log_importances(spec, pipeline, info.model_uri, result, settings)
    if not register:
        return
    run_id = result.run_id
    tags = {
        "pave.run_id": run_id,
        L.TAG_PROJECT: spec.name,
        L.TAG_ENV_HASH: result.env_hash,
        L.TAG_GATES: "passed" if result.gates_passed else "failed",
        "pave.profile": f"runs:/{run_id}/{PROFILE_ARTIFACT}",
        **{f"{L.TAG_DATA_PREFIX}{k}": v for k, v in result.data_versions.items()},
        **({L.TAG_GIT_COMMIT: result.git_commit} if result.git_commit else {}),
        **({L.TAG_GIT_DIRTY: str(result.git_dirty).lower()} if result.git_dirty is not None else {}),
        TAG_MODEL_KEY: model_key,
    }
    version = register_version(
        client, name=name, model_uri=info.model_uri, run_id=run_id, model_id=info.model_id, tags=tags
    )
    _set_version(client, result, name, str(version.version))


def _log_importances(
    spec: ProjectSpec, pipeline: PipelineResult, model_uri: str, result: RunResult, settings: Settings
) -> None:
    """Global importances (mean |SHAP| per feature) of the logged model on the reference sample."""
    import mlflow

    from pave.serving.attributions import IMPORTANCES_ARTIFACT, REFERENCE_ROWS, importances_of_uri

    source = spec.model.input_example_from if spec.model else None
    rows = flavors.input_example(pipeline.output(source), rows=REFERENCE_ROWS) if source else None
    if rows is None:
        return
    try:
        found = importances_of_uri(
            model_uri,
            rows,
            tracking_uri=mlflow.get_tracking_uri(),
            home=settings.home,
            envs_dir=settings.envs_dir,
        )
    except (PaveError, ValueError, TypeError) as exc:  # a model SHAP cannot explain still registers
        result.warnings.append(f"no global importances: {exc}")
        return
    mlflow.log_dict(found, IMPORTANCES_ARTIFACT)


def _set_version(client: Any, result: RunResult, name: str, version: str) -> None:
    """Link the run to its model version; the gates passed -> alias ``candidate`` on it."""
    import mlflow

    result.model_name, result.model_version = name, version
    mlflow.set_tags({L.TAG_MODEL_NAME: name, L.TAG_MODEL_VERSION: version})
    if result.gates_passed:
        client.set_registered_model_alias(name, CANDIDATE, version)
        result.alias = CANDIDATE


def _model_key(spec: ProjectSpec, pipeline: PipelineResult, env_hash: str) -> str:
    """What makes two runs' models the same: the model step's cache key (its code, params, seed and
    inputs), where its input example comes from, its flavor and the environment it pins."""
    assert spec.model is not None
    example = spec.model.input_example_from
    payload = {
        "model": pipeline.record(spec.model.step).key,
        "example": pipeline.record(example).key if example else None,
        "flavor": spec.model.flavor,
        "env": env_hash,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@contextmanager
def _pickle_project_by_value(project: Path) -> Iterator[None]:
    """Pickle the project's own classes (a PythonModel in steps.py) into the model, not by reference."""
    import sys

    import cloudpickle

    local = local_top_level_names(project)
    modules = [m for n, m in list(sys.modules.items()) if n.partition(".")[0] in local and m is not None]
    registered = []
    for module in modules:
        try:
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
        except ValueError:
            continue
    try:
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)


def _fail(client: Any, run_id: str, exc: BaseException, log_dir: Path) -> None:
    """Record the cause on the run and end it FAILED; never hide the original error.

    The tags go first: they live in the tracking store, which may answer when the object store
    holding ``error.json`` and the logs does not (the failure may be that store's outage).
    """
    import mlflow

    body: dict[str, Any] = {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, PaveError):
        body.update({"message": exc.message, "hint": exc.hint, "code": exc.code, "details": exc.details})
    body["traceback"] = "".join(traceback.format_exception(exc))
    records = [
        lambda: client.set_tag(run_id, L.TAG_ERROR, (body["message"] or type(exc).__name__)[:4000]),
        lambda: client.set_tag(run_id, L.TAG_ERROR_CODE, body.get("code", "internal")),
        lambda: (
            client.set_tag(run_id, L.TAG_FAILED_STEP, exc.step)
            if isinstance(exc, PipelineStepFailed)
            else None
        ),
        lambda: client.log_text(run_id, json.dumps(body, indent=2, default=str), ERROR_ARTIFACT),
        lambda: _log_dir_artifacts(client, run_id, log_dir),
    ]
    unrecorded = []
    try:
        for record in records:
            try:
                record()
            except Exception as error:  # recorded as far as the stores allow; the cause is raised
                unrecorded.append(str(error))
        if unrecorded:
            warnings.warn(
                f"run {run_id}: {len(unrecorded)} part(s) of the failure's record could not be stored "
                f"(first: {unrecorded[0][:200]})",
                stacklevel=2,
            )
    finally:
        mlflow.end_run("KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED")


def _log_dir_artifacts(client: Any, run_id: str, log_dir: Path) -> None:
    if log_dir.is_dir() and any(log_dir.iterdir()):
        client.log_artifacts(run_id, str(log_dir), "logs")
