"""Every route of the running control plane, MLflow's included, refuses requests without a valid token."""

from __future__ import annotations

import socket

import httpx

from pave_testing import PaveServer


def _status_of_all(
    server: PaveServer, routes: list[tuple[str, str]], headers: dict[str, str]
) -> dict[str, int]:
    seen: dict[str, int] = {}
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for method, path in routes:
            if path in ("/healthz", "/readyz"):
                continue
            response = client.request(method, path, headers=headers, content=b"{}")
            seen[f"{method} {path}"] = response.status_code
    return seen


def test_every_route_needs_a_token(shared_server: PaveServer, inventory: list[tuple[str, str]]) -> None:
    without = _status_of_all(shared_server, inventory, {})
    assert {k: v for k, v in without.items() if v != 401} == {}
    wrong = _status_of_all(shared_server, inventory, {"Authorization": "Bearer pave_not-a-real-token"})
    assert {k: v for k, v in wrong.items() if v != 401} == {}
    basic = _status_of_all(shared_server, inventory, {"Authorization": "Basic YWRtaW46cGFzc3dvcmQ="})
    assert {k: v for k, v in basic.items() if v != 401} == {}


def test_revoked_token_is_refused_everywhere(
    shared_server: PaveServer, inventory: list[tuple[str, str]]
) -> None:
    with shared_server.client() as admin:
        created = admin.post("/api/v1/tokens", json={"identity": "bob", "name": "soon-revoked"}).json()
        with shared_server.client(created["secret"]) as bob:
            assert bob.get("/api/v1/whoami").json()["identity"] == "bob"
        assert admin.delete(f"/api/v1/tokens/{created['id']}").status_code == 200
    revoked = _status_of_all(shared_server, inventory, {"Authorization": f"Bearer {created['secret']}"})
    assert {k: v for k, v in revoked.items() if v != 401} == {}


def test_probes_are_open_and_errors_have_the_documented_shape(shared_server: PaveServer) -> None:
    assert httpx.get(f"{shared_server.url}/healthz").status_code == 200
    assert httpx.get(f"{shared_server.url}/readyz").status_code == 200
    body = httpx.get(f"{shared_server.url}/api/v1/projects").json()
    assert set(body["error"]) == {"code", "message", "hint"}
    assert body["error"]["code"] == "unauthenticated"


def test_unknown_route_is_denied_not_served(shared_server: PaveServer) -> None:
    with shared_server.client() as admin:
        response = admin.get("/api/v2/anything")
    assert response.status_code == 403
    assert "no permission rule" in response.json()["error"]["message"]


def test_roles_limit_what_a_token_can_do(shared_server: PaveServer) -> None:
    with shared_server.client() as admin:
        viewer = admin.post("/api/v1/tokens", json={"identity": "vera", "name": "t", "role": "viewer"}).json()
        dev = admin.post("/api/v1/tokens", json={"identity": "dan", "name": "t", "role": "developer"}).json()
    create = "/mlflow/api/2.0/mlflow/experiments/create"
    with shared_server.client(viewer["secret"]) as client:
        assert client.get("/api/v1/projects").status_code == 200
        assert client.post("/mlflow/api/2.0/mlflow/runs/search", json={}).status_code == 200
        denied = client.post(create, json={"name": "viewer-exp"})
        assert denied.status_code == 403
        assert denied.json()["error"]["code"] == "forbidden"
        assert client.post("/api/v1/projects", json={"name": "nope"}).status_code == 403
        assert client.get("/api/v1/tokens").status_code == 403
    with shared_server.client(dev["secret"]) as client:
        assert client.post(create, json={"name": "dev-exp"}).status_code == 200
        assert client.get("/api/v1/tokens").status_code == 403
    with shared_server.client() as admin:
        search = admin.get(
            "/mlflow/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "viewer-exp"}
        )
        assert search.status_code == 404, "the denied call created nothing"


def test_host_origin_and_size_limits(shared_server: PaveServer) -> None:
    with shared_server.client() as admin:
        assert admin.get("/api/v1/whoami", headers={"Host": "evil.example"}).status_code == 400
        cross = admin.post(
            "/api/v1/projects", json={"name": "xorigin"}, headers={"Origin": "https://evil.example"}
        )
        assert cross.status_code == 403
        assert admin.get("/api/v1/projects/xorigin").status_code == 404
    # A declared body over the limit is refused before a byte of it is read.
    with socket.create_connection(("127.0.0.1", shared_server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/projects HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {shared_server.token}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n{"
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 413")
