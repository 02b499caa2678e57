"""Roles per project: bindings, effective roles, and listings that show only what the caller may see."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pave.governance.permissions import DISABLED, required_action
from pave.governance.roles import ROLES
from pave_testing import PaveServer, World, run_pave


def test_every_route_of_the_running_app_has_a_rule(inventory: list[tuple[str, str]]) -> None:
    assert len(inventory) > 300
    uncovered = [f"{m} {p}" for m, p in inventory if required_action(m, p) is None]
    assert uncovered == [], "add these routes to pave.governance.permissions.RULES"


def test_governance_routes_need_the_documented_actions() -> None:
    assert required_action("GET", "/api/v1/audit") == "admin"
    assert required_action("GET", "/api/v1/audit/verify") == "admin"
    assert required_action("GET", "/api/v1/projects/a/members") == "manage"
    assert required_action("PUT", "/api/v1/projects/a/members/bob") == "manage"
    assert required_action("DELETE", "/api/v1/projects/a/members/bob") == "manage"
    assert required_action("PUT", "/api/v1/projects/a/policy") == "admin"
    assert required_action("POST", "/api/v1/projects/a/approvals") == "approve"
    assert required_action("POST", "/mlflow/api/2.0/mlflow/webhooks") == "admin"
    assert required_action("POST", "/mlflow/ajax-api/3.0/mlflow/demo/generate") == DISABLED
    assert required_action("POST", "/mlflow/api/3.0/mlflow/workspaces") == DISABLED
    assert required_action("GET", "/mlflow/api/3.0/mlflow/workspaces") == "admin"
    assert required_action("POST", "/mlflow/api/3.0/mlflow/traces/batchGetInfos") == "read"
    assert required_action("PUT", "/api/v1/projects/a/teams/t") == "manage"
    assert required_action("PUT", "/api/v1/teams/t/members/bob") == "admin"


def test_switched_off_mlflow_features_are_refused_to_admins_too(shared_server: PaveServer) -> None:
    with shared_server.client() as admin:
        refused = admin.post("/mlflow/ajax-api/3.0/mlflow/demo/generate", json={})
        assert refused.status_code == 403
        assert "switched off" in refused.json()["error"]["message"]
        assert admin.post("/mlflow/api/3.0/mlflow/workspaces", json={"name": "w"}).status_code == 403


# --- two projects, and who sees what ------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_projects(shared_server: PaveServer) -> dict[str, Any]:
    world = World(shared_server)
    found: dict[str, Any] = {"world": world}
    for name in ("iso-a", "iso-b"):
        world.project(name)
        experiment_id = world.experiment(name)
        run_id = world.run(experiment_id)
        world.mlflow(
            "POST",
            "runs/set-tag",
            json={"run_id": run_id, "key": "pave.project", "value": name},
        )
        version = world.version(name, run_id)
        found[name] = {"experiment_id": experiment_id, "run_id": run_id, "version": version}
    world.member("iso-a", "vic", "viewer")
    found["viewer"] = world.token("vic", "viewer")  # platform-wide, bound to iso-a only
    found["scoped"] = world.token("ci-a", "developer", project="iso-a")  # scoped to iso-a
    found["unbound"] = world.token("nobody-bound", "developer")  # no binding at all
    return found


def _names(answer: dict[str, Any], key: str, field: str = "name") -> set[str]:
    return {item[field] for item in answer.get(key, [])}


def _searches(world: World, token: str, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    ids = [a["experiment_id"], b["experiment_id"]]
    return {
        "experiments": world.mlflow("POST", "experiments/search", token, json={"max_results": 100}),
        "experiments_get": world.mlflow("GET", "experiments/search", token, params={"max_results": 100}),
        "runs": world.mlflow("POST", "runs/search", token, json={"experiment_ids": ids}),
        "models": world.mlflow("GET", "registered-models/search", token),
        "versions": world.mlflow("GET", "model-versions/search", token),
        "logged": world.mlflow("POST", "logged-models/search", token, json={"experiment_ids": ids}),
    }


@pytest.mark.parametrize("who", ["viewer", "scoped"])
def test_a_viewer_of_project_a_sees_nothing_of_project_b(two_projects: dict[str, Any], who: str) -> None:
    world: World = two_projects["world"]
    token = two_projects[who]
    a, b = two_projects["iso-a"], two_projects["iso-b"]
    with world.server.client(token) as client:
        projects = {p["name"] for p in client.get("/api/v1/projects").json()}
    assert "iso-a" in projects
    assert "iso-b" not in projects

    found = _searches(world, token, a, b)
    assert all(r.status_code == 200 for r in found.values()), {k: r.text for k, r in found.items()}
    assert "iso-b" not in _names(found["experiments"].json(), "experiments")
    assert "iso-a" in _names(found["experiments"].json(), "experiments")
    assert "iso-b" not in _names(found["experiments_get"].json(), "experiments")
    runs = {r["info"]["run_id"] for r in found["runs"].json().get("runs", [])}
    assert runs == {a["run_id"]}
    assert _names(found["models"].json(), "registered_models") & {"iso-a", "iso-b"} == {"iso-a"}
    assert _names(found["versions"].json(), "model_versions") & {"iso-a", "iso-b"} == {"iso-a"}
    assert b["experiment_id"] not in {
        m["info"]["experiment_id"] for m in found["logged"].json().get("models", [])
    }

    # Direct reads of B's objects are refused, A's are served.
    for method, endpoint, params in (
        ("GET", "experiments/get", {"experiment_id": b["experiment_id"]}),
        ("GET", "experiments/get-by-name", {"experiment_name": "iso-b"}),
        ("GET", "runs/get", {"run_id": b["run_id"]}),
        ("GET", "metrics/get-history", {"run_id": b["run_id"], "metric_key": "m"}),
        ("GET", "artifacts/list", {"run_id": b["run_id"]}),
        ("GET", "registered-models/get", {"name": "iso-b"}),
        ("GET", "model-versions/get", {"name": "iso-b", "version": b["version"]}),
    ):
        assert world.mlflow(method, endpoint, token, params=params).status_code == 403, endpoint
    assert world.mlflow("GET", "runs/get", token, params={"run_id": a["run_id"]}).status_code == 200
    with world.server.client(token) as client:
        listing = client.get(f"/mlflow/api/2.0/mlflow-artifacts/artifacts?path={b['experiment_id']}")
        assert listing.status_code == 403
        assert client.get("/api/v1/projects/iso-b").status_code == 403
        assert client.get("/api/v1/projects/iso-a").status_code == 200


def test_an_unbound_identity_sees_no_project(two_projects: dict[str, Any]) -> None:
    world: World = two_projects["world"]
    token = two_projects["unbound"]
    found = _searches(world, token, two_projects["iso-a"], two_projects["iso-b"])
    assert not _names(found["experiments"].json(), "experiments") & {"iso-a", "iso-b"}
    assert found["runs"].json().get("runs", []) == []
    with world.server.client(token) as client:
        assert not {p["name"] for p in client.get("/api/v1/projects").json()} & {"iso-a", "iso-b"}
    # A developer token writes nowhere without a binding: the project's role is capped at nothing.
    response = world.mlflow(
        "POST", "runs/create", token, json={"experiment_id": two_projects["iso-a"]["experiment_id"]}
    )
    assert response.status_code == 403


def test_the_token_role_caps_the_binding(shared_server: PaveServer) -> None:
    world = World(shared_server)
    world.project("cap-proj")
    experiment_id = world.experiment("cap-proj")
    world.member("cap-proj", "carla", "maintainer")
    viewer_token = world.token("carla", "viewer")
    developer_token = world.token("carla", "developer")
    assert (
        world.mlflow("POST", "runs/create", viewer_token, json={"experiment_id": experiment_id}).status_code
        == 403
    )
    assert (
        world.mlflow(
            "POST", "runs/create", developer_token, json={"experiment_id": experiment_id}
        ).status_code
        == 200
    )


def test_a_scoped_token_cannot_touch_other_projects_or_unscoped_objects(two_projects: dict[str, Any]) -> None:
    world: World = two_projects["world"]
    token = two_projects["scoped"]
    b = two_projects["iso-b"]
    assert (
        world.mlflow("POST", "runs/create", token, json={"experiment_id": b["experiment_id"]}).status_code
        == 403
    )
    assert world.mlflow("POST", "experiments/create", token, json={"name": "elsewhere"}).status_code == 403
    ok = world.mlflow(
        "POST", "runs/create", token, json={"experiment_id": two_projects["iso-a"]["experiment_id"]}
    )
    assert ok.status_code == 200
    # A registry call on A naming a run of B is refused: both projects must allow it.
    stolen = world.mlflow(
        "POST",
        "model-versions/create",
        token,
        json={"name": "iso-a", "source": f"runs:/{b['run_id']}/model", "run_id": b["run_id"]},
    )
    assert stolen.status_code == 403


# --- members: API and CLI -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def members_world(shared_server: PaveServer) -> Iterator[World]:
    world = World(shared_server)
    world.project("mem-proj", owner="olga")
    return world


def test_members_api_is_for_maintainers_and_admins(members_world: World) -> None:
    world = members_world
    owner = world.token("olga", "maintainer")
    developer = world.token("dev-mem", "developer")
    world.member("mem-proj", "dev-mem", "developer")
    path = "/api/v1/projects/mem-proj/members"
    with world.server.client(developer) as client:
        assert client.get(path).status_code == 403
        denied = client.put(f"{path}/eve", json={"role": "maintainer"})
        assert denied.status_code == 403
    assert world.audit(request_id=denied.headers["x-request-id"])[0]["outcome"] == "denied"
    with world.server.client(owner) as client:  # the owner is the project's maintainer
        assert client.put(f"{path}/eve", json={"role": "viewer"}).json()["role"] == "viewer"
        assert client.put(f"{path}/eve", json={"role": "admin"}).status_code == 400
        listed = {m["identity"]: m["role"] for m in client.get(path).json()}
        assert listed == {"dev-mem": "developer", "eve": "viewer"}
        assert client.delete(f"{path}/eve").status_code == 200
        assert client.delete(f"{path}/eve").status_code == 404
        assert client.put(
            "/api/v1/projects/no-such-proj/members/eve", json={"role": "viewer"}
        ).status_code in (403, 404)


def test_member_cli_add_list_remove(members_world: World) -> None:
    server = members_world.server
    env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token, "COLUMNS": "200"}
    added = run_pave("project", "member", "add", "mem-proj", "frank", "approver", env=env)
    assert added.returncode == 0, added.stderr
    assert "frank is approver on mem-proj" in added.stdout
    listed = run_pave("project", "member", "list", "mem-proj", env=env)
    assert "frank" in listed.stdout
    assert "approver" in listed.stdout
    bad = run_pave("project", "member", "add", "mem-proj", "frank", "emperor", env=env)
    assert bad.returncode == 1
    assert "cannot be given" in bad.stderr
    removed = run_pave("project", "member", "remove", "mem-proj", "frank", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "frank" not in run_pave("project", "member", "list", "mem-proj", env=env).stdout


# --- the role-by-route matrix ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def matrix_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PaveServer]:
    """One platform of its own for the matrix (its calls hit every route with an empty body)."""
    home = tmp_path_factory.mktemp("pave-matrix")
    server = PaveServer.up(home)
    yield server
    server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("role", ["viewer", "developer", "maintainer", "approver"])
def test_role_by_route_matrix(matrix_server: PaveServer, inventory: list[tuple[str, str]], role: str) -> None:
    """Every route, called by a platform-wide token of ``role``: refused exactly when the table says so.

    Each refusal is Pave's (the error names the action) and leaves a denied audit record. (Admins
    may do everything but what is switched off: ``tests/api`` and the attack suite call with them.)
    """
    server = matrix_server
    world = World(server)
    token = world.token(f"matrix-{role}", role)
    allowed = ROLES[role]
    wrong: dict[str, str] = {}
    refused = 0
    before = world.state()
    with httpx.Client(
        base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        for method, path in inventory:
            action = required_action(method, path)
            if action in (None, "public"):
                continue
            response = client.request(method, path, json={})
            ours = response.status_code == 403 and "may not" in response.text
            if ours == (action in allowed):
                wrong[f"{method} {path}"] = f"{action}: {response.status_code}"
            refused += ours
    assert wrong == {}
    denied = list(world.audit(identity=f"matrix-{role}", outcome="denied"))
    assert len(denied) >= min(refused, 1000)
    if role == "viewer":  # every call it may make is a read: its refused writes changed nothing
        assert world.state() == before


@pytest.mark.postgres
def test_isolation_on_postgres(pave_server_factory: Any, postgres_url: str) -> None:
    server = pave_server_factory(postgres_url)
    world = World(server)
    made: dict[str, Any] = {}
    for name in ("pg-a", "pg-b"):
        world.project(name)
        experiment_id = world.experiment(name)
        run_id = world.run(experiment_id)
        made[name] = {
            "experiment_id": experiment_id,
            "run_id": run_id,
            "version": world.version(name, run_id),
        }
    world.member("pg-a", "pia", "viewer")
    token = world.token("pia", "viewer")
    found = _searches(world, token, made["pg-a"], made["pg-b"])
    assert _names(found["experiments"].json(), "experiments") & {"pg-a", "pg-b"} == {"pg-a"}
    assert {r["info"]["run_id"] for r in found["runs"].json()["runs"]} == {made["pg-a"]["run_id"]}
    assert _names(found["versions"].json(), "model_versions") == {"pg-a"}
    assert (
        world.mlflow("GET", "runs/get", token, params={"run_id": made["pg-b"]["run_id"]}).status_code == 403
    )
    with server.client(token) as client:
        assert [p["name"] for p in client.get("/api/v1/projects").json()] == ["pg-a"]
    # The same through a team (migration 0007 on PostgreSQL).
    with world.admin() as admin:
        assert admin.post("/api/v1/teams", json={"name": "pg-team"}).status_code == 201
        assert admin.put("/api/v1/teams/pg-team/members/pat").status_code == 200
        assert admin.put("/api/v1/projects/pg-a/teams/pg-team", json={"role": "viewer"}).status_code == 200
    through_team = world.token("pat", "developer")
    found = _searches(world, through_team, made["pg-a"], made["pg-b"])
    assert _names(found["experiments"].json(), "experiments") & {"pg-a", "pg-b"} == {"pg-a"}
    assert _names(found["versions"].json(), "model_versions") == {"pg-a"}
    run_in_a = world.mlflow(
        "POST", "runs/create", through_team, json={"experiment_id": made["pg-a"]["experiment_id"]}
    )
    assert run_in_a.status_code == 403  # the team's role is viewer: the developer token reads only


def test_an_admins_viewer_token_is_only_a_viewer(shared_server: PaveServer) -> None:
    world = World(shared_server)
    token = world.token("admin", "viewer")
    with shared_server.client(token) as client:
        assert client.get("/api/v1/whoami").json()["is_admin"] is False
        assert client.get("/api/v1/tokens").status_code == 403
        assert client.post("/api/v1/projects", json={"name": "by-admin-viewer"}).status_code == 403
