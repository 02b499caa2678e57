"""Labels that arrive later: attach ground truth to an inference id, durably, with its history.

A label is one value for a one-row request, or a list with one value per row of the request. Its
type must fit the prediction it labels: a number for a numeric prediction (regression, or class
codes), a string or boolean for a class name, a list of items (or one item) for a ranked list.
Re-posting a label for the same id replaces it; the earlier one is kept in ``history``.
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from pave.errors import Forbidden, InvalidInput, NotFound
from pave.store.tables import DeploymentRow, FeedbackRow, InferenceIndexRow, utcnow

MAX_ITEMS = 10_000
PROBA = "predict_proba"


@dataclass(frozen=True)
class Label:
    """One label to record."""

    inference_id: str
    label: Any


def prediction_output(outputs: dict[str, Any]) -> str | None:
    """The name of the output that holds the prediction (``predict``, else the first non-probability)."""
    if "predict" in outputs:
        return "predict"
    return next((name for name in outputs if name != PROBA), None)


def unknown_ids(session: Session, ids: Sequence[str]) -> list[str]:
    """The ids the inference index does not hold (yet)."""
    known: set[str] = set()
    for start in range(0, len(ids), 500):
        part = list(ids[start : start + 500])
        query = select(InferenceIndexRow.inference_id).where(InferenceIndexRow.inference_id.in_(part))
        known.update(session.scalars(query))
    return [i for i in ids if i not in known]


def record_feedback(
    session: Session,
    labels: Sequence[Label],
    *,
    actor: str,
    may_write: Callable[[str], bool],
) -> dict[str, Any]:
    """Validate every label, then store them all (or none).

    Args:
        session: an open transaction.
        labels: the labels, at most :data:`MAX_ITEMS`.
        actor: who posts them (kept with the label and in its history).
        may_write: whether the caller may label the given project's predictions.

    Returns:
        ``{"created", "updated", "items": [{"inference_id", "project", "deployment", "version", "status"}]}``

    Raises:
        InvalidInput: an empty or oversized batch, an id twice, a label of the wrong shape or type.
        NotFound: inference ids unknown to the index (all of them named, up to 20).
        Forbidden: the caller may not write to a project whose predictions are labelled.
    """
    if not labels:
        raise InvalidInput("no labels given", hint='send {"items": [{"inference_id": "...", "label": 1}]}')
    if len(labels) > MAX_ITEMS:
        raise InvalidInput(
            f"{len(labels)} labels in one request; at most {MAX_ITEMS}",
            hint="split the batch in several requests",
        )
    ids = [item.inference_id for item in labels]
    twice = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
    if twice:
        raise InvalidInput(
            f"inference ids {twice[:20]} appear more than once in the batch", hint="send one label per id"
        )
    index = _index_rows(session, ids)
    missing = [i for i in ids if i not in index]
    if missing:
        shown = ", ".join(missing[:20]) + (f" and {len(missing) - 20} more" if len(missing) > 20 else "")
        raise NotFound(
            f"unknown inference id(s): {shown}",
            hint="use the `id` the gateway returned with the prediction; a prediction made seconds ago "
            "becomes known once its log line is written, so retry shortly",
            details={"unknown": missing},
        )
    projects = _projects(session, {row.deployment for row in index.values()})
    denied = sorted(
        {projects[row.deployment] for row in index.values() if not may_write(projects[row.deployment])}
    )
    if denied:
        raise Forbidden(
            f"{actor} may not post feedback for project(s) {denied}: it needs 'write'",
            hint="ask a maintainer of the project for a developer role: "
            f"`pave project member add {denied[0]} {actor} developer`",
        )
    normalized = {item.inference_id: _check_label(item, index[item.inference_id]) for item in labels}
    existing = _existing(session, ids)
    now = utcnow()
    created = updated = 0
    items = []
    for inference_id, value in normalized.items():
        row = index[inference_id]
        old = existing.get(inference_id)
        if old is None:
            session.add(
                FeedbackRow(
                    inference_id=inference_id,
                    project=projects[row.deployment],
                    deployment=row.deployment,
                    label=value,
                    history=[],
                    created_by=actor,
                    created_at=now,
                    updated_by=actor,
                    updated_at=now,
                )
            )
            created += 1
            status = "created"
        else:
            history = list(old.history or [])
            history.append({"label": old.label, "by": old.updated_by, "at": old.updated_at.isoformat()})
            old.label, old.history, old.updated_by, old.updated_at = value, history, actor, now
            updated += 1
            status = "updated"
        items.append(
            {
                "inference_id": inference_id,
                "project": projects[row.deployment],
                "deployment": row.deployment,
                "version": row.version,
                "status": status,
            }
        )
    return {"created": created, "updated": updated, "items": items}


def _index_rows(session: Session, ids: Sequence[str]) -> dict[str, InferenceIndexRow]:
    found: dict[str, InferenceIndexRow] = {}
    for start in range(0, len(ids), 500):
        part = list(ids[start : start + 500])
        for row in session.scalars(select(InferenceIndexRow).where(InferenceIndexRow.inference_id.in_(part))):
            found[row.inference_id] = row
    return found


def _existing(session: Session, ids: Sequence[str]) -> dict[str, FeedbackRow]:
    found: dict[str, FeedbackRow] = {}
    for start in range(0, len(ids), 500):
        part = list(ids[start : start + 500])
        for row in session.scalars(select(FeedbackRow).where(FeedbackRow.inference_id.in_(part))):
            found[row.inference_id] = row
    return found


def _projects(session: Session, deployments: set[str]) -> dict[str, str]:
    """Deployment -> project (a deployment removed since keeps its name, which is its project's)."""
    rows = session.execute(
        select(DeploymentRow.name, DeploymentRow.project).where(DeploymentRow.name.in_(sorted(deployments)))
    ).tuples()
    found = dict(rows.all())
    return {d: found.get(d, d) for d in deployments}


def _check_label(item: Label, row: InferenceIndexRow) -> list[Any]:
    """The label as one value per row of the request; InvalidInput when it does not fit."""
    label, n = item.label, row.n_rows
    output = prediction_output(row.outputs)
    predictions: list[Any] = list(row.outputs.get(output) or []) if output else []
    ranked = bool(predictions) and isinstance(predictions[0], list)
    if ranked:
        # A ranked list per row: the label is the relevant item(s) of each row.
        values = (
            [label]
            if n == 1 and not (isinstance(label, list) and len(label) == 1 and isinstance(label[0], list))
            else label
        )
    elif isinstance(label, list):
        values = label
    else:
        values = [label]
    if not isinstance(values, list) or len(values) != n:
        raise InvalidInput(
            f"inference {item.inference_id} predicted {n} row(s); its label has "
            f"{len(values) if isinstance(values, list) else 1} value(s)",
            hint=f"send one label per row: a list of {n} values" if n > 1 else "send a single value",
        )
    for value in values:
        problem = _type_problem(value, predictions[0] if predictions else None, ranked)
        if problem:
            raise InvalidInput(f"label of inference {item.inference_id}: {problem}", hint=_TYPE_HINT)
    return values


_TYPE_HINT = (
    "label with the type of the prediction: a number for numeric predictions, a string or boolean for "
    "class names, item(s) of the ranked list for a recommendation"
)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _type_problem(value: Any, prediction: Any, ranked: bool) -> str | None:
    if value is None:
        return "null is not a label"
    if ranked:
        items = value if isinstance(value, list) else [value]
        if not items or any(isinstance(v, dict | list) or v is None for v in items):
            return f"{value!r} is not an item or a list of items"
        return None
    if isinstance(value, dict | list):
        return f"{type(value).__name__} {str(value)[:50]} is not a single value"
    if prediction is None:
        return None
    if _is_number(prediction) and not _is_number(value):
        return f"{value!r} ({type(value).__name__}) where the model predicts numbers"
    if isinstance(prediction, str) and not isinstance(value, str):
        return f"{value!r} ({type(value).__name__}) where the model predicts class names (strings)"
    if isinstance(prediction, bool) and not isinstance(value, bool):
        return f"{value!r} ({type(value).__name__}) where the model predicts true/false"
    return None
