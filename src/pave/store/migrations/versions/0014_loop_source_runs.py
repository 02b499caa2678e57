"""The closed loop records a run (its code snapshot), never a folder: loop_sources.run_id.

A project recorded by folder keeps its spec; its ``run_id`` is NULL until its next ``pave run``.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("loop_sources") as batch:
        batch.add_column(sa.Column("run_id", sa.String(64), nullable=True))
        batch.drop_column("directory")


def downgrade() -> None:
    with op.batch_alter_table("loop_sources") as batch:
        batch.add_column(sa.Column("directory", sa.String(2000), nullable=False, server_default=""))
        batch.drop_column("run_id")
