"""The inference gateway: an ASGI application speaking Open Inference Protocol v2 over REST.

Routes::

    GET  /v2/health/live                                 {"live": true}
    GET  /v2/health/ready                                {"ready": true} once deployments are synced
    GET  /v2                                             server metadata
    GET  /v2/models/{name}[/versions/{version}]          model metadata (from the MLflow signature)
    GET  /v2/models/{name}[/versions/{version}]/ready    {"name", "ready"} or 503
    POST /v2/models/{name}[/versions/{version}]/infer    inference; the router picks the version
    GET  /v2/openapi.json                                this API in OpenAPI 3.1 (``openapi.py``)
    GET  /metrics                                        Prometheus metrics (summed over workers)

Errors answer ``{"error": "..."}`` with 400 (bad input), 404 (unknown model or version), 405,
413 (body too large), 415 (a body that is not JSON: a pickle is refused unread) or 503 (not
ready). Every inference answer carries the version that answered
(``model_version`` and the ``pave-model-version`` header) and an inference id (``id``: the
request's, else a new one; also the ``pave-inference-id`` header).

The app is plain ASGI rather than a framework's router: the hot path is one dict lookup, one
orjson parse and one orjson dump, which is what lets a single process keep up with its clients.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

import pave
from pave.config import Settings
from pave.errors import InvalidInput, NotFound, PaveError, PayloadTooLarge, Unavailable, UserError
from pave.serving.auth import METRICS, GatewayAuth
from pave.serving.batching import OPEN_REQUESTS
from pave.serving.deployments import DeploymentSource
from pave.serving.inference_log import InferenceLog, Record
from pave.serving.loading import LoadedModel, load_model
from pave.serving.metrics import CONTENT_TYPE, GatewayMetrics
from pave.serving.openapi import openapi_document
from pave.serving.protocol import InferenceRequest, encode_response, error_body, new_id, parse_request
from pave.serving.runtime import BatchPolicy, ModelRuntime
from pave.serving.schema import Features
from pave.serving.table import DeploymentTable, Entry

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
JSON = b"application/json"
_INFER_METHODS = ("POST",)
_READ_METHODS = ("GET", "HEAD")


@dataclass(frozen=True)
class GatewayOptions:
    """Tuning of a gateway; the defaults are the ones to use.

    Attributes:
        poll_interval: seconds between two polls of the DeploymentSource.
        max_batch_size: most requests in one model call (1 turns batching off).
        max_batch_wait: longest wait (seconds) for a batch to fill.
        tracking_uri: where ``models:/`` URIs are resolved; default: Pave's MLflow store.
        model_cache: where downloaded models are kept; default ``$PAVE_HOME/cache/models``.
        log_dir: the inference log directory; default ``$PAVE_HOME/inference-log``.
        log_sample_rate: the share of requests written to the inference log (0 turns it off).
        log_max_bytes, log_max_age: rotation of the inference log files.
        load_retry_after: seconds before a failed model load is tried again.
        auth: the token check of model routes and /metrics (``pave.serving.auth``); None: open
            (a gateway of a deployments file, with no store of tokens, on a private interface).
    """

    poll_interval: float = 0.5
    max_batch_size: int = 64
    max_batch_wait: float = 0.002
    tracking_uri: str | None = None
    model_cache: Path | None = None
    log_dir: Path | None = None
    log_sample_rate: float = 1.0
    log_max_bytes: int = 64 * 1024 * 1024
    log_max_age: float = 3600.0
    load_retry_after: float = 10.0
    auth: GatewayAuth | None = None


class _Disconnected(Exception):
    pass


class Gateway:
    """The ASGI application; build it with ``create_gateway``."""

    def __init__(self, settings: Settings, source: DeploymentSource, options: GatewayOptions) -> None:
        self.settings = settings
        self.options = options
        self.metrics = GatewayMetrics()
        tracking_uri = options.tracking_uri or settings.mlflow_db_url
        cache = options.model_cache or settings.home / "cache" / "models"

        def loader(uri: str) -> LoadedModel:
            return load_model(uri, tracking_uri=tracking_uri, cache_dir=cache)

        self.table = DeploymentTable(
            source,
            loader,
            self.metrics,
            BatchPolicy(options.max_batch_size, options.max_batch_wait),
            options.load_retry_after,
        )
        self.inference_log = InferenceLog(
            options.log_dir or settings.inference_log_dir,
            sample_rate=options.log_sample_rate,
            max_bytes=options.log_max_bytes,
            max_age=options.log_max_age,
        )
        self.max_body = settings.max_request_bytes
        hosts = settings.allowed_hosts
        self._any_host = "*" in hosts
        self._hosts = frozenset(h.encode("latin-1").lower() for h in hosts)
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._poller: asyncio.Task[None] | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._server_metadata = orjson.dumps({"name": "pave", "version": pave.__version__, "extensions": []})
        self._openapi = orjson.dumps(
            openapi_document(pave.__version__, token_required=options.auth is not None)
        )

    # --- lifecycle -----------------------------------------------------------------------------------

    async def startup(self) -> None:
        """Sync the deployments once (loading their models), then poll in the background."""
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self._started:
                return
            self.inference_log.start()
            try:
                await self.table.refresh()
            except Exception:
                log.exception("gateway: the first read of the deployments failed; retrying")
            # Everything alive now (libraries, models) lives as long as the process: keep it out of
            # the garbage collector's full passes, whose pauses otherwise show up as tail latency.
            gc.freeze()
            self._poller = asyncio.create_task(self._poll())
            self._started = True

    async def shutdown(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        if self._background:
            await asyncio.wait(list(self._background), timeout=5)
        await self.table.close()
        await asyncio.get_running_loop().run_in_executor(None, self.inference_log.close)
        self._started = False

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            try:
                await self.table.refresh()
                self.table.reap()
            except Exception:
                log.exception("gateway: syncing the deployments failed; the current ones stay")

    # --- ASGI ----------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                await self.startup()
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Any, send: Any) -> None:
        if not self._any_host and not self._host_allowed(scope):
            await _respond(send, 400, error_body("host not allowed"))
            return
        path: str = scope["path"]
        method: str = scope["method"]
        parts = path.strip("/").split("/")
        try:
            if parts[0] != "v2":
                if path != "/metrics":
                    raise NotFound(f"no route {path}")
                if method not in _READ_METHODS:
                    raise _MethodNotAllowed(method)
                await self._authorize(scope, METRICS)
                await _respond(send, 200, self.metrics.render(), CONTENT_TYPE.encode())
                return
            if len(parts) >= 3 and parts[1] == "models" and parts[2]:
                await self._authorize(scope, parts[2])
                await self._model_route(scope, receive, send, parts[2], parts[3:])
                return
            if len(parts) > 1 and parts[1:] not in (
                ["health", "live"],
                ["health", "ready"],
                ["openapi.json"],
            ):
                raise NotFound(f"no route {path}")
            if method not in _READ_METHODS:
                raise _MethodNotAllowed(method)
            if len(parts) == 1:
                await _respond(send, 200, self._server_metadata)
            elif parts[1] == "openapi.json":
                await _respond(send, 200, self._openapi)
            elif parts[1:] == ["health", "live"]:
                await _respond(send, 200, b'{"live":true}')
            elif parts[1:] == ["health", "ready"]:
                if not self.table.synced:
                    raise Unavailable("the gateway has not read its deployments yet")
                await _respond(send, 200, b'{"ready":true}')
        except _Disconnected:
            return
        except PaveError as exc:
            self.metrics.unrouted_errors.labels(str(exc.status_code)).inc()
            await _respond(send, exc.status_code, error_body(exc.message))

    async def _authorize(self, scope: Scope, deployment: str) -> None:
        """Raise the refusal (401/403) of a caller the token check refuses; no-op without one."""
        auth = self.options.auth
        if auth is None:
            return
        authorization = next((v for k, v in scope["headers"] if k == b"authorization"), None)
        known, refusal = auth.cached(authorization, deployment)
        if not known:
            refusal = await asyncio.to_thread(auth.check, authorization, deployment)
        if refusal is not None:
            raise refusal

    def _host_allowed(self, scope: Scope) -> bool:
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.lower()
                # "[::1]:8080" -> "[::1]", "example.org:8080" -> "example.org"
                host = host[: host.find(b"]") + 1] if host.startswith(b"[") else host.partition(b":")[0]
                return host in self._hosts
        return True  # HTTP/1.0 without Host: nothing to rebind

    async def _model_route(self, scope: Scope, receive: Any, send: Any, name: str, rest: list[str]) -> None:
        version: str | None = None
        if rest[:1] == ["versions"]:
            if len(rest) < 2 or not rest[1]:
                raise NotFound(f"no route {scope['path']}")
            version, rest = rest[1], rest[2:]
        action = rest[0] if rest else ""
        if len(rest) > 1 or action not in ("", "ready", "infer"):
            raise NotFound(f"no route {scope['path']}")
        method = scope["method"]
        if action == "infer":
            if method not in _INFER_METHODS:
                raise _MethodNotAllowed(method)
            await self._infer(scope, receive, send, name, version)
            return
        if method not in _READ_METHODS:
            raise _MethodNotAllowed(method)
        entry = self._entry(name)
        runtime = self._runtime(entry, version or entry.main_version)
        if action == "ready":
            await self._ready(send, entry, version)
        else:
            await self._metadata(send, entry, runtime)

    # --- model endpoints -----------------------------------------------------------------------------

    def _entry(self, name: str) -> Entry:
        entry = self.table.entries.get(name)
        if entry is None:
            if not self.table.synced:
                raise Unavailable("the gateway has not read its deployments yet")
            raise NotFound(f"model '{name}' is not deployed on this gateway")
        return entry

    @staticmethod
    def _runtime(entry: Entry, version: str) -> ModelRuntime:
        runtime = entry.runtimes.get(version)
        if runtime is None:
            raise NotFound(
                f"model '{entry.deployment.name}' has no version {version}; "
                f"deployed: {', '.join(entry.runtimes)}"
            )
        return runtime

    async def _ready(self, send: Any, entry: Entry, version: str | None) -> None:
        versions = [version] if version else [ref.version for ref in entry.deployment.versions]
        for v in versions:
            runtime = entry.runtimes[v]
            if runtime.state in ("failed", "loading"):
                raise Unavailable(runtime.error or f"model '{entry.deployment.name}' version {v} is loading")
        # a scaled-to-zero version is ready: the next request loads it and is answered
        await _respond(send, 200, orjson.dumps({"name": entry.deployment.name, "ready": True}))

    async def _metadata(self, send: Any, entry: Entry, runtime: ModelRuntime) -> None:
        if not runtime.platform:  # never loaded yet: loading tells what the model takes
            await runtime.ensure_loaded()
        body = {
            "name": entry.deployment.name,
            "versions": list(entry.runtimes),
            "platform": runtime.platform,
            "inputs": [t.to_dict() for t in runtime.inputs],
            "outputs": [t.to_dict() for t in runtime.outputs],
        }
        await _respond(send, 200, orjson.dumps(body), version=runtime.version)

    async def _infer(self, scope: Scope, receive: Any, send: Any, name: str, version: str | None) -> None:
        start = time.perf_counter()
        runtime: ModelRuntime | None = None
        request_id: str | None = None
        try:
            body = await self._read_body(scope, receive)
            request = parse_request(body)
            request_id = request.id
            entry = self._entry(name)
            routed = version is None
            if version is None:
                key = entry.router.sticky_key(scope["headers"], request.parameters)
                version = entry.router.pick(key)
            runtime = self._runtime(entry, version)
            open_requests = scope.get(OPEN_REQUESTS)  # set by Pave's HTTP protocol (http.py)
            alone = open_requests is not None and len(open_requests) <= 1
            try:
                model = runtime.model or await runtime.ensure_loaded()
                features, n_rows = model.schema.bind(request.inputs)
                outputs = await _predict(runtime, features, n_rows, alone)
            except (PaveError, _Disconnected):
                raise
            except Exception as exc:
                # A version that crashes (a bad canary) is answered for by the heaviest other version:
                # the failure is counted and logged for the rollout guards, the client never sees it.
                fallback = entry.router.fallback(runtime.version) if routed else None
                if fallback is None:
                    raise
                self._record_failure(runtime, request, exc, start)
                runtime = self._runtime(entry, fallback)
                model = runtime.model or await runtime.ensure_loaded()
                features, n_rows = model.schema.bind(request.inputs)
                outputs = await _predict(runtime, features, n_rows, alone)
            answer = encode_response(name, runtime.version, request.id, outputs, request.outputs)
        except _Disconnected:
            return
        except PaveError as exc:
            await self._fail(send, runtime, request_id, exc.status_code, exc.message)
            return
        except Exception as exc:  # a bug in the model or in Pave: answer, never crash the connection
            log.exception("inference on model '%s' failed", name)
            await self._fail(send, runtime, request_id, 500, f"inference failed: {type(exc).__name__}: {exc}")
            return
        # Counted before the answer goes out, as errors are: a client that has its answer and then
        # scrapes /metrics sees its request counted.
        latency = time.perf_counter() - start
        metrics = runtime.metrics
        metrics.requests.inc()
        metrics.latency.observe(latency)
        await _respond(send, 200, answer, version=runtime.version, request_id=request.id)
        sampled = self.inference_log.sampled()
        if sampled:
            self.inference_log.record(
                Record(
                    request.id,
                    name,
                    runtime.version,
                    time.time(),
                    latency,
                    features,
                    model.schema.order,
                    outputs,
                )
            )
        shadow = entry.shadow
        if shadow is not None and shadow is not runtime:
            task = asyncio.create_task(self._shadow(shadow, request, sampled))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    def _record_failure(
        self, runtime: ModelRuntime, request: InferenceRequest, exc: Exception, start: float
    ) -> None:
        log.warning(
            "version %s of '%s' failed (%s); answering with another version",
            runtime.version,
            runtime.deployment,
            type(exc).__name__,
        )
        runtime.metrics.error(500)
        self.inference_log.record(
            Record(
                request.id,
                runtime.deployment,
                runtime.version,
                time.time(),
                time.perf_counter() - start,
                None,
                (),
                {},
                error=f"{type(exc).__name__}: {exc}"[:500],
            )
        )

    async def _fail(
        self, send: Any, runtime: ModelRuntime | None, request_id: str | None, status: int, message: str
    ) -> None:
        if runtime is not None:
            runtime.metrics.error(status)
        else:
            self.metrics.unrouted_errors.labels(str(status)).inc()
        await _respond(
            send,
            status,
            error_body(message),
            request_id=request_id or new_id(),
            version=runtime.version if runtime is not None else None,
        )

    async def _shadow(self, runtime: ModelRuntime, request: InferenceRequest, sampled: bool) -> None:
        """Send a copy to the shadow version; its answer is logged, its failure only counted."""
        start = time.perf_counter()
        try:
            model = runtime.model or await runtime.ensure_loaded()
            features, n_rows = model.schema.bind(request.inputs)
            outputs = await runtime.predict(features, n_rows)
        except Exception as exc:
            runtime.metrics.shadow_error()
            log.debug("shadow version %s of '%s' failed: %s", runtime.version, runtime.deployment, exc)
            return
        if sampled:
            self.inference_log.record(
                Record(
                    request.id,
                    runtime.deployment,
                    runtime.version,
                    time.time(),
                    time.perf_counter() - start,
                    features,
                    model.schema.order,
                    outputs,
                    shadow=True,
                )
            )
        # Counted once its answer is queued for the log: whoever sees the count can flush the log
        # and find the answer there.
        runtime.metrics.shadow_requests.inc()

    async def _read_body(self, scope: Scope, receive: Any) -> bytes:
        content_type: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    raise InvalidInput("invalid Content-Length header") from None
                if declared > self.max_body:
                    raise PayloadTooLarge(
                        f"request body of {declared} bytes is over the limit of {self.max_body}"
                    )
            elif name == b"inference-header-content-length":
                raise InvalidInput(
                    "the binary tensor extension is not supported; send the tensors as JSON "
                    "(tritonclient: binary_data=False)"
                )
        if content_type is not None and not _is_json(content_type):
            raise _UnsupportedMediaType(
                f"content type {content_type.decode('latin-1')[:100]!r} is not accepted; "
                "send the request as application/json"
            )
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > self.max_body:
                raise PayloadTooLarge(f"request body is over the limit of {self.max_body} bytes")
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise PayloadTooLarge(f"request body is over the limit of {self.max_body} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _is_json(content_type: bytes) -> bool:
    """``application/json`` or a ``+json`` type, parameters (charset) aside."""
    media = content_type.partition(b";")[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


class _UnsupportedMediaType(UserError):
    status_code = 415
    code = "unsupported_media_type"


class _MethodNotAllowed(PaveError):
    status_code = 405
    code = "method_not_allowed"

    def __init__(self, method: str) -> None:
        super().__init__(f"method {method} is not allowed here")


async def _predict(runtime: ModelRuntime, features: Features, n_rows: int, alone: bool) -> dict[str, Any]:
    try:
        return await runtime.predict(features, n_rows, alone=alone)
    except (ValueError, TypeError, KeyError) as exc:
        # sklearn and pandas say "bad input" with these (NaN, unseen category, wrong width)
        raise InvalidInput(
            f"model '{runtime.deployment}' version {runtime.version} rejected the input: {exc}"
        ) from exc


async def _respond(
    send: Any,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    *,
    version: str | None = None,
    request_id: str | None = None,
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    if version is not None and _header_safe(version):
        headers.append((b"pave-model-version", version.encode()))
    if request_id is not None and _header_safe(request_id):
        headers.append((b"pave-inference-id", request_id.encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _header_safe(value: str) -> bool:
    """Only short printable ASCII goes into a header (a client's id must not inject headers)."""
    return len(value) <= 256 and value.isascii() and value.isprintable()


def create_gateway(
    settings: Settings, source: DeploymentSource, options: GatewayOptions | None = None
) -> Gateway:
    """Build the inference gateway ASGI app.

    Args:
        settings: Pave's settings (home, request size limit, allowed hosts, MLflow store).
        source: where the deployments come from; polled every ``options.poll_interval`` seconds.
        options: tuning; the defaults are the ones to use.

    Returns:
        An ASGI app; serve it with uvicorn (``pave.serving.server.run_gateway`` does).
    """
    return Gateway(settings, source, options or GatewayOptions())
