"""Putting versions in front of traffic: the one service the API, the portal, the loop and the rollouts call.

Deploying, changing weights, shadowing, undeploying, and (through :mod:`pave.serving.rollouts`)
rolling out and promoting. Every change of a deployment's traffic ends in
:func:`pave.serving.store.replace_spec` / :func:`~pave.serving.store.deploy`, whose one write path
applies the approval policy to each version that would start taking traffic
(:func:`pave.governance.approvals.check_traffic`); this module adds the rules around it that every
caller shares: the project must exist, the deployments quota, no hand-set weights while a rollout
sets them, weights that add up to 100.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.config import Settings
from pave.errors import Conflict, InvalidInput, NotFound
from pave.governance.policy import check_quota, get_policy
from pave.serving import store
from pave.store.tables import DeploymentRow, Project, RolloutRow


def _project(session: Session, project: str) -> None:
    if session.scalar(select(Project.id).where(Project.name == project)) is None:
        raise NotFound(f"project {project!r} does not exist", hint="`pave projects` lists them")


def deploy(session: Session, settings: Settings, *, project: str, actor: str, **spec: Any) -> DeploymentRow:
    """Create or replace the deployment of ``project`` (see :func:`pave.serving.store.deploy` for ``spec``).

    Raises:
        NotFound: no such project.
        QuotaExceeded: a new deployment over the project's ``max_deployments``.
        Forbidden: a version that would take traffic lacks the approval the policy requires.
    """
    _project(session, project)
    exists = session.scalar(select(DeploymentRow.id).where(DeploymentRow.name == project)) is not None
    if not exists:
        check_quota(get_policy(session, project), "deployments", store.count_deployments(session, project))
    return store.deploy(session, settings, project=project, actor=actor, **spec)


def set_weights(
    session: Session, settings: Settings, *, project: str, actor: str, weights: dict[str, float]
) -> DeploymentRow:
    """Give the deployed versions these percentages of traffic (0 takes a version out).

    Raises:
        Conflict: a rollout is running (it sets the weights).
        InvalidInput: a weight outside 0..100, a version not deployed, or a sum other than 100.
    """
    row = store.get_deployment(session, project)
    running = session.scalar(
        select(RolloutRow.id).where(RolloutRow.deployment == project, RolloutRow.state == "running")
    )
    if running is not None:
        raise Conflict(
            f"{project} is rolling out: its rollout sets the weights",
            hint="promote or roll back the rollout first",
        )
    spec = dict(row.spec)
    deployed = {str(ref["version"]) for ref in spec["versions"]}
    unknown = sorted(set(weights) - deployed)
    if unknown:
        raise InvalidInput(
            f"version {unknown[0]} is not deployed in {project}",
            hint=f"weights apply to the deployed versions: {', '.join(sorted(deployed))}",
        )
    new = []
    for ref in spec["versions"]:
        weight = float(weights.get(str(ref["version"]), 0.0))
        if not 0 <= weight <= 100:
            raise InvalidInput(f"the weight of version {ref['version']} is not between 0 and 100")
        new.append({**ref, "weight": weight})
    if abs(sum(r["weight"] for r in new) - 100) > 1e-6:
        raise InvalidInput("the weights must add up to 100", hint="e.g. 90 and 10")
    spec["versions"] = [r for r in new if r["weight"] > 0]
    store.replace_spec(session, settings, row, spec)
    row.updated_by = actor
    return row


def undeploy(session: Session, project: str) -> None:
    """Remove the deployment of ``project``: the gateways stop serving it within a second."""
    store.undeploy(session, project)
