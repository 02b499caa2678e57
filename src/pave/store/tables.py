"""Pave's own tables: what MLflow has no notion of.

Runs, models and artifacts live in MLflow; here live identities, tokens, projects, the audit trail,
role bindings, project policies (approvals, quotas) and (in later migrations) deployments, rollouts,
monitors and alerts. Every change to this file comes with an Alembic migration in
``store/migrations/versions``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend (SQLite hands them back naive; they are UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime()}


class Identity(Base):
    """A user or a service account."""

    __tablename__ = "identities"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default="user")  # user | service
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)


class Token(Base):
    """An API token. Only the SHA-256 of the secret is stored."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity_id: Mapped[int] = mapped_column(ForeignKey("identities.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16))  # first characters, to recognise a token in lists
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    role: Mapped[str] = mapped_column(String(20), default="developer")
    project: Mapped[str | None] = mapped_column(String(200), nullable=True)  # None: platform-wide
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(nullable=True)


class Project(Base):
    """A project on the platform: usually one `pave new`, one `pave.yaml`, one registered model."""

    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    owner: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    template: Mapped[str | None] = mapped_column(String(100), nullable=True)
    template_version: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    labels: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class Counter(Base):
    """Named monotonic counters; gateways poll ``deployments`` to learn about changes."""

    __tablename__ = "counters"
    __table_args__ = (UniqueConstraint("name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    value: Mapped[int] = mapped_column(Integer, default=0)


class AuditEvent(Base):
    """One record of the append-only, hash-chained audit trail (see ``pave.governance.audit``).

    ``hash = sha256(prev_hash + canonical JSON of the record)``; ``seq`` is unique and gapless, so
    two writers can never fork the chain and a deleted row shows as a gap.
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, unique=True)
    at: Mapped[str] = mapped_column(String(32), index=True)  # ISO 8601 UTC, microseconds, "Z"
    identity: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    action: Mapped[str] = mapped_column(String(40))
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(2000))
    project: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(10), index=True)  # allowed | denied | failed
    client: Mapped[str | None] = mapped_column(String(100), nullable=True)
    request_id: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str | None] = mapped_column(String(500), nullable=True)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class RoleBinding(Base):
    """An identity's role on one project."""

    __tablename__ = "role_bindings"
    __table_args__ = (UniqueConstraint("identity", "project"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    identity: Mapped[str] = mapped_column(String(200), index=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(20))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProjectPolicy(Base):
    """A project's governance policy: approvals before production, quotas (None: unlimited)."""

    __tablename__ = "project_policies"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100), unique=True)
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    max_concurrent_runs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_deployments: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_stored_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeploymentRow(Base):
    """A deployment: an OIP model name and its traffic (the gateway's JSON form in ``spec``)."""

    __tablename__ = "deployments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RolloutRow(Base):
    """A progressive rollout of a candidate version on a deployment, step by step under guards."""

    __tablename__ = "rollouts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    deployment: Mapped[str] = mapped_column(String(100), index=True)
    baseline_version: Mapped[str] = mapped_column(String(20))
    candidate_version: Mapped[str] = mapped_column(String(20))
    policy: Mapped[dict[str, Any]] = mapped_column(JSON)  # steps, interval, guards
    step_index: Mapped[int] = mapped_column(Integer, default=0)
    step_started_at: Mapped[datetime] = mapped_column(default=utcnow)
    state: Mapped[str] = mapped_column(String(20), default="running")  # running|promoted|rolled_back
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


# --- teams (migration 0007) ---------------------------------------------------------------------------


class Team(Base):
    """A group of identities that hold project roles together."""

    __tablename__ = "teams"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamMember(Base):
    """An identity's membership of a team."""

    __tablename__ = "team_members"
    __table_args__ = (UniqueConstraint("team_id", "identity"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    identity: Mapped[str] = mapped_column(String(200), index=True)
    added_by: Mapped[str] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(default=utcnow)


class TeamBinding(Base):
    """A team's role on one project: every member holds it there."""

    __tablename__ = "team_bindings"
    __table_args__ = (UniqueConstraint("team_id", "project"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    team_id: Mapped[int] = mapped_column(ForeignKey("teams.id", ondelete="CASCADE"))
    project: Mapped[str] = mapped_column(String(100), index=True)
    role: Mapped[str] = mapped_column(String(20))
    granted_by: Mapped[str] = mapped_column(String(200))
    granted_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- monitoring (migration 0005) ---------------------------------------------------------------


class InferenceIndexRow(Base):
    """One answered request of the inference log, indexed so that labels can find their prediction.

    Filled by :func:`pave.monitoring.ingest.ingest` from the gateways' JSON-lines logs (shadow copies
    are not indexed: a label belongs to the answer the caller got).
    """

    __tablename__ = "inference_index"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inference_id: Mapped[str] = mapped_column(String(64), unique=True)
    deployment: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[str] = mapped_column(String(20))
    ts: Mapped[datetime] = mapped_column(index=True)
    n_rows: Mapped[int] = mapped_column(Integer)
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON)  # output name -> one value per row


class FeedbackRow(Base):
    """The label (ground truth) of one inference id; ``history`` keeps every earlier label."""

    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    inference_id: Mapped[str] = mapped_column(String(64), unique=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    deployment: Mapped[str] = mapped_column(String(100), index=True)
    label: Mapped[Any] = mapped_column(JSON)  # one value, or one value per row of the request
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class InferenceLogCursor(Base):
    """How far the control plane has read one inference-log file (bytes of complete lines)."""

    __tablename__ = "inference_log_cursors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(String(500), unique=True)
    offset: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MonitorStateRow(Base):
    """When a project's monitor last ran and what it found (also the baseline of prediction drift)."""

    __tablename__ = "monitor_state"
    __table_args__ = (UniqueConstraint("project", "monitor"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    monitor: Mapped[str] = mapped_column(String(100))
    last_run_at: Mapped[datetime | None] = mapped_column(nullable=True)
    last_result: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    baseline: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class AlertRow(Base):
    """An alert: opened when a monitor fires, deduplicated while it persists, resolved when it stops."""

    __tablename__ = "alerts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    deployment: Mapped[str | None] = mapped_column(String(100), nullable=True)
    monitor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))  # drift | prediction_drift | performance
    subject: Mapped[str] = mapped_column(String(200))  # feature or metric name
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)  # open | resolved
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # 0013


class AlertDeliveryRow(Base):
    """One message of one alert to one sink; retried with back-off until delivered."""

    __tablename__ = "alert_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    alert_id: Mapped[int] = mapped_column(Integer, ForeignKey("alerts.id", ondelete="CASCADE"), index=True)
    sink: Mapped[str] = mapped_column(String(20))  # webhook | slack | pagerduty
    url: Mapped[str] = mapped_column(String(2000))
    event: Mapped[str] = mapped_column(String(20))  # open | resolve
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), index=True)  # pending | delivered | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(nullable=True)
    incident_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)  # 0013


# --- incidents (migration 0013) ------------------------------------------------------------------------


class IncidentRow(Base):
    """One episode of one monitor's kind of trouble (drift on N features is one incident).

    Opened when the first subject fires, it lists the subjects firing now and every subject that
    fired during the episode; it resolves when none fires. Its ``dedup_key`` is the same for every
    episode of the monitor's kind, so a pager folds repeats into one incident.
    """

    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    deployment: Mapped[str | None] = mapped_column(String(100), nullable=True)
    monitor: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(40))
    dedup_key: Mapped[str] = mapped_column(String(400), index=True)
    severity: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), index=True)  # open | resolved
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(nullable=True)
    subjects: Mapped[list[str]] = mapped_column(JSON, default=list)  # firing now
    ever: Mapped[list[str]] = mapped_column(JSON, default=list)  # fired at some point of the episode
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # subject -> the monitor's numbers
    silence_id: Mapped[int | None] = mapped_column(Integer, nullable=True)  # opened under a silence


class SilenceRow(Base):
    """No notifications for a project's incidents (of one monitor or kind) until ``expires_at``."""

    __tablename__ = "silences"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    monitor: Mapped[str | None] = mapped_column(String(100), nullable=True)  # None: every monitor
    kind: Mapped[str | None] = mapped_column(String(40), nullable=True)  # None: every kind
    reason: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()


# --- portal (migration 0008) -------------------------------------------------------------------------


class PortalSession(Base):
    """A browser session of the portal: the token it stands for, behind a random cookie.

    Only the SHA-256 of the cookie's session id is stored. The session dies with its token: every
    request checks the token again (revoked or expired token: signed out).
    """

    __tablename__ = "portal_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    token_id: Mapped[int] = mapped_column(ForeignKey("tokens.id", ondelete="CASCADE"), index=True)
    identity: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


# --- automation (migration 0006) ---------------------------------------------------------------------


class ProjectObjectRow(Base):
    """A content-addressed object (dataset version, code snapshot) stored by a project.

    The bytes live once in the object store whoever stored them; this index is what lets a project
    read an object back: only what the project itself stored (and proved it had, by sending it).
    """

    __tablename__ = "project_objects"
    __table_args__ = (UniqueConstraint("project", "kind", "sha256", name="uq_project_objects"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    filename: Mapped[str] = mapped_column(String(200))
    size: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LoopSourceRow(Base):
    """The run a project's last ``pave run`` recorded: what a retrain re-runs (its code snapshot).

    ``spec`` is the project's ``pave.yaml`` as of that run (its ``retrain`` and ``monitor`` sections
    drive the schedule and the reaction to alerts); ``next_retrain_at`` is the next time the
    ``retrain.schedule`` cron expression fires. ``run_id`` is NULL only for a project recorded by
    folder before snapshots (its next ``pave run`` records a run).
    """

    __tablename__ = "loop_sources"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100), unique=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    recorded_by: Mapped[str] = mapped_column(String(200))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
    next_retrain_at: Mapped[datetime | None] = mapped_column(nullable=True)


class LoopRunRow(Base):
    """One turn of the closed loop: trigger -> ``pave run`` -> gates -> rollout -> outcome.

    ``active`` holds the project's name while the turn is in flight and NULL once it ended: the
    unique constraint on it is what keeps two retrains of one project from ever running at once.
    """

    __tablename__ = "loop_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    active: Mapped[str | None] = mapped_column(String(100), unique=True, nullable=True)
    trigger: Mapped[str] = mapped_column(String(20))  # manual | schedule | alert | data_change
    alert_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    triggered_by: Mapped[str] = mapped_column(String(200))
    # queued | training | rolling_out | promoted | rolled_back | gates_failed | unchanged | registered
    # | failed
    state: Mapped[str] = mapped_column(String(20), index=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    model_version: Mapped[str | None] = mapped_column(String(20), nullable=True)
    gates: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    rollout_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(500), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    token_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    history: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(nullable=True)


class ProcessRow(Base):
    """A process of the platform (control plane, gateway, worker) and when it last said it was alive.

    Each writes its row every few seconds (``pave.store.processes``); ``pave status`` lists them.
    """

    __tablename__ = "platform_processes"

    id: Mapped[str] = mapped_column(String(300), primary_key=True)  # role and where it answers
    role: Mapped[str] = mapped_column(String(30), index=True)
    url: Mapped[str] = mapped_column(String(500), default="")
    host: Mapped[str] = mapped_column(String(200), default="")
    pid: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    info: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class UsageRow(Base):
    """What one piece of work used (a step, a tuning trial, a batch job, a deployment's hour).

    Written by the control plane when a job reports it (``POST /api/v1/projects/P/usage``) and by
    its background work for deployments; priced by ``pave.governance.costs`` with the settings'
    price table.
    """

    __tablename__ = "usage"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    project: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # step | trial | batch | deployment | storage
    ref: Mapped[str] = mapped_column(String(300), default="")  # run id and step, job run id, hour
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    cpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    gpu_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    peak_memory: Mapped[int] = mapped_column(BigInteger, default=0)  # bytes
    stored_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    requests: Mapped[int] = mapped_column(BigInteger, default=0)


class InferenceSegmentRow(Base):
    """A complete inference-log file a gateway shipped to the object store (``serving/shipping.py``)."""

    __tablename__ = "inference_segments"
    __table_args__ = (UniqueConstraint("key"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(500))  # under the artifact root
    gateway: Mapped[str] = mapped_column(String(500), default="")  # the gateway's advertised URL
    first_ts: Mapped[datetime] = mapped_column(index=True)
    last_ts: Mapped[datetime] = mapped_column(index=True)
    records: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
