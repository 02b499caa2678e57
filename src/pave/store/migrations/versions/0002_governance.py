"""Governance: the hash-chained audit trail, role bindings per project, project policies.

The audit table is append-only in the database itself: triggers refuse UPDATE and DELETE, so
only someone who can drop a trigger (the database owner) can rewrite history, and
``pave audit verify`` then shows where.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION pave_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("seq", sa.Integer, nullable=False, unique=True),
        sa.Column("at", sa.String(32), nullable=False),
        sa.Column("identity", sa.String(200), nullable=True),
        sa.Column("token_id", sa.Integer, nullable=True),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("method", sa.String(10), nullable=False),
        sa.Column("path", sa.String(2000), nullable=False),
        sa.Column("project", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("client", sa.String(100), nullable=True),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("detail", sa.String(500), nullable=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_events_at", "audit_events", ["at"])
    op.create_index("ix_audit_events_identity", "audit_events", ["identity"])
    op.create_index("ix_audit_events_project", "audit_events", ["project"])
    op.create_index("ix_audit_events_outcome", "audit_events", ["outcome"])
    op.create_table(
        "role_bindings",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("identity", sa.String(200), nullable=False),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("granted_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("identity", "project"),
    )
    op.create_index("ix_role_bindings_identity", "role_bindings", ["identity"])
    op.create_index("ix_role_bindings_project", "role_bindings", ["project"])
    op.create_table(
        "project_policies",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("project", sa.String(100), nullable=False, unique=True),
        sa.Column("require_approval", sa.Boolean, nullable=False),
        sa.Column("max_concurrent_runs", sa.Integer, nullable=True),
        sa.Column("max_deployments", sa.Integer, nullable=True),
        sa.Column("max_stored_bytes", sa.BigInteger, nullable=True),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    # The chain's head: its row is the lock every append takes, its value the last seq written.
    op.execute("INSERT INTO counters (name, value) VALUES ('audit.seq', 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION pave_audit_append_only()"
        )
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events")
        op.execute("DROP FUNCTION IF EXISTS pave_audit_append_only()")
    op.execute("DELETE FROM counters WHERE name = 'audit.seq'")
    op.drop_table("project_policies")
    op.drop_index("ix_role_bindings_project", table_name="role_bindings")
    op.drop_index("ix_role_bindings_identity", table_name="role_bindings")
    op.drop_table("role_bindings")
    op.drop_table("audit_events")
