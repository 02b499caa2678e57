"""The inference gateway: an ASGI application speaking Open Inference Protocol v2 over REST.

Routes::

    GET  /v2/health/live                                 {"live": true}
    GET  /v2/health/ready                                {"ready": true} once every worker synced
    GET  /v2                                             server metadata
    GET  /v2/models/{name}[/versions/{version}]          model metadata (from the MLflow signature)
    GET  /v2/models/{name}[/versions/{version}]/ready    {"name", "ready"} or 503 (every worker's)
    POST /v2/models/{name}[/versions/{version}]/infer    inference; the router picks the version
    GET  /v2/openapi.json                                this API in OpenAPI 3.1 (``openapi.py``)
    GET  /metrics                                        Prometheus metrics (summed over workers)

Errors answer ``{"error": "..."}`` with 400 (bad input), 404 (unknown model or version), 405,
413 (body too large), 415 (a body that is not JSON: a pickle is refused unread) or 503 (not
ready). A ready answer holds for every worker process of the gateway (``readiness.py``). Every
inference answer carries the version that answered
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
from pave import logs, telemetry
from pave.config import Settings
from pave.errors import InvalidInput, NotFound, PaveError, RateLimited, Unavailable
from pave.serving import binary, compression, explain, v1
from pave.serving.auth import METRICS, GatewayAuth
from pave.serving.batching import OPEN_REQUESTS
from pave.serving.body import Body, Disconnected, read_body
from pave.serving.deployments import DeploymentSource
from pave.serving.inference_log import InferenceLog
from pave.serving.loading import LoadedModel, load_model
from pave.serving.metrics import CONTENT_TYPE, GatewayMetrics
from pave.serving.openapi import openapi_document
from pave.serving.outcomes import Inference, Outcomes, VersionFailed, answered
from pave.serving.protocol import InferenceRequest, error_body, new_id, output_names
from pave.serving.readiness import (
    LOAD_FAILED_HEADER,
    LoadFailed,
    Workers,
    gateway_models,
    model_unready,
    server_unready,
    state,
)
from pave.serving.runtime import BatchPolicy, ModelRuntime
from pave.serving.shipping import LogShipper
from pave.serving.table import DeploymentTable, Entry

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Message = dict[str, Any]
JSON = b"application/json"
OCTETS = b"application/octet-stream"
_INFER_METHODS = ("POST",)
# The collector's thresholds in a gateway process (CPython's default: 700, 10, 10). A young
# collection runs when the objects allocated and not yet freed pass the first number; at
# concurrency 64 the requests in flight alone hold thousands (the template's 30 named inputs are
# about 100 dicts and lists a request), so the default ran a collection every few requests, each
# walking every open request's objects (and promoting them, to be walked again by the older
# generations). Freed by reference counting long before the collector would look, they cost
# nothing at 50,000; cyclic garbage waits a little longer.
GC_THRESHOLDS = (50_000, 20, 100)
READ_METHODS = ("GET", "HEAD")
_MAX_ROUTES = 1024  # infer paths remembered (any model name a caller sends, so bounded)


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
        ship_log: ship the inference log to the object store (``serving/shipping.py``); the log
            is then written to ``$PAVE_HOME/spool/inference-log`` unless ``log_dir`` is given.
        grpc_port: serve OIP over gRPC on this port too (``grpc_server.py``); None: REST only.
        envs_dir: where per-model environments are built (``environments.py``); default
            ``$PAVE_HOME/envs``.
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
    ship_log: bool = False
    grpc_port: int | None = None
    envs_dir: Path | None = None


class Gateway:
    """The ASGI application; build it with ``create_gateway``."""

    def __init__(self, settings: Settings, source: DeploymentSource, options: GatewayOptions) -> None:
        self.settings = settings
        self.options = options
        self.metrics = GatewayMetrics()
        tracking_uri = options.tracking_uri or settings.mlflow_db_url
        cache = options.model_cache or settings.home / "cache" / "models"
        envs = options.envs_dir or settings.envs_dir

        def loader(uri: str) -> LoadedModel:
            return load_model(uri, tracking_uri=tracking_uri, cache_dir=cache, envs_dir=envs)

        self.table = DeploymentTable(
            source,
            loader,
            self.metrics,
            BatchPolicy(options.max_batch_size, options.max_batch_wait),
            options.load_retry_after,
            on_change=self.publish,
        )
        self.workers = Workers.from_env()  # the gateway's other workers, for the ready answers
        log_dir, max_age = options.log_dir or settings.inference_log_dir, options.log_max_age
        self.shipper: LogShipper | None = None
        if options.ship_log:
            log_dir = options.log_dir or settings.home / "spool" / "inference-log"
            self.shipper = LogShipper(settings, log_dir)
            max_age = min(max_age, settings.inference_log_ship_interval)
        self.inference_log = InferenceLog(
            log_dir,
            sample_rate=options.log_sample_rate,
            max_bytes=options.log_max_bytes,
            max_age=max_age,
            on_closed=self.shipper.closed if self.shipper is not None else None,
        )
        # What every protocol's route calls once run_inference returned or raised (outcomes.py).
        self.outcomes = Outcomes(self.metrics, self.inference_log)
        self.answered = answered
        self.follow_up = self.outcomes.follow_up
        self.failure = self.outcomes.failure
        self.max_body = settings.max_request_bytes
        hosts = settings.allowed_hosts
        self._any_host = "*" in hosts
        self._hosts = frozenset(h.encode("latin-1").lower() for h in hosts)
        # path -> (model, version or None) of the infer routes asked for: parsed once a path
        self._infer_routes: dict[str, tuple[str, str | None]] = {}
        self._started = False
        self._start_lock: asyncio.Lock | None = None
        self._poller: asyncio.Task[None] | None = None
        self._grpc: Any = None
        self._gc_thresholds: tuple[int, int, int] | None = None  # the process's, while it serves
        self._server_metadata = orjson.dumps(
            {"name": "pave", "version": pave.__version__, "extensions": [binary.EXTENSION]}
        )
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
            if self.shipper is not None:
                self.shipper.start()
            try:
                await self.table.refresh()
            except Exception:
                log.exception("gateway: the first read of the deployments failed; retrying")
            self.publish()
            # Everything alive now (libraries, models) lives as long as the process: keep it out of
            # the garbage collector's full passes, whose pauses otherwise show up as tail latency.
            gc.freeze()
            self._gc_thresholds = gc.get_threshold()
            gc.set_threshold(*GC_THRESHOLDS)
            self._poller = asyncio.create_task(self._poll())
            if self.options.grpc_port:
                from pave.serving.grpc_server import start_server

                self._grpc = await start_server(self, self.settings.gateway_host, self.options.grpc_port)
            self._started = True

    async def shutdown(self) -> None:
        if self._grpc is not None:
            await self._grpc.stop(5)
            self._grpc = None
        if self._poller is not None:
            self._poller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poller
        self.workers.withdraw()
        await self.outcomes.drain(5)
        await self.table.close()
        self.metrics.fold()  # the last counts, into the worker's file before the loop stops
        await asyncio.get_running_loop().run_in_executor(None, self.inference_log.close)
        if self.shipper is not None:
            await asyncio.get_running_loop().run_in_executor(None, self.shipper.close)
        if self._gc_thresholds is not None:
            gc.set_threshold(*self._gc_thresholds)
            self._gc_thresholds = None
        self._started = False

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.options.poll_interval)
            try:
                await self.table.refresh()
                self.table.reap()
            except Exception:
                log.exception("gateway: syncing the deployments failed; the current ones stay")
            self.publish()  # what requests loaded or unloaded, or a load that failed, since the last
            await self._heartbeat()

    def publish(self) -> None:
        """Publish what this worker can answer for to the gateway's other workers (``readiness.py``)."""
        self.workers.publish(state(self.table))

    async def _heartbeat(self) -> None:
        """Tell the store this gateway is alive and what it has loaded (a store source only)."""
        source = self.table.source
        due = getattr(source, "heartbeat_due", None)
        if due is None or not due():
            return
        # every worker writes the gateway's one row: what all the live workers have, not its own only
        models = gateway_models([state(self.table), *self.workers.others()])
        info = {"models": models, "synced": self.table.synced, "version": pave.__version__}
        try:
            await asyncio.to_thread(source.heartbeat, info)  # type: ignore[attr-defined]
        except Exception as exc:  # the store away: serving goes on, the heartbeat comes back with it
            log.warning("gateway: the heartbeat could not be written (%s)", type(exc).__name__)

    # --- ASGI ----------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "http":
            if not self._started:
                await self.startup()
            if logs.json_enabled() or telemetry.enabled():
                await self._http_observed(scope, receive, send)
            else:
                await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _http_observed(self, scope: Scope, receive: Any, send: Any) -> None:
        """``_http`` with an access record whose request id is the inference id (JSON logs) and a
        span (tracing); the inference log record written inside carries the span's trace id."""
        started = time.perf_counter()
        answer: dict[str, Any] = {"status": 500, "id": None}

        async def tracked(message: Any) -> None:
            if message["type"] == "http.response.start":
                answer["status"] = message["status"]
                for key, value in message.get("headers", ()):
                    if key == b"pave-inference-id":
                        answer["id"] = value.decode("latin-1")
            await send(message)

        method, path = scope["method"], scope["path"]
        attributes = {"http.request.method": method, "url.path": path}
        with telemetry.server_span(f"{method} {path}", scope["headers"], attributes) as span:
            try:
                await self._http(scope, receive, tracked)
            finally:
                seconds = time.perf_counter() - started
                logs.access(method, path, answer["status"], seconds, answer["id"])
                if span is not None:
                    telemetry.answered(span, answer["status"])
                    if answer["id"]:
                        span.set_attribute("pave.inference_id", answer["id"])

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
            await respond(send, 400, error_body("host not allowed"))
            return
        path: str = scope["path"]
        method: str = scope["method"]
        try:
            infer = self._infer_routes.get(path)
            if infer is not None and method in _INFER_METHODS:  # the hot path: a route seen before
                await self.authorize(scope, infer[0])
                await self._infer(scope, receive, send, *infer)
                return
            parts = path.strip("/").split("/")
            if parts[0] == "v1" and len(parts) > 1:
                await v1.route(self, scope, receive, send, parts)
                return
            if parts[0] != "v2":
                if path != "/metrics":
                    raise NotFound(f"no route {path}")
                if method not in READ_METHODS:
                    raise MethodNotAllowed(method)
                await self.authorize(scope, METRICS)
                await respond(send, 200, self.metrics.render(), CONTENT_TYPE.encode())
                return
            if len(parts) >= 3 and parts[1] == "models" and parts[2]:
                await self.authorize(scope, parts[2])
                await self._model_route(scope, receive, send, parts[2], parts[3:])
                return
            if len(parts) > 1 and parts[1:] not in (
                ["health", "live"],
                ["health", "ready"],
                ["openapi.json"],
            ):
                raise NotFound(f"no route {path}")
            if method not in READ_METHODS:
                raise MethodNotAllowed(method)
            if len(parts) == 1:
                await respond(send, 200, self._server_metadata)
            elif parts[1] == "openapi.json":
                await respond(send, 200, self._openapi)
            elif parts[1:] == ["health", "live"]:
                await respond(send, 200, b'{"live":true}')
            elif parts[1:] == ["health", "ready"]:
                self.check_server_ready()
                await respond(send, 200, b'{"ready":true}')
        except Disconnected:
            return
        except PaveError as exc:
            self.metrics.unrouted_errors.labels(str(exc.status_code)).inc()
            extra = [(b"retry-after", exc.retry_after_header)] if isinstance(exc, RateLimited) else None
            if isinstance(exc, LoadFailed):
                extra = [(LOAD_FAILED_HEADER.encode(), b"1")]
            await respond(send, exc.status_code, error_body(exc.message), extra=extra)

    async def authorize(self, scope: Scope, deployment: str) -> None:
        """Raise the refusal (401/403) of a caller the token check refuses; no-op without one."""
        if self.options.auth is None:
            return
        authorization = None
        for key, value in scope["headers"]:  # a loop, not next() on a generator: every request
            if key == b"authorization":
                authorization = value
                break
        await self.check_token(authorization, deployment)

    async def check_token(self, authorization: bytes | None, deployment: str) -> None:
        """The token check of one request's ``Authorization`` value (every protocol's)."""
        auth = self.options.auth
        if auth is None:
            return
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
        if len(rest) > 1 or action not in ("", "ready", "infer", "explain"):
            raise NotFound(f"no route {scope['path']}")
        method = scope["method"]
        if action == "explain":
            if method not in _INFER_METHODS:
                raise MethodNotAllowed(method)
            await explain.route(self, scope, receive, send, name, version)
            return
        if action == "infer":
            if method not in _INFER_METHODS:
                raise MethodNotAllowed(method)
            if len(self._infer_routes) < _MAX_ROUTES:
                self._infer_routes[scope["path"]] = (name, version)
            await self._infer(scope, receive, send, name, version)
            return
        if method not in READ_METHODS:
            raise MethodNotAllowed(method)
        if action == "ready":
            await self.ready(send, name, version)
            return
        entry = self.entry(name)
        await self.metadata(send, entry, self.runtime(entry, version or entry.main_version))

    # --- model endpoints -----------------------------------------------------------------------------

    def entry(self, name: str) -> Entry:
        entry = self.table.entries.get(name)
        if entry is None:
            if not self.table.synced:
                raise Unavailable("the gateway has not read its deployments yet")
            if name in self.table.arriving:
                raise Unavailable(
                    f"model '{name}' was just deployed and is loading on this gateway: retry in a few "
                    f"seconds (GET /v2/models/{name}/ready answers 200 once it is loaded)"
                )
            raise NotFound(f"model '{name}' is not deployed on this gateway")
        return entry

    @staticmethod
    def runtime(entry: Entry, version: str) -> ModelRuntime:
        runtime = entry.runtimes.get(version)
        if runtime is None:
            raise NotFound(
                f"model '{entry.deployment.name}' has no version {version}; "
                f"deployed: {', '.join(entry.runtimes)}"
            )
        return runtime

    def check_server_ready(self) -> None:
        """Raise Unavailable unless every worker of the gateway has read the deployments."""
        if not self.table.synced:
            raise Unavailable("the gateway has not read its deployments yet")
        reason = server_unready([state(self.table), *self.workers.others()])
        if reason is not None:
            raise Unavailable(reason)

    def check_model_ready(self, name: str, version: str | None) -> Entry:
        """The deployment's entry; raise unless its version (default: every routed one) can answer
        now in every worker of the gateway (NotFound: not deployed, or no such version)."""
        entry = self.entry(name)
        if version is not None and (name, version) in self.table.loading:
            raise Unavailable(f"model '{name}' version {version} is loading on this gateway")
        if version is not None:
            refused = self.table.refused.get((name, version))
            if refused is not None and version not in entry.runtimes:
                raise LoadFailed(
                    f"{refused}; the gateway keeps serving version {', '.join(entry.runtimes)} "
                    "(and retries the load)"
                )
            self.runtime(entry, version)
        self.check_ready(entry, version)
        reason = model_unready([state(self.table), *self.workers.others()], name, version)
        if reason is not None:
            raise Unavailable(reason)
        return entry

    @staticmethod
    def check_ready(entry: Entry, version: str | None) -> None:
        """Raise Unavailable unless the version (default: every routed one) can answer now in this
        worker."""
        versions = [version] if version else [ref.version for ref in entry.deployment.versions]
        for v in versions:
            runtime = entry.runtimes[v]
            if runtime.state == "failed":
                name = entry.deployment.name
                raise LoadFailed(runtime.error or f"model '{name}' version {v} failed to load")
            if runtime.state == "loading":
                raise Unavailable(f"model '{entry.deployment.name}' version {v} is loading")
        # a scaled-to-zero version is ready: the next request loads it and is answered

    async def ready(self, send: Any, name: str, version: str | None) -> None:
        self.check_model_ready(name, version)
        await respond(send, 200, orjson.dumps({"name": name, "ready": True}))

    @staticmethod
    async def describe(entry: Entry, runtime: ModelRuntime) -> dict[str, Any]:
        """The OIP model metadata of a version (every protocol's answer carries the same)."""
        if not runtime.platform:  # never loaded yet: loading tells what the model takes
            await runtime.ensure_loaded()
        return {
            "name": entry.deployment.name,
            "versions": list(entry.runtimes),
            "platform": runtime.platform,
            "inputs": [t.to_dict() for t in runtime.inputs],
            "outputs": [t.to_dict() for t in runtime.outputs],
        }

    async def metadata(self, send: Any, entry: Entry, runtime: ModelRuntime) -> None:
        body = await self.describe(entry, runtime)
        await respond(send, 200, orjson.dumps(body), version=runtime.version)

    async def _infer(self, scope: Scope, receive: Any, send: Any, name: str, version: str | None) -> None:
        start = time.perf_counter()
        inference: Inference | None = None
        request_id: str | None = None
        accept: bytes | None = None
        try:
            body = await read_body(scope, receive, self.max_body)  # Gateway.read_body, one await fewer
            accept = body.accept_encoding
            request = self.decode(body, name, version)
            request_id = request.id
            inference = await self.run_inference(
                name, version, request, scope["headers"], scope.get(OPEN_REQUESTS), start
            )
            names = output_names(name, inference.outputs, request.outputs)
            head = {"model_name": name, "model_version": inference.runtime.version, "id": request.id}
            answer, json_length = binary.encode_response(
                head, inference.outputs, names, request.binary_outputs
            )
        except Disconnected:
            return
        except Exception as exc:  # a bug in the model or in Pave is answered too, never a dropped connection
            runtime, status, message = self.failure(exc, name, inference)
            await respond(
                send,
                status,
                error_body(message),
                request_id=request_id or new_id(),
                version=runtime.version if runtime is not None else None,
            )
            return
        latency = self.answered(inference)
        extra = [] if json_length is None else [(binary.HEADER, str(json_length).encode())]
        await respond(
            send,
            200,
            answer,
            JSON if json_length is None else OCTETS,
            version=inference.runtime.version,
            request_id=request.id,
            extra=extra,
            accept=accept,
        )
        self.follow_up(inference, latency)

    async def run_inference(
        self,
        name: str,
        version: str | None,
        request: InferenceRequest,
        headers: list[tuple[bytes, bytes]],
        open_requests: Any = None,
        start: float | None = None,
    ) -> Inference:
        """Route a parsed request and predict: the one inference path of every protocol.

        The router picks the version unless ``version`` is given; a routed version that crashes is
        answered for by the heaviest other one (the failure counted and logged for the rollout
        guards). The caller encodes the outputs, then calls :meth:`answered` before it sends the
        answer and :meth:`follow_up` after.

        Args:
            open_requests: the server's set of open requests (``OPEN_REQUESTS``), when it tells.

        Raises:
            PaveError: the caller's error (400, 404) or an unavailable model (503), wrapped in
                :class:`VersionFailed` once a version is picked (:meth:`failure` unwraps it).
        """
        start = time.perf_counter() if start is None else start
        entry = self.entry(name)
        routed = version is None
        if version is None:
            key = entry.router.sticky_key(headers, request.parameters)
            version = entry.router.pick(key)
        runtime = self.runtime(entry, version)
        alone = open_requests is not None and len(open_requests) <= 1
        try:
            try:
                model = runtime.model or await runtime.ensure_loaded()
                features, n_rows = model.schema.bind_request(request)
                try:
                    outputs = await runtime.predict(features, n_rows, alone=alone)
                except _REJECTED as exc:
                    raise _rejected(runtime, exc) from exc
            except PaveError:
                raise
            except Exception as exc:
                # A version that crashes (a bad canary) is answered for by the heaviest other version:
                # the failure is counted and logged for the rollout guards, the client never sees it.
                fallback = entry.router.fallback(runtime.version) if routed else None
                if fallback is None:
                    raise
                self.outcomes.record_failure(runtime, request, exc, start)
                runtime = self.runtime(entry, fallback)
                model = runtime.model or await runtime.ensure_loaded()
                features, n_rows = model.schema.bind_request(request)
                try:
                    outputs = await runtime.predict(features, n_rows, alone=alone)
                except _REJECTED as error:
                    raise _rejected(runtime, error) from error
        except Exception as exc:
            raise VersionFailed(exc, runtime) from exc
        return Inference(request, entry, runtime, model, features, outputs, start)

    def decode(self, body: Body, name: str, version: str | None) -> InferenceRequest:
        """The request; a body in the deployment's own shape is decoded by its model's schema."""
        entry = self.table.entries.get(name)
        if entry is not None and body.binary_header is None:
            runtime = entry.runtimes.get(version or entry.main_version)
            decoder = runtime.model.schema.decoder if runtime is not None and runtime.model else None
            request = decoder.decode(body.data) if decoder is not None else None
            if request is not None:
                return request
        return body.parse()

    async def read_body(self, scope: Scope, receive: Any) -> Body:
        """The request body and what its headers say about it (checked: size, type, encoding)."""
        return await read_body(scope, receive, self.max_body)


class MethodNotAllowed(PaveError):
    status_code = 405
    code = "method_not_allowed"

    def __init__(self, method: str) -> None:
        super().__init__(f"method {method} is not allowed here")


# What sklearn and pandas raise for bad input (NaN, an unseen category, the wrong width).
_REJECTED = (ValueError, TypeError, KeyError)


def _rejected(runtime: ModelRuntime, exc: Exception) -> InvalidInput:
    """The 400 of a model that refused its input (one of ``_REJECTED``)."""
    return InvalidInput(f"model '{runtime.deployment}' version {runtime.version} rejected the input: {exc}")


async def respond(
    send: Any,
    status: int,
    body: bytes,
    content_type: bytes = JSON,
    *,
    version: str | None = None,
    request_id: str | None = None,
    extra: list[tuple[bytes, bytes]] | None = None,
    accept: bytes | None = None,
) -> None:
    """Send an answer; compressed when the caller accepts it and it is large enough to pay."""
    headers = [(b"content-type", content_type)]
    if accept is not None and len(body) >= compression.MIN_SIZE:
        encoding = compression.choose(accept)
        if encoding is not None:
            body = compression.deflate(body, encoding)
            headers.append((b"content-encoding", encoding))
    headers.append((b"content-length", str(len(body)).encode()))
    if extra:
        headers.extend(extra)
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
