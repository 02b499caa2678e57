import orjson
import pytest

from pave.errors import ConfigError
from pave.serving.deployments import JsonFileDeployments, ModelRef, parse_deployments


def test_json_file_source_reads_deployments_and_bumps_its_version(tmp_path):
    path = tmp_path / "deployments.json"
    source = JsonFileDeployments(path)
    assert source.version() == 0
    doc = {
        "deployments": [
            {
                "name": "churn",
                "versions": [
                    {"version": 3, "uri": "models:/churn/3", "weight": 90},
                    {"version": "4", "uri": "models:/churn/4", "weight": 10},
                ],
                "sticky": "X-User",
                "shadow": {"version": "5", "uri": "models:/churn/5"},
                "scale_to_zero_after": 60,
            }
        ]
    }
    path.write_bytes(orjson.dumps(doc))
    first = source.version()
    [deployment] = source.deployments()
    assert deployment.versions[0] == ModelRef("3", "models:/churn/3", 90.0)
    assert deployment.shadow == ModelRef("5", "models:/churn/5", 1.0)
    assert deployment.sticky == "X-User"
    assert deployment.scale_to_zero_after == 60.0
    doc["deployments"][0]["versions"] = doc["deployments"][0]["versions"][:1]
    path.write_bytes(orjson.dumps(doc))
    assert source.version() != first


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"deployments": {}}, "list"),
        ({"deployments": [{"versions": []}]}, "'name'"),
        ({"deployments": [{"name": "a", "versions": []}]}, "non-empty 'versions'"),
        ({"deployments": [{"name": "a", "versions": [{"version": "1"}]}]}, "'uri'"),
        (
            {"deployments": [{"name": "a", "versions": [{"version": "1", "uri": "u", "weight": -1}]}]},
            "weight",
        ),
        ({"deployments": [{"name": "a", "versions": [{"version": "1", "uri": "u", "weight": 0}]}]}, "zero"),
        ({"deployments": [{"name": "a", "versions": [{"version": "1", "uri": "u"}]}] * 2}, "twice"),
    ],
)
def test_parse_deployments_names_what_is_wrong(doc, fragment):
    with pytest.raises(ConfigError, match=fragment):
        parse_deployments(doc)
