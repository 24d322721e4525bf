"""The review table, the submissions log and the bridge cursors.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

# Frozen types: what schema.UTCDateTime and schema.JSONType were when this ran.
UTCDateTime = sa.DateTime(timezone=True)

# Frozen: the twelve step columns as this migration created them (never import live code
# into a migration: a later rename must not rewrite history).
STEP_COLUMNS = (
    "step_01_house_photo",
    "step_02_cable_from_pole",
    "step_03_cable_entry_outside",
    "step_04_cable_entry_inside",
    "step_05_wall_for_installation",
    "step_06_ont_back_after_install",
    "step_07_power_meter_reading",
    "step_08_ont_barcode",
    "step_09_ups_serial",
    "step_10_final_installation",
    "step_11_green_lights",
    "step_12_customer_signature",
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    uuid_default = sa.text("gen_random_uuid()") if dialect == "postgresql" else None
    op.create_table(
        "qa_photo_reviews",
        sa.Column("id", sa.Uuid, primary_key=True, server_default=uuid_default),
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
        sa.UniqueConstraint("project", "drop_number", name="uq_qa_photo_reviews_project_drop"),
    )
    op.create_index(
        "ix_qa_photo_reviews_message_date", "qa_photo_reviews", ["whatsapp_message_date"]
    )
    op.create_index(
        "ix_qa_photo_reviews_list_order",
        "qa_photo_reviews",
        ["resubmitted", "whatsapp_message_date"],
    )
    op.create_table(
        "drop_submissions",
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
    op.create_index(
        "ix_drop_submissions_project_drop", "drop_submissions", ["project", "drop_number"]
    )
    op.create_table(
        "scan_cursors",
        sa.Column("chat_jid", sa.String(100), primary_key=True),
        sa.Column("last_rowid", sa.BigInteger, nullable=False),
        sa.Column("anchor", sa.String(250)),
        sa.Column("updated_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("scan_cursors")
    op.drop_table("drop_submissions")
    op.drop_table("qa_photo_reviews")
