"""Spans of a pipeline run's steps, and the trace context a step's process and a job inherit.

Tracing is on in this process for these tests (``telemetry.configure`` with a real OTLP/HTTP
receiver); ``telemetry.shutdown`` sends what is buffered before the spans are checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from pave import telemetry
from pave.automation.jobs import Job, job_environment
from pave.config import Settings
from pave.pipelines.engine import run_pipeline
from pave.pipelines.executor import LocalExecutor
from pave.pipelines.spec_file import parse_spec
from pave_testing import OtlpReceiver

ProjectFactory = Callable[..., Path]

STEPS = """
import os


def parent(name: str) -> str:
    return os.environ.get("TRACEPARENT", "")


def both(left: str, right: str) -> list:
    return [left, right]
"""

SPEC = """
name: traced
steps:
  - {name: left, function: steps:parent, params: {name: left}}
  - {name: right, function: steps:parent, params: {name: right}}
  - {name: both, function: steps:both, inputs: {left: left, right: right}}
"""


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[OtlpReceiver]:
    """Tracing on in this process, to a receiver; off again afterwards."""
    found = OtlpReceiver()
    settings = Settings(home=tmp_path / "home", otlp_endpoint=found.url)
    assert telemetry.configure(settings, "pave-test")
    try:
        yield found
    finally:
        telemetry.shutdown()
        found.close()


def test_steps_are_spans_under_the_run_and_their_processes_get_their_span(
    receiver: OtlpReceiver, make_project: ProjectFactory
) -> None:
    root = make_project({"pave.yaml": SPEC, "steps.py": STEPS})
    with telemetry.span("pipeline run") as run:
        assert run is not None
        result = run_pipeline(
            parse_spec(SPEC),
            root,
            sources={},
            source_hashes={},
            cache_dir=None,
            log_dir=root / ".logs",
            executor=LocalExecutor(capacity=2),  # left and right in processes of their own, at once
        )
    telemetry.shutdown()  # sends the spans
    trace = format(run.get_span_context().trace_id, "032x")
    run_id = format(run.get_span_context().span_id, "016x")
    steps = {s.name: s for s in receiver.spans if s.name.startswith("step ")}
    assert set(steps) == {"step left", "step right", "step both"}
    assert all((s.trace_id, s.parent_id, s.service) == (trace, run_id, "pave-test") for s in steps.values())
    # each forked step saw its own span as TRACEPARENT
    left, right = result.output("both")
    assert left.startswith(f"00-{trace}-{steps['step left'].span_id}-")  # then the flags
    assert right.startswith(f"00-{trace}-{steps['step right'].span_id}-")


def test_a_failed_step_is_an_error_span(receiver: OtlpReceiver, make_project: ProjectFactory) -> None:
    spec = "name: broken\nsteps:\n  - {name: fail, function: steps:fail}\n"
    root = make_project({"pave.yaml": spec, "steps.py": "def fail():\n    raise ValueError('no data')\n"})
    with pytest.raises(Exception, match="no data"):
        run_pipeline(
            parse_spec(spec), root, sources={}, source_hashes={}, cache_dir=None, log_dir=root / ".logs"
        )
    telemetry.shutdown()
    (span,) = [s for s in receiver.spans if s.name == "step fail"]
    assert span.status == (2, "ValueError: no data")  # STATUS_CODE_ERROR
    assert span.parent_id == ""  # no run span around it here: a trace of its own


def test_a_job_gets_the_endpoint_and_its_parent_span(receiver: OtlpReceiver, tmp_path: Path) -> None:
    job = Job("loop-1", "churn", ("run",), "http://127.0.0.1:1", "t", tmp_path / "o", tmp_path / "e")
    with telemetry.span("retrain") as span:
        assert span is not None
        env = job_environment(job, tmp_path)
    context = span.get_span_context()
    assert env["TRACEPARENT"].startswith(f"00-{context.trace_id:032x}-{context.span_id:016x}-")
    assert env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] == f"{receiver.url}/v1/traces"
    telemetry.shutdown()
    assert "TRACEPARENT" not in job_environment(job, tmp_path)  # tracing off: nothing added
