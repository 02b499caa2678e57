"""Portal: browser sessions (a signed-in Pave token behind an HttpOnly cookie).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "portal_sessions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_hash", sa.String(64), nullable=False),
        sa.Column("token_id", sa.Integer, sa.ForeignKey("tokens.id", ondelete="CASCADE"), nullable=False),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_portal_sessions_session_hash", "portal_sessions", ["session_hash"], unique=True)
    op.create_index("ix_portal_sessions_token_id", "portal_sessions", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_portal_sessions_token_id", table_name="portal_sessions")
    op.drop_index("ix_portal_sessions_session_hash", table_name="portal_sessions")
    op.drop_table("portal_sessions")
