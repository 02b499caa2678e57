"""Who the caller is, as the platform sees it."""

from __future__ import annotations

from fastapi import APIRouter

from pave.api.deps import PrincipalDep

router = APIRouter(prefix="/api/v1", tags=["identity"])


@router.get("/whoami", operation_id="whoami")
def whoami(principal: PrincipalDep) -> dict[str, str | bool | None]:
    return {
        "identity": principal.identity,
        "role": principal.role,
        "project": principal.project,
        "is_admin": principal.is_admin,
    }
