"""The base of every wire model, and the error answer every route can send."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Wire(BaseModel):
    """A JSON answer of the API: attribute access, ``.model_dump(mode="json")`` for the JSON.

    Unknown fields are kept (a newer server may add some), so ``model_dump`` round-trips what the
    server sent.
    """

    model_config = ConfigDict(extra="allow")


class ErrorBody(BaseModel):
    """What failed and how to fix it (:meth:`pave.errors.PaveError.to_dict`)."""

    code: str = Field(description="The error's class, e.g. `invalid_input`, `forbidden`, `not_found`.")
    message: str = Field(description="The headline: what failed, naming the object.")
    hint: str | None = Field(default=None, description="The next thing to do, often a command to run.")
    details: Any = Field(
        default=None,
        description="Structured extra data; for a 400 on a bad request, a list of "
        "`{field, problem}` objects.",
    )


class ErrorResponse(BaseModel):
    """The body of every error answer of the API (4xx and 5xx)."""

    error: ErrorBody
