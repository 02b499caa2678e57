"""Domain units: path checks, egress policy, request scope, effective roles (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pave.errors import Forbidden, InvalidInput, QuotaExceeded
from pave.governance import paths, prompts
from pave.governance.access import Access
from pave.governance.egress import EgressPolicy
from pave.governance.policy import Policy, check_quota
from pave.governance.roles import ROLES
from pave.governance.scope import (
    filter_graphql,
    filter_listing,
    filter_pave_listing,
    registry_project,
    resolve,
)
from pave.governance.tokens import Principal

# --- paths ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "../x",
        "a/../../x",
        "%2e%2e/x",
        "%252e%252e/x",
        "/etc/passwd",
        "%2fetc",
        "a\\b",
        "a\x00b",
        "C:/x",
        "%c0%af",
    ],
)
def test_check_relative_path_refuses(bad: str) -> None:
    with pytest.raises(InvalidInput):
        paths.check_relative_path(bad)


@pytest.mark.parametrize("good", ["a", "a/b.txt", "1/abc/artifacts/model/MLmodel", "a..b/c", "x%20y"])
def test_check_relative_path_accepts(good: str) -> None:
    assert paths.check_relative_path(good)


@given(st.lists(st.sampled_from(["a", "..", ".", "b", "%2e%2e", "%252e%252e"]), min_size=1, max_size=6))
def test_an_accepted_path_never_climbs_out(parts: list[str]) -> None:
    candidate = "/".join(parts)
    try:
        decoded = paths.check_relative_path(candidate)
    except InvalidInput:
        return
    depth = 0
    for part in decoded.split("/"):
        depth += -1 if part == ".." else (0 if part in (".", "") else 1)
        assert depth >= 0


def test_check_inside_follows_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "d").mkdir(parents=True)
    (root / "out").symlink_to(tmp_path)
    assert paths.check_inside(root, "d/file") == (root / "d" / "file").resolve()
    with pytest.raises(InvalidInput, match="outside"):
        paths.check_inside(root, "out/secret")


@pytest.mark.parametrize(
    "source", ["runs:/abc/model", "models:/m-123", "mlflow-artifacts:/1/abc/artifacts/m"]
)
def test_model_sources_in_the_store_are_accepted(source: str) -> None:
    assert paths.check_model_source(source) == source


# --- egress ----------------------------------------------------------------------------------------


def _policy(address: str, allowed: tuple[str, ...] = ()) -> EgressPolicy:
    return EgressPolicy(allowed_networks=allowed, resolver=lambda host, port: [address])


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "169.254.169.254",
        "100.64.0.1",
        "0.0.0.0",
        "::1",
        "fe80::1",
        "fd00::1",
        "::ffff:127.0.0.1",
        "224.0.0.1",
    ],
)
def test_egress_refuses_non_public_addresses(address: str) -> None:
    with pytest.raises(Forbidden):
        _policy(address).check("https://hook.example.com/x")


def test_egress_allows_public_and_explicitly_allowed_networks() -> None:
    assert _policy("93.184.216.34").check("https://example.com/x")[1] == 443
    assert _policy("10.1.2.3", ("10.1.0.0/16",)).check("http://alerts.internal:9093/x")[1] == 9093
    with pytest.raises(InvalidInput, match="credentials"):
        _policy("93.184.216.34").check("https://user:pw@example.com/")


# --- scope ----------------------------------------------------------------------------------------


class FakeLookup:
    experiments = {"1": "alpha", "2": "beta"}
    runs = {"r1": "1", "r2": "2"}

    def experiment_name(self, experiment_id: str) -> str | None:
        return self.experiments.get(experiment_id)

    def run_experiment(self, run_id: str) -> str | None:
        return self.runs.get(run_id)

    def logged_model_experiment(self, model_id: str) -> str | None:
        return "2" if model_id == "m-2" else None

    def object_experiments(self, kind: str, object_id: str) -> list[str]:
        known = {("trace", "t1"): ["1"], ("trace", "t2"): ["2"], ("dataset", "d-2"): ["2"]}
        return known.get((kind, object_id), [])


M = "/mlflow/api/2.0/mlflow/"
M3 = "/mlflow/api/3.0/mlflow/"


@pytest.mark.parametrize(
    ("path", "params", "body", "projects"),
    [
        ("/api/v1/projects/alpha/runs", {}, None, ["alpha"]),
        ("/api/v1/projects", {}, {"name": "new-one"}, ["new-one"]),
        (M + "experiments/create", {}, {"name": "alpha"}, ["alpha"]),
        (M + "experiments/get", {"experiment_id": "2"}, None, ["beta"]),
        (M + "experiments/get-by-name", {"experiment_name": "beta"}, None, ["beta"]),
        (M + "runs/create", {}, {"experiment_id": "1"}, ["alpha"]),
        (M + "runs/log-batch", {}, {"run_id": "r2"}, ["beta"]),
        (
            "/mlflow/ajax-api/2.0/mlflow/metrics/get-history-bulk-interval",
            {"run_ids": ["r1", "r2"]},
            None,
            ["alpha", "beta"],
        ),
        (M + "registered-models/rename", {}, {"name": "alpha", "new_name": "beta"}, ["alpha", "beta"]),
        (M + "model-versions/create", {}, {"name": "alpha", "run_id": "r2"}, ["alpha", "beta"]),
        (M + "logged-models/m-2", {}, None, ["beta"]),
        ("/mlflow/api/2.0/mlflow-artifacts/artifacts/2/r2/artifacts/x", {}, None, ["beta"]),
        ("/mlflow/api/2.0/mlflow-artifacts/artifacts", {"path": "1/r1"}, None, ["alpha"]),
        ("/mlflow/graphql", {}, {"variables": {"data": {"runId": "r1"}}}, ["alpha"]),
        # ids written inline in the query text count as much as those in the variables
        (
            "/mlflow/graphql",
            {},
            {"query": 'query { mlflowGetRun(input: {runId: "r2"}) { run { info { runId } } } }'},
            ["beta"],
        ),
        (
            "/mlflow/graphql",
            {},
            {
                "query": "query Q($e: [String]) { a: mlflowSearchRuns(input: {experimentIds: $e}) { runs "
                "{ info { runId } } } }",
                "variables": {"e": ["1", "2"]},
            },
            ["alpha", "beta"],
        ),
        # GenAI objects: traces, evaluation datasets, by path, query or body
        (M3 + "traces/t2", {}, None, ["beta"]),
        (M + "traces/t1/info", {}, None, ["alpha"]),
        (M3 + "traces/get", {"trace_id": "t2"}, None, ["beta"]),
        (M3 + "traces/batchGetInfos", {}, {"trace_ids": ["t1", "t2"]}, ["alpha", "beta"]),
        ("/mlflow/ajax-api/2.0/mlflow/get-trace-artifact", {"request_id": "t2"}, None, ["beta"]),
        (M3 + "traces/t2/assessments/a-1", {}, None, ["beta"]),
        (M3 + "datasets/d-2/records", {}, None, ["beta"]),
        (M3 + "traces/search", {}, {"locations": [{"mlflow_experiment": {"experiment_id": "1"}}]}, ["alpha"]),
    ],
)
def test_resolve_finds_the_projects_of_a_request(
    path: str, params: dict[str, Any], body: Any, projects: list[str]
) -> None:
    assert resolve(path, params, body, FakeLookup()).projects == projects


def test_resolve_marks_searches_and_unresolved_requests() -> None:
    # GET traces searches them (filtered answer); POST traces starts one in an experiment.
    assert resolve(M + "traces", {"experiment_ids": "2"}, None, FakeLookup()).search == "traces"
    started = resolve(M + "traces", {}, {"experiment_id": "2"}, FakeLookup(), method="POST")
    assert (started.search, started.projects) == (None, ["beta"])
    assert resolve(M + "runs/search", {}, {"experiment_ids": ["1"]}, FakeLookup()).search == "runs/search"
    assert resolve("/mlflow/api/2.0/mlflow-artifacts/artifacts/x/y", {}, None, FakeLookup()).unresolved
    assert resolve(M + "traces/delete-traces", {}, {}, FakeLookup()).unresolved
    assert not resolve("/mlflow/static-files/app.js", {}, None, FakeLookup()).unresolved


def test_filter_graphql_drops_what_the_caller_may_not_see_through_aliases_and_fragments() -> None:
    query = """
    query Q { x: mlflowSearchModelVersions(input: {}) { modelVersions { ...V } }
              mlflowGetRun(input: {runId: "r1"}) { run { modelVersions { version } } } }
    fragment V on MlflowModelVersion { n: name version }
    """
    answer = {
        "data": {
            "x": {"modelVersions": [{"n": "alpha", "version": "1"}, {"n": "beta", "version": "1"}]},
            "mlflowGetRun": {"run": {"modelVersions": [{"version": "3"}]}},
        }
    }
    kept = filter_graphql({"query": query}, answer, lambda p: p == "alpha", FakeLookup())
    assert kept["data"]["x"]["modelVersions"] == [{"n": "alpha", "version": "1"}]
    assert kept["data"]["mlflowGetRun"]["run"]["modelVersions"] == []  # no name selected: dropped
    datasets = {
        "data": {"mlflowSearchDatasets": {"datasetSummaries": [{"experimentId": "1"}, {"experimentId": "2"}]}}
    }
    query = "mutation { mlflowSearchDatasets(input: {}) { datasetSummaries { experimentId } } }"
    assert filter_graphql({"query": query}, datasets, lambda p: p == "beta", FakeLookup())["data"] == {
        "mlflowSearchDatasets": {"datasetSummaries": [{"experimentId": "2"}]}
    }
    assert (
        filter_graphql({"query": "{ not graphql"}, {"data": {"a": 1}}, lambda p: True, FakeLookup())["data"]
        is None
    )


def test_filter_listing_keeps_only_visible_items() -> None:
    answer = {
        "runs": [{"info": {"experiment_id": "1"}}, {"info": {"experiment_id": "2"}}, {"info": {}}],
        "next_page_token": "t",
    }
    kept = filter_listing("runs/search", answer, lambda p: p == "alpha", FakeLookup())
    assert kept == {"runs": [{"info": {"experiment_id": "1"}}], "next_page_token": "t"}
    models = {"registered_models": [{"name": "alpha"}, {"name": "beta"}]}
    assert filter_listing("registered-models/search", models, lambda p: p == "beta", FakeLookup()) == {
        "registered_models": [{"name": "beta"}]
    }
    issues = {"issues": [{"issue_id": "i1", "experiment_id": "1"}, {"issue_id": "i2", "experiment_id": "2"}]}
    assert filter_listing("issues/search", issues, lambda p: p == "alpha", FakeLookup())["issues"] == [
        {"issue_id": "i1", "experiment_id": "1"}
    ]
    assert resolve(M3 + "issues/search", {}, {}, FakeLookup()).search == "issues/search"
    projects = [{"name": "alpha"}, {"name": "beta"}]
    assert filter_pave_listing("/api/v1/projects", projects, lambda p: p == "alpha") == [{"name": "alpha"}]


@pytest.mark.parametrize(
    ("name", "project"),
    [("churn", "churn"), ("churn.greeting", "churn"), ("churn.a.b", "churn"), (".x", ".x"), ("x.", "x.")],
)
def test_a_registered_name_belongs_to_the_project_before_its_first_dot(name: str, project: str) -> None:
    assert registry_project(name) == project


def test_prompt_routes_and_listings_are_scoped_by_the_prompts_project() -> None:
    scope = resolve(M + "registered-models/alias", {}, {"name": "alpha.greeting", "alias": "x"}, FakeLookup())
    assert (scope.projects, scope.model) == (["alpha"], "alpha.greeting")
    rename = {"name": "alpha.greeting", "new_name": "beta.greeting"}
    assert resolve(M + "registered-models/rename", {}, rename, FakeLookup()).projects == ["alpha", "beta"]
    prompts = {"registered_models": [{"name": "alpha.greeting"}, {"name": "beta.secret"}]}
    assert filter_listing("registered-models/search", prompts, lambda p: p == "alpha", FakeLookup()) == {
        "registered_models": [{"name": "alpha.greeting"}]
    }


def test_prompt_names_and_sources() -> None:
    assert prompts.project_of("alpha.greeting", {"alpha"}) == "alpha"
    for name in ("greeting", "alpha", "alpha.", ""):
        with pytest.raises(InvalidInput, match="names no project"):
            prompts.project_of(name, {"alpha"})
    with pytest.raises(Forbidden, match="does not exist"):
        prompts.project_of("nosuch.greeting", {"alpha"})
    prompts.check_source("dummy-source")
    with pytest.raises(InvalidInput, match="placeholder"):
        prompts.check_source("runs:/abc/model")
    tag = "mlflow.prompt.is_prompt"
    assert prompts.is_prompt([{"key": tag, "value": "TRUE"}])
    assert not prompts.is_prompt([{"key": tag, "value": "true"}, {"key": tag, "value": "false"}])
    assert not prompts.is_prompt("not a list")


# --- effective roles -----------------------------------------------------------------------------


def _principal(role: str, project: str | None = None, identity: str = "u") -> Principal:
    return Principal(identity=identity, token_id=1, role=role, project=project, is_admin=role == "admin")


@given(
    token_role=st.sampled_from(sorted(ROLES)),
    binding=st.sampled_from(["", "viewer", "developer", "maintainer", "approver"]),
    owner=st.booleans(),
    scoped=st.sampled_from([None, "p", "q"]),
)
def test_effective_actions_never_exceed_the_token_role(
    token_role: str, binding: str, owner: bool, scoped: str | None
) -> None:
    principal = _principal(token_role, scoped)
    access = Access(
        principal, owners={"p": "u" if owner else "someone"}, bindings={"p": binding} if binding else {}
    )
    actions = access.actions("p")
    assert actions <= ROLES[token_role]
    if token_role == "admin":
        assert actions == ROLES["admin"]
    elif scoped == "q":
        assert actions == frozenset()
    elif scoped == "p":
        assert actions == ROLES[token_role]
    else:
        granted = set(ROLES.get(binding, frozenset())) | (ROLES["maintainer"] if owner else set())
        assert actions == frozenset(granted) & ROLES[token_role]


def test_names_that_are_no_project_follow_the_token_role_for_platform_tokens_only() -> None:
    assert Access(_principal("developer")).actions("scratch-experiment") == ROLES["developer"]
    assert Access(_principal("developer", "p")).actions("scratch-experiment") == frozenset()
    assert not Access(_principal("viewer")).sees(None)


def test_quota_error_names_the_quota_and_its_owner() -> None:
    policy = Policy("p", "olga", max_deployments=2)
    check_quota(policy, "deployments", 1)
    with pytest.raises(QuotaExceeded, match=r"deployments of 2 exceeded.*owner: olga"):
        check_quota(policy, "deployments", 2)
    check_quota(Policy("p", None), "stored_bytes", 10**12, 10**12)


@pytest.mark.parametrize(
    ("path", "mlflow_refuses"),
    [
        ("../x", True),
        ("%2e%2e/x", True),
        ("%252e%252e/x", True),
        ("/etc/passwd", True),
        ("C:/x", True),
        ("a\\..\\..\\x", False),  # MLflow lets backslashes through
        ("a\x00b", False),  # and NUL bytes
        ("%25252e%25252e/x", True),
    ],
)
def test_pave_refuses_every_artifact_path_mlflow_refuses_and_more(path: str, mlflow_refuses: bool) -> None:
    from mlflow.exceptions import MlflowException
    from mlflow.utils.uri import validate_path_is_safe

    try:
        validate_path_is_safe(path)
        refused_by_mlflow = False
    except MlflowException:
        refused_by_mlflow = True
    assert refused_by_mlflow == mlflow_refuses, "MLflow's own check changed: update docs/security.md"
    with pytest.raises(InvalidInput):
        paths.check_relative_path(path)
