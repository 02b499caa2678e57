"""Traffic routing: which version of a deployment answers a request.

- Weighted split (canary): requests without a sticky key are spread with smooth weighted
  round-robin, so a 10% canary gets exactly one request in ten, with no randomness to drift.
- Sticky A/B: a request carrying the deployment's sticky key is sent where the BLAKE2b hash of
  the key falls among the weights; the same key lands on the same version in every gateway
  process and after restarts (Python's ``hash()`` is salted per process and would not).
- Shadow: chosen here too, but called by the gateway after the answer (see ``gateway.py``).
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Mapping
from typing import Any

from pave.serving.deployments import Deployment


def key_position(deployment: str, key: str) -> float:
    """A stable number in [0, 1) for a sticky key (the deployment name salts it)."""
    digest = hashlib.blake2b(f"{deployment}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


class Router:
    """Picks versions for one deployment."""

    def __init__(self, deployment: Deployment) -> None:
        self.name = deployment.name
        live = [ref for ref in deployment.versions if ref.weight > 0]
        self.versions = [ref.version for ref in live]
        self.weights = [ref.weight for ref in live]
        self.total = sum(self.weights)
        self.shares = {ref.version: ref.weight / self.total for ref in live}
        running = 0.0
        self._bounds: list[float] = []
        for weight in self.weights[:-1]:
            running += weight / self.total
            self._bounds.append(running)
        self._credit = [0.0] * len(live)
        self.sticky_header = deployment.sticky.lower().encode("latin-1") if deployment.sticky else None
        self.sticky_param = deployment.sticky
        self.shadow = deployment.shadow.version if deployment.shadow else None

    def fallback(self, failed: str) -> str | None:
        """The version to answer with when ``failed`` could not: the heaviest other live one."""
        others = [(w, v) for v, w in zip(self.versions, self.weights, strict=True) if v != failed]
        return max(others)[1] if others else None

    def pick(self, key: str | None = None) -> str:
        """The version for a request, by sticky key when given, else by smooth weighted round-robin."""
        if len(self.versions) == 1:
            return self.versions[0]
        if key is not None:
            return self.versions[bisect.bisect_right(self._bounds, key_position(self.name, key))]
        credit = self._credit
        best = 0
        for i, weight in enumerate(self.weights):
            credit[i] += weight
            if credit[i] > credit[best]:
                best = i
        credit[best] -= self.total
        return self.versions[best]

    def sticky_key(self, headers: list[tuple[bytes, bytes]], parameters: Mapping[str, Any]) -> str | None:
        """The request's sticky key: the configured header, else the request parameter of that name."""
        if self.sticky_header is None:
            return None
        for name, value in headers:
            if name == self.sticky_header:
                return value.decode("latin-1")
        param = parameters.get(self.sticky_param or "")
        return None if param is None else str(param)
