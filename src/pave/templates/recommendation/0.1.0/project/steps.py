"""The pipeline's steps: plain functions that `pave run` calls in the order pave.yaml wires them.

Pave fills each argument from the step's ``inputs`` (a data source or an earlier step's result),
then from its ``params``; an argument named ``ctx`` receives the StepContext, whose ``ctx.seed``
makes every random choice repeatable. Return values must be picklable: Pave caches them.

The model is "PureSVD": a truncated SVD of the user x item interaction matrix gives item factors;
a user's score for an item is their interaction row projected onto those factors and back, which
ranks unseen items by how much they resemble what the user already chose.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from pave.pipelines import StepContext


class TopKRecommender(mlflow.pyfunc.PythonModel):
    """Recommends, for each user id, the ``k`` items it scores highest among those the user has not seen.

    Input: a DataFrame with a ``user_id`` column. Output: an integer array of shape (users, k) with item
    ids, best first. A user absent from the training data gets the most popular items.
    """

    def __init__(self, item_factors: np.ndarray, seen: dict[int, np.ndarray], popularity: np.ndarray, k: int):
        self.item_factors = item_factors  # items x factors
        self.seen = seen  # user id -> item ids the user interacted with
        self.popularity = popularity  # interactions per item
        self.k = k

    def recommend(self, user_id: int, k: int | None = None) -> np.ndarray:
        """The top ``k`` unseen item ids for one user, best first (ties broken by lower item id)."""
        k = k or self.k
        seen = self.seen.get(int(user_id))
        if seen is None:
            scores = self.popularity.astype(float)
        else:
            history = np.zeros(len(self.item_factors))
            history[seen] = 1.0
            scores = self.item_factors @ (history @ self.item_factors)
            scores[seen] = -np.inf
        return np.argsort(-scores, kind="stable")[:k]

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> np.ndarray:
        """The top ``k`` item ids (``params={"k": ...}``, default the trained ``k``) for each row's user."""
        k = int((params or {}).get("k", self.k))
        return np.array([self.recommend(user, k) for user in model_input["user_id"]], dtype=np.int64)


def prepare(df: pd.DataFrame, ctx: StepContext, test_fraction: float = 0.2) -> dict[str, Any]:
    """Hold out a random share of each user's interactions (at least one) to test on."""
    rng = np.random.default_rng(ctx.seed)
    shuffled = df.assign(_order=rng.random(len(df))).sort_values(["user_id", "_order"])
    position = shuffled.groupby("user_id").cumcount()
    per_user = shuffled.groupby("user_id")["item_id"].transform("size")
    held_out = position < np.maximum(1, np.floor(per_user * test_fraction))
    columns = ["user_id", "item_id"]
    test = shuffled.loc[held_out, columns].sort_values(columns).reset_index(drop=True)
    return {
        "train": shuffled.loc[~held_out, columns].sort_values(columns).reset_index(drop=True),
        "test": test,
        "n_items": int(df["item_id"].max()) + 1,
        # What the model takes as input: Pave logs a few rows as its input example and signature.
        "X_test": test[["user_id"]].drop_duplicates().reset_index(drop=True),
    }


def train(split: dict[str, Any], factors: int = 8, k: int = 10) -> TopKRecommender:
    """Factorise the interaction matrix with a truncated SVD and keep the top ``factors`` item factors."""
    interactions = split["train"]
    users = np.sort(interactions["user_id"].unique())
    row = {int(user): i for i, user in enumerate(users)}
    matrix = np.zeros((len(users), split["n_items"]))
    matrix[interactions["user_id"].map(row), interactions["item_id"]] = 1.0
    _, _, vt = np.linalg.svd(matrix, full_matrices=False)
    seen = {int(user): group.to_numpy() for user, group in interactions.groupby("user_id")["item_id"]}
    return TopKRecommender(vt[:factors].T.copy(), seen, matrix.sum(axis=0), k)


def evaluate(model: TopKRecommender, split: dict[str, Any], k: int = 10) -> dict[str, float]:
    """Ranking quality on the held-out interactions; the gates in pave.yaml read these numbers.

    precision_at_k: share of the k recommendations the user did interact with, averaged over users;
    recall_at_k: share of the user's held-out items found in the k recommendations, averaged over users.
    """
    precision, recall = [], []
    for user, items in split["test"].groupby("user_id")["item_id"]:
        hits = len(set(model.recommend(int(user), k).tolist()) & set(items.tolist()))
        precision.append(hits / k)
        recall.append(hits / len(items))
    return {"precision_at_k": float(np.mean(precision)), "recall_at_k": float(np.mean(recall))}
