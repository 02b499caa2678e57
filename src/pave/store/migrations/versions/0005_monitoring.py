"""Monitoring: inference feedback (labels), monitors' state and alerts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "inference_index",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("inference_id", sa.String(64), nullable=False, unique=True),
        sa.Column("deployment", sa.String(100), nullable=False),
        sa.Column("version", sa.String(20), nullable=False),
        _when("ts"),
        sa.Column("n_rows", sa.Integer, nullable=False),
        sa.Column("outputs", sa.JSON, nullable=False),
    )
    op.create_index("ix_inference_index_deployment", "inference_index", ["deployment"])
    op.create_index("ix_inference_index_ts", "inference_index", ["ts"])
    op.create_table(
        "feedback",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("inference_id", sa.String(64), nullable=False, unique=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("deployment", sa.String(100), nullable=False),
        sa.Column("label", sa.JSON, nullable=True),
        sa.Column("history", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _when("created_at"),
        sa.Column("updated_by", sa.String(200), nullable=False),
        _when("updated_at"),
    )
    op.create_index("ix_feedback_project", "feedback", ["project"])
    op.create_index("ix_feedback_deployment", "feedback", ["deployment"])
    op.create_index("ix_feedback_updated_at", "feedback", ["updated_at"])
    op.create_table(
        "inference_log_cursors",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("path", sa.String(500), nullable=False, unique=True),
        sa.Column("offset", sa.BigInteger, nullable=False),
        _when("updated_at"),
    )
    op.create_table(
        "monitor_state",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("monitor", sa.String(100), nullable=False),
        _when("last_run_at", nullable=True),
        sa.Column("last_result", sa.JSON, nullable=False),
        sa.Column("baseline", sa.JSON, nullable=True),
        sa.UniqueConstraint("project", "monitor"),
    )
    op.create_index("ix_monitor_state_project", "monitor_state", ["project"])
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("deployment", sa.String(100), nullable=True),
        sa.Column("monitor", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _when("opened_at"),
        _when("last_seen_at"),
        _when("resolved_at", nullable=True),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_index("ix_alerts_project", "alerts", ["project"])
    op.create_index("ix_alerts_status", "alerts", ["status"])
    op.create_table(
        "alert_deliveries",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("alerts.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sink", sa.String(20), nullable=False),
        sa.Column("url", sa.String(2000), nullable=False),
        sa.Column("event", sa.String(20), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _when("next_attempt_at"),
        sa.Column("last_error", sa.String(500), nullable=True),
        _when("created_at"),
        _when("delivered_at", nullable=True),
    )
    op.create_index("ix_alert_deliveries_alert_id", "alert_deliveries", ["alert_id"])
    op.create_index("ix_alert_deliveries_status", "alert_deliveries", ["status"])


def downgrade() -> None:
    for table in ("alert_deliveries", "alerts", "monitor_state", "inference_log_cursors", "feedback"):
        op.drop_table(table)
    op.drop_table("inference_index")
