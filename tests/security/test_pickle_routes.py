"""Insecure deserialisation (the Ray and BentoML pickle CVEs, CVE-2023-48022, CVE-2023-33733, ...):
pickles of every protocol, sent every way, to every control-plane route that takes a body.

Each route gets the payloads as the raw body (``application/octet-stream``,
``application/python-pickle``), inside JSON (the whole value, and a field) and as a multipart
file, with an admin token (so a refusal is about the payload, not the caller). Every one is
refused with a 4xx (a pickle in a JSON field is a string: a search may answer it, never with a
5xx), nothing is unpickled (the payload's ``__reduce__`` would create a marker file), and the
platform's objects are the same afterwards. Only the artifact
upload routes take raw bytes: there a pickle is stored as the bytes it is (a model file is a
pickle) and never loaded. The gateway's routes are covered in ``tests/serving``.
"""

from __future__ import annotations

import base64
import builtins
import json
import pickle
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from pave_testing import PaveServer, World

_UPLOADS = ("/mlflow-artifacts/artifacts/", "/upload-artifact")


class _Marker:
    """Unpickling this object creates ``path`` (``open(path, "w")``)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> Any:
        return (builtins.open, (str(self.path), "w"))


def _payloads(marker: Path) -> list[bytes]:
    return [pickle.dumps(_Marker(marker), protocol=p) for p in range(pickle.HIGHEST_PROTOCOL + 1)]


def _attempts(payloads: list[bytes], index: int) -> list[tuple[str, dict[str, Any]]]:
    """The ways to send a pickle; the protocol rotates with ``index``, so every route meets them all."""

    def pick(k: int) -> bytes:
        return payloads[(index + k) % len(payloads)]

    return [
        ("raw octet-stream", {"content": pick(0), "headers": {"content-type": "application/octet-stream"}}),
        ("raw python-pickle", {"content": pick(1), "headers": {"content-type": "application/python-pickle"}}),
        (
            "json value",
            {
                "content": json.dumps(pick(2).decode("latin-1")),
                "headers": {"content-type": "application/json"},
            },
        ),
        (
            "json field",
            {
                "content": json.dumps(
                    {"pickle": base64.b64encode(pick(3)).decode(), "raw": pick(3).decode("latin-1")}
                ),
                "headers": {"content-type": "application/json"},
            },
        ),
        ("multipart", {"files": {"file": ("model.pkl", pick(4), "application/python-pickle")}}),
    ]


@pytest.fixture(scope="module")
def quiet_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaveServer]:
    """A platform of its own: the test proves that nothing anywhere changed, so nothing else may write."""
    server = PaveServer.up(tmp_path_factory.mktemp("pave-pickles"), "--no-gateway")
    yield server
    server.stop()


@pytest.mark.slow
def test_pickles_on_every_control_plane_route_are_refused_and_never_unpickled(
    quiet_server: PaveServer, inventory: list[tuple[str, str]], tmp_path: Path
) -> None:
    server = quiet_server
    world = World(server)
    world.project("pickled")
    world.experiment("pickled")
    marker = tmp_path / "unpickled"
    payloads = _payloads(marker)
    # The inventory fills path parameters with 1; name objects that do not exist instead, so a
    # route that ignores its body (a DELETE) cannot act on a real object.
    routes = [
        (m, re.sub(r"/1(?=/|$)", "/999999", p))
        for m, p in inventory
        if m in ("POST", "PUT", "PATCH", "DELETE")
        and not p.endswith(_UPLOADS)
        and "/mlflow-artifacts/artifacts" not in p
    ]
    assert len(routes) > 150
    before = world.state()
    accepted: dict[str, int] = {}
    with httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {server.token}"}, timeout=30
    ) as admin:
        for index, (method, path) in enumerate(routes):
            for how, kwargs in _attempts(payloads, index):
                status = admin.request(method, path, **kwargs).status_code
                # A pickle as a JSON *field* is only a string: a search that ignores unknown
                # fields may answer it (nothing is unpickled, nothing changes); no 5xx anywhere.
                refused = 400 <= status < 500 or (how == "json field" and status < 500)
                if not refused:
                    accepted[f"{method} {path} ({how})"] = status
    assert accepted == {}
    assert not marker.exists(), "a pickle sent over the wire was unpickled"
    assert world.state() == before


def test_a_pickled_artifact_is_stored_as_bytes_and_never_loaded(
    shared_server: PaveServer, tmp_path: Path
) -> None:
    world = World(shared_server)
    world.project("pickled-artifacts")
    experiment_id = world.experiment("pickled-artifacts")
    run_id = world.run(experiment_id)
    marker = tmp_path / "unpickled"
    base = f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"
    with world.admin() as admin:
        for protocol, payload in enumerate(_payloads(marker)):
            name = f"model-{protocol}.pkl"
            stored = admin.put(
                f"{base}/{name}", content=payload, headers={"content-type": "application/python-pickle"}
            )
            assert stored.status_code == 200
            assert admin.get(f"{base}/{name}").content == payload
        listing = admin.get("/mlflow/api/2.0/mlflow/artifacts/list", params={"run_id": run_id})
        assert {f["path"] for f in listing.json()["files"]} >= {f"model-{p}.pkl" for p in range(6)}
    assert not marker.exists()
