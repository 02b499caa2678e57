"""Labels posted later: durable, validated, per-project authorised, joined to the right version."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from monitoring_kit import ControlPlane, write_log
from sqlalchemy import select

from pave.governance.tokens import create_token
from pave.monitoring.performance import performance_by_version
from pave.store.tables import FeedbackRow


def _frame(n: int) -> pd.DataFrame:
    return pd.DataFrame({"x": np.arange(n, dtype=float)})


def test_labels_give_the_right_numbers_per_version(control_plane: ControlPlane) -> None:
    cp = control_plane
    churn = cp.add_deployment("churn", ("1", "2"))
    # Version 1 predicts [1,1,0,0,1,0,1,0] with probabilities; version 2 a regression-free binary too.
    p1 = [1, 1, 0, 0, 1, 0, 1, 0]
    proba1 = [
        [0.1, 0.9],
        [0.3, 0.7],
        [0.8, 0.2],
        [0.6, 0.4],
        [0.45, 0.55],
        [0.9, 0.1],
        [0.2, 0.8],
        [0.7, 0.3],
    ]
    ids1 = write_log(cp.log_dir, churn, "1", _frame(8), {"predict": p1, "predict_proba": proba1})
    p2 = [0, 0, 0, 1]
    ids2 = write_log(cp.log_dir, churn, "2", _frame(4), {"predict": p2})
    truth1 = [1, 0, 0, 1, 1, 0, 1, 0]  # 6 of 8 correct
    truth2 = [0, 1, 0, 1]  # 3 of 4 correct
    items = [{"inference_id": i, "label": t} for i, t in zip(ids1 + ids2, truth1 + truth2, strict=True)]
    answer = cp.client.post("/api/v1/feedback", json={"items": items})
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] == 12

    since = datetime.now(UTC) - timedelta(hours=1)
    perf = performance_by_version(cp.settings, cp.platform.sessions, churn, since=since)
    assert set(perf) == {"1", "2"}
    v1, v2 = perf["1"], perf["2"]
    assert v1.n_labelled == 8
    assert v2.n_labelled == 4
    assert v1.metrics["accuracy"] == pytest.approx(0.75)
    # Version 1: tp=3 (rows 0, 4, 6), fp=1 (row 1), fn=1 (row 3) -> f1 = 2*3 / (2*3 + 1 + 1) = 0.75
    assert v1.metrics["f1"] == pytest.approx(0.75)
    # AUC by hand: positives score .9 .4 .55 .8, negatives .7 .2 .1 .3 -> 14 of 16 pairs ordered right
    assert v1.metrics["roc_auc"] == pytest.approx(14 / 16)
    assert v2.metrics["accuracy"] == pytest.approx(0.75)
    assert "roc_auc" not in v2.metrics
    assert v1.scores.tolist() == [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]

    # A later correction replaces the label and keeps the old one in the history.
    again = cp.client.post("/api/v1/feedback", json={"items": [{"inference_id": ids1[1], "label": 1}]})
    assert again.json()["updated"] == 1
    perf = performance_by_version(cp.settings, cp.platform.sessions, churn, since=since)
    assert perf["1"].metrics["accuracy"] == pytest.approx(7 / 8)
    with cp.platform.sessions() as session:
        row = session.scalar(select(FeedbackRow).where(FeedbackRow.inference_id == ids1[1]))
        assert row is not None
        assert row.label == [1]
        assert row.history[0]["label"] == [0]
    # A window before the requests has nothing.
    assert performance_by_version(cp.settings, cp.platform.sessions, churn, since=since, until=since) == {}


def test_regression_and_batched_requests(control_plane: ControlPlane) -> None:
    cp = control_plane
    price = cp.add_deployment("price")
    ids = write_log(cp.log_dir, price, "3", _frame(4), {"predict": [1.0, 2.0, 3.0, 4.0]}, rows_per_request=2)
    answer = cp.client.post(
        "/api/v1/feedback",
        json={
            "items": [
                {"inference_id": ids[0], "label": [1.5, 2.0]},
                {"inference_id": ids[1], "label": [3.0, 2.0]},
            ]
        },
    )
    assert answer.status_code == 200, answer.text
    since = datetime.now(UTC) - timedelta(hours=1)
    perf = performance_by_version(cp.settings, cp.platform.sessions, price, since=since)["3"]
    # errors 0.5, 0, 0, 2 -> mae 0.625, rmse sqrt(4.25 / 4)
    assert perf.metrics["mae"] == pytest.approx(0.625)
    assert perf.metrics["rmse"] == pytest.approx(np.sqrt(4.25 / 4))
    assert perf.scores.tolist() == [0.25, 0.0, 0.0, 4.0]


def test_a_label_posted_as_its_prediction_is_being_logged_waits_for_it(control_plane: ControlPlane) -> None:
    # The gateway appends to its log a few tens of milliseconds after answering; a client that posts
    # the label at once must not get a 404 for an id the control plane is about to see.
    cp = control_plane
    churn = cp.add_deployment("churn")
    ids = [uuid.uuid4().hex, uuid.uuid4().hex]
    late = threading.Timer(
        0.2, write_log, (cp.log_dir, churn, "1", _frame(2), {"predict": [0, 1]}), {"ids": ids}
    )
    late.start()
    try:
        answer = cp.client.post(
            "/api/v1/feedback", json={"items": [{"inference_id": i, "label": 1} for i in ids]}
        )
    finally:
        late.join()
    assert answer.status_code == 200, answer.text
    assert answer.json()["created"] == 2


def test_bad_feedback_is_refused_and_nothing_is_stored(control_plane: ControlPlane) -> None:
    cp = control_plane
    churn = cp.add_deployment("churn")
    ids = write_log(cp.log_dir, churn, "1", _frame(2), {"predict": [0, 1]})

    unknown = cp.client.post(
        "/api/v1/feedback",
        json={"items": [{"inference_id": ids[0], "label": 1}, {"inference_id": "nope", "label": 1}]},
    )
    assert unknown.status_code == 404
    error = unknown.json()["error"]
    assert "nope" in error["message"]
    assert "id" in error["hint"]

    wrong_type = cp.client.post(
        "/api/v1/feedback", json={"items": [{"inference_id": ids[0], "label": "yes"}]}
    )
    assert wrong_type.status_code == 400
    assert ids[0] in wrong_type.json()["error"]["message"]
    wrong_shape = cp.client.post(
        "/api/v1/feedback", json={"items": [{"inference_id": ids[0], "label": [1, 0]}]}
    )
    assert wrong_shape.status_code == 400
    empty = cp.client.post("/api/v1/feedback", json={"items": []})
    assert empty.status_code == 400
    with cp.platform.sessions() as session:
        assert session.scalars(select(FeedbackRow).where(FeedbackRow.deployment == churn)).all() == []


def test_feedback_is_authorised_per_project(control_plane: ControlPlane) -> None:
    cp = control_plane
    churn = cp.add_deployment("churn")
    other = cp.add_deployment("other")
    ids = write_log(cp.log_dir, churn, "1", _frame(1), {"predict": [1]})
    with cp.platform.sessions() as session, session.begin():
        scoped = create_token(session, identity="bot", name="labels", role="developer", project=other)[1]
    answer = cp.client.post(
        "/api/v1/feedback",
        json={"items": [{"inference_id": ids[0], "label": 1}]},
        headers={"Authorization": f"Bearer {scoped}"},
    )
    assert answer.status_code == 403
    assert churn in answer.json()["error"]["message"]
