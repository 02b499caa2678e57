"""Inference segments: log files gateways shipped to the object store, indexed for the control planes.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "inference_segments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("key", sa.String(500), nullable=False),
        sa.Column("gateway", sa.String(500), nullable=False),
        sa.Column("first_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records", sa.Integer, nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("key", name="uq_inference_segments_key"),
    )
    op.create_index("ix_inference_segments_first_ts", "inference_segments", ["first_ts"])
    op.create_index("ix_inference_segments_last_ts", "inference_segments", ["last_ts"])
    op.create_index("ix_inference_segments_created_at", "inference_segments", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_inference_segments_created_at", table_name="inference_segments")
    op.drop_index("ix_inference_segments_last_ts", table_name="inference_segments")
    op.drop_index("ix_inference_segments_first_ts", table_name="inference_segments")
    op.drop_table("inference_segments")
