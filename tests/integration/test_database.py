"""The one door to the review database: opening, the prod/dev guard, disposal, and
driver errors as the project's own exceptions, on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.exc import DBAPIError

from wa_monitor.cli.main import main
from wa_monitor.core.errors import (
    ConstraintViolation,
    ReviewDataError,
    SchemaVersionError,
    SharedDatabaseError,
    UniqueViolation,
)
from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.store.database import open_review_store
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import config_audit, qa_photo_reviews, users

PROJECTS = """\
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "120363418298130331@g.us"
    description: "Lawley Activation 3"
"""
MOHADIN = "120363400000000099@g.us"


def settings(db_url: str, **extra: str) -> Settings:
    return settings_from({"DATABASE_URL": db_url, "PROD_ENV_FILE": "", **extra})


def _user(name: str = "thandi") -> dict[str, Any]:
    return {"username": name, "password_hash": "x", "role": "viewer", "disabled": False}


def _review(drop: str = "DR10000001") -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "id": uuid.uuid4(),
        "drop_number": drop,
        "project": "Lawley",
        "user_name": "Sipho",
        "whatsapp_message_date": now,
        "created_at": now,
        "updated_at": now,
    }


# -- driver errors, translated once --------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "rows", "constraint"),
    [
        (users, [_user(), _user()], "users_username_key"),
        (qa_photo_reviews, [_review(), _review()], "uq_qa_photo_reviews_project_drop"),
    ],
    ids=["column-unique", "named-unique"],
)
def test_a_unique_violation_is_the_projects_exception_naming_its_constraint(
    store: ReviewStore, table: sa.Table, rows: list[dict[str, Any]], constraint: str
) -> None:
    with store.begin() as conn:
        conn.execute(sa.insert(table), rows[0])
    with pytest.raises(UniqueViolation) as caught, store.begin() as conn:
        conn.execute(sa.insert(table), rows[1])
    assert caught.value.constraint == constraint
    assert isinstance(caught.value, ReviewDataError)  # the database is up; the row is not
    assert not isinstance(caught.value, DBAPIError)
    with store.read() as conn:  # rolled back, the first row kept
        assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 1


def test_a_primary_key_violation_names_the_key(store: ReviewStore) -> None:
    review = _review()
    with store.begin() as conn:
        conn.execute(sa.insert(qa_photo_reviews), review)
    with pytest.raises(UniqueViolation) as caught, store.begin() as conn:
        conn.execute(sa.insert(qa_photo_reviews), {**review, "drop_number": "DR10000002"})
    assert caught.value.constraint == "qa_photo_reviews_pkey"


def test_another_constraint_violation_is_not_a_unique_one(store: ReviewStore) -> None:
    with pytest.raises(ConstraintViolation) as caught, store.begin() as conn:
        conn.execute(sa.insert(users), {**_user(), "password_hash": None})
    assert not isinstance(caught.value, UniqueViolation)
    assert "password_hash" in str(caught.value)


# -- the door --------------------------------------------------------------------------------


@pytest.fixture
def connections() -> Iterator[dict[str, int]]:
    """Connections opened and closed by every pool while the test runs."""
    counts = {"opened": 0, "closed": 0}

    def opened(*_: object) -> None:
        counts["opened"] += 1

    def closed(*_: object) -> None:
        counts["closed"] += 1

    sa.event.listen(sa.pool.Pool, "connect", opened)
    sa.event.listen(sa.pool.Pool, "close", closed)
    yield counts
    sa.event.remove(sa.pool.Pool, "connect", opened)
    sa.event.remove(sa.pool.Pool, "close", closed)


def test_a_failed_open_leaves_no_connection_open(
    empty_db_url: str, connections: dict[str, int]
) -> None:
    with pytest.raises(SchemaVersionError, match="run `wa-monitor db upgrade` first"):
        open_review_store(settings(empty_db_url))
    assert connections["opened"] >= 1  # it did look at the database
    assert connections["closed"] == connections["opened"]


def test_the_door_closes_as_a_context_manager(db_url: str, connections: dict[str, int]) -> None:
    with open_review_store(settings(db_url)) as store:
        store.ping()
    assert connections["closed"] == connections["opened"] >= 1


def test_the_schema_commands_open_a_database_without_one(empty_db_url: str) -> None:
    with open_review_store(settings(empty_db_url), check_schema=False) as empty:
        assert empty.schema_revision() is None


def _prods_env(tmp_path: Path, db_url: str) -> Path:
    prod_env = tmp_path / "prod.env"
    prod_env.write_text(f"DATABASE_URL={db_url}\n")
    return prod_env


def test_writers_from_dev_are_refused_prods_database_readers_are_not(
    db_url: str, tmp_path: Path
) -> None:
    dev = settings(db_url, WA_MONITOR_ENV="dev", PROD_ENV_FILE=str(_prods_env(tmp_path, db_url)))
    with pytest.raises(SharedDatabaseError, match="refusing to run: dev's DATABASE_URL"):
        open_review_store(dev)
    # Comparing or checking prod's data from dev only reads it.
    with open_review_store(dev, purpose="read") as store:
        store.ping()


WRITERS = {
    "projects add": ["projects", "add", "--name", "Mohadin", "--group-jid", MOHADIN],
    "projects disable": ["projects", "disable", "Lawley"],
    "db upgrade": ["db", "upgrade"],
    "users add": ["users", "add", "thandi", "--password", "correct horse battery"],
}


@pytest.mark.parametrize("command", list(WRITERS))
def test_every_writer_from_dev_is_refused_prods_database_and_changes_nothing(
    store: ReviewStore, tmp_path: Path, command: str
) -> None:
    projects = tmp_path / "projects.yaml"
    projects.write_text(PROJECTS)
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"DATABASE_URL={store.url}\nWA_MONITOR_ENV=dev\n"
        f"PROD_ENV_FILE={_prods_env(tmp_path, store.url)}\n"
    )
    result = CliRunner().invoke(
        main,
        ["--env-file", str(env_file), "--config", str(projects), *WRITERS[command]],
        env={"DATABASE_URL": None, "WA_MONITOR_ENV": None, "WA_MONITOR_CONFIG": None},
    )
    assert result.exit_code == 2, result.output
    assert "refusing to run: dev's DATABASE_URL" in result.output
    assert projects.read_text() == PROJECTS
    with store.read() as conn:
        for table in (config_audit, users):
            assert conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() == 0
