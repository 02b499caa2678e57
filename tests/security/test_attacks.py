"""The attack suite: each test is named after the class of vulnerability it derives from.

Derived from the published vulnerability history of MLflow (path traversal in artifact routes,
model sources reading the host's files, SSRF), Ray and BentoML (pickle deserialisation,
missing auth), KServe and ClearML (cross-origin state changes, unbounded queries). Every attack
must be refused with a 4xx, change nothing, and leave an audit record.
"""

from __future__ import annotations

import http.server
import json
import os
import pickle
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kit import assert_refused, raw

from pave.errors import Forbidden, InvalidInput
from pave.governance.egress import EgressPolicy, fetch
from pave_testing import World

ART = "/mlflow/api/2.0/mlflow-artifacts/artifacts"
MLFLOW = "/mlflow/api/2.0/mlflow"


def _artifact_root(target: dict[str, Any]) -> Path:
    return Path(target["server"].home) / "artifacts"


def _run_prefix(target: dict[str, Any]) -> str:
    return f"{target['experiment_id']}/{target['run_id']}/artifacts"


# --- path traversal in its encoded forms --------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix",
    [
        pytest.param("../../../../../../etc/passwd", id="plain"),
        pytest.param("%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd", id="percent-encoded-dots"),
        pytest.param("..%2f..%2f..%2f..%2fetc%2fpasswd", id="encoded-slash"),
        pytest.param("%252e%252e%252f%252e%252e%252f%252e%252e%252fetc%252fpasswd", id="double-encoded"),
        pytest.param("%25252e%25252e%25252fetc%25252fpasswd", id="triple-encoded"),
        pytest.param("..%5c..%5c..%5cetc%5cpasswd", id="backslash"),
        pytest.param("ok.txt%00.png", id="nul-byte"),
        pytest.param("..%c0%af..%c0%afetc%c0%afpasswd", id="overlong-utf8-slash"),
    ],
)
def test_path_traversal_on_artifact_download(target: dict[str, Any], suffix: str) -> None:
    response = raw(target["server"], "GET", f"{ART}/{_run_prefix(target)}/{suffix}")
    assert_refused(target["world"], response.status, response.headers)
    assert b"root:" not in response.body


def test_path_traversal_double_encoded_on_upload_writes_nothing(target: dict[str, Any]) -> None:
    root = _artifact_root(target)

    def stored() -> list[str]:  # the home's data; pid files, logs and the gateway's inference log come and go
        home = root.parent
        working = {"run", "inference-log"}
        return sorted(str(p) for p in home.rglob("*") if not working & set(p.relative_to(home).parts[:1]))

    before = stored()
    response = raw(
        target["server"],
        "PUT",
        f"{ART}/{target['experiment_id']}/%252e%252e/%252e%252e/pwned.txt",
        body=b"owned",
    )
    assert_refused(target["world"], response.status, response.headers, expected=400)
    assert [p for p in stored() if not p.endswith(".log")] == [p for p in before if not p.endswith(".log")]
    assert not any(p.name == "pwned.txt" for p in Path(target["server"].home).parent.rglob("pwned.txt"))


def test_path_traversal_absolute_artifact_path(target: dict[str, Any]) -> None:
    response = raw(target["server"], "GET", f"{ART}//etc/passwd")
    assert_refused(target["world"], response.status, response.headers)
    assert b"root:" not in response.body


@pytest.mark.parametrize(
    "query",
    [
        pytest.param("path=../../../../etc/passwd", id="get-artifact-dotdot"),
        pytest.param("path=%252e%252e%252f%252e%252e%252fetc%252fpasswd", id="get-artifact-double-encoded"),
        pytest.param("path=/etc/passwd", id="get-artifact-absolute"),
    ],
)
def test_path_traversal_in_get_artifact_path_param(target: dict[str, Any], query: str) -> None:
    response = raw(target["server"], "GET", f"/mlflow/get-artifact?{query}&run_uuid={target['run_id']}")
    assert_refused(target["world"], response.status, response.headers, expected=400)
    assert b"root:" not in response.body


def test_path_traversal_in_artifact_listing_path_param(target: dict[str, Any]) -> None:
    response = raw(target["server"], "GET", f"{ART}?path={target['experiment_id']}/../../..")
    assert_refused(target["world"], response.status, response.headers, expected=400)


def test_path_traversal_via_symlink_escaping_the_artifact_root(
    target: dict[str, Any], tmp_path: Path
) -> None:
    outside = tmp_path / "secret.txt"
    outside.write_text("top secret")
    link = _artifact_root(target) / target["experiment_id"] / "escape"
    link.symlink_to(tmp_path, target_is_directory=True)
    try:
        response = raw(target["server"], "GET", f"{ART}/{target['experiment_id']}/escape/secret.txt")
        assert_refused(target["world"], response.status, response.headers, expected=400)
        assert b"top secret" not in response.body
    finally:
        link.unlink()


# --- model sources that point at the host's files ---------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        pytest.param("/etc", id="absolute-path"),
        pytest.param("file:///etc/passwd", id="file-uri"),
        pytest.param("mlflow-artifacts:/../../../../etc", id="traversal-inside-the-store-scheme"),
        pytest.param("runs:/%2e%2e/%2e%2e/etc", id="encoded-traversal-in-runs-uri"),
        pytest.param("http://169.254.169.254/latest/meta-data", id="remote-url"),
        pytest.param("s3://someone-elses-bucket/model", id="foreign-bucket"),
    ],
)
def test_model_source_pointing_at_host_files(target: dict[str, Any], source: str) -> None:
    world: World = target["world"]
    before = world.mlflow("GET", "model-versions/search", params={"filter": f"name='{target['project']}'"})
    response = world.mlflow(
        "POST", "model-versions/create", json={"name": target["project"], "source": source}
    )
    assert_refused(world, response.status_code, dict(response.headers), expected=400)
    after = world.mlflow("GET", "model-versions/search", params={"filter": f"name='{target['project']}'"})
    assert len(after.json()["model_versions"]) == len(before.json()["model_versions"])


# --- artifact locations that point at the host's files ----------------------------------------------


@pytest.mark.parametrize(
    "location",
    [
        pytest.param("file:///etc", id="file-uri"),
        pytest.param("/etc", id="absolute-path"),
        pytest.param("/tmp/x", id="tmp"),
        pytest.param("mlflow-artifacts:/1", id="another-experiments-folder"),
        pytest.param("s3://someone-elses-bucket/x", id="foreign-bucket"),
    ],
)
def test_experiment_artifact_location_outside_the_store(target: dict[str, Any], location: str) -> None:
    world: World = target["world"]
    name = f"{target['project']}-loc"
    response = world.mlflow(
        "POST", "experiments/create", target["developer"], json={"name": name, "artifact_location": location}
    )
    assert_refused(world, response.status_code, dict(response.headers), expected=400)
    assert "artifact_location" in response.json()["error"]["message"]
    found = world.mlflow("GET", "experiments/get-by-name", params={"experiment_name": name})
    assert found.status_code == 404, "no experiment was created"


def test_artifacts_of_an_experiment_made_outside_the_store_are_refused(
    target: dict[str, Any], tmp_path: Path
) -> None:
    """An experiment with a foreign location made before the check (straight in MLflow's store)."""
    from mlflow import MlflowClient

    world: World = target["world"]
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host secret")
    store = f"sqlite:///{target['server'].home / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    experiment_id = client.create_experiment("legacy-outside", artifact_location=str(tmp_path))
    run_id = client.create_run(experiment_id).info.run_id
    (tmp_path / run_id / "artifacts").mkdir(parents=True)
    (tmp_path / run_id / "artifacts" / "secret.txt").write_text("host secret")
    with world.admin() as admin:
        upload = admin.post(
            "/mlflow/ajax-api/2.0/mlflow/upload-artifact",
            params={"run_uuid": run_id, "path": "pwned.txt"},
            content=b"owned",
        )
        read = admin.get("/mlflow/get-artifact", params={"run_uuid": run_id, "path": "secret.txt"})
        listing = admin.get("/mlflow/api/2.0/mlflow/artifacts/list", params={"run_id": run_id})
    for response in (upload, read, listing):
        assert_refused(world, response.status_code, dict(response.headers), expected=403)
        assert b"host secret" not in response.content
        assert "outside the platform's artifact store" in response.json()["error"]["message"]
    assert not list(tmp_path.rglob("pwned.txt"))


# --- code execution on the control plane ------------------------------------------------------------


def test_code_uploaded_as_artifacts_is_never_recorded_for_the_loop_to_run(target: dict[str, Any]) -> None:
    """A developer fills a folder over the API and asks the loop to retrain from it every minute:
    no folder is ever recorded, and a run without a snapshot the project stored is refused."""
    world: World = target["world"]
    project = target["project"]
    world.member(project, "lou", "developer")
    developer = world.token("lou", "developer")
    folder = f"{target['experiment_id']}/{target['run_id']}/artifacts/evil"
    marker = Path(target["server"].home) / "pwned-by-loop"
    spec = {
        "name": project,
        "steps": [{"name": "train", "function": "steps:train"}],
        "retrain": {"schedule": "* * * * *"},
    }
    files = {
        "pave.yaml": f"name: {project}\nsteps:\n  - name: train\n    function: steps:train\n".encode(),
        "steps.py": f"open({str(marker)!r}, 'w').write('owned')\ndef train():\n    pass\n".encode(),
    }
    with world.server.client(developer) as client:
        for name, content in files.items():
            put = client.put(f"{ART}/{folder}/{name}", content=content)
            assert put.status_code == 200, put.text
        on_disk = _artifact_root(target) / folder
        assert (on_disk / "steps.py").is_file()
        for directory in (str(on_disk), str(on_disk.parent.parent), str(Path(target["server"].home))):
            body = {"directory": directory, "spec": spec}
            response = client.put(f"/api/v1/projects/{project}/source", json=body)
            assert_refused(world, response.status_code, dict(response.headers), expected=400)
            error = response.json()["error"]
            assert "no longer records a project folder by path" in error["message"]
            assert '{"run_id": RUN_ID}' in error["hint"]
        # a run made straight into MLflow (artifacts uploaded by hand) is no pave run of the project
        response = client.put(f"/api/v1/projects/{project}/source", json={"run_id": target["run_id"]})
        assert_refused(world, response.status_code, dict(response.headers), expected=400)
        assert f"is not a run of project {project}" in response.json()["error"]["message"]
        loop = client.get(f"/api/v1/projects/{project}/loop").json()
    assert loop["source"] is None, "nothing was recorded"
    assert not marker.exists()


# --- SSRF: webhooks and redirects -------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        pytest.param("http://127.0.0.1:8000/api/v1/tokens", id="loopback"),
        pytest.param("http://169.254.169.254/latest/meta-data/", id="metadata-service"),
        pytest.param("http://10.0.0.5/internal", id="private-network"),
        pytest.param("http://[::ffff:127.0.0.1]/", id="ipv4-mapped-ipv6-loopback"),
        pytest.param("http://2130706433/", id="decimal-encoded-loopback"),
        pytest.param("http://localhost/", id="localhost-name"),
    ],
)
def test_ssrf_mlflow_webhook_to_internal_address(target: dict[str, Any], url: str) -> None:
    world: World = target["world"]
    response = world.mlflow(
        "POST",
        "webhooks",
        json={"name": "w", "url": url, "events": [{"entity": "model_version", "action": "created"}]},
    )
    assert_refused(world, response.status_code, dict(response.headers))
    listed = world.mlflow("GET", "webhooks")
    assert all(h.get("url") != url for h in listed.json().get("webhooks", []))


def test_ssrf_webhook_creation_is_admin_only(target: dict[str, Any]) -> None:
    world: World = target["world"]
    response = world.mlflow(
        "POST",
        "webhooks",
        target["developer"],
        json={
            "name": "w",
            "url": "https://example.com/hook",
            "events": [{"entity": "model_version", "action": "created"}],
        },
    )
    assert_refused(world, response.status_code, dict(response.headers), expected=403)


@pytest.mark.parametrize(
    "url", ["file:///etc/passwd", "gopher://127.0.0.1:6379/_INFO", "ftp://example.com/x"]
)
def test_ssrf_non_http_scheme(url: str) -> None:
    with pytest.raises(InvalidInput):
        EgressPolicy().check(url)


class _Redirector(http.server.BaseHTTPRequestHandler):
    location = ""
    hits: list[str] = []

    def do_GET(self) -> None:
        type(self).hits.append(self.path)
        if self.path == "/secret":
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"internal secret")
            return
        self.send_response(302)
        self.send_header("Location", type(self).location)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def redirector() -> Iterator[tuple[str, int]]:
    # The "public" site listens on 127.0.0.2 (allowed explicitly below); its redirect points at 127.0.0.1.
    server = http.server.HTTPServer(("127.0.0.2", 0), _Redirector)
    port = server.server_address[1]
    _Redirector.location = f"http://127.0.0.1:{port}/secret"
    _Redirector.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield "127.0.0.2", port
    server.shutdown()


def test_ssrf_webhook_redirect_to_loopback(redirector: tuple[str, int]) -> None:
    host, port = redirector
    policy = EgressPolicy(allowed_networks=["127.0.0.2/32"])
    with pytest.raises(Forbidden, match=r"127\.0\.0\.1"):
        fetch(policy, "GET", f"http://{host}:{port}/hook")
    assert _Redirector.hits == ["/hook"], "the redirect target was never requested"


def test_ssrf_dns_name_resolving_to_private_address() -> None:
    policy = EgressPolicy(resolver=lambda host, port: ["192.168.1.10"])
    with pytest.raises(Forbidden, match="not a public address"):
        policy.check("https://innocent.example.com/hook")
    assert (
        EgressPolicy(resolver=lambda h, p: ["93.184.216.34"]).check("https://example.com/")[2]
        == "93.184.216.34"
    )


# --- pickle payloads and content types -----------------------------------------------------------


class _Boom:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (os.system, (f"touch {self.marker}",))


def test_pickle_payload_on_every_state_changing_api_route(target: dict[str, Any], tmp_path: Path) -> None:
    """Pickled bytes sent to every Pave and MLflow JSON route: 415, never unpickled."""
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Boom(marker))
    from pave.governance.permissions import required_action

    routes = [
        ("POST", "/api/v1/projects"),
        ("POST", "/api/v1/tokens"),
        ("PUT", f"/api/v1/projects/{target['project']}/members/x"),
        ("PUT", f"/api/v1/projects/{target['project']}/policy"),
        ("POST", f"/api/v1/projects/{target['project']}/approvals"),
        ("POST", f"{MLFLOW}/experiments/create"),
        ("POST", f"{MLFLOW}/runs/create"),
        ("POST", f"{MLFLOW}/runs/log-batch"),
        ("POST", f"{MLFLOW}/registered-models/create"),
        ("POST", f"{MLFLOW}/model-versions/create"),
        ("POST", f"{MLFLOW}/registered-models/alias"),
        ("POST", "/mlflow/graphql"),
    ]
    for content_type in ("application/python-pickle", "application/octet-stream"):
        for method, path in routes:
            assert required_action(method, path) is not None
            response = raw(
                target["server"], method, path, body=payload, headers={"Content-Type": content_type}
            )
            assert_refused(target["world"], response.status, response.headers, expected=415)
    assert not marker.exists()


def test_pickle_payload_labelled_json_is_invalid_input(target: dict[str, Any], tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    payload = pickle.dumps(_Boom(marker))
    response = raw(
        target["server"],
        "POST",
        "/api/v1/projects",
        body=payload,
        headers={"Content-Type": "application/json"},
    )
    assert response.status == 400
    assert not marker.exists()


def test_csrf_text_plain_json_on_state_changing_request(target: dict[str, Any]) -> None:
    world: World = target["world"]
    response = raw(
        target["server"],
        "POST",
        "/api/v1/projects",
        body=b'{"name": "csrf-made"}',
        headers={"Content-Type": "text/plain"},
    )
    assert_refused(world, response.status, response.headers, expected=415)
    with world.admin() as admin:
        assert admin.get("/api/v1/projects/csrf-made").status_code == 404


def test_csrf_form_post_to_mlflow(target: dict[str, Any]) -> None:
    world: World = target["world"]
    response = raw(
        target["server"],
        "POST",
        f"{MLFLOW}/experiments/create",
        body=b"name=csrf-exp",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_refused(world, response.status, response.headers, expected=415)
    assert (
        world.mlflow("GET", "experiments/get-by-name", params={"experiment_name": "csrf-exp"}).status_code
        == 404
    )


def test_cross_origin_state_change(target: dict[str, Any]) -> None:
    world: World = target["world"]
    with world.admin() as admin:
        response = admin.post(
            f"{MLFLOW}/experiments/create",
            json={"name": "xorigin-exp"},
            headers={"Origin": "https://evil.example"},
        )
    assert_refused(world, response.status_code, dict(response.headers), expected=403)
    assert (
        world.mlflow("GET", "experiments/get-by-name", params={"experiment_name": "xorigin-exp"}).status_code
        == 404
    )


def test_host_header_rebinding(target: dict[str, Any]) -> None:
    response = raw(
        target["server"], "POST", "/api/v1/projects", body=b"{}", headers={"Host": "attacker.example"}
    )
    assert_refused(target["world"], response.status, response.headers, expected=400)


# --- missing auth, privilege escalation, IDOR --------------------------------------------------------


def test_missing_auth_on_mlflow_ai_gateway_secrets(target: dict[str, Any]) -> None:
    world: World = target["world"]
    for path in (
        "/mlflow/api/3.0/mlflow/gateway/secrets/list",
        "/mlflow/ajax-api/3.0/mlflow/gateway/endpoints/list",
    ):
        response = raw(target["server"], "GET", path, token=target["developer"])
        assert_refused(world, response.status, response.headers, expected=403)
    created = raw(
        target["server"],
        "POST",
        "/mlflow/api/3.0/mlflow/gateway/secrets/create",
        token=target["developer"],
        body=b'{"secret_name": "k", "secret_value": "v"}',
        headers={"Content-Type": "application/json"},
    )
    assert_refused(world, created.status, created.headers, expected=403)


def test_privilege_escalation_developer_mints_admin_token(target: dict[str, Any]) -> None:
    world: World = target["world"]
    with world.server.client(target["developer"]) as client:
        response = client.post("/api/v1/tokens", json={"identity": "devon", "name": "root", "role": "admin"})
    assert_refused(world, response.status_code, dict(response.headers), expected=403)
    with world.admin() as admin:
        assert not [t for t in admin.get("/api/v1/tokens").json() if t["name"] == "root"]


def test_privilege_escalation_forged_approval_tag_on_version_create(target: dict[str, Any]) -> None:
    world: World = target["world"]
    response = world.mlflow(
        "POST",
        "model-versions/create",
        json={
            "name": target["project"],
            "source": f"runs:/{target['run_id']}/model",
            "run_id": target["run_id"],
            "tags": [{"key": "pave.approval.by", "value": "someone"}],
        },
    )
    assert_refused(world, response.status_code, dict(response.headers), expected=403)


def test_idor_viewer_writes_to_a_run(target: dict[str, Any]) -> None:
    world: World = target["world"]
    response = world.mlflow(
        "POST",
        "runs/log-metric",
        target["viewer"],
        json={"run_id": target["run_id"], "key": "stolen", "value": 1, "timestamp": 0, "step": 0},
    )
    assert_refused(world, response.status_code, dict(response.headers), expected=403)
    metrics = world.mlflow("GET", "runs/get", params={"run_id": target["run_id"]}).json()["run"]["data"]
    assert "stolen" not in {m["key"] for m in metrics.get("metrics", [])}


def test_idor_unbound_developer_reads_another_projects_run(target: dict[str, Any]) -> None:
    world: World = target["world"]
    response = world.mlflow("GET", "runs/get", target["developer"], params={"run_id": target["run_id"]})
    assert_refused(world, response.status_code, dict(response.headers), expected=403)


def test_scope_escape_by_renaming_a_model_onto_another_project(target: dict[str, Any]) -> None:
    world: World = target["world"]
    world.project("rename-victim")
    scoped = world.token("ci-attack", "maintainer", project=target["project"])
    response = world.mlflow(
        "POST",
        "registered-models/rename",
        scoped,
        json={"name": target["project"], "new_name": "rename-victim"},
    )
    assert_refused(world, response.status_code, dict(response.headers), expected=403)
    assert world.mlflow("GET", "registered-models/get", params={"name": target["project"]}).status_code == 200


# --- unbounded queries ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "endpoint", "kwargs"),
    [
        ("POST", "runs/search", {"json": {"experiment_ids": ["0"], "max_results": 10**9}}),
        ("POST", "experiments/search", {"json": {"max_results": 10**7}}),
        ("GET", "model-versions/search", {"params": {"max_results": 10**6}}),
        ("GET", "registered-models/search", {"params": {"max_results": 50_001}}),
    ],
)
def test_unbounded_query_max_results(target: dict[str, Any], method: str, endpoint: str, kwargs: Any) -> None:
    response = target["world"].mlflow(method, endpoint, **kwargs)
    assert_refused(target["world"], response.status_code, dict(response.headers), expected=400)
    assert "cap" in response.json()["error"]["message"]


def test_unbounded_query_on_the_audit_trail(target: dict[str, Any]) -> None:
    with target["world"].admin() as admin:
        response = admin.get("/api/v1/audit", params={"limit": 10**6})
    assert response.status_code == 400


# --- content served back to browsers ----------------------------------------------------------------


def test_stored_xss_html_artifact_is_sandboxed(target: dict[str, Any]) -> None:
    world: World = target["world"]
    path = f"{ART}/{_run_prefix(target)}/evil.html"
    with world.admin() as admin:
        assert admin.put(path, content=b"<script>fetch('/api/v1/tokens')</script>").status_code == 200
        response = admin.get(path)
    assert response.status_code == 200
    assert response.headers["content-security-policy"].startswith("sandbox")
    assert response.headers["x-content-type-options"] == "nosniff"


def test_clickjacking_and_sniffing_headers_on_every_kind_of_answer(target: dict[str, Any]) -> None:
    world: World = target["world"]
    with world.admin() as admin:
        answers = [admin.get("/mlflow/"), admin.get("/api/v1/whoami"), admin.get("/api/v1/nope")]
    answers.append(raw(target["server"], "GET", "/api/v1/whoami", token="pave_wrong"))  # type: ignore[arg-type]
    for answer in answers:
        headers = {k.lower(): v for k, v in dict(answer.headers).items()}
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "SAMEORIGIN"
        assert headers["referrer-policy"] == "same-origin"
        assert "x-request-id" in headers
    ui = {k.lower(): v for k, v in dict(answers[0].headers).items()}
    assert "frame-ancestors 'self'" in ui["content-security-policy"]


# --- leaving a project by renaming, or by taking its name --------------------------------------------


def test_scope_escape_by_renaming_an_experiment_onto_another_project(target: dict[str, Any]) -> None:
    world: World = target["world"]
    world.project("exp-rename-victim")
    scoped = world.token("ci-exp-attack", "maintainer", project=target["project"])
    response = world.mlflow(
        "POST",
        "experiments/update",
        scoped,
        json={"experiment_id": target["experiment_id"], "new_name": "exp-rename-victim"},
    )
    assert_refused(world, response.status_code, dict(response.headers), expected=403)
    got = world.mlflow("GET", "experiments/get", params={"experiment_id": target["experiment_id"]})
    assert got.json()["experiment"]["name"] == target["project"]


@pytest.mark.parametrize("endpoint", ["experiments/update", "registered-models/rename"])
def test_scope_escape_by_renaming_out_of_every_project(target: dict[str, Any], endpoint: str) -> None:
    """A developer of the project renames its experiment (model) to a name no project has."""
    world: World = target["world"]
    world.member(target["project"], "rhea", "developer")
    developer = world.token("rhea", "developer")
    body = (
        {"experiment_id": target["experiment_id"], "new_name": "escaped-experiment"}
        if endpoint == "experiments/update"
        else {"name": target["project"], "new_name": "escaped-model"}
    )
    response = world.mlflow("POST", endpoint, developer, json=body)
    assert_refused(world, response.status_code, dict(response.headers), expected=403)
    assert "between projects" in response.json()["error"]["message"]
    got = world.mlflow("GET", "experiments/get", params={"experiment_id": target["experiment_id"]})
    assert got.json()["experiment"]["name"] == target["project"]
    assert world.mlflow("GET", "registered-models/get", params={"name": target["project"]}).status_code == 200


def test_renaming_an_experiment_outside_every_project_still_works(target: dict[str, Any]) -> None:
    world: World = target["world"]
    experiment_id = world.experiment("free-before-rename")
    response = world.mlflow(
        "POST", "experiments/update", json={"experiment_id": experiment_id, "new_name": "free-after-rename"}
    )
    assert response.status_code == 200, response.text


def test_squatting_a_project_on_an_experiment_outside_every_project(target: dict[str, Any]) -> None:
    """Creating a project named like someone's free experiment would make the creator its owner."""
    world: World = target["world"]
    experiment_id = world.experiment("squat-target")
    world.run(experiment_id)
    squatter = world.token("sam", "developer")
    with world.server.client(squatter) as client:
        response = client.post("/api/v1/projects", json={"name": "squat-target"})
    assert response.status_code == 409, response.text
    assert "outside any project" in response.json()["error"]["message"]
    with world.admin() as admin:
        assert admin.get("/api/v1/projects/squat-target").status_code == 404
        assert admin.post("/api/v1/projects", json={"name": "squat-target"}).status_code == 201


# --- parsers: depth, Unicode, origins --------------------------------------------------------------


_DEEP = b'{"a":' * 50_000 + b"1" + b"}" * 50_000


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/projects"),
        ("POST", "/api/v1/tokens"),
        ("PUT", "/api/v1/projects/attack-surface/members/someone"),
        ("PUT", "/api/v1/projects/attack-surface/policy"),
        ("POST", "/api/v1/projects/attack-surface/approvals"),
        ("PUT", "/api/v1/projects/attack-surface/deployment"),
        ("POST", "/api/v1/feedback"),
        ("POST", "/api/v1/teams"),
        ("POST", f"{MLFLOW}/experiments/create"),
        ("POST", f"{MLFLOW}/runs/log-batch"),
        ("POST", f"{MLFLOW}/runs/search"),
        ("POST", "/mlflow/graphql"),
        ("POST", "/mlflow/ajax-api/2.0/mlflow/experiments/create"),
    ],
)
def test_deeply_nested_json_is_a_400_not_a_crash(target: dict[str, Any], method: str, path: str) -> None:
    response = raw(target["server"], method, path, body=_DEEP, headers={"Content-Type": "application/json"})
    assert_refused(target["world"], response.status, response.headers, expected=400)
    assert b"nests deeper" in response.body


def test_deeply_nested_graphql_query_is_a_400(target: dict[str, Any]) -> None:
    query = "{" + "a {" * 20_000 + "b" + "}" * 20_001
    response = raw(
        target["server"],
        "POST",
        "/mlflow/graphql",
        body=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    assert_refused(target["world"], response.status, response.headers, expected=400)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        (f"{MLFLOW}/experiments/create", b'{"name": "bad-\\ud800-name"}'),
        ("/api/v1/projects", b'{"name": "ok-name", "description": "\\udfff"}'),
        (f"{MLFLOW}/registered-models/create", b'{"name": "attack-surface", "description": "\\ud83d"}'),
    ],
)
def test_lone_surrogate_is_a_400_not_a_crash(target: dict[str, Any], path: str, body: bytes) -> None:
    response = raw(target["server"], "POST", path, body=body, headers={"Content-Type": "application/json"})
    assert_refused(target["world"], response.status, response.headers, expected=400)
    assert b"not valid Unicode" in response.body


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:8000@evil.example",
        "http://127.0.0.1@evil.example",
        "http://user:pass@localhost",
        "http://localhost.evil.example",
        "null",
    ],
)
def test_cross_origin_state_change_with_a_disguised_origin(target: dict[str, Any], origin: str) -> None:
    world: World = target["world"]
    name = f"xorigin-{abs(hash(origin)) % 10**6}"
    with world.admin() as admin:
        pave = admin.post("/api/v1/projects", json={"name": name}, headers={"Origin": origin})
        mlflow = admin.post(f"{MLFLOW}/experiments/create", json={"name": name}, headers={"Origin": origin})
        for response in (pave, mlflow):
            assert_refused(world, response.status_code, dict(response.headers), expected=403)
        assert admin.get(f"/api/v1/projects/{name}").status_code == 404
    assert world.mlflow("GET", "experiments/get-by-name", params={"experiment_name": name}).status_code == 404


# --- a model version made of another project's files ------------------------------------------------


@pytest.fixture(scope="module")
def victim(target: dict[str, Any]) -> dict[str, str]:
    """A second project with a run, a logged model and a version, that the attacker has no role on."""
    world: World = target["world"]
    world.project("source-victim")
    experiment_id = world.experiment("source-victim")
    run_id = world.run(experiment_id)
    version = world.version("source-victim", run_id)
    logged = world.mlflow(
        "POST", "logged-models", json={"experiment_id": experiment_id, "name": "m", "source_run_id": run_id}
    )
    assert logged.status_code == 200, logged.text
    return {
        "experiment_id": experiment_id,
        "run_id": run_id,
        "version": version,
        "model_id": logged.json()["model"]["info"]["model_id"],
    }


@pytest.mark.parametrize(
    ("source", "with_run"),
    [
        ("models:/source-victim/{version}", False),
        ("models:/source-victim@champion", False),
        ("models:/{model_id}", False),
        ("runs:/{run_id}/model", True),
        ("mlflow-artifacts:/{experiment_id}/{run_id}/artifacts/model", False),
        ("mlflow-artifacts:/nothing/model", False),
    ],
)
@pytest.mark.parametrize("into", ["attack-surface", "free-sink-model"])
def test_model_version_made_of_another_projects_files(
    target: dict[str, Any], victim: dict[str, str], source: str, with_run: bool, into: str
) -> None:
    """Even an admin may not register another project's model files under this project (or no project)."""
    world: World = target["world"]
    world.mlflow("POST", "registered-models/create", json={"name": into})
    body: dict[str, Any] = {"name": into, "source": source.format(**victim)}
    if with_run:
        body["run_id"] = victim["run_id"]
    before = world.mlflow("GET", "model-versions/search", params={"filter": f"name='{into}'"}).json()
    response = world.mlflow("POST", "model-versions/create", json=body)
    assert_refused(world, response.status_code, dict(response.headers), expected=403)
    after = world.mlflow("GET", "model-versions/search", params={"filter": f"name='{into}'"}).json()
    assert after == before


def test_model_version_of_the_projects_own_run_still_registers(target: dict[str, Any]) -> None:
    world: World = target["world"]
    version = world.version(target["project"], target["run_id"])
    assert version.isdigit()


# --- the databases on disk ------------------------------------------------------------------------


def test_databases_are_readable_by_their_owner_only(target: dict[str, Any]) -> None:
    home = Path(target["server"].home)
    for name in ("pave.db", "mlflow.db"):
        for path in home.glob(f"{name}*"):
            assert path.stat().st_mode & 0o077 == 0, f"{path} is readable by others"


# --- every MLflow route shape, by a developer with no role on the project --------------------------------


_SHAPES = [
    ("GET", "/mlflow/api/2.0/mlflow/runs/get?run_id={run_id}", None),
    ("GET", "/mlflow/ajax-api/2.0/mlflow/runs/get?run_id={run_id}", None),
    ("GET", "/mlflow/api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", None),
    ("GET", "/mlflow/ajax-api/2.0/mlflow/experiments/get?experiment_id={experiment_id}", None),
    ("GET", "/mlflow/api/2.0/mlflow/registered-models/get?name={project}", None),
    ("GET", "/mlflow/ajax-api/2.0/mlflow/model-versions/get?name={project}&version={version}", None),
    ("GET", "/mlflow/api/2.0/mlflow/registered-models/get-latest-versions?name={project}", None),
    ("GET", "/mlflow/get-artifact?run_uuid={run_id}&path=ok.txt", None),
    ("GET", "/mlflow/model-versions/get-artifact?name={project}&version={version}&path=MLmodel", None),
    ("GET", "/mlflow/api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/ok.txt", None),
    (
        "GET",
        "/mlflow/ajax-api/2.0/mlflow-artifacts/artifacts/{experiment_id}/{run_id}/artifacts/ok.txt",
        None,
    ),
    ("GET", "/mlflow/api/2.0/mlflow/artifacts/list?run_id={run_id}", None),
    ("GET", "/mlflow/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=m", None),
    (
        "POST",
        "/mlflow/graphql",
        '{{"query": "{{ mlflowGetRun(input: {{runId: \\"{run_id}\\"}}) {{ run {{ info {{ runId }} }} }} }}"}}',  # noqa: E501
    ),
    (
        "POST",
        "/mlflow/api/2.0/mlflow/runs/log-metric",
        '{{"run_id": "{run_id}", "key": "m", "value": 1, "timestamp": 0}}',
    ),
    (
        "POST",
        "/mlflow/ajax-api/2.0/mlflow/runs/set-tag",
        '{{"run_id": "{run_id}", "key": "k", "value": "v"}}',
    ),
    (
        "POST",
        "/mlflow/api/2.0/mlflow/registered-models/set-tag",
        '{{"name": "{project}", "key": "k", "value": "v"}}',
    ),
    (
        "POST",
        "/mlflow/api/2.0/mlflow/model-versions/update",
        '{{"name": "{project}", "version": "{version}", "description": "x"}}',
    ),
    ("DELETE", "/mlflow/api/2.0/mlflow/registered-models/alias?name={project}&alias=champion", None),
    ("POST", "/mlflow/api/2.0/mlflow/experiments/delete", '{{"experiment_id": "{experiment_id}"}}'),
    ("POST", "/mlflow/api/3.0/mlflow/logged-models", '{{"experiment_id": "{experiment_id}", "name": "m"}}'),
    ("POST", "/mlflow/api/2.0/mlflow/runs/create", '{{"experiment_id": "{experiment_id}"}}'),
]


@pytest.mark.parametrize(
    ("method", "target_path", "body"), _SHAPES, ids=[f"{m} {p.split('?')[0]}" for m, p, _ in _SHAPES]
)
def test_cross_project_access_on_every_route_shape(
    target: dict[str, Any], method: str, target_path: str, body: str | None
) -> None:
    """A developer with no role on the project: refused on every shape of MLflow's routes."""
    values = {k: target[k] for k in ("run_id", "experiment_id", "project", "version")}
    response = raw(
        target["server"],
        method,
        target_path.format(**values),
        token=target["developer"],
        body=body.format(**values).encode() if body else None,
        headers={"Content-Type": "application/json"} if body else None,
    )
    assert_refused(target["world"], response.status, response.headers, expected=403)
    assert response.body.startswith(b'{"error'), "a refusal, never the object or its files"
