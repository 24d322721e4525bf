"""Times a person reads: in the business zone, with its abbreviation.

The database and the JSON logs keep UTC; every line, table or message meant for a person
shows the projects file's zone (`2025-11-09 19:15 SAST`), so that the CLI, the log and
the dashboard agree on what a time means. Pure: no I/O, no clock.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo


def local(when: datetime, zone: tzinfo) -> datetime:
    """`when` in `zone`; a naive value is UTC (how SQLite hands instants back)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(zone)


def shown(when: datetime | None, zone: tzinfo, *, seconds: bool = False, empty: str = "") -> str:
    """`2025-11-09 19:15 SAST` (with `:30` seconds when asked); `empty` for no time."""
    if when is None:
        return empty
    moment = local(when, zone)
    clock = "%H:%M:%S" if seconds else "%H:%M"
    return f"{moment:%Y-%m-%d} {moment.strftime(clock)} {moment.tzname() or ''}".rstrip()


def log_stamp(created: float, zone: tzinfo) -> str:
    """A text log line's time: `2025-11-09 19:15:30,123 SAST` (a record's `created`)."""
    moment = datetime.fromtimestamp(created, zone)
    millis = int(created * 1000) % 1000
    return f"{moment:%Y-%m-%d %H:%M:%S},{millis:03d} {moment.tzname() or ''}".rstrip()
