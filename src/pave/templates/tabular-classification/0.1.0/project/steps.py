"""The pipeline's steps: plain functions that `pave run` calls in the order pave.yaml wires them.

Pave fills each argument from the step's ``inputs`` (a data source or an earlier step's result),
then from its ``params``; an argument named ``ctx`` receives the StepContext, whose ``ctx.seed``
makes every random choice repeatable. Return values must be picklable: Pave caches them.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from pave.pipelines import StepContext
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, f1_score, roc_auc_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

TARGET = "target"


def prepare(df: pd.DataFrame, ctx: StepContext, test_size: float = 0.2) -> dict[str, Any]:
    """Split the table into a training set and a held-out test set."""
    features = df.drop(columns=[TARGET])
    X_train, X_test, y_train, y_test = train_test_split(
        features, df[TARGET], test_size=test_size, random_state=ctx.seed
    )
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


def train(split: dict[str, Any], ctx: StepContext, C: float = 1.0, max_iter: int = 1000) -> Pipeline:
    """Fit a scaled logistic regression; ``C`` is the inverse regularisation strength."""
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=ctx.seed))
    return model.fit(split["X_train"], split["y_train"])


def evaluate(model: Pipeline, split: dict[str, Any]) -> dict[str, float]:
    """Score the model on the held-out test set; the gates in pave.yaml read these numbers."""
    y_true = split["y_test"]
    predicted = model.predict(split["X_test"])
    probability = model.predict_proba(split["X_test"])[:, 1]
    return {
        "accuracy": float(accuracy_score(y_true, predicted)),
        "f1": float(f1_score(y_true, predicted)),
        "roc_auc": float(roc_auc_score(y_true, probability)),
    }
