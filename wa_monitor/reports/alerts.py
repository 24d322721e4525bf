"""Alerts that reach a person: conditions judged on one reading of the installation,
told to the channels of the projects file's `alerts:` once per quiet period, and again
when they clear.

`read` gathers the figures (heartbeats, the bridge store, the outbox, the photo queue,
overdue reviews, failed report deliveries); `judge` is pure; `tell` sends what changed
and records it in alert_states, so a restart does not repeat itself.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from wa_monitor.core import queue
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import WaMonitorError
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.report_config import AlertRules, Destination
from wa_monitor.core.settings import Settings
from wa_monitor.feedback import outbox
from wa_monitor.monitor.health import describe_age, store_changed_at
from wa_monitor.monitor.metrics import review_queue
from wa_monitor.reports import destinations
from wa_monitor.reports.build import Built
from wa_monitor.reports.destinations import Outbound
from wa_monitor.store import alert_states as states
from wa_monitor.store import report_deliveries as records
from wa_monitor.store.heartbeats import outbox_depth, read_heartbeats
from wa_monitor.store.media_queue import backlog
from wa_monitor.store.review_store import ReviewStore

log = logging.getLogger("wa_monitor.reports")

# A message that did not go (or is being sent by another process) is not tried again
# before this: longer than one SMTP or webhook exchange may take.
RETRY_AFTER = timedelta(minutes=2)
# Feedback not known to be in the group: waiting, on its way, or unconfirmed (a bridge
# that times out leaves every message there, none pending, until a person acts).
OUTBOX_BACKLOG = (outbox.PENDING, outbox.SENDING, outbox.UNCONFIRMED)
# A failed delivery of a period older than this no longer fires `report-failed`.
FAILED_WITHIN = timedelta(days=7)

TITLES = {
    "monitor-silent": "the monitor is silent",
    "bridge-stale": "the bridge store is stale",
    "outbox-backlog": "feedback is piling up in the outbox",
    "media-backlog": "photos are piling up in the media queue",
    "overdue-reviews": "reviews are overdue",
    "report-failed": "a report was not delivered",
}


@dataclass(frozen=True)
class Readings:
    """The installation at one moment, as the conditions judge it."""

    now: datetime
    heartbeat_age: float | None  # seconds since the freshest beat; None: never beat
    monitor: str = "the monitor"
    monitor_stopped: bool = False
    bridge_age: float | None = None  # seconds since messages.db changed; None: unknown
    bridge_reported_stale: bool = False  # the monitor says so (no WHATSAPP_DB_PATH here)
    working: bool = True  # in working hours
    outbox: int = 0
    media: int = 0
    overdue: int = 0
    failed_reports: tuple[str, ...] = ()


@dataclass(frozen=True)
class Finding:
    """One condition's verdict: firing or clear, and the reading behind it."""

    alert: str  # a key of TITLES
    firing: bool
    detail: str
    fix: str = ""


def read(
    store: ReviewStore,
    settings: Settings,
    config: ProjectsConfig,
    *,
    now: datetime | None = None,
) -> Readings:
    """Every figure the conditions need, from the review database and the bridge store."""
    now = now or datetime.now(UTC)
    hours = WorkingHours.parse(settings.working_hours or "always")
    beats = read_heartbeats(store)
    beat = beats[0] if beats else None
    status = (beat or {}).get("status") or {}
    bridge_age = None
    if settings.whatsapp_db_path is not None:
        changed = store_changed_at(settings.whatsapp_db_path)
        bridge_age = (now - changed).total_seconds() if changed is not None else None
    clocks = queue.clocks_for(config.projects, hours)
    _waiting, overdue = review_queue(store, clocks, config.zone, now)
    return Readings(
        now=now,
        heartbeat_age=(now - beat["beat_at"]).total_seconds() if beat else None,
        monitor=f"the monitor {beat['instance']}" if beat else "the monitor",
        monitor_stopped=bool(status.get("stopped_at")),
        bridge_age=bridge_age,
        bridge_reported_stale=bool((status.get("bridge") or {}).get("stale")),
        working=hours.contains(now, config.zone),
        outbox=outbox_depth(store, OUTBOX_BACKLOG),
        media=backlog(store, now=now).count("pending"),
        overdue=sum(overdue.values()),
        failed_reports=_failed_reports(store, now, config.zone),
    )


def _failed_reports(store: ReviewStore, now: datetime, zone: tzinfo) -> tuple[str, ...]:
    oldest = (now - FAILED_WITHIN).astimezone(zone).date().isoformat()
    failed = [
        d
        for d in records.recent(store, limit=200)
        if d.status == records.FAILED and d.period >= oldest
    ]
    return tuple(f"{d.report} {d.period} → {d.destination}: {d.last_error}" for d in failed)


def judge(rules: AlertRules, r: Readings) -> list[Finding]:
    """The verdict of each condition turned on (pure). The bridge's is left out when it
    cannot be judged: outside working hours, or with nothing to read its age from."""
    found: list[Finding] = []
    if rules.monitor_silent is not None:
        limit = rules.monitor_silent.total_seconds()
        if r.heartbeat_age is None:
            found.append(
                Finding(
                    "monitor-silent",
                    True,
                    "no monitor has ever written a heartbeat in this database",
                    "start it: `systemctl start wa-monitor@INSTANCE` (or `wa-monitor run`)",
                )
            )
        else:
            age = describe_age(r.heartbeat_age)
            silent = r.heartbeat_age > limit or r.monitor_stopped
            said = "stopped" if r.monitor_stopped else f"last beat {age} ago"
            found.append(
                Finding(
                    "monitor-silent",
                    silent,
                    f"{r.monitor} {said} (limit {describe_age(limit)})",
                    "`systemctl status wa-monitor@INSTANCE`, `journalctl -u wa-monitor@INSTANCE`",
                )
            )
    if rules.bridge_stale is not None and r.working:
        limit = rules.bridge_stale.total_seconds()
        fix = "check the bridge runs and is paired (its log, `wa-monitor doctor`)"
        if r.bridge_age is not None:
            stale = r.bridge_age > limit
            detail = (
                f"messages.db last changed {describe_age(r.bridge_age)} ago "
                f"(limit {describe_age(limit)} in working hours)"
            )
            found.append(Finding("bridge-stale", stale, detail, fix))
        elif r.heartbeat_age is not None:
            said = "stale" if r.bridge_reported_stale else "fresh"
            detail = f"{r.monitor} reports messages.db {said}"
            found.append(Finding("bridge-stale", r.bridge_reported_stale, detail, fix))
    counts = (
        (
            "outbox-backlog",
            rules.outbox_backlog,
            r.outbox,
            "feedback message(s) wait to be sent",
            "check BRIDGE_URL and the bridge: `wa-monitor doctor`, the dashboard's outbox",
        ),
        (
            "media-backlog",
            rules.media_backlog,
            r.media,
            "photo(s) wait to be fetched",
            "check the monitor's log for media errors and the bridge's downloads",
        ),
        (
            "overdue-reviews",
            rules.overdue_reviews,
            r.overdue,
            "drop(s) wait past their target",
            "review them: the dashboard's queue, filter Overdue",
        ),
    )
    for alert, most, count, what, fix in counts:
        if most is not None:
            found.append(Finding(alert, count >= most, f"{count} {what} (limit {most})", fix))
    if rules.report_failed:
        failed = r.failed_reports
        detail = "; ".join(failed[:5]) + (
            f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
        )
        found.append(
            Finding(
                "report-failed",
                bool(failed),
                detail or "every recent report was delivered",
                "it is tried again; or `wa-monitor report send --report NAME --date D`",
            )
        )
    return found


@dataclass(frozen=True)
class Told:
    """One alert message that went (or did not) to one channel."""

    alert: str
    channel: Destination
    state: str  # FIRING (first, or a reminder after the quiet period) | RESOLVED
    ok: bool
    message: str


def tell(
    store: ReviewStore,
    rules: AlertRules,
    findings: Sequence[Finding],
    *,
    outbound: Outbound,
    zone: tzinfo,
    instance: str,
    now: datetime | None = None,
) -> list[Told]:
    """Send each finding that changed (or is still firing past the quiet period) to each
    channel, once, and record it; a channel that fails is tried again after RETRY_AFTER."""
    now = now or datetime.now(UTC)
    told: list[Told] = []
    for finding in findings:
        for channel in rules.to:
            try:
                done = _tell_one(store, rules, finding, channel, outbound, zone, instance, now)
            except WaMonitorError as exc:  # the review database
                log.error("alert %s → %s: %s", finding.alert, channel, exc)
                continue
            if done is not None:
                told.append(done)
    return told


def _tell_one(
    store: ReviewStore,
    rules: AlertRules,
    finding: Finding,
    channel: Destination,
    outbound: Outbound,
    zone: tzinfo,
    instance: str,
    now: datetime,
) -> Told | None:
    seen = states.get(store, finding.alert, channel.key)
    state = _next_state(rules, finding, seen, now)
    if state is None:
        return None
    claimed = states.claim(store, finding.alert, channel.key, seen, now)
    if claimed is None:  # another scheduler has it
        return None
    since = (seen.since if seen is not None and seen.state == states.FIRING else None) or now
    built = message(finding, state, since, now, zone, instance)
    try:
        details = destinations.deliver(channel, built, outbound)
    except WaMonitorError as exc:
        states.failed(store, claimed, str(exc))
        log.warning("alert %s (%s) → %s failed: %s", finding.alert, state, channel, exc)
        return Told(finding.alert, channel, state, False, str(exc))
    except BaseException as exc:
        states.failed(store, claimed, f"interrupted: {type(exc).__name__}: {exc}")
        raise
    states.sent(
        store,
        claimed,
        state=state,
        since=since if state == states.FIRING else None,
        message=built.subject,
        details=details,
        now=now,
    )
    log.info("alert %s (%s) → %s: %s", finding.alert, state, channel, finding.detail)
    return Told(finding.alert, channel, state, True, built.subject)


def _next_state(
    rules: AlertRules, finding: Finding, seen: states.AlertState | None, now: datetime
) -> str | None:
    """What to tell now: FIRING, RESOLVED, or nothing (None)."""
    if seen is not None and seen.attempt_at is not None:
        finished = seen.sent_at is not None and seen.sent_at >= seen.attempt_at
        if not finished and now - seen.attempt_at < RETRY_AFTER:
            return None  # being sent elsewhere, or failed a moment ago
    told = seen.state if seen is not None else states.NEW
    if finding.firing:
        if told != states.FIRING:
            return states.FIRING
        assert seen is not None and seen.sent_at is not None
        return states.FIRING if now - seen.sent_at >= rules.quiet else None
    return states.RESOLVED if told == states.FIRING else None


def message(
    finding: Finding, state: str, since: datetime, now: datetime, zone: tzinfo, instance: str
) -> Built:
    """The alert as a channel gets it: a subject and a text (e-mail), a JSON body (webhook,
    folder), its times in the business zone with its abbreviation."""
    title = TITLES.get(finding.alert, finding.alert)
    local = now.astimezone(zone)
    started = since.astimezone(zone)
    if state == states.FIRING:
        subject = f"[WA Monitor {instance}] ALERT: {title}"
        lines = [
            f"{title[0].upper()}{title[1:]}: {finding.detail}.",
            "",
            f"Since {started:%Y-%m-%d %H:%M %Z}; checked {local:%Y-%m-%d %H:%M %Z}.",
            f"What to do: {finding.fix}" if finding.fix else "",
            "",
            "You are told again while it lasts, once per quiet period, and when it clears.",
        ]
    else:
        subject = f"[WA Monitor {instance}] resolved: {title}"
        lines = [
            f"Resolved at {local:%Y-%m-%d %H:%M %Z}: {finding.detail}.",
            f"It had fired since {started:%Y-%m-%d %H:%M %Z}.",
        ]
    document = {
        "alert": finding.alert,
        "state": state,
        "title": title,
        "detail": finding.detail,
        "fix": finding.fix,
        "instance": instance,
        "since": since.astimezone(UTC).isoformat(),
        "at": now.astimezone(UTC).isoformat(),
    }
    content = (json.dumps(document, ensure_ascii=False, indent=2) + "\n").encode()
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Built(
        file_name=f"alert-{finding.alert}-{state}-{stamp}.json",
        content=content,
        rows=1,
        subject=subject,
        text="\n".join(lines).replace("\n\n\n", "\n\n") + "\n",
        attach=False,
        labels={"alert": finding.alert, "state": state},
    )
