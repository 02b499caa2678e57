"""The gateway's routing table and its synchronisation with the DeploymentSource.

The table is an immutable mapping ``name -> Entry`` replaced as a whole, so a request sees either
the old or the new deployments, never a mix. A change is applied in three steps:

1. load every version that is new (in a thread; requests keep being answered by the old table);
2. swap the table (one assignment);
3. retire the versions nobody routes to any more, after their in-flight requests are answered.

A deployment whose new version fails to load keeps its previous table entry (and the load is
retried on the next polls); a brand-new deployment that fails is served with 503 answers naming
the error. Versions idle past their deployment's ``scale_to_zero_after`` are unloaded by ``reap``;
the next request loads them again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pave.errors import Unavailable
from pave.serving.deployments import Deployment, DeploymentSource
from pave.serving.loading import LoadedModel
from pave.serving.metrics import GatewayMetrics
from pave.serving.router import Router
from pave.serving.runtime import BatchPolicy, ModelRuntime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Entry:
    """One deployment as served: its router and a runtime per version (the shadow's included)."""

    deployment: Deployment
    router: Router
    runtimes: dict[str, ModelRuntime] = field(default_factory=dict)

    @property
    def shadow(self) -> ModelRuntime | None:
        shadow = self.deployment.shadow
        return self.runtimes.get(shadow.version) if shadow else None

    @property
    def main_version(self) -> str:
        """The version with the most traffic: what an unversioned metadata request describes."""
        best = max(self.deployment.versions, key=lambda ref: ref.weight)
        return best.version


class DeploymentTable:
    """Holds the current entries and keeps them in step with a DeploymentSource."""

    def __init__(
        self,
        source: DeploymentSource,
        loader: Callable[[str], LoadedModel],
        metrics: GatewayMetrics,
        batching: BatchPolicy,
        retry_after: float = 10.0,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self.source = source
        self.entries: dict[str, Entry] = {}
        self.synced = False
        # Deployments the source lists that this table is loading for the first time: a request for
        # one is told to retry (503), not that it does not exist (404), while another worker of the
        # same gateway may already answer it.
        self.arriving: frozenset[str] = frozenset()
        # (deployment, version) a sync is loading for the first time (a retry of a version that
        # failed is not): not in the table yet, so not ready in this worker (``readiness.py``).
        self.loading: frozenset[tuple[str, str]] = frozenset()
        self._on_change = on_change or (lambda: None)  # called when loading starts and ends
        self._failed: set[tuple[str, str, str]] = set()  # the keys that failed at the last sync
        # (deployment, version) -> why, for the versions a sync refused (the deployment kept its
        # previous ones): a ready probe for such a version says so (``pave deploy --wait`` ends)
        self.refused: dict[tuple[str, str], str] = {}
        self._loader = loader
        self._metrics = metrics
        self._batching = batching
        self._retry_after = retry_after
        self._seen_version: int | None = None
        self._incomplete = False
        self._last_attempt = 0.0
        self._retiring: set[asyncio.Task[None]] = set()

    @property
    def source_version(self) -> int | None:
        """The source version the table was last synced to."""
        return self._seen_version

    def runtimes(self) -> dict[tuple[str, str, str], ModelRuntime]:
        return {rt.key: rt for entry in self.entries.values() for rt in entry.runtimes.values()}

    async def refresh(self) -> bool:
        """Apply the source's deployments if they changed; True when the table was swapped."""
        loop = asyncio.get_running_loop()
        version = await loop.run_in_executor(None, self.source.version)
        now = time.monotonic()
        retry = self._incomplete and now - self._last_attempt >= self._retry_after
        if version == self._seen_version and not retry:
            return False
        self._last_attempt = now
        deployments = await loop.run_in_executor(None, self.source.deployments)
        self.arriving = frozenset(d.name for d in deployments) - self.entries.keys()
        try:
            return await self._apply(version, deployments)
        finally:
            self.arriving, self.loading = frozenset(), frozenset()
            self._on_change()

    async def _apply(self, version: int, deployments: list[Deployment]) -> bool:
        """Load what is new in ``deployments``, swap the table, retire what is gone."""
        current = self.runtimes()
        fresh: list[ModelRuntime] = []
        entries: dict[str, Entry] = {}
        for deployment in deployments:
            runtimes: dict[str, ModelRuntime] = {}
            for ref in deployment.refs():
                key = (deployment.name, ref.version, ref.uri)
                runtime = current.get(key)
                if runtime is None:
                    runtime = ModelRuntime(
                        deployment.name,
                        ref,
                        self._loader,
                        self._metrics.version(deployment.name, ref.version),
                        self._batching,
                        self._retry_after,
                    )
                    fresh.append(runtime)
                runtime.ref = ref
                runtimes[ref.version] = runtime
            entries[deployment.name] = Entry(deployment, Router(deployment), runtimes)

        # 1. load what is new, while the old table keeps answering
        self.loading = frozenset(rt.key[:2] for rt in fresh if rt.key not in self._failed)
        if self.loading:
            self._on_change()
        failed: set[tuple[str, str, str]] = set()
        errors: dict[tuple[str, str], str] = {}
        for runtime in fresh:
            try:
                await runtime.ensure_loaded()
            except Unavailable as exc:
                failed.add(runtime.key)
                errors[runtime.key[:2]] = exc.message
        refused: dict[tuple[str, str], str] = {}
        incomplete = False
        for name, entry in list(entries.items()):
            shadow = entry.deployment.shadow
            broken = [
                v
                for v, rt in entry.runtimes.items()
                if rt.key in failed and not (shadow and v == shadow.version)
            ]
            if broken and name in self.entries:
                log.error(
                    "deployment '%s' keeps its previous versions: version %s failed to load",
                    name,
                    ", ".join(broken),
                )
                entries[name] = self.entries[name]
                refused |= {(name, v): errors.get((name, v), "failed to load") for v in broken}
                incomplete = True
            elif broken:
                incomplete = True

        # 2. swap
        previous = current
        self.entries = entries
        self._seen_version = version
        self._incomplete = incomplete
        self._failed = failed
        self.refused = refused
        self.synced = True
        for entry in entries.values():
            for v, runtime in entry.runtimes.items():
                runtime.metrics.share.set(entry.router.shares.get(v, 0.0))

        # 3. retire what nobody routes to any more
        kept = self.runtimes()
        kept_labels = {k[:2] for k in kept}
        for key, runtime in previous.items():
            if key not in kept:
                task = asyncio.create_task(self._retire(runtime, keep_metrics=key[:2] in kept_labels))
                self._retiring.add(task)
                task.add_done_callback(self._retiring.discard)
        return True

    async def _retire(self, runtime: ModelRuntime, keep_metrics: bool) -> None:
        await runtime.retire()
        if not keep_metrics:
            self._metrics.forget(runtime.deployment, runtime.version)

    def reap(self) -> list[ModelRuntime]:
        """Unload versions idle past their deployment's ``scale_to_zero_after``; the ones unloaded."""
        now = time.monotonic()
        unloaded = []
        for entry in self.entries.values():
            limit = entry.deployment.scale_to_zero_after
            if limit is None:
                continue
            for runtime in entry.runtimes.values():
                if runtime.model is not None and runtime.idle and now - runtime.last_used > limit:
                    runtime.unload()
                    unloaded.append(runtime)
        return unloaded

    async def close(self) -> None:
        for task in list(self._retiring):
            task.cancel()
        self.entries = {}
