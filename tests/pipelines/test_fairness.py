"""Fairness at evaluation, on data whose numbers are known by construction.

Group A: of 50 positives 40 are predicted positive (TPR 0.8), of 50 negatives 10 (FPR 0.2),
selection rate 0.5. Group B: TPR 0.5, FPR 0.1, selection rate 0.3. So the demographic parity
difference is 0.5 - 0.3 = 0.2 and the equalized odds difference max(0.8 - 0.5, 0.2 - 0.1) = 0.3.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient

from pave.config import Settings
from pave.errors import InvalidInput
from pave.pipelines import execute_project
from pave.registry.fairness import fairness_report


def constructed() -> pd.DataFrame:
    """x is the model's decision (a tree learns x exactly), y the truth, sex the group."""
    rows = []
    for sex, tp, fp in (("A", 40, 10), ("B", 25, 5)):
        rows += [(sex, 1, int(i < tp)) for i in range(50)]  # positives: tp predicted positive
        rows += [(sex, 0, int(i < fp)) for i in range(50)]  # negatives: fp predicted positive
    return pd.DataFrame(rows, columns=["sex", "y", "x"])


def test_the_report_has_the_numbers_built_into_the_data() -> None:
    data = constructed()
    report = fairness_report(data["y"].tolist(), data["x"].tolist(), data[["sex"]])
    assert report["metrics"]["demographic_parity_difference"] == pytest.approx(0.2, abs=1e-12)
    assert report["metrics"]["equalized_odds_difference"] == pytest.approx(0.3, abs=1e-12)
    groups = report["features"]["sex"]["groups"]
    assert groups["A"] == pytest.approx(
        {"count": 100, "selection_rate": 0.5, "true_positive_rate": 0.8, "false_positive_rate": 0.2}
    )
    assert groups["B"] == pytest.approx(
        {"count": 100, "selection_rate": 0.3, "true_positive_rate": 0.5, "false_positive_rate": 0.1}
    )
    assert report["positive_label"] == 1
    # labels as text: the favourable one is named; a model that treats the groups alike scores 0
    words = ["yes" if v else "no" for v in data["y"]]
    same = fairness_report(words, words, data[["sex"]], positive_label="yes")
    assert same["metrics"] == {"demographic_parity_difference": 0.0, "equalized_odds_difference": 0.0}
    with pytest.raises(InvalidInput, match="binary outcome"):
        fairness_report([0, 1, 2], [0, 1, 2], pd.DataFrame({"sex": ["A", "B", "A"]}))


STEPS = """
import pandas as pd
from sklearn.tree import DecisionTreeClassifier


def prepare(df: pd.DataFrame) -> dict:
    X = df[["x", "sex"]].assign(sex=(df["sex"] == "B").astype(float), x=df["x"].astype(float))
    return {"X_train": X, "y_train": df["x"], "X_test": X, "y_test": df["y"],
            "sensitive_test": df[["sex"]]}


def train(split: dict) -> DecisionTreeClassifier:
    return DecisionTreeClassifier(random_state=0).fit(split["X_train"], split["y_train"])


def evaluate(model, split: dict) -> dict:
    return {"accuracy": float((model.predict(split["X_test"]) == split["y_test"]).mean())}
"""

PAVE_YAML = """
name: {name}
data:
  sources:
    train: {{path: data/train.csv}}
steps:
  - {{name: prepare, function: "steps:prepare", inputs: {{df: data.train}}}}
  - {{name: train, function: "steps:train", inputs: {{split: prepare}}}}
  - {{name: evaluate, function: "steps:evaluate", inputs: {{model: train, split: prepare}}}}
model: {{step: train, input_example_from: prepare}}
metrics: {{step: evaluate, primary: accuracy}}
fairness:
  sensitive_features: [sex]
gates:
  - {{metric: accuracy, min: 0.5}}
  - {{metric: demographic_parity_difference, max: {dp_max}}}
  - {{metric: equalized_odds_difference, max: 0.5}}
"""


def _project(root: Path, name: str, dp_max: float) -> Path:
    (root / "data").mkdir(parents=True)
    constructed().to_csv(root / "data" / "train.csv", index=False)
    (root / "steps.py").write_text(textwrap.dedent(STEPS))
    (root / "pave.yaml").write_text(PAVE_YAML.format(name=name, dp_max=dp_max))
    return root


@pytest.mark.parametrize(("dp_max", "passed"), [(0.1, False), (0.25, True)])
def test_fairness_is_computed_at_evaluation_and_gates_on_it(
    tmp_path: Path, tracking_uri: str, settings: Settings, dp_max: float, passed: bool
) -> None:
    name = f"fair-{int(dp_max * 100)}"
    root = _project(tmp_path / name, name, dp_max)
    result = execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
    assert result.metrics["demographic_parity_difference"] == pytest.approx(0.2, abs=1e-12)
    assert result.metrics["equalized_odds_difference"] == pytest.approx(0.3, abs=1e-12)
    assert result.gates_passed is passed
    assert result.alias == ("candidate" if passed else None)
    failed = [g.metric for g in result.gates if not g.passed]
    assert failed == ([] if passed else ["demographic_parity_difference"])
    client = MlflowClient(tracking_uri=tracking_uri)
    logged = client.get_run(result.run_id).data.metrics
    assert logged["demographic_parity_difference"] == pytest.approx(0.2)
    report = json.loads(
        Path(client.download_artifacts(result.run_id, "fairness.json", str(tmp_path))).read_text()
    )
    assert report["features"]["sex"]["groups"]["B"]["true_positive_rate"] == pytest.approx(0.5)
    # the global importances of the same run: the tree decides on x alone, never on sex
    importances = json.loads(
        Path(client.download_artifacts(result.run_id, "explain/importances.json", str(tmp_path))).read_text()
    )
    assert (importances["method"], importances["output_space"], importances["rows"]) == (
        "tree",
        "probability",
        200,
    )
    assert importances["features"]["sex"] == 0.0
    assert importances["features"]["x"] > 0.1


def test_a_sensitive_feature_that_is_nowhere_is_refused(
    tmp_path: Path, tracking_uri: str, settings: Settings
) -> None:
    root = _project(tmp_path / "fair-typo", "fair-typo", 0.1)
    (root / "pave.yaml").write_text((root / "pave.yaml").read_text().replace("[sex]", "[gender]"))
    with pytest.raises(InvalidInput, match="'gender' is neither a column"):
        execute_project(root, tracking_uri=tracking_uri, settings=settings, progress=False)
