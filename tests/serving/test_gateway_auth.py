"""The gateway's token check (pave.serving.auth) on a real store, and through the gateway app."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from serving_kit import deployment
from starlette.testclient import TestClient

from pave.config import Settings
from pave.errors import Forbidden, Unauthenticated
from pave.governance.access import set_member
from pave.governance.tokens import create_token, revoke_token
from pave.serving.auth import METRICS, GatewayAuth
from pave.store import migrate
from pave.store.db import make_engine, session_factory, transaction
from pave.store.tables import DeploymentRow, Project


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home")
    settings.ensure_home()
    engine = make_engine(settings.db_url)
    migrate.upgrade(engine, tmp_path)
    sessions = session_factory(engine)
    with transaction(sessions) as session:
        for name in ("cancer", "other"):
            session.add(Project(name=name, owner="olga", description="", created_by="olga", labels={}))
            session.add(DeploymentRow(name=name, project=name, spec={}, created_by="olga", updated_by="olga"))
        session.flush()
        set_member(session, "cancer", "vic", "viewer", granted_by="olga")
    engine.dispose()
    return settings


def _token(settings: Settings, identity: str, role: str, project: str | None = None) -> tuple[int, bytes]:
    engine = make_engine(settings.db_url)
    with transaction(session_factory(engine)) as session:
        token, secret = create_token(session, identity=identity, name="t", role=role, project=project)
        token_id = token.id
    engine.dispose()
    return token_id, f"Bearer {secret}".encode()


def test_a_viewer_of_the_project_may_call_it_and_nobody_else(settings: Settings) -> None:
    auth = GatewayAuth(settings, ttl=60)
    _, vic = _token(settings, "vic", "viewer")
    _, mallory = _token(settings, "mallory", "maintainer")  # platform-wide, but no role on cancer
    _, scoped = _token(settings, "sam", "viewer", project="other")
    assert auth.check(vic, "cancer") is None
    assert isinstance(auth.check(vic, "other"), Forbidden)
    assert isinstance(auth.check(mallory, "cancer"), Forbidden)
    assert isinstance(auth.check(scoped, "cancer"), Forbidden)
    assert isinstance(auth.check(None, "cancer"), Unauthenticated)
    assert isinstance(auth.check(b"Basic dmljOnZpYw==", "cancer"), Unauthenticated)
    assert isinstance(auth.check(b"Bearer forged", "cancer"), Unauthenticated)
    assert auth.check(vic, "not-deployed") is None  # the gateway's 404 follows
    assert isinstance(auth.check(scoped, METRICS), Forbidden)  # metrics name every deployment
    assert auth.check(vic, METRICS) is None
    auth.close()


def test_decisions_are_cached_and_a_revoked_token_stops_working_when_its_entry_expires(
    settings: Settings,
) -> None:
    auth = GatewayAuth(settings, ttl=60)
    token_id, vic = _token(settings, "vic", "viewer")
    assert auth.cached(vic, "cancer") == (False, None)
    assert auth.check(vic, "cancer") is None
    assert auth.cached(vic, "cancer") == (True, None)  # no database work on the hot path
    assert all(vic not in key for key, _ in auth._cache)  # only a digest of the secret is kept
    engine = make_engine(settings.db_url)
    with transaction(session_factory(engine)) as session:
        revoke_token(session, token_id)
    engine.dispose()
    assert auth.cached(vic, "cancer") == (True, None)  # still cached: revocation takes up to ttl
    auth.ttl = 0
    auth._cache.clear()
    assert isinstance(auth.check(vic, "cancer"), Unauthenticated)
    auth.close()


def test_the_gateway_refuses_without_a_token_in_the_protocols_error_shape(
    settings: Settings, make_client: Callable[..., tuple[TestClient, Any, Any]]
) -> None:
    _, vic = _token(settings, "vic", "viewer")
    client, _, _ = make_client(deployment("cancer"), deployment("other"), auth=GatewayAuth(settings))
    assert client.get("/v2/health/ready").status_code == 200  # probes need no token
    assert client.get("/v2/openapi.json").status_code == 200
    refused = client.get("/v2/models/cancer")
    assert refused.status_code == 401
    assert set(refused.json()) == {"error"}
    assert client.get("/metrics").status_code == 401
    headers = {"Authorization": vic.decode()}
    assert client.get("/v2/models/cancer", headers=headers).status_code == 200
    assert client.get("/metrics", headers=headers).status_code == 200
    other = client.post("/v2/models/other/infer", headers=headers, json={"inputs": []})
    assert other.status_code == 403
    assert "other" in other.json()["error"]
    # an infer path answered before (the gateway remembers it) still checks every request's token
    body = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [1], "data": [1.0]}]}
    assert client.post("/v2/models/cancer/infer", headers=headers, json=body).status_code != 401
    assert client.post("/v2/models/cancer/infer", json=body).json() == refused.json()
    assert client.post("/v2/models/other/infer", headers=headers, json={"inputs": []}).json() == other.json()


def test_the_openapi_document_declares_the_token_where_the_gateway_asks_for_it(
    settings: Settings, make_client: Callable[..., tuple[TestClient, Any, Any]]
) -> None:
    client, _, _ = make_client(deployment("cancer"), auth=GatewayAuth(settings))
    doc = client.get("/v2/openapi.json").json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearer"]["description"],
    }
    for route, item in doc["paths"].items():
        for method, operation in item.items():
            concrete = route.replace("{model_name}", "cancer").replace("{model_version}", "1")
            answer = client.request(method, concrete, json={"inputs": []})
            if operation.get("security") == [{"bearer": []}]:
                assert answer.status_code == 401, route  # declared, and asked for
                assert {"401", "403"} <= set(operation["responses"]), route
            else:
                assert route.startswith("/v2/health") or route in ("/v2", "/v2/openapi.json"), route
                assert answer.status_code == 200, route
    open_client, _, _ = make_client(deployment("cancer"))  # a gateway without tokens says so
    assert "securitySchemes" not in open_client.get("/v2/openapi.json").json()["components"]


def test_grpc_and_kserve_v1_take_the_same_tokens(
    settings: Settings, live_server: Callable[..., Any], models: Any
) -> None:
    import httpx
    import numpy as np
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    from pave_testing import free_port

    _, vic = _token(settings, "vic", "viewer")
    server = live_server(
        deployment("cancer"), deployment("other"), auth=GatewayAuth(settings), grpc_port=free_port()
    )
    client = triton_grpc.InferenceServerClient(f"127.0.0.1:{server.gateway.options.grpc_port}")
    assert client.is_server_live()  # probes need no token
    table = triton_grpc.InferInput("input-0", [1, 30], "FP64")
    table.set_data_from_numpy(models.X.to_numpy()[:1])
    with pytest.raises(InferenceServerException, match="needs a token") as missing:
        client.infer("cancer", [table])
    assert missing.value.status() == "StatusCode.UNAUTHENTICATED"
    token = {"authorization": vic.decode()}
    result = client.infer("cancer", [table], headers=token)
    np.testing.assert_array_equal(result.as_numpy("predict"), models.estimators["1"].predict(models.X[:1]))
    with pytest.raises(InferenceServerException, match="may not call") as other:
        client.infer("other", [table], headers=token)
    assert other.value.status() == "StatusCode.PERMISSION_DENIED"
    with pytest.raises(InferenceServerException) as metadata:
        client.get_model_metadata("cancer")
    assert metadata.value.status() == "StatusCode.UNAUTHENTICATED"
    body = {"instances": models.X.to_numpy()[:2].tolist()}
    assert httpx.post(f"{server.url}/v1/models/cancer:predict", json=body).status_code == 401
    v1 = httpx.post(f"{server.url}/v1/models/cancer:predict", json=body, headers=token)
    assert v1.status_code == 200
    assert httpx.post(f"{server.url}/v1/models/other:predict", json=body, headers=token).status_code == 403
    assert httpx.get(f"{server.url}/v1/models", headers=token).json() == {"models": ["cancer"]}
    assert httpx.get(f"{server.url}/v1/models").status_code == 401  # who asks, before what is listed
