"""Teams: a member of team T holds T's role on each project T is bound to; the highest role wins."""

from __future__ import annotations

from typing import Any

import pytest

from pave.governance.access import Access
from pave.governance.roles import ROLES
from pave.governance.tokens import Principal
from pave_testing import PaveServer, World, run_pave


def test_team_roles_add_to_direct_roles_and_never_exceed_the_token() -> None:
    tina = Principal("tina", 1, "developer", None, False)
    access = Access(
        tina,
        owners={"p": "someone", "q": "someone"},
        bindings={"p": "viewer"},
        team_bindings={"p": ["developer"], "q": ["viewer", "approver"]},
    )
    assert access.actions("p") == ROLES["developer"]  # team developer beats direct viewer
    assert access.actions("q") == frozenset({"read"})  # approve is capped by the developer token
    assert access.actions("r") == ROLES["developer"]  # not a Pave project: the token's role
    scoped = Access(Principal("tina", 2, "developer", "p", False), team_bindings={"q": ["viewer"]})
    assert scoped.actions("q") == frozenset()  # a project-scoped token ignores teams elsewhere


@pytest.fixture(scope="module")
def teams_world(shared_server: PaveServer) -> dict[str, Any]:
    world = World(shared_server)
    made: dict[str, Any] = {"world": world}
    for name in ("team-a", "team-b"):
        world.project(name)
        experiment_id = world.experiment(name)
        run_id = world.run(experiment_id)
        made[name] = {
            "experiment_id": experiment_id,
            "run_id": run_id,
            "version": world.version(name, run_id),
        }
    with world.admin() as admin:
        assert admin.post("/api/v1/teams", json={"name": "ds-a"}).status_code == 201
        assert admin.put("/api/v1/teams/ds-a/members/tina").status_code == 200
        bound = admin.put("/api/v1/projects/team-a/teams/ds-a", json={"role": "viewer"})
        assert bound.status_code == 200, bound.text
    made["tina"] = world.token("tina", "developer")  # platform-wide; her only role: ds-a's viewer on A
    return made


def test_a_viewer_of_a_through_a_team_sees_nothing_of_b(teams_world: dict[str, Any]) -> None:
    world: World = teams_world["world"]
    token = teams_world["tina"]
    a, b = teams_world["team-a"], teams_world["team-b"]
    ids = [a["experiment_id"], b["experiment_id"]]
    experiments = world.mlflow("POST", "experiments/search", token, json={"max_results": 1000}).json()
    assert {e["name"] for e in experiments["experiments"]} & {"team-a", "team-b"} == {"team-a"}
    runs = world.mlflow("POST", "runs/search", token, json={"experiment_ids": ids}).json()
    assert {r["info"]["run_id"] for r in runs["runs"]} == {a["run_id"]}
    versions = world.mlflow("GET", "model-versions/search", token).json()
    assert {v["name"] for v in versions["model_versions"]} & {"team-a", "team-b"} == {"team-a"}
    models = world.mlflow("GET", "registered-models/search", token).json()
    assert {m["name"] for m in models["registered_models"]} & {"team-a", "team-b"} == {"team-a"}
    assert world.mlflow("GET", "runs/get", token, params={"run_id": b["run_id"]}).status_code == 403
    assert world.mlflow("GET", "runs/get", token, params={"run_id": a["run_id"]}).status_code == 200
    with world.server.client(token) as client:
        assert {p["name"] for p in client.get("/api/v1/projects").json()} & {"team-a", "team-b"} == {"team-a"}
        assert client.get("/api/v1/projects/team-b").status_code == 403
        # A viewer through a team cannot write, nor manage the team or the project's members.
        refused = client.put("/api/v1/teams/ds-a/members/mallory")
        assert refused.status_code == 403
        assert (
            client.put("/api/v1/projects/team-a/teams/ds-a", json={"role": "maintainer"}).status_code == 403
        )
    denied = world.mlflow("POST", "runs/create", token, json={"experiment_id": a["experiment_id"]})
    assert denied.status_code == 403
    record = world.last_audit(denied.headers["x-request-id"])
    assert (record["identity"], record["outcome"], record["project"]) == ("tina", "denied", "team-a")
    with world.admin() as admin:
        assert admin.get("/api/v1/teams/ds-a").json()["members"] == ["tina"]


def test_the_highest_of_direct_and_team_roles_wins_and_removal_takes_effect(
    teams_world: dict[str, Any],
) -> None:
    world: World = teams_world["world"]
    a = teams_world["team-a"]
    token = world.token("theo", "developer")
    world.member("team-a", "theo", "viewer")
    create = {"experiment_id": a["experiment_id"]}
    assert world.mlflow("POST", "runs/create", token, json=create).status_code == 403
    with world.admin() as admin:
        assert admin.post("/api/v1/teams", json={"name": "ds-writers"}).status_code == 201
        assert admin.post("/api/v1/teams", json={"name": "ds-writers"}).status_code == 409
        assert admin.post("/api/v1/teams", json={"name": "Bad Name"}).status_code == 400
        assert admin.put("/api/v1/teams/ds-writers/members/theo").status_code == 200
        put = admin.put("/api/v1/projects/team-a/teams/ds-writers", json={"role": "developer"})
        assert put.status_code == 200
        assert (
            admin.put("/api/v1/projects/team-a/teams/ds-writers", json={"role": "admin"}).status_code == 400
        )
        assert admin.put("/api/v1/projects/team-a/teams/nope", json={"role": "viewer"}).status_code == 404
    assert world.mlflow("POST", "runs/create", token, json=create).status_code == 200
    with world.admin() as admin:
        assert admin.delete("/api/v1/teams/ds-writers/members/theo").status_code == 200
        assert admin.delete("/api/v1/teams/ds-writers/members/theo").status_code == 404
    assert world.mlflow("POST", "runs/create", token, json=create).status_code == 403  # direct viewer again
    with world.admin() as admin:
        assert admin.put("/api/v1/teams/ds-writers/members/theo").status_code == 200
        deleted = admin.delete("/api/v1/teams/ds-writers")
        assert deleted.status_code == 200
        assert admin.get("/api/v1/teams/ds-writers").status_code == 404
        assert "ds-writers" not in {t["team"] for t in admin.get("/api/v1/projects/team-a/teams").json()}
    assert world.mlflow("POST", "runs/create", token, json=create).status_code == 403
    record = world.last_audit(deleted.headers["x-request-id"])
    assert (record["method"], record["path"], record["outcome"]) == (
        "DELETE",
        "/api/v1/teams/ds-writers",
        "allowed",
    )


def test_team_cli(teams_world: dict[str, Any]) -> None:
    server: PaveServer = teams_world["world"].server
    env = server.env | {"PAVE_URL": server.url, "PAVE_TOKEN": server.token, "COLUMNS": "200"}
    assert run_pave("team", "create", "cli-team", "-d", "fraud data scientists", env=env).returncode == 0
    added = run_pave("team", "add", "cli-team", "uma", "ursula", env=env)
    assert added.returncode == 0, added.stderr
    bound = run_pave(
        "project", "member", "add", "team-b", "--team", "cli-team", "--role", "developer", env=env
    )
    assert bound.returncode == 0, bound.stderr
    assert "every member of team cli-team is developer on team-b" in bound.stdout
    listed = run_pave("team", "list", env=env)
    assert "uma" in listed.stdout
    assert "team-b=developer" in listed.stdout
    members = run_pave("project", "member", "list", "team-b", env=env)
    assert "team:cli-team" in members.stdout
    both = run_pave(
        "project", "member", "add", "team-b", "uma", "--team", "cli-team", "--role", "viewer", env=env
    )
    assert both.returncode == 1
    assert "one identity or one --team" in both.stderr
    assert run_pave("team", "remove", "cli-team", "ursula", env=env).returncode == 0
    assert "ursula" not in run_pave("team", "list", env=env).stdout
    removed = run_pave("project", "member", "remove", "team-b", "--team", "cli-team", env=env)
    assert removed.returncode == 0, removed.stderr
    assert "team:cli-team" not in run_pave("project", "member", "list", "team-b", env=env).stdout
    assert run_pave("team", "delete", "cli-team", "--yes", env=env).returncode == 0
    gone = run_pave("team", "add", "cli-team", "uma", env=env)
    assert gone.returncode == 1
    assert "does not exist" in gone.stderr
