"""Approvals before champion, and quotas, through the real control plane and MLflow's own API."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from typing import Any

import pytest

from pave_testing import PaveServer, World, run_pave


@pytest.fixture(scope="module")
def gated(shared_server: PaveServer) -> dict[str, Any]:
    world = World(shared_server)
    world.project("gated")
    world.member("gated", "dora", "developer")
    world.member("gated", "alice", "approver")
    world.member("gated", "mike", "maintainer")
    dora = world.token("dora", "developer")
    experiment_id = world.experiment("gated")
    run_id = world.run(experiment_id, dora)
    version = world.version("gated", run_id, dora)
    with world.admin() as admin:
        policy = admin.put("/api/v1/projects/gated/policy", json={"require_approval": True})
    assert policy.status_code == 200, policy.text
    assert policy.json()["require_approval"] is True
    return {
        "world": world,
        "version": version,
        "dora": dora,
        "alice": world.token("alice", "approver"),
        "mike": world.token("mike", "maintainer"),
    }


def _alias(world: World, token: str | None, version: str, alias: str = "champion") -> Any:
    return world.mlflow(
        "POST", "registered-models/alias", token, json={"name": "gated", "alias": alias, "version": version}
    )


def _tags(world: World, version: str) -> dict[str, str]:
    answer = world.mlflow("GET", "model-versions/get", params={"name": "gated", "version": version}).json()
    return {t["key"]: t["value"] for t in answer["model_version"].get("tags", [])}


def test_reading_the_champion_is_a_read(gated: dict[str, Any]) -> None:
    """A run's gate `compare_to: champion` reads the alias with the run's token (it needed approve)."""
    world: World = gated["world"]
    champion = {"name": "gated", "alias": "champion"}
    with world.admin() as admin:
        assert admin.put("/api/v1/projects/gated/policy", json={"require_approval": False}).status_code == 200
    try:
        assert _alias(world, None, gated["version"]).status_code == 200
        for who in ("dora", "mike"):
            read = world.mlflow("GET", "registered-models/alias", gated[who], params=champion)
            assert read.status_code == 200, read.text
            assert read.json()["model_version"]["version"] == gated["version"]
            removed = world.mlflow("DELETE", "registered-models/alias", gated[who], json=champion)
            assert removed.status_code == 403, "taking the champion away still needs approve"
    finally:
        assert world.mlflow("DELETE", "registered-models/alias", json=champion).status_code == 200
        with world.admin() as admin:
            admin.put("/api/v1/projects/gated/policy", json={"require_approval": True})


def test_the_platform_records_the_author_and_protects_its_tags(gated: dict[str, Any]) -> None:
    world: World = gated["world"]
    assert _tags(world, gated["version"])["pave.author"] == "dora"
    forged = world.mlflow(
        "POST",
        "model-versions/set-tag",
        gated["dora"],
        json={"name": "gated", "version": gated["version"], "key": "pave.approval.by", "value": "alice"},
    )
    assert forged.status_code == 403
    assert "pave.approval.by" not in _tags(world, gated["version"])


def test_champion_needs_the_approve_action_and_an_approval(gated: dict[str, Any]) -> None:
    world: World = gated["world"]
    version = gated["version"]
    assert _alias(world, gated["dora"], version).status_code == 403, "developers cannot promote"
    assert _alias(world, gated["mike"], version).status_code == 403, "maintainers cannot promote"
    assert _alias(world, gated["dora"], version, alias="candidate").status_code == 200, "other aliases: write"
    refused = _alias(world, None, version)  # even the admin, while the policy asks for an approval
    assert refused.status_code == 403
    assert "needs an approval" in refused.json()["error"]["message"]
    assert world.last_audit(refused.headers["x-request-id"])["outcome"] == "denied"
    legacy = world.mlflow(
        "POST",
        "model-versions/transition-stage",
        json={"name": "gated", "version": version, "stage": "Production", "archive_existing_versions": False},
    )
    assert legacy.status_code == 403
    with world.admin() as admin:
        aliases = admin.get("/mlflow/api/2.0/mlflow/registered-models/get", params={"name": "gated"}).json()
    assert "champion" not in {a["alias"] for a in aliases["registered_model"].get("aliases", [])}


def test_the_author_cannot_approve_and_an_approver_can(gated: dict[str, Any]) -> None:
    world: World = gated["world"]
    version = gated["version"]
    with world.server.client(gated["dora"]) as client:
        own = client.post("/api/v1/projects/gated/approvals", json={"version": version})
    assert own.status_code == 403  # dora is a developer: no "approve" action at all
    world.member("gated", "dora", "approver")
    dora_approver = world.token("dora", "approver")
    with world.server.client(dora_approver) as client:
        own = client.post("/api/v1/projects/gated/approvals", json={"version": version})
    assert own.status_code == 403
    assert "cannot approve it too" in own.json()["error"]["message"]
    world.member("gated", "dora", "developer")

    env = world.server.env | {"PAVE_URL": world.server.url, "PAVE_TOKEN": gated["alice"]}
    approved = run_pave("approve", "gated", version, "--comment", "looks good", env=env)
    assert approved.returncode == 0, approved.stderr
    assert "approved by alice" in approved.stdout
    tags = _tags(world, version)
    assert tags["pave.approval.by"] == "alice"
    assert tags["pave.approval.comment"] == "looks good"
    assert tags["pave.approval.gates"] == "none recorded"
    again = run_pave("approve", "gated", version, env=env)
    assert again.returncode == 1
    assert "approved already" in again.stderr

    assert _alias(world, gated["alice"], version).status_code == 200
    with world.server.client(gated["alice"]) as client:
        record = client.get(f"/api/v1/projects/gated/approvals/{version}").json()
    assert record["approved_by"] == "alice"
    assert record["author"] == "dora"


def test_policy_is_admin_only(gated: dict[str, Any]) -> None:
    world: World = gated["world"]
    with world.server.client(gated["mike"]) as client:
        assert (
            client.put("/api/v1/projects/gated/policy", json={"require_approval": False}).status_code == 403
        )
        assert client.get("/api/v1/projects/gated/policy").json()["require_approval"] is True
    env = world.server.env | {"PAVE_URL": world.server.url, "PAVE_TOKEN": gated["mike"]}
    shown = run_pave("project", "policy", "gated", "--json", env=env)
    assert shown.returncode == 0, shown.stderr
    assert '"require_approval": true' in shown.stdout
    refused = run_pave("project", "policy", "gated", "--max-concurrent-runs", "5", env=env)
    assert refused.returncode == 4  # refused
    assert "needs 'admin'" in refused.stderr


# --- quotas ---------------------------------------------------------------------------------------------


def test_concurrent_runs_quota_names_the_quota_and_its_owner(shared_server: PaveServer) -> None:
    world = World(shared_server)
    world.project("quota-runs", owner="quinn")
    experiment_id = world.experiment("quota-runs")
    with world.admin() as admin:
        assert (
            admin.put("/api/v1/projects/quota-runs/policy", json={"max_concurrent_runs": 1}).status_code
            == 200
        )
    first = world.run(experiment_id)
    refused = world.mlflow("POST", "runs/create", json={"experiment_id": experiment_id})
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "quota_exceeded"
    assert "concurrent_runs" in error["message"]
    assert "quinn" in error["message"]
    assert error["details"] == {"quota": "concurrent_runs", "limit": 1, "in_use": 1, "owner": "quinn"}
    runs = world.mlflow("POST", "runs/search", json={"experiment_ids": [experiment_id]}).json()["runs"]
    assert len(runs) == 1, "the refused call created nothing"
    world.mlflow("POST", "runs/update", json={"run_id": first, "status": "FINISHED", "end_time": 1})
    world.run(experiment_id)


def test_stored_bytes_quota_refuses_an_upload_over_it(shared_server: PaveServer) -> None:
    world = World(shared_server)
    world.project("quota-bytes")
    experiment_id = world.experiment("quota-bytes")
    run_id = world.run(experiment_id)
    with world.admin() as admin:
        assert (
            admin.put("/api/v1/projects/quota-bytes/policy", json={"max_stored_bytes": 100}).status_code
            == 200
        )
        base = f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"
        assert admin.put(f"{base}/small.txt", content=b"x" * 60).status_code == 200
        refused = admin.put(f"{base}/big.txt", content=b"x" * 60)
        assert refused.status_code == 429
        assert "stored_bytes" in refused.json()["error"]["message"]
        assert admin.get(f"{base}/big.txt").status_code == 404


def test_stored_bytes_quota_counts_chunked_uploads_and_refuses_uploads_past_the_proxy(
    shared_server: PaveServer,
) -> None:
    world = World(shared_server)
    world.project("quota-chunks", owner="olga")
    experiment_id = world.experiment("quota-chunks")
    run_id = world.run(experiment_id)
    folder = shared_server.home / "artifacts" / experiment_id / run_id / "artifacts"

    def chunks(n: int) -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for _ in range(n):
            yield b"y" * 40

    with world.admin() as admin:
        base = f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"
        # A chunked upload is stored whole (MLflow alone would store it empty).
        assert admin.put(f"{base}/before.txt", content=chunks(1)).status_code == 200
        assert admin.get(f"{base}/before.txt").content == b"y" * 40
        policy = admin.put("/api/v1/projects/quota-chunks/policy", json={"max_stored_bytes": 140})
        assert policy.status_code == 200
        assert admin.put(f"{base}/first.txt", content=chunks(2)).status_code == 200
        refused = admin.put(f"{base}/second.txt", content=chunks(3))
        assert refused.status_code == 429, refused.text
        error = refused.json()["error"]
        assert "stored_bytes" in error["message"]
        assert "olga" in error["message"]
        ajax = admin.post(
            "/mlflow/ajax-api/2.0/mlflow/upload-artifact",
            params={"run_uuid": run_id, "path": "third.txt"},
            content=chunks(3),
        )
        assert ajax.status_code == 429, ajax.text
        # Multipart uploads send their parts past the proxy: they cannot be counted, so refused.
        multipart = admin.post(
            f"/mlflow/api/2.0/mlflow-artifacts/mpu/create/{experiment_id}/{run_id}/artifacts",
            json={"path": "big.bin", "num_parts": 2},
        )
        assert multipart.status_code == 429
        assert "bypass" in multipart.json()["error"]["message"]
        record = world.last_audit(refused.headers["x-request-id"])
        assert (record["status"], record["project"]) == (429, "quota-chunks")
    # Nothing half-written: only the first file, complete, and no temporary files.
    assert sorted(p.name for p in folder.iterdir()) == ["before.txt", "first.txt"]
    assert (folder / "first.txt").read_bytes() == b"y" * 80
    assert not list((shared_server.home / "artifacts" / experiment_id).rglob("*tmp*"))


def test_dataset_and_code_uploads_count_against_the_stored_bytes_quota(shared_server: PaveServer) -> None:
    """What a client sends through the dataset and code routes counts with the project's MLflow
    artifacts, declared or chunked; an upload over the quota stores and indexes nothing."""
    world = World(shared_server)
    world.project("quota-objects", owner="oscar")
    experiment_id = world.experiment("quota-objects")
    run_id = world.run(experiment_id)

    def sha(data: bytes) -> str:
        return hashlib.sha256(data).hexdigest()

    def chunks(data: bytes) -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        yield data[: len(data) // 2]
        yield data[len(data) // 2 :]

    first, second, third, code = (os.urandom(n) for n in (300, 301, 200, 100))
    objects = "/api/v1/projects/quota-objects"
    with world.admin() as admin:
        base = f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts"
        assert admin.put(f"{base}/model.bin", content=b"m" * 300).status_code == 200
        set_quota = admin.put(f"{objects}/policy", json={"max_stored_bytes": 1000})
        assert set_quota.status_code == 200
        put = admin.put(f"{objects}/datasets/{sha(first)}", params={"filename": "a.csv"}, content=first)
        assert put.status_code == 201, put.text  # 300 + 300
        put = admin.put(f"{objects}/code/{sha(code)}", params={"filename": "code.tar.gz"}, content=code)
        assert put.status_code == 201, put.text  # 700
        over = admin.put(f"{objects}/datasets/{sha(second)}", params={"filename": "b.csv"}, content=second)
        assert over.status_code == 429, over.text  # 700 + 301 > 1000
        assert "stored_bytes" in over.json()["error"]["message"]
        assert "oscar" in over.json()["error"]["message"]
        assert admin.head(f"{objects}/datasets/{sha(second)}").status_code == 404, "nothing indexed"
        chunked = admin.put(
            f"{objects}/datasets/{sha(second)}", params={"filename": "b.csv"}, content=chunks(second)
        )
        assert chunked.status_code == 429, chunked.text
        assert admin.head(f"{objects}/datasets/{sha(second)}").status_code == 404, "nothing indexed"
        # the datasets count on MLflow's side too: 700 + 350 > 1000
        refused = admin.put(f"{base}/more.bin", content=b"n" * 350)
        assert refused.status_code == 429, refused.text
        put = admin.put(f"{objects}/datasets/{sha(third)}", params={"filename": "c.csv"}, content=third)
        assert put.status_code == 201, put.text
        assert admin.head(f"{objects}/datasets/{sha(third)}").status_code == 200  # 900
        # bytes the project stored already are not sent nor counted again
        again = admin.put(f"{objects}/datasets/{sha(first)}", params={"filename": "a.csv"}, content=first)
        assert again.status_code == 201
        assert again.json()["stored"] is False


def test_deploying_or_rolling_out_an_unapproved_version_is_refused(gated: dict[str, Any]) -> None:
    world: World = gated["world"]
    answer = world.mlflow("GET", "experiments/get-by-name", params={"experiment_name": "gated"}).json()
    run_id = world.run(answer["experiment"]["experiment_id"], gated["dora"])
    unapproved = world.version("gated", run_id, gated["dora"])
    with world.server.client(gated["mike"]) as client:
        for method, path, body in (
            ("PUT", "/api/v1/projects/gated/deployment", {"version": unapproved}),
            ("PUT", "/api/v1/projects/gated/deployment", {"canary_version": unapproved}),
        ):
            response = client.request(method, path, json=body)
            assert response.status_code == 403, (path, body, response.text)
            assert "needs an approval" in response.json()["error"]["message"]
            assert world.last_audit(response.headers["x-request-id"])["outcome"] == "denied"
        assert client.get("/api/v1/projects/gated/deployment").status_code == 404, "nothing was deployed"


def test_every_version_that_would_take_traffic_needs_the_approval(gated: dict[str, Any]) -> None:
    """A shadow, a canary or a rollout's candidate is production traffic too (finding: shadow skipped it)."""
    world: World = gated["world"]
    answer = world.mlflow("GET", "experiments/get-by-name", params={"experiment_name": "gated"}).json()
    experiment_id = answer["experiment"]["experiment_id"]

    def version() -> str:  # files in the platform's artifact store, so that it can be deployed
        run_id = world.run(experiment_id, gated["dora"])
        created = world.mlflow(
            "POST",
            "model-versions/create",
            gated["dora"],
            json={
                "name": "gated",
                "source": f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts/model",
                "run_id": run_id,
            },
        )
        assert created.status_code == 200, created.text
        number: str = created.json()["model_version"]["version"]
        return number

    approved = version()
    with world.server.client(gated["alice"]) as client:
        assert client.post("/api/v1/projects/gated/approvals", json={"version": approved}).status_code == 200
    unapproved = version()
    with world.server.client(gated["mike"]) as client:
        for body in (
            {"version": approved, "shadow_version": unapproved},
            {"version": approved, "canary_version": unapproved},
            {"version": unapproved},
        ):
            response = client.put("/api/v1/projects/gated/deployment", json=body)
            assert response.status_code == 403, (body, response.text)
            assert f"version {unapproved} needs an approval" in response.json()["error"]["message"]
            assert world.last_audit(response.headers["x-request-id"])["outcome"] == "denied"
            assert client.get("/api/v1/projects/gated/deployment").status_code == 404, "nothing deployed"

        deployed = client.put("/api/v1/projects/gated/deployment", json={"version": approved})
        assert deployed.status_code == 200, deployed.text
        for method, path, body in (
            ("PUT", "/api/v1/projects/gated/deployment", {"version": approved, "shadow_version": unapproved}),
            ("POST", "/api/v1/projects/gated/rollout", {"version": unapproved}),
        ):
            response = client.request(method, path, json=body)
            assert response.status_code == 403, (path, body, response.text)
        spec = client.get("/api/v1/projects/gated/deployment").json()["spec"]
        assert [v["version"] for v in spec["versions"]] == [approved]
        assert "shadow" not in spec
        assert client.delete("/api/v1/projects/gated/deployment").status_code == 200
