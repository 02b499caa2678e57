"""Approvals: a second person signs off a model or prompt version before it goes to production.

When a project's policy says ``require_approval``, a production alias (``champion``: production
traffic; ``production``: the prompt version a GenAI app loads, ``prompts:/NAME@production``)
can only point at a version that carries an approval, given by an identity with the ``approve``
action on the project who is not the version's author. The approval, the gate results and who
did what are recorded as tags on the model version:

=========================  ======================================================
tag                        value
=========================  ======================================================
``pave.author``            who registered the version (set by the platform)
``pave.approval.by``       the approver
``pave.approval.at``       when (ISO 8601, UTC)
``pave.approval.gates``    the version's gate results at approval time
``pave.approval.comment``  the approver's note
=========================  ======================================================

Tags under ``pave.author`` and ``pave.approval.`` can only be written by the platform itself:
requests that try to set them through MLflow's API are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from pave.errors import Conflict, Forbidden, NotFound

CHAMPION = "champion"
# The aliases that put a version in production: setting or moving one needs ``approve`` (and the
# approval the policy asks for). A prompt's ``production`` is what its app loads.
PRODUCTION_ALIASES = frozenset({CHAMPION, "production"})
TAG_AUTHOR = "pave.author"
TAG_APPROVED_BY = "pave.approval.by"
TAG_APPROVED_AT = "pave.approval.at"
TAG_APPROVAL_GATES = "pave.approval.gates"
TAG_APPROVAL_COMMENT = "pave.approval.comment"
TAG_GATES = "pave.gates"
PROTECTED_PREFIXES = (TAG_AUTHOR, "pave.approval.")


class Registry(Protocol):
    """The part of MLflow's model registry store this module uses."""

    def get_model_version(self, name: str, version: str) -> Any: ...

    def set_model_version_tag(self, name: str, version: str, tag: Any) -> None: ...


@dataclass(frozen=True)
class Approval:
    project: str
    version: str
    approved_by: str
    approved_at: str
    author: str
    gates: str
    comment: str

    def to_dict(self) -> dict[str, str]:
        return self.__dict__.copy()


def is_protected_tag(key: str) -> bool:
    return key.startswith(PROTECTED_PREFIXES)


def _tags(version: Any) -> dict[str, str]:
    tags = version.tags or {}
    return dict(tags) if isinstance(tags, dict) else {t.key: t.value for t in tags}


def _version(registry: Registry, project: str, version: str) -> Any:
    try:
        return registry.get_model_version(project, str(version))
    except Exception as exc:  # MLflow raises MlflowException for a missing model or version
        raise NotFound(
            f"model {project!r} has no version {version}", hint=f"`pave models {project}` lists them"
        ) from exc


def approve(registry: Registry, project: str, version: str, *, approver: str, comment: str = "") -> Approval:
    """Record ``approver``'s approval of ``project`` version ``version``.

    Raises:
        NotFound: no such version.
        Forbidden: the approver is the version's author.
        Conflict: the author is unknown, the gates failed, or it is approved already.
    """
    from mlflow.entities.model_registry import ModelVersionTag

    tags = _tags(_version(registry, project, version))
    author = tags.get(TAG_AUTHOR)
    if not author:
        raise Conflict(
            f"{project} version {version} has no recorded author, so no second person can approve it",
            hint="register versions through the platform (`pave run`), which records the author",
        )
    if author == approver:
        raise Forbidden(
            f"{approver} registered {project} version {version} and cannot approve it too",
            hint="ask another member with the approver role: `pave project member list " + project + "`",
        )
    gates = tags.get(TAG_GATES, "none recorded")
    if gates == "failed":
        raise Conflict(
            f"{project} version {version} failed its gates; it cannot be approved",
            hint=f"see the gate results with `pave models {project}`, then train a better version",
        )
    if tags.get(TAG_APPROVED_BY):
        raise Conflict(f"{project} version {version} was approved already by {tags[TAG_APPROVED_BY]}")
    at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    for key, value in (
        (TAG_APPROVAL_GATES, gates),
        (TAG_APPROVAL_COMMENT, comment[:500]),
        (TAG_APPROVED_AT, at),
        (TAG_APPROVED_BY, approver),  # last: its presence means the approval is complete
    ):
        registry.set_model_version_tag(project, str(version), ModelVersionTag(key, value))
    return Approval(project, str(version), approver, at, author, gates, comment[:500])


def approval_of(registry: Registry, project: str, version: str) -> Approval | None:
    tags = _tags(_version(registry, project, version))
    if not tags.get(TAG_APPROVED_BY):
        return None
    return Approval(
        project,
        str(version),
        tags[TAG_APPROVED_BY],
        tags.get(TAG_APPROVED_AT, ""),
        tags.get(TAG_AUTHOR, ""),
        tags.get(TAG_APPROVAL_GATES, ""),
        tags.get(TAG_APPROVAL_COMMENT, ""),
    )


def check_traffic(
    registry: Registry,
    project: str,
    serving: set[str],
    wanted: set[str],
    *,
    require_approval: bool,
) -> None:
    """Refuse to put a version in front of production traffic without the approval the policy needs.

    ``serving`` are the versions that take traffic now (weight above zero, or the shadow copy),
    ``wanted`` those that would after the change. Every version that would start to take
    traffic (the primary, a canary, a shadow, a rollout's candidate) needs the approval; versions
    already serving may keep serving and lose traffic, so a rollback is never refused.
    """
    for version in sorted(wanted - serving, key=lambda v: (len(v), v)):
        check_promotion(registry, project, version, require_approval=require_approval)


def is_promotion(endpoint: str, method: str, values: dict[str, Any]) -> bool:
    """Whether an MLflow request puts a version in production (a production alias, stage Production)."""
    return (
        endpoint == "registered-models/alias"
        and method == "POST"
        and str(values.get("alias", "")).lower() in PRODUCTION_ALIASES
    ) or (
        endpoint == "model-versions/transition-stage" and str(values.get("stage", "")).lower() == "production"
    )


def check_promotion(registry: Registry, project: str, version: str, *, require_approval: bool) -> None:
    """Refuse to put ``version`` of ``project`` (a project's model, or a prompt ``<project>.<name>``)
    in production without the approval its policy needs."""
    if not require_approval:
        return
    if approval_of(registry, project, version) is None:
        owner, dot, prompt = project.partition(".")
        command = f"pave approve {owner} {version}" + (f" --prompt {project}" if dot and prompt else "")
        goal = "becomes `production`" if dot else f"takes production traffic or becomes {CHAMPION}"
        raise Forbidden(
            f"{project} version {version} needs an approval before it {goal}",
            hint=f"an approver other than its author runs `{command}`",
        )
