"""Who may call the gateway: a Pave token that may read the deployment's project.

The gateway serving the store's deployments (``pave up``, ``pave serve``) checks every model route
(metadata, ready, infer) and ``/metrics``; the health routes, the server metadata and the OpenAPI
document stay open, since they name no project. The check is the control plane's: the token is
looked up by its hash, must be neither revoked nor expired, and its caller needs ``read`` on the
deployment's project (a viewer may call a model; ``/metrics`` needs a platform-wide token, since
it names every deployment).

A decision is cached for ``ttl`` seconds per (token, deployment), so the hot path does no database
work: a revoked token or a removed role stops working within ``ttl`` seconds.
"""

from __future__ import annotations

import time
from hashlib import sha256

from sqlalchemy import select

from pave.config import Settings
from pave.errors import Forbidden, PaveError, Unauthenticated
from pave.governance.access import Access
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
        self._cache: dict[tuple[bytes, str], tuple[float, PaveError | None]] = {}

    def cached(self, authorization: bytes | None, deployment: str) -> tuple[bool, PaveError | None]:
        """(known, refusal) from the cache: no database work; ``known`` False means call :meth:`check`."""
        if not authorization:
            return True, _MISSING
        hit = self._cache.get((_key(authorization), deployment))
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def check(self, authorization: bytes | None, deployment: str) -> PaveError | None:
        """Decide (database work: run it off the event loop) and cache the decision."""
        refusal, cacheable = self._decide(authorization, deployment)
        if len(self._cache) >= self.max_entries:
            self._cache.clear()  # crude but bounded; entries are cheap to rebuild
        if authorization and cacheable:
            self._cache[(_key(authorization), deployment)] = (time.monotonic() + self.ttl, refusal)
        return refusal

    def _decide(self, authorization: bytes | None, deployment: str) -> tuple[PaveError | None, bool]:
        """(refusal or None, whether the decision may be cached)."""
        if not authorization or authorization[:7].lower() != _BEARER:
            return _MISSING, False
        secret = authorization[7:].strip().decode("latin-1")
        try:
            with self.sessions() as session:
                principal = authenticate(session, secret)
                if deployment == METRICS:
                    if principal.project is not None:
                        return Forbidden(
                            "the gateway's metrics name every deployment: they need a platform-wide token",
                            hint="`pave token create NAME --role viewer` (no --project)",
                        ), True
                    return None, True
                project = session.scalar(
                    select(DeploymentRow.project).where(DeploymentRow.name == deployment)
                )
                if project is None:  # not deployed (yet): the gateway answers 404; decide again next time
                    return None, False
                if "read" not in Access.load(session, principal).actions(project):
                    return Forbidden(
                        f"{principal.identity} may not call the models of project {project}",
                        hint=f"ask a maintainer of {project}: `pave project member add {project} "
                        f"{principal.identity} --role viewer`",
                    ), True
                return None, True
        except PaveError as error:
            return error, True

    def close(self) -> None:
        self.engine.dispose()


def _key(authorization: bytes) -> bytes:
    return sha256(authorization).digest()  # the cache never holds a secret


_MISSING = Unauthenticated(
    "this request needs a token",
    hint="send 'Authorization: Bearer <token>' (see `pave token create`); OIP clients take extra headers",
)
