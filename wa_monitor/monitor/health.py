"""Health checks, and the one readiness report built from them.

Each check returns a `Check`: a name, pass/warn/fail, what was found and, when it
is not a pass, what to do about it. `readiness` composes the checks that say
whether the monitor can do its work; `wa-monitor status`, `/readyz` and `doctor`
all report it (doctor around checks of its own). Reading only: nothing here
writes. The rows judged here are read by `heartbeats`; working hours are `hours`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, Literal

from wa_monitor.core.errors import BridgeStoreError, ReviewDatabaseError, WaMonitorError
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.settings import Settings
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.heartbeats import read_heartbeats
from wa_monitor.store.media_queue import Backlog, backlog
from wa_monitor.store.review_store import ReviewStore

Status = Literal["pass", "warn", "fail"]


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


def describe_age(seconds: float) -> str:
    """An age as an operator reads it: `45 s`, `12 min`, `3.5 h`, `2.0 days`."""
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


# -- the groups ---------------------------------------------------------------------------


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


def reported_groups(beat: Mapping[str, Any] | None) -> list[Check]:
    """Quiet groups as the monitor judged them (warnings: not a reason to be unready)."""
    if beat is None:
        return []
    return [
        Check(
            f"group {group.get('project')}",
            "warn",
            f"{group.get('jid')}: newest message at {group.get('newest_at')}",
            "is the bridge still in the group and connected?",
        )
        for group in (beat.get("status") or {}).get("groups") or []
        if group.get("stale")
    ]


def live_groups(
    settings: Settings,
    names: Mapping[str, str],
    zone: tzinfo,
    *,
    now: datetime | None = None,
) -> list[Check]:
    """Each monitored group's newest message, read from this host's bridge store."""
    assert settings.whatsapp_db_path is not None
    bridge = BridgeStore(settings.whatsapp_db_path)
    try:
        newest = bridge.newest_messages(names)
    finally:
        bridge.close()
    hours = WorkingHours.parse(settings.working_hours)
    return group_staleness(newest, names, settings.stale_after, hours, zone, now=now)


# -- readiness ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    """The readiness checks, and the heartbeat row they judged (None when none was read)."""

    report: Report
    beat: dict[str, Any] | None
    # This host read the bridge store itself, so its groups can be judged here too.
    bridge_readable: bool = False


def check_writes(store: ReviewStore) -> Check:
    """Reviewers' edits need a database that takes writes, not only one that answers."""
    try:
        store.check_writable()
    except ReviewDatabaseError as exc:
        return Check(
            "database writes",
            "fail",
            f"the review database refuses writes: {exc}",
            "point DATABASE_URL at the primary, not a replica or hot standby; check "
            "default_transaction_read_only, the role's privileges and that the file is writable",
        )
    return Check("database writes", "pass", "accepts writes")


# -- the photos ---------------------------------------------------------------------------

# A photo waiting longer than this (due, not in a backoff) means the worker is not keeping
# up, or not running: an installer's burst of 12 is fetched in seconds.
PHOTOS_LATE_AFTER = 3600.0


def describe_backlog(queue: Backlog, now: datetime | None = None) -> str:
    """`3 pending (oldest posted 12 min ago), 120 available, 2 failed, 1 unavailable`."""
    age = queue.oldest_pending_age(now)
    oldest = f" (oldest posted {describe_age(age)} ago)" if age is not None else ""
    return (
        f"{queue.count('pending')} pending{oldest}, {queue.count('available')} available, "
        f"{queue.count('failed')} failed, {queue.count('unavailable')} unavailable"
    )


def check_photos(
    store: ReviewStore,
    beat: Mapping[str, Any] | None = None,
    *,
    now: datetime | None = None,
    reasons: bool = False,
) -> tuple[Check, Backlog | None]:
    """The photo queue (`media_queue.backlog`), and what the monitor's worker reported.

    A warning, never a failure: photos do not stop drops being recorded. `reasons` adds
    the latest failures' reasons (doctor).
    """
    now = now or datetime.now(UTC)
    try:
        queue = backlog(store, now=now)
    except ReviewDatabaseError as exc:
        return Check("photos", "warn", f"the photo queue cannot be read: {exc}"), None
    detail = describe_backlog(queue, now)
    if reasons and queue.failures:
        detail += "; latest failures: " + " | ".join(r for r, _ in queue.failures)
    media = ((beat or {}).get("status") or {}).get("media") or {}
    if media and media.get("fetching") is False:
        return (
            Check(
                "photos",
                "warn",
                f"{detail}; the monitor links photos but does not fetch them: "
                f"{media.get('reason') or 'no reason reported'}",
                "fix the media store (MEDIA_DIR or MEDIA_URL) or BRIDGE_URL, then restart",
            ),
            queue,
        )
    age = queue.oldest_pending_age(now)
    if queue.due and age is not None and age > PHOTOS_LATE_AFTER:
        return (
            Check(
                "photos",
                "warn",
                f"{detail}; {queue.due} due now",
                "is `wa-monitor run` running, and the bridge's API answering at BRIDGE_URL? "
                "see the log's media worker lines",
            ),
            queue,
        )
    return Check("photos", "pass", detail), queue


def _no_checks(store: ReviewStore) -> Sequence[Check]:
    return ()


def readiness(
    settings: Settings,
    store: ReviewStore | None,
    zone: tzinfo = UTC,
    *,
    instance: str | None = None,
    now: datetime | None = None,
    writes: bool = False,
    database_extras: Callable[[ReviewStore], Sequence[Check]] = _no_checks,
    bridge_from_heartbeat: bool = False,
) -> Readiness:
    """Can the monitor do its work: the review database, the monitor's heartbeat, the bridge.

    In order: the database is reachable and at the schema head (and takes writes, when
    `writes`); then `database_extras` (doctor's prod/dev guard, reported but not gating);
    then the heartbeat of `instance` (else the freshest); then the bridge store is
    readable and, if so, changed recently in working hours. A `store` of None is a
    database that could not even be opened (its caller reports why): only the bridge
    is checked. With `bridge_from_heartbeat` and no WHATSAPP_DB_PATH (a dashboard on
    another host than the bridge), the monitor's last view of the bridge stands in.
    """
    checks: list[Check] = []
    beat: dict[str, Any] | None = None
    if store is not None:
        checks.extend(check_database(store))
        if writes and all(c.ok for c in checks):
            checks.append(check_writes(store))
        if all(c.ok for c in checks):
            checks.extend(database_extras(store))
            beat_check, beat = check_heartbeat(
                store, settings.heartbeat_stale_after, instance=instance, now=now
            )
            checks.append(beat_check)
    path = settings.whatsapp_db_path
    if path is None and bridge_from_heartbeat:
        if beat is not None:
            checks.extend(_reported_sources(beat))
        return Readiness(Report(tuple(checks)), beat)
    readable = check_bridge_readable(path)
    checks.append(readable)
    if not readable.ok or path is None:
        return Readiness(Report(tuple(checks)), beat)
    hours = WorkingHours.parse(settings.working_hours)
    checks.append(check_bridge_fresh(path, settings.bridge_stale_after, hours, zone, now=now))
    return Readiness(Report(tuple(checks)), beat, bridge_readable=True)


def _reported_sources(beat: Mapping[str, Any]) -> list[Check]:
    """What the monitor last saw of its sources: the bridge store (when one is read, or
    the heartbeat predates the gateways) and the webhook inbox (when one is read)."""
    status = beat.get("status") or {}
    inbox = status.get("inbox")
    checks = []
    if status.get("bridge") is not None or inbox is None:
        checks.append(_reported_bridge(beat))
    if isinstance(inbox, Mapping):
        gateways = ", ".join(str(g) for g in inbox.get("gateways") or ()) or "webhooks"
        if inbox.get("readable", True) is False:
            checks.append(
                Check("webhook inbox", "fail", f"the monitor cannot read it: {inbox.get('error')}")
            )
        elif inbox.get("stale"):
            checks.append(
                Check(
                    "webhook activity",
                    "fail",
                    f"the monitor reports nothing received from {gateways} for too long in "
                    "working hours",
                    "check the gateway's session and its webhook (`wa-monitor doctor`)",
                )
            )
        else:
            checks.append(Check("webhook inbox", "pass", f"read by the monitor ({gateways})"))
    return checks


def _reported_bridge(beat: Mapping[str, Any]) -> Check:
    bridge = (beat.get("status") or {}).get("bridge") or {}
    if bridge.get("readable", True) is False:
        return Check("bridge store", "fail", f"the monitor cannot read it: {bridge.get('error')}")
    if bridge.get("stale"):
        return Check("bridge activity", "fail", "the monitor reports messages.db stale")
    return Check("bridge store", "pass", "readable, as the monitor reports")
