"""Every generated project works: its own tests pass, its steps produce a model that passes its gates,
and its CI workflow and Backstage entry are valid against the public schemas."""

from __future__ import annotations

import importlib
import inspect
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema_rs
import mlflow.pyfunc
import pandas as pd
import pytest
import yaml

from pave.pipelines import StepContext
from pave.pipelines.spec import ProjectSpec
from pave.pipelines.spec_file import load_spec

SCHEMAS = Path(__file__).resolve().parents[2].parent / "shared" / "schemas"
PROJECT_MODULES = ("steps", "schema", "make_data")


def test_the_projects_own_tests_pass(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout


@pytest.fixture
def project_modules(project: Path) -> Iterator[None]:
    """Import the project's modules (steps, schema...) as `pave run` would: from its folder."""

    def forget() -> None:
        for name in PROJECT_MODULES:
            sys.modules.pop(name, None)

    forget()
    sys.path.insert(0, str(project))
    try:
        yield
    finally:
        sys.path.remove(str(project))
        forget()


def reference(ref: str) -> Any:
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


def run_steps(spec: ProjectSpec, project: Path) -> dict[str, Any]:
    """A by-hand run of the steps in pave.yaml order, as the spec describes the contract."""
    data = {}
    for source_name, source in spec.data.sources.items():
        frame = pd.read_csv(project / source.path)
        if source_name in spec.data.validated:
            frame = reference(spec.data.schema_ref).validate(frame)
        data[source_name] = frame
    outputs: dict[str, Any] = {}
    for step in spec.steps:
        function = reference(step.function)
        kwargs = {
            arg: data[ref.removeprefix("data.")] if ref.startswith("data.") else outputs[ref]
            for arg, ref in step.inputs.items()
        }
        kwargs.update(step.params)
        if "ctx" in inspect.signature(function).parameters:
            kwargs["ctx"] = StepContext(
                seed=spec.seed, project_dir=project, step=step.name, logger=logging.getLogger(step.name)
            )
        outputs[step.name] = function(**kwargs)
    return outputs


def test_the_steps_make_a_model_whose_metrics_pass_the_gates_every_time(
    project: Path, project_modules: None, tmp_path: Path
) -> None:
    spec = load_spec(project)
    assert spec.model is not None
    assert spec.metrics is not None
    outputs = run_steps(spec, project)
    metrics = outputs[spec.metrics.step]
    assert spec.metrics.primary in metrics
    assert all(isinstance(v, float) for v in metrics.values())
    absolute = [g for g in spec.gates if g.compare_to is None]
    assert absolute
    assert any(g.compare_to == "champion" for g in spec.gates)
    for gate in absolute:
        assert gate.metric in metrics, gate
        assert gate.min is None or metrics[gate.metric] >= gate.min, (gate, metrics)
        assert gate.max is None or metrics[gate.metric] <= gate.max, (gate, metrics)

    model = outputs[spec.model.step]
    example = outputs[spec.model.input_example_from]["X_test"].head(5)
    if spec.model.flavor == "sklearn":
        assert len(model.predict(example)) == 5
    else:
        assert spec.model.flavor == "pyfunc"
        assert isinstance(model, mlflow.pyfunc.PythonModel)
        mlflow.pyfunc.save_model(tmp_path / "model", python_model=model, input_example=example)
        loaded = mlflow.pyfunc.load_model(str(tmp_path / "model"))
        assert loaded.predict(example).shape[0] == 5

    again = run_steps(spec, project)
    assert again[spec.metrics.step] == metrics


def validator(schema: dict[str, Any]) -> jsonschema_rs.Draft7Validator:
    """A draft-7 validator resolving the Backstage schemas' relative ids from the local copies."""
    root = SCHEMAS / "backstage"
    by_id: dict[str, Any] = {}
    for path in root.rglob("*.schema.json"):
        content = json.loads(path.read_text())
        by_id[path.relative_to(root).as_posix()] = by_id[content["$id"]] = content

    def retrieve(uri: str) -> Any:
        key = uri.split("://", 1)[-1].removeprefix("backstage.io/")
        return by_id.get(key) or by_id[key.rsplit("/", 1)[-1]]

    return jsonschema_rs.Draft7Validator(schema, retriever=retrieve, base_uri="https://backstage.io/kinds/")


@pytest.fixture
def schemas() -> Path:
    if not SCHEMAS.is_dir():
        pytest.skip(f"the public schemas are not at {SCHEMAS} (they come with the shared/ folder)")
    return SCHEMAS


def errors(check: jsonschema_rs.Draft7Validator, document: Any) -> list[str]:
    return [f"{list(e.instance_path)}: {e.message}" for e in check.iter_errors(document)]


def test_the_workflow_is_a_valid_github_workflow_that_tests_and_runs(project: Path, schemas: Path) -> None:
    workflow = yaml.safe_load((project / ".github" / "workflows" / "pave.yml").read_text())
    workflow["on"] = workflow.pop(True)  # PyYAML 1.1 reads the key `on` as a boolean
    check = jsonschema_rs.Draft7Validator(json.loads((schemas / "github-workflow.json").read_text()))
    assert errors(check, workflow) == []
    assert "push" in workflow["on"]
    commands = [s.get("run", "") for job in workflow["jobs"].values() for s in job["steps"]]
    # Pave's wheel comes from the platform itself (its name on PyPI is another project's), then
    # the project; tests/e2e/test_ci_workflow.py runs these steps against a live platform.
    assert any("/api/v1/client/wheel" in c and "pip install" in c for c in commands)
    assert "python -m pytest -q" in commands
    assert "pave ci --comment pave-ci.md" in commands


def test_the_catalog_entry_is_a_valid_backstage_component(project: Path, schemas: Path) -> None:
    entity = yaml.safe_load((project / "catalog-info.yaml").read_text())
    kind = json.loads((schemas / "backstage" / "kinds" / "Component.v1alpha1.schema.json").read_text())
    assert errors(validator(kind), entity) == []
    assert entity["metadata"]["name"] == f"my-{project.name}"
    assert entity["spec"]["owner"] == "group:ml-team"
    assert entity["spec"]["type"] == "ml-model"


def test_the_schema_check_does_reject_a_broken_entry(schemas: Path) -> None:
    kind = json.loads((schemas / "backstage" / "kinds" / "Component.v1alpha1.schema.json").read_text())
    broken = {"apiVersion": "backstage.io/v1alpha1", "kind": "Component", "metadata": {"name": "x"}}
    assert errors(validator(kind), broken)
