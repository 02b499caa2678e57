"""Probes: liveness, readiness, and the Prometheus endpoint."""

from __future__ import annotations

import json

import anyio
from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from pave import __version__
from pave.api.deps import PlatformDep
from pave.errors import PaveError

router = APIRouter(tags=["health"])


@router.get("/healthz", operation_id="healthz", include_in_schema=False)
def healthz() -> dict[str, str]:
    """Liveness: the process answers."""
    return {"status": "ok", "version": __version__}


@router.get("/readyz", operation_id="readyz", include_in_schema=False)
async def readyz(platform: PlatformDep) -> Response:
    """Readiness: the metadata database answers. Also tells whether this control plane leads the
    background jobs (one does among those sharing a database) and how many rounds it ran."""
    try:
        await anyio.to_thread.run_sync(platform.ping)
    except PaveError as error:
        return Response(status_code=503, content=error.message, media_type="text/plain")
    body = {"status": "ready", "leader": platform.lease.leading, "job_rounds": platform.job_rounds}
    return Response(status_code=200, content=json.dumps(body), media_type="application/json")


@router.get("/metrics", operation_id="metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)
