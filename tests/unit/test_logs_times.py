"""The one way times are shown to people (core.times), and the log formats' times."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from wa_monitor.core.logs import JsonFormatter, LineFormatter, setup_logging
from wa_monitor.core.settings import settings_from
from wa_monitor.core.times import log_stamp, shown

SAST = ZoneInfo("Africa/Johannesburg")
LONDON = ZoneInfo("Europe/London")
INSTANT = datetime(2025, 11, 9, 17, 15, 30, 123000, tzinfo=UTC)


def record_at(when: datetime) -> logging.LogRecord:
    rec = logging.LogRecord("wa_monitor", logging.INFO, __file__, 1, "✅ Created %s", ("x",), None)
    rec.created = when.timestamp()
    return rec


def test_a_time_is_shown_in_the_zone_with_its_abbreviation() -> None:
    assert shown(INSTANT, SAST) == "2025-11-09 19:15 SAST"
    assert shown(INSTANT, SAST, seconds=True) == "2025-11-09 19:15:30 SAST"
    assert shown(INSTANT.replace(tzinfo=None), SAST) == "2025-11-09 19:15 SAST"  # naive is UTC
    assert shown(None, SAST) == "" and shown(None, SAST, empty="never") == "never"
    # The abbreviation follows daylight saving time.
    assert shown(datetime(2025, 7, 1, 12, tzinfo=UTC), LONDON) == "2025-07-01 13:00 BST"
    assert shown(datetime(2025, 12, 1, 12, tzinfo=UTC), LONDON) == "2025-12-01 12:00 GMT"


def test_a_text_line_is_in_the_business_zone_and_a_json_record_in_utc() -> None:
    rec = record_at(INSTANT)
    line = LineFormatter(zone=SAST).format(rec)
    assert line == "2025-11-09 19:15:30,123 SAST - INFO - ✅ Created x"
    assert log_stamp(rec.created, LONDON) == "2025-11-09 17:15:30,123 GMT"
    entry = json.loads(JsonFormatter().format(rec))
    assert entry["time"] == "2025-11-09T17:15:30.123000+00:00"


@pytest.mark.parametrize(("given", "expected"), [(SAST, "SAST"), (None, "UTC")])
def test_setup_logging_gives_text_lines_the_zone_asked_for_else_the_hosts(
    monkeypatch: pytest.MonkeyPatch, given: ZoneInfo | None, expected: str
) -> None:
    monkeypatch.setenv("TZ", "UTC")
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        setup_logging(settings_from({"LOG_FORMAT": "text"}), zone=given)
        formatter = root.handlers[0].formatter
        assert formatter is not None
        assert f",123 {expected} - INFO - " in formatter.format(record_at(INSTANT))
    finally:
        for handler in root.handlers:
            if handler not in handlers:
                root.removeHandler(handler)
        root.handlers[:] = handlers
        root.setLevel(level)
