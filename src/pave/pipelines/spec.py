"""The project spec: ``pave.yaml``, as typed pydantic models.

A project is a folder with a ``pave.yaml``; every path and ``module:attr`` reference in it is
relative to that folder. The full reference is ``docs/spec.md``. Reading the file (YAML, the
cross-field checks, each problem named with its line and fix) and the JSON schema editors validate
against are in :mod:`pave.pipelines.spec_file`.

The step function contract, in short:

* a step is a plain Python function named by ``function: module:function``; the module is the
  file ``module.py`` (dots for sub-folders) in the project folder;
* its arguments are filled by name, first from ``inputs`` (``data.<source>`` gives that source as a
  ``pandas.DataFrame``; ``<step>`` gives that step's return value), then from ``params``;
* an argument named ``ctx`` receives a :class:`pave.pipelines.StepContext` (``seed``,
  ``project_dir``, ``step``, ``logger``, ``log_metric(name, value)``);
* the return value must be picklable (it is cached with joblib); the ``metrics`` step returns a
  ``dict[str, float]``; the ``model`` step returns the model object of the declared flavor.

A model built directly (``ProjectSpec.model_validate``: overrides, tuning trials) runs the
cross-field checks too, and raises them as one pydantic ``ValidationError``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from pave.data.sources import SourceSpec
from pave.errors import NotFound
from pave.monitoring.spec import MonitorSpec
from pave.registry.fairness import FairnessSpec

PROJECT_NAME = r"^[a-z0-9][a-z0-9-]{1,62}$"
STEP_NAME = r"^[a-z_][a-z0-9_-]{0,62}$"
SOURCE_NAME = r"^[a-z_][a-z0-9_]{0,62}$"
REFERENCE = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
DATA_PREFIX = "data."


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TemplateRef(_Model):
    """The template a project was created from (written by ``pave new``)."""

    name: str = Field(min_length=1, description="Template name, e.g. tabular-classification.")
    version: str = Field(min_length=1, description="Template version, e.g. 0.1.0.")


class DataSpec(_Model):
    """The project's data sources, their schema and which of them are validated."""

    sources: dict[str, SourceSpec] = Field(
        default_factory=dict,
        description="Source name -> a file (path), an object (url) or a query (sql). Steps use data.<name>.",
    )
    schema_ref: str | None = Field(
        default=None,
        alias="schema",
        pattern=REFERENCE,
        description="module:attr naming a pandera DataFrameModel (module relative to the project).",
    )
    validate_sources: list[str] | None = Field(
        default=None,
        alias="validate",
        description="Sources validated against the schema (default: all sources).",
    )

    @field_validator("sources")
    @classmethod
    def _source_names(cls, value: dict[str, SourceSpec]) -> dict[str, SourceSpec]:
        for name in value:
            if not re.match(SOURCE_NAME, name):
                raise ValueError(f"source name {name!r} must match {SOURCE_NAME} (lowercase, digits, _)")
        return value

    @property
    def validated(self) -> list[str]:
        """The sources to validate, default applied (none when there is no schema)."""
        if self.schema_ref is None:
            return []
        if self.validate_sources is None:
            return list(self.sources)
        return list(self.validate_sources)


MEMORY = r"^\s*\d+(\.\d+)?\s*([KMGT]i?)?B?\s*$"
_MEMORY_UNITS = {
    "": 1,
    "K": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "KI": 2**10,
    "MI": 2**20,
    "GI": 2**30,
    "TI": 2**40,
}


class ResourcesSpec(_Model):
    """What one step needs from the machine or the cluster (Ray schedules it on a node that has it)."""

    cpus: float = Field(default=1.0, gt=0, le=1024, description="CPU cores the step uses (Ray num_cpus).")
    gpus: float = Field(default=0.0, ge=0, le=64, description="GPUs the step uses (Ray num_gpus).")
    memory: int | str | None = Field(
        default=None,
        description="Memory the step needs: bytes, or a size such as 512MB, 2GB, 4GiB (Ray memory).",
    )

    @field_validator("memory")
    @classmethod
    def _size(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, str) and not re.match(MEMORY, value, re.IGNORECASE):
            raise ValueError(f"memory {value!r} is not a size: write bytes or e.g. 512MB, 2GB, 4GiB")
        if isinstance(value, int) and value <= 0:
            raise ValueError("memory must be positive")
        return value

    @property
    def memory_bytes(self) -> int | None:
        """``memory`` in bytes (``None`` when not given)."""
        if self.memory is None or isinstance(self.memory, int):
            return self.memory
        match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?)?B?\s*$", self.memory, re.IGNORECASE)
        assert match is not None  # checked by _size
        return int(float(match.group(1)) * _MEMORY_UNITS[(match.group(2) or "").upper()])


class StepSpec(_Model):
    """One step of the pipeline: a plain Python function."""

    name: str = Field(pattern=STEP_NAME, description="Unique step name.")
    function: str = Field(pattern=REFERENCE, description="module:function, module relative to the project.")
    inputs: dict[str, str] = Field(
        default_factory=dict,
        description="Argument name -> data.<source> or the name of an earlier step (its return value).",
    )
    params: dict[str, Any] = Field(default_factory=dict, description="Argument name -> constant value.")
    retries: int = Field(default=0, ge=0, le=10, description="Extra attempts when the step raises.")
    cache: bool = Field(
        default=True, description="Reuse the cached output when nothing it depends on changed."
    )
    resources: ResourcesSpec = Field(
        default_factory=ResourcesSpec, description="CPUs, GPUs and memory the step needs."
    )
    foreach: str | None = Field(
        default=None,
        description=(
            "A param holding a list: the step runs once per item (at the same time where resources "
            "allow), the param set to that item; its output is the list of the results, in order."
        ),
    )
    timeout: float | None = Field(
        default=None,
        gt=0,
        le=7 * 86400,
        description="Seconds the step may run (all attempts together) before it is stopped and fails.",
    )

    @field_validator("name")
    @classmethod
    def _not_data(cls, value: str) -> str:
        if value == "data":
            raise ValueError("'data' is reserved for data sources (data.<source>); pick another name")
        return value

    @model_validator(mode="after")
    def _no_overlap(self) -> StepSpec:
        both = sorted(set(self.inputs) & set(self.params))
        if both:
            raise ValueError(f"argument(s) {', '.join(both)} given both in inputs and in params")
        if "ctx" in self.inputs or "ctx" in self.params:
            raise ValueError("'ctx' is reserved for the StepContext; rename that argument")
        if self.foreach is not None:
            if self.foreach not in self.params:
                raise ValueError(f"foreach names {self.foreach!r}, which is not one of this step's params")
            if not isinstance(self.params[self.foreach], list) or not self.params[self.foreach]:
                raise ValueError(f"foreach: param {self.foreach} must be a non-empty list")
        return self

    @property
    def upstream(self) -> list[str]:
        """Names of the steps whose outputs this step reads."""
        return [ref for ref in self.inputs.values() if not ref.startswith(DATA_PREFIX)]


class ModelSpec(_Model):
    """Which step's output is the model, and how it is logged and registered."""

    step: str = Field(description="The step whose return value is the model.")
    flavor: Literal["sklearn", "lightgbm", "pyfunc"] = Field(
        default="sklearn", description="MLflow flavor used to log the model."
    )
    name: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$",
        description="Registered model name (default: the project name).",
    )
    input_example_from: str | None = Field(
        default=None,
        description=(
            "A step whose output holds example model inputs: a DataFrame, or an object/dict with "
            "X_test, X_valid, X_val, X_train or X (first found). Used for the signature and input example."
        ),
    )


class MetricsSpec(_Model):
    """Which step returns the metrics and which metric ranks models."""

    step: str = Field(description="The step returning dict[str, float].")
    primary: str = Field(min_length=1, description="The metric that ranks runs and models.")
    direction: Literal["maximize", "minimize"] = Field(
        default="maximize", description="Better is higher or lower."
    )


class GateSpec(_Model):
    """A promotion gate: absolute bounds, or no worse than the ``champion`` by ``max_drop``."""

    metric: str = Field(min_length=1, description="Metric name (from the metrics step or ctx.log_metric).")
    min: float | None = Field(default=None, description="Fail when the metric is below.")
    max: float | None = Field(default=None, description="Fail when the metric is above.")
    compare_to: Literal["champion"] | None = Field(
        default=None, description="Compare to the version with alias champion (skipped when none)."
    )
    max_drop: float | None = Field(
        default=None, ge=0, description="With compare_to: the largest allowed worsening (default 0)."
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        default=None, description="For compare_to: which way is better (default: metrics.direction)."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> GateSpec:
        absolute = self.min is not None or self.max is not None
        if absolute and self.compare_to is not None:
            raise ValueError("a gate is either absolute (min/max) or relative (compare_to), split it in two")
        if not absolute and self.compare_to is None:
            raise ValueError("a gate needs min, max, or compare_to: champion")
        if self.max_drop is not None and self.compare_to is None:
            raise ValueError("max_drop needs compare_to: champion")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is greater than max")
        return self


class ScorerSpec(_Model):
    """A scorer of a prompt evaluation: one of MLflow's built-in scorers, or a project's ``@scorer``."""

    builtin: str | None = Field(
        default=None,
        pattern=r"^[A-Z][A-Za-z]{1,63}$",
        description="An mlflow.genai.scorers class: RegexMatch, ResponseLength (deterministic), or an "
        "LLM judge such as Correctness or Guidelines (needs the prompt's judge).",
    )
    function: str | None = Field(
        default=None, pattern=REFERENCE, description="module:name of a function decorated with @scorer."
    )
    args: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of a builtin scorer.")

    @model_validator(mode="after")
    def _one_kind(self) -> ScorerSpec:
        if (self.builtin is None) == (self.function is None):
            raise ValueError("a scorer is either builtin: ClassName or function: module:name")
        if self.args and self.function is not None:
            raise ValueError("args are for builtin scorers; a function scorer takes none")
        return self


class PromptSpec(_Model):
    """A prompt ``<project>.<key>`` of the project and how `pave prompt evaluate` gates its versions."""

    data: str = Field(min_length=1, description="A .jsonl or .json file of records {inputs, expectations}.")
    predict: str = Field(
        pattern=REFERENCE, description="module:function(prompt, **inputs): the app's answer with that prompt."
    )
    scorers: list[ScorerSpec] = Field(min_length=1, description="What mlflow.genai.evaluate scores.")
    judge: str | None = Field(
        default=None,
        min_length=3,
        description="The LLM judge's model URI (e.g. openai:/gpt-4o-mini) for LLM-judge scorers; none: "
        "deterministic scorers only.",
    )
    gates: list[GateSpec] = Field(
        default_factory=list, description="Gates on the evaluation's metrics (e.g. regex_match/mean)."
    )
    alias: str = Field(
        default="candidate",
        pattern=r"^[A-Za-z0-9_-]{1,63}$",
        description="The alias moved to a version whose gates pass (production needs the approve action).",
    )


CRON_FIELD = r"(\*|\d+(-\d+)?)(/\d+)?(,(\*|\d+(-\d+)?)(/\d+)?)*"
CRON = rf"^\s*(@(hourly|daily|weekly|monthly)|{CRON_FIELD}(\s+{CRON_FIELD}){{4}})\s*$"


class RetrainSpec(_Model):
    """The closed loop: when the control plane re-runs this project, and how the result rolls out.

    A retrain is a new ``pave run`` of the project folder its last ``pave run`` recorded, on the
    data that folder holds then; when the gates pass, the new version is rolled out progressively
    under ``rollout`` (the guards of ``pave rollout``) and promoted or rolled back on its own.
    """

    on: list[Literal["data_change"]] = Field(
        default_factory=list,
        description=(
            "Events that start a retrain besides the schedule and alerts: data_change (a source's "
            "fingerprint differs from the one the last run recorded; checked by the control plane)."
        ),
    )
    schedule: str | None = Field(
        default=None,
        pattern=CRON,
        description="Cron expression (UTC), e.g. '0 3 * * 1' for Mondays at 03:00; none: no schedule.",
    )
    rollout: dict[str, Any] = Field(
        default_factory=dict,
        description=(
            "Rollout policy of retrained versions: steps, interval_seconds, min_requests, "
            "max_error_rate, alpha, max_p99_ms, max_p99_ratio, min_labels, require_labels."
        ),
    )
    set: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameter overrides for the retrain, as `pave run --set`: {'train.C': 0.5}.",
    )
    timeout: int = Field(
        default=3600, ge=10, le=7 * 86400, description="Seconds a retrain may run before it is stopped."
    )
    cooldown: int = Field(
        default=3600,
        ge=0,
        le=30 * 86400,
        description=(
            "Seconds after a retrain ends during which alerts start no other one (an alert that keeps "
            "reopening must not retrain in a loop); 0: none. Manual and scheduled retrains ignore it."
        ),
    )

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, data: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true.
        if isinstance(data, dict) and True in data and "on" not in data:
            data = {("on" if key is True else key): value for key, value in data.items()}
        return data

    @field_validator("set")
    @classmethod
    def _overrides(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            if key != "seed" and not re.match(r"^[a-z_][a-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ValueError(f"override {key!r} is not of the form step.param (or seed)")
        return value


class SearchSpace(_Model):
    """The values one param may take while tuning (Optuna's suggest_float / suggest_int / categorical)."""

    type: Literal["float", "int", "categorical"] = Field(description="float, int or categorical.")
    low: float | None = Field(default=None, description="float/int: the smallest value.")
    high: float | None = Field(default=None, description="float/int: the largest value.")
    log: bool = Field(default=False, description="float/int: sample on a log scale (low must be > 0).")
    step: float | None = Field(default=None, gt=0, description="float/int: the grid step (not with log).")
    choices: list[Any] | None = Field(default=None, description="categorical: the values to choose from.")

    @model_validator(mode="after")
    def _consistent(self) -> SearchSpace:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical space needs a non-empty `choices` list")
            if self.low is not None or self.high is not None or self.log or self.step is not None:
                raise ValueError("a categorical space takes only `choices` (no low, high, log, step)")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"a {self.type} space needs `low` and `high`")
        if self.choices is not None:
            raise ValueError(f"a {self.type} space takes low and high, not `choices`")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is greater than high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scale space needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("`step` and `log` cannot be used together")
        if self.type == "int" and (self.low != int(self.low) or self.high != int(self.high)):
            raise ValueError("an int space needs whole numbers for low and high")
        return self


class TuneSpec(_Model):
    """Hyperparameter tuning (``pave tune``): which metric, how many trials, and the search space."""

    metric: str = Field(min_length=1, description="The metric to optimise (one the pipeline logs).")
    direction: Literal["maximize", "minimize"] = Field(
        default="maximize", description="Better is higher or lower."
    )
    trials: int = Field(default=20, ge=1, le=100_000, description="How many trials (complete or pruned).")
    parallel: int = Field(
        default=1, ge=1, le=1024, description="Trials at once: local processes, or Ray tasks on a cluster."
    )
    sampler: Literal["tpe", "random"] = Field(default="tpe", description="Optuna's sampler: tpe or random.")
    pruner: Literal["median", "none"] = Field(
        default="median", description="Stop trials whose reported values fall below the median (ctx.report)."
    )
    params: dict[str, SearchSpace] = Field(
        min_length=1, description="step.param -> its search space; the param must be in that step's params."
    )


class ProjectSpec(_Model):
    """A whole ``pave.yaml``."""

    name: str = Field(pattern=PROJECT_NAME, description="Project name: lowercase letters, digits and '-'.")
    owner: str | None = Field(default=None, description="Who owns the project.")
    description: str = Field(default="", description="One line about the project.")
    template: TemplateRef | None = Field(default=None, description="Set by pave new.")
    seed: int = Field(default=42, description="Seed given to every step (ctx.seed) and set for random/numpy.")
    data: DataSpec = Field(default_factory=DataSpec, description="Data sources and their validation.")
    steps: list[StepSpec] = Field(min_length=1, description="The pipeline steps.")
    model: ModelSpec | None = Field(default=None, description="The model to log and register.")
    metrics: MetricsSpec | None = Field(default=None, description="The metrics step and primary metric.")
    gates: list[GateSpec] = Field(default_factory=list, description="Promotion gates, all must pass.")
    fairness: FairnessSpec | None = Field(
        default=None,
        description="Sensitive features: demographic parity and equalized odds differences at evaluation.",
    )
    deploy: dict[str, Any] = Field(
        default_factory=dict, description="Deployment settings (free-form for now)."
    )
    monitor: MonitorSpec = Field(
        default_factory=MonitorSpec,
        description="Monitors (drift, prediction drift, performance), their schedule and alert sinks.",
    )
    retrain: RetrainSpec | None = Field(
        default=None, description="Automatic retraining: schedule, rollout of retrained versions."
    )
    tune: TuneSpec | None = Field(
        default=None, description="Hyperparameter tuning with `pave tune`: metric, trials, search space."
    )
    prompts: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,100}$")], PromptSpec] = Field(
        default_factory=dict,
        description="Prompts <project>.<key> of MLflow's prompt registry, evaluated and gated.",
    )

    @model_validator(mode="after")
    def _references(self, info: ValidationInfo) -> ProjectSpec:
        if info.context and info.context.get("defer_references"):
            return self
        from pave.pipelines.spec_file import dotted, reference_problems  # that module imports this one

        problems = reference_problems(self)
        if problems:
            raise ValueError("; ".join(f"{dotted(loc)}: {msg}" for loc, msg, _ in problems))
        return self

    def step(self, name: str) -> StepSpec:
        """The step called ``name``."""
        for step in self.steps:
            if step.name == name:
                return step
        raise NotFound(f"project {self.name} has no step {name!r}", hint=f"steps: {self.step_names()}")

    def step_names(self) -> str:
        return ", ".join(s.name for s in self.steps)

    @property
    def model_name(self) -> str:
        """The registered model name, default applied."""
        return (self.model.name if self.model else None) or self.name
