"""MLflow's prompt registry through Pave: prompts named ``<project>.<prompt>``, scoped like models.

The real MLflow client against a real ``pave up`` (the shared server); refusals in the style of
the attack suite: a 4xx, nothing changed, an audit record.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from pave_testing import World, mlflow_globals

MLFLOW = "/mlflow/api/2.0/mlflow"
PROMPT_TAG = {"key": "mlflow.prompt.is_prompt", "value": "true"}


@pytest.fixture(scope="module")
def scene(world: World) -> dict[str, Any]:
    """Two projects; a developer of the first, an approver of it, an outsider with no role."""
    suffix = secrets.token_hex(3)
    home, other = f"prompted-{suffix}", f"elsewhere-{suffix}"
    world.project(home)
    world.project(other)
    world.member(home, f"pia-{suffix}", "developer")
    world.member(home, f"abe-{suffix}", "approver")
    other_experiment = world.experiment(other)
    return {
        "world": world,
        "home": home,
        "other": other,
        "developer": world.token(f"pia-{suffix}", "developer"),
        "approver": world.token(f"abe-{suffix}", "approver"),
        "outsider": world.token(f"oscar-{suffix}", "developer"),
        "other_run": world.run(other_experiment),
    }


@pytest.fixture
def as_token(scene: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Point MLflow's fluent API at the platform with a given token."""
    from mlflow.prompt.registry_utils import PromptCache

    def use(token: str) -> None:
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
        PromptCache.get_instance().clear()  # prompts loaded under another token must not leak

    with mlflow_globals(f"{scene['world'].server.url}/mlflow"):
        yield use
    PromptCache.get_instance().clear()


def _register(scene: dict[str, Any], as_token: Any, prompt: str, template: str) -> Any:
    import mlflow

    as_token(scene["developer"])
    return mlflow.genai.register_prompt(name=f"{scene['home']}.{prompt}", template=template)


def test_register_load_alias_search_and_delete_with_the_mlflow_client(
    scene: dict[str, Any], as_token: Any
) -> None:
    import mlflow
    from mlflow import MlflowClient

    name = f"{scene['home']}.greeting"
    first = _register(scene, as_token, "greeting", "Hello {{name}}!")
    second = _register(scene, as_token, "greeting", "Hi {{name}}, how can I help?")
    assert (first.version, second.version) == (1, 2)

    mlflow.genai.set_prompt_alias(name, alias="candidate", version=2)
    loaded = mlflow.genai.load_prompt(f"prompts:/{name}@candidate")
    assert loaded.version == 2
    assert loaded.format(name="Ada") == "Hi Ada, how can I help?"
    assert mlflow.genai.load_prompt(f"prompts:/{name}/1").template == "Hello {{name}}!"

    as_token(scene["world"].server.token)  # the admin registers a prompt in the other project
    mlflow.genai.register_prompt(name=f"{scene['other']}.secret", template="the other team's")
    as_token(scene["developer"])
    names = {p.name for p in mlflow.genai.search_prompts(max_results=1000)}
    assert name in names
    assert f"{scene['other']}.secret" not in names, "search shows only the caller's projects' prompts"

    client = MlflowClient()
    client.delete_prompt_alias(name, "candidate")
    client.delete_prompt_version(name, "1")
    assert [v.version for v in client.search_prompt_versions(name)] == [2]


def test_outsider_sees_no_prompt_in_searches(scene: dict[str, Any], as_token: Any) -> None:
    import mlflow

    _register(scene, as_token, "hidden", "for members only")
    as_token(scene["outsider"])
    names = {p.name for p in mlflow.genai.search_prompts(max_results=1000)}
    assert not any(n.startswith(f"{scene['home']}.") for n in names)


@pytest.mark.parametrize(
    ("name", "status", "words"),
    [
        pytest.param("greeting", 400, "names no project", id="no-prefix"),
        pytest.param("no-such-project.greeting", 403, "does not exist", id="unknown-project"),
        pytest.param("{home}", 400, "names no project", id="the-projects-model-name"),
    ],
)
def test_a_prompt_must_be_named_after_an_existing_project(
    scene: dict[str, Any], name: str, status: int, words: str
) -> None:
    world = scene["world"]
    response = world.mlflow(
        "POST",
        "registered-models/create",
        scene["developer"],
        json={"name": name.format(home=scene["home"]), "tags": [PROMPT_TAG]},
    )
    assert response.status_code == status, response.text
    assert words in response.json()["error"]["message"]
    assert "hint" in response.json()["error"]


def _shapes(scene: dict[str, Any]) -> list[tuple[str, str, dict[str, Any] | None]]:
    name = f"{scene['home']}.shapes"
    return [
        ("POST", "registered-models/create", {"name": f"{scene['home']}.new", "tags": [PROMPT_TAG]}),
        ("GET", f"registered-models/get?name={name}", None),
        ("POST", "model-versions/create", {"name": name, "source": "dummy-source", "tags": [PROMPT_TAG]}),
        ("GET", f"model-versions/get?name={name}&version=1", None),
        ("GET", f"model-versions/get-download-uri?name={name}&version=1", None),
        ("GET", f"registered-models/alias?name={name}&alias=candidate", None),
        ("POST", "registered-models/alias", {"name": name, "alias": "candidate", "version": "1"}),
        ("DELETE", "registered-models/alias", {"name": name, "alias": "candidate"}),
        ("POST", "registered-models/set-tag", {"name": name, "key": "team", "value": "x"}),
        ("POST", "model-versions/set-tag", {"name": name, "version": "1", "key": "k", "value": "v"}),
        ("PATCH", "registered-models/update", {"name": name, "description": "mine now"}),
        ("POST", "registered-models/rename", {"name": name, "new_name": f"{scene['home']}.renamed"}),
        ("DELETE", "model-versions/delete", {"name": name, "version": "1"}),
        ("DELETE", "registered-models/delete", {"name": name}),
        ("POST", "registered-models/get-latest-versions", {"name": name}),
    ]


def test_outsider_is_refused_on_every_prompt_route_shape(scene: dict[str, Any], as_token: Any) -> None:
    _register(scene, as_token, "shapes", "Hello {{name}}")
    world = scene["world"]
    before = world.state()
    for method, endpoint, body in _shapes(scene):
        response = world.mlflow(method, endpoint, scene["outsider"], json=body)
        assert response.status_code == 403, (method, endpoint, response.text)
        assert scene["home"] in response.json()["error"]["message"]
        record = world.last_audit(response.headers["x-request-id"])
        assert record["outcome"] == "denied"
    assert world.state() == before


@pytest.mark.parametrize(
    ("source", "tags"),
    [
        pytest.param("runs:/{other_run}/model", [PROMPT_TAG], id="prompt-with-another-projects-run"),
        pytest.param("file:///etc", [{"key": "mlflow.prompt.is_prompt", "value": "TRUE"}], id="prompt-file"),
        pytest.param(
            "file:///etc",
            [{"key": "mlflow.prompt.is_prompt", "value": "false"}, PROMPT_TAG],
            id="prompt-tag-repeated",
        ),
        pytest.param("dummy-source", [], id="placeholder-without-the-prompt-tag"),
        pytest.param("runs:/{other_run}/model", [], id="model-version-of-another-projects-run"),
    ],
)
def test_a_prompt_cannot_smuggle_a_model_source(
    scene: dict[str, Any], as_token: Any, source: str, tags: list[dict[str, str]]
) -> None:
    _register(scene, as_token, "smuggle", "x")
    world = scene["world"]
    before = world.state()
    response = world.mlflow(
        "POST",
        "model-versions/create",
        scene["developer"],
        json={"name": f"{scene['home']}.smuggle", "source": source.format(**scene), "tags": tags},
    )
    assert response.status_code in (400, 403), response.text
    assert world.last_audit(response.headers["x-request-id"])["outcome"] in ("denied", "failed")
    assert world.state() == before


def test_the_prompt_tag_cannot_be_set_or_removed_later(scene: dict[str, Any], as_token: Any) -> None:
    _register(scene, as_token, "tagged", "x")
    world, name, key = scene["world"], f"{scene['home']}.tagged", PROMPT_TAG["key"]
    for method, endpoint, body in [
        ("POST", "registered-models/set-tag", {"name": name, "key": key, "value": "no"}),
        ("DELETE", "registered-models/delete-tag", {"name": name, "key": key}),
        ("POST", "model-versions/set-tag", {"name": name, "version": "1", "key": key, "value": "false"}),
    ]:
        response = world.mlflow(method, endpoint, scene["developer"], json=body)
        assert response.status_code == 403, response.text
        assert "mlflow.prompt.is_prompt" in response.json()["error"]["message"]


def test_a_prompt_cannot_be_renamed_into_another_project(scene: dict[str, Any], as_token: Any) -> None:
    _register(scene, as_token, "moving", "x")
    world = scene["world"]
    response = world.mlflow(
        "POST",
        "registered-models/rename",
        world.server.token,  # even the admin: it would move between projects
        json={"name": f"{scene['home']}.moving", "new_name": f"{scene['other']}.moving"},
    )
    assert response.status_code == 403, response.text
    inside = world.mlflow(
        "POST",
        "registered-models/rename",
        scene["developer"],
        json={"name": f"{scene['home']}.moving", "new_name": f"{scene['home']}.moved"},
    )
    assert inside.status_code == 200, inside.text


def test_production_alias_needs_approve_and_the_approval_the_policy_asks(
    scene: dict[str, Any], as_token: Any
) -> None:
    world, name = scene["world"], f"{scene['home']}.shipped"
    _register(scene, as_token, "shipped", "Answer: {{question}}")
    alias = {"name": name, "alias": "production", "version": "1"}

    by_developer = world.mlflow("POST", "registered-models/alias", scene["developer"], json=alias)
    assert by_developer.status_code == 403, by_developer.text
    assert "'approve'" in by_developer.json()["error"]["message"]

    with world.admin() as admin:
        policy = admin.put(f"/api/v1/projects/{scene['home']}/policy", json={"require_approval": True})
        assert policy.status_code == 200, policy.text
    unapproved = world.mlflow("POST", "registered-models/alias", scene["approver"], json=alias)
    assert unapproved.status_code == 403, unapproved.text
    assert "needs an approval" in unapproved.json()["error"]["message"]
    assert f"--prompt {name}" in unapproved.json()["error"]["hint"]

    with world.server.client(scene["approver"]) as approver:
        wrong = approver.post(
            f"/api/v1/projects/{scene['home']}/approvals",
            json={"version": "1", "prompt": f"{scene['other']}.secret"},
        )
        assert wrong.status_code == 400, wrong.text
        approved = approver.post(
            f"/api/v1/projects/{scene['home']}/approvals", json={"version": "1", "prompt": name}
        )
        assert approved.status_code == 200, approved.text
        assert approved.json()["project"] == name
    promoted = world.mlflow("POST", "registered-models/alias", scene["approver"], json=alias)
    assert promoted.status_code == 200, promoted.text
    with world.admin() as admin:
        admin.put(f"/api/v1/projects/{scene['home']}/policy", json={"require_approval": False})


@pytest.mark.postgres
def test_prompts_on_postgres(
    pave_server_factory: Any, postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow
    from mlflow.prompt.registry_utils import PromptCache

    server = pave_server_factory(postgres_url)
    world = World(server)
    world.project("pg-prompts")
    world.project("pg-other")
    world.member("pg-prompts", "pia", "developer")
    developer, outsider = world.token("pia", "developer"), world.token("oscar", "developer")
    PromptCache.get_instance().clear()
    with mlflow_globals(f"{server.url}/mlflow"):
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", server.token)
        mlflow.genai.register_prompt(name="pg-other.secret", template="theirs")
        monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", developer)
        mlflow.genai.register_prompt(name="pg-prompts.greeting", template="Hello {{name}}!")
        mlflow.genai.set_prompt_alias("pg-prompts.greeting", alias="candidate", version=1)
        loaded = mlflow.genai.load_prompt("prompts:/pg-prompts.greeting@candidate")
        assert loaded.format(name="Ada") == "Hello Ada!"
        assert {p.name for p in mlflow.genai.search_prompts(max_results=1000)} == {"pg-prompts.greeting"}
    PromptCache.get_instance().clear()
    refused = world.mlflow("GET", "registered-models/get?name=pg-prompts.greeting", outsider)
    assert refused.status_code == 403, refused.text
