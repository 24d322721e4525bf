"""Health checks shared by `wa-monitor status`, `/readyz`, the service and `doctor`.

Each check returns a `Check`: a name, pass/warn/fail, what was found and, when it
is not a pass, what to do about it. Reading only: nothing here writes, except
`record_heartbeat`, which the service calls.
"""

from __future__ import annotations

import os
import re
import socket
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, tzinfo
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from wa_monitor.bridge import BridgeStore, parse_timestamp
from wa_monitor.errors import BridgeStoreError, ReviewDatabaseError, WaMonitorError
from wa_monitor.schema import feedback_outbox, monitor_heartbeats
from wa_monitor.store import ReviewStore

Status = Literal["pass", "warn", "fail"]
_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(
    r"(?:(?P<days>[A-Za-z,\-]+)\s+)?(?P<start>\d{1,2}:\d{2})-(?P<end>\d{1,2}:\d{2})"
)


@dataclass(frozen=True)
class Check:
    """One health finding."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    @property
    def ok(self) -> bool:
        return self.status != "fail"

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Report:
    """Several checks; healthy when none failed."""

    checks: tuple[Check, ...]

    @property
    def healthy(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.status == "warn"]

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": "ok" if self.healthy else "unhealthy",
            "checks": [c.as_dict() for c in self.checks],
        }


# -- working hours ------------------------------------------------------------------------


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


def describe_age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


# -- the review database ------------------------------------------------------------------


def check_database(store: ReviewStore) -> list[Check]:
    """Reachable, and at the schema this version knows."""
    try:
        store.ping()
    except ReviewDatabaseError as exc:
        return [
            Check(
                "database",
                "fail",
                str(exc),
                "check DATABASE_URL (host, password, sslmode) and that the server is up",
            )
        ]
    checks = [Check("database", "pass", f"{store.masked_url} reachable")]
    try:
        store.check_schema()
    except WaMonitorError as exc:
        checks.append(Check("schema", "fail", str(exc), "run `wa-monitor db upgrade`"))
    else:
        checks.append(Check("schema", "pass", f"schema at revision {store.schema_revision()}"))
    return checks


def record_heartbeat(
    store: ReviewStore,
    instance: str,
    *,
    started_at: datetime,
    counters: Mapping[str, Any],
    status: Mapping[str, Any],
    now: datetime | None = None,
) -> None:
    """Upsert this monitor's heartbeat row."""
    t = monitor_heartbeats
    now = now or datetime.now(UTC)
    values = {
        "host": socket.gethostname()[:200],
        "pid": os.getpid(),
        "started_at": started_at,
        "beat_at": now,
        "counters": dict(counters),
        "status": dict(status),
    }
    with store.begin() as conn:
        # One upsert, not update-then-insert: two monitors of one instance (a restart while
        # the old process drains) beating at once must not collide on the primary key.
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t).values(instance=instance, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.instance], set_=values))


def read_heartbeats(store: ReviewStore) -> list[dict[str, Any]]:
    """Every monitor's latest heartbeat, freshest first."""
    t = monitor_heartbeats
    with store.begin() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.beat_at.desc())).mappings().all()
    return [dict(r) for r in rows]


def check_heartbeat(
    store: ReviewStore,
    max_age: float,
    *,
    instance: str | None = None,
    now: datetime | None = None,
) -> tuple[Check, dict[str, Any] | None]:
    """The monitor's heartbeat is fresh (the named instance's, else the freshest)."""
    now = now or datetime.now(UTC)
    try:
        beats = read_heartbeats(store)
    except ReviewDatabaseError as exc:
        return Check("heartbeat", "fail", str(exc), "fix the database first"), None
    if instance is not None:
        beats = [b for b in beats if b["instance"] == instance] or beats
    if not beats:
        return (
            Check(
                "heartbeat",
                "fail",
                "no monitor has ever recorded a heartbeat in this database",
                "start the service: `systemctl start wa-monitor@prod` (or `wa-monitor run`)",
            ),
            None,
        )
    beat = beats[0]
    age = (now - beat["beat_at"]).total_seconds()
    name = f"monitor {beat['instance']} (pid {beat['pid']} on {beat['host']})"
    if age > max_age:
        return (
            Check(
                "heartbeat",
                "fail",
                f"{name} last beat {describe_age(age)} ago (limit {describe_age(max_age)})",
                "the monitor is stopped or stuck: `systemctl status wa-monitor@prod`, "
                "`journalctl -u wa-monitor@prod -n 50`",
            ),
            beat,
        )
    status = beat.get("status") or {}
    if status.get("stopped_at"):
        return (
            Check(
                "heartbeat",
                "fail",
                f"{name} stopped at {status['stopped_at']}",
                "start it: `systemctl start wa-monitor@prod` (or `wa-monitor run`)",
            ),
            beat,
        )
    if status.get("healthy") is False:
        return (
            Check(
                "heartbeat",
                "fail",
                f"{name} beat {describe_age(age)} ago but reports itself unhealthy: "
                f"{status.get('last_error') or 'the bridge store is stale'}",
                "run `wa-monitor doctor`; `journalctl -u wa-monitor@prod -n 50`",
            ),
            beat,
        )
    return Check("heartbeat", "pass", f"{name} beat {describe_age(age)} ago"), beat


def outbox_depth(store: ReviewStore) -> int:
    """Feedback messages waiting to be sent."""
    t = feedback_outbox
    with store.begin() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.status == "pending")
        ).scalar()
    return int(count or 0)


# -- the bridge store ---------------------------------------------------------------------


def store_changed_at(path: Path) -> datetime | None:
    """When the bridge last committed to messages.db (its file, or its WAL, changed)."""
    times: list[float] = []
    for candidate in (path, Path(f"{path}-wal"), Path(f"{path}-journal")):
        try:
            times.append(candidate.stat().st_mtime)
        except OSError:
            continue
    return datetime.fromtimestamp(max(times), UTC) if times else None


def check_bridge_readable(path: Path | None) -> Check:
    if path is None:
        return Check(
            "bridge store",
            "fail",
            "WHATSAPP_DB_PATH is not set",
            "set WHATSAPP_DB_PATH to the bridge's store/messages.db in the .env file",
        )
    bridge = BridgeStore(path)
    try:
        bridge.open()
        count = bridge.max_rowid()
    except BridgeStoreError as exc:
        return Check(
            "bridge store",
            "fail",
            str(exc),
            "check the path, that the bridge runs (`systemctl status whatsapp-bridge`) and "
            "that this user may read the file",
        )
    finally:
        bridge.close()
    return Check("bridge store", "pass", f"{path} readable ({count} rows)")


def check_bridge_fresh(
    path: Path | None,
    max_age: float,
    hours: WorkingHours,
    zone: tzinfo,
    *,
    now: datetime | None = None,
) -> Check:
    """messages.db changed recently (only judged during working hours)."""
    now = now or datetime.now(UTC)
    changed = store_changed_at(path) if path is not None else None
    if changed is None:
        return Check("bridge activity", "fail", "messages.db not found", "see `bridge store`")
    age = (now - changed).total_seconds()
    detail = f"messages.db last changed {describe_age(age)} ago"
    if age <= max_age:
        return Check("bridge activity", "pass", detail)
    if not hours.contains(now, zone):
        return Check("bridge activity", "pass", detail + " (outside working hours)")
    return Check(
        "bridge activity",
        "fail",
        detail + f" (limit {describe_age(max_age)} during working hours)",
        "the bridge may be down or logged out: `ps aux | grep whatsapp-bridge`, check its "
        "log for `Chat=` lines, re-pair it if WhatsApp logged it out",
    )


def newest_messages(bridge: BridgeStore, jids: Iterable[str]) -> dict[str, datetime | None]:
    """The newest message time of each group (the chats table, else its latest row)."""
    wanted = sorted(set(jids))
    if not wanted:
        return {}
    conn = bridge.conn
    marks = ",".join("?" * len(wanted))
    found: dict[str, datetime | None] = dict.fromkeys(wanted)
    try:
        conn.execute("BEGIN")
        sql = f"SELECT jid, last_message_time FROM chats WHERE jid IN ({marks})"  # noqa: S608
        for jid, when in conn.execute(sql, wanted):
            found[jid] = parse_timestamp(when)
        for jid in [j for j, when in found.items() if when is None]:
            row = conn.execute(
                "SELECT max(timestamp) FROM (SELECT timestamp FROM messages "
                "WHERE chat_jid = ? ORDER BY rowid DESC LIMIT 50)",
                (jid,),
            ).fetchone()
            found[jid] = parse_timestamp(row[0]) if row else None
    except sqlite3.DatabaseError as exc:
        raise BridgeStoreError(f"{bridge.messages_db}: cannot read messages.db: {exc}") from None
    finally:
        # A damaged file fails the COMMIT too: that must not escape as a raw sqlite3 error.
        try:
            if conn.in_transaction:
                conn.execute("COMMIT")
        except sqlite3.Error:
            conn.rollback()
    return found


def group_staleness(
    newest: Mapping[str, datetime | None],
    names: Mapping[str, str],
    max_age: float,
    hours: WorkingHours,
    zone: tzinfo,
    *,
    now: datetime | None = None,
) -> list[Check]:
    """A warning for each monitored group silent longer than `max_age` in working hours."""
    now = now or datetime.now(UTC)
    checks: list[Check] = []
    working = hours.contains(now, zone)
    for jid, when in sorted(newest.items(), key=lambda item: names.get(item[0], item[0])):
        label = f"group {names.get(jid, jid)}"
        if when is None:
            checks.append(
                Check(
                    label,
                    "warn",
                    f"{jid}: no message in the bridge store",
                    "check the JID (`wa-monitor groups`) and that the bridge's number is in it",
                )
            )
            continue
        age = (now - when).total_seconds()
        if age > max_age and working:
            checks.append(
                Check(
                    label,
                    "warn",
                    f"{jid}: newest message {describe_age(age)} ago "
                    f"(limit {describe_age(max_age)} during working hours)",
                    "is the bridge still in the group and connected? compare with the "
                    "group on a phone",
                )
            )
        else:
            checks.append(Check(label, "pass", f"{jid}: newest message {describe_age(age)} ago"))
    return checks


def summarise(checks: Sequence[Check]) -> Report:
    return Report(tuple(checks))
