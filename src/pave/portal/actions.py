"""The portal's forms: deploy, weights, canary rollouts, promote, roll back, undeploy, new project.

Each one reads its form with the session's CSRF token, checks the caller's role on the project
with the rule of the API route it mirrors, does the same domain call as that route, and sends
the browser back to the page (the middleware has audited the POST by then).
"""

from __future__ import annotations

import shutil
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import Request
from fastapi.responses import Response

from pave.errors import Conflict, InvalidInput, PaveError
from pave.governance import projects
from pave.portal import charts, views
from pave.portal.web import (
    NAME,
    back,
    mirror,
    page,
    platform_of,
    principal_of,
    projects_dir,
    read_form,
    render,
    router,
    run,
)
from pave.serving import traffic
from pave.tracking import stores


@router.post("/projects/{name}/deploy")
@page
async def deploy(request: Request, name: str) -> Response:
    fields = await read_form(request)
    mirror(request, "PUT", f"/api/v1/projects/{name}/deployment", name)
    platform, actor = platform_of(request), principal_of(request).identity
    version = fields.get("version", "").strip()
    if not version.isdigit():
        raise InvalidInput("choose the model version to deploy", hint="pick a version in the list")

    def work(session: Any) -> None:
        traffic.deploy(session, platform.settings, project=name, actor=actor, version=version)

    await run(request, work)
    return back(f"/projects/{quote(name)}/deployment", f"deployed version {version}")


@router.post("/projects/{name}/undeploy")
@page
async def undeploy(request: Request, name: str) -> Response:
    await read_form(request)
    mirror(request, "DELETE", f"/api/v1/projects/{name}/deployment", name)

    def work(session: Any) -> None:
        traffic.undeploy(session, name)

    await run(request, work)
    return back(f"/projects/{quote(name)}", "undeployed")


@router.post("/projects/{name}/weights")
@page
async def weights(request: Request, name: str) -> Response:
    fields = await read_form(request)
    mirror(request, "PUT", f"/api/v1/projects/{name}/deployment", name)
    platform = platform_of(request)
    actor = principal_of(request).identity

    def work(session: Any) -> str:
        given: dict[str, float] = {}
        for key, raw in fields.items():
            if not key.startswith("weight_"):
                continue
            try:
                given[key.removeprefix("weight_")] = float(raw)
            except ValueError:
                raise InvalidInput(
                    f"the weight of version {key.removeprefix('weight_')} is not a number: {raw[:20]!r}",
                    hint="give each version a percentage; together they make 100",
                ) from None
        row = traffic.set_weights(session, platform.settings, project=name, actor=actor, weights=given)
        return ", ".join(f"v{r['version']} {charts.fmt(r['weight'])}%" for r in row.spec["versions"])

    done = await run(request, work)
    return back(f"/projects/{quote(name)}/deployment", f"traffic set: {done}")


@router.post("/projects/{name}/rollout")
@page
async def start_rollout(request: Request, name: str) -> Response:
    fields = await read_form(request)
    mirror(request, "POST", f"/api/v1/projects/{name}/rollout", name)
    platform, actor = platform_of(request), principal_of(request).identity
    version = fields.get("version", "").strip()
    policy: dict[str, Any] = {}
    try:
        if fields.get("steps", "").strip():
            policy["steps"] = [float(s) for s in fields["steps"].split(",") if s.strip()]
        if fields.get("interval", "").strip():
            policy["interval_seconds"] = float(fields["interval"])
    except ValueError:
        raise InvalidInput(
            "steps are percentages separated by commas and the interval a number of seconds",
            hint="steps 10,50,100 and interval 60",
        ) from None

    def work(session: Any) -> None:
        from pave.serving import rollouts

        rollouts.start(session, platform.settings, project=name, version=version, actor=actor, policy=policy)

    await run(request, work)
    return back(f"/projects/{quote(name)}/deployment", f"rollout of version {version} started")


async def _finish(request: Request, name: str, verb: str) -> Response:
    fields = await read_form(request)
    mirror(request, "POST", f"/api/v1/projects/{name}/rollout/{verb}", name)
    platform, actor = platform_of(request), principal_of(request).identity
    reason = fields.get("reason", "").strip()[:500] or f"{verb} from the portal"

    def work(session: Any) -> None:
        from pave.serving import rollouts

        row = rollouts.current(session, name)
        action = rollouts.promote if verb == "promote" else rollouts.rollback
        action(session, platform.settings, row, reason=reason, by=actor)

    await run(request, work)
    done = "promoted" if verb == "promote" else "rolled back"
    return back(f"/projects/{quote(name)}/deployment", done)


@router.post("/projects/{name}/promote")
@page
async def promote(request: Request, name: str) -> Response:
    return await _finish(request, name, "promote")


@router.post("/projects/{name}/rollback")
@page
async def rollback(request: Request, name: str) -> Response:
    return await _finish(request, name, "rollback")


@router.post("/projects/{name}/models/{version}/approve")
@page
async def approve(request: Request, name: str, version: str) -> Response:
    """An approver who is not the version's author approves it for production traffic."""
    from pave.governance import approvals

    fields = await read_form(request)
    mirror(request, "POST", f"/api/v1/projects/{name}/approvals", name)
    platform, actor = platform_of(request), principal_of(request).identity
    if not version.isdigit():
        raise InvalidInput(f"{version!r} is not a model version", hint="open it from the project page")
    comment = fields.get("comment", "").strip()[:500]

    def work(session: Any) -> None:
        views.get_project(session, name)
        registry = views.mlflow_client(platform.settings)._get_registry_client().store
        approvals.approve(registry, name, version, approver=actor, comment=comment)

    await run(request, work)
    return back(f"/projects/{quote(name)}/models/{version}", f"approved version {version}")


@router.post("/new")
@page
async def new_project(request: Request) -> Response:
    from pave.templates import generate, get_template, list_templates

    fields = await read_form(request)
    mirror(request, "POST", "/api/v1/projects", None)
    platform, principal = platform_of(request), principal_of(request)
    name = fields.get("name", "").strip()
    description = fields.get("description", "").strip()[:2000]
    where = projects_dir(platform)
    try:
        if not NAME.fullmatch(name):
            raise InvalidInput(
                f"{name[:80]!r} is not a project name",
                hint="use 2-63 lower-case letters, digits and dashes, starting with a letter or digit",
            )
        info = get_template(fields.get("template", ""))

        def exists(session: Any) -> bool:
            return bool(projects.existing_projects(session, [name]))

        if await run(request, exists):
            raise Conflict(f"project {name!r} exists already", hint="pick another name")
        target = where / name
        answers = {
            "project_name": name,
            "owner": principal.identity,
            "description": description or info.description,
        }
        path = await anyio.to_thread.run_sync(lambda: generate(info.name, target, answers))

        def register(session: Any) -> None:
            projects.create_project(
                session,
                principal,
                name,
                claimed=stores.name_taken,
                description=answers["description"],
                template=info.name,
                template_version=info.version,
            )

        try:
            await run(request, register)
        except Exception:
            shutil.rmtree(path, ignore_errors=True)  # undo only what this request created
            raise
    except PaveError as error:
        return render(
            request,
            "new.html",
            error.status_code,
            templates=list_templates(),
            where=where,
            form=fields,
            created=None,
            error=error,
        )
    return render(
        request,
        "new.html",
        201,
        templates=list_templates(),
        where=where,
        form={},
        created={"name": name, "path": str(path), "template": info.name, "version": info.version},
        error=None,
    )
