"""How Pave's processes log: plain text, or one JSON object a line (``PAVE_LOG_FORMAT=json``).

In JSON every record of the process (Pave's, uvicorn's, MLflow's) is one line with ``ts``
(ISO 8601, UTC), ``level``, ``logger``, ``message`` and ``process``; ``request_id`` when the
record was written while a request was handled (the control plane's ``x-request-id``, the
gateway's inference id); ``trace_id`` when OpenTelemetry tracing is on and a span is current;
``exception`` with the traceback; and any ``extra=`` fields. Each answered request also gets an
access record (logger ``pave.access``: ``method``, ``path``, ``status``, ``duration_ms``), which
the text format leaves out, as before.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any

request_id: ContextVar[str | None] = ContextVar("pave_request_id", default=None)
access_log = logging.getLogger("pave.access")

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}
_state = {"json": False}


def json_enabled() -> bool:
    """Whether this process logs JSON lines (and so writes access records)."""
    return _state["json"]


def _trace_id() -> str | None:
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "process": record.process,
        }
        rid = getattr(record, "request_id", None) or request_id.get()
        if rid:
            out["request_id"] = rid
        trace = _trace_id()
        if trace:
            out["trace_id"] = trace
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(log_format: str, level: str = "info") -> None:
    """Send the process's records to stderr in ``log_format`` (``text`` or ``json``).

    JSON replaces the formatter of every handler already attached (``pave up``'s own log file,
    uvicorn's), so that no line of the process is left in text.
    """
    if log_format != "json":
        return
    _state["json"] = True
    logging.captureWarnings(True)  # a library's warning is a record too, not a bare stderr line
    formatter = JsonFormatter()
    root = logging.getLogger()
    if not root.handlers:
        root.addHandler(logging.StreamHandler(sys.stderr))
    root.setLevel(level.upper())
    for logger in [root, *(logging.getLogger(name) for name in list(logging.root.manager.loggerDict))]:
        for handler in getattr(logger, "handlers", []):
            handler.setFormatter(formatter)
    access_log.setLevel(logging.INFO)


def access(method: str, path: str, status: int, seconds: float, rid: str | None = None) -> None:
    """The access record of one answered request (JSON format only)."""
    if _state["json"]:
        access_log.info(
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                **({"request_id": rid} if rid else {}),
            },
        )
