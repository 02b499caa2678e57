"""Rollouts: progressive delivery of a candidate version under guard metrics.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("deployment", sa.String(100), nullable=False),
        sa.Column("baseline_version", sa.String(20), nullable=False),
        sa.Column("candidate_version", sa.String(20), nullable=False),
        sa.Column("policy", sa.JSON, nullable=False),
        sa.Column("step_index", sa.Integer, nullable=False),
        sa.Column("step_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("history", sa.JSON, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_rollouts_deployment", "rollouts", ["deployment"])


def downgrade() -> None:
    op.drop_index("ix_rollouts_deployment", table_name="rollouts")
    op.drop_table("rollouts")
