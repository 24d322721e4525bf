"""Operations: the monitor's heartbeat and the audit of configuration changes.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

# Frozen types: what schema.UTCDateTime and schema.JSONType were when this ran.
UTCDateTime = sa.DateTime(timezone=True)
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitor_heartbeats",
        sa.Column("instance", sa.String(200), primary_key=True),
        sa.Column("host", sa.String(200)),
        sa.Column("pid", sa.Integer),
        sa.Column("started_at", UTCDateTime),
        sa.Column("beat_at", UTCDateTime, nullable=False),
        sa.Column("counters", JSONType),
        sa.Column("status", JSONType),
    )
    op.create_table(
        "config_audit",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
        sa.Column("at", UTCDateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("source", sa.String(50), nullable=False),
        sa.Column("path", sa.String(500)),
        sa.Column("diff", sa.Text),
    )


def downgrade() -> None:
    op.drop_table("config_audit")
    op.drop_table("monitor_heartbeats")
