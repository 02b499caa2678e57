"""Feedback: labels (ground truth) posted later for the gateway's inference ids."""

from __future__ import annotations

import time
from typing import Any

import anyio
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.api.security import access_of
from pave.monitoring.feedback import MAX_ITEMS, Label, record_feedback, unknown_ids
from pave.monitoring.ingest import ingest
from pave.schemas.monitoring import FeedbackRecorded

router = APIRouter(prefix="/api/v1", tags=["feedback"])
# How long a label for an inference id the index does not hold yet waits for the gateway's log.
FRESH_PREDICTION_WAIT = 2.0


class FeedbackItem(BaseModel):
    inference_id: str = Field(min_length=1, max_length=64, description="The `id` the gateway answered with.")
    label: Any = Field(description="One value, or one value per row of the request.")


class FeedbackBatch(BaseModel):
    items: list[FeedbackItem] = Field(min_length=1, max_length=MAX_ITEMS)


@router.post("/feedback", operation_id="post_feedback")
async def post_feedback(
    body: FeedbackBatch, request: Request, session: SessionDep, principal: PrincipalDep, platform: PlatformDep
) -> FeedbackRecorded:
    """Attach labels to inference ids (all or none); posting again for an id replaces its label."""
    access = access_of(request)
    labels = [Label(item.inference_id, item.label) for item in body.items]

    def work() -> FeedbackRecorded:
        ids = [item.inference_id for item in labels]
        # a shipped log reaches the control plane a ship interval (and an upload) later
        shipped = platform.settings.inference_log_ship_interval + 2.0 if platform.mirror else 0.0
        deadline = time.monotonic() + FRESH_PREDICTION_WAIT + shipped
        while unknown_ids(session, ids):
            # Predictions made since the last tick of the background loop: index them now. The
            # gateway writes its log a few tens of milliseconds after answering, so a label posted
            # right after its prediction waits for it (up to FRESH_PREDICTION_WAIT) instead of a 404.
            if platform.mirror is not None:  # shipped by a gateway on another host
                platform.mirror.pull(platform.sessions)
            ingest(platform.sessions, platform.settings.inference_log_dir)
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)
        recorded = record_feedback(
            session, labels, actor=principal.identity, may_write=lambda project: access.can("write", project)
        )
        return FeedbackRecorded.model_validate(recorded)

    return await anyio.to_thread.run_sync(work)
