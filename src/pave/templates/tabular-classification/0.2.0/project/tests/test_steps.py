"""Tests of the steps on the project's own data: run them with `pytest` before `pave run`."""

import logging
from pathlib import Path

import pandas as pd
import pytest
import yaml
from pave.pipelines import StepContext

import steps
from schema import TrainSchema

ROOT = Path(__file__).resolve().parents[1]
SPEC = yaml.safe_load((ROOT / "pave.yaml").read_text())


def params(step: str) -> dict:
    return next(s.get("params", {}) for s in SPEC["steps"] if s["name"] == step)


@pytest.fixture
def ctx():
    return StepContext(seed=SPEC["seed"], project_dir=ROOT, step="test", logger=logging.getLogger("steps"))


@pytest.fixture
def data():
    return TrainSchema.validate(pd.read_csv(ROOT / SPEC["data"]["sources"]["train"]["path"]))


def run(data, ctx):
    split = steps.prepare(data, ctx, **params("prepare"))
    model = steps.train(split, ctx, **params("train"))
    return split, model, steps.evaluate(model, split, **params("evaluate"))


def test_the_data_matches_the_schema(data):
    assert len(data) > 100
    assert set(data[steps.TARGET].unique()) == {0, 1}


def test_prepare_holds_out_rows_the_model_never_sees(data, ctx):
    split = steps.prepare(data, ctx, **params("prepare"))
    assert not set(split["X_train"].index) & set(split["X_test"].index)
    assert len(split["X_train"]) + len(split["X_test"]) == len(data)


def test_prepare_keeps_the_share_of_each_class(data, ctx):
    split = steps.prepare(data, ctx, **params("prepare"))
    train_share, test_share = split["y_train"].mean(), split["y_test"].mean()
    assert abs(train_share - test_share) < 0.02


def test_the_model_passes_the_gates_in_pave_yaml(data, ctx):
    _, _, metrics = run(data, ctx)
    for gate in SPEC["gates"]:
        if "min" in gate:
            assert metrics[gate["metric"]] >= gate["min"], gate
        if "max" in gate:
            assert metrics[gate["metric"]] <= gate["max"], gate


def test_the_same_seed_gives_the_same_metrics(data, ctx):
    assert run(data, ctx)[2] == run(data, ctx)[2]
