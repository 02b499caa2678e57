"""Every error Pave raises on purpose.

The tree::

    PaveError                      headline + hint; the CLI prints both, the API answers JSON
    ├── UserError                  the caller can fix it (bad input, missing thing, no permission)
    │   ├── ConfigError            settings, config file, credentials file, ports
    │   ├── InvalidInput           a request or file that does not have the right shape      (400)
    │   ├── Unauthenticated        no token, a wrong, revoked or expired one                  (401)
    │   ├── Forbidden              a valid token without the permission                       (403)
    │   ├── NotFound               the named object does not exist                            (404)
    │   ├── Conflict               it exists already, or the state does not allow it           (409)
    │   ├── PayloadTooLarge        a request body over the limit                               (413)
    │   ├── QuotaExceeded          a project quota is used up                                  (429)
    │   ├── RateLimited            too many requests from one token; Retry-After says when     (429)
    │   └── MissingExtra           an optional backend is not installed; the hint is the pip line
    ├── Unavailable                a dependency (database, model) is down or not ready yet     (503)
    └── InternalError              a bug in Pave: report it                                   (500)

A user error is never a traceback in front of a user: the CLI prints the headline and the hint and
exits non-zero (the traceback only under ``--debug``); the API answers
``{"error": {"code": ..., "message": ..., "hint": ...}}`` with ``status_code``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PaveError(Exception):
    """Base of every error Pave raises on purpose.

    Args:
        message: the headline: what failed, naming the object.
        hint: the next thing to do, ideally a command to run.
        details: structured extra data for API clients (violations, field names...).
    """

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "error"

    def __init__(self, message: str, *, hint: str | None = None, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        """The body of the API's error answer."""
        body: dict[str, Any] = {"code": self.code, "message": self.message, "hint": self.hint}
        if self.details is not None:
            body["details"] = self.details
        return {"error": body}

    def to_mlflow_dict(self) -> dict[str, Any]:
        """The body for an MLflow client: MLflow's ``error_code`` and ``message`` beside Pave's
        ``error``, so a refusal surfaces as e.g. ``UNAUTHENTICATED: the token is not valid`` in
        ``mlflow`` instead of ``INTERNAL_ERROR``."""
        message = self.message if not self.hint else f"{self.message} (hint: {self.hint})"
        code = _MLFLOW_CODES.get(self.status_code, "INTERNAL_ERROR")
        return {"error_code": code, "message": message, **self.to_dict()}

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} (hint: {self.hint})"


# HTTP status -> the error code MLflow's REST clients understand (mlflow.protos.databricks_pb2)
_MLFLOW_CODES = {
    400: "INVALID_PARAMETER_VALUE",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "RESOURCE_DOES_NOT_EXIST",
    409: "RESOURCE_ALREADY_EXISTS",
    413: "INVALID_PARAMETER_VALUE",
    415: "BAD_REQUEST",
    429: "REQUEST_LIMIT_EXCEEDED",
    503: "TEMPORARILY_UNAVAILABLE",
}


class UserError(PaveError):
    """Something the caller can fix."""

    status_code = 400
    code = "user_error"


class ConfigError(UserError):
    code = "config_error"


class InvalidInput(UserError):
    code = "invalid_input"


class Unauthenticated(UserError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(UserError):
    status_code = 403
    code = "forbidden"


class NotFound(UserError):
    status_code = 404
    code = "not_found"


class Conflict(UserError):
    status_code = 409
    code = "conflict"


class PayloadTooLarge(UserError):
    status_code = 413
    code = "payload_too_large"


class QuotaExceeded(UserError):
    status_code = 429
    code = "quota_exceeded"


class RateLimited(UserError):
    """Too many requests from one token; ``retry_after`` seconds until the next one is allowed."""

    status_code = 429
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: float, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, details={"retry_after": retry_after})
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> bytes:
        """The ``Retry-After`` header's value: whole seconds, at least 1."""
        return str(max(1, int(self.retry_after + 0.999))).encode()


class MissingExtra(UserError):
    """An optional backend is not installed; the hint is the exact install command."""

    code = "missing_extra"

    def __init__(self, feature: str, extra: str) -> None:
        super().__init__(
            f"{feature} needs the optional '{extra}' dependencies, which are not installed",
            hint=f"pip install 'pave[{extra}]'",
        )


class Unavailable(PaveError):
    """A dependency is down or not ready yet; retrying later may work."""

    status_code = 503
    code = "unavailable"


class InternalError(PaveError):
    """A bug in Pave, not something the user did."""

    status_code = 500
    code = "internal"
