"""The bridge's timestamp text: go-sqlite3's rendering of a Go time, and back."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo


def format_bridge_timestamp(when: datetime, zone: tzinfo, nanos: int | None = None) -> str:
    """`when` as go-sqlite3 writes a Go time in `zone`: `2025-11-09 19:15:30+02:00`.

    Go's layout `2006-01-02 15:04:05.999999999-07:00` drops trailing zeros of the
    fraction and the fraction itself when it is zero. `nanos` overrides the fraction
    (0..999999999); by default `when`'s microseconds are used.
    """
    local = when.astimezone(zone)
    fraction = local.microsecond * 1000 if nanos is None else nanos
    base = local.replace(microsecond=0).isoformat(" ")
    return base[:19] + fraction_text(fraction) + offset_text(local.utcoffset())


def fraction_text(nanos: int) -> str:
    return "." + f"{nanos:09d}".rstrip("0") if nanos else ""


def offset_text(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def parse_bridge_timestamp(text: str) -> datetime:
    """Parse the bridge's timestamp text (fractions beyond 6 digits are truncated)."""
    if len(text) > 20 and text[19] == ".":
        end = 20
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[:19] + "." + text[20:end][:6].ljust(6, "0") + text[end:]
    return datetime.fromisoformat(text)


class Clock:
    """Fast epoch-seconds → bridge text in one zone (the hot path of bulk generation)."""

    __slots__ = ("_minute", "_prefix", "_suffix", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._minute = -1
        self._prefix = ""
        self._suffix = ""

    def text(self, epoch: int, nanos: int = 0) -> str:
        # Offsets are whole minutes, so the text up to the seconds is the same all minute.
        minute, second = divmod(epoch, 60)
        if minute != self._minute:
            local = datetime.fromtimestamp(minute * 60, self.zone)
            self._minute = minute
            self._prefix = local.strftime("%Y-%m-%d %H:%M:")
            self._suffix = offset_text(local.utcoffset())
        frac = fraction_text(nanos) if nanos else ""
        return f"{self._prefix}{second:02d}{frac}{self._suffix}"

    def aware(self, epoch: int, nanos: int = 0) -> datetime:
        """The datetime a reader gets from the text (fraction truncated to microseconds)."""
        return datetime.fromtimestamp(epoch, self.zone).replace(microsecond=nanos // 1000)

    def offset_seconds(self, epoch: int) -> int:
        offset = datetime.fromtimestamp(epoch, self.zone).utcoffset()
        return int((offset or timedelta()).total_seconds())
