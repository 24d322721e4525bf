"""The dashboard: review locks and incorrect steps, users, API tokens, edit audit, outbox.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

# Frozen types: what schema.UTCDateTime and schema.JSONType were when this ran.
UTCDateTime = sa.DateTime(timezone=True)
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _serial() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("qa_photo_reviews") as batch:
        batch.add_column(sa.Column("locked_by", sa.String(100)))
        batch.add_column(sa.Column("locked_at", UTCDateTime))
        batch.add_column(sa.Column("incorrect_steps", JSONType))
        batch.add_column(sa.Column("incorrect_comments", JSONType))
        batch.add_column(
            sa.Column("feedback_count", sa.Integer, nullable=False, server_default="0")
        )
    op.create_table(
        "users",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("username", sa.String(100), nullable=False, unique=True),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("last_login_at", UTCDateTime),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("last_used_at", UTCDateTime),
        sa.Column("revoked_at", UTCDateTime),
    )
    op.create_table(
        "review_edits",
        sa.Column("id", _serial(), primary_key=True),
        sa.Column("review_id", sa.Uuid, nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("action", sa.String(50), nullable=False),
        sa.Column("changes", JSONType),
        sa.Column("at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_review_edits_review_id", "review_edits", ["review_id"])
    op.create_table(
        "feedback_outbox",
        sa.Column("id", _serial(), primary_key=True),
        sa.Column("review_id", sa.Uuid, nullable=False),
        sa.Column("drop_number", sa.String(50), nullable=False),
        sa.Column("project", sa.String(100)),
        sa.Column("recipient", sa.String(100), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("request_key", sa.String(100), nullable=False, unique=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime),
        sa.Column("last_error", sa.Text),
        sa.Column("requested_by", sa.String(100)),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("sent_at", UTCDateTime),
    )
    op.create_index("ix_feedback_outbox_review_id", "feedback_outbox", ["review_id"])
    op.create_index("ix_feedback_outbox_due", "feedback_outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_table("feedback_outbox")
    op.drop_table("review_edits")
    op.drop_table("api_tokens")
    op.drop_table("users")
    with op.batch_alter_table("qa_photo_reviews") as batch:
        for column in (
            "feedback_count",
            "incorrect_comments",
            "incorrect_steps",
            "locked_at",
            "locked_by",
        ):
            batch.drop_column(column)
