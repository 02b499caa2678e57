"""Adopting a model registered with plain MLflow into a Pave project.

A team that registered ``IrisClassifier`` with unmodified MLflow code serves it with
``pave deploy iris --model IrisClassifier/1``. Adoption makes the version a version of the
project's own registered model (``iris``: a project's registered model carries its name), with
the same files, run and logged model, tagged with where it came from. From then on it is a
version like any golden-path one: the project's roles govern it, its approvals, rollouts,
monitoring and model card work on it, and it is deployed by its project version. Adopting the
same version twice gives the same project version back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from pave.errors import InvalidInput, NotFound

TAG_ADOPTED_FROM = "pave.adopted_from"
_REFERENCE = re.compile(r"^(?P<name>[^/@]+)(?:/(?P<version>\d+)|@(?P<alias>[A-Za-z0-9_-]+))$")


@dataclass(frozen=True)
class Adopted:
    """The project's version that stands for the adopted one."""

    project: str
    version: str
    source_model: str
    source_version: str
    new: bool  # False: it had been adopted before


def parse_reference(reference: str) -> tuple[str, str | None, str | None]:
    """``"Name/3"`` -> ``("Name", "3", None)``; ``"Name@champion"`` -> ``("Name", None, "champion")``.

    Raises:
        InvalidInput: neither form.
    """
    match = _REFERENCE.match(reference.strip())
    if match is None:
        raise InvalidInput(
            f"{reference!r} names no model version",
            hint="--model NAME/VERSION (IrisClassifier/1) or --model NAME@ALIAS (IrisClassifier@champion)",
        )
    return match["name"], match["version"], match["alias"]


def adopt(client: Any, project: str, reference: str) -> Adopted:
    """Make the MLflow model version ``reference`` a version of ``project``'s registered model.

    Args:
        client: an ``MlflowClient`` on the platform's own tracking and registry store.
        project: the project that adopts it (its registered model has its name).
        reference: ``NAME/VERSION`` or ``NAME@ALIAS``.

    Raises:
        NotFound: no such model, version or alias.
        InvalidInput: a malformed reference.
    """
    from mlflow.exceptions import MlflowException

    name, version, alias = parse_reference(reference)
    try:
        source = (
            client.get_model_version_by_alias(name, alias)
            if alias
            else client.get_model_version(name, version)
        )
    except MlflowException as exc:
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise NotFound(
            f"registered model {name!r} has no {what}",
            hint="the MLflow UI at /mlflow lists registered models, their versions and aliases",
        ) from exc
    origin = f"{name}/{source.version}"
    if name == project:  # already the project's own model: nothing to adopt
        return Adopted(project, str(source.version), name, str(source.version), new=False)
    try:
        client.create_registered_model(project, tags={"pave.managed": "true"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    for existing in client.search_model_versions(f"name = '{_quoted(project)}'"):
        if existing.tags.get(TAG_ADOPTED_FROM) == origin:
            return Adopted(project, str(existing.version), name, str(source.version), new=False)
    created = client.create_model_version(
        name=project,
        source=source.source,
        run_id=source.run_id,
        # the platform's own tags (approvals, authorship) are never carried over from elsewhere
        tags={
            **{k: v for k, v in source.tags.items() if not k.startswith("pave.")},
            TAG_ADOPTED_FROM: origin,
        },
        description=f"Adopted from the MLflow model {origin}."
        + (f" {source.description}" if source.description else ""),
        model_id=getattr(source, "model_id", None),
    )
    return Adopted(project, str(created.version), name, str(source.version), new=True)


def _quoted(value: str) -> str:
    return value.replace("'", "''")
