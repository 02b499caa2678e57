"""Deployments: a project's model versions served by the inference gateways."""

from __future__ import annotations

import anyio
from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlalchemy import select

from pave.api.deps import PlatformDep, PrincipalDep, SessionDep
from pave.api.routes.projects import NAME
from pave.errors import Forbidden, InvalidInput, NotFound
from pave.governance import audit, projects
from pave.governance.access import Access
from pave.registry.adoption import adopt, locate
from pave.schemas.serving import DeploymentOut, Undeployed
from pave.serving import store as deployments
from pave.serving import traffic
from pave.store.tables import DeploymentRow, Project
from pave.tracking import stores

router = APIRouter(prefix="/api/v1", tags=["deployments"])


class DeployRequest(BaseModel):
    version: str | None = Field(default=None, max_length=20, description="Model version; default: alias.")
    alias: str | None = Field(default=None, max_length=100, description="Default: champion.")
    canary_version: str | None = Field(default=None, max_length=20)
    canary_weight: float = Field(default=10.0, gt=0, lt=100, description="Percent of traffic.")
    shadow_version: str | None = Field(default=None, max_length=20)
    sticky: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")
    scale_to_zero_after: float | None = Field(default=None, gt=0, le=30 * 86400)
    model: str | None = Field(
        default=None,
        max_length=300,
        description="A model registered with plain MLflow to adopt into the project and serve: "
        "NAME/VERSION or NAME@ALIAS (the project is created when it does not exist).",
    )


def _out(row: DeploymentRow) -> DeploymentOut:
    return DeploymentOut.model_validate(row, from_attributes=True)


@router.get("/deployments", operation_id="list_deployments")
def list_all(session: SessionDep, principal: PrincipalDep) -> list[DeploymentOut]:
    """Every deployment the caller may see."""
    access = Access.load(session, principal)
    return [_out(r) for r in deployments.list_deployments(session) if access.sees(r.project)]


@router.get("/projects/{name}/deployment", operation_id="get_deployment")
def get_one(name: str, session: SessionDep) -> DeploymentOut:
    return _out(deployments.get_deployment(session, name))


@router.put("/projects/{name}/deployment", operation_id="deploy")
async def deploy(
    name: str, body: DeployRequest, session: SessionDep, principal: PrincipalDep, platform: PlatformDep
) -> DeploymentOut:
    """Create or replace the project's deployment; gateways pick it up within a second.

    With ``model``, a version registered with plain MLflow is first adopted into the project (made
    a version of the project's model, with an audit record), the project created if it does not
    exist and the caller may create projects.
    """
    options = body.model_dump()
    reference = options.pop("model")
    if reference is not None and (body.version or body.alias):
        raise InvalidInput("give --model, or --version / --alias, not both", hint="--model IrisClassifier/1")
    registry = deployments.registry_client(platform.settings) if reference is not None else None

    def is_project(other: str) -> bool:
        return bool(projects.existing_projects(session, [other]))

    if session.scalar(select(Project.id).where(Project.name == name)) is None:
        if reference is None:
            raise NotFound(f"project {name!r} does not exist", hint="`pave projects` lists them")
        if not Access.load(session, principal).can("write", name):
            raise Forbidden(f"{principal.identity} may not create projects", hint="ask a platform admin")
        if not NAME.fullmatch(name):
            raise InvalidInput(
                f"{name!r} is not a project name",
                hint="use 2-63 lower-case letters, digits and dashes, starting with a letter or digit",
            )

        def create() -> None:
            # the model is found and checked first: a refused adoption leaves no empty project
            locate(
                registry, name, reference, artifact_root=platform.settings.artifacts, is_project=is_project
            )
            # committed on its own, before this request's session writes anything: on SQLite the
            # adoption's audit record below needs the store's one writer's lock
            with platform.sessions() as own, own.begin():
                projects.create_project(
                    own,
                    principal,
                    name,
                    claimed=stores.name_taken,
                    description=f"Serves the MLflow model {reference}.",
                )

        await anyio.to_thread.run_sync(create)

    def work() -> DeploymentRow:
        if reference is not None:
            adopted = adopt(
                registry, name, reference, artifact_root=platform.settings.artifacts, is_project=is_project
            )
            options["version"] = adopted.version
            if adopted.new:
                audit.append(
                    platform.engine,
                    audit.AuditEntry(
                        method="PUT",
                        path=f"/api/v1/projects/{name}/deployment",
                        status=200,
                        request_id=f"adopt-{name}-{adopted.version}",
                        action="adopt",
                        identity=principal.identity,
                        token_id=principal.token_id,
                        project=name,
                        model=name,
                        detail=f"adopted the MLflow model {adopted.source_model} version "
                        f"{adopted.source_version} as {name} version {adopted.version}",
                    ),
                )
        return traffic.deploy(session, platform.settings, project=name, actor=principal.identity, **options)

    return _out(await anyio.to_thread.run_sync(work))


@router.delete("/projects/{name}/deployment", operation_id="undeploy")
def undeploy(name: str, session: SessionDep) -> Undeployed:
    traffic.undeploy(session, name)
    return Undeployed(name=name, status="undeployed")
