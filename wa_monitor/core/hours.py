"""Working hours: when a silent bridge or group is suspicious.

Pure values: parsed from the WORKING_HOURS setting, asked whether a moment falls
inside them. No I/O, so the settings can validate the text without importing the
health checks.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, time, tzinfo

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
