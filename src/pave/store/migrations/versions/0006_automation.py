"""Automation: the closed loop's runs (retrain, gates, rollout) and scheduled retraining.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "loop_sources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(100), nullable=False, unique=True),
        sa.Column("directory", sa.String(2000), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_retrain_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "loop_runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("active", sa.String(100), nullable=True, unique=True),
        sa.Column("trigger", sa.String(20), nullable=False),
        sa.Column("alert_id", sa.Integer, nullable=True),
        sa.Column("triggered_by", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("model_version", sa.String(20), nullable=True),
        sa.Column("gates", sa.JSON, nullable=False),
        sa.Column("rollout_id", sa.Integer, nullable=True),
        sa.Column("outcome", sa.String(500), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("token_id", sa.Integer, nullable=True),
        sa.Column("history", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_loop_runs_project", "loop_runs", ["project"])
    op.create_index("ix_loop_runs_state", "loop_runs", ["state"])


def downgrade() -> None:
    op.drop_index("ix_loop_runs_state", table_name="loop_runs")
    op.drop_index("ix_loop_runs_project", table_name="loop_runs")
    op.drop_table("loop_runs")
    op.drop_table("loop_sources")
