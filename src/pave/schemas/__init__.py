"""The API's wire shapes: the pydantic models of what every ``/api/v1`` route answers.

Both sides import them: the routes declare them as their response models (so the OpenAPI document
at ``/api/v1/openapi.json`` describes them), and :class:`pave.Client` returns them. The package
holds only pydantic models and imports nothing else of Pave, so it sits below the client in the
layers (``pyproject.toml``, ``[tool.importlinter]``).

The models accept fields a newer server adds (``extra="allow"``) so that an older client keeps
working; everything a model names is typed.
"""

from __future__ import annotations

from pave.schemas.common import ErrorBody, ErrorResponse, Wire

__all__ = ["ErrorBody", "ErrorResponse", "Wire"]
