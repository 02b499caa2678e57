"""Progressive rollouts: a candidate version takes more traffic step by step, under guards.

A rollout moves the deployment's weights through ``steps`` (percent of traffic to the candidate,
e.g. 10 -> 50 -> 100). The control plane evaluates every running rollout about once a second
(:func:`tick`), from the inference log the gateways write:

- **errors**: the candidate's failed predictions (a crashing candidate is answered for by the
  baseline, so clients do not see them) are tested with a one-sided exact binomial test against
  the allowed error rate ``max_error_rate``; p < ``alpha`` rolls back;
- **latency**: the candidate's p99 over ``max_p99_ms`` (when set), or over ``max_p99_ratio`` times
  the baseline's p99 (both with at least ``min_requests``), rolls back;
- **model metric**: once labels posted to ``/api/v1/feedback`` cover at least ``min_labels``
  inferences of each version since the rollout started, the candidate's outcomes are compared with
  the baseline's (:func:`compare_labels`): a one-sided two-proportion z-test on correctness for a
  classifier, a one-sided Welch t-test on squared errors for a regressor. The test runs once per
  step, when the step is otherwise ready to advance, at level ``alpha / len(steps)`` (Bonferroni
  over the planned looks, so peeking step after step keeps the false-rollback rate under
  ``alpha``); significantly worse rolls back. With too few labels the step advances anyway, unless
  ``require_labels`` holds it until they arrive.

A step whose guards hold for ``interval_seconds`` with at least ``min_requests`` candidate answers
advances; after the last step the candidate is promoted: it takes all the traffic and the alias
``champion`` moves to it (unless the project's policy requires an approval it does not have).
Every decision lands in the rollout's history with the numbers and the test that made it.

The labels come from monitoring, a sibling package: the control plane passes
:func:`tick` a ``performance`` function (``pave.monitoring.performance.performance_by_version``
bound to its settings and sessions), so this module never imports it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from pave.config import Settings
from pave.errors import Conflict, InvalidInput, NotFound
from pave.serving import store as deployments
from pave.serving.inference_log import read_inference_log
from pave.store.tables import RolloutRow, utcnow

log = logging.getLogger("pave.rollouts")
RUNNING = "running"


class LabelledVersion(Protocol):
    """What the model-metric guard reads of one version's labelled inferences (monitoring's
    ``VersionPerformance``): ``scores`` are 1.0/0.0 correct (classification) or squared errors."""

    n_labelled: int
    metrics: dict[str, float]
    scores: Any


# (deployment, since) -> {version: its labelled inferences since then}
Performance = Callable[[str, datetime], Mapping[str, LabelledVersion]]


@dataclass
class RolloutPolicy:
    """How a rollout proceeds; every field has a sensible default."""

    steps: list[float] = field(default_factory=lambda: [10.0, 50.0, 100.0])
    interval_seconds: float = 60.0
    min_requests: int = 50
    max_error_rate: float = 0.01
    alpha: float = 0.05
    max_p99_ms: float | None = None
    max_p99_ratio: float = 2.0
    min_labels: int = 30
    require_labels: bool = False

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RolloutPolicy:
        data = dict(data or {})
        unknown = set(data) - set(cls.__dataclass_fields__)
        if unknown:
            raise InvalidInput(
                f"unknown rollout setting(s): {', '.join(sorted(unknown))}",
                hint=f"use: {', '.join(cls.__dataclass_fields__)}",
            )
        policy = cls(**data)
        policy.check()
        return policy

    def check(self) -> None:
        steps = [float(s) for s in self.steps]
        if not steps or any(not 0 < s <= 100 for s in steps) or steps != sorted(set(steps)):
            raise InvalidInput(
                "rollout steps must rise strictly within (0, 100]", hint="steps: [10, 50, 100]"
            )
        if steps[-1] != 100:
            steps.append(100.0)
        self.steps = steps
        if self.interval_seconds <= 0 or self.min_requests < 1:
            raise InvalidInput("interval_seconds must be > 0 and min_requests >= 1")
        if not 0 <= self.max_error_rate < 1 or not 0 < self.alpha < 1:
            raise InvalidInput("max_error_rate must be in [0, 1) and alpha in (0, 1)")
        if self.max_p99_ms is not None and self.max_p99_ms <= 0:
            raise InvalidInput("max_p99_ms must be positive")
        if self.max_p99_ratio <= 1:
            raise InvalidInput("max_p99_ratio must be above 1")
        if self.min_labels < 2:
            raise InvalidInput("min_labels must be at least 2", hint="min_labels: 30")
        if self.require_labels and len(steps) == 1:
            raise InvalidInput(
                "require_labels needs a step below 100: at 100% the baseline gets no traffic to label",
                hint="steps: [50, 100]",
            )


def _event(kind: str, **details: Any) -> dict[str, Any]:
    return {"at": utcnow().isoformat(), "event": kind, **details}


def _set_weights(session: Session, settings: Settings, row: RolloutRow, candidate_share: float) -> None:
    deployment = deployments.get_deployment(session, row.deployment)
    spec = dict(deployment.spec)
    by_version = {str(v["version"]): v for v in spec["versions"]}
    if spec.get("shadow") and str(spec["shadow"]["version"]) not in by_version:
        by_version[str(spec["shadow"]["version"])] = spec["shadow"]
    base = by_version.get(row.baseline_version)
    cand = by_version.get(row.candidate_version)
    if base is None:
        base = {
            "version": row.baseline_version,
            "uri": deployments.resolve_version(settings, row.deployment, version=row.baseline_version).uri,
        }
    if cand is None:
        cand = {
            "version": row.candidate_version,
            "uri": deployments.resolve_version(settings, row.deployment, version=row.candidate_version).uri,
        }
    versions = []
    if candidate_share < 100:
        versions.append({"version": base["version"], "uri": base["uri"], "weight": 100.0 - candidate_share})
    if candidate_share > 0:
        versions.append({"version": cand["version"], "uri": cand["uri"], "weight": candidate_share})
    spec["versions"] = versions
    deployments.replace_spec(session, settings, deployment, spec)


def start(
    session: Session, settings: Settings, *, project: str, version: str, actor: str, policy: dict[str, Any]
) -> RolloutRow:
    """Start rolling out ``version`` on the project's deployment, from its current primary version."""
    rules = RolloutPolicy.from_dict(policy)
    running = session.scalar(
        select(RolloutRow).where(RolloutRow.deployment == project, RolloutRow.state == RUNNING)
    )
    if running is not None:
        raise Conflict(
            f"{project} is already rolling out version {running.candidate_version}",
            hint=f"`pave rollout promote {project}` or `pave rollout rollback {project}` first",
        )
    deployment = deployments.get_deployment(session, project)
    primary = max(deployment.spec["versions"], key=lambda v: v["weight"])
    candidate = deployments.resolve_version(settings, project, version=version)
    if candidate.version == str(primary["version"]):
        raise InvalidInput(f"version {version} is already the deployment's primary version")
    row = RolloutRow(
        deployment=project,
        baseline_version=str(primary["version"]),
        candidate_version=candidate.version,
        policy=asdict(rules),
        step_index=0,
        step_started_at=utcnow(),
        state=RUNNING,
        history=[
            _event(
                "started",
                baseline=str(primary["version"]),
                candidate=candidate.version,
                step=rules.steps[0],
                by=actor,
            )
        ],
        created_by=actor,
    )
    session.add(row)
    session.flush()
    _set_weights(session, settings, row, rules.steps[0])
    return row


def current(session: Session, project: str) -> RolloutRow:
    row = session.scalar(
        select(RolloutRow).where(RolloutRow.deployment == project).order_by(RolloutRow.id.desc()).limit(1)
    )
    if row is None:
        raise NotFound(f"{project} has no rollout", hint=f"`pave rollout start {project} --version N`")
    return row


def _finish(row: RolloutRow, state: str, event: dict[str, Any]) -> None:
    row.state = state
    row.finished_at = utcnow()
    row.history = [*row.history, event]


def rollback(session: Session, settings: Settings, row: RolloutRow, *, reason: str, **details: Any) -> None:
    """Send all traffic back to the baseline and end the rollout."""
    if row.state != RUNNING:
        raise Conflict(f"the rollout of {row.deployment} is {row.state}, not running")
    _set_weights(session, settings, row, 0.0)
    _finish(row, "rolled_back", _event("rolled_back", reason=reason, **details))


def promote(session: Session, settings: Settings, row: RolloutRow, *, reason: str, **details: Any) -> None:
    """Give the candidate all the traffic and the alias ``champion``; end the rollout."""
    if row.state != RUNNING:
        raise Conflict(f"the rollout of {row.deployment} is {row.state}, not running")
    _set_weights(session, settings, row, 100.0)
    alias = _move_champion(session, settings, row)
    _finish(row, "promoted", _event("promoted", reason=reason, champion=alias, **details))


def _move_champion(session: Session, settings: Settings, row: RolloutRow) -> str:
    from mlflow import MlflowClient

    from pave.governance.approvals import check_promotion
    from pave.governance.policy import get_policy

    client = MlflowClient(tracking_uri=settings.mlflow_db_url, registry_uri=settings.mlflow_db_url)
    try:
        check_promotion(
            client,
            row.deployment,
            row.candidate_version,
            require_approval=get_policy(session, row.deployment).require_approval,
        )
    except Exception as exc:  # the policy wants an approval first: traffic moved, the alias not
        return f"not moved: {getattr(exc, 'message', exc)}"
    client.set_registered_model_alias(row.deployment, "champion", row.candidate_version)
    return f"version {row.candidate_version}"


@dataclass
class VersionStats:
    requests: int
    errors: int
    p99_ms: float | None


def _stats(frame: Any, version: str) -> VersionStats:
    rows = frame[frame["version"] == version]
    failed = rows["error"].notna()
    ok = rows[~failed]
    p99 = float(ok["latency_ms"].quantile(0.99)) if len(ok) else None
    return VersionStats(requests=len(rows), errors=int(failed.sum()), p99_ms=p99)


def _binomial_p(errors: int, n: int, rate: float) -> float:
    """P(X >= errors) for X ~ Binomial(n, rate): is the error rate above the allowed one?"""
    from scipy.stats import binomtest

    if n == 0 or errors == 0:
        return 1.0
    if rate == 0:
        return 0.0
    return float(binomtest(errors, n, rate, alternative="greater").pvalue)


@dataclass
class LabelComparison:
    """The model-metric guard's verdict on the labels of both versions."""

    kind: str  # classification | regression
    test: str
    statistic: float
    p_value: float
    alpha: float
    baseline: dict[str, float]  # n and the mean score (accuracy, or mean squared error)
    candidate: dict[str, float]

    @property
    def worse(self) -> bool:
        return self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"worse": self.worse}


_REGRESSION_METRICS = ("rmse", "mse", "mae", "r2")


def _kind(base: LabelledVersion, cand: LabelledVersion, scores: np.ndarray) -> str:
    task = getattr(cand, "task", None) or getattr(base, "task", None)
    if task in ("classification", "regression", "recommendation"):
        return str(task)
    names = set(base.metrics) | set(cand.metrics)
    if "accuracy" in names:
        return "classification"
    if names & set(_REGRESSION_METRICS):
        return "regression"
    return "classification" if np.isin(scores, (0.0, 1.0)).all() else "regression"


def compare_labels(base: LabelledVersion, cand: LabelledVersion, alpha: float) -> LabelComparison:
    """Is the candidate significantly worse than the baseline on labelled outcomes?

    Classification (scores are 1.0 correct / 0.0 wrong): one-sided two-proportion z-test with the
    pooled proportion, H1: the candidate's accuracy is lower. Regression (scores are squared
    errors): one-sided Welch t-test, H1: the candidate's mean squared error is higher.
    Recommendation (scores are per-request precision@k): one-sided Welch t-test, H1: the
    candidate's mean precision is lower.
    """
    from scipy import stats

    b = np.asarray(base.scores, dtype=float)
    c = np.asarray(cand.scores, dtype=float)
    kind = _kind(base, cand, np.concatenate([b, c]))
    if kind == "classification":
        pooled = (b.sum() + c.sum()) / (len(b) + len(c))
        se = math.sqrt(pooled * (1 - pooled) * (1 / len(b) + 1 / len(c)))
        diff = float(b.mean() - c.mean())
        statistic = diff / se if se > 0 else 0.0
        p_value = float(stats.norm.sf(statistic)) if se > 0 else 1.0
        test = "one-sided two-proportion z-test on correctness (pooled)"
        metric = "accuracy"
    else:
        higher_is_worse = kind == "regression"
        worse_side = "greater" if higher_is_worse else "less"
        if np.ptp(b) == 0 and np.ptp(c) == 0:  # both samples constant: no variance to test
            gap = c.mean() - b.mean() if higher_is_worse else b.mean() - c.mean()
            statistic, p_value = 0.0, (0.0 if gap > 0 else 1.0)
        else:
            result = stats.ttest_ind(c, b, equal_var=False, alternative=worse_side)
            statistic, p_value = float(result.statistic), float(result.pvalue)
        what = "squared errors" if higher_is_worse else "precision@k per request"
        test = f"one-sided Welch t-test on {what}"
        metric = "mse" if higher_is_worse else "precision_at_k"
    return LabelComparison(
        kind=kind,
        test=test,
        statistic=statistic,
        p_value=p_value,
        alpha=alpha,
        baseline={"n": float(len(b)), metric: float(b.mean())},
        candidate={"n": float(len(c)), metric: float(c.mean())},
    )


def _label_guard(
    row: RolloutRow, policy: RolloutPolicy, performance: Performance | None
) -> tuple[LabelComparison | None, dict[str, Any]]:
    """The comparison when both versions have ``min_labels`` labels, and the label counts."""
    found: Mapping[str, LabelledVersion] = {}
    if performance is not None:
        try:
            found = performance(row.deployment, row.created_at)
        except Exception:  # labels unavailable must not stall the error and latency guards
            log.exception("reading the labels of %s failed", row.deployment)
    base, cand = found.get(row.baseline_version), found.get(row.candidate_version)
    counts = {
        "baseline": base.n_labelled if base is not None else 0,
        "candidate": cand.n_labelled if cand is not None else 0,
        "min_labels": policy.min_labels,
    }
    if base is None or cand is None or min(counts["baseline"], counts["candidate"]) < policy.min_labels:
        return None, counts
    return compare_labels(base, cand, policy.alpha / len(policy.steps)), counts


def _wait_for_labels(row: RolloutRow, policy: RolloutPolicy, counts: dict[str, Any]) -> None:
    """Note the wait in the history once per step (not every second)."""
    last = row.history[-1] if row.history else {}
    if last.get("event") == "waiting_for_labels" and last.get("step") == policy.steps[row.step_index]:
        return
    row.history = [
        *row.history,
        _event("waiting_for_labels", step=policy.steps[row.step_index], labels=counts),
    ]


def evaluate(
    session: Session,
    settings: Settings,
    row: RolloutRow,
    log_dir: Path,
    now: datetime,
    performance: Performance | None = None,
) -> str:
    """One decision for a running rollout: ``hold``, ``advance``, ``promote`` or ``rollback``."""
    policy = RolloutPolicy.from_dict(row.policy)
    since = row.step_started_at
    frame = read_inference_log(log_dir, start=since, deployment=row.deployment)
    cand = _stats(frame, row.candidate_version)
    base = _stats(frame, row.baseline_version)
    numbers = {"candidate": asdict(cand), "baseline": asdict(base), "step": policy.steps[row.step_index]}
    p_errors = _binomial_p(cand.errors, cand.requests, policy.max_error_rate)
    if cand.errors and p_errors < policy.alpha:
        rollback(
            session,
            settings,
            row,
            reason=f"error rate {cand.errors}/{cand.requests} is above the allowed {policy.max_error_rate:g}",
            test=f"one-sided exact binomial test, p={p_errors:.3g} < alpha={policy.alpha:g}",
            **numbers,
        )
        return "rollback"
    if cand.requests >= policy.min_requests and cand.p99_ms is not None:
        limit = policy.max_p99_ms
        if limit is None and base.p99_ms is not None and base.requests >= policy.min_requests:
            limit = base.p99_ms * policy.max_p99_ratio
        if limit is not None and cand.p99_ms > limit:
            rollback(
                session,
                settings,
                row,
                reason=f"p99 latency {cand.p99_ms:.1f} ms is over {limit:.1f} ms",
                test="p99 of the candidate's answers in this step against the limit",
                **numbers,
            )
            return "rollback"
    elapsed = (now - since).total_seconds()
    if elapsed < policy.interval_seconds or cand.requests < policy.min_requests:
        return "hold"
    comparison, counts = _label_guard(row, policy, performance)
    if comparison is not None and comparison.worse:
        rollback(
            session,
            settings,
            row,
            reason=f"the candidate's {comparison.kind} outcomes are significantly worse than the baseline's",
            test=f"{comparison.test}, p={comparison.p_value:.3g} < alpha={comparison.alpha:.3g}",
            labels=comparison.to_dict(),
            **numbers,
        )
        return "rollback"
    if comparison is None and policy.require_labels:
        _wait_for_labels(row, policy, counts)
        return "hold"
    label_test = (
        f"; {comparison.test} p={comparison.p_value:.3g} >= alpha={comparison.alpha:.3g}"
        if comparison is not None
        else f"; labels too few for the metric test ({counts['baseline']}/{counts['candidate']})"
    )
    passed = {
        "test": f"binomial p={p_errors:.3g} >= alpha={policy.alpha:g}; p99 within limits{label_test}",
        "labels": comparison.to_dict() if comparison is not None else counts,
        **numbers,
    }
    if row.step_index + 1 >= len(policy.steps):
        promote(session, settings, row, reason="every step held its guards", **passed)
        return "promote"
    row.step_index += 1
    row.step_started_at = now
    row.history = [*row.history, _event("advanced", to=policy.steps[row.step_index], **passed)]
    _set_weights(session, settings, row, policy.steps[row.step_index])
    return "advance"


def tick(
    sessions: sessionmaker[Session],
    settings: Settings,
    log_dir: Path | None = None,
    *,
    performance: Performance | None = None,
) -> None:
    """Evaluate every running rollout once (the control plane calls this about every second).

    ``performance`` gives the labelled outcomes per version for the model-metric guard (None: no
    labels, the guard never rolls back and ``require_labels`` holds).
    """
    log_dir = log_dir or settings.inference_log_dir
    with sessions() as session:
        ids = list(session.scalars(select(RolloutRow.id).where(RolloutRow.state == RUNNING)))
    for rollout_id in ids:
        try:
            decision, project = "hold", ""
            with sessions() as session, session.begin():
                row = session.get(RolloutRow, rollout_id)
                if row is not None and row.state == RUNNING:
                    project = row.deployment
                    decision = evaluate(session, settings, row, log_dir, datetime.now(UTC), performance)
            if decision != "hold":
                log.info("rollout %s of %s: %s", rollout_id, project, decision)
                _audit(sessions, project, decision, rollout_id)  # the platform's own decisions too
        except Exception:  # one broken rollout must not stop the others, nor the loop
            log.exception("evaluating rollout %s failed", rollout_id)


def _audit(sessions: sessionmaker[Session], project: str, decision: str, rollout_id: int) -> None:
    from pave.governance.audit import AuditEntry, append

    engine = sessions.kw["bind"]
    append(
        engine,
        AuditEntry(
            method="POST",
            path=f"/api/v1/projects/{project}/rollout/{decision}",
            status=200,
            request_id=f"rollout-{rollout_id}-{decision}",
            action="deploy",
            identity="pave-rollouts",
            project=project,
            detail=f"automatic {decision} of rollout {rollout_id}",
        ),
    )


def waiting_for(row: RolloutRow, log_dir: Path, now: datetime | None = None) -> str | None:
    """What a running rollout's step still waits for before it may advance, in words.

    None when the rollout does not run. The numbers are those :func:`evaluate` uses: the
    candidate's answers since the step started (``min_requests``), the step's age
    (``interval_seconds``) and, with ``require_labels``, the label counts it last saw.
    """
    if row.state != RUNNING:
        return None
    policy = RolloutPolicy.from_dict(row.policy)
    step = policy.steps[row.step_index]
    frame = read_inference_log(log_dir, start=row.step_started_at, deployment=row.deployment)
    answers = _stats(frame, row.candidate_version).requests
    left = policy.interval_seconds - ((now or datetime.now(UTC)) - row.step_started_at).total_seconds()
    needs = []
    if answers < policy.min_requests:
        needs.append(
            f"{policy.min_requests - answers} more answers from v{row.candidate_version} "
            f"({answers} of the {policy.min_requests} a step needs; send the deployment traffic)"
        )
    if left > 0:
        needs.append(f"{math.ceil(left)} s more of the {policy.interval_seconds:g} s a step lasts")
    last = row.history[-1] if row.history else {}
    if last.get("event") == "waiting_for_labels" and last.get("step") == step:
        labels = last.get("labels", {})
        needs.append(
            f"labels of {policy.min_labels} inferences per version (v{row.baseline_version} has "
            f"{labels.get('baseline', 0)}, v{row.candidate_version} {labels.get('candidate', 0)}; "
            "POST them to /api/v1/feedback)"
        )
    if not needs:
        return f"nothing: the {step:g}% step is checked again within a second"
    return f"the {step:g}% step waits for " + " and ".join(needs)


def describe(row: RolloutRow, *, log_dir: Path | None = None) -> dict[str, Any]:
    """The rollout as the API shows it; with ``log_dir``, also what its step waits for."""
    policy = RolloutPolicy.from_dict(row.policy)
    step = policy.steps[min(row.step_index, len(policy.steps) - 1)]
    return {
        "deployment": row.deployment,
        "state": row.state,
        "baseline_version": row.baseline_version,
        "candidate_version": row.candidate_version,
        "step": step if row.state == RUNNING else None,
        "steps": policy.steps,
        "policy": asdict(policy),
        "step_started_at": row.step_started_at.isoformat(),
        "history": row.history,
        "created_by": row.created_by,
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "waiting_for": waiting_for(row, log_dir) if log_dir is not None else None,
    }
