"""What a project's retrains re-run: the run its latest ``pave run`` recorded.

``pave run`` records its run (``PUT /api/v1/projects/{p}/source`` with the run id) once it
finished. The control plane checks that the run is the project's, finished, and has a code
snapshot the project stored, and takes the project's ``pave.yaml`` from the run itself (artifact
``pave/spec.json``): its ``retrain`` and ``monitor`` sections drive the schedule and the reaction to
alerts. A retrain restores that run's snapshot and data versions into a fresh job folder
(:mod:`pave.automation.jobs`); no folder on any host is ever recorded or looked at.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.automation.cron import parse_cron
from pave.config import Settings
from pave.errors import InvalidInput, NotFound
from pave.pipelines.spec import ProjectSpec, RetrainSpec
from pave.store.tables import LoopSourceRow, utcnow

SPEC_ARTIFACT = "pave/spec.json"  # written with every run (pave.pipelines.project)
TAG_PROJECT = "pave.project"
TAG_SNAPSHOT = "pave.code.snapshot"
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


def read_run(session: Session, settings: Settings, *, project: str, run_id: str) -> dict[str, Any]:
    """The spec of run ``run_id`` of ``project``, once the run is fit to be retrained from.

    Raises:
        InvalidInput: not a run id, not the project's run, unfinished, or without a code snapshot.
        NotFound: no such run.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from pave.data.objects import indexed
    from pave.serving.store import run_files

    if not _RUN_ID.match(run_id):
        raise InvalidInput(
            f"{run_id!r} is not a run id", hint="send the run_id that `pave run --json` prints"
        )
    uri = settings.mlflow_db_url
    try:
        run = MlflowClient(tracking_uri=uri).get_run(run_id)
    except MlflowException:
        raise NotFound(
            f"there is no run {run_id}", hint=f"`pave runs {project}` lists the project's runs"
        ) from None
    tags = run.data.tags
    if tags.get(TAG_PROJECT) != project:
        raise InvalidInput(
            f"run {run_id} is not a run of project {project}", hint=f"`pave runs {project}` lists its runs"
        )
    if run.info.status != "FINISHED":
        raise InvalidInput(
            f"run {run_id} is {run.info.status}, not FINISHED: a retrain re-runs a finished run",
            hint="fix the run's error and `pave run` again",
        )
    snapshot = tags.get(TAG_SNAPSHOT)
    if not snapshot or indexed(session, project, "code", snapshot) is None:
        raise InvalidInput(
            f"run {run_id} has no code snapshot stored by project {project}",
            hint="`pave run` against this platform stores one (runs made straight into MLflow have none)",
        )
    with tempfile.TemporaryDirectory(prefix="pave-source-") as tmp:
        root = run_files(settings, run_id, (SPEC_ARTIFACT,), Path(tmp))
        try:
            spec: dict[str, Any] = json.loads((root / SPEC_ARTIFACT).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(
                f"run {run_id} has no readable {SPEC_ARTIFACT}: {exc}", hint="`pave run` the project again"
            ) from None
    return spec


def record_source(
    session: Session, *, project: str, run_id: str, spec: dict[str, Any], actor: str
) -> LoopSourceRow:
    """Remember run ``run_id`` (with its spec) as what ``project``'s retrains re-run.

    Raises:
        InvalidInput: the spec is not this project's, or its ``retrain.schedule`` or
            ``retrain.rollout`` is invalid.
    """
    try:
        parsed = ProjectSpec.model_validate(spec)
    except ValueError as exc:
        raise InvalidInput(f"the spec of run {run_id} is not a valid pave.yaml: {exc}") from exc
    if parsed.name != project:
        raise InvalidInput(f"the spec is project {parsed.name!r}, not {project!r}")
    schedule = parsed.retrain.schedule if parsed.retrain else None
    try:
        cron = parse_cron(schedule) if schedule else None
    except InvalidInput as exc:
        raise InvalidInput(f"retrain.schedule in pave.yaml: {exc.message}", hint=exc.hint) from None
    if parsed.retrain is not None:
        from pave.serving.rollouts import RolloutPolicy

        try:
            RolloutPolicy.from_dict(parsed.retrain.rollout)
        except (InvalidInput, TypeError, ValueError) as exc:
            message = exc.message if isinstance(exc, InvalidInput) else str(exc)
            hint = exc.hint if isinstance(exc, InvalidInput) else "see docs/serving.md for the rollout policy"
            raise InvalidInput(f"retrain.rollout in pave.yaml: {message}", hint=hint) from None
    row = session.scalar(select(LoopSourceRow).where(LoopSourceRow.project == project))
    before = (
        retrain_of(row.spec).schedule if row is not None and row.spec.get("retrain") is not None else None
    )
    if row is None:
        row = LoopSourceRow(project=project, run_id=run_id, spec=spec, recorded_by=actor)
        session.add(row)
    row.run_id, row.spec, row.recorded_by, row.recorded_at = run_id, spec, actor, utcnow()
    if cron is None:
        row.next_retrain_at = None
    elif schedule != before or row.next_retrain_at is None:
        row.next_retrain_at = cron.next_after(utcnow())
    session.flush()
    return row


def get_source(session: Session, project: str) -> LoopSourceRow:
    row = session.scalar(select(LoopSourceRow).where(LoopSourceRow.project == project))
    if row is None:
        raise NotFound(
            f"no run of project {project} is recorded for retraining",
            hint="`pave run` the project once against this platform: it records its run",
        )
    return row


def retrain_of(spec: dict[str, Any]) -> RetrainSpec:
    return RetrainSpec.model_validate(spec.get("retrain") or {})


def retrain_spec(source: LoopSourceRow) -> RetrainSpec:
    """The ``retrain:`` section of the recorded spec (InvalidInput when there is none)."""
    if source.spec.get("retrain") is None:
        raise InvalidInput(
            f"the pave.yaml of {source.project} has no retrain: section",
            hint="add e.g. `retrain: {rollout: {steps: [10, 50, 100]}}` to pave.yaml, then `pave run` once",
        )
    return retrain_of(source.spec)


def describe_source(row: LoopSourceRow | None) -> dict[str, Any] | None:
    if row is None:
        return None
    monitor = row.spec.get("monitor") or {}
    return {
        "run_id": row.run_id,
        "recorded_by": row.recorded_by,
        "recorded_at": row.recorded_at.isoformat(),
        "retrain": row.spec.get("retrain"),
        "on_alert": monitor.get("on_alert", "notify") if isinstance(monitor, dict) else "notify",
        "next_retrain_at": row.next_retrain_at.isoformat() if row.next_retrain_at else None,
    }
