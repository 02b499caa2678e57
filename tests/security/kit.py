"""The attack suite's shared pieces: one server with two projects, raw requests, refusal checks."""

from __future__ import annotations

import http.client
from dataclasses import dataclass
from typing import Any

import pytest

from conftest import PaveServer, World


@dataclass
class Raw:
    status: int
    headers: dict[str, str]
    body: bytes


def raw(
    server: PaveServer,
    method: str,
    target: str,
    *,
    token: str | None = None,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Raw:
    """Send ``target`` byte for byte (no client-side normalisation of ``..`` or percent-escapes)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    sent = {"Authorization": f"Bearer {token or server.token}", **(headers or {})}
    try:
        conn.request(method, target, body=body, headers=sent)
        response = conn.getresponse()
        return Raw(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


@pytest.fixture(scope="module")
def target(shared_server: PaveServer) -> dict[str, Any]:
    """A project with an experiment, a run with an artifact, a model version, and a viewer."""
    world = World(shared_server)
    name = "attack-surface"
    world.project(name)
    experiment_id = world.experiment(name)
    run_id = world.run(experiment_id)
    version = world.version(name, run_id)
    with world.admin() as admin:
        put = admin.put(
            f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/ok.txt",
            content=b"ok",
        )
        assert put.status_code == 200
    world.member(name, "valerie", "viewer")
    return {
        "world": world,
        "server": shared_server,
        "project": name,
        "experiment_id": experiment_id,
        "run_id": run_id,
        "version": version,
        "viewer": world.token("valerie", "viewer"),
        "developer": world.token("devon", "developer"),
    }


def assert_refused(
    world: World, status: int, headers: dict[str, str], *, expected: int | None = None
) -> None:
    """A 4xx answer, and an audit record of the attempt."""
    assert 400 <= status < 500, status
    if expected is not None:
        assert status == expected
    records = world.audit(request_id=headers["x-request-id"])
    assert len(records) == 1, "every refused attack leaves one audit record"
    assert records[0]["outcome"] in ("denied", "failed")
