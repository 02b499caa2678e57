"""A project's governance policy: approval before production, and quotas.

Quotas (None: unlimited) are enforced where the thing is created: concurrent MLflow runs on run
creation, stored bytes on every upload through the platform (MLflow's artifact proxy, and the
dataset and code routes), deployments where a deployment is created (the deployment route calls
:func:`check_quota`). A project's stored bytes (:func:`stored_bytes`) are its MLflow artifacts plus
the dataset versions and code snapshots it stored, wherever the artifact root is. Exceeding one
raises QuotaExceeded naming the quota, its value and the project's owner, who can ask a platform
admin to change it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pave.errors import InvalidInput, NotFound, QuotaExceeded
from pave.store.tables import Project, ProjectObjectRow, ProjectPolicy, utcnow

QUOTAS = {
    "concurrent_runs": "max_concurrent_runs",
    "deployments": "max_deployments",
    "stored_bytes": "max_stored_bytes",
}


@dataclass(frozen=True)
class Policy:
    project: str
    owner: str | None
    require_approval: bool = False
    max_concurrent_runs: int | None = None
    max_deployments: int | None = None
    max_stored_bytes: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "project": self.project,
            "owner": self.owner,
            "require_approval": self.require_approval,
            "max_concurrent_runs": self.max_concurrent_runs,
            "max_deployments": self.max_deployments,
            "max_stored_bytes": self.max_stored_bytes,
        }


def get_policy(session: Session, project: str) -> Policy:
    """The policy of ``project`` (defaults when none was set; owner None if no such project)."""
    owner = session.scalar(select(Project.owner).where(Project.name == project))
    row = session.scalar(select(ProjectPolicy).where(ProjectPolicy.project == project))
    if row is None:
        return Policy(project, owner)
    return Policy(
        project,
        owner,
        row.require_approval,
        row.max_concurrent_runs,
        row.max_deployments,
        row.max_stored_bytes,
    )


def set_policy(session: Session, project: str, *, updated_by: str, **changes: Any) -> Policy:
    """Change some fields of the policy of ``project``; fields not given keep their value."""
    if session.scalar(select(Project.id).where(Project.name == project)) is None:
        raise NotFound(f"project {project!r} does not exist", hint="`pave projects` lists them")
    unknown = set(changes) - {"require_approval", *QUOTAS.values()}
    if unknown:
        raise InvalidInput(f"unknown policy field(s): {', '.join(sorted(unknown))}")
    for name in QUOTAS.values():
        value = changes.get(name)
        if value is not None and value < 0:
            raise InvalidInput(f"{name} must be 0 or more (or null: unlimited)")
    row = session.scalar(select(ProjectPolicy).where(ProjectPolicy.project == project))
    if row is None:
        row = ProjectPolicy(project=project, require_approval=False)
        session.add(row)
    for key, value in changes.items():
        setattr(row, key, value)
    row.updated_by, row.updated_at = updated_by, utcnow()
    session.flush()
    return get_policy(session, project)


def check_quota(policy: Policy, quota: str, in_use: int, adding: int = 1) -> None:
    """Raise QuotaExceeded when ``in_use + adding`` goes over the project's ``quota``."""
    limit = getattr(policy, QUOTAS[quota])
    if limit is None or in_use + adding <= limit:
        return
    unit = " bytes" if quota == "stored_bytes" else ""
    raise QuotaExceeded(
        f"project {policy.project!r}: quota {quota} of {limit}{unit} exceeded "
        f"({in_use}{unit} in use, {adding}{unit} more asked); owner: {policy.owner or 'unknown'}",
        hint=f"free some, or ask a platform admin: `pave project policy {policy.project} "
        f"--{QUOTAS[quota].replace('_', '-')} N`",
        details={"quota": quota, "limit": limit, "in_use": in_use, "owner": policy.owner},
    )


def stored_bytes(
    session: Session, project: str, artifact_root: str | None, experiment_ids: Iterable[str]
) -> int:
    """The bytes ``project`` holds: its MLflow artifacts (under ``<root>/<experiment id>/``, a folder
    or an object store) plus its dataset versions and code snapshots (as the project's index says:
    each project counts what it stored, even when the store keeps one copy for several)."""
    objects = session.scalar(
        select(func.coalesce(func.sum(ProjectObjectRow.size), 0)).where(ProjectObjectRow.project == project)
    )
    total = int(objects or 0)
    if artifact_root:
        from pave.storage import open_storage

        storage = open_storage(artifact_root)
        for experiment_id in experiment_ids:
            if experiment_id.isdigit():  # an id from the store, never a path
                total += sum(item.size for item in storage.list(f"{experiment_id}/"))
    return total


# The largest page MLflow's own clients ask for (runs search: 50000, metric history: 25000).
MAX_RESULTS_CAP = 50_000


def check_caps(values: dict[str, Any]) -> None:
    """Refuse a page size over :data:`MAX_RESULTS_CAP` (``max_results``, ``maxResults``, ``limit``)."""
    for key in ("max_results", "maxResults", "limit"):
        value = values.get(key)
        try:
            number = int(value) if value is not None else None
        except (TypeError, ValueError):
            continue
        if number is not None and number > MAX_RESULTS_CAP:
            raise InvalidInput(
                f"{key}={number} is over the cap of {MAX_RESULTS_CAP}",
                hint="page through the results with page_token",
            )


def refuse_direct_upload(policy: Policy) -> None:
    """Uploads that bypass the artifact proxy cannot be counted: refused while a stored-bytes quota holds."""
    project = policy.project
    raise QuotaExceeded(
        f"project {project!r} has a stored_bytes quota ({policy.max_stored_bytes} bytes; "
        f"owner: {policy.owner or 'unknown'}) and uploads that bypass the artifact proxy "
        "cannot be counted against it",
        hint="upload through the proxy (mlflow-artifacts PUT), or ask a platform admin to lift "
        f"the quota: `pave project policy {project} --max-stored-bytes N`",
        details={"quota": "stored_bytes", "limit": policy.max_stored_bytes, "owner": policy.owner},
    )
