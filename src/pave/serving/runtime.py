"""One deployed model version inside a gateway: loading on demand, batching, idle unloading.

States: ``unloaded`` (not yet loaded, or scaled to zero) -> ``ready``; a failed load is remembered
for ``retry_after`` seconds so a broken model does not get re-downloaded on every request. The
model's metadata (inputs, outputs, platform) survives an unload, so metadata requests never wake
a scaled-to-zero model.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from pave.errors import Unavailable
from pave.serving.batching import MicroBatcher, Outputs
from pave.serving.deployments import ModelRef
from pave.serving.loading import LoadedModel
from pave.serving.metrics import VersionMetrics
from pave.serving.protocol import TensorMeta
from pave.serving.schema import Features

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatchPolicy:
    max_batch_size: int = 64
    max_wait: float = 0.002


class ModelRuntime:
    """A model version of a deployment, as the gateway holds it."""

    def __init__(
        self,
        deployment: str,
        ref: ModelRef,
        loader: Callable[[str], LoadedModel],
        metrics: VersionMetrics,
        batching: BatchPolicy,
        retry_after: float = 10.0,
    ) -> None:
        self.deployment = deployment
        self.ref = ref
        self.version = ref.version
        self.metrics = metrics
        self._loader = loader
        self._batching = batching
        self._retry_after = retry_after
        self.model: LoadedModel | None = None
        self.batcher: MicroBatcher | None = None
        self.error: str | None = None
        self._failed_at = 0.0
        self._lock: asyncio.Lock | None = None
        self.in_flight = 0
        self.last_used = time.monotonic()
        self.platform = ""
        self.inputs: list[TensorMeta] = []
        self.outputs: list[TensorMeta] = []
        self.loads = 0

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.deployment, self.ref.version, self.ref.uri)

    @property
    def state(self) -> str:
        if self.model is not None:
            return "ready"
        if self.error is not None:
            return "failed"
        if self._lock is not None and self._lock.locked():
            return "loading"
        return "unloaded"

    async def ensure_loaded(self) -> LoadedModel:
        """The loaded model, loading it (in a thread) first if needed.

        Raises:
            Unavailable: the model failed to load (now, or less than ``retry_after`` seconds ago).
        """
        model = self.model
        if model is not None:
            return model
        if self._lock is None:
            self._lock = asyncio.Lock()
        async with self._lock:
            if self.model is not None:
                return self.model
            if self.error is not None and time.monotonic() - self._failed_at < self._retry_after:
                raise Unavailable(self.error, hint="the gateway retries the load shortly; see its log")
            loop = asyncio.get_running_loop()
            try:
                model = await loop.run_in_executor(None, self._loader, self.ref.uri)
            except Exception as exc:
                self.error = (
                    f"model '{self.deployment}' version {self.version} is not available: "
                    f"{getattr(exc, 'message', None) or exc}"
                )
                self._failed_at = time.monotonic()
                log.error("%s", self.error)
                hint = "fix the model URI or redeploy; see the gateway log"
                raise Unavailable(self.error, hint=hint) from exc
            self._install(model)
            return model

    def _install(self, model: LoadedModel) -> None:
        self.batcher = MicroBatcher(
            model.predict,
            max_batch_size=self._batching.max_batch_size,
            max_wait=self._batching.max_wait,
            inline=model.inline,
            batchable=model.batchable,
            on_batch=self.metrics.observe_batch,
        )
        self.platform = model.flavor if model.flavor != "pyfunc" else "mlflow"
        self.inputs = model.schema.metadata
        self.outputs = model.outputs
        self.error = None
        self.model = model
        self.loads += 1
        self.last_used = time.monotonic()
        self.metrics.loaded.set(1)
        log.info("loaded model '%s' version %s from %s", self.deployment, self.version, self.ref.uri)

    async def predict(self, features: Features, n_rows: int, *, alone: bool = False) -> Outputs:
        """Predict, waiting for a load first if the version is scaled to zero.

        ``alone``: no other request is open on the server (see ``MicroBatcher.predict``).
        """
        self.in_flight += 1
        try:
            if self.model is None:
                await self.ensure_loaded()
            assert self.batcher is not None
            return await self.batcher.predict(features, n_rows, alone=alone)
        finally:
            self.in_flight -= 1
            self.last_used = time.monotonic()

    @property
    def idle(self) -> bool:
        return self.in_flight == 0 and (self.batcher is None or self.batcher.idle)

    def unload(self) -> None:
        """Drop the model from memory; the next request loads it again."""
        if self.model is None:
            return
        self.model = None
        self.batcher = None
        self.metrics.loaded.set(0)
        log.info("unloaded model '%s' version %s", self.deployment, self.version)

    async def retire(self, timeout: float = 60.0) -> None:
        """Unload once the requests still holding this version have been answered."""
        deadline = time.monotonic() + timeout
        while not self.idle and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        self.unload()
