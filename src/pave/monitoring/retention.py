"""Retention: predictions, their index and their labels are kept for ``inference_retention_days``.

Without it the inference log and its index grow with every request for as long as the platform
runs. :func:`prune` removes, once the retention has passed:

- the gateways' log files last written before the cutoff (a gateway rotates to a new file before
  it writes to a file older than its ``max_age``, an hour by default, so a file that old is never
  written again) and their read cursors;
- the index rows of predictions made before the cutoff, and the labels posted for them.

Alerts, rollouts, retrains and the audit trail are records of what happened and are kept. The
control plane's monitoring loop calls :func:`prune` about once an hour.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from pave.store.tables import FeedbackRow, InferenceIndexRow, InferenceLogCursor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pruned:
    """What one pass removed."""

    files: int
    predictions: int
    labels: int


def prune(
    sessions: sessionmaker[Session], directory: Path, *, retention_days: float, now: datetime
) -> Pruned:
    """Remove what is older than ``retention_days`` before ``now`` (an aware datetime)."""
    cutoff = now - timedelta(days=retention_days)
    gone: list[str] = []
    if directory.is_dir():
        for path in sorted(directory.glob("inference-*.jsonl")):
            try:
                if path.stat().st_mtime >= cutoff.timestamp():
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            gone.append(str(path))
    with sessions() as session, session.begin():
        if gone:
            session.execute(delete(InferenceLogCursor).where(InferenceLogCursor.path.in_(gone)))
        old = select(InferenceIndexRow.inference_id).where(InferenceIndexRow.ts < cutoff)
        labels = session.execute(delete(FeedbackRow).where(FeedbackRow.inference_id.in_(old))).rowcount  # type: ignore[attr-defined]
        predictions = session.execute(delete(InferenceIndexRow).where(InferenceIndexRow.ts < cutoff)).rowcount  # type: ignore[attr-defined]
    pruned = Pruned(files=len(gone), predictions=predictions or 0, labels=labels or 0)
    if pruned.files or pruned.predictions:
        log.info(
            "retention (%g days): removed %d log file(s), %d prediction(s) and %d label(s) before %s",
            retention_days,
            pruned.files,
            pruned.predictions,
            pruned.labels,
            cutoff.isoformat(timespec="seconds"),
        )
    return pruned
