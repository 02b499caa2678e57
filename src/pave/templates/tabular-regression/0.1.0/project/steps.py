"""The pipeline's steps: plain functions that `pave run` calls in the order pave.yaml wires them.

Pave fills each argument from the step's ``inputs`` (a data source or an earlier step's result),
then from its ``params``; an argument named ``ctx`` receives the StepContext, whose ``ctx.seed``
makes every random choice repeatable. Return values must be picklable: Pave caches them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from pave.pipelines import StepContext
from sklearn.linear_model import Ridge
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

TARGET = "progression"


def prepare(df: pd.DataFrame, ctx: StepContext, test_size: float = 0.2) -> dict[str, Any]:
    """Split the table into a training set and a held-out test set."""
    features = df.drop(columns=[TARGET])
    X_train, X_test, y_train, y_test = train_test_split(
        features, df[TARGET], test_size=test_size, random_state=ctx.seed
    )
    return {"X_train": X_train, "X_test": X_test, "y_train": y_train, "y_test": y_test}


def train(split: dict[str, Any], alpha: float = 1.0) -> Pipeline:
    """Fit a scaled ridge regression; ``alpha`` is the regularisation strength."""
    model = make_pipeline(StandardScaler(), Ridge(alpha=alpha))
    return model.fit(split["X_train"], split["y_train"])


def evaluate(model: Pipeline, split: dict[str, Any]) -> dict[str, float]:
    """Score the model on the held-out test set; the gates in pave.yaml read these numbers."""
    y_true = split["y_test"]
    predicted = model.predict(split["X_test"])
    return {
        "rmse": float(np.sqrt(mean_squared_error(y_true, predicted))),
        "mae": float(mean_absolute_error(y_true, predicted)),
        "r2": float(r2_score(y_true, predicted)),
    }
