"""Roles and the actions each one may take.

Actions, from least to most powerful: ``read`` (see), ``write`` (run pipelines, log to MLflow,
register versions), ``deploy`` (deploy, change traffic), ``approve`` (promote to production),
``admin`` (tokens, platform settings). The project-scoped bindings of the governance issue map a
person to one of these roles per project; a token carries one role.
"""

from __future__ import annotations

from typing import Final, Literal

Action = Literal["read", "write", "deploy", "approve", "admin"]

ROLES: Final[dict[str, frozenset[str]]] = {
    "viewer": frozenset({"read"}),
    "developer": frozenset({"read", "write"}),
    "maintainer": frozenset({"read", "write", "deploy"}),
    "approver": frozenset({"read", "approve"}),
    "admin": frozenset({"read", "write", "deploy", "approve", "admin"}),
}


def role_allows(role: str, action: str) -> bool:
    return action in ROLES.get(role, frozenset())
