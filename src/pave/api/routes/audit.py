"""The audit trail: list and filter records, verify the chain (admin only, per the permission table)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from pave.api.deps import SessionDep
from pave.governance import audit
from pave.schemas.access import AuditRecord, AuditVerification

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


@router.get("", operation_id="list_audit")
def list_audit(
    session: SessionDep,
    identity: Annotated[str | None, Query(max_length=200)] = None,
    project: Annotated[str | None, Query(max_length=200)] = None,
    outcome: Annotated[str | None, Query(pattern="^(allowed|denied|failed)$")] = None,
    since: Annotated[str | None, Query(max_length=40, description="30m, 2h, 7d or an ISO date")] = None,
    after_seq: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    request_id: Annotated[str | None, Query(max_length=64)] = None,
) -> list[AuditRecord]:
    """Records matching every filter given, oldest first; page with ``after_seq``."""
    found = audit.query(
        session,
        identity=identity,
        project=project,
        outcome=outcome,
        since=since,
        limit=limit,
        after_seq=after_seq,
        request_id=request_id,
    )
    return [AuditRecord.model_validate(record) for record in found]


@router.get("/verify", operation_id="verify_audit")
def verify_audit(session: SessionDep) -> AuditVerification:
    """Walk the whole chain; ``ok`` is false and ``first_bad_seq`` set when a row was edited or deleted."""
    return AuditVerification.model_validate(audit.verify(session).to_dict())
