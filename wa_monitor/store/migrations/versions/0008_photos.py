"""Photos: every message of a group around its drops, linked, fetched and described.

Revision ID: 0008
Revises: 0007

`group_messages` holds the messages of the monitored groups that are not drop posts
(those are in drop_submissions): photos, videos, documents, voice notes and texts, each
with the drop and round it belongs to (the linking rules of core/photo_links.py, or a
reviewer's decision), and, for media, its place in the fetch queue (status, attempts,
next_attempt_at) and what was learnt from the file once fetched (its SHA-256 in the media
store, size, type, thumbnail, perceptual hash in four 16-bit bands, barcodes, quality
hints, the earlier photo of another drop it repeats).

`photo_decisions` is the audit of what reviewers did to a photo (moved, detached, step);
the latest move or detach wins over the rules on every re-link.

`media_cursors` is the media worker's own rowid cursor per group, apart from the scan's,
and `worker_marks` its other high-water marks (the last drop submission it linked for).

qa_photo_reviews gains `ont_serial_scanned` and `ups_serial_scanned`: the serials read
from the photos of steps 8 and 9.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

# Frozen types: what schema.UTCDateTime and schema.JSONType were when this ran.
UTCDateTime = sa.DateTime(timezone=True)
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
CHANNEL_TABLES = ("group_messages",)
SERIAL_COLUMNS = ("ont_serial_scanned", "ups_serial_scanned")


def upgrade() -> None:
    op.create_table(
        "group_messages",
        sa.Column("id", BIGID, primary_key=True),
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
        sa.Column("duplicate_of", BIGID),
        sa.Column("barcodes", JSONType),
        sa.Column("hints", JSONType),
        sa.Column("created_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
        sa.UniqueConstraint("chat_jid", "message_id", name="uq_group_messages_message"),
    )
    op.create_index(
        "ix_group_messages_review",
        "group_messages",
        ["review_id", "round", "posted_at", "message_id"],
    )
    op.create_index("ix_group_messages_queue", "group_messages", ["status", "next_attempt_at"])
    # The fetch order (newest posted first) and the oldest waiting photo.
    op.create_index("ix_group_messages_posted", "group_messages", ["status", "posted_at"])
    op.create_index(
        "ix_group_messages_sender", "group_messages", ["chat_jid", "sender", "posted_at"]
    )
    op.create_index("ix_group_messages_sha256", "group_messages", ["sha256"])
    for band in range(4):
        op.create_index(f"ix_group_messages_phash_b{band}", "group_messages", [f"phash_b{band}"])
    op.create_table(
        "photo_decisions",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("chat_jid", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("action", sa.String(20), nullable=False),
        sa.Column("drop_number", sa.String(50)),
        sa.Column("round", sa.Integer),
        sa.Column("step", sa.String(50)),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_photo_decisions_message", "photo_decisions", ["chat_jid", "message_id"])
    op.create_table(
        "media_cursors",
        sa.Column("chat_jid", sa.String(100), primary_key=True),
        sa.Column("last_rowid", sa.BigInteger, nullable=False),
        sa.Column("anchor", sa.String(250)),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "worker_marks",
        sa.Column("name", sa.String(50), primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )
    # Plain ADD COLUMN on both backends: no table rebuild, so 0007's trigger stays.
    op.add_column("qa_photo_reviews", sa.Column("ont_serial_scanned", sa.String(100)))
    op.add_column("qa_photo_reviews", sa.Column("ups_serial_scanned", sa.String(100)))
    # "Serial already used on another drop" looks the serial up: partial, since most
    # reviews have none.
    for column in SERIAL_COLUMNS:
        op.create_index(
            f"ix_qa_photo_reviews_{column}",
            "qa_photo_reviews",
            [column],
            postgresql_where=sa.text(f"{column} IS NOT NULL"),
            sqlite_where=sa.text(f"{column} IS NOT NULL"),
        )
    if op.get_bind().dialect.name == "postgresql":
        # The function is 0005's: the dashboard's kept answers (photo counts) go stale.
        for table in CHANNEL_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_notify_change "
                f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION wa_monitor_notify_change()"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in CHANNEL_TABLES:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_change ON {table}")
    # Plain DROP COLUMN (SQLite 3.35+): a batch rebuild would drop 0007's trigger.
    for column in SERIAL_COLUMNS:
        op.drop_index(f"ix_qa_photo_reviews_{column}", "qa_photo_reviews")
        op.execute(f"ALTER TABLE qa_photo_reviews DROP COLUMN {column}")
    op.drop_table("worker_marks")
    op.drop_table("media_cursors")
    op.drop_index("ix_photo_decisions_message", "photo_decisions")
    op.drop_table("photo_decisions")
    op.drop_table("group_messages")
