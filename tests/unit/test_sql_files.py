"""The `.sql` files are parsed into named statements, comments left for the reader."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from wa_monitor.store.sql import QueryFileError, parse, queries

TEXT = """\
-- What this file holds, for the reader.

-- first_query --
-- What it does.
SELECT 1
FROM t
WHERE a = :a

-- second_query --
UPDATE t SET a = :a
-- a note between lines
    -- and an indented one
WHERE b = :b
"""


def test_each_heading_names_the_statement_under_it_without_its_comments() -> None:
    assert parse(TEXT) == {
        "first_query": "SELECT 1\nFROM t\nWHERE a = :a",
        "second_query": "UPDATE t SET a = :a\nWHERE b = :b",
    }


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("SELECT 1\n-- a --\nSELECT 2\n", "SQL before the first"),
        ("-- a --\nSELECT 1\n-- a --\nSELECT 2\n", "the statement 'a' is named twice"),
        ("-- a --\n-- only a description\n\n-- b --\nSELECT 2\n", "the statement 'a' is empty"),
    ],
)
def test_a_file_that_is_not_a_list_of_named_statements_is_refused(text: str, refusal: str) -> None:
    with pytest.raises(QueryFileError, match=re.escape(f"q.sql: {refusal}")):
        parse(text, "q.sql")


def test_the_package_files_load_and_cannot_be_changed_by_a_caller() -> None:
    files = sorted(
        f.name for f in resources.files("wa_monitor.store.sql").iterdir() if f.name.endswith(".sql")
    )
    assert files == ["batch_postgresql.sql", "batch_sqlite.sql"]
    for name in files:
        loaded = queries(name)
        assert loaded and all(loaded.values())
        assert queries(name) is loaded  # read once
        with pytest.raises(TypeError):
            loaded["existing_reviews"] = "DROP TABLE qa_photo_reviews"  # type: ignore[index]


def test_the_batch_statements_take_their_rows_as_bind_parameters() -> None:
    params = {
        name: set(re.findall(r"(?<![:\w]):(\w+)", text))
        for name, text in queries("batch_postgresql.sql").items()
    }
    assert params == {
        "existing_reviews": {"rows"},
        "log_submissions": {"rows"},
        "record_batch": {"cursors", "submissions", "expected", "updates", "inserts"},
        "write_reviews": {"updates", "inserts"},
    }
    for text in queries("batch_sqlite.sql").values():
        assert set(re.findall(r"(?<![:\w]):(\w+)", text)) == {"rows"}
