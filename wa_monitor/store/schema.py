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
SCHEMA_HEAD = "0012"


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

# The review state of a row (migration 0009; core/queue.py derives the same in Python).
# A resubmission counts once feedback was sent before it; one before any feedback leaves
# the drop new.
_RESUBMITTED = "feedback_sent IS NOT NULL AND last_message_date > feedback_sent"
STATE_SQL = (
    "CASE WHEN invalid THEN 'invalid' "
    "WHEN completed THEN 'approved' "
    "WHEN assigned_agent IS NOT NULL THEN 'in_review' "
    f"WHEN {_RESUBMITTED} THEN 'resubmitted' "
    "WHEN feedback_sent IS NOT NULL THEN 'needs_correction' "
    "ELSE 'new' END"
)
# 0: waiting for a reviewer (new, resubmitted, in review), 1: for the installer, 2: approved,
# 3: invalid.
RANK_SQL = (
    "CASE WHEN invalid THEN 3 WHEN completed THEN 2 "
    "WHEN assigned_agent IS NOT NULL THEN 0 "
    f"WHEN {_RESUBMITTED} THEN 0 "
    "WHEN feedback_sent IS NOT NULL THEN 1 ELSE 0 END"
)
# Since when the queue waits: the resubmission after feedback, the feedback while the
# installer corrects, else the first post.
WAITING_SQL = (
    f"CASE WHEN {_RESUBMITTED} THEN last_message_date "
    "WHEN feedback_sent IS NOT NULL AND NOT completed THEN feedback_sent "
    "ELSE COALESCE(whatsapp_message_date, created_at) END"
)

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
    # 0008: the serials read from the photos of steps 8 and 9.
    sa.Column("ont_serial_scanned", sa.String(100)),
    sa.Column("ups_serial_scanned", sa.String(100)),
    # 0009: the review queue. Who took the drop; whether its number is off the project's
    # list; the reasons picked per step ({step: [reason]}).
    sa.Column("assigned_agent", sa.String(100)),
    sa.Column("assigned_at", UTCDateTime),
    sa.Column("invalid", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("incorrect_reasons", JSONType),
    # Derived by the database from the row alone, whoever writes it (core/queue.py says
    # the same in Python): the review state, the queue's rank and what the queue waits on.
    sa.Column("review_state", sa.String(20), sa.Computed(sa.text(STATE_SQL))),
    sa.Column("queue_rank", sa.Integer, sa.Computed(sa.text(RANK_SQL))),
    sa.Column("waiting_since", UTCDateTime, sa.Computed(sa.text(WAITING_SQL))),
    # 0012: when the last of the drop's posts was deleted in WhatsApp (None: one is left)
    sa.Column("post_deleted_at", UTCDateTime),
)

# 0009: each project's valid drop numbers (replaced whole by an import), and the imports.
drop_lists = sa.Table(
    "drop_lists",
    metadata,
    sa.Column("project", sa.String(100), primary_key=True),
    sa.Column("drop_number", sa.String(50), primary_key=True),
    sa.Column("imported_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
)

drop_list_imports = sa.Table(
    "drop_list_imports",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("project", sa.String(100), nullable=False),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("filename", sa.String(255)),
    sa.Column("added", sa.Integer, nullable=False),
    sa.Column("removed", sa.Integer, nullable=False),
    sa.Column("total", sa.Integer, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False, server_default=sa.func.now()),
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
    sa.Column("deleted_at", UTCDateTime),  # 0012: the post was deleted in WhatsApp
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
    # 0010: a front end's token: its requests may name the acting person, never admin routes
    sa.Column("front_end", sa.Boolean, nullable=False, server_default=sa.false()),
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
    # 0012: the gateway that sent it, and the WhatsApp message id it answered
    sa.Column("gateway", sa.String(30)),
    sa.Column("gateway_message_id", sa.String(100)),
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

# 0008: the groups' other messages (photos, videos, documents, texts), each linked to the
# drop and round it belongs to; media rows are also the fetch queue and hold what the
# file showed. `status` is None for a text, else pending, available, failed, unavailable.
group_messages = sa.Table(
    "group_messages",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("chat_jid", sa.String(100), nullable=False),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("project", sa.String(100)),
    sa.Column("sender", sa.String(50), nullable=False),
    sa.Column("sender_name", sa.String(100)),
    sa.Column("posted_at", UTCDateTime, nullable=False),
    sa.Column("content", sa.Text),
    sa.Column("media_type", sa.String(20), nullable=False),
    sa.Column("filename", sa.String(255)),
    sa.Column("file_sha256", sa.String(64)),
    sa.Column("file_length", sa.BigInteger),
    sa.Column("drop_number", sa.String(50)),
    sa.Column("review_id", sa.Uuid),
    sa.Column("round", sa.Integer),
    sa.Column("post_message_id", sa.String(100)),
    sa.Column("link_reason", sa.String(20), nullable=False, server_default="none"),
    sa.Column("step", sa.String(50)),
    sa.Column("status", sa.String(20)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("last_error", sa.Text),
    sa.Column("fetched_at", UTCDateTime),
    sa.Column("sha256", sa.String(64)),
    sa.Column("size", sa.BigInteger),
    sa.Column("content_type", sa.String(100)),
    sa.Column("width", sa.Integer),
    sa.Column("height", sa.Integer),
    sa.Column("thumb_sha256", sa.String(64)),
    sa.Column("phash", sa.String(16)),
    sa.Column("phash_b0", sa.Integer),
    sa.Column("phash_b1", sa.Integer),
    sa.Column("phash_b2", sa.Integer),
    sa.Column("phash_b3", sa.Integer),
    sa.Column("duplicate_of", sa.BigInteger().with_variant(sa.Integer, "sqlite")),
    sa.Column("barcodes", JSONType),
    sa.Column("hints", JSONType),
    sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("chat_jid", "message_id", name="uq_group_messages_message"),
)

# Reviewers' decisions on photos (moved, detached, step), oldest first by id.
photo_decisions = sa.Table(
    "photo_decisions",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("chat_jid", sa.String(100), nullable=False),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("action", sa.String(20), nullable=False),
    sa.Column("drop_number", sa.String(50)),
    sa.Column("round", sa.Integer),
    sa.Column("step", sa.String(50)),
    sa.Column("actor", sa.String(100), nullable=False),
    sa.Column("at", UTCDateTime, nullable=False, server_default=sa.func.now()),
)

# The media worker's own cursor per group (apart from the scan's) and other marks.
media_cursors = sa.Table(
    "media_cursors",
    metadata,
    sa.Column("chat_jid", sa.String(100), primary_key=True),
    sa.Column("last_rowid", sa.BigInteger, nullable=False),
    sa.Column("anchor", sa.String(250)),
    sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
)

worker_marks = sa.Table(
    "worker_marks",
    metadata,
    sa.Column("name", sa.String(50), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
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
sa.Index(
    "ix_qa_photo_reviews_queue",
    qa_photo_reviews.c.queue_rank,
    qa_photo_reviews.c.waiting_since,
    qa_photo_reviews.c.id,
)
sa.Index("ix_qa_photo_reviews_state", qa_photo_reviews.c.review_state, qa_photo_reviews.c.project)
sa.Index("ix_feedback_outbox_due", feedback_outbox.c.status, feedback_outbox.c.next_attempt_at)
sa.Index(
    "ix_group_messages_review",
    group_messages.c.review_id,
    group_messages.c.round,
    group_messages.c.posted_at,
    group_messages.c.message_id,
)
sa.Index("ix_group_messages_queue", group_messages.c.status, group_messages.c.next_attempt_at)
sa.Index("ix_group_messages_posted", group_messages.c.status, group_messages.c.posted_at)
sa.Index(
    "ix_group_messages_sender",
    group_messages.c.chat_jid,
    group_messages.c.sender,
    group_messages.c.posted_at,
)
sa.Index("ix_group_messages_sha256", group_messages.c.sha256)
sa.Index("ix_group_messages_phash_b0", group_messages.c.phash_b0)
sa.Index("ix_group_messages_phash_b1", group_messages.c.phash_b1)
sa.Index("ix_group_messages_phash_b2", group_messages.c.phash_b2)
sa.Index("ix_group_messages_phash_b3", group_messages.c.phash_b3)
sa.Index("ix_photo_decisions_message", photo_decisions.c.chat_jid, photo_decisions.c.message_id)
# "Serial already used on another drop" looks a serial up; partial: most reviews have none.
for _serial in (qa_photo_reviews.c.ont_serial_scanned, qa_photo_reviews.c.ups_serial_scanned):
    sa.Index(
        f"ix_qa_photo_reviews_{_serial.name}",
        _serial,
        postgresql_where=_serial.isnot(None),
        sqlite_where=_serial.isnot(None),
    )


# 0010: each report period delivered to each destination exactly once.
report_deliveries = sa.Table(
    "report_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("report", sa.String(100), nullable=False),
    sa.Column("period", sa.String(50), nullable=False),
    sa.Column("destination", sa.String(500), nullable=False),
    sa.Column("status", sa.String(20), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("requested_by", sa.String(100)),
    sa.Column("details", JSONType),
    sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.Column("delivered_at", UTCDateTime),
    sa.UniqueConstraint("report", "period", "destination", name="uq_report_deliveries_period"),
)


# 0011: what each alert last told each channel (its quiet period survives restarts).
alert_states = sa.Table(
    "alert_states",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("alert", sa.String(100), nullable=False),
    sa.Column("channel", sa.String(500), nullable=False),
    sa.Column("state", sa.String(20), nullable=False),
    sa.Column("since", UTCDateTime),
    sa.Column("sent_at", UTCDateTime),
    sa.Column("attempt_at", UTCDateTime),
    sa.Column("version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("message", sa.Text),
    sa.Column("last_error", sa.Text),
    sa.Column("details", JSONType),
    sa.UniqueConstraint("alert", "channel", name="uq_alert_states_channel"),
)


# 0012: what the webhook gateways delivered, read by the monitor as a source (`seq` is
# its rowid, given in commit order by the writer; a new one after an edit or a deletion).
gateway_inbox = sa.Table(
    "gateway_inbox",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("seq", sa.BigInteger),
    sa.Column("gateway", sa.String(30), nullable=False),
    sa.Column("chat_jid", sa.String(100), nullable=False),
    sa.Column("message_id", sa.String(100), nullable=False),
    sa.Column("sender", sa.String(100), nullable=False),
    sa.Column("sender_pn", sa.String(50)),
    sa.Column("sender_name", sa.String(100)),
    sa.Column("content", sa.Text),
    sa.Column("sent_at", sa.Float(precision=53), nullable=False),  # epoch seconds
    sa.Column("from_me", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("media_type", sa.String(20)),
    sa.Column("media_url", sa.Text),
    sa.Column("media_mimetype", sa.String(100)),
    sa.Column("filename", sa.String(255)),
    sa.Column("file_sha256", sa.LargeBinary),
    sa.Column("file_length", sa.BigInteger),
    sa.Column("edited_at", UTCDateTime),
    sa.Column("deleted_at", UTCDateTime),
    sa.Column("received_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    sa.UniqueConstraint("chat_jid", "message_id", name="uq_gateway_inbox_message"),
)
sa.Index("ix_gateway_inbox_seq", gateway_inbox.c.seq, unique=True)
# A group's newest rows, read backwards (the health panel, `groups`, `doctor`, `status`).
sa.Index("ix_gateway_inbox_chat_seq", gateway_inbox.c.chat_jid, gateway_inbox.c.seq)

# Each gateway session's last reported state (WAHA session.status, Evolution
# connection.update).
gateway_sessions = sa.Table(
    "gateway_sessions",
    metadata,
    sa.Column("gateway", sa.String(30), primary_key=True),
    sa.Column("session", sa.String(100), primary_key=True),
    sa.Column("status", sa.String(50), nullable=False),
    sa.Column("changed_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
)

# Phone numbers (and names) looked up for LIDs at a gateway (WAHA's LID API).
gateway_lids = sa.Table(
    "gateway_lids",
    metadata,
    sa.Column("lid", sa.String(100), primary_key=True),
    sa.Column("phone", sa.String(50)),
    sa.Column("name", sa.String(100)),
    sa.Column("gateway", sa.String(30), nullable=False),
    sa.Column("looked_up_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
)
