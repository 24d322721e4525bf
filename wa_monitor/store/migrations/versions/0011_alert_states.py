"""Alerts that reach a person: what each alert last told each channel, and when.

Revision ID: 0011
Revises: 0010

`alert_states` keeps one row per (alert, channel): firing or resolved, since when, when
its last message went. A restart (or a second dashboard) reads it, so an alert is not
told twice within its quiet period; `version` lets one process claim a message at a time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
UTCDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alert_states",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("alert", sa.String(100), nullable=False),
        sa.Column("channel", sa.String(500), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("since", UTCDateTime),
        sa.Column("sent_at", UTCDateTime),
        sa.Column("attempt_at", UTCDateTime),
        sa.Column("version", sa.Integer, nullable=False, server_default="0"),
        sa.Column("message", sa.Text),
        sa.Column("last_error", sa.Text),
        sa.Column("details", JSON),
        sa.UniqueConstraint("alert", "channel", name="uq_alert_states_channel"),
    )


def downgrade() -> None:
    op.drop_table("alert_states")
