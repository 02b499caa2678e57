"""Factories for small real projects written into tmp_path, and a real MLflow tracking store."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pave.config import Settings
from pave_testing import mlflow_store

_names = itertools.count(1)

ProjectFactory = Callable[..., Path]

SCHEMA_PY = """
import pandera.pandas as pa
from pandera.typing import Series


class TrainSchema(pa.DataFrameModel):
    age: Series[int] = pa.Field(ge=0, le=120)
    income: Series[float] = pa.Field(ge=0)
    plan: Series[str] = pa.Field(isin=["basic", "plus", "pro"])
    churn: Series[int] = pa.Field(isin=[0, 1])
"""

STEPS_PY = """
import pandas as pd
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

from pave.pipelines import StepContext


def prepare(df: pd.DataFrame, test_size: float, ctx: StepContext) -> dict:
    X = pd.get_dummies(df.drop(columns=["churn"]), columns=["plan"], dtype=float)
    X_train, X_test, y_train, y_test = train_test_split(
        X, df["churn"], test_size=test_size, random_state=ctx.seed, stratify=df["churn"]
    )
    ctx.logger.info("prepared %d training rows", len(X_train))
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


def train(split: dict, C: float, max_iter: int, ctx: StepContext) -> LogisticRegression:
    print("training with C =", C)
    ctx.log_metric("train_rows", len(split["X_train"]))
    return LogisticRegression(C=C, max_iter=max_iter, random_state=ctx.seed).fit(
        split["X_train"], split["y_train"]
    )


def evaluate(model: LogisticRegression, split: dict) -> dict:
    proba = model.predict_proba(split["X_test"])[:, 1]
    return {
        "roc_auc": float(roc_auc_score(split["y_test"], proba)),
        "accuracy": float(accuracy_score(split["y_test"], model.predict(split["X_test"]))),
    }
"""

PAVE_YAML = """
name: {name}
owner: tester
template: {{name: tabular-classification, version: "0.1.0"}}
seed: 7
data:
  sources:
    train: {{path: data/train.csv}}
  schema: schema:TrainSchema
steps:
  - name: prepare
    function: steps:prepare
    inputs: {{df: data.train}}
    params: {{test_size: 0.25}}
  - name: train
    function: steps:train
    inputs: {{split: prepare}}
    params: {{C: 1.0, max_iter: 300}}
  - name: evaluate
    function: steps:evaluate
    inputs: {{model: train, split: prepare}}
model: {{step: train, flavor: sklearn, input_example_from: prepare}}
metrics: {{step: evaluate, primary: roc_auc, direction: maximize}}
gates:
{gates}
"""


@pytest.fixture(name="churn_frame")
def churn_frame_fixture() -> Callable[..., pd.DataFrame]:
    return churn_frame


def churn_frame(rows: int = 240, seed: int = 0) -> pd.DataFrame:
    """A small learnable churn dataset."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, rows)
    income = rng.gamma(4.0, 12_000.0, rows).round(2)
    plan = rng.choice(["basic", "plus", "pro"], rows)
    logit = -0.06 * (age - 45) - income / 60_000 + np.where(plan == "basic", 1.0, -0.5)
    churn = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"age": age, "income": income, "plan": plan, "churn": churn})


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


@pytest.fixture
def make_project(tmp_path: Path) -> ProjectFactory:
    """Write a project from {relative path: text}; returns its folder."""

    def factory(files: dict[str, str], folder: str = "project") -> Path:
        root = tmp_path / folder
        root.mkdir(parents=True, exist_ok=True)
        write(root, files)
        return root

    return factory


@pytest.fixture
def churn_project(tmp_path: Path) -> ProjectFactory:
    """The churn project (unique name per call) with its data, schema, steps and gates."""

    def factory(
        gates: str = "  - {metric: roc_auc, min: 0.5}",
        frame: pd.DataFrame | None = None,
        edit: Callable[[str], str] = lambda text: text,
    ) -> Path:
        name = f"churn-{next(_names)}-{tmp_path.name[-12:].lower().replace('_', '-')}".strip("-")
        root = tmp_path / name
        write(
            root,
            {
                "pave.yaml": PAVE_YAML.format(name=name, gates=gates or "  []"),
                "schema.py": SCHEMA_PY,
                "steps.py": edit(STEPS_PY),
            },
        )
        (root / "data").mkdir(exist_ok=True)
        (churn_frame() if frame is None else frame).to_csv(root / "data" / "train.csv", index=False)
        return root

    return factory


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """One real MLflow SQLite store for the session (creating one costs seconds); projects differ."""
    return mlflow_store(tmp_path_factory.mktemp("mlflow") / "mlflow.db")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(home=tmp_path / "home", artifact_root=str(tmp_path / "artifacts"))
