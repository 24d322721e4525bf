"""The review queue: states, assignment, rejection reasons and the projects' drop lists.

Revision ID: 0009
Revises: 0008

qa_photo_reviews gains
- `assigned_agent` and `assigned_at`: who took the drop ("next drop", or an admin's
  assignment) and when; cleared when it is released, when its feedback is sent and when
  it is approved;
- `invalid`: the drop number is not on its project's list of valid numbers (kept and
  shown, never counted as a drop);
- `incorrect_reasons`: the standard reasons a reviewer picked per step, {step: [reason]};
- three generated columns, derived by the database from the row alone, whoever writes it:
  `review_state` (new, in_review, needs_correction, resubmitted, approved, invalid),
  `queue_rank` (0 waiting for a reviewer, 1 waiting for the installer, 2 approved,
  3 invalid) and `waiting_since` (the post the queue waits on: the resubmission after
  feedback, the feedback while the installer corrects, else the first post), with the
  index the work queue is read from.

`drop_lists` holds each project's valid drop numbers, replaced whole by an import;
`drop_list_imports` is the audit of the imports.

The version trigger of 0007 now also counts `incorrect_reasons` as part of the review of
the steps.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

UTCDateTime = sa.DateTime(timezone=True)
JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BIGID = sa.BigInteger().with_variant(sa.Integer, "sqlite")

# Frozen copies of the expressions of store/schema.py at this revision.
_RESUBMITTED = "feedback_sent IS NOT NULL AND last_message_date > feedback_sent"
STATE_SQL = (
    "CASE WHEN invalid THEN 'invalid' "
    "WHEN completed THEN 'approved' "
    "WHEN assigned_agent IS NOT NULL THEN 'in_review' "
    f"WHEN {_RESUBMITTED} THEN 'resubmitted' "
    "WHEN feedback_sent IS NOT NULL THEN 'needs_correction' "
    "ELSE 'new' END"
)
RANK_SQL = (
    "CASE WHEN invalid THEN 3 WHEN completed THEN 2 "
    "WHEN assigned_agent IS NOT NULL THEN 0 "
    f"WHEN {_RESUBMITTED} THEN 0 "
    "WHEN feedback_sent IS NOT NULL THEN 1 ELSE 0 END"
)
WAITING_SQL = (
    f"CASE WHEN {_RESUBMITTED} THEN last_message_date "
    "WHEN feedback_sent IS NOT NULL AND NOT completed THEN feedback_sent "
    "ELSE COALESCE(whatsapp_message_date, created_at) END"
)

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
TRIGGER = "qa_photo_reviews_version"


def _steps_fields(reasons: bool) -> tuple[str, ...]:
    extra = ("incorrect_reasons",) if reasons else ()
    return (*STEP_COLUMNS, "incorrect_steps", "incorrect_comments", *extra)


def _pg_function(reasons: bool) -> str:
    fields = _steps_fields(reasons)
    # JSONB compares by value; ROW(...) IS DISTINCT FROM needs every type comparable.
    old = ", ".join(f"OLD.{c}" for c in fields)
    new = ", ".join(f"NEW.{c}" for c in fields)
    return f"""
        CREATE OR REPLACE FUNCTION wa_monitor_review_version() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.version <> OLD.version THEN
                RETURN NEW;
            END IF;
            NEW.version := OLD.version + 1;
            IF NEW.comment IS DISTINCT FROM OLD.comment THEN
                NEW.comment_version := NEW.version;
            END IF;
            IF ROW({new}) IS DISTINCT FROM ROW({old}) THEN
                NEW.steps_version := NEW.version;
            END IF;
            RETURN NEW;
        END
        $$
        """


def _sqlite_trigger(reasons: bool) -> str:
    steps_changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in _steps_fields(reasons))
    return f"""
        CREATE TRIGGER {TRIGGER} AFTER UPDATE ON qa_photo_reviews
        FOR EACH ROW WHEN NEW.version = OLD.version
        BEGIN
            UPDATE qa_photo_reviews SET
                version = OLD.version + 1,
                comment_version = CASE WHEN NEW.comment IS NOT OLD.comment
                    THEN OLD.version + 1 ELSE NEW.comment_version END,
                steps_version = CASE WHEN {steps_changed}
                    THEN OLD.version + 1 ELSE NEW.steps_version END
            WHERE rowid = NEW.rowid;
        END
        """  # noqa: S608


def _trigger(reasons: bool) -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_pg_function(reasons))
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
        op.execute(_sqlite_trigger(reasons))


def upgrade() -> None:
    # Plain ADD COLUMNs (no table rebuild on SQLite: the version trigger stays).
    op.add_column("qa_photo_reviews", sa.Column("assigned_agent", sa.String(100)))
    op.add_column("qa_photo_reviews", sa.Column("assigned_at", UTCDateTime))
    op.add_column(
        "qa_photo_reviews",
        sa.Column("invalid", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.add_column("qa_photo_reviews", sa.Column("incorrect_reasons", JSONType))
    for name, kind, sql in (
        ("review_state", sa.String(20), STATE_SQL),
        ("queue_rank", sa.Integer, RANK_SQL),
        ("waiting_since", UTCDateTime, WAITING_SQL),
    ):
        op.add_column("qa_photo_reviews", sa.Column(name, kind, sa.Computed(sa.text(sql))))
    op.create_index(
        "ix_qa_photo_reviews_queue",
        "qa_photo_reviews",
        ["queue_rank", "waiting_since", "id"],
    )
    op.create_index("ix_qa_photo_reviews_state", "qa_photo_reviews", ["review_state", "project"])
    op.create_table(
        "drop_lists",
        sa.Column("project", sa.String(100), primary_key=True),
        sa.Column("drop_number", sa.String(50), primary_key=True),
        sa.Column("imported_at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "drop_list_imports",
        sa.Column("id", BIGID, primary_key=True),
        sa.Column("project", sa.String(100), nullable=False),
        sa.Column("actor", sa.String(100), nullable=False),
        sa.Column("filename", sa.String(255)),
        sa.Column("added", sa.Integer, nullable=False),
        sa.Column("removed", sa.Integer, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False, server_default=sa.func.now()),
    )
    _trigger(reasons=True)


def downgrade() -> None:
    op.drop_table("drop_list_imports")
    op.drop_table("drop_lists")
    op.drop_index("ix_qa_photo_reviews_state", "qa_photo_reviews")
    op.drop_index("ix_qa_photo_reviews_queue", "qa_photo_reviews")
    # On SQLite the batch rebuilds the table, which drops the trigger: made again below.
    with op.batch_alter_table("qa_photo_reviews") as batch:
        for name in (
            "waiting_since",
            "queue_rank",
            "review_state",
            "incorrect_reasons",
            "invalid",
            "assigned_at",
            "assigned_agent",
        ):
            batch.drop_column(name)
    _trigger(reasons=False)
