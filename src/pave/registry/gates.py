"""Promotion gates: is a new model good enough to become a ``candidate``?

Absolute gates compare a metric to a constant (``min``/``max``). Relative gates compare it to the
metric of the run behind the version with alias ``champion`` and allow a worsening of at most
``max_drop`` (in the metric's direction); with no champion they are skipped, and say so.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from pave.errors import InvalidInput
from pave.pipelines.spec import GateSpec

Direction = Literal["maximize", "minimize"]


@dataclass(frozen=True)
class GateResult:
    """One gate's verdict.

    ``shortfall`` is by how much it failed (0 when it passed): how far the observed value is on
    the wrong side of ``threshold``.
    """

    metric: str
    rule: Literal["min", "max", "max_drop"]
    threshold: float | None
    observed: float | None
    passed: bool
    skipped: bool = False
    shortfall: float = 0.0
    baseline: float | None = None  # the champion's value, for relative gates
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def evaluate_gates(
    gates: list[GateSpec],
    metrics: Mapping[str, float],
    *,
    direction: Direction = "maximize",
    champion: Mapping[str, float] | None = None,
    champion_version: str | None = None,
) -> list[GateResult]:
    """Evaluate every gate; a metric that was not logged fails its gate."""
    results: list[GateResult] = []
    for gate in gates:
        observed = metrics.get(gate.metric)
        if gate.compare_to is None:
            if gate.min is not None:
                results.append(_absolute(gate.metric, "min", gate.min, observed))
            if gate.max is not None:
                results.append(_absolute(gate.metric, "max", gate.max, observed))
            continue
        results.append(_relative(gate, observed, gate.direction or direction, champion, champion_version))
    return results


def check_gate_metrics(gates: list[GateSpec], metrics: Mapping[str, float]) -> None:
    """Refuse a gate on a metric the run did not log (a typo in pave.yaml), naming the closest one.

    Raises:
        InvalidInput: the first such gate, with the metrics that were logged.
    """
    logged = sorted(metrics)
    for index, gate in enumerate(gates):
        if gate.metric in metrics:
            continue
        close = difflib.get_close_matches(gate.metric, logged, n=1)
        guess = f"did you mean {close[0]}? " if close else ""
        raise InvalidInput(
            f"gates[{index}] names metric {gate.metric!r}, which the run did not log "
            f"(logged: {', '.join(logged) or 'none'})",
            hint=f"{guess}fix gates[{index}].metric in pave.yaml; `pave run` again is quick (cached steps)",
        )


def all_passed(results: list[GateResult]) -> bool:
    """True when no gate failed (skipped gates do not fail)."""
    return all(r.passed or r.skipped for r in results)


def _absolute(
    metric: str, rule: Literal["min", "max"], threshold: float, observed: float | None
) -> GateResult:
    if observed is None or math.isnan(observed):
        return GateResult(metric, rule, threshold, None, False, message=f"{metric} was not logged")
    if rule == "min":
        passed, gap, sign = observed >= threshold, threshold - observed, ">="
    else:
        passed, gap, sign = observed <= threshold, observed - threshold, "<="
    verdict = "passed" if passed else f"failed by {gap:.6g}"
    return GateResult(
        metric,
        rule,
        threshold,
        observed,
        passed,
        shortfall=0.0 if passed else gap,
        message=f"{metric} = {observed:.6g}, needs {sign} {threshold:.6g}: {verdict}",
    )


def _relative(
    gate: GateSpec,
    observed: float | None,
    direction: Direction,
    champion: Mapping[str, float] | None,
    champion_version: str | None,
) -> GateResult:
    drop = gate.max_drop or 0.0
    baseline = None if champion is None else champion.get(gate.metric)
    if champion is None:
        return GateResult(
            gate.metric,
            "max_drop",
            None,
            observed,
            True,
            skipped=True,
            message="no champion yet: relative gate skipped",
        )
    if baseline is None:
        return GateResult(
            gate.metric,
            "max_drop",
            None,
            observed,
            True,
            skipped=True,
            message=f"champion v{champion_version} has no {gate.metric}: gate skipped",
        )
    if observed is None or math.isnan(observed):
        return GateResult(
            gate.metric,
            "max_drop",
            None,
            None,
            False,
            baseline=baseline,
            message=f"{gate.metric} was not logged",
        )
    if direction == "maximize":
        threshold = baseline - drop
        passed, gap, sign = observed >= threshold, threshold - observed, ">="
    else:
        threshold = baseline + drop
        passed, gap, sign = observed <= threshold, observed - threshold, "<="
    verdict = "passed" if passed else f"failed by {gap:.6g}"
    return GateResult(
        gate.metric,
        "max_drop",
        threshold,
        observed,
        passed,
        shortfall=0.0 if passed else gap,
        baseline=baseline,
        message=(
            f"{gate.metric} = {observed:.6g}, champion v{champion_version} = {baseline:.6g}, "
            f"max drop {drop:.6g}, needs {sign} {threshold:.6g}: {verdict}"
        ),
    )
