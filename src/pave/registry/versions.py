"""Registered model versions: register with lineage tags, aliases, the champion, listing."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from pave.errors import NotFound

CHAMPION = "champion"
CANDIDATE = "candidate"


@dataclass
class VersionSummary:
    """One model version, as ``pave models`` and the API show it."""

    name: str
    version: str
    aliases: list[str]
    run_id: str | None
    status: str
    source: str
    created: int
    tags: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _client(tracking_uri: str) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def register_version(
    client: Any, *, name: str, model_uri: str, run_id: str, model_id: str | None, tags: dict[str, str]
) -> Any:
    """Register the logged model as a new version of ``name`` (created on first use)."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(name, tags={"pave.managed": "true"})
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    return client.create_model_version(
        name=name, source=model_uri, run_id=run_id, tags=tags, model_id=model_id
    )


def aliased(client: Any, name: str, alias: str) -> Any | None:
    """The version of ``name`` with ``alias``, or None (also when the model does not exist)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def champion_metrics(client: Any, name: str) -> tuple[str, dict[str, float]] | None:
    """(version, metrics of its run) of the ``champion`` of ``name``, or None when there is none."""
    version = aliased(client, name, CHAMPION)
    if version is None:
        return None
    metrics: dict[str, float] = {}
    if version.run_id:
        metrics = dict(client.get_run(version.run_id).data.metrics)
    return str(version.version), metrics


def version_with_tag(client: Any, name: str, tag: str, value: str) -> Any | None:
    """The newest version of ``name`` whose tag ``tag`` is ``value``, or None."""
    found = client.search_model_versions(f"name = '{_quote(name)}' and tags.`{tag}` = '{_quote(value)}'")
    return max(found, key=lambda v: int(v.version), default=None)


def set_alias(name: str, alias: str, version: str, *, tracking_uri: str) -> None:
    """Point ``alias`` of model ``name`` at ``version``."""
    _client(tracking_uri).set_registered_model_alias(name, alias, str(version))


def list_model_versions(name: str, *, tracking_uri: str) -> list[VersionSummary]:
    """Every version of the registered model ``name``, newest first (empty when it does not exist)."""
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        aliases = client.get_registered_model(name).aliases or {}
    except MlflowException:
        return []
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(str(version), []).append(alias)
    versions = client.search_model_versions(f"name = '{_quote(name)}'")
    out = [
        VersionSummary(
            name=v.name,
            version=str(v.version),
            aliases=sorted(by_version.get(str(v.version), [])),
            run_id=v.run_id,
            status=v.status,
            source=v.source,
            created=v.creation_timestamp,
            tags=dict(v.tags or {}),
        )
        for v in versions
    ]
    return sorted(out, key=lambda v: int(v.version), reverse=True)


def get_version(name: str, version: str, *, tracking_uri: str) -> VersionSummary:
    """One version of ``name``.

    Raises:
        NotFound: no such model or version.
    """
    for item in list_model_versions(name, tracking_uri=tracking_uri):
        if item.version == str(version):
            return item
    raise NotFound(f"model {name} has no version {version}", hint=f"list them with `pave models {name}`")


def _quote(name: str) -> str:
    return name.replace("'", "\\'")
