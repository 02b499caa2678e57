"""A run's side in MLflow: the project's experiment, the names of what a run records, batched
writes, and the record of a failed run.

What :mod:`pave.pipelines.project` writes and what the platform reads back from a run
(:mod:`pave.pipelines.reproduction` restores the spec and the code snapshot; monitoring reads the
profile): the artifact paths and tags below. A failed run keeps its cause as tags (``pave.error``,
its code, the failed step), ``error.json`` and the step logs, and ends FAILED (KILLED on Ctrl-C);
an MLflow request that found no answer becomes :class:`~pave.errors.Unavailable`.
"""

from __future__ import annotations

import json
import re
import time
import traceback
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pave.config import Settings, mask_url
from pave.errors import PaveError, Unavailable
from pave.pipelines.engine import StepRecord
from pave.pipelines.errors import PipelineStepFailed
from pave.pipelines.spec import ProjectSpec
from pave.tracking import lineage as L

TAG_SNAPSHOT = "pave.code.snapshot"  # sha256 of the run's code archive in the object store

SPEC_ARTIFACT = "pave/spec.json"
STEPS_ARTIFACT = "pave/steps.json"  # each step: status, node, start and end, CPU-seconds, peak memory
PROFILE_ARTIFACT = "data/profile.json"
VALIDATION_ARTIFACT = "data/validation.json"
VERSIONS_ARTIFACT = "data/versions.json"
ERROR_ARTIFACT = "error.json"


def ensure_experiment(client: Any, spec: ProjectSpec, tracking_uri: str, settings: Settings) -> str:
    """The id of the experiment named after the project, created when missing (its artifacts under
    Pave's artifact root when the tracking URI is a database, which has no artifact proxy)."""
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


def flatten_params(spec: ProjectSpec) -> dict[str, str]:
    """Step params as MLflow params ``<step>.<param>`` (values as text), plus ``seed``."""
    out = {"seed": str(spec.seed)}
    for step in spec.steps:
        for key, value in step.params.items():
            text = value if isinstance(value, str) else json.dumps(value, default=repr)
            out[f"{step.name}.{key}"] = text[:6000]
    return out


def log_batch(
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


def log_steps(steps: list[StepRecord]) -> None:
    """The steps' records (:data:`STEPS_ARTIFACT`) on the active run."""
    import mlflow

    mlflow.log_dict({"steps": [s.to_dict() for s in steps]}, STEPS_ARTIFACT)


def as_outage(exc: BaseException, tracking_uri: str) -> Unavailable | None:
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


def record_failure(client: Any, run_id: str, exc: BaseException, log_dir: Path) -> None:
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
        lambda: log_dir_artifacts(client, run_id, log_dir),
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


def log_dir_artifacts(client: Any, run_id: str, log_dir: Path) -> None:
    """The steps' captured logs, under ``logs/`` of the run, when there are any."""
    if log_dir.is_dir() and any(log_dir.iterdir()):
        client.log_artifacts(run_id, str(log_dir), "logs")
