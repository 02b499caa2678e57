"""Adopting a model registered with plain MLflow into a Pave project.

A team that registered ``IrisClassifier`` with unmodified MLflow code serves it with
``pave deploy iris --model IrisClassifier/1``. Adoption makes the version a version of the
project's own registered model (``iris``: a project's registered model carries its name), with
the same files, run and logged model, tagged with where it came from. From then on it is a
version like any golden-path one: the project's roles govern it, its approvals, rollouts,
monitoring and model card work on it, and it is deployed by its project version. Adopting the
same version twice gives the same project version back.

The files are copied into the project's own experiment folder (``<experiment>/adopted/<hash>``)
and the project's version names the copy: what is served never changes with, or depends on, the
original's files, and a project serves no path of another experiment. A version of another
project's model (or logged by another project's run) is not adopted.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pave.errors import Forbidden, InvalidInput, NotFound
from pave.storage import key_under, open_storage
from pave.tracking import stores

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


@dataclass(frozen=True)
class Candidate:
    """A model version found and checked for adoption, before anything is written."""

    name: str
    source: Any  # the MLflow ModelVersion
    files: str | None  # its files' key in the artifact store; None: the project's own model

    @property
    def origin(self) -> str:
        return f"{self.name}/{self.source.version}"


def locate(
    client: Any, project: str, reference: str, *, artifact_root: str, is_project: Callable[[str], bool]
) -> Candidate:
    """Find the MLflow model version ``reference`` and check that ``project`` may adopt it.

    Writes nothing: a caller that creates the project for the adoption checks first, so that a
    refused adoption leaves no empty project behind.

    Raises:
        NotFound: no such model, version or alias; or its files are gone.
        Forbidden: the version's model is another project's.
        InvalidInput: a malformed reference, or files outside the platform's artifact store.
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
        try:
            client.get_registered_model(name)
        except MlflowException:
            raise NotFound(
                f"no MLflow model is registered as {name!r}",
                hint="the MLflow UI at /mlflow lists registered models (names are case-sensitive)",
            ) from exc
        what = f"alias {alias!r}" if alias else f"version {version}"
        raise NotFound(
            f"registered model {name!r} has no {what}",
            hint="the MLflow UI at /mlflow lists registered models, their versions and aliases",
        ) from exc
    if name == project:  # already the project's own model: nothing to adopt
        return Candidate(name, source, None)
    _check_outside_projects(project, name, is_project)
    files = _files_key(client, name, str(source.version), artifact_root)
    if next(iter(open_storage(artifact_root).list(f"{files}/")), None) is None:
        raise NotFound(
            f"the files of MLflow model {name}/{source.version} are gone from {files}",
            hint="register the model again from a run that still has its files",
        )
    return Candidate(name, source, files)


def adopt(
    client: Any, project: str, reference: str, *, artifact_root: str, is_project: Callable[[str], bool]
) -> Adopted:
    """Make the MLflow model version ``reference`` a version of ``project``'s registered model.

    The version's files are copied into the project's own artifact location first, and the new
    version's source names the copy: deleting or changing the original later changes nothing
    that is served, and the project never serves a path of another experiment.

    Args:
        client: an ``MlflowClient`` on the platform's own tracking and registry store.
        project: the project that adopts it (its registered model has its name).
        reference: ``NAME/VERSION`` or ``NAME@ALIAS``.
        artifact_root: the platform's artifact store (a folder or ``s3://BUCKET/PREFIX``).
        is_project: whether a name is a Pave project's.

    Raises:
        the errors of ``locate``.
    """
    from mlflow.exceptions import MlflowException

    found = locate(client, project, reference, artifact_root=artifact_root, is_project=is_project)
    name, source, origin = found.name, found.source, found.origin
    if found.files is None:
        return Adopted(project, str(source.version), name, str(source.version), new=False)
    try:
        client.create_registered_model(project, tags={"pave.managed": "true"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    for existing in client.search_model_versions(f"name = '{_quoted(project)}'"):
        if existing.tags.get(TAG_ADOPTED_FROM) == origin:
            return Adopted(project, str(existing.version), name, str(source.version), new=False)
    copy = _copy_into_project(project, origin, found.files, artifact_root)
    created = client.create_model_version(
        name=project,
        source=f"mlflow-artifacts:/{copy}",
        run_id=source.run_id,  # lineage: the run's parameters and metrics
        # the platform's own tags (approvals, authorship) are never carried over from elsewhere
        tags={
            **{k: v for k, v in source.tags.items() if not k.startswith("pave.")},
            TAG_ADOPTED_FROM: origin,
        },
        description=f"Adopted from the MLflow model {origin} (its files copied into the project)."
        + (f" {source.description}" if source.description else ""),
    )
    return Adopted(project, str(created.version), name, str(source.version), new=True)


def _check_outside_projects(project: str, name: str, is_project: Callable[[str], bool]) -> None:
    """Only a model of no project is adopted: another project's versions are deployed there (the
    request gate already refuses a model of no project whose version comes from a project's run)."""
    if is_project(name):
        raise Forbidden(
            f"MLflow model {name!r} belongs to project {name!r}; another project cannot adopt it",
            hint=f"deploy it in its own project: pave deploy {name} --version VERSION",
        )


def _files_key(client: Any, name: str, version: str, artifact_root: str) -> str:
    """Where the version's files lie, as a key of the platform's artifact store."""
    location = str(client.get_model_version_download_uri(name, version))
    if location.startswith("runs:/"):
        run_id, _, path = location.removeprefix("runs:/").partition("/")
        location = f"{client.get_run(run_id).info.artifact_uri.rstrip('/')}/{path}"
    key = key_under(artifact_root, location)
    if key is None:
        raise InvalidInput(
            f"the files of MLflow model {name} version {version} are at {location[:200]}, outside "
            "the platform's artifact store",
            hint="log the model through the platform (MLflow against /mlflow), then register it",
        )
    return key


def _copy_into_project(project: str, origin: str, files: str, artifact_root: str) -> str:
    """Copy the object tree under ``files`` into the project's experiment; the copy's key."""
    experiment_id, location = stores.project_experiment(project)
    folder = key_under(artifact_root, location) or experiment_id
    target = f"{folder}/adopted/{hashlib.sha256(origin.encode()).hexdigest()[:16]}"
    store = open_storage(artifact_root)
    copied = 0
    for item in store.list(f"{files}/"):
        store.put_stream(f"{target}/{item.key.removeprefix(files + '/')}", store.read(item.key))
        copied += 1
    if not copied:
        raise NotFound(
            f"the files of MLflow model {origin} are gone from {files}",
            hint="register the model again from a run that still has its files",
        )
    return target


def _quoted(value: str) -> str:
    return value.replace("'", "''")
