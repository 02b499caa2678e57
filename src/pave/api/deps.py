"""Shared route dependencies, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from pave.api.platform import Platform
from pave.api.security import principal_of
from pave.governance.tokens import Principal


def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


def get_session(request: Request) -> Iterator[Session]:
    """A session committed when the route returns, rolled back when it raises."""
    platform = get_platform(request)
    with platform.sessions() as session, session.begin():
        yield session


def get_principal(request: Request) -> Principal:
    return principal_of(request)


PlatformDep = Annotated[Platform, Depends(get_platform)]
# Committed before the answer is sent (scope="function"): a client never sees a success that
# was not durable, and the audit append that runs when the status is known finds the store free.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
# A row id in a path: the databases' 64-bit integers (a larger number is a 400, not a database
# overflow answered as a 500).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1, description="The row's id.")]
