"""Working hours: when a silent bridge or group is suspicious, how long a drop waited.

Pure values: parsed from the WORKING_HOURS setting (or a project's `working_hours`),
asked whether a moment falls inside them and how much working time lies between two.
No I/O, so the settings can validate the text without importing the health checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo

_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(
    r"(?:(?P<days>[A-Za-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})"
)


@dataclass(frozen=True)
class WorkingHours:
    """When silence is suspicious: days of the week and a daily window, local time."""

    days: frozenset[int] = field(default_factory=lambda: frozenset(range(7)))
    start: time = time(0, 0)
    end: time = time(23, 59, 59)
    never: bool = False

    @classmethod
    def parse(cls, text: str) -> WorkingHours:
        """`always`, `never`, `07:00-18:00`, `Mon-Fri 07:00-18:00`, `Mon,Wed,Sat 8:00-12:00`."""
        value = text.strip()
        if value.lower() == "always":
            return cls()
        if value.lower() == "never":
            return cls(never=True)
        match = _HOURS.fullmatch(value)
        if match is None:
            raise ValueError("write e.g. `Mon-Fri 07:00-18:00`, `07:00-18:00`, always or never")
        days = frozenset(range(7))
        if match["days"]:
            days = _parse_days(match["days"])
        try:
            start = time.fromisoformat(match["start"].zfill(5))
            end = time.fromisoformat(match["end"].zfill(5))
        except ValueError:
            raise ValueError(f"{value!r}: hours must be HH:MM between 00:00 and 23:59") from None
        if end <= start:
            raise ValueError(f"{value!r}: the end of the working day must be after its start")
        return cls(days=days, start=start, end=end)

    @property
    def is_always(self) -> bool:
        """Every day, all day: working time is wall time."""
        return (
            not self.never
            and len(self.days) == 7
            and self.start == time(0, 0)
            and self.end == _END_OF_DAY
        )

    def working_time(self, start: datetime, end: datetime, zone: tzinfo) -> timedelta:
        """The time inside these hours between two instants (see `working_time`)."""
        return working_time(self, start, end, zone)

    def walk_back(self, now: datetime, amount: timedelta, zone: tzinfo) -> datetime | None:
        """The latest instant `amount` of working time before `now` (see `walk_back`)."""
        return walk_back(self, now, amount, zone)

    def contains(self, when: datetime, zone: tzinfo) -> bool:
        if self.never:
            return False
        local = when.astimezone(zone)
        return local.weekday() in self.days and self.start <= local.time() <= self.end


def _parse_days(text: str) -> frozenset[int]:
    days: set[int] = set()
    for part in text.lower().split(","):
        first, _, last = part.partition("-")
        try:
            a = _DAYS.index(first[:3])
            b = _DAYS.index(last[:3]) if last else a
        except ValueError:
            raise ValueError(f"unknown day in {text!r}; use Mon Tue Wed Thu Fri Sat Sun") from None
        if b < a:
            raise ValueError(f"{part!r}: write day ranges forwards, e.g. Mon-Fri")
        days.update(range(a, b + 1))
    return frozenset(days)


# `always` ends its day at 23:59:59 (see `contains`); as a stretch of time that day runs
# to midnight, so the working time of `always` is the wall time.
_END_OF_DAY = time(23, 59, 59)
# How far back `walk_back` looks for working time before saying there is none.
_MAX_DAYS_BACK = 3700


def _utc(day: date, at: time, zone: tzinfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def _window(hours: WorkingHours, day: date, zone: tzinfo) -> tuple[datetime, datetime] | None:
    """The UTC instants [start, end) of a local day's working window; None: not a work day."""
    if hours.never or day.weekday() not in hours.days:
        return None
    start = _utc(day, hours.start, zone)
    if hours.end == _END_OF_DAY:
        end = _utc(day + timedelta(days=1), time(0, 0), zone)
    else:
        end = _utc(day, hours.end, zone)
    return (start, end) if end > start else None


def working_time(hours: WorkingHours, start: datetime, end: datetime, zone: tzinfo) -> timedelta:
    """The time inside `hours` between two instants (zero when end is not after start).

    Each local day's window is placed in UTC on its own, so a day that changes its clock
    (DST) counts the time that really passed. A whole week inside the span whose clock
    does not change counts at once, so a drop waiting for months costs tens of steps.
    """
    if end <= start or hours.never:
        return timedelta(0)
    # In UTC: Python subtracts two times of one zone as wall clocks, not as instants.
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if hours.is_always:
        return end - start
    total = timedelta(0)
    week = _weekly(hours)
    # A day's window never crosses its midnight: the days of the two ends bound it.
    first = day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        if first < day and day + _WEEK <= last and _steady_week(day, zone):
            total += week
            day += _WEEK
            continue
        window = _window(hours, day, zone)
        if window is not None:
            lo, hi = max(window[0], start), min(window[1], end)
            if hi > lo:
                total += hi - lo
        day += timedelta(days=1)
    return total


_WEEK = timedelta(days=7)


def _weekly(hours: WorkingHours) -> timedelta:
    """The working time of a week whose clock does not change."""
    end = timedelta(days=1) if hours.end == _END_OF_DAY else _since_midnight(hours.end)
    return len(hours.days) * (end - _since_midnight(hours.start))


def _since_midnight(at: time) -> timedelta:
    return timedelta(hours=at.hour, minutes=at.minute, seconds=at.second)


def _steady_week(day: date, zone: tzinfo) -> bool:
    """Whether the zone's offset is the same from `day` to a week later (no DST change;
    a zone changing and changing back within one week has never been seen)."""
    return _utc(day + _WEEK, time(0, 0), zone) - _utc(day, time(0, 0), zone) == _WEEK


def walk_back(
    hours: WorkingHours, now: datetime, amount: timedelta, zone: tzinfo
) -> datetime | None:
    """The latest instant from which `amount` of working time passed until `now`.

    The inverse of `working_time`: working_time(walk_back(now, a), now) == a. None when
    there is no such instant (`never`, or no working time in ten years).
    """
    if amount <= timedelta(0):
        return now
    if hours.never:
        return None
    now = now.astimezone(UTC)
    if hours.is_always:
        return now - amount
    left = amount
    day = now.astimezone(zone).date()
    for _ in range(_MAX_DAYS_BACK):
        window = _window(hours, day, zone)
        if window is not None and window[0] < now:
            hi = min(window[1], now)
            if hi - window[0] >= left:
                return hi - left
            left -= hi - window[0]
        day -= timedelta(days=1)
    return None
