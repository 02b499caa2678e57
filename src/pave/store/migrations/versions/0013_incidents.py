"""Incidents: one per episode of a monitor's trouble (with its deliveries), and silences.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-06
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def _when(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "incidents",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("deployment", sa.String(100), nullable=True),
        sa.Column("monitor", sa.String(100), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("dedup_key", sa.String(400), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        _when("opened_at"),
        _when("last_seen_at"),
        _when("resolved_at", nullable=True),
        sa.Column("subjects", sa.JSON, nullable=False),
        sa.Column("ever", sa.JSON, nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("silence_id", sa.Integer, nullable=True),
    )
    op.create_index("ix_incidents_project", "incidents", ["project"])
    op.create_index("ix_incidents_dedup_key", "incidents", ["dedup_key"])
    op.create_index("ix_incidents_status", "incidents", ["status"])
    op.create_table(
        "silences",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("monitor", sa.String(100), nullable=True),
        sa.Column("kind", sa.String(40), nullable=True),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        _when("created_at"),
        _when("expires_at"),
    )
    op.create_index("ix_silences_project", "silences", ["project"])
    for table in ("alerts", "alert_deliveries"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("incident_id", sa.Integer, nullable=True))
            batch.create_index(f"ix_{table}_incident_id", ["incident_id"])


def downgrade() -> None:
    for table in ("alert_deliveries", "alerts"):
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_incident_id")
            batch.drop_column("incident_id")
    op.drop_index("ix_silences_project", table_name="silences")
    op.drop_table("silences")
    for index in ("status", "dedup_key", "project"):
        op.drop_index(f"ix_incidents_{index}", table_name="incidents")
    op.drop_table("incidents")
