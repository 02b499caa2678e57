"""Projects: the unit that owns runs, models, deployments and monitors."""

from __future__ import annotations

import re

from fastapi import APIRouter, status
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import select

from pave.api.deps import PrincipalDep, SessionDep
from pave.errors import NotFound
from pave.governance import projects
from pave.schemas.projects import ProjectOut
from pave.store.tables import Project
from pave.tracking import stores

router = APIRouter(prefix="/api/v1/projects", tags=["projects"])
NAME = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")


class ProjectCreate(BaseModel):
    name: str = Field(description="Lower-case letters, digits and dashes; 2 to 63 characters.")
    owner: str | None = Field(default=None, max_length=200, description="Default: the caller.")
    description: str = Field(default="", max_length=2000)
    template: str | None = Field(default=None, max_length=100)
    template_version: str | None = Field(default=None, max_length=50)
    labels: dict[str, str] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not NAME.fullmatch(value):
            raise ValueError(
                "use 2-63 lower-case letters, digits and dashes, starting with a letter or digit"
            )
        return value


def _out(project: Project) -> ProjectOut:
    return ProjectOut.model_validate(project, from_attributes=True)


@router.get("", operation_id="list_projects")
def list_projects(session: SessionDep) -> list[ProjectOut]:
    return [_out(p) for p in session.scalars(select(Project).order_by(Project.name))]


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_project")
def create_project(body: ProjectCreate, session: SessionDep, principal: PrincipalDep) -> ProjectOut:
    project = projects.create_project(
        session,
        principal,
        body.name,
        claimed=stores.name_taken,
        owner=body.owner,
        description=body.description,
        template=body.template,
        template_version=body.template_version,
        labels=body.labels,
    )
    return _out(project)


@router.get("/{name}", operation_id="get_project")
def get_project(name: str, session: SessionDep) -> ProjectOut:
    project = session.scalar(select(Project).where(Project.name == name))
    if project is None:
        raise NotFound(f"project {name!r} does not exist", hint="`pave projects` lists them")
    return _out(project)
