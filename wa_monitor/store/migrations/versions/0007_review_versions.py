"""Review versions: no edit of a review is lost to another written meanwhile.

Revision ID: 0007
Revises: 0006

`qa_photo_reviews.version` counts the writes of a review; `comment_version` and
`steps_version` hold the version at which the comment, and the review of the steps (the
twelve ticks, the incorrect steps and their comments), last changed. A dashboard edit
carries the version it was made on: the API merges it when what it changes was not
changed since, and refuses it with both versions otherwise (see web/queries.py).

A trigger keeps the three columns, so every writer counts, whoever it is: the monitor's
batches (a resubmission appends to the comment), the API's edits, the edit locks, a
feedback marked sent, an administrator's SQL. A write that sets `version` itself keeps
all three as written (that is also what stops the trigger's own update on SQLite from
firing it again). On SQLite the trigger runs after the row is written and updates it
again by rowid: SQLite triggers cannot change NEW. A later migration that rebuilds
qa_photo_reviews on SQLite (batch "move and copy") drops the trigger and must create it
again (tests/integration/test_api.py checks every writer at the head revision).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

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

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

COLUMNS = ("version", "comment_version", "steps_version")
STEPS_FIELDS = (*STEP_COLUMNS, "incorrect_steps", "incorrect_comments")
TRIGGER = "qa_photo_reviews_version"


def _pg_trigger() -> list[str]:
    old = ", ".join(f"OLD.{c}" for c in STEPS_FIELDS)
    new = ", ".join(f"NEW.{c}" for c in STEPS_FIELDS)
    return [
        f"""
        CREATE FUNCTION wa_monitor_review_version() RETURNS trigger LANGUAGE plpgsql AS $$
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
        """,
        f"CREATE TRIGGER {TRIGGER} BEFORE UPDATE ON qa_photo_reviews "
        "FOR EACH ROW EXECUTE FUNCTION wa_monitor_review_version()",
    ]


def _sqlite_trigger() -> list[str]:
    steps_changed = " OR ".join(f"NEW.{c} IS NOT OLD.{c}" for c in STEPS_FIELDS)
    # Formatted from this module's own column names: no value is ever put in SQL text.
    return [
        f"""
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
    ]


def upgrade() -> None:
    with op.batch_alter_table("qa_photo_reviews") as batch:
        for column in COLUMNS:
            batch.add_column(sa.Column(column, sa.Integer, nullable=False, server_default="1"))
    postgresql = op.get_bind().dialect.name == "postgresql"
    for statement in _pg_trigger() if postgresql else _sqlite_trigger():
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON qa_photo_reviews")
        op.execute("DROP FUNCTION IF EXISTS wa_monitor_review_version()")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER}")
    with op.batch_alter_table("qa_photo_reviews") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column)
