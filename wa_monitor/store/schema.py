"""The review database's tables, as the code sees them at the current migration head."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Dialect

from wa_monitor.core.steps import STEP_COLUMNS

# The Alembic revision this code is written against; `scan`, `run` and `serve` refuse
# any other (see store.ReviewStore.check_schema).
SCHEMA_HEAD = "0007"


class UTCDateTime(sa.TypeDecorator[datetime]):
    """An instant: timestamptz on PostgreSQL, UTC text on SQLite; always aware in Python."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for an instant column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        instant: datetime = value
        if instant.tzinfo is None:
            return instant.replace(tzinfo=UTC)
        return instant.astimezone(UTC)


JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

metadata = sa.MetaData()

qa_photo_reviews = sa.Table(
    "qa_photo_reviews",
    metadata,
    sa.Column("id", sa.Uuid, primary_key=True),
    sa.Column("drop_number", sa.String(50), nullable=False),
    sa.Column("review_date", sa.Date, nullable=False, server_default=sa.text("CURRENT_DATE")),
    sa.Column("user_name", sa.String(100), nullable=False),
    sa.Column("project", sa.String(100)),
    sa.Column("whatsapp_message_date", UTCDateTime),
    sa.Column("resubmitted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("incomplete", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("completed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("feedback_sent", UTCDateTime),
    *(
        sa.Column(step, sa.Boolean, nullable=False, server_default=sa.false())
        for step in STEP_COLUMNS
    ),
    sa.Column("comment", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("submitted_by", sa.String(50)),
    sa.Column("last_message_date", UTCDateTime),
    # 0002: the dashboard's review state
    sa.Column("locked_by", sa.String(100)),
    sa.Column("locked_at", UTCDateTime),
    sa.Column("incorrect_steps", JSONType),
    sa.Column("incorrect_comments", JSONType),
    sa.Column("feedback_count", sa.Integer, nullable=False, server_default="0"),
    # 0007: how many writes the review has had, and the one at which its comment and its
    # review of the steps last changed; a trigger keeps them, whoever writes the row.
    sa.Column("version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("comment_version", sa.Integer, nullable=False, server_default="1"),
    sa.Column("steps_version", sa.Integer, nullable=False, server_default="1"),
    sa.UniqueConstraint("project", "drop_number", name="uq_qa_photo_reviews_project_drop"),
)

drop_submissions = sa.Table(
    "drop_submissions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("chat_jid", sa.String(100), nullable=False),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("drop_number", sa.String(50), nullable=False),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("sender", sa.String(50), nullable=False),
    sa.Column("sender_name", sa.String(100), nullable=False),
    sa.Column("message_time", UTCDateTime, nullable=False),
    sa.Column("kind", sa.String(20), nullable=False),
    sa.Column("recorded_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint(
        "chat_jid", "message_id", "drop_number", name="uq_drop_submissions_message_drop"
    ),
)

scan_cursors = sa.Table(
    "scan_cursors",
    metadata,
    sa.Column("chat_jid", sa.String(100), primary_key=True),
    sa.Column("last_rowid", sa.BigInteger, nullable=False),
    sa.Column("anchor", sa.String(250)),
    sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
)

# 0002: the dashboard
users = sa.Table(
    "users",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("username", sa.String(100), nullable=False, unique=True),
    sa.Column("password_hash", sa.String(255), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("last_login_at", UTCDateTime),
    # 0006: a session cookie is valid only while it carries the user's current version
    sa.Column("session_version", sa.Integer, nullable=False, server_default="0"),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("user_id", sa.Integer, sa.ForeignKey("users.id"), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.String(128), nullable=False, unique=True),
    sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("last_used_at", UTCDateTime),
    sa.Column("revoked_at", UTCDateTime),
)

review_edits = sa.Table(
    "review_edits",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("review_id", sa.Uuid, nullable=False, index=True),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("action", sa.String(50), nullable=False),
    sa.Column("changes", JSONType),
    sa.Column("at", UTCDateTime, nullable=False, server_default=sa.func.now()),
)

feedback_outbox = sa.Table(
    "feedback_outbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("review_id", sa.Uuid, nullable=False, index=True),
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

# 0003: operations
monitor_heartbeats = sa.Table(
    "monitor_heartbeats",
    metadata,
    sa.Column("instance", sa.String(200), primary_key=True),
    sa.Column("host", sa.String(200)),
    sa.Column("pid", sa.Integer),
    sa.Column("started_at", UTCDateTime),
    sa.Column("beat_at", UTCDateTime, nullable=False),
    sa.Column("counters", JSONType),
    sa.Column("status", JSONType),
)

config_audit = sa.Table(
    "config_audit",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("source", sa.String(50), nullable=False),
    sa.Column("path", sa.String(500)),
    sa.Column("diff", sa.Text),
)

# Indexes, as the migrations create them (tests/integration/test_migrations.py compares).
# The list's order: must stay the expression wa_monitor.web.queries.LATEST orders by.
_LATEST = sa.func.coalesce(
    qa_photo_reviews.c.last_message_date,
    qa_photo_reviews.c.whatsapp_message_date,
    qa_photo_reviews.c.created_at,
)
sa.Index(
    "ix_qa_photo_reviews_list_latest",
    qa_photo_reviews.c.resubmitted.desc(),
    _LATEST.desc(),
    qa_photo_reviews.c.drop_number,
    qa_photo_reviews.c.id,
)
sa.Index(
    "ix_qa_photo_reviews_list_order",
    qa_photo_reviews.c.resubmitted,
    qa_photo_reviews.c.whatsapp_message_date,
)
sa.Index(
    "ix_qa_photo_reviews_message_day",
    qa_photo_reviews.c.whatsapp_message_date,
    qa_photo_reviews.c.project,
    qa_photo_reviews.c.drop_number,
)
sa.Index(
    "ix_qa_photo_reviews_summary",
    qa_photo_reviews.c.resubmitted,
    qa_photo_reviews.c.completed,
    qa_photo_reviews.c.feedback_count,
    qa_photo_reviews.c.feedback_sent,
)
sa.Index(
    "ix_drop_submissions_project_drop",
    drop_submissions.c.project,
    drop_submissions.c.drop_number,
)
sa.Index("ix_feedback_outbox_due", feedback_outbox.c.status, feedback_outbox.c.next_attempt_at)
