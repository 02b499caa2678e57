from __future__ import annotations

import json
from pathlib import Path

import pytest

from pave.errors import InvalidInput, NotFound
from pave.pipelines.spec_file import SCHEMA_FILE, json_schema, load_spec, parse_spec

GOOD = """\
name: churn-model
owner: alice
seed: 7
data:
  sources:
    train: {path: data/train.csv}
  schema: schema:TrainSchema
steps:
  - name: prepare
    function: steps:prepare
    inputs: {df: data.train}
    params: {test_size: 0.2}
  - name: train
    function: steps:train
    inputs: {split: prepare}
    params: {C: 1.0}
    retries: 2
  - name: evaluate
    function: steps:evaluate
    inputs: {model: train, split: prepare}
model: {step: train, flavor: sklearn, input_example_from: prepare}
metrics: {step: evaluate, primary: roc_auc}
gates:
  - {metric: roc_auc, min: 0.9}
  - {metric: roc_auc, compare_to: champion, max_drop: 0.01}
"""


def problems(text: str) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        parse_spec(text)
    return info.value


def test_a_good_spec_loads_with_defaults(tmp_path: Path) -> None:
    (tmp_path / "pave.yaml").write_text(GOOD)
    spec = load_spec(tmp_path)
    assert spec.seed == 7
    assert spec.data.validated == ["train"]
    assert spec.step("train").retries == 2
    assert spec.step("prepare").cache is True
    assert spec.model_name == "churn-model"
    assert spec.data.sources["train"].file_format == "csv"


def test_a_missing_file_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no project spec"):
        load_spec(tmp_path)


def test_a_field_error_names_the_field_and_its_line() -> None:
    err = problems(GOOD.replace("retries: 2", "retries: -1"))
    assert "line 17, steps[1].retries" in err.message
    assert err.details[0]["line"] == 17
    assert err.hint


def test_an_unknown_input_names_its_line_and_the_known_steps() -> None:
    err = problems(GOOD.replace("{split: prepare}", "{split: prepar}"))
    assert "line 15, steps[1].inputs.split: unknown input 'prepar'" in err.message
    assert "prepare, train, evaluate" in (err.hint or "")


def test_an_unknown_data_source_is_reported() -> None:
    err = problems(GOOD.replace("data.train}", "data.test}"))
    assert "line 11" in err.message
    assert "unknown data source 'test'" in err.message


def test_a_missing_field_points_at_its_parent() -> None:
    err = problems(GOOD.replace("    function: steps:train\n", ""))
    assert err.details[0]["field"] == "steps[1].function"
    assert err.details[0]["line"] == 13
    assert "add `function:`" in (err.hint or "")


def test_a_misspelt_field_is_reported_with_its_line() -> None:
    err = problems(GOOD.replace("    retries: 2", "    retry: 2"))
    assert err.details[0] == {
        "field": "steps[1].retry",
        "line": 17,
        "message": "Extra inputs are not permitted",
        "fix": "remove `retry` or fix its spelling (see docs/spec.md for the allowed fields)",
    }


def test_a_bad_reference_explains_module_colon_name() -> None:
    err = problems(GOOD.replace("function: steps:evaluate", "function: steps.evaluate"))
    assert "line 19" in err.message
    assert "module:name" in (err.hint or "")


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ("name: churn-model", "name: Churn_Model", "line 1, name"),
        ("{path: data/train.csv}", "{path: ../train.csv}", "'..'"),
        ("{path: data/train.csv}", "{path: /etc/passwd.csv}", "absolute"),
        ("{path: data/train.csv}", "{path: data/train.xlsx}", "suffix"),
        ("flavor: sklearn", "flavor: torch", "line 21, model.flavor"),
        ("{metric: roc_auc, min: 0.9}", "{metric: roc_auc}", "gate needs"),
        ("- name: evaluate", "- name: train", "duplicate step name"),
    ],
)
def test_invalid_values_are_explained(old: str, new: str, needle: str) -> None:
    assert old in GOOD
    assert needle in problems(GOOD.replace(old, new)).message


def test_yaml_syntax_errors_give_the_line() -> None:
    err = problems("name: x\nsteps: [\n  - a: b\n")
    assert "not valid YAML" in err.message
    assert err.details[0]["line"] is not None


def test_duplicate_keys_are_refused() -> None:
    err = problems(GOOD.replace("seed: 7\n", "seed: 7\nseed: 8\n"))
    assert "line 4, seed: key 'seed' appears twice" in err.message


def test_the_committed_json_schema_is_up_to_date() -> None:
    on_disk = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    assert on_disk == json_schema(), "run `python -m pave.pipelines.spec_file` to refresh pave.schema.json"
    assert "steps" in on_disk["required"]
