"""The projects file's `reports:` and `alerts:`: what each report holds, when it is due,
where it and the alerts go.

Values only; config.py reads them from the file with their lines. A destination kind is
one dataclass and one reader in DESTINATIONS (and its deliverer in wa_monitor.reports).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

# What a report may hold: its name in the file, and what it is (for messages and help).
REPORT_KINDS = {
    "daily-drops": "drops per project for the day (date, project, count)",
    "reviews": "the day's reviews, one row each, with the columns of the dashboard's export",
    "summary": "per project: drops, complete, feedback sent, resubmitted, overdue",
}
FORMATS = ("xlsx", "csv", "json")
ALL_PROJECTS = "all"
REPORT_KEYS = ("name", "project", "what", "format", "when", "to")
# A report's name is part of its files' names and of its delivery records.
REPORT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,59}")
MAX_FOLDER = 400  # characters: a delivery record keeps `folder:<path>` in 500
MAX_URL = 400
MAX_RECIPIENTS = 20
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_ADDRESS = re.compile(r"[^@\s<>,;\"]{1,64}@[A-Za-z0-9.-]{1,190}\.[A-Za-z]{2,24}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,99}")


@dataclass(frozen=True, order=True)
class Period:
    """The days a report covers: one day, or the seven days of a weekly report."""

    first: date
    last: date

    @property
    def name(self) -> str:
        """As records and file names name it: `2026-01-15`, `2026-01-10_to_2026-01-16`."""
        if self.first == self.last:
            return self.first.isoformat()
        return f"{self.first.isoformat()}_to_{self.last.isoformat()}"

    def days(self) -> Iterator[date]:
        day = self.first
        while day <= self.last:
            yield day
            day += timedelta(days=1)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Schedule:
    """When a scheduler sends a report, in the business zone: every day at a time, or on
    one day of the week at a time (then the report covers the seven days up to it)."""

    at: time
    weekday: int | None = None  # 0 Monday … 6 Sunday; None: daily

    _DAILY: ClassVar[re.Pattern[str]] = re.compile(r"daily\s+([01]?\d|2[0-3]):([0-5]\d)")
    _WEEKLY: ClassVar[re.Pattern[str]] = re.compile(
        r"weekly\s+([a-z]{3})[a-z]*\s+([01]?\d|2[0-3]):([0-5]\d)"
    )

    @classmethod
    def parse(cls, text: str) -> Schedule:
        """`daily 20:00`, `weekly fri 17:00`; raises ValueError saying what is expected."""
        said = text.strip().lower()
        daily = cls._DAILY.fullmatch(said)
        if daily is not None:
            return cls(time(int(daily.group(1)), int(daily.group(2))))
        weekly = cls._WEEKLY.fullmatch(said)
        if weekly is not None and weekly.group(1) in WEEKDAYS:
            at = time(int(weekly.group(2)), int(weekly.group(3)))
            return cls(at, WEEKDAYS.index(weekly.group(1)))
        raise ValueError(
            f"`{text}` is not a schedule; write `daily HH:MM` or `weekly DAY HH:MM` (24-hour, "
            "business time zone), e.g. `daily 20:00` or `weekly fri 17:00`"
        )

    def period_of(self, day: date) -> Period:
        """The period `day` falls in: that day, or the week ending on the schedule's day."""
        if self.weekday is None:
            return Period(day, day)
        last = day + timedelta(days=(self.weekday - day.weekday()) % 7)
        return Period(last - timedelta(days=6), last)

    def latest_due(self, now: datetime, zone: tzinfo) -> tuple[Period, datetime]:
        """The latest period due at `now` and when it fell due (only that one is caught up)."""
        local = now.astimezone(zone)
        day = local.date()
        if self.weekday is not None:
            day -= timedelta(days=(day.weekday() - self.weekday) % 7)
        if day == local.date() and local.time().replace(tzinfo=None) < self.at:
            day -= timedelta(days=1 if self.weekday is None else 7)
        due = datetime.combine(day, self.at, tzinfo=zone)
        return self.period_of(day), due

    def __str__(self) -> str:
        if self.weekday is None:
            return f"daily {self.at:%H:%M}"
        return f"weekly {WEEKDAYS[self.weekday]} {self.at:%H:%M}"


@dataclass(frozen=True)
class FolderDestination:
    """A folder the report's file is written into (e.g. one a SharePoint client syncs)."""

    path: Path

    kind: ClassVar[str] = "folder"

    @property
    def key(self) -> str:
        """What a delivery record names it by: one destination, one record per period."""
        return f"{self.kind}:{self.path}"

    def __str__(self) -> str:
        return f"folder {self.path}"


@dataclass(frozen=True)
class EmailDestination:
    """Addresses the file is mailed to (attached), over the .env's SMTP_* server."""

    to: tuple[str, ...]
    subject: str | None = None  # default: `WA Monitor: <report> <period>`

    kind: ClassVar[str] = "email"

    @property
    def key(self) -> str:
        return f"{self.kind}:{','.join(self.to)}"[:500]

    def __str__(self) -> str:
        return f"email {', '.join(self.to)}"


@dataclass(frozen=True)
class WebhookDestination:
    """A URL the file is POSTed to, signed with HMAC-SHA256 by the .env's secret `secret`."""

    url: str
    secret: str | None = None  # the name of the .env variable holding the key

    kind: ClassVar[str] = "webhook"

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.url}"

    def __str__(self) -> str:
        parts = urlsplit(self.url)
        return f"webhook {parts.scheme}://{parts.hostname or ''}{parts.path}"


Destination = FolderDestination | EmailDestination | WebhookDestination


def _folder(value: Any, base: Path) -> FolderDestination:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("`folder` must be a path, e.g. `folder: /srv/reports`")
    if len(value) > MAX_FOLDER or "\0" in value:
        raise ValueError(f"`folder` must be a path of at most {MAX_FOLDER} characters")
    path = Path(value.strip()).expanduser()
    return FolderDestination(path if path.is_absolute() else (base / path).absolute())


def _mapping(
    value: Any, kind: str, main: str, keys: tuple[str, ...], example: str
) -> dict[str, Any]:
    """A destination's value as a mapping: a bare value stands for its main key."""
    if isinstance(value, dict):
        unknown = [str(k) for k in value if k not in keys]
        if unknown:
            raise ValueError(
                f"`{kind}`: unknown key `{unknown[0]}`; allowed: {', '.join(keys)}, {example}"
            )
        return dict(value)
    return {main: value}


def _email(value: Any, _base: Path) -> EmailDestination:
    example = "e.g. `email: {to: [ops@example.com], subject: Daily drops}`"
    fields = _mapping(value, "email", "to", ("to", "subject"), example)
    to = fields.get("to")
    addresses = [to] if isinstance(to, str) else to
    if not isinstance(addresses, list) or not addresses:
        raise ValueError(f"`email` needs `to:`, one address or a list, {example}")
    if len(addresses) > MAX_RECIPIENTS:
        raise ValueError(f"`email`: at most {MAX_RECIPIENTS} addresses")
    for address in addresses:
        if not isinstance(address, str) or not _ADDRESS.fullmatch(address.strip()):
            raise ValueError(f"`email`: `{address}` is not an e-mail address, {example}")
    subject = fields.get("subject")
    if subject is not None and (not isinstance(subject, str) or len(subject) > 200):
        raise ValueError("`email`: `subject` must be a text of at most 200 characters")
    if isinstance(subject, str) and ("\n" in subject or "\r" in subject):
        raise ValueError("`email`: `subject` must be one line")
    return EmailDestination(tuple(a.strip() for a in addresses), subject or None)


def _webhook(value: Any, _base: Path) -> WebhookDestination:
    example = "e.g. `webhook: {url: https://hooks.example.com/wa, secret: REPORTS_WEBHOOK_SECRET}`"
    fields = _mapping(value, "webhook", "url", ("url", "secret"), example)
    url = fields.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"`webhook` needs an http(s) `url:`, {example}")
    if len(str(url)) > MAX_URL:
        raise ValueError(f"`webhook`: the url must be at most {MAX_URL} characters")
    if parts.username or parts.password:
        raise ValueError("`webhook`: put no password in the url; sign with `secret:` instead")
    secret = fields.get("secret")
    if secret is not None and (not isinstance(secret, str) or not _VARIABLE.fullmatch(secret)):
        raise ValueError(
            "`webhook`: `secret` names the .env variable holding the signing key (e.g. "
            "`secret: REPORTS_WEBHOOK_SECRET`), not the key itself"
        )
    return WebhookDestination(str(url), secret)


# Each destination kind's reader: (the value under its key, the projects file's folder,
# which relative paths are read from) -> the destination; raises ValueError.
DESTINATIONS: dict[str, Callable[[Any, Path], Destination]] = {
    "folder": _folder,
    "email": _email,
    "webhook": _webhook,
}


@dataclass(frozen=True)
class ReportSpec:
    """One report of the projects file."""

    name: str
    what: str  # a key of REPORT_KINDS
    format: str  # one of FORMATS
    to: tuple[Destination, ...]
    project: str | None = None  # None: every project
    when: Schedule | None = None  # None: sent on request only
    line: int = 0

    @property
    def extension(self) -> str:
        return self.format

    def period_of(self, day: date) -> Period:
        """The period a day's send delivers: the day, or its week for a weekly report."""
        return self.when.period_of(day) if self.when is not None else Period(day, day)

    def file_name(self, period: str) -> str:
        """`<report>-<period>[-<project>].<ext>`, the project's name made safe for a file."""
        suffix = f"-{safe_name(self.project)}" if self.project else ""
        return f"{self.name}-{period}{suffix}.{self.extension}"


def safe_name(text: str) -> str:
    """`text` as a file name's part: letters, digits, `_`, `.` and `-` only."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "project"


# -- alerts ----------------------------------------------------------------------------

# The conditions an alert watches, each with its default limit (a duration or a count)
# and what it means; `off` in the file turns one off.
ALERT_CONDITIONS: dict[str, tuple[str, str]] = {
    "monitor_silent": ("10m", "the monitor's heartbeat is older than this"),
    "bridge_stale": ("1h", "messages.db has not changed for this long, in working hours"),
    "outbox_backlog": ("20", "at least this many feedback messages wait to be sent"),
    "media_backlog": ("200", "at least this many photos wait to be fetched"),
    "overdue_reviews": ("10", "at least this many drops wait past their review target"),
    "report_failed": ("on", "a report's delivery failed (until it is delivered)"),
}
DURATION_CONDITIONS = ("monitor_silent", "bridge_stale")
ALERT_KEYS = ("to", "quiet", *ALERT_CONDITIONS)
DEFAULT_QUIET = timedelta(hours=1)


@dataclass(frozen=True)
class AlertRules:
    """The projects file's `alerts:`: where they go, how often, and what fires them.

    A limit of None is a condition turned off."""

    to: tuple[Destination, ...]
    quiet: timedelta = DEFAULT_QUIET
    monitor_silent: timedelta | None = timedelta(minutes=10)
    bridge_stale: timedelta | None = timedelta(hours=1)
    outbox_backlog: int | None = 20
    media_backlog: int | None = 200
    overdue_reviews: int | None = 10
    report_failed: bool = True
    line: int = 0
