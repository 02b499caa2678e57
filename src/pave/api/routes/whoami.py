"""Who the caller is, as the platform sees it."""

from __future__ import annotations

from fastapi import APIRouter

from pave.api.deps import PrincipalDep
from pave.schemas.access import Whoami

router = APIRouter(prefix="/api/v1", tags=["identity"])


@router.get("/whoami", operation_id="whoami")
def whoami(principal: PrincipalDep) -> Whoami:
    return Whoami(
        identity=principal.identity,
        role=principal.role,
        project=principal.project,
        is_admin=principal.is_admin,
    )
