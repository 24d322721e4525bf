"""Reading the bridge's values: timestamps (text, epoch numbers, BLOBs) and senders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from wa_monitor.monitor.scan import clean_text, message_key
from wa_monitor.sources.bridge import parse_timestamp, sender_user

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
