"""OpenTelemetry traces on a live platform, received by a real OTLP/HTTP endpoint.

There is no collector binary here: the receiver (``pave_testing.OtlpReceiver``) is an HTTP server
in this process that accepts ``POST /v1/traces``, decodes the protobuf body with
``opentelemetry-proto`` (what a collector does) and keeps the spans. A real ``pave up`` sends its
spans there; so do ``pave run`` and the gateway that ``pave up`` starts.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pave.serving.inference_log import read_inference_log
from pave_testing import OtlpReceiver, PaveServer, run_pave

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SERVER = 2  # OTLP's Span.SpanKind value


def _traceparent() -> tuple[str, str, str]:
    trace, parent = secrets.token_hex(16), secrets.token_hex(8)
    return f"00-{trace}-{parent}-01", trace, parent


def _input_names(server: PaveServer, model: str) -> list[str]:
    """The model's inputs, once the gateway has it ready."""
    gateway, auth = server.gateway_url, server.gateway_headers
    deadline = time.monotonic() + 120
    while httpx.get(f"{gateway}/v2/models/{model}/ready", headers=auth, timeout=5).status_code != 200:
        assert time.monotonic() < deadline, f"{model} not ready on the gateway"
        time.sleep(0.2)
    metadata = httpx.get(f"{gateway}/v2/models/{model}", headers=auth, timeout=5).json()
    return [i["name"] for i in metadata["inputs"]]


def _predict(server: PaveServer, model: str, headers: dict[str, str]) -> httpx.Response:
    inputs = [
        {"name": name, "datatype": "FP64", "shape": [1], "data": [1.0]}
        for name in _input_names(server, model)
    ]
    return httpx.post(
        f"{server.gateway_url}/v2/models/{model}/infer",
        json={"inputs": inputs},
        headers=server.gateway_headers | headers,
        timeout=60,
    )


def _logged(home: Path, inference_id: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = read_inference_log(home / "inference-log")
        rows = frame[frame["id"] == inference_id]
        if len(rows):
            row: dict[str, Any] = rows.iloc[0].to_dict()
            return row
        time.sleep(0.1)
    raise AssertionError(f"inference {inference_id} not in the inference log after {timeout}s")


def _access_records(log: Path, trace: str) -> list[tuple[str, int]]:
    """The JSON access records of a log written under the trace ``trace``."""
    deadline = time.monotonic() + 30
    while True:
        records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        found = [
            (r["path"], r["status"])
            for r in records
            if r.get("logger") == "pave.access" and r.get("trace_id") == trace
        ]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A platform tracing to a receiver, with a project run and deployed (model ``obs``)."""
    receiver = OtlpReceiver()
    home = tmp_path_factory.mktemp("pave-otel")
    server = PaveServer.up(
        home, PAVE_OTLP_ENDPOINT=receiver.url, OTEL_BSP_SCHEDULE_DELAY="100", PAVE_LOG_FORMAT="json"
    )
    try:
        server.wait_gateway()
        env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token}
        project = home / "obs"
        created = run_pave("new", "obs", "-t", "tabular-classification", "--dir", str(project), env=env)
        assert created.returncode == 0, created.stderr
        run_parent, run_trace, run_parent_id = _traceparent()
        ran = run_pave("run", str(project), "--json", env=env | {"TRACEPARENT": run_parent}, timeout=600)
        assert ran.returncode == 0, ran.stderr[-2000:]
        deployed = run_pave("deploy", "obs", "--version", "1", env=env)
        assert deployed.returncode == 0, deployed.stderr
        yield {
            "receiver": receiver,
            "server": server,
            "run": (run_trace, run_parent_id),
        }
    finally:
        server.stop()
        receiver.close()


def test_a_control_plane_request_continues_the_callers_trace(traced: dict[str, Any]) -> None:
    receiver: OtlpReceiver = traced["receiver"]
    server: PaveServer = traced["server"]
    header, trace, parent = _traceparent()
    with server.client() as client:
        assert client.get("/api/v1/projects/obs", headers={"traceparent": header}).status_code == 200
    span = receiver.wait_for("of GET /api/v1/projects/obs", lambda s: s.trace_id == trace)
    assert span.service == "pave-control-plane"
    assert span.parent_id == parent
    assert span.kind == SERVER
    assert span.name == "GET /api/v1/projects/{name}"  # the route's template, not the path
    assert span.attributes["http.response.status_code"] == 200
    assert span.attributes["url.path"] == "/api/v1/projects/obs"
    assert _access_records(server.log, trace) == [("/api/v1/projects/obs", 200)]


def test_a_pipeline_run_is_a_span_with_its_steps_under_it(traced: dict[str, Any]) -> None:
    receiver: OtlpReceiver = traced["receiver"]
    trace, parent = traced["run"]
    run = receiver.wait_for("pipeline run", lambda s: s.name == "pipeline run" and s.trace_id == trace)
    assert run.service == "pave-run"
    assert run.parent_id == parent  # TRACEPARENT in the environment of `pave run`
    assert run.attributes["pave.project"] == "obs"
    assert run.attributes["pave.run_status"] == "FINISHED"
    receiver.wait_for("of the last step", lambda s: s.name == "step evaluate" and s.trace_id == trace)
    steps = {s.name: s for s in receiver.spans if s.name.startswith("step ") and s.trace_id == trace}
    assert {"step train", "step evaluate"} <= set(steps), sorted(steps)
    assert all(s.parent_id == run.span_id and s.service == "pave-run" for s in steps.values())
    assert steps["step train"].attributes["pave.attempts"] == 1
    # What `pave run` asked of the platform is in the same trace: under the pipeline run (its data
    # versions, its code snapshot) or, before and after it, under the caller's TRACEPARENT.
    called = [s for s in receiver.spans if s.service == "pave-control-plane" and s.trace_id == trace]
    under_run = [s.name for s in called if s.parent_id == run.span_id]
    assert under_run, "no control-plane span under the pipeline run"
    assert {s.parent_id for s in called} <= {run.span_id, parent}, [(s.name, s.parent_id) for s in called]


def test_a_prediction_is_a_gateway_span_whose_trace_id_is_in_the_inference_log(
    traced: dict[str, Any],
) -> None:
    receiver: OtlpReceiver = traced["receiver"]
    server: PaveServer = traced["server"]
    header, trace, parent = _traceparent()
    answer = _predict(server, "obs", {"traceparent": header})
    assert answer.status_code == 200, answer.text
    inference_id = answer.headers["pave-inference-id"]
    span = receiver.wait_for(
        "of the prediction", lambda s: s.attributes.get("pave.inference_id") == inference_id
    )
    assert span.service == "pave-gateway"
    assert (span.trace_id, span.parent_id, span.kind) == (trace, parent, SERVER)
    assert span.name == "POST /v2/models/obs/infer"
    assert span.attributes["http.response.status_code"] == 200
    assert _logged(server.home, inference_id)["trace_id"] == span.trace_id
    gateway_log = server.home / "logs" / "gateway.log"
    assert _access_records(gateway_log, trace) == [("/v2/models/obs/infer", 200)]

    # without a caller's trace, the gateway starts one: the log carries that one
    answer = _predict(server, "obs", {})
    inference_id = answer.headers["pave-inference-id"]
    span = receiver.wait_for(
        "of the second prediction", lambda s: s.attributes.get("pave.inference_id") == inference_id
    )
    assert span.parent_id == ""
    assert _logged(server.home, inference_id)["trace_id"] == span.trace_id


def test_a_grpc_prediction_is_a_span_too(traced: dict[str, Any]) -> None:
    import numpy as np
    import tritonclient.grpc as grpcclient

    receiver: OtlpReceiver = traced["receiver"]
    server: PaveServer = traced["server"]
    header, trace, parent = _traceparent()
    inputs = []
    for name in _input_names(server, "obs"):
        tensor = grpcclient.InferInput(name, [1], "FP64")
        tensor.set_data_from_numpy(np.array([1.0]))
        inputs.append(tensor)
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{server.env['PAVE_GATEWAY_GRPC_PORT']}")
    try:
        client.infer(
            "obs", inputs, headers={"authorization": f"Bearer {server.token}", "traceparent": header}
        )
    finally:
        client.close()
    span = receiver.wait_for("of the gRPC prediction", lambda s: s.trace_id == trace)
    assert span.service == "pave-gateway"
    assert (span.name, span.parent_id) == ("inference.GRPCInferenceService/ModelInfer", parent)


def test_with_tracing_off_nothing_is_exported(tmp_path: Path) -> None:
    """OTLP's default endpoint (127.0.0.1:4318) listens, yet a platform without one set sends nothing."""
    try:
        receiver = OtlpReceiver(4318)
    except OSError:
        pytest.skip("port 4318 (OTLP's default) is taken on this machine")
    environ = {k: v for k, v in os.environ.items() if k.startswith("OTEL_")}
    assert not environ, f"the test's environment sets {sorted(environ)}"
    server = PaveServer.up(tmp_path / "home", OTEL_BSP_SCHEDULE_DELAY="100")
    try:
        header, _, _ = _traceparent()
        with server.client() as client:
            assert client.get("/api/v1/projects", headers={"traceparent": header}).status_code == 200
        gateway = server.wait_gateway()
        assert httpx.get(f"{gateway}/v2/health/live", headers={"traceparent": header}, timeout=5).is_success
    finally:
        server.stop()  # a process that traces sends what it still holds as it exits
    receiver.close()
    assert (receiver.posts, receiver.spans) == (0, [])
