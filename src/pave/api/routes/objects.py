"""A project's content-addressed objects through the platform: dataset versions and code snapshots.

Clients need no object-store credentials: ``pave run`` asks (HEAD) and sends (PUT) what the store
lacks, ``pave reproduce`` and the platform's jobs read (GET) through these routes, under the
project's permissions (read to fetch, write to store). Bodies stream to and from the store; an
upload is verified against its digest before it becomes visible, and counts against the project's
``stored_bytes`` quota.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Annotated, Any
from urllib.parse import quote

import anyio
from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.data.objects import Kind, Receiver, check_sha, index, indexed, object_key
from pave.errors import NotFound
from pave.governance import policy
from pave.schemas.platform import ObjectStored
from pave.storage import CHUNK, open_storage
from pave.store.tables import Project
from pave.tracking import stores

router = APIRouter(prefix="/api/v1/projects/{name}", tags=["objects"])
Sha = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="sha256 of the object's bytes")]


def _row(session: Any, name: str, kind: Kind, sha: str) -> Any:
    row = indexed(session, name, kind, check_sha(sha))
    if row is None:
        noun = "dataset version" if kind == "datasets" else "code snapshot"
        raise NotFound(
            f"project {name} has no {noun} {sha[:12]}",
            hint="it was stored by another project or platform, or never: `pave run` stores it",
        )
    return row


def head_object(name: str, kind: Kind, sha: Sha, session: SessionDep) -> Response:
    """200 with the size when the project stored the object, 404 otherwise (ask before sending)."""
    row = _row(session, name, kind, sha)
    return Response(headers={"content-length": str(row.size), "x-pave-filename": row.filename})


def get_object(name: str, kind: Kind, sha: Sha, session: SessionDep, platform: PlatformDep) -> Response:
    """The object's bytes, streamed from the store."""
    row = _row(session, name, kind, sha)
    storage = open_storage(platform.settings.artifacts)
    chunks: Iterator[bytes] = storage.read(object_key(kind, sha, row.filename))
    return StreamingResponse(
        chunks,
        media_type="application/octet-stream",
        headers={
            "content-length": str(row.size),
            "content-disposition": f"attachment; filename*=UTF-8''{quote(row.filename)}",
            "x-pave-filename": row.filename,
        },
    )


async def put_object(
    name: str,
    sha: Sha,
    request: Request,
    platform: PlatformDep,
    principal: PrincipalDep,
    filename: Annotated[str, Query(min_length=1, max_length=200)],
    kind: Kind,
) -> ObjectStored:
    """Store the request body (raw bytes) as the project's object ``sha``, verified and once."""
    sessions = platform.sessions
    declared = int(request.headers.get("content-length") or 0)

    def known() -> tuple[Any, Callable[[int], None] | None]:
        with sessions() as session:
            if session.scalar(select(Project.id).where(Project.name == name)) is None:
                raise NotFound(f"project {name!r} does not exist", hint="`pave projects` lists them")
            row = indexed(session, name, kind, sha)
            if row is not None:
                return row, None
            return None, _quota(session, platform, name, declared)

    row, quota = await anyio.to_thread.run_sync(known)
    if row is not None:  # the client did not ask first; nothing to store
        return ObjectStored(sha256=sha, filename=row.filename, bytes=row.size, stored=False)
    storage = open_storage(platform.settings.artifacts)
    receiver = await anyio.to_thread.run_sync(Receiver, storage, kind, sha, filename)
    try:
        # the body's chunks go to the store's writer as they came (no copy), a part's worth at a time
        pieces: list[bytes] = []
        pending = 0
        async for chunk in request.stream():
            pieces.append(chunk)
            pending += len(chunk)
            if pending >= CHUNK:
                if quota is not None:  # a chunked body declares no length: counted as it arrives
                    quota(receiver.size + pending)
                await anyio.to_thread.run_sync(receiver.write_all, pieces)
                pieces, pending = [], 0
        if quota is not None:
            quota(receiver.size + pending)
        await anyio.to_thread.run_sync(receiver.write_all, pieces)
        stored_name = await anyio.to_thread.run_sync(receiver.finish)
    except BaseException:
        await anyio.to_thread.run_sync(receiver.abort)
        raise

    def record() -> None:
        with sessions.begin() as session:
            index(
                session,
                project=name,
                kind=kind,
                sha=sha,
                filename=stored_name,
                size=receiver.size,
                actor=principal.identity,
            )

    await anyio.to_thread.run_sync(record)
    return ObjectStored(sha256=sha, filename=stored_name, bytes=receiver.size, stored=not receiver.present)


def _quota(session: Any, platform: Any, project: str, declared: int) -> Callable[[int], None] | None:
    """Check the project's stored-bytes quota for ``declared`` more bytes; answer the check of the
    bytes as they arrive (None: no quota)."""
    rules = policy.get_policy(session, project)
    if rules.max_stored_bytes is None:
        return None
    experiment = stores.tracking_store().get_experiment_by_name(project)
    experiments = [experiment.experiment_id] if experiment is not None else []
    used = policy.stored_bytes(session, project, platform.settings.artifacts, experiments)
    policy.check_quota(rules, "stored_bytes", used, declared)
    return functools.partial(policy.check_quota, rules, "stored_bytes", used)


def _routes(kind: Kind) -> None:
    """``/datasets/{sha}`` and ``/code/{sha}``: HEAD, GET and PUT each."""
    noun = "dataset" if kind == "datasets" else "code"

    def head(name: str, sha: Sha, session: SessionDep) -> Response:
        return head_object(name, kind, sha, session)

    def get(name: str, sha: Sha, session: SessionDep, platform: PlatformDep) -> Response:
        return get_object(name, kind, sha, session, platform)

    async def put(
        name: str,
        sha: Sha,
        request: Request,
        platform: PlatformDep,
        principal: PrincipalDep,
        filename: Annotated[str, Query(min_length=1, max_length=200)],
    ) -> ObjectStored:
        return await put_object(name, sha, request, platform, principal, filename, kind)

    head.__doc__, get.__doc__, put.__doc__ = head_object.__doc__, get_object.__doc__, put_object.__doc__
    router.add_api_route(f"/{kind}/{{sha}}", head, methods=["HEAD"], operation_id=f"head_{noun}_object")
    router.add_api_route(
        f"/{kind}/{{sha}}",
        get,
        methods=["GET"],
        operation_id=f"get_{noun}_object",
        response_class=StreamingResponse,
        responses={200: {"content": {"application/octet-stream": {}}, "description": "The bytes."}},
    )
    router.add_api_route(
        f"/{kind}/{{sha}}",
        put,
        methods=["PUT"],
        status_code=status.HTTP_201_CREATED,
        operation_id=f"put_{noun}_object",
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )


_routes("datasets")
_routes("code")
