"""Reading ``pave.yaml``: :func:`load_spec`, every problem named with its line and its fix.

:func:`load_spec` (and :func:`parse_spec`, for text) turns every problem into one
:class:`~pave.errors.InvalidInput` whose message names the field and its line in ``pave.yaml`` and
whose hint says how to fix it: YAML syntax, duplicate keys, a field of the wrong shape (pydantic's
errors, each given a fix), and the cross-field checks of :func:`reference_problems` (unknown step or
source names, duplicates, tuned params a step does not have). The models themselves are in
:mod:`pave.pipelines.spec`.

:func:`write_json_schema` writes ``src/pave/pipelines/pave.schema.json``, which editors validate
the file against (``python -m pave.pipelines.spec_file`` refreshes it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from pave.errors import InvalidInput, NotFound
from pave.pipelines.spec import DATA_PREFIX, REFERENCE, ProjectSpec, TuneSpec

SPEC_FILE = "pave.yaml"
SCHEMA_FILE = Path(__file__).with_name("pave.schema.json")

_REFERENCE_HELP = "write it as module:name, e.g. steps:train for the function train in steps.py"


# --- cross-field checks (ProjectSpec's own validator runs them too) ---------------------------------

Loc = tuple[str | int, ...]


def reference_problems(spec: ProjectSpec) -> list[tuple[Loc, str, str]]:
    """Cross-field problems: unknown step or source names, duplicates. Each is (loc, message, fix)."""
    problems: list[tuple[Loc, str, str]] = []
    names = [s.name for s in spec.steps]
    known = ", ".join(names)
    sources = ", ".join(spec.data.sources) or "none declared"
    seen: set[str] = set()
    for i, step in enumerate(spec.steps):
        if step.name in seen:
            problems.append(((("steps", i, "name")), f"duplicate step name {step.name!r}", "rename one"))
        seen.add(step.name)
        for arg, ref in step.inputs.items():
            loc: Loc = ("steps", i, "inputs", arg)
            if ref.startswith(DATA_PREFIX):
                source = ref.removeprefix(DATA_PREFIX)
                if source not in spec.data.sources:
                    problems.append(
                        (loc, f"unknown data source {source!r}", f"declare it under data.sources ({sources})")
                    )
            elif ref == step.name:
                problems.append((loc, "a step cannot read its own output", "use an earlier step's name"))
            elif ref not in names:
                problems.append(
                    (loc, f"unknown input {ref!r}", f"use data.<source> ({sources}) or a step name ({known})")
                )
    checks: list[tuple[Loc, str | None]] = []
    if spec.model is not None:
        checks += [
            (("model", "step"), spec.model.step),
            (("model", "input_example_from"), spec.model.input_example_from),
        ]
    if spec.metrics is not None:
        checks.append((("metrics", "step"), spec.metrics.step))
    if spec.fairness is not None:
        split = spec.fairness.data_from or (spec.model.input_example_from if spec.model else None)
        if split is None or spec.model is None:
            problems.append(
                (
                    ("fairness",),
                    "fairness needs a model and the step holding the evaluation split",
                    "set fairness.data_from (or model.input_example_from) to a step returning X_test, y_test",
                )
            )
        checks.append((("fairness", "data_from"), spec.fairness.data_from))
    for where, target in checks:
        if target is not None and target not in names:
            problems.append((where, f"unknown step {target!r}", f"use one of: {known}"))
    if spec.tune is not None:
        problems += _tune_problems(spec, spec.tune)
    for i, name in enumerate(spec.data.validate_sources or []):
        if name not in spec.data.sources:
            problems.append(
                (("data", "validate", i), f"unknown data source {name!r}", f"use one of: {sources}")
            )
    if spec.data.validate_sources and spec.data.schema_ref is None:
        problems.append(
            (("data", "validate"), "sources to validate but no schema", "add data.schema: module:Model")
        )
    return problems


def _tune_problems(spec: ProjectSpec, tune: TuneSpec) -> list[tuple[Loc, str, str]]:
    problems: list[tuple[Loc, str, str]] = []
    steps = {s.name: s for s in spec.steps}
    for key in tune.params:
        loc: Loc = ("tune", "params", key)
        step_name, dot, param = key.partition(".")
        if not dot or not param:
            problems.append((loc, f"{key!r} is not of the form step.param", "write it as e.g. train.C"))
        elif step_name not in steps:
            problems.append((loc, f"unknown step {step_name!r}", f"use one of: {spec.step_names()}"))
        elif param not in steps[step_name].params:
            known = ", ".join(steps[step_name].params) or "none"
            problems.append(
                (
                    loc,
                    f"unknown param {param!r} of step {step_name} (its params: {known})",
                    f"add {param} to the params of {step_name} (its value when not tuning), or fix the name",
                )
            )
        elif param == steps[step_name].foreach:
            problems.append((loc, f"{key} is the foreach list of {step_name}", "tune another param"))
    return problems


# --- loading -------------------------------------------------------------------------------------


def load_spec(path: str | Path) -> ProjectSpec:
    """Read and validate a ``pave.yaml`` (or the ``pave.yaml`` in a project folder).

    Raises:
        NotFound: there is no such file.
        InvalidInput: YAML syntax, a field of the wrong shape, or a reference to an unknown step or
            source. The message names each field with its line; the hint says how to fix the first.
            ``details`` lists every problem as ``{"field", "line", "message", "fix"}``.
    """
    path = Path(path)
    if path.is_dir():
        path = path / SPEC_FILE
    if not path.is_file():
        raise NotFound(
            f"no project spec at {path}",
            hint="run `pave new NAME --template tabular-classification`, or cd into a project folder",
        )
    text = path.read_text(encoding="utf-8")
    return parse_spec(text, source=str(path))


def parse_spec(text: str, *, source: str = SPEC_FILE) -> ProjectSpec:
    """Validate the text of a ``pave.yaml``; see :func:`load_spec`."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(
            f"{source}{line}: not valid YAML: {problem}",
            hint="fix the indentation or quoting on that line (values with ':' or '#' need quotes)",
            details=[{"field": None, "line": mark.line + 1 if mark else None, "message": str(problem)}],
        ) from exc
    if not isinstance(data, dict) or node is None:
        raise InvalidInput(
            f"{source}: must be a mapping of settings (name:, steps:, ...)",
            hint="see docs/spec.md for a complete example",
        )
    problems: list[dict[str, Any]] = _duplicate_keys(node)
    if not problems:
        try:
            spec = ProjectSpec.model_validate(data, context={"defer_references": True})
        except ValidationError as exc:
            problems = [_pydantic_problem(err, node) for err in exc.errors()]
        else:
            problems = [
                {"field": dotted(loc), "line": line_of(node, loc), "message": msg, "fix": fix}
                for loc, msg, fix in reference_problems(spec)
            ]
            if not problems:
                return spec
    lines = [
        f"line {p['line']}, {p['field']}: {p['message']}" if p["line"] else f"{p['field']}: {p['message']}"
        for p in problems
    ]
    head = f"{source} has {len(problems)} problem(s): " + "; ".join(lines)
    raise InvalidInput(head, hint=problems[0]["fix"], details=problems)


def _duplicate_keys(node: yaml.Node, path: Loc = ()) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key, value in node.value:
            name = str(key.value)
            if name in seen:
                found.append(
                    {
                        "field": dotted((*path, name)),
                        "line": key.start_mark.line + 1,
                        "message": f"key {name!r} appears twice",
                        "fix": "keep one of them: YAML would silently use the last",
                    }
                )
            seen.add(name)
            found += _duplicate_keys(value, (*path, name))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += _duplicate_keys(item, (*path, i))
    return found


def line_of(node: yaml.Node, loc: Loc) -> int | None:
    """The 1-based line in the YAML text of the field at ``loc`` (or of its nearest parent)."""
    line = node.start_mark.line + 1
    current: yaml.Node | None = node
    for part in loc:
        if isinstance(current, yaml.MappingNode):
            match = next(((k, v) for k, v in current.value if str(k.value) == str(part)), None)
            if match is None:
                return line
            line = match[0].start_mark.line + 1
            current = match[1]
        elif isinstance(current, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(current.value):
                return line
            current = current.value[part]
            line = current.start_mark.line + 1
        else:
            # a pydantic-internal location part (union member, validator name): skip it
            continue
    return line


def dotted(loc: Loc) -> str:
    """``loc`` as written in pave.yaml: ``steps[0].inputs.x``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "pave.yaml"


def _pydantic_problem(err: Any, node: yaml.Node) -> dict[str, Any]:
    loc: Loc = tuple(err["loc"])
    kind = err["type"]
    message = str(err["msg"]).removeprefix("Value error, ")
    field = str(loc[-1]) if loc else ""
    ctx = err.get("ctx") or {}
    if kind == "missing":
        fix = f"add `{field}:` under {dotted(loc[:-1]) if loc[:-1] else 'the top level'}"
    elif kind == "extra_forbidden":
        fix = f"remove `{field}` or fix its spelling (see docs/spec.md for the allowed fields)"
    elif kind == "string_pattern_mismatch":
        pattern = ctx.get("pattern", "")
        fix = _REFERENCE_HELP if pattern == REFERENCE else f"the value must match {pattern}"
    elif kind == "literal_error":
        fix = f"use one of {ctx.get('expected', '')}"
    elif kind in ("model_type", "model_attributes_type", "dict_type"):
        # pydantic names the class ("instance of FairnessSpec"): the user wrote YAML, not Python
        message = f"must be a mapping of keys (key: value lines under it), not {_yaml_kind(err.get('input'))}"
        fix = f"write `{field}:` with its keys indented under it (docs/spec.md lists them)"
    elif kind.endswith("_type") or kind.endswith("_parsing"):
        fix = f"`{field}` {message.lower()}"
    else:
        fix = f"fix `{dotted(loc)}`: {message}"
    return {"field": dotted(loc), "line": line_of(node, loc), "message": message, "fix": fix}


def _yaml_kind(value: Any) -> str:
    """What a YAML value is, in the file's words (``a string 'yes'``, ``a list``)."""
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if value is None:
        return "empty"
    if isinstance(value, str):
        return f"the text {value[:40]!r}"
    return type(value).__name__


# --- JSON schema for editors ------------------------------------------------------------------------


def json_schema() -> dict[str, Any]:
    """The JSON schema of ``pave.yaml`` (by alias, as written in the file)."""
    schema = ProjectSpec.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "pave.yaml"
    return schema


def write_json_schema(path: Path = SCHEMA_FILE) -> bool:
    """Write :func:`json_schema` to ``path``; returns True when the file changed."""
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return False
    path.write_text(text, encoding="utf-8")
    return True


if __name__ == "__main__":  # pragma: no cover - `python -m pave.pipelines.spec_file` refreshes the file
    print("updated" if write_json_schema() else "up to date", SCHEMA_FILE)
