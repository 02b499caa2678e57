"""Which project a request concerns, and which items of a listing a caller may see.

Convention: a project's MLflow experiment and its registered model are both named after the
project (the golden path also tags runs and versions with ``pave.project``). So:

- Pave routes ``/api/v1/projects/{name}/...`` and portal pages ``/projects/{name}/...`` concern
  ``name``; ``POST /api/v1/projects`` the
  name in the body;
- MLflow registry routes (``registered-models/*``, ``model-versions/*``) concern the project of
  the model ``name`` (and ``new_name`` on rename): the name itself, or for a name with a dot the
  part before the first dot (:func:`registry_project`: prompts are named ``<project>.<prompt>``;
  project names have no dots);
- MLflow tracking routes concern the experiment they name: ``experiment_id`` (or
  ``experiment_name`` / ``name`` when creating), or the experiment of the ``run_id`` /
  ``model_id`` (logged model) they name;
- artifact routes concern the experiment whose id is the first segment of the artifact path
  (every artifact location is ``mlflow-artifacts:/<experiment id>/...``);
- searches concern no project: their answers are filtered item by item (:func:`filter_listing`).

A request whose project cannot be told is *unresolved*, and the gate denies it unless the
permission table declares its route global (:func:`pave.governance.permissions.is_global`).
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
_PAVE_PROJECT = re.compile(r"(?:/api/v1)?/projects/(?P<name>[^/]+)(?:/.*)?")  # API and portal pages
# MLflow's routes outside its REST API that still name an object: the endpoint they stand for.
_UI_ENDPOINTS = {
    "/mlflow/get-artifact": "get-artifact",
    "/mlflow/model-versions/get-artifact": "model-versions/get-artifact",
}
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
        "issues/search",  # without an experiment_id MLflow searches every experiment's issues
    }
)
_NAMED_BY_MODEL = ("registered-models/", "model-versions/")
# MLflow endpoints whose fields name the project itself (an experiment or a registered model is
# named after its project): endpoint pattern -> the fields, each a project the request concerns.
# Every other endpoint's project is found from the ids it names (experiment, run, logged model,
# trace, dataset, issue...), each looked up in MLflow's store; one that names none is unresolved.
NAMED_BY: tuple[tuple[re.Pattern[str], tuple[str, ...]], ...] = (
    (re.compile(r"(registered-models|model-versions)/.*"), ("name", "new_name")),  # and renames
    (re.compile(r"experiments/create"), ("name",)),
    (re.compile(r"experiments/update"), ("new_name",)),  # a rename lands in the new name's project
    (re.compile(r"experiments/get-by-name"), ("experiment_name",)),
)
GRAPHQL_PATH = "/mlflow/graphql"
# GenAI objects that belong to experiments: (kind, keys naming one, path pattern naming one).
_OBJECT_KEYS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("trace", ("trace_id", "traceId", "trace_ids", "traceIds")),
    ("dataset", ("dataset_id", "datasetId")),
    ("issue", ("issue_id", "issueId")),
    ("review_queue", ("queue_id", "queueId")),
    ("label_schema", ("schema_id", "schemaId")),
)
_OBJECT_PATHS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "trace",
        re.compile(
            r"traces/(?!(?:search|batchGet|batchGetInfos|get|delete-traces|link-prompts|link-to-run"
            r"|metrics|calculate-filter-correlation)(?:/|$))(?P<id>[^/]+)(?:/.*)?"
        ),
    ),
    ("dataset", re.compile(r"datasets/(?!(?:search|create)(?:/|$))(?P<id>[^/]+)(?:/.*)?")),
    ("issue", re.compile(r"issues/(?!(?:search|invoke)(?:/|$))(?P<id>[^/]+)(?:/.*)?")),
)
# MLflow's v2 trace routes call a trace id ``request_id``.
_TRACE_REQUEST_ID = ("traces", "get-trace-artifact", "get-online-trace-details")
_RUN_KEYS = ("run_id", "run_uuid", "runId", "runUuid")
_RUN_LIST_KEYS = ("run_ids", "runIds")
_EXPERIMENT_KEYS = ("experiment_id", "experimentId")
_EXPERIMENT_LIST_KEYS = ("experiment_ids", "experimentIds")


class Lookup(Protocol):
    """Answers from MLflow's stores (None when the object does not exist)."""

    def experiment_name(self, experiment_id: str) -> str | None: ...

    def run_experiment(self, run_id: str) -> str | None: ...

    def logged_model_experiment(self, model_id: str) -> str | None: ...

    def object_experiments(self, kind: str, object_id: str) -> list[str]:
        """The experiments of a trace, dataset, issue, review queue or label schema ([] if none)."""
        ...


@dataclass
class RequestScope:
    """The projects (and, for the audit trail, model and run) one request concerns."""

    projects: list[str] = field(default_factory=list)
    model: str | None = None
    run_id: str | None = None
    experiment_ids: list[str] = field(default_factory=list)
    unresolved: bool = False
    search: str | None = None  # the search endpoint, when the answer is a listing to filter
    graphql: dict[str, Any] | None = None  # the GraphQL request, whose answer is filtered
    graphql_args: list[dict[str, Any]] = field(default_factory=list)  # its fields' arguments

    @property
    def project(self) -> str | None:
        return self.projects[0] if self.projects else None

    def add(self, name: str | None) -> None:
        if name and name not in self.projects:
            self.projects.append(name)


def registry_project(name: str) -> str:
    """The project a registered model or prompt belongs to: ``churn`` for ``churn`` and ``churn.greeting``.

    A project's own model carries its name; its prompts (and any other registered name of it) are
    ``<project>.<name>``. Project names have no dots, so the part before the first dot is the project.
    """
    return name.split(".", 1)[0] if "." in name.strip(".") else name


def mlflow_endpoint(path: str) -> str | None:
    """``runs/log-metric`` for ``/mlflow/api/2.0/mlflow/runs/log-metric``; None elsewhere."""
    match = _MLFLOW_API.fullmatch(path)
    return match["endpoint"] if match else None


def endpoint_of(path: str) -> str | None:
    """The MLflow endpoint a path stands for, its routes outside the REST API included."""
    return mlflow_endpoint(path) or _UI_ENDPOINTS.get(path)


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


def collect_values(data: Any, keys: Iterable[str]) -> list[str]:
    """Every string value of ``keys`` anywhere in ``data``."""
    out: list[str] = []
    _collect(data, tuple(keys), out)
    return out


def resolve(
    path: str, params: dict[str, Any], body: Any, lookup: Lookup, *, method: str = "GET"
) -> RequestScope:
    """The scope of a ``method`` request to ``path`` with query ``params`` and JSON ``body`` (or None)."""
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
    if path == GRAPHQL_PATH:
        # Ids may sit in the variables (found below) or inline in the query text.
        scope.search = "graphql"
        scope.graphql = body if isinstance(body, dict) else None
        scope.graphql_args = graphql_arguments(body) or []
        values["pave.graphql"] = scope.graphql_args

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

    endpoint = endpoint_of(path)
    # (``POST traces`` starts a trace in an experiment; ``GET traces`` searches them.)
    if endpoint in SEARCH_ENDPOINTS and not (endpoint == "traces" and method == "POST"):
        scope.search = endpoint
        return scope
    for pattern, keys in NAMED_BY:
        if endpoint is not None and pattern.fullmatch(endpoint):
            names = [_first(values, (key,)) for key in keys]
            if endpoint.startswith(_NAMED_BY_MODEL):
                scope.model = names[0]
                names = [registry_project(name) if name else None for name in names]
            for name in names:
                scope.add(name)
            break

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
    objects = _object_ids(endpoint or "", path, values)
    for kind, object_id in objects:
        experiment_ids.extend(lookup.object_experiments(kind, object_id))
    for experiment_id in experiment_ids:
        if experiment_id not in scope.experiment_ids:
            scope.experiment_ids.append(experiment_id)
            scope.add(lookup.experiment_name(experiment_id))
    if not scope.projects and not (run_ids or model_ids or experiment_ids or objects):
        scope.unresolved = True
    return scope


def source_owners(source: str, lookup: Lookup) -> list[str] | None:
    """The names (experiments, registered models) whose data a model version's ``source`` reads.

    ``runs:/<run>/...`` reads the run's experiment, ``mlflow-artifacts:/<experiment id>/...`` that
    experiment's folder, ``models:/<name>/...`` the registered model, ``models:/<model id>`` the
    logged model's experiment. None when the source names nothing that can be told (fail closed).
    """
    from pave.tracking.stores import parse_model_uri

    scheme, _, rest = source.partition(":")
    rest = rest.lstrip("/")
    experiment: str | None = None
    if scheme == "runs":
        experiment = lookup.run_experiment(rest.split("/", 1)[0])
    elif scheme == "mlflow-artifacts":
        first = rest.split("/", 1)[0]
        experiment = first if first.isdigit() else None
    elif scheme == "models":
        parsed = parse_model_uri(source)
        if parsed is not None and parsed.name:
            return [registry_project(parsed.name)]
        if parsed is not None and parsed.model_id:
            experiment = lookup.logged_model_experiment(parsed.model_id)
    name = lookup.experiment_name(experiment) if experiment is not None else None
    return [name] if name is not None else None


def _object_ids(endpoint: str, path: str, values: dict[str, Any]) -> list[tuple[str, str]]:
    """The GenAI objects (traces, datasets, issues, review queues, label schemas) a request names."""
    found: list[tuple[str, str]] = []
    for kind, keys in _OBJECT_KEYS:
        ids: list[str] = []
        _collect(values, keys, ids)
        if kind == "trace" and endpoint.startswith(_TRACE_REQUEST_ID):
            _collect(values, ("request_id",), ids)
        found.extend((kind, i) for i in ids)
    for kind, pattern in _OBJECT_PATHS:
        match = pattern.fullmatch(endpoint)
        if match and (kind, unquote(match["id"])) not in found:
            found.append((kind, unquote(match["id"])))
    return found[:1000]


def graphql_arguments(document: Any) -> list[dict[str, Any]] | None:
    """The arguments of every field of a GraphQL request, variables substituted (None: unparsable)."""
    from graphql import GraphQLError, parse
    from graphql.language import FieldNode, Visitor, visit
    from graphql.utilities import value_from_ast_untyped

    if not isinstance(document, dict) or not isinstance(document.get("query"), str):
        return None
    given = document.get("variables")
    variables = given if isinstance(given, dict) else {}
    try:
        tree = parse(document["query"], no_location=True)
    except GraphQLError:
        return None
    found: list[dict[str, Any]] = []

    class _Arguments(Visitor):
        def enter_field(self, node: FieldNode, *_: Any) -> None:
            for argument in node.arguments or ():
                found.append({argument.name.value: value_from_ast_untyped(argument.value, variables)})

    visit(tree, _Arguments())
    return found


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

    Experiments carry their project in ``name``, registered models (prompts included) and model
    versions in their ``name`` too (:func:`registry_project`); runs,
    logged models, traces and datasets carry an experiment id. An item whose project cannot
    be told is dropped (fail closed). Pagination tokens are kept: a page may come back shorter.
    """
    by_name = search in ("experiments/search", "registered-models/search", "model-versions/search")
    registry = search != "experiments/search"
    names: dict[str, str | None] = {}

    def project_of(item: Any) -> str | None:
        if search == "datasets/search":  # an evaluation dataset belongs to every experiment it names
            dataset_id = item.get("dataset_id") if isinstance(item, dict) else None
            projects = {
                names.setdefault(e, lookup.experiment_name(e))
                for e in (
                    lookup.object_experiments("dataset", dataset_id) if isinstance(dataset_id, str) else []
                )
            }
            return projects.pop() if len(projects) == 1 else None
        if by_name:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(name, str):
                return None
            return registry_project(name) if registry else name
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


def filter_graphql(
    document: dict[str, Any] | None,
    answer: dict[str, Any],
    sees: Callable[[str | None], bool],
    lookup: Lookup,
) -> dict[str, Any]:
    """Drop from a GraphQL answer every model version and dataset of a project the caller may not see.

    Reads by id (runs, experiments, artifacts, metrics) and run searches are authorised before
    the query runs, by the ids in its arguments. What a query can list without naming ids is
    filtered here, walking the query and the answer together (aliases and fragments included):
    ``modelVersions`` by their ``name``, ``datasetSummaries`` by their ``experimentId``. An item
    whose project the query did not select is dropped; an answer to a query that cannot be
    read is withheld.
    """
    from graphql import GraphQLError, parse
    from graphql.language import FragmentDefinitionNode, OperationDefinitionNode

    data = answer.get("data")
    if not isinstance(data, dict):
        return answer
    try:
        tree = parse(str((document or {}).get("query")), no_location=True)
    except GraphQLError:
        return {"data": None, "errors": ["the query could not be read"]}
    fragments = {d.name.value: d for d in tree.definitions if isinstance(d, FragmentDefinitionNode)}
    operations = [d for d in tree.definitions if isinstance(d, OperationDefinitionNode)]
    wanted = (document or {}).get("operationName")
    chosen = [o for o in operations if wanted is None or (o.name is not None and o.name.value == wanted)]
    if len(chosen) != 1:
        return {"data": None, "errors": ["name one operation with operationName"]}
    names: dict[str, str | None] = {}

    def experiment_project(experiment_id: Any) -> str | None:
        if not isinstance(experiment_id, str | int):
            return None
        key = str(experiment_id)
        if key not in names:
            names[key] = lookup.experiment_name(key)
        return names[key]

    _walk(chosen[0].selection_set, data, fragments, sees, experiment_project, 0)
    return answer


# A list field of MLflow's GraphQL schema -> the field of its items that tells their project
# (a model version's ``name`` is its project; a dataset summary's ``experimentId`` leads to it).
_GRAPHQL_LISTS = {"modelVersions": "name", "datasetSummaries": "experimentId"}


def _fields(selection_set: Any, fragments: dict[str, Any], depth: int = 0) -> list[Any]:
    from graphql.language import FieldNode, FragmentSpreadNode, InlineFragmentNode

    out: list[Any] = []
    if selection_set is None or depth > 20:
        return out
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            out.append(selection)
        elif isinstance(selection, InlineFragmentNode):
            out.extend(_fields(selection.selection_set, fragments, depth + 1))
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value in fragments:
            out.extend(_fields(fragments[selection.name.value].selection_set, fragments, depth + 1))
    return out


def _item_project(raw: Any, marker: str, experiment_project: Callable[[Any], str | None]) -> str | None:
    if marker == "experimentId":
        return experiment_project(raw)
    return registry_project(raw) if isinstance(raw, str) else None


def _walk(
    selection_set: Any,
    value: Any,
    fragments: dict[str, Any],
    sees: Callable[[str | None], bool],
    experiment_project: Callable[[Any], str | None],
    depth: int,
) -> None:
    if depth > 30:
        return
    if isinstance(value, list):
        for item in value:
            _walk(selection_set, item, fragments, sees, experiment_project, depth + 1)
        return
    if not isinstance(value, dict):
        return
    for node in _fields(selection_set, fragments):
        key = node.alias.value if node.alias else node.name.value
        child = value.get(key)
        marker = _GRAPHQL_LISTS.get(node.name.value)
        if marker is not None and isinstance(child, list):
            inner = _fields(node.selection_set, fragments)
            named = [f.alias.value if f.alias else f.name.value for f in inner if f.name.value == marker]

            child = value[key] = [
                item
                for item in child
                if named
                and isinstance(item, dict)
                and sees(_item_project(item.get(named[0]), marker, experiment_project))
            ]
        if node.selection_set is not None:
            _walk(node.selection_set, child, fragments, sees, experiment_project, depth + 1)


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
        self._experiments: dict[str, Any] = {}

    def _tracking(self) -> Any:
        from pave.tracking import stores

        return stores.tracking_store()

    def _experiment(self, experiment_id: str) -> Any:
        if experiment_id not in self._experiments:
            try:
                self._experiments[experiment_id] = self._tracking().get_experiment(experiment_id)
            except Exception:
                self._experiments[experiment_id] = None
        return self._experiments[experiment_id]

    def experiment_name(self, experiment_id: str) -> str | None:
        experiment = self._experiment(experiment_id)
        return str(experiment.name) if experiment is not None else None

    def experiment_location(self, experiment_id: str) -> str | None:
        """Where the experiment keeps its artifacts (None: no such experiment)."""
        experiment = self._experiment(experiment_id)
        return str(experiment.artifact_location) if experiment is not None else None

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

    def object_experiments(self, kind: str, object_id: str) -> list[str]:
        store = self._tracking()
        try:
            if kind == "dataset":
                return [str(e) for e in store.get_dataset_experiment_ids(object_id)]
            getter = {
                "trace": store.get_trace_info,
                "issue": store.get_issue,
                "review_queue": store.get_review_queue,
                "label_schema": store.get_label_schema,
            }[kind]
            experiment_id = getter(object_id).experiment_id
        except Exception:  # no such object: MLflow answers that
            return []
        return [str(experiment_id)] if experiment_id is not None else []
