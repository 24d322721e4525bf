"""The schema is owned by migrations, and the code refuses a schema it does not know."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from wa_monitor.core.errors import SchemaVersionError
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import SCHEMA_HEAD


def test_upgrade_creates_every_column_of_the_review_table(empty_db_url: str) -> None:
    store = ReviewStore(empty_db_url)
    with pytest.raises(SchemaVersionError, match="wa-monitor db upgrade"):
        store.check_schema()
    assert store.upgrade() == (None, SCHEMA_HEAD)
    store.check_schema()
    with store.engine.connect() as conn:
        columns = {c["name"] for c in sa.inspect(conn).get_columns("qa_photo_reviews")}
    expected = {
        "id", "drop_number", "review_date", "user_name", "project", "whatsapp_message_date",
        "resubmitted", "incomplete", "completed", "feedback_sent", "comment", "created_at",
        "updated_at", "submitted_by", *STEP_COLUMNS,
    }  # fmt: skip
    assert expected <= columns
    # A second upgrade is a no-op.
    assert store.upgrade() == (SCHEMA_HEAD, SCHEMA_HEAD)
    store.dispose()


def test_an_older_schema_is_refused_with_the_command_to_run(empty_db_url: str) -> None:
    store = ReviewStore(empty_db_url)
    store.upgrade()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '0001'"))
    with pytest.raises(SchemaVersionError, match=r"revision 0001.*wa-monitor db upgrade"):
        store.check_schema()
    store.dispose()


def test_an_unknown_newer_schema_is_refused(empty_db_url: str) -> None:
    store = ReviewStore(empty_db_url)
    store.upgrade()
    with store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(SchemaVersionError, match="does not know"):
        store.check_schema()
    store.dispose()


def test_same_drop_in_two_projects_gives_two_reviews_but_not_twice_in_one(
    store: ReviewStore,
) -> None:
    # FIELD_NOTES bug 6: the unique key is per project, not global.
    import uuid

    from wa_monitor.store.schema import qa_photo_reviews

    row = {"drop_number": "DR12345678", "user_name": "x"}
    with store.engine.begin() as conn:
        conn.execute(sa.insert(qa_photo_reviews), {**row, "id": uuid.uuid4(), "project": "Lawley"})
        conn.execute(
            sa.insert(qa_photo_reviews), {**row, "id": uuid.uuid4(), "project": "Marketing"}
        )
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.insert(qa_photo_reviews), {**row, "id": uuid.uuid4(), "project": "Lawley"})
