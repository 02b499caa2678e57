"""What the gateway serves: deployments, and the sources it polls them from.

A deployment is an OIP model name with one or more model versions and their traffic weights, an
optional sticky key, an optional shadow version and an optional idle time before scale-to-zero.

The gateway learns about deployments from a ``DeploymentSource``: an object with a cheap
``version()`` counter, polled about twice a second, and ``deployments()``, read when the counter
changes. Two sources live here: ``StaticDeployments`` (in memory; tests, embedding) and
``JsonFileDeployments`` (``pave serve --deployments FILE``). The store-backed source implements
the same two methods over the deployments table.

The JSON file::

    {"deployments": [
      {"name": "churn",
       "versions": [{"version": "3", "uri": "models:/churn/3", "weight": 90},
                    {"version": "4", "uri": "models:/churn/4", "weight": 10}],
       "sticky": "x-user-id",
       "shadow": {"version": "5", "uri": "models:/churn/5"},
       "scale_to_zero_after": 600}
    ]}
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import orjson

from pave.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ModelRef:
    """One model version of a deployment: the OIP version string, where the model is, its weight."""

    version: str
    uri: str
    weight: float = 1.0


@dataclass(frozen=True, slots=True)
class Deployment:
    """One OIP model name and how its traffic is split.

    Attributes:
        name: the model name clients use (``/v2/models/{name}/infer``).
        versions: the versions taking traffic, with their weights (relative, need not sum to 100).
        sticky: a request header (or request ``parameters`` key) whose value pins a caller to one
            version; requests without it are spread by weight.
        shadow: a version that gets a copy of every request after the answer; its answers are only
            logged.
        scale_to_zero_after: seconds without a request after which the versions are unloaded; the
            next request loads them again.
    """

    name: str
    versions: tuple[ModelRef, ...]
    sticky: str | None = None
    shadow: ModelRef | None = None
    scale_to_zero_after: float | None = None

    def refs(self) -> list[ModelRef]:
        """Every version the gateway must be able to call, the shadow included."""
        return [*self.versions, *([self.shadow] if self.shadow else [])]


@runtime_checkable
class DeploymentSource(Protocol):
    """Where a gateway reads its deployments; both methods may block (they run in a thread)."""

    def version(self) -> int:
        """A counter that changes whenever the deployments change; cheap, polled often."""
        ...

    def deployments(self) -> list[Deployment]:
        """The current deployments."""
        ...


class StaticDeployments:
    """Deployments held in memory; ``set`` replaces them and bumps the version."""

    def __init__(self, deployments: Iterable[Deployment] = ()) -> None:
        self._lock = threading.Lock()
        self._deployments = list(deployments)
        self._version = 1

    def version(self) -> int:
        return self._version

    def deployments(self) -> list[Deployment]:
        with self._lock:
            return list(self._deployments)

    def set(self, deployments: Iterable[Deployment]) -> None:
        with self._lock:
            self._deployments = list(deployments)
            self._version += 1


class JsonFileDeployments:
    """Deployments read from a JSON file; the version is the file's modification time and size."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def version(self) -> int:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return 0
        return hash((stat.st_mtime_ns, stat.st_size, stat.st_ino)) & (2**62 - 1)

    def deployments(self) -> list[Deployment]:
        try:
            doc = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            raise ConfigError(
                f"deployments file {self.path} does not exist", hint="check the --deployments path"
            ) from None
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"deployments file {self.path} is not valid JSON: {exc}") from None
        return parse_deployments(doc, origin=str(self.path))


def parse_deployments(doc: Any, *, origin: str = "deployments") -> list[Deployment]:
    """Deployments from their JSON form (see the module docstring).

    Raises:
        ConfigError: a field is missing or has the wrong type; the message names it.
    """
    items = doc.get("deployments") if isinstance(doc, Mapping) else doc
    if not isinstance(items, list):
        raise ConfigError(f"{origin}: expected a list under 'deployments'")
    out: list[Deployment] = []
    names: set[str] = set()
    for i, item in enumerate(items):
        where = f"{origin}: deployments[{i}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str) or not item["name"]:
            raise ConfigError(f"{where} needs a 'name'")
        name = item["name"]
        if name in names:
            raise ConfigError(f"{where}: deployment '{name}' appears twice")
        names.add(name)
        raw_versions = item.get("versions")
        if not isinstance(raw_versions, list) or not raw_versions:
            raise ConfigError(f"{where} ('{name}') needs a non-empty 'versions' list")
        versions = tuple(_ref(v, f"{where}.versions[{j}]") for j, v in enumerate(raw_versions))
        if len({v.version for v in versions}) != len(versions):
            raise ConfigError(f"{where} ('{name}') lists a version twice")
        if sum(v.weight for v in versions) <= 0:
            raise ConfigError(f"{where} ('{name}'): the weights add up to zero")
        shadow = _ref(item["shadow"], f"{where}.shadow") if item.get("shadow") else None
        sticky = item.get("sticky")
        if sticky is not None and not isinstance(sticky, str):
            raise ConfigError(f"{where}.sticky must be a header or parameter name")
        idle = item.get("scale_to_zero_after")
        if idle is not None and (not isinstance(idle, int | float) or idle <= 0):
            raise ConfigError(f"{where}.scale_to_zero_after must be a positive number of seconds")
        out.append(
            Deployment(
                name=name,
                versions=versions,
                sticky=sticky or None,
                shadow=shadow,
                scale_to_zero_after=float(idle) if idle is not None else None,
            )
        )
    return out


def _ref(item: Any, where: str) -> ModelRef:
    if not isinstance(item, Mapping) or item.get("version") is None or not isinstance(item.get("uri"), str):
        raise ConfigError(f"{where} needs a 'version' and a 'uri'")
    weight = item.get("weight", 1.0)
    if not isinstance(weight, int | float) or weight < 0:
        raise ConfigError(f"{where}.weight must be a number >= 0")
    return ModelRef(version=str(item["version"]), uri=item["uri"], weight=float(weight))
