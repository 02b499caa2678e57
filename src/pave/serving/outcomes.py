"""What follows an inference once a version is picked: counting it, its inference log record, the
shadow's copy, and the failure each protocol answers in its own shape.

Every protocol's route (OIP REST in ``gateway.py``, KServe V1 in ``v1.py``, gRPC in
``grpc_server.py``) calls ``Gateway.run_inference``, then :func:`answered` before its answer goes
out and :meth:`Outcomes.follow_up` after it, or :meth:`Outcomes.failure` when it raised.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from pave import telemetry
from pave.errors import PaveError
from pave.serving.inference_log import InferenceLog, Record
from pave.serving.loading import LoadedModel
from pave.serving.metrics import GatewayMetrics
from pave.serving.protocol import InferenceRequest
from pave.serving.runtime import ModelRuntime
from pave.serving.schema import Features
from pave.serving.table import Entry

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Inference:
    """One answered inference, as every protocol's route gets it from :meth:`Gateway.run_inference`."""

    request: InferenceRequest
    entry: Entry
    runtime: ModelRuntime
    model: LoadedModel
    features: Features
    outputs: dict[str, Any]
    start: float


class VersionFailed(Exception):
    """An inference that failed once a version was picked: the error, and the version it counts against."""

    def __init__(self, error: Exception, runtime: ModelRuntime) -> None:
        super().__init__(str(error))
        self.error = error
        self.runtime = runtime


def answered(inference: Inference) -> float:
    """Count a successful inference (before its answer goes out, as errors are: a client that has
    its answer and then scrapes /metrics sees its request counted); its latency."""
    latency = time.perf_counter() - inference.start
    inference.runtime.metrics.answered(latency)
    return latency


class Outcomes:
    """The metrics, inference log and shadow tasks of one gateway's answered and failed inferences."""

    def __init__(self, metrics: GatewayMetrics, inference_log: InferenceLog) -> None:
        self.metrics = metrics
        self.inference_log = inference_log
        self._background: set[asyncio.Task[None]] = set()

    async def drain(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the shadow calls still running."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=timeout)

    def follow_up(self, inference: Inference, latency: float) -> None:
        """After the answer: the inference log record and the shadow's copy."""
        request, runtime = inference.request, inference.runtime
        sampled = self.inference_log.sampled()
        if sampled:
            self._log(
                runtime,
                request.id,
                latency,
                inference.features,
                inference.model.schema.order,
                inference.outputs,
            )
        shadow = inference.entry.shadow
        if shadow is not None and shadow is not runtime:
            task = asyncio.create_task(self.shadow(shadow, request, sampled))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def failure(
        self, exc: BaseException, name: str, inference: Inference | None = None
    ) -> tuple[ModelRuntime | None, int, str]:
        """Count a failed inference against its version (or as unrouted): (version, status, message).

        Each protocol answers the status and message in its own error shape.
        """
        runtime = inference.runtime if inference is not None else None
        if isinstance(exc, VersionFailed):
            runtime, exc = exc.runtime, exc.error
        if isinstance(exc, PaveError):
            status, message = exc.status_code, exc.message
        else:
            log.error("inference on model '%s' failed", name, exc_info=exc)
            status, message = 500, f"inference failed: {type(exc).__name__}: {exc}"
        if runtime is not None:
            runtime.metrics.error(status)
        else:
            self.metrics.unrouted_errors.labels(str(status)).inc()
        return runtime, status, message

    def record_failure(
        self, runtime: ModelRuntime, request: InferenceRequest, exc: Exception, start: float
    ) -> None:
        log.warning(
            "version %s of '%s' failed (%s); answering with another version",
            runtime.version,
            runtime.deployment,
            type(exc).__name__,
        )
        runtime.metrics.error(500)
        error = f"{type(exc).__name__}: {exc}"[:500]
        self._log(runtime, request.id, time.perf_counter() - start, None, (), {}, error=error)

    def _log(
        self,
        runtime: ModelRuntime,
        request_id: str,
        latency: float,
        inputs: Any,
        columns: Sequence[str],
        outputs: dict[str, Any],
        **extra: Any,
    ) -> None:
        """One inference log record of ``runtime``'s answer (or failure), with the request's trace."""
        self.inference_log.record(
            Record(
                request_id,
                runtime.deployment,
                runtime.version,
                time.time(),
                latency,
                inputs,
                columns,
                outputs,
                trace_id=telemetry.trace_id(),
                **extra,
            )
        )

    async def shadow(self, runtime: ModelRuntime, request: InferenceRequest, sampled: bool) -> None:
        """Send a copy to the shadow version; its answer is logged, its failure only counted."""
        start = time.perf_counter()
        try:
            model = runtime.model or await runtime.ensure_loaded()
            features, n_rows = model.schema.bind_request(request)
            outputs = await runtime.predict(features, n_rows)
        except Exception as exc:
            runtime.metrics.shadow_error()
            log.debug("shadow version %s of '%s' failed: %s", runtime.version, runtime.deployment, exc)
            return
        if sampled:  # the task runs in the request's context: the record gets its trace
            self._log(
                runtime,
                request.id,
                time.perf_counter() - start,
                features,
                model.schema.order,
                outputs,
                shadow=True,
            )
        # Counted once its answer is queued for the log: whoever sees the count can flush the log
        # and find the answer there.
        runtime.metrics.shadow_requests.inc()
