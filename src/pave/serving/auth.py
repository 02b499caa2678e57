"""Who may call the gateway: a Pave token that may read the deployment's project.

The gateway serving the store's deployments (``pave up``, ``pave serve``) checks every model route
(metadata, ready, infer) and ``/metrics``; the health routes, the server metadata and the OpenAPI
document stay open, since they name no project. The check is the control plane's: the token is
looked up by its hash, must be neither revoked nor expired, and its caller needs ``read`` on the
deployment's project (a viewer may call a model; ``/metrics`` needs a platform-wide token, since
it names every deployment).

A decision is cached for ``ttl`` seconds per (token, deployment), so the hot path does no database
work: a revoked token or a removed role stops working within ``ttl`` seconds. Each token is held to
its role's rate (``gateway_rate_limits``, :mod:`pave.governance.ratelimit`), in this process's
memory: 429 with ``Retry-After`` over it.
"""

from __future__ import annotations

import time
from hashlib import sha256

from sqlalchemy import select

from pave.config import Settings
from pave.errors import Forbidden, PaveError, Unauthenticated
from pave.governance.access import Access
from pave.governance.ratelimit import RateLimiter
from pave.governance.tokens import authenticate
from pave.store.db import make_engine, session_factory
from pave.store.tables import DeploymentRow

METRICS = "/metrics"  # the deployment key of the metrics route: any platform-wide token
_BEARER = b"bearer "


class GatewayAuth:
    """Token checks for one gateway process, with a short-lived cache of decisions."""

    def __init__(self, settings: Settings, *, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.engine = make_engine(settings.db_url)
        self.sessions = session_factory(self.engine)
        self.ttl = ttl
        self.max_entries = max_entries
        self.limiter = RateLimiter(settings.gateway_rate_limits)
        # (token digest, deployment) -> (expiry, refusal, the caller's identity and role)
        self._cache: dict[tuple[bytes, str], tuple[float, PaveError | None, tuple[str, str] | None]] = {}

    def cached(self, authorization: bytes | None, deployment: str) -> tuple[bool, PaveError | None]:
        """(known, refusal) from the cache: no database work; ``known`` False means call :meth:`check`."""
        if not authorization:
            return True, _MISSING
        key = _key(authorization)
        hit = self._cache.get((key, deployment))
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1] or self._over_rate(key, hit[2])

    def check(self, authorization: bytes | None, deployment: str) -> PaveError | None:
        """Decide (database work: run it off the event loop) and cache the decision."""
        refusal, cacheable, caller = self._decide(authorization, deployment)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()  # crude but bounded; entries are cheap to rebuild
        if authorization and cacheable:
            self._cache[(_key(authorization), deployment)] = (time.monotonic() + self.ttl, refusal, caller)
        if refusal is None and authorization:
            return self._over_rate(_key(authorization), caller)
        return refusal

    def _over_rate(self, key: bytes, caller: tuple[str, str] | None) -> PaveError | None:
        if caller is None or not self.limiter.enabled:
            return None
        try:
            self.limiter.check(key, caller[1], caller[0])
        except PaveError as error:
            return error
        return None

    def _decide(
        self, authorization: bytes | None, deployment: str
    ) -> tuple[PaveError | None, bool, tuple[str, str] | None]:
        """(refusal or None, whether the decision may be cached, the caller's identity and role)."""
        if not authorization or authorization[:7].lower() != _BEARER:
            return _MISSING, False, None
        secret = authorization[7:].strip().decode("latin-1")
        try:
            with self.sessions() as session:
                principal = authenticate(session, secret)
                caller = (principal.identity, principal.role)
                if deployment == METRICS:
                    if principal.project is not None:
                        return (
                            Forbidden(
                                "the gateway's metrics name every deployment: "
                                "they need a platform-wide token",
                                hint="`pave token create NAME --role viewer` (no --project)",
                            ),
                            True,
                            caller,
                        )
                    return None, True, caller
                project = session.scalar(
                    select(DeploymentRow.project).where(DeploymentRow.name == deployment)
                )
                if project is None:  # not deployed (yet): the gateway answers 404; decide again next time
                    return None, False, caller
                if "read" not in Access.load(session, principal).actions(project):
                    return (
                        Forbidden(
                            f"{principal.identity} may not call the models of project {project}",
                            hint=f"ask a maintainer of {project}: `pave project member add {project} "
                            f"{principal.identity} --role viewer`",
                        ),
                        True,
                        caller,
                    )
                return None, True, caller
        except PaveError as error:
            return error, True, None

    def close(self) -> None:
        self.engine.dispose()


def _key(authorization: bytes) -> bytes:
    return sha256(authorization).digest()  # the cache never holds a secret


_MISSING = Unauthenticated(
    "this request needs a token",
    hint="send 'Authorization: Bearer <token>' (see `pave token create`); OIP clients take extra headers",
)
