"""MLflow's GraphQL and GenAI routes: a platform-wide token bound to project A sees nothing of B."""

from __future__ import annotations

from typing import Any

import pytest

from pave_testing import PaveServer, World

M2 = "/mlflow/api/2.0/mlflow"
M3 = "/mlflow/api/3.0/mlflow"


@pytest.fixture(scope="module")
def genai(shared_server: PaveServer) -> dict[str, Any]:
    """Projects gi-a and gi-b, each with a run, a model version, a trace and an evaluation dataset."""
    world = World(shared_server)
    made: dict[str, Any] = {"world": world}
    with world.admin() as admin:
        for name in ("gi-a", "gi-b"):
            world.project(name)
            experiment_id = world.experiment(name)
            run_id = world.run(experiment_id)
            trace = admin.post(
                f"{M2}/traces",
                json={
                    "experiment_id": experiment_id,
                    "timestamp_ms": 1000,
                    "request_metadata": [],
                    "tags": [],
                },
            )
            assert trace.status_code == 200, trace.text
            dataset = admin.post(
                f"{M3}/datasets/create", json={"name": f"ds-{name}", "experiment_ids": [experiment_id]}
            )
            assert dataset.status_code == 200, dataset.text
            made[name] = {
                "experiment_id": experiment_id,
                "run_id": run_id,
                "version": world.version(name, run_id),
                "trace_id": trace.json()["trace_info"]["request_id"],
                "dataset_id": dataset.json()["dataset"]["dataset_id"],
            }
    world.member("gi-a", "gina", "developer")
    made["token"] = world.token("gina", "developer")  # platform-wide, a developer of gi-a only
    return made


def _graphql(server: PaveServer, token: str, query: str, variables: dict[str, Any] | None = None) -> Any:
    with server.client(token) as client:
        return client.post("/mlflow/graphql", json={"query": query, "variables": variables or {}})


def _get_run(run_id: str, selection: str) -> str:
    return 'query { mlflowGetRun(input: {runId: "RUN"}) { SEL } }'.replace("RUN", run_id).replace(
        "SEL", selection
    )


def test_graphql_answers_hold_nothing_of_another_project(genai: dict[str, Any]) -> None:
    world: World = genai["world"]
    server, token = world.server, genai["token"]
    a, b = genai["gi-a"], genai["gi-b"]

    searched = _graphql(
        server, token, "query { mlflowSearchModelVersions(input: {}) { modelVersions { name } } }"
    )
    assert searched.status_code == 200
    names = {v["name"] for v in searched.json()["data"]["mlflowSearchModelVersions"]["modelVersions"]}
    assert names & {"gi-a", "gi-b"} == {"gi-a"}
    # An alias and a fragment change nothing; without the name nothing can be told, so nothing is shown.
    aliased = _graphql(
        server,
        token,
        "query { x: mlflowSearchModelVersions(input: {}) { modelVersions { ...V } } } "
        "fragment V on MlflowModelVersion { n: name }",
    )
    assert {v["n"] for v in aliased.json()["data"]["x"]["modelVersions"]} & {"gi-a", "gi-b"} == {"gi-a"}
    blind = _graphql(
        server, token, "query { mlflowSearchModelVersions(input: {}) { modelVersions { version } } }"
    )
    assert blind.json()["data"]["mlflowSearchModelVersions"]["modelVersions"] == []

    # Ids inline in the query text are authorised like ids in the variables.
    inline = _graphql(server, token, _get_run(b["run_id"], "run { info { runId } }"))
    assert inline.status_code == 403
    assert world.last_audit(inline.headers["x-request-id"])["outcome"] == "denied"
    variables = _graphql(
        server,
        token,
        "mutation S($ids: [String]) { mlflowSearchRuns(input: {experimentIds: $ids}) "
        "{ runs { info { runId } } } }",
        {"ids": [a["experiment_id"], b["experiment_id"]]},
    )
    assert variables.status_code == 403
    own = _graphql(server, token, _get_run(a["run_id"], "run { info { runId } modelVersions { name } }"))
    assert own.status_code == 200
    assert own.json()["data"]["mlflowGetRun"]["run"]["info"]["runId"] == a["run_id"]
    listing = 'query { mlflowListArtifacts(input: {runId: "RUN", path: "../../.."}) { files { path } } }'
    traversal = _graphql(server, token, listing.replace("RUN", a["run_id"]))
    assert traversal.status_code == 400


def test_traces_and_evaluation_datasets_of_another_project_are_refused(genai: dict[str, Any]) -> None:
    world: World = genai["world"]
    token = genai["token"]
    a, b = genai["gi-a"], genai["gi-b"]
    with world.server.client(token) as client:
        for method, url, kwargs in (
            ("GET", f"{M2}/traces/{b['trace_id']}/info", {}),
            (
                "POST",
                f"{M2}/traces",
                {
                    "json": {
                        "experiment_id": b["experiment_id"],
                        "timestamp_ms": 1,
                        "request_metadata": [],
                        "tags": [],
                    }
                },
            ),
            ("GET", f"{M3}/traces/{b['trace_id']}", {}),
            ("GET", f"{M3}/traces/get", {"params": {"trace_id": b["trace_id"]}}),
            ("GET", f"{M3}/traces/batchGet", {"params": {"trace_ids": [a["trace_id"], b["trace_id"]]}}),
            ("POST", f"{M3}/traces/batchGetInfos", {"json": {"trace_ids": [b["trace_id"]]}}),
            (
                "GET",
                "/mlflow/ajax-api/2.0/mlflow/get-trace-artifact",
                {"params": {"request_id": b["trace_id"]}},
            ),
            ("PATCH", f"{M2}/traces/{b['trace_id']}/tags", {"json": {"key": "k", "value": "v"}}),
            ("DELETE", f"{M3}/traces/{b['trace_id']}/tags", {"params": {"key": "k"}}),
            ("GET", f"{M3}/datasets/{b['dataset_id']}", {}),
            ("GET", f"{M3}/datasets/{b['dataset_id']}/records", {}),
            ("POST", f"{M3}/datasets/{b['dataset_id']}/records", {"json": {"records": "[]"}}),
            ("DELETE", f"{M3}/datasets/{b['dataset_id']}", {}),
        ):
            response = client.request(method, url, **kwargs)
            assert response.status_code == 403, (method, url, response.text)
        # OpenTelemetry ingest names its experiment in a header: writing into B is refused.
        otlp = client.post(
            "/mlflow/v1/traces",
            content=b"\x00",
            headers={"x-mlflow-experiment-id": b["experiment_id"], "content-type": "application/x-protobuf"},
        )
        assert otlp.status_code == 403
        # The caller's own objects are served, and listings hold only them.
        assert client.get(f"{M3}/traces/{a['trace_id']}").status_code == 200
        assert (
            client.post(f"{M3}/traces/batchGetInfos", json={"trace_ids": [a["trace_id"]]}).status_code == 200
        )
        assert client.get(f"{M3}/datasets/{a['dataset_id']}").status_code == 200
        listed = client.post(f"{M3}/datasets/search", json={})
        assert listed.status_code == 200
        assert {d["dataset_id"] for d in listed.json().get("datasets", [])} & {
            a["dataset_id"],
            b["dataset_id"],
        } == {a["dataset_id"]}
    with world.admin() as admin:  # nothing of B changed
        info = admin.get(f"{M3}/traces/{b['trace_id']}").json()["trace"]["trace_info"]
        assert "k" not in info.get("tags", {})
        assert admin.get(f"{M3}/datasets/{b['dataset_id']}").status_code == 200


def test_model_version_files_of_another_project_are_refused(genai: dict[str, Any]) -> None:
    """``model-versions/get-artifact`` lives outside MLflow's REST API: its project is the model's name."""
    world: World = genai["world"]
    server, token = world.server, genai["token"]
    versions = {}
    for name in ("gi-a", "gi-b"):
        ids = genai[name]
        folder = f"{ids['experiment_id']}/{ids['run_id']}/artifacts/model"
        with world.admin() as admin:
            put = admin.put(
                f"/mlflow/api/2.0/mlflow-artifacts/artifacts/{folder}/weights.bin",
                content=f"weights of {name}".encode(),
            )
            assert put.status_code == 200, put.text
        created = world.mlflow(
            "POST",
            "model-versions/create",
            json={"name": name, "source": f"mlflow-artifacts:/{folder}", "run_id": ids["run_id"]},
        )
        assert created.status_code == 200, created.text
        versions[name] = created.json()["model_version"]["version"]
    with server.client(token) as client:
        own = client.get(
            "/mlflow/model-versions/get-artifact",
            params={"name": "gi-a", "version": versions["gi-a"], "path": "weights.bin"},
        )
        assert own.status_code == 200, own.text
        assert own.content == b"weights of gi-a"
        other = client.get(
            "/mlflow/model-versions/get-artifact",
            params={"name": "gi-b", "version": versions["gi-b"], "path": "weights.bin"},
        )
        assert other.status_code == 403, other.text
        assert b"weights of gi-b" not in other.content
        assert world.last_audit(other.headers["x-request-id"])["outcome"] == "denied"


@pytest.mark.parametrize(
    "target",
    [
        pytest.param("/mlflow/model-versions/get-artifact?version=1&path=weights.bin", id="no-model-name"),
        pytest.param(f"{M2}/experiments/get", id="no-experiment-id"),
        pytest.param(f"{M2}-artifacts/artifacts?path=model", id="artifact-listing-without-experiment"),
    ],
)
def test_a_request_that_names_no_project_is_denied(genai: dict[str, Any], target: str) -> None:
    """Unresolved = denied (the gate falls back to no platform role), admins included."""
    world: World = genai["world"]
    for token in (genai["token"], None):
        with world.server.client(token) as client:
            response = client.get(target)
        assert response.status_code == 403, (target, response.text)
        assert "names no experiment, run, model or trace" in response.json()["error"]["message"]
