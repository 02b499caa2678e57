"""Platform processes: control planes, gateways and workers with their last heartbeat.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_processes",
        sa.Column("id", sa.String(300), primary_key=True),
        sa.Column("role", sa.String(30), nullable=False),
        sa.Column("url", sa.String(500), nullable=False),
        sa.Column("host", sa.String(200), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("info", sa.JSON, nullable=False),
    )
    op.create_index("ix_platform_processes_role", "platform_processes", ["role"])
    op.create_index("ix_platform_processes_seen_at", "platform_processes", ["seen_at"])


def downgrade() -> None:
    op.drop_index("ix_platform_processes_seen_at", table_name="platform_processes")
    op.drop_index("ix_platform_processes_role", table_name="platform_processes")
    op.drop_table("platform_processes")
