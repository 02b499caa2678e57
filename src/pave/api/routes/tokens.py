"""API tokens: create, list, revoke (admin only, per the permission table)."""

from __future__ import annotations

from fastapi import APIRouter, status
from pydantic import BaseModel, Field

from pave.api.deps import RowId, SessionDep
from pave.governance.roles import ROLES
from pave.governance.tokens import create_token, list_tokens, revoke_token
from pave.schemas.access import TokenCreated, TokenOut, TokenRevoked

router = APIRouter(prefix="/api/v1/tokens", tags=["tokens"])


class TokenCreate(BaseModel):
    identity: str = Field(min_length=1, max_length=200, description="User or service account.")
    name: str = Field(min_length=1, max_length=200)
    role: str = Field(default="developer", description=f"One of: {', '.join(ROLES)}")
    project: str | None = Field(default=None, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)
    kind: str = Field(default="user", pattern="^(user|service)$")


@router.get("", operation_id="list_tokens")
def list_all(session: SessionDep) -> list[TokenOut]:
    return [
        TokenOut(identity=who, **{k: getattr(t, k) for k in TokenOut.model_fields if k != "identity"})
        for t, who in list_tokens(session)
    ]


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_token")
def create(body: TokenCreate, session: SessionDep) -> TokenCreated:
    token, secret = create_token(session, **body.model_dump())
    fields = {k: getattr(token, k) for k in TokenOut.model_fields if k != "identity"}
    return TokenCreated(identity=body.identity, secret=secret, **fields)


@router.delete("/{token_id}", operation_id="revoke_token")
def revoke(token_id: RowId, session: SessionDep) -> TokenRevoked:
    revoke_token(session, token_id)
    return TokenRevoked(id=token_id, status="revoked")
