"""After a run's steps: its metrics, and its model logged, gated, registered and given an alias.

:func:`run_metrics` takes the metrics step's dict (every value a number, the primary metric among
them). :func:`model_and_gates` evaluates the gates (against the champion where asked), logs the
model with its input example and global importances, and registers it as a new version tagged back
to the run; all gates pass -> alias ``candidate`` moves to it. A version that already holds the
same model (tag ``pave.model.key``: the model step's cache key, its flavor and the environment) is
reused when the model step was cached, so a no-op run registers nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pave.config import Settings
from pave.errors import InvalidInput, PaveError
from pave.pipelines.engine import PipelineResult
from pave.pipelines.mlflow_run import PROFILE_ARTIFACT
from pave.pipelines.modules import local_top_level_names
from pave.pipelines.spec import ProjectSpec
from pave.registry import flavors
from pave.registry.gates import all_passed, check_gate_metrics, evaluate_gates
from pave.registry.versions import CANDIDATE, champion_metrics, register_version, version_with_tag
from pave.tracking import lineage as L

if TYPE_CHECKING:
    from pave.pipelines.project import RunResult

GATES_ARTIFACT = "gates.json"
TAG_MODEL_KEY = "pave.model.key"  # on a model version: what makes two runs' models the same


def run_metrics(spec: ProjectSpec, pipeline: PipelineResult) -> dict[str, float]:
    """The steps' ``ctx.log_metric`` values and the metrics step's dict; every value a number, the
    primary metric among them (an InvalidInput naming the step otherwise)."""
    metrics = dict(pipeline.metrics)
    if spec.metrics is None:
        return metrics
    returned = pipeline.output(spec.metrics.step)
    if not isinstance(returned, Mapping):
        raise InvalidInput(
            f"metrics step {spec.metrics.step} returned a {type(returned).__name__}, not a dict of numbers",
            hint=f"make {spec.metrics.step} return e.g. {{'{spec.metrics.primary}': 0.91}}",
        )
    for key, value in returned.items():
        try:
            metrics[str(key)] = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(
                f"metrics step {spec.metrics.step}: metric {key} is {value!r}, not a number",
                hint="return only numbers in the metrics dict; log other things with ctx.logger",
            ) from exc
    if spec.metrics.primary not in metrics:
        raise InvalidInput(
            f"the primary metric {spec.metrics.primary} was not logged "
            f"(got: {', '.join(sorted(metrics)) or 'none'})",
            hint=f"return it from {spec.metrics.step}, or fix metrics.primary in pave.yaml",
        )
    return metrics


def model_and_gates(
    spec: ProjectSpec,
    pipeline: PipelineResult,
    client: Any,
    result: RunResult,
    register: bool,
    project: Path,
    settings: Settings,
) -> None:
    """Gate, log and (``register``) register the model step's output, filling ``result`` in: the
    gates, the model's URI, version and alias, warnings. No model in the spec: the gates pass."""
    import mlflow

    if spec.model is None:
        result.gates_passed = True
        return
    check_gate_metrics(spec.gates, result.metrics)
    name = spec.model_name
    champion = champion_metrics(client, name) if any(g.compare_to for g in spec.gates) else None
    direction = spec.metrics.direction if spec.metrics else "maximize"
    result.gates = evaluate_gates(
        spec.gates,
        result.metrics,
        direction=direction,
        champion=champion[1] if champion else None,
        champion_version=champion[0] if champion else None,
    )
    result.gates_passed = all_passed(result.gates)
    mlflow.log_dict(
        {"passed": result.gates_passed, "gates": [g.to_dict() for g in result.gates]}, GATES_ARTIFACT
    )
    mlflow.set_tag(L.TAG_GATES, "passed" if result.gates_passed else "failed")
    model_key = _model_key(spec, pipeline, result.env_hash)
    cached = pipeline.record(spec.model.step).status == "cached"  # the very output a version was made of
    same = version_with_tag(client, name, TAG_MODEL_KEY, model_key) if register and cached else None
    if same is not None:
        result.model_uri, result.reused = same.source, True
        result.warnings.append(
            f"nothing changed since version {same.version} (run {same.run_id}): no new version registered"
        )
        _set_version(client, result, name, str(same.version))
        return
    model = pipeline.output(spec.model.step)
    example = None
    if spec.model.input_example_from:
        example = flavors.input_example(pipeline.output(spec.model.input_example_from))
        if example is None:
            result.warnings.append(
                f"no input example found in the output of {spec.model.input_example_from} (see docs/spec.md)"
            )
    with _pickle_project_by_value(project):
        info = flavors.log_model(spec.model.flavor, model, example=example)
    result.model_uri = info.model_uri
    _log_importances(spec, pipeline, info.model_uri, result, settings)
    if not register:
        return
    run_id = result.run_id
    tags = {
        "pave.run_id": run_id,
        L.TAG_PROJECT: spec.name,
        L.TAG_ENV_HASH: result.env_hash,
        L.TAG_GATES: "passed" if result.gates_passed else "failed",
        "pave.profile": f"runs:/{run_id}/{PROFILE_ARTIFACT}",
        **{f"{L.TAG_DATA_PREFIX}{k}": v for k, v in result.data_versions.items()},
        **({L.TAG_GIT_COMMIT: result.git_commit} if result.git_commit else {}),
        **({L.TAG_GIT_DIRTY: str(result.git_dirty).lower()} if result.git_dirty is not None else {}),
        TAG_MODEL_KEY: model_key,
    }
    version = register_version(
        client, name=name, model_uri=info.model_uri, run_id=run_id, model_id=info.model_id, tags=tags
    )
    _set_version(client, result, name, str(version.version))


def _log_importances(
    spec: ProjectSpec, pipeline: PipelineResult, model_uri: str, result: RunResult, settings: Settings
) -> None:
    """Global importances (mean |SHAP| per feature) of the logged model on the reference sample."""
    import mlflow

    from pave.serving.attributions import IMPORTANCES_ARTIFACT, REFERENCE_ROWS, importances_of_uri

    source = spec.model.input_example_from if spec.model else None
    rows = flavors.input_example(pipeline.output(source), rows=REFERENCE_ROWS) if source else None
    if rows is None:
        return
    try:
        found = importances_of_uri(
            model_uri,
            rows,
            tracking_uri=mlflow.get_tracking_uri(),
            home=settings.home,
            envs_dir=settings.envs_dir,
        )
    except (PaveError, ValueError, TypeError) as exc:  # a model SHAP cannot explain still registers
        result.warnings.append(f"no global importances: {exc}")
        return
    mlflow.log_dict(found, IMPORTANCES_ARTIFACT)


def _set_version(client: Any, result: RunResult, name: str, version: str) -> None:
    """Link the run to its model version; the gates passed -> alias ``candidate`` on it."""
    import mlflow

    result.model_name, result.model_version = name, version
    mlflow.set_tags({L.TAG_MODEL_NAME: name, L.TAG_MODEL_VERSION: version})
    if result.gates_passed:
        client.set_registered_model_alias(name, CANDIDATE, version)
        result.alias = CANDIDATE


def _model_key(spec: ProjectSpec, pipeline: PipelineResult, env_hash: str) -> str:
    """What makes two runs' models the same: the model step's cache key (its code, params, seed and
    inputs), where its input example comes from, its flavor and the environment it pins."""
    assert spec.model is not None
    example = spec.model.input_example_from
    payload = {
        "model": pipeline.record(spec.model.step).key,
        "example": pipeline.record(example).key if example else None,
        "flavor": spec.model.flavor,
        "env": env_hash,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


@contextmanager
def _pickle_project_by_value(project: Path) -> Iterator[None]:
    """Pickle the project's own classes (a PythonModel in steps.py) into the model, not by reference."""
    import sys

    import cloudpickle

    local = local_top_level_names(project)
    modules = [m for n, m in list(sys.modules.items()) if n.partition(".")[0] in local and m is not None]
    registered = []
    for module in modules:
        try:
            cloudpickle.register_pickle_by_value(module)
            registered.append(module)
        except ValueError:
            continue
    try:
        yield
    finally:
        for module in registered:
            cloudpickle.unregister_pickle_by_value(module)
