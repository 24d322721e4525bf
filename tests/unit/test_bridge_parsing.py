"""Reading the bridge's values: timestamps and senders."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from wa_monitor.bridge import parse_timestamp, sender_user
from wa_monitor.monitor import clean_text, message_key

PLUS2 = timezone(timedelta(hours=2))


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
