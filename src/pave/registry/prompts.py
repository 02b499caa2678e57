"""Prompt versions gated like model versions: ``mlflow.genai.evaluate``, the project's gates, an alias.

A project's ``pave.yaml`` lists its prompts under ``prompts:`` (:class:`~pave.pipelines.spec.PromptSpec`);
the prompt ``<project>.<key>`` lives in MLflow's prompt registry (:mod:`pave.governance.prompts`).
:func:`evaluate_prompt` runs where the caller runs (it imports the project's code: never in the
control plane):

1. loads the prompt version (``prompts:/<project>.<key>/<version>``) and the evaluation records;
2. runs ``mlflow.genai.evaluate`` with the app's ``predict`` function bound to that prompt and the
   scorers (deterministic ones, or LLM judges with the configured ``judge`` model) in an MLflow
   run of the project's experiment, tagged ``pave.prompt.name`` / ``pave.prompt.version``;
3. applies the gates to the evaluation's metrics (``compare_to: champion`` compares with the
   evaluation of the version the alias ``production`` points at), logs ``gates.json``;
4. records on the prompt version: ``pave.gates`` (``passed``/``failed``), ``pave.eval.run_id``;
5. moves the spec's alias (default ``candidate``) to the version when every gate passed. Moving
   ``production`` goes through the platform's approval rules like a model's ``champion``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pave.errors import Forbidden, InvalidInput, NotFound
from pave.governance.approvals import TAG_GATES
from pave.pipelines.spec import ProjectSpec, PromptSpec
from pave.registry.gates import GateResult, all_passed, check_gate_metrics, evaluate_gates

TAG_PROMPT_NAME = "pave.prompt.name"
TAG_PROMPT_VERSION = "pave.prompt.version"
TAG_EVAL_RUN = "pave.eval.run_id"
PRODUCTION = "production"
# MLflow's built-in scorers that need no LLM (mlflow.genai.scorers, 3.17); every other one is a judge.
DETERMINISTIC = frozenset({"RegexMatch", "ResponseLength"})


@dataclass
class PromptEvaluation:
    """What ``pave prompt evaluate`` reports."""

    prompt: str
    version: str
    run_id: str
    metrics: dict[str, float]
    gates: list[GateResult]
    passed: bool
    alias: str | None = None  # the alias moved to the version
    alias_refused: str | None = None  # why moving it was refused (an approval, a role)
    scorers: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def prompt_of(spec: ProjectSpec, prompt: str) -> tuple[str, PromptSpec]:
    """(registered name, spec) of ``prompt`` (its key, or ``<project>.<key>``).

    Raises:
        NotFound: pave.yaml lists no such prompt.
    """
    key = prompt.removeprefix(f"{spec.name}.")
    if key not in spec.prompts:
        listed = ", ".join(spec.prompts) or "none"
        raise NotFound(
            f"pave.yaml of {spec.name} lists no prompt {key!r} (prompts: {listed})",
            hint="add it under prompts: in pave.yaml (docs/prompts.md)",
        )
    return f"{spec.name}.{key}", spec.prompts[key]


def read_records(path: Path) -> list[dict[str, Any]]:
    """The evaluation records of a ``.jsonl`` file (one object a line) or a ``.json`` list.

    Raises:
        InvalidInput: a line or the file is not JSON, or a record has no ``inputs`` object.
    """
    if not path.is_file():
        raise NotFound(f"no evaluation data at {path}", hint="fix prompts.<key>.data in pave.yaml")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix == ".jsonl":
            records = [json.loads(line) for line in text.splitlines() if line.strip()]
        else:
            records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(
            f"{path.name} line {exc.lineno}: not JSON ({exc.msg})",
            hint='each record is {"inputs": {...}, "expectations": {...}}',
        ) from exc
    if not isinstance(records, list) or not records:
        raise InvalidInput(f"{path.name} holds no records", hint="a JSON list, or one JSON object a line")
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict) or not isinstance(record.get("inputs"), dict):
            raise InvalidInput(
                f"{path.name} record {number} has no 'inputs' object",
                hint='each record is {"inputs": {"question": ...}, "expectations": {...}}',
            )
    return records


def build_scorers(key: str, prompt: PromptSpec, project_dir: Path) -> list[Any]:
    """The scorers of ``prompt`` (call inside :func:`pave.pipelines.modules.project_imports`).

    Raises:
        InvalidInput: an LLM-judge scorer without ``judge``, an unknown built-in, a function that
            is not a ``@scorer``.
    """
    from mlflow.genai import scorers as builtins
    from mlflow.genai.scorers import Scorer

    from pave.pipelines.modules import resolve

    found: list[Any] = []
    for index, item in enumerate(prompt.scorers):
        where = f"prompts.{key}.scorers[{index}]"
        if item.function is not None:
            scorer = resolve(item.function, project_dir, what=f"{where} function")
            if not isinstance(scorer, Scorer):
                raise InvalidInput(
                    f"{where}: {item.function} is not an MLflow scorer",
                    hint="decorate it with @mlflow.genai.scorers.scorer",
                )
            found.append(scorer)
            continue
        name = str(item.builtin)
        cls = getattr(builtins, name, None)
        if not (isinstance(cls, type) and issubclass(cls, Scorer)):
            raise InvalidInput(
                f"{where}: mlflow.genai.scorers has no scorer {name!r}",
                hint=f"deterministic: {', '.join(sorted(DETERMINISTIC))}; LLM judges: Correctness, "
                "Guidelines, Safety, ... (with judge:)",
            )
        args = dict(item.args)
        if name not in DETERMINISTIC:
            if prompt.judge is None:
                raise InvalidInput(
                    f"{where}: {name} is an LLM judge, and prompts.{key} configures no judge model",
                    hint=f"set prompts.{key}.judge (e.g. openai:/gpt-4o-mini, with the provider's API key "
                    f"in the environment), or use deterministic scorers: {', '.join(sorted(DETERMINISTIC))} "
                    "or a @scorer function",
                )
            args.setdefault("model", prompt.judge)
        try:
            found.append(cls(**args))
        except Exception as exc:  # pydantic's or MLflow's check of the arguments
            raise InvalidInput(
                f"{where}: {name}({', '.join(args)}) is refused: {str(exc).splitlines()[0][:300]}",
                hint=f"fix prompts.{key}.scorers[{index}].args in pave.yaml",
            ) from exc
    return found


def _metrics_of(client: Any, run_id: str | None) -> dict[str, float]:
    return dict(client.get_run(run_id).data.metrics) if run_id else {}


def _champion(client: Any, name: str) -> tuple[str, dict[str, float]] | None:
    """(version, metrics of its evaluation) of the version the alias ``production`` points at."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_prompt_version_by_alias(name, PRODUCTION)
    except MlflowException:
        return None
    return str(found.version), _metrics_of(client, (found.tags or {}).get(TAG_EVAL_RUN))


def evaluate_prompt(
    spec: ProjectSpec, project_dir: Path, prompt: str, version: str, *, tracking_uri: str
) -> PromptEvaluation:
    """Evaluate ``version`` of the project's ``prompt``, gate it, record it, move its alias.

    Raises:
        NotFound: no such prompt in pave.yaml, no such version in the registry, no data file.
        InvalidInput: bad records, scorers or a gate on a metric the evaluation did not produce.
    """
    import mlflow
    from mlflow import MlflowClient

    from pave.pipelines.modules import project_imports, resolve

    name, config = prompt_of(spec, prompt)
    key = name.split(".", 1)[1]
    records = read_records(project_dir / config.data)
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    previous = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    try:
        loaded = _prompt_version(client, name, version)
        with project_imports(project_dir):
            scorers = build_scorers(key, config, project_dir)
            app = resolve(config.predict, project_dir, what=f"prompts.{key}.predict")

            def predict_fn(**inputs: Any) -> Any:
                return app(loaded, **inputs)

            experiment = mlflow.set_experiment(spec.name)
            tags = {TAG_PROMPT_NAME: name, TAG_PROMPT_VERSION: str(version)}
            with mlflow.start_run(
                experiment_id=experiment.experiment_id, run_name=f"evaluate {name} v{version}", tags=tags
            ) as run:
                result = mlflow.genai.evaluate(data=records, predict_fn=predict_fn, scorers=scorers)
                metrics = {k: float(v) for k, v in (result.metrics or {}).items() if _number(v)}
                check_gate_metrics(config.gates, metrics)
                champion = _champion(client, name)
                gates = evaluate_gates(
                    config.gates,
                    metrics,
                    champion=champion[1] if champion else None,
                    champion_version=champion[0] if champion else None,
                )
                passed = all_passed(gates)
                mlflow.log_dict({"gates": [g.to_dict() for g in gates], "passed": passed}, "gates.json")
                mlflow.set_tag(TAG_GATES, "passed" if passed else "failed")
        run_id = run.info.run_id
        client.set_prompt_version_tag(name, str(version), TAG_EVAL_RUN, run_id)
        client.set_prompt_version_tag(name, str(version), TAG_GATES, "passed" if passed else "failed")
        evaluation = PromptEvaluation(
            prompt=name,
            version=str(version),
            run_id=run_id,
            metrics=metrics,
            gates=gates,
            passed=passed,
            scorers=[getattr(s, "name", type(s).__name__) for s in scorers],
        )
        if passed:
            _move_alias(client, evaluation, config.alias)
        return evaluation
    finally:
        mlflow.set_tracking_uri(previous[0])
        mlflow.set_registry_uri(previous[1])


def _prompt_version(client: Any, name: str, version: str) -> Any:
    """Version ``version`` of prompt ``name`` (raises NotFound, or the platform's refusal)."""
    from mlflow.exceptions import MlflowException

    try:
        found = client.get_prompt_version(name, str(version))
    except MlflowException as exc:
        if exc.error_code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
            raise Forbidden(str(exc.message)[:500], hint=f"ask for a role on {name.split('.')[0]}") from exc
        found = None
    if found is None:
        raise NotFound(
            f"prompt {name} has no version {version}",
            hint=f"register it with mlflow.genai.register_prompt(name={name!r}, template=...)",
        )
    return found


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _move_alias(client: Any, evaluation: PromptEvaluation, alias: str) -> None:
    """Point ``alias`` at the evaluated version; a refusal (approval, role) is reported, not raised."""
    from mlflow.exceptions import MlflowException

    try:
        client.set_prompt_alias(evaluation.prompt, alias, int(evaluation.version))
    except MlflowException as exc:  # the platform's refusal, as MLflow's client raises it
        evaluation.alias_refused = str(exc.message)[:500]
        return
    evaluation.alias = alias


def promote(name: str, version: str, alias: str, *, tracking_uri: str) -> None:
    """Point ``alias`` of prompt ``name`` at ``version`` once its evaluation passed its gates.

    Raises:
        NotFound: no such version.
        Forbidden: the version was never evaluated, or failed its gates; or the platform refused
            the alias (a production alias needs the approve action and, by policy, an approval).
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    gates = (_prompt_version(client, name, version).tags or {}).get(TAG_GATES)
    if gates != "passed":
        state = "failed its gates" if gates == "failed" else "was never evaluated"
        raise Forbidden(
            f"{name} version {version} {state}; only a version whose gates passed is promoted",
            hint=f"run `pave prompt evaluate {name} {version}` in the project folder",
        )
    try:
        client.set_prompt_alias(name, alias, int(version))
    except MlflowException as exc:
        raise Forbidden(f"moving {alias} of {name} to version {version} was refused: {exc.message}") from exc
