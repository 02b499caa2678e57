"""Batch jobs started through the API: ``pave batch`` as a job of :mod:`pave.automation.jobs`.

``POST /api/v1/projects/P/batch`` never scores in the control plane (scoring loads the model: a
user's code). It starts ``pave batch P --input URI --output URI --json`` as a job, a worker process
of its own (or a Ray actor, ``job_executor = "ray"``) holding only the platform's URL and a token
for the project (developer role, expiring after :data:`TOKEN_LIFETIME`); the job talks to the
platform over HTTP, records itself as a batch run and reports its usage like any ``pave batch``.

A job reads and writes object storage only (``s3://``): it runs in an empty folder as the
``job_user`` and must not reach the control plane's files; object-store credentials come from the
control plane's variables that ``source_env`` lists, as for a retrain's sources. What a job
printed and where it runs are kept under ``$PAVE_HOME/batch-jobs/KEY``, so
``GET /api/v1/projects/P/batch/jobs/KEY`` answers after a control-plane restart too.

The job's token is revoked once the job has ended: when its state is first read as ended, or by the
control plane's loop tick (:func:`finish_ended`), whichever comes first, so it does not outlive the
job by its 12 hours.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from pave.automation import jobs
from pave.automation.triggers import source_environment
from pave.config import Settings
from pave.errors import InvalidInput, NotFound
from pave.serving.batch_io import output_format, table_format
from pave.store.tables import Token, utcnow

TOKEN_LIFETIME = timedelta(hours=12)
_KEY = re.compile(r"batch-[0-9a-f]{12}")
SERVICE_IDENTITY = "pave-automation"


def _folder(settings: Settings, key: str) -> Path:
    return settings.home / "batch-jobs" / key


def _check_uri(uri: str, which: str) -> None:
    scheme = uri.partition("://")[0] if "://" in uri else ""
    if scheme in ("", "file"):
        raise InvalidInput(
            f"--{which} {uri}: a batch job started through the API reads and writes object storage",
            hint=f"give an s3://BUCKET/KEY {which}, or run `pave batch` where the file is",
        )
    (output_format if which == "output" else table_format)(uri)  # a .parquet, .csv (or folder) name


def start(
    session: Session,
    settings: Settings,
    project: str,
    *,
    input_uri: str,
    output_uri: str,
    version: str | None = None,
    alias: str | None = None,
    workers: int | None = None,
    monitor: bool = False,
    requested_by: str = "",
) -> dict[str, Any]:
    """Start ``pave batch`` for ``project`` as a job; returns its description (state ``running``).

    With ``monitor``, the job feeds a sample of the scored rows to the project's monitors (through
    the control plane, like any ``pave batch --monitor``).

    Raises:
        InvalidInput: a local path, an unknown table format, or both a version and an alias.
    """
    from pave.governance.tokens import create_token

    _check_uri(input_uri, "input")
    _check_uri(output_uri, "output")
    if version and alias:
        raise InvalidInput("give a version or an alias, not both", hint='e.g. {"alias": "champion"}')
    key = f"batch-{uuid.uuid4().hex[:12]}"
    token, secret = create_token(
        session,
        identity=SERVICE_IDENTITY,
        name=f"batch {project} ({key})",
        role="developer",
        project=project,
        lifetime=TOKEN_LIFETIME,
        kind="service",
    )
    session.commit()  # the job authenticates with it at once
    args = ["batch", project, "--input", input_uri, "--output", output_uri, "--json"]
    args += ["--version", version] if version else ["--alias", alias] if alias else []
    args += ["--workers", str(workers)] if workers else []
    args += ["--monitor"] if monitor else []
    folder = _folder(settings, key)
    job = jobs.Job(
        key=key,
        project=project,
        args=tuple(args),
        url=settings.url,
        token=secret,
        stdout=folder / "result.json",
        stderr=folder / "job.log",
        env=source_environment(settings),
    )
    handle = jobs.executor(settings).start(job)
    doc = {
        "job": key,
        "project": project,
        "input": input_uri,
        "output": output_uri,
        "version": version,
        "alias": alias,
        "monitor": monitor,
        "requested_by": requested_by,
        "created": time.time(),
        "token_id": token.id,
        "handle": handle.to_dict(),
    }
    (folder / "job.json").write_text(json.dumps(doc))
    return describe(session, settings, project, key)


def describe(session: Session, settings: Settings, project: str, key: str) -> dict[str, Any]:
    """A job's state: ``running``, ``succeeded`` (with the job's result) or ``failed`` (its error).

    Raises:
        NotFound: no such job of this project.
    """
    folder = _folder(settings, key)
    doc = None
    if _KEY.fullmatch(key):
        try:
            doc = json.loads((folder / "job.json").read_text())
        except (OSError, ValueError):
            doc = None
    if not isinstance(doc, dict) or doc.get("project") != project:
        raise NotFound(
            f"project {project} has no batch job {key}",
            hint="the key is what POST /api/v1/projects/P/batch (Client.batch_submit) returned",
        )
    out = {k: doc.get(k) for k in ("job", "project", "input", "output", "version", "alias", "created")}
    out["monitor"] = bool(doc.get("monitor"))
    if not _ended(session, settings, folder, doc):
        return out | {"state": "running"}
    try:
        result = json.loads((folder / "result.json").read_text())
    except (OSError, ValueError):
        result = None
    if isinstance(result, dict) and "rows" in result:
        return out | {"state": "succeeded", "result": result}
    try:
        log = (folder / "job.log").read_text(errors="replace")
    except OSError:
        log = ""
    return out | {"state": "failed", "error": log[-4000:] or "the job ended without a result"}


def _ended(session: Session, settings: Settings, folder: Path, doc: dict[str, Any]) -> bool:
    """Whether the job has ended; the first time it is seen ended, its token is revoked."""
    if doc.get("ended"):
        return True
    handle = jobs.Handle.from_dict(doc["handle"])
    executor = jobs.executor(settings, handle.executor)
    if executor.running(handle):
        return False
    executor.cleanup(handle)
    token = session.get(Token, doc["token_id"]) if doc.get("token_id") else None
    if token is not None and token.revoked_at is None:
        token.revoked_at = utcnow()
    session.commit()  # revoked before the job counts as ended
    doc["ended"] = time.time()
    (folder / "job.json").write_text(json.dumps(doc))
    return True


def finish_ended(session: Session, settings: Settings) -> int:
    """Revoke the tokens of batch jobs that ended and nobody asked about yet; returns how many."""
    count = 0
    for path in sorted((settings.home / "batch-jobs").glob("batch-*/job.json")):
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and not doc.get("ended") and _ended(session, settings, path.parent, doc):
            count += 1
    return count
