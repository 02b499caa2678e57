"""OpenAPI-driven fuzzing of the control plane and the gateway: no 5xx, no answer that breaks its schema.

Schemathesis generates requests from ``/api/v1/openapi.json`` for every operation (bounded
examples) and sends them to a real ``pave up`` of its own, with an admin token and again with a
viewer's (whose requests mostly end in the gate's refusals: those must be clean 4xx too); then
from the gateway's ``/v2/openapi.json`` to that platform's own gateway, token checks on.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from pave_testing import PaveServer, World


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaveServer]:
    home = tmp_path_factory.mktemp("pave-fuzz")
    server = PaveServer.up(home)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def api_schema(fuzz_server: PaveServer) -> Any:
    schema = schemathesis.openapi.from_url(
        f"{fuzz_server.url}/api/v1/openapi.json", headers={"Authorization": f"Bearer {fuzz_server.token}"}
    )
    # Revoking tokens at random would revoke the fuzzer's own token and end the run early.
    return schema.exclude(operation_id="revoke_token")


def _fuzz(schema: Any, auth: dict[str, str], examples: int) -> dict[str, str]:
    failures: dict[str, str] = {}
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=examples, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def fuzz(case: Any) -> None:
            case.call_and_validate(headers=auth, checks=[not_a_server_error, response_schema_conformance])

        try:
            fuzz()
        except Exception as exc:  # collect them all, then report (a flaky one: what it first raised)
            causes = [exc, *getattr(exc, "exceptions", ())]
            failures[operation.label] = " | ".join(f"{e.__class__.__name__}: {str(e)[:800]}" for e in causes)
    return failures


@pytest.mark.slow
def test_control_plane_answers_every_generated_request_without_5xx(
    api_schema: Any, fuzz_server: PaveServer
) -> None:
    operations = list(api_schema.get_all_operations())
    assert len(operations) >= 15, "every operation of the control plane is fuzzed"
    assert _fuzz(api_schema, {"Authorization": f"Bearer {fuzz_server.token}"}, 20) == {}


@pytest.mark.slow
def test_control_plane_refuses_a_viewers_generated_requests_without_5xx(
    api_schema: Any, fuzz_server: PaveServer
) -> None:
    viewer = World(fuzz_server).token("fuzzy-viewer", "viewer")
    assert _fuzz(api_schema, {"Authorization": f"Bearer {viewer}"}, 10) == {}


@pytest.mark.slow
def test_the_platforms_gateway_answers_every_generated_request_without_5xx(fuzz_server: PaveServer) -> None:
    gateway = fuzz_server.wait_gateway()
    auth = {"Authorization": f"Bearer {fuzz_server.token}"}
    schema = schemathesis.openapi.from_url(f"{gateway}/v2/openapi.json", headers=auth)
    assert _fuzz(schema, auth, 20) == {}
