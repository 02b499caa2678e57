"""`pave deploy --wait` on a version the gateway cannot load: the ready probe says the load failed
(a header besides the 503), and the wait ends at once with the reason, instead of polling for ten
minutes an answer that said "no version 2" (the deployment had kept its previous version)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from serving_kit import deployment

from pave.client import Client
from pave.errors import Unavailable
from pave.serving.deployments import Deployment, ModelRef
from pave.serving.readiness import LOAD_FAILED_HEADER


def _waiter(url: str) -> Client:
    return Client(url=url, token="unused: the gateway of the test checks no token")


def test_waiting_for_a_new_version_that_fails_to_load_ends_with_the_reason(
    live_server: Callable[..., Any], models: Any
) -> None:
    server = live_server(deployment())
    server.source.set([Deployment("cancer", (ModelRef("2", "models:/cancer/404"),))])
    deadline = time.monotonic() + 60
    while server.gateway.table.source_version != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    with _waiter(server.url) as client, pytest.raises(Unavailable) as caught:
        client.wait_served(server.url, "cancer", ["2"], 300)
    assert time.monotonic() - started < 60  # not the whole timeout
    assert "could not load 'cancer' version 2" in caught.value.message
    assert "the gateway keeps serving version 1" in caught.value.message
    with _waiter(server.url) as client:
        client.wait_served(server.url, "cancer", ["1"], 30)  # the old version still answers


def test_waiting_for_a_first_version_that_fails_to_load_ends_with_the_reason(
    live_server: Callable[..., Any], models: Any
) -> None:
    server = live_server(deployment(), Deployment("broken", (ModelRef("1", "models:/cancer/77"),)))
    with _waiter(server.url) as client, pytest.raises(Unavailable, match="could not load 'broken' version 1"):
        client.wait_served(server.url, "broken", ["1"], 300)
    import httpx

    probe = httpx.get(f"{server.url}/v2/models/broken/versions/1/ready")
    assert probe.status_code == 503
    assert probe.headers[LOAD_FAILED_HEADER] == "1"
