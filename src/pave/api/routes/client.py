"""The Pave client as a wheel, for the CI of generated projects (see :mod:`pave.templates.wheel`)."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from fastapi.responses import Response

from pave.templates.wheel import build_wheel, wheel_name

router = APIRouter(prefix="/api/v1/client", tags=["client"])


@router.get(
    "/wheel",
    operation_id="download_client_wheel",
    response_class=Response,
    responses={200: {"content": {"application/octet-stream": {}}}},
)
async def wheel() -> Response:
    """The wheel of this platform's Pave (`pip install` it with the extra `golden-path`)."""
    data = await anyio.to_thread.run_sync(build_wheel)
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="{wheel_name()}"'},
    )
