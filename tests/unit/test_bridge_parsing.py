"""Reading the bridge's values: timestamps (text, epoch numbers, BLOBs) and senders."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from wa_monitor.monitor.scan import clean_text, message_key
from wa_monitor.sources.bridge import BridgeStore, parse_timestamp, sender_user

PLUS2 = timezone(timedelta(hours=2))
JOHANNESBURG = ZoneInfo("Africa/Johannesburg")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2025-11-09 19:15:30+02:00", datetime(2025, 11, 9, 19, 15, 30, tzinfo=PLUS2)),
        (
            "2025-11-09 19:15:30.123456789+02:00",
            datetime(2025, 11, 9, 19, 15, 30, 123456, tzinfo=PLUS2),
        ),
        ("2025-11-09T17:15:30Z", datetime(2025, 11, 9, 17, 15, 30, tzinfo=UTC)),
        ("2025-11-09 17:15:30.5+00:00", datetime(2025, 11, 9, 17, 15, 30, 500000, tzinfo=UTC)),
        ("2025-11-09 17:15:30", datetime(2025, 11, 9, 17, 15, 30, tzinfo=UTC)),
    ],
)
def test_timestamps(text: str, expected: datetime) -> None:
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed is not None and parsed.tzinfo is not None


def test_offsets_compare_as_instants_not_text() -> None:
    a = parse_timestamp("2025-11-09 19:15:30+02:00")
    b = parse_timestamp("2025-11-09 18:00:00+00:00")
    assert a is not None and b is not None
    assert a < b  # while "2025-11-09 19…" > "2025-11-09 18…" as text


@pytest.mark.parametrize("text", [None, "", "garbage", "2025-13-45 99:99:99", "\x00"])
def test_unreadable_timestamps_are_none(text: str | None) -> None:
    assert parse_timestamp(text) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1731172530, datetime(2024, 11, 9, 17, 15, 30, tzinfo=UTC)),
        (1731172530.25, datetime(2024, 11, 9, 17, 15, 30, 250000, tzinfo=UTC)),
        (1731172530123, datetime(2024, 11, 9, 17, 15, 30, 123000, tzinfo=UTC)),
        (1731172530123456, datetime(2024, 11, 9, 17, 15, 30, 123456, tzinfo=UTC)),
        (1731172530123456789, datetime(2024, 11, 9, 17, 15, 30, 123457, tzinfo=UTC)),
        (-5, datetime(1969, 12, 31, 23, 59, 55, tzinfo=UTC)),
        ("1731172530", datetime(2024, 11, 9, 17, 15, 30, tzinfo=UTC)),
        (b"2025-11-09 19:15:30+02:00", datetime(2025, 11, 9, 17, 15, 30, tzinfo=UTC)),
    ],
)
def test_epoch_numbers_and_blob_text_are_times(value: object, expected: datetime) -> None:
    parsed = parse_timestamp(value, JOHANNESBURG)
    assert parsed is not None
    assert abs((parsed - expected).total_seconds()) < 1e-6


@pytest.mark.parametrize(
    "value",
    [
        float("inf"),
        float("-inf"),
        float("nan"),
        10**30,
        "9999-12-31 23:59:59+00:00",  # local time in Johannesburg: the year 10000
        "9999-12-31 23:59:59-05:00",  # UTC: the year 10000
        "0001-01-01 00:00:00+05:00",  # UTC: the year 0
        b"\xff\xfe",
    ],
)
def test_times_beyond_the_calendar_are_unreadable(value: object) -> None:
    assert parse_timestamp(value, JOHANNESBURG) is None


@pytest.mark.parametrize(
    ("sender", "user"),
    [
        ("27821234567", "27821234567"),
        ("27821234567@s.whatsapp.net", "27821234567"),
        ("27821234567:12@s.whatsapp.net", "27821234567"),
        ("112233445566778@lid", "112233445566778"),
        ("", ""),
        (None, ""),
    ],
)
def test_sender_user_part(sender: str | None, user: str) -> None:
    assert sender_user(sender) == user


def test_text_for_the_database_has_no_control_characters() -> None:
    assert clean_text("Thabo\x00 Nkosi\n", 100) == "Thabo  Nkosi"
    assert clean_text("x" * 200, 50) == "x" * 50
    assert message_key("3EB0C767D71D3AB3C9A1") == "3EB0C767D71D3AB3C9A1"
    long_key = message_key("A" * 300)
    assert long_key.startswith("sha256:") and len(long_key) <= 100
    assert message_key("A" * 300) != message_key("A" * 301)


# -- read_messages: every row of the asked groups, media columns included ----------------

_GROUP = "120363418298130331@g.us"
_ELSEWHERE = "120363400000000001@g.us"
_UPSTREAM_SCHEMA = """
CREATE TABLE chats (jid TEXT PRIMARY KEY, name TEXT, last_message_time TIMESTAMP);
CREATE TABLE messages (
    id TEXT, chat_jid TEXT, sender TEXT, content TEXT, timestamp TIMESTAMP,
    is_from_me BOOLEAN, media_type TEXT, filename TEXT, url TEXT, media_key BLOB,
    file_sha256 BLOB, file_enc_sha256 BLOB, file_length INTEGER,
    PRIMARY KEY (id, chat_jid)
);
"""


def _bridge_file(path: Path, schema: str = _UPSTREAM_SCHEMA) -> Path:
    with sqlite3.connect(path) as conn:
        conn.executescript(schema)
    conn.close()
    return path


def test_read_messages_hands_over_media_columns_whatever_they_hold(tmp_path: Path) -> None:
    db = _bridge_file(tmp_path / "messages.db")
    digest = hashlib.sha256(b"photo").digest()
    with sqlite3.connect(db) as conn:
        insert = (
            "INSERT INTO messages (id, chat_jid, sender, content, timestamp, media_type, "
            "filename, file_sha256, file_length) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
        )
        conn.execute(insert, ("P1", _GROUP, "2782", "", "2025-11-09 19:15:30+02:00", "image",
                              "image_20251109_191530.jpg", digest, 2048))  # fmt: skip
        conn.execute(insert, ("T1", _GROUP, "2782", "hello", 1762708530, "", None, None, None))
        conn.execute(insert, ("X1", _ELSEWHERE, "2782", "other group", None, "", None, None, 0))
        # What a fork or a repair tool may write: BLOB text, a hex hash, numbers as text.
        conn.execute(insert, (b"B1", _GROUP.encode(), 2782, b"caption \xff", b"2025-11-09",
                              b"image", 17, digest.hex(), "2 kB"))  # fmt: skip
    conn.close()
    store = BridgeStore(db)
    store.open()
    try:
        photo, text, odd = store.read_messages(0, store.max_rowid(), [_GROUP])
    finally:
        store.close()
    assert (photo.id, photo.media_type) == ("P1", "image")
    assert photo.filename == "image_20251109_191530.jpg"
    assert photo.file_sha256 == digest and photo.file_length == 2048
    assert (text.id, text.content, text.timestamp, text.media_type) == (
        "T1",
        "hello",
        1762708530,
        "",
    )
    assert text.file_sha256 is None and text.file_length is None
    assert (odd.id, odd.chat_jid, odd.sender, odd.content) == (
        "B1",
        _GROUP,
        "2782",
        "caption \ufffd",
    )
    assert (odd.media_type, odd.filename, odd.timestamp) == ("image", "17", "2025-11-09")
    assert odd.file_sha256 is None and odd.file_length is None
    assert [r.rowid for r in (photo, text, odd)] == sorted(r.rowid for r in (photo, text, odd))


def test_read_messages_of_an_older_bridge_without_media_columns(tmp_path: Path) -> None:
    schema = (
        "CREATE TABLE chats (jid TEXT PRIMARY KEY, name TEXT, last_message_time TIMESTAMP);"
        "CREATE TABLE messages (id TEXT, chat_jid TEXT, sender TEXT, content TEXT, "
        "timestamp TIMESTAMP, media_type TEXT);"
    )
    db = _bridge_file(tmp_path / "messages.db", schema)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "INSERT INTO messages VALUES ('P1', ?, '2782', '', '2025-11-09 19:15:30', 'image')",
            (_GROUP,),
        )
    conn.close()
    store = BridgeStore(db)
    store.open()
    try:
        (photo,) = store.read_messages(0, 10, [_GROUP])
    finally:
        store.close()
    assert photo.media_type == "image"
    assert (photo.filename, photo.file_sha256, photo.file_length) == (None, None, None)


def test_read_messages_reads_in_short_statements_the_bridge_can_write_between(
    tmp_path: Path,
) -> None:
    db = _bridge_file(tmp_path / "messages.db")
    with sqlite3.connect(db) as conn:
        conn.executemany(
            "INSERT INTO messages (id, chat_jid, sender, content, timestamp, media_type) "
            "VALUES (?, ?, '2782', 'x', '2025-11-09 19:15:30+02:00', '')",
            [(f"M{i}", _GROUP if i % 3 else _ELSEWHERE) for i in range(3500)],
        )
    conn.close()
    store = BridgeStore(db, busy_timeout=0.1)
    store.open()
    try:
        found = store.read_messages(10, 3400, [_GROUP])
        assert [r.rowid for r in found] == [n for n in range(11, 3401) if (n - 1) % 3]
        # No read transaction is left open: the bridge (rollback journal) writes at once.
        assert not store.conn.in_transaction
        with sqlite3.connect(db, timeout=0) as writer:
            writer.execute("BEGIN EXCLUSIVE")
            writer.execute("DELETE FROM messages WHERE rowid = 1")
        writer.close()
        assert store.read_messages(0, 10, []) == []
        assert store.read_messages(10, 10, [_GROUP]) == []
    finally:
        store.close()
