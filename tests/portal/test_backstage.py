"""``pave catalog export``: the Backstage entities validate against Backstage's own schemas."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
import yaml

from pave.portal.backstage import entities, entity_name
from pave_testing import PaveServer, run_pave

SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "schemas" / "backstage"


@pytest.fixture(scope="module")
def kinds() -> dict[str, jsonschema_rs.Draft7Validator]:
    """A draft-7 validator per kind, resolving the schemas' relative ids from the local copies."""
    if not SCHEMAS.is_dir():
        pytest.skip(f"the public schemas are not at {SCHEMAS} (they come with the shared/ folder)")
    by_id: dict[str, Any] = {}
    for path in SCHEMAS.rglob("*.schema.json"):
        content = json.loads(path.read_text())
        by_id[path.relative_to(SCHEMAS).as_posix()] = by_id[content["$id"]] = content

    def retrieve(uri: str) -> Any:
        key = uri.split("://", 1)[-1].removeprefix("backstage.io/")
        return by_id.get(key) or by_id[key.rsplit("/", 1)[-1]]

    return {
        kind: jsonschema_rs.Draft7Validator(
            by_id[f"kinds/{kind}.v1alpha1.schema.json"],
            retriever=retrieve,
            base_uri="https://backstage.io/kinds/",
        )
        for kind in ("Component", "API", "User", "Group")
    }


def _errors(kinds: dict[str, jsonschema_rs.Draft7Validator], entity: dict[str, Any]) -> list[str]:
    return [
        f"{entity['kind']} {list(e.instance_path)}: {e.message}"
        for e in kinds[entity["kind"]].iter_errors(entity)
    ]


PROJECTS = [
    {
        "name": "churn",
        "owner": "alice@example.com",
        "description": "Churn",
        "template": "tabular-classification",
        "template_version": "0.2.0",
    },
    {"name": "recs", "owner": "bob", "description": "", "template": None, "template_version": None},
]
DEPLOYMENTS = [
    {
        "name": "churn",
        "project": "churn",
        "spec": {"versions": [{"version": "3", "weight": 90.0}, {"version": "4", "weight": 10.0}]},
    },
]


def test_entities_validate_and_link_owners_and_apis(kinds: dict[str, jsonschema_rs.Draft7Validator]) -> None:
    teams = [{"name": "Data Science", "description": "", "members": ["alice@example.com", "carol"]}]
    found = entities(
        PROJECTS, DEPLOYMENTS, url="http://pave:8000", gateway_url="http://pave:8080", teams=teams
    )
    assert [e for e in found for _ in _errors(kinds, e)] == [], [m for e in found for m in _errors(kinds, e)]
    by_kind = {(e["kind"], e["metadata"]["name"]): e for e in found}
    churn = by_kind[("Component", "churn")]
    assert churn["spec"]["lifecycle"] == "production"
    assert churn["spec"]["owner"] == "user:default/alice-example.com"
    assert churn["spec"]["providesApis"] == ["churn-inference"]
    api = by_kind[("API", "churn-inference")]
    definition = yaml.safe_load(api["spec"]["definition"])
    # the gateway's own document, narrowed to this deployment's routes, with its token scheme
    assert set(definition["paths"]) == {
        "/v2/models/churn",
        "/v2/models/churn/ready",
        "/v2/models/churn/infer",
        "/v2/models/churn/explain",
        "/v2/models/churn/versions/{model_version}",
        "/v2/models/churn/versions/{model_version}/ready",
        "/v2/models/churn/versions/{model_version}/infer",
        "/v2/models/churn/versions/{model_version}/explain",
    }
    assert definition["servers"] == [{"url": "http://pave:8080"}]
    assert definition["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    infer = definition["paths"]["/v2/models/churn/infer"]["post"]
    assert infer["security"] == [{"bearer": []}]
    # the deployment's own path: no {model_name} left to fill (headers such as Content-Encoding stay)
    assert all(p["in"] != "path" for p in infer.get("parameters", []))
    refs = re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(definition))
    assert refs
    assert set(refs) <= set(definition["components"]["schemas"])
    assert by_kind[("Component", "recs")]["spec"]["lifecycle"] == "experimental"
    assert ("API", "recs-inference") not in by_kind
    assert by_kind[("User", "alice-example.com")]["spec"]["memberOf"] == ["Data-Science"]
    assert {n for k, n in by_kind if k == "User"} == {"alice-example.com", "bob", "carol"}
    del api["spec"]["definition"]
    assert _errors(kinds, api)  # the schema check does reject a broken entity


def test_entity_names_follow_backstage_rules() -> None:
    assert entity_name("alice@example.com") == "alice-example.com"
    assert entity_name("-x-") == "x"
    assert entity_name("<script>") == "script"
    assert len(entity_name("a" * 100)) == 63


def test_pave_catalog_export_writes_valid_entities(
    shared_server: PaveServer, tmp_path: Path, kinds: dict[str, jsonschema_rs.Draft7Validator]
) -> None:
    env = shared_server.env | {"PAVE_URL": shared_server.url, "PAVE_TOKEN": shared_server.token}
    with shared_server.client() as admin:
        admin.post(
            "/api/v1/projects", json={"name": "exported", "owner": "erin", "template": "recommendation"}
        )
    result = run_pave("catalog", "export", "--out", str(tmp_path / "bs"), env=env)
    assert result.returncode == 0, result.stderr
    assert "Component" in result.stdout
    documents = list(yaml.safe_load_all((tmp_path / "bs" / "catalog-info.yaml").read_text()))
    assert [m for e in documents for m in _errors(kinds, e)] == []
    names = {(e["kind"], e["metadata"]["name"]) for e in documents}
    assert {("Component", "exported"), ("User", "erin")} <= names
