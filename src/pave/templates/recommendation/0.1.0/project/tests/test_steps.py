"""Tests of the steps on the project's own data: run them with `pytest` before `pave run`."""

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pave.pipelines import StepContext

import steps
from make_data import make_interactions
from schema import InteractionSchema

ROOT = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((ROOT / "pave.yaml").read_text())
K = 10


def params(step: str) -> dict:
    return next(s.get("params", {}) for s in SPEC["steps"] if s["name"] == step)


@pytest.fixture
def ctx():
    return StepContext(seed=SPEC["seed"], project_dir=ROOT, step="test", logger=logging.getLogger("steps"))


@pytest.fixture
def data():
    return InteractionSchema.validate(pd.read_csv(ROOT / SPEC["data"]["sources"]["interactions"]["path"]))


def run(data, ctx):
    split = steps.prepare(data, ctx, **params("prepare"))
    model = steps.train(split, **params("train"))
    return split, model, steps.evaluate(model, split, **params("evaluate"))


def test_the_data_matches_the_schema(data):
    assert data["user_id"].nunique() > 100


def test_prepare_holds_out_at_least_one_interaction_per_user(data, ctx):
    split = steps.prepare(data, ctx, **params("prepare"))
    train, test = split["train"], split["test"]
    assert len(train) + len(test) == len(data)
    assert set(test["user_id"]) == set(data["user_id"])
    pairs = {(u, i) for u, i in train[["user_id", "item_id"]].itertuples(index=False)}
    assert not any((u, i) in pairs for u, i in test[["user_id", "item_id"]].itertuples(index=False))


def test_recommendations_are_unseen_distinct_items(data, ctx):
    split, model, _ = run(data, ctx)
    top = model.predict(None, split["X_test"].head(20))
    assert top.shape == (20, K)
    for user, items in zip(split["X_test"]["user_id"].head(20), top, strict=True):
        assert len(set(items)) == K
        assert not set(items) & set(model.seen[user])


def test_an_unknown_user_gets_the_most_popular_items(data, ctx):
    _, model, _ = run(data, ctx)
    top = model.predict(None, pd.DataFrame({"user_id": [10**6]}))[0]
    assert list(top) == list(np.argsort(-model.popularity, kind="stable")[:K])


def test_the_model_beats_recommending_popular_items(data, ctx):
    split, model, metrics = run(data, ctx)
    hits = []
    for user, items in split["test"].groupby("user_id")["item_id"]:
        scores = model.popularity.astype(float)
        scores[model.seen[user]] = -np.inf
        hits.append(len(set(np.argsort(-scores, kind="stable")[:K]) & set(items)) / K)
    assert metrics["precision_at_k"] > 1.5 * np.mean(hits)


def test_the_model_passes_the_gates_in_pave_yaml(data, ctx):
    _, _, metrics = run(data, ctx)
    for gate in SPEC["gates"]:
        if "min" in gate:
            assert metrics[gate["metric"]] >= gate["min"], gate
        if "max" in gate:
            assert metrics[gate["metric"]] <= gate["max"], gate


def test_the_same_seed_gives_the_same_metrics(data, ctx):
    assert run(data, ctx)[2] == run(data, ctx)[2]


def test_make_data_rebuilds_the_shipped_file(data):
    pd.testing.assert_frame_equal(make_interactions(), data, check_dtype=False)
