"""The company front end and reports: front-end API tokens, report deliveries.

Revision ID: 0010
Revises: 0009

`api_tokens.front_end` marks the token of a front end that forwards its signed-in
reviewers' requests: such a request may name the acting person, and never reaches an
admin route. `report_deliveries` records each report period sent to each destination, so
that a period is delivered once, however often it is asked for.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
JSON = sa.JSON().with_variant(JSONB(), "postgresql")
UTCDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("api_tokens") as batch:
        batch.add_column(
            sa.Column("front_end", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "report_deliveries",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("report", sa.String(100), nullable=False),
        sa.Column("period", sa.String(50), nullable=False),
        sa.Column("destination", sa.String(500), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text),
        sa.Column("requested_by", sa.String(100)),
        sa.Column("details", JSON),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("delivered_at", UTCDateTime),
        sa.UniqueConstraint("report", "period", "destination", name="uq_report_deliveries_period"),
    )


def downgrade() -> None:
    op.drop_table("report_deliveries")
    with op.batch_alter_table("api_tokens") as batch:
        batch.drop_column("front_end")
