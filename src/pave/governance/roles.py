"""Roles and the actions each one may take.

Actions, from least to most powerful: ``read`` (see), ``write`` (run pipelines, log to MLflow,
register versions), ``deploy`` (deploy, change traffic), ``approve`` (promote to production),
``manage`` (a project's members), ``admin`` (tokens, policies, platform settings). A token
carries one role; a role binding gives an identity a role on one project
(:mod:`pave.governance.access` combines the two).
"""

from __future__ import annotations

from typing import Final, Literal

Action = Literal["read", "write", "deploy", "approve", "manage", "admin"]

ROLES: Final[dict[str, frozenset[str]]] = {
    "viewer": frozenset({"read"}),
    "developer": frozenset({"read", "write"}),
    "maintainer": frozenset({"read", "write", "deploy", "manage"}),
    "approver": frozenset({"read", "approve"}),
    "admin": frozenset({"read", "write", "deploy", "approve", "manage", "admin"}),
}


def role_allows(role: str, action: str) -> bool:
    return action in ROLES.get(role, frozenset())


# Roles a binding may give on one project ("admin" is platform-wide, never per project).
PROJECT_ROLES: Final[tuple[str, ...]] = ("viewer", "developer", "maintainer", "approver")
