"""`pave status` lists the platform's processes from their heartbeats, at the URLs they advertise."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from pave_testing import PaveServer, run_pave

pytestmark = pytest.mark.slow


def _processes(server: PaveServer) -> list[dict[str, Any]]:
    with server.client() as client:
        response = client.get("/api/v1/platform/processes")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def test_status_lists_control_plane_and_gateway_where_they_answer(tmp_path: Path) -> None:
    public = "https://inference.example.test"
    server = PaveServer.up(tmp_path / "home", PAVE_GATEWAY_PUBLIC_URL=public)
    try:
        deadline = time.monotonic() + 120
        while {p["role"] for p in _processes(server)} != {"control-plane", "gateway"}:
            assert time.monotonic() < deadline, _processes(server)
            time.sleep(0.5)
        by_role = {p["role"]: p for p in _processes(server)}
        assert by_role["gateway"]["url"] == public, "a gateway registers the URL callers reach it at"
        assert by_role["control-plane"]["url"] == server.url
        assert all(p["healthy"] for p in by_role.values())

        env = server.env | {"PAVE_PORT": str(server.port)}
        shown = run_pave("status", env=env | {"COLUMNS": "250"})  # one line per row
        assert shown.returncode == 0, shown.stderr
        assert public in shown.stdout
        assert "leads the background jobs" in shown.stdout
        assert "no models loaded" in shown.stdout

        viewer = run_pave("token", "create", "v", "--role", "viewer", env=env).stdout.strip().splitlines()[-1]
        with server.client(viewer) as client:  # where to send requests is no secret to a caller
            assert client.get("/api/v1/platform/processes").status_code == 200
        with server.client("pave_not-a-token") as client:
            assert client.get("/api/v1/platform/processes").status_code == 401
    finally:
        server.stop()
