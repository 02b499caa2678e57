"""Which project a request concerns, and which items of a listing a caller may see.

Convention: a project's MLflow experiment and its registered model are both named after the
project (the golden path also tags runs and versions with ``pave.project``). So:

- Pave routes ``/api/v1/projects/{name}/...`` concern ``name``; ``POST /api/v1/projects`` the
  name in the body;
- MLflow registry routes (``registered-models/*``, ``model-versions/*``) concern the model
  ``name`` (and ``new_name`` on rename);
- MLflow tracking routes concern the experiment they name: ``experiment_id`` (or
  ``experiment_name`` / ``name`` when creating), or the experiment of the ``run_id`` /
  ``model_id`` (logged model) they name;
- artifact routes concern the experiment whose id is the first segment of the artifact path
  (every artifact location is ``mlflow-artifacts:/<experiment id>/...``);
- searches concern no project: their answers are filtered item by item (:func:`filter_listing`).

A request whose project cannot be told is *unresolved*; the caller decides (Pave refuses it to
project-scoped tokens).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import unquote

_MLFLOW_API = re.compile(r"/mlflow/(?:ajax-)?api/[23]\.0/?mlflow/(?P<endpoint>.+)")
_ARTIFACTS = re.compile(
    r"/mlflow/(?:ajax-)?api/2\.0/mlflow-artifacts/(?:artifacts|presigned|mpu/[a-z]+)(?:/(?P<path>.*))?"
)
_PAVE_PROJECT = re.compile(r"/api/v1/projects/(?P<name>[^/]+)(?:/.*)?")
_LOGGED_MODEL = re.compile(r"logged-models/(?P<id>[^/]+)(?:/.*)?")

# MLflow routes that concern no project at all: the UI shell and server metadata.
GLOBAL_MLFLOW = re.compile(
    r"/mlflow/?|/mlflow/(static-files|build)/.*|/mlflow/(health|version)"
    r"|/mlflow/(?:ajax-)?api/[23]\.0/mlflow/(server-info|ui-telemetry)"
)
SEARCH_ENDPOINTS = frozenset(
    {
        "experiments/search",
        "runs/search",
        "registered-models/search",
        "model-versions/search",
        "logged-models/search",
        "experiments/search-datasets",
        "datasets/search",
        "traces",
        "unified-traces",
    }
)
_NAMED_BY_MODEL = ("registered-models/", "model-versions/")
_RUN_KEYS = ("run_id", "run_uuid", "runId", "runUuid")
_RUN_LIST_KEYS = ("run_ids", "runIds")
_EXPERIMENT_KEYS = ("experiment_id", "experimentId")
_EXPERIMENT_LIST_KEYS = ("experiment_ids", "experimentIds")


class Lookup(Protocol):
    """Answers from MLflow's stores (None when the object does not exist)."""

    def experiment_name(self, experiment_id: str) -> str | None: ...

    def run_experiment(self, run_id: str) -> str | None: ...

    def logged_model_experiment(self, model_id: str) -> str | None: ...


@dataclass
class RequestScope:
    """The projects (and, for the audit trail, model and run) one request concerns."""

    projects: list[str] = field(default_factory=list)
    model: str | None = None
    run_id: str | None = None
    experiment_ids: list[str] = field(default_factory=list)
    unresolved: bool = False
    search: str | None = None  # the search endpoint, when the answer is a listing to filter

    @property
    def project(self) -> str | None:
        return self.projects[0] if self.projects else None

    def add(self, name: str | None) -> None:
        if name and name not in self.projects:
            self.projects.append(name)


def mlflow_endpoint(path: str) -> str | None:
    """``runs/log-metric`` for ``/mlflow/api/2.0/mlflow/runs/log-metric``; None elsewhere."""
    match = _MLFLOW_API.fullmatch(path)
    return match["endpoint"] if match else None


def artifact_path(path: str) -> str | None:
    """The artifact path of an ``mlflow-artifacts`` route (``""`` for the root), None elsewhere."""
    match = _ARTIFACTS.fullmatch(path)
    if match is None:
        return None
    return match["path"] or ""


def _first(values: dict[str, Any], keys: Iterable[str]) -> str | None:
    for key in keys:
        value = values.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if isinstance(value, str | int) and str(value):
            return str(value)
    return None


def _collect(data: Any, keys: Iterable[str], out: list[str], depth: int = 0) -> None:
    """Every string value of ``keys`` anywhere in ``data`` (GraphQL variables nest them)."""
    if depth > 6:
        return
    if isinstance(data, dict):
        for key, value in data.items():
            if key in keys:
                for item in value if isinstance(value, list) else [value]:
                    if isinstance(item, str | int) and str(item) not in out:
                        out.append(str(item))
            else:
                _collect(value, keys, out, depth + 1)
    elif isinstance(data, list):
        for item in data[:1000]:
            _collect(item, keys, out, depth + 1)


def resolve(path: str, params: dict[str, Any], body: Any, lookup: Lookup) -> RequestScope:
    """The scope of a request to ``path`` with query ``params`` and JSON ``body`` (or None)."""
    scope = RequestScope()
    values: dict[str, Any] = dict(params)
    if isinstance(body, dict):
        values.update(body)

    match = _PAVE_PROJECT.fullmatch(path)
    if match:
        scope.add(unquote(match["name"]))
        return scope
    if path.startswith("/api/") or not path.startswith("/mlflow"):
        if path == "/api/v1/projects" and isinstance(values.get("name"), str):
            scope.add(values["name"])
        return scope
    if GLOBAL_MLFLOW.fullmatch(path):
        return scope

    art = artifact_path(path)
    if art is not None:
        art = art or str(values.get("path") or "")
        first = art.strip("/").split("/", 1)[0]
        if first.isdigit():
            scope.experiment_ids.append(first)
            scope.add(lookup.experiment_name(first))
        if not scope.projects:
            scope.unresolved = True
        return scope

    endpoint = mlflow_endpoint(path)
    if endpoint in SEARCH_ENDPOINTS:
        scope.search = endpoint
        return scope
    if endpoint is not None and endpoint.startswith(_NAMED_BY_MODEL):
        name = _first(values, ("name",))
        scope.model = name
        scope.add(name)
        scope.add(_first(values, ("new_name",)))
    elif endpoint in ("experiments/create",):
        scope.add(_first(values, ("name",)))
    elif endpoint == "experiments/get-by-name":
        scope.add(_first(values, ("experiment_name",)))

    experiment_ids: list[str] = []
    run_ids: list[str] = []
    _collect(values, (*_EXPERIMENT_KEYS, *_EXPERIMENT_LIST_KEYS), experiment_ids)
    _collect(values, (*_RUN_KEYS, *_RUN_LIST_KEYS), run_ids)
    model_match = _LOGGED_MODEL.fullmatch(endpoint or "")
    model_ids = [model_match["id"]] if model_match and model_match["id"] != "search" else []
    _collect(values, ("model_id", "modelId"), model_ids)
    scope.run_id = run_ids[0] if run_ids else None
    for run_id in run_ids:
        experiment_id = lookup.run_experiment(run_id)
        if experiment_id is None:
            continue
        experiment_ids.append(experiment_id)
    for model_id in model_ids:
        experiment_id = lookup.logged_model_experiment(model_id)
        if experiment_id is not None:
            experiment_ids.append(experiment_id)
    for experiment_id in experiment_ids:
        if experiment_id not in scope.experiment_ids:
            scope.experiment_ids.append(experiment_id)
            scope.add(lookup.experiment_name(experiment_id))
    if not scope.projects and not (run_ids or model_ids or experiment_ids):
        scope.unresolved = True
    return scope


def _find_experiment(item: Any, depth: int = 0) -> str | None:
    if depth > 4 or not isinstance(item, dict):
        return None
    for key in _EXPERIMENT_KEYS:
        if isinstance(item.get(key), str | int):
            return str(item[key])
    for value in item.values():
        if isinstance(value, dict):
            found = _find_experiment(value, depth + 1)
            if found is not None:
                return found
    return None


def filter_listing(
    search: str, answer: dict[str, Any], sees: Callable[[str | None], bool], lookup: Lookup
) -> dict[str, Any]:
    """Drop from an MLflow search answer every item of a project the caller may not see.

    Experiments, registered models and model versions carry their project in ``name``; runs,
    logged models, traces and datasets carry an experiment id. An item whose project cannot
    be told is dropped (fail closed). Pagination tokens are kept: a page may come back shorter.
    """
    by_name = search in ("experiments/search", "registered-models/search", "model-versions/search")
    names: dict[str, str | None] = {}

    def project_of(item: Any) -> str | None:
        if by_name:
            name = item.get("name") if isinstance(item, dict) else None
            return name if isinstance(name, str) else None
        experiment_id = _find_experiment(item)
        if experiment_id is None:
            return None
        if experiment_id not in names:
            names[experiment_id] = lookup.experiment_name(experiment_id)
        return names[experiment_id]

    out: dict[str, Any] = {}
    for key, value in answer.items():
        if isinstance(value, list) and all(isinstance(v, dict) for v in value):
            out[key] = [item for item in value if sees(project_of(item))]
        else:
            out[key] = value
    return out


def filter_pave_listing(path: str, answer: Any, sees: Callable[[str | None], bool]) -> Any:
    """Filter a Pave listing (a JSON list): projects by ``name``, other items by ``project``."""
    if not isinstance(answer, list):
        return answer
    key = "name" if path == "/api/v1/projects" else "project"
    return [
        item
        for item in answer
        if not isinstance(item, dict)
        or key not in item
        or sees(item[key] if isinstance(item[key], str) else None)
    ]


class StoreLookup:
    """A :class:`Lookup` on the embedded MLflow's own stores (blocking: call off the event loop)."""

    def __init__(self) -> None:
        self._experiments: dict[str, str | None] = {}

    def _tracking(self) -> Any:
        from mlflow.server import handlers

        return handlers._get_tracking_store()

    def experiment_name(self, experiment_id: str) -> str | None:
        if experiment_id not in self._experiments:
            try:
                self._experiments[experiment_id] = self._tracking().get_experiment(experiment_id).name
            except Exception:
                self._experiments[experiment_id] = None
        return self._experiments[experiment_id]

    def run_experiment(self, run_id: str) -> str | None:
        try:
            return str(self._tracking().get_run(run_id).info.experiment_id)
        except Exception:
            return None

    def logged_model_experiment(self, model_id: str) -> str | None:
        try:
            return str(self._tracking().get_logged_model(model_id).experiment_id)
        except Exception:
            return None
