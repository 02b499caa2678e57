"""OpenTelemetry tracing: off unless an OTLP endpoint is set; then spans go out over OTLP/HTTP.

Each process that traces calls :func:`configure` once with its settings and its service name
(``pave-control-plane``, ``pave-gateway``, ``pave-run``; ``OTEL_SERVICE_NAME`` overrides it).
The endpoint is ``otlp_endpoint`` (``PAVE_OTLP_ENDPOINT``), else the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (the full URL) or ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base URL,
``/v1/traces`` appended); with none of them set nothing is imported, no span is made, and every
function here returns at its first line.

What makes spans:

- :func:`server_span`: one request (the control plane's and the gateway's), continuing the
  caller's W3C ``traceparent``;
- :func:`span`: anything else (a pipeline run, a step), under the current span or a given parent;
- ``TRACEPARENT``: a process started for a step or a job gets its parent in this environment
  variable (:func:`child_environment` for jobs, :func:`environment` for steps), and
  :func:`configure` continues it.

Pave keeps its own tracer provider (the global one stays the application's, and MLflow's stays
MLflow's); the trace id of the current span is in JSON log lines (``pave.logs``) and in the
inference log (:func:`trace_id`).
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from pave.errors import MissingExtra

if TYPE_CHECKING:
    from opentelemetry.trace import Span

    from pave.config import Settings

TRACEPARENT = "TRACEPARENT"  # the environment variable a child process finds its parent in
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()
_state: dict[str, Any] = {"tracer": None, "provider": None, "endpoint": None}


def endpoint(settings: Settings) -> str | None:
    """Where spans are POSTed (the full ``.../v1/traces`` URL), or ``None``: tracing is off."""
    if settings.otlp_endpoint:
        return settings.otlp_endpoint.rstrip("/") + "/v1/traces"
    traces = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None


def enabled() -> bool:
    """Whether this process makes spans."""
    return _state["tracer"] is not None


def configure(settings: Settings, service: str) -> bool:
    """Start tracing in this process when an endpoint is set; whether it is on.

    Called again (a second app in one process, a test), it keeps the first provider.

    Raises:
        MissingExtra: an endpoint is set but the OTLP exporter (``pave[otel]``) is not installed.
    """
    url = endpoint(settings)
    if url is None or _state["tracer"] is not None:
        return _state["tracer"] is not None
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError:
        raise MissingExtra("OpenTelemetry tracing (otlp_endpoint is set)", "otel") from None
    from opentelemetry import context as otel_context
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

    import pave

    resource = Resource.create(
        {
            "service.name": os.environ.get("OTEL_SERVICE_NAME") or service,
            "service.version": pave.__version__,
        }
    )
    provider = TracerProvider(
        resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio))
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    _state["provider"], _state["endpoint"] = provider, url
    _state["tracer"] = provider.get_tracer("pave", pave.__version__)
    inherited = os.environ.get(TRACEPARENT)
    if inherited:  # a step's or a job's process: its spans continue the parent's trace
        otel_context.attach(_extract({"traceparent": inherited}))
    return True


def shutdown() -> None:
    """Send the spans still buffered and stop (also done at exit)."""
    provider = _state["provider"]
    if provider is not None:
        provider.shutdown()
    _state["tracer"] = _state["provider"] = _state["endpoint"] = None


def _extract(carrier: Mapping[str, str]) -> Any:
    return _propagator().extract(carrier)


@functools.cache
def _propagator() -> Any:
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    return TraceContextTextMapPropagator()


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {
        key.decode("latin-1"): value.decode("latin-1")
        for key, value in raw
        if key in (b"traceparent", b"tracestate")
    }


def server_span(
    name: str, headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]], attributes: Mapping[str, Any]
) -> contextlib.AbstractContextManager[Span | None]:
    """The span of one request received, child of the caller's ``traceparent`` if it sent one.

    Args:
        name: ``METHOD /path`` (rename it with ``span.update_name`` once the route is known).
        headers: the request's headers: a lower-cased dict, or ASGI's list of byte pairs.
        attributes: e.g. ``http.request.method``, ``url.path``.
    """
    tracer = _state["tracer"]
    if tracer is None:
        return _OFF
    from opentelemetry.trace import SpanKind

    carrier = headers if isinstance(headers, Mapping) else _headers(headers)
    return tracer.start_as_current_span(
        name, context=_extract(carrier), kind=SpanKind.SERVER, attributes=dict(attributes)
    )


def span(
    name: str, attributes: Mapping[str, Any] | None = None, parent: Any = None
) -> contextlib.AbstractContextManager[Span | None]:
    """A span under the current one (or under ``parent``, a context from :func:`current`)."""
    tracer = _state["tracer"]
    if tracer is None:
        return _OFF
    return tracer.start_as_current_span(name, context=parent, attributes=dict(attributes or {}))


def current() -> Any:
    """The current context, to make spans under it on another thread (``span(parent=...)``)."""
    if _state["tracer"] is None:
        return None
    from opentelemetry import context as otel_context

    return otel_context.get_current()


def answered(span: Span | None, status: int) -> None:
    """Record a request's answer on its span: the status code, and an error from 500 on."""
    if span is None:
        return
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        from opentelemetry.trace import Status, StatusCode

        span.set_status(Status(StatusCode.ERROR))


def failed(span: Span | None, error: BaseException) -> None:
    """Mark a span as failed with ``error`` (a step's, a run's)."""
    if span is None:
        return
    from opentelemetry.trace import Status, StatusCode

    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"[:500]))


def trace_id() -> str | None:
    """The current span's trace id (32 hex digits), or ``None`` (no span, tracing off)."""
    if _state["tracer"] is None:
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def traceparent() -> str | None:
    """The current span as a W3C ``traceparent`` value, or ``None``."""
    if _state["tracer"] is None:
        return None
    carrier: dict[str, str] = {}
    _propagator().inject(carrier)
    return carrier.get("traceparent")


def inject(headers: dict[str, str]) -> dict[str, str]:
    """Add the current span's ``traceparent`` to outgoing request headers (unchanged when off)."""
    value = traceparent()
    if value:
        headers["traceparent"] = value
    return headers


def child_environment() -> dict[str, str]:
    """What a process this one starts (a job) needs to trace, under the current span if any.

    Empty when tracing is off. The endpoint goes along, since a job's environment holds nothing
    else of its parent's; the sampling decision travels in ``traceparent``.
    """
    url = _state["endpoint"]
    if url is None:
        return {}
    parent = traceparent()
    return {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": url, **({TRACEPARENT: parent} if parent else {})}


@contextlib.contextmanager
def environment(value: str | None) -> Iterator[None]:
    """Set ``TRACEPARENT`` for a process's children while inside (a forked step, a Ray worker)."""
    if not value:
        yield
        return
    previous = os.environ.get(TRACEPARENT)
    os.environ[TRACEPARENT] = value
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(TRACEPARENT, None)
        else:
            os.environ[TRACEPARENT] = previous
