"""More ways in: the webhook gateways' inbox, deleted posts, feedback's message ids.

Revision ID: 0012
Revises: 0011

`gateway_inbox` holds what the webhook gateways (WAHA, Evolution API, the Go bridge
fork) delivered, one row per (chat, message), written before the webhook is answered.
The monitor reads it as it reads a bridge's messages.db: `seq` plays the rowid. It is
given in the writing transaction under a lock held to its commit (a new one for an edit
or a deletion), so seqs become visible in order and a reader's cursor never passes a row
that is not yet visible.
`gateway_sessions` keeps each gateway session's last reported state, `gateway_lids`
the phone numbers looked up for LIDs. `drop_submissions.deleted_at` and
`qa_photo_reviews.post_deleted_at` record a post deleted in WhatsApp (the review is
flagged when every post of it was deleted); `feedback_outbox` records which gateway sent
a feedback and the WhatsApp message id it answered.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
UTCDateTime = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "gateway_inbox",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("seq", sa.BigInteger),
        sa.Column("gateway", sa.String(30), nullable=False),
        sa.Column("chat_jid", sa.String(100), nullable=False),
        sa.Column("message_id", sa.String(100), nullable=False),
        sa.Column("sender", sa.String(100), nullable=False),
        sa.Column("sender_pn", sa.String(50)),
        sa.Column("sender_name", sa.String(100)),
        sa.Column("content", sa.Text),
        sa.Column("sent_at", sa.Float(precision=53), nullable=False),
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
    op.create_index("ix_gateway_inbox_seq", "gateway_inbox", ["seq"], unique=True)
    op.create_index("ix_gateway_inbox_chat_seq", "gateway_inbox", ["chat_jid", "seq"])
    op.create_table(
        "gateway_sessions",
        sa.Column("gateway", sa.String(30), primary_key=True),
        sa.Column("session", sa.String(100), primary_key=True),
        sa.Column("status", sa.String(50), nullable=False),
        sa.Column("changed_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "gateway_lids",
        sa.Column("lid", sa.String(100), primary_key=True),
        sa.Column("phone", sa.String(50)),
        sa.Column("name", sa.String(100)),
        sa.Column("gateway", sa.String(30), nullable=False),
        sa.Column("looked_up_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )
    op.add_column("drop_submissions", sa.Column("deleted_at", UTCDateTime))
    op.add_column("qa_photo_reviews", sa.Column("post_deleted_at", UTCDateTime))
    op.add_column("feedback_outbox", sa.Column("gateway", sa.String(30)))
    op.add_column("feedback_outbox", sa.Column("gateway_message_id", sa.String(100)))


def downgrade() -> None:
    # Plain ALTER TABLE … DROP COLUMN (SQLite 3.35+): a batch rebuild would drop the
    # triggers of qa_photo_reviews.
    for table, column in (
        ("feedback_outbox", "gateway_message_id"),
        ("feedback_outbox", "gateway"),
        ("qa_photo_reviews", "post_deleted_at"),
        ("drop_submissions", "deleted_at"),
    ):
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    op.drop_table("gateway_lids")
    op.drop_table("gateway_sessions")
    op.drop_index("ix_gateway_inbox_chat_seq", table_name="gateway_inbox")
    op.drop_index("ix_gateway_inbox_seq", table_name="gateway_inbox")
    op.drop_table("gateway_inbox")
