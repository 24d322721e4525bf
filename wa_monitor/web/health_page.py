"""The admins' health panel: /wa-monitor/health and its JSON, /api/wa-monitor-health-panel.

Per group the last message and the last drop, each source (the bridge store, each webhook
gateway: its groups, newest message, session state), each monitor's heartbeat, the bridge
store's freshness, the feedback and photo backlogs, failed reports, firing alerts and what
wants a person's attention, every time in the business zone with its abbreviation and its
age. The judgements are
the readiness checks' own limits (STALE_AFTER, BRIDGE_STALE_AFTER, HEARTBEAT_STALE_AFTER,
WORKING_HOURS); the reads are health_panel_queries', each an index read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from wa_monitor import __version__
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import BridgeStoreError
from wa_monitor.core.gateways import BRIDGE, EVOLUTION, INBOX_GATEWAYS, WAHA, gateway_of
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.settings import Settings
from wa_monitor.monitor.health import PHOTOS_LATE_AFTER, describe_age, store_changed_at
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store import alert_states
from wa_monitor.store.heartbeats import read_heartbeats
from wa_monitor.web import health_panel_queries as hq
from wa_monitor.web.api import _config, _errors, _store
from wa_monitor.web.auth import Admin, Caller
from wa_monitor.web.envelope import Envelope, ok
from wa_monitor.web.models import local_text
from wa_monitor.web.pages import _admin_page, _zone_abbr, templates

router = APIRouter(tags=["operations"], responses=_errors)
# A project silent longer than this shows "no drop in 30 days" rather than reading further
# back through the drops' index.
LAST_DROP_WINDOW = timedelta(days=30)
# The page asks again every this many of the dashboard's polls (15 s at the default 5 s).
REFRESH_POLLS = 3

Level = Literal["fail", "warn"]


# -- the answer ---------------------------------------------------------------------------


class Moment(BaseModel):
    at: datetime = Field(description="UTC, ISO 8601")
    local: str = Field(description="In the business zone: `2026-03-02 14:05 SAST`")
    ageSeconds: int
    age: str = Field(description="`45 s`, `12 min`, `3.5 h`, `2.0 days`")


class LastDrop(Moment):
    dropNumber: str


class GroupHealth(BaseModel):
    project: str
    jid: str
    description: str
    gateway: str = Field(description="Where its messages come from: bridge, waha, evolution …")
    lastMessage: Moment | None
    lastMessageFrom: Literal["bridge store", "heartbeat", "inbox"] | None = Field(
        description="Read from this host's bridge store, as the monitor last reported it, or "
        "from the webhook gateways' inbox"
    )
    lastDrop: LastDrop | None = Field(description="Newest drop first posted in the last 30 days")
    stale: bool
    problem: str | None


class MonitorHealth(BaseModel):
    instance: str
    env: str | None
    host: str | None
    pid: int | None
    current: bool = Field(description="The monitor this dashboard's readiness judges")
    status: Literal["running", "stale", "stopped", "unhealthy"]
    detail: str
    lastBeat: Moment
    startedAt: Moment | None
    lastScan: Moment | None


class BridgeHealth(BaseModel):
    status: Literal["fresh", "stale", "quiet", "unknown", "unused"] = Field(
        description="quiet: unchanged for long, outside working hours; unused: no project "
        "reads a bridge store"
    )
    source: Literal["bridge store", "heartbeat"] | None
    changedAt: Moment | None
    detail: str


class SessionHealth(BaseModel):
    session: str
    status: str = Field(description="As the gateway reported it: WORKING, SCAN_QR_CODE, open …")
    working: bool
    changedAt: Moment


class SourceGroup(BaseModel):
    project: str
    jid: str
    lastMessage: Moment | None


class SourceHealth(BaseModel):
    gateway: str = Field(description="bridge, waha, evolution or bridge-webhook")
    label: str
    status: Literal["ok", "warn", "fail"]
    groups: list[SourceGroup]
    lastMessage: Moment | None = Field(description="The newest message of its groups")
    sessions: list[SessionHealth] = Field(description="The gateway's sessions (webhook ones)")
    connection: str | None = Field(
        description="`wa-monitor bridge`'s connection state (bridge-status.json), when known"
    )
    warnings: list[str]


class FeedbackEntry(BaseModel):
    id: int
    status: str
    dropNumber: str
    project: str | None
    attempts: int
    lastError: str | None
    requestedBy: str | None
    requestedAt: Moment


class FeedbackHealth(BaseModel):
    pending: int
    sending: int
    failed: int
    unconfirmed: int
    entries: list[FeedbackEntry] = Field(description="Failed and unconfirmed, newest first")


class PhotoFailure(BaseModel):
    dropNumber: str | None
    project: str | None
    filename: str | None
    attempts: int
    lastError: str | None
    postedAt: Moment


class MediaHealth(BaseModel):
    pending: int = Field(description="Photos of a drop waiting to be fetched")
    failed: int
    unlinked: int = Field(description="Photos of no drop: not fetched")
    oldestPending: Moment | None
    fetching: bool | None = Field(description="The monitor's photo worker fetches (None: unknown)")
    failures: list[PhotoFailure] = Field(description="The newest failed photos")


class ReportFailure(BaseModel):
    report: str
    period: str
    destination: str = Field(description="Its kind: folder, email, webhook")
    attempts: int
    lastError: str | None
    at: Moment


class AlertFiring(BaseModel):
    alert: str
    channel: str = Field(description="Its kind: email, webhook, folder")
    since: Moment | None
    sentAt: Moment | None = Field(description="When it reached the channel (None: not yet)")
    message: str | None
    lastError: str | None


class PanelWarning(BaseModel):
    level: Level
    source: str
    message: str


class HealthPanel(BaseModel):
    status: Literal["ok", "warn", "fail"]
    generatedAt: datetime
    generatedLocal: str
    timezone: str
    zoneAbbr: str
    refreshSeconds: float
    groups: list[GroupHealth]
    sources: list[SourceHealth] = Field(description="Per gateway in use: its groups and state")
    monitors: list[MonitorHealth]
    bridge: BridgeHealth
    feedback: FeedbackHealth
    media: MediaHealth
    reports: list[ReportFailure] = Field(description="Report deliveries that failed")
    alerts: list[AlertFiring] = Field(description="Alerts firing now, per channel")
    warnings: list[PanelWarning] = Field(description="Failures first")


# -- building it --------------------------------------------------------------------------


@dataclass(frozen=True)
class Clock:
    now: datetime
    zone: tzinfo

    def moment(self, when: datetime | str | None) -> Moment | None:
        instant = _instant(when)
        if instant is None:
            return None
        age = max(0, int((self.now - instant).total_seconds()))
        return Moment(
            at=instant,
            local=local_text(instant, self.zone) or "",
            ageSeconds=age,
            age=describe_age(age),
        )

    def at(self, when: datetime) -> Moment:
        found = self.moment(when)
        assert found is not None
        return found


def _instant(when: datetime | str | None) -> datetime | None:
    if isinstance(when, str):
        try:
            when = datetime.fromisoformat(when)
        except ValueError:
            return None
    if when is None:
        return None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class Findings:
    """The warnings, as the sections are built."""

    def __init__(self) -> None:
        self.items: list[PanelWarning] = []

    def add(self, level: Level, source: str, message: str) -> None:
        self.items.append(PanelWarning(level=level, source=source, message=message))

    def sorted(self) -> list[PanelWarning]:
        return sorted(self.items, key=lambda w: w.level != "fail")


def _status(beat: Mapping[str, Any]) -> dict[str, Any]:
    status = beat.get("status")
    return status if isinstance(status, dict) else {}


def _monitors(
    beats: Sequence[Mapping[str, Any]], settings: Settings, clock: Clock, found: Findings
) -> tuple[list[MonitorHealth], Mapping[str, Any] | None]:
    """Each monitor reporting here, and the heartbeat judged as this dashboard's (as
    `check_heartbeat`: its own instance's, else the freshest)."""
    current = next((b for b in beats if b["instance"] == settings.instance), None)
    current = current or (beats[0] if beats else None)
    if current is None:
        found.add(
            "fail",
            "monitor",
            "No monitor has recorded a heartbeat in this database: start it "
            "(`systemctl start wa-monitor@prod`, or `wa-monitor run`)",
        )
    monitors = []
    for beat in beats:
        status = _status(beat)
        last = clock.at(beat["beat_at"])
        mine = beat is current
        name = f"{beat['instance']} (pid {beat.get('pid')} on {beat.get('host')})"
        state: Literal["running", "stale", "stopped", "unhealthy"]
        if status.get("stopped_at"):
            state, detail = "stopped", f"stopped at {_local(status['stopped_at'], clock)}"
        elif last.ageSeconds > settings.heartbeat_stale_after:
            state = "stale"
            detail = (
                f"last beat {last.age} ago (limit {describe_age(settings.heartbeat_stale_after)})"
            )
        elif status.get("healthy") is False:
            state = "unhealthy"
            why = status.get("last_error") or "the bridge store is stale"
            detail = f"reports itself unhealthy: {why}"
        else:
            state, detail = "running", f"beat {last.age} ago"
        if state != "running":
            fix = (
                "`systemctl status wa-monitor@INSTANCE`, `journalctl -u wa-monitor@INSTANCE -n 50`"
            )
            found.add("fail" if mine else "warn", "monitor", f"Monitor {name}: {detail}; {fix}")
        elif status.get("last_error"):
            found.add("warn", "monitor", f"Monitor {name}: last error: {status['last_error']}")
        _counter_warnings(beat, name, found)
        monitors.append(
            MonitorHealth(
                instance=str(beat["instance"]),
                env=status.get("env"),
                host=beat.get("host"),
                pid=beat.get("pid"),
                current=mine,
                status=state,
                detail=detail,
                lastBeat=last,
                startedAt=clock.moment(beat.get("started_at")),
                lastScan=clock.moment(status.get("last_scan_at")),
            )
        )
    return monitors, current


def _counter_warnings(beat: Mapping[str, Any], name: str, found: Findings) -> None:
    """What the monitor counted since it started that an admin should hear of."""
    counters = beat.get("counters")
    counters = counters if isinstance(counters, dict) else {}
    rejected = int(counters.get("rejected_reloads") or 0)
    if rejected:
        found.add(
            "warn",
            "projects file",
            f"Monitor {name} rejected the projects file {rejected} time(s) since it started "
            "and keeps the last good one: `wa-monitor check-config` says why",
        )
    errors = {k: int(v) for k, v in (counters.get("errors") or {}).items() if v}
    errors.pop("config", None)  # told above
    if errors:
        listed = ", ".join(f"{kind} {n}" for kind, n in sorted(errors.items()))
        found.add("warn", "monitor", f"Monitor {name}: errors since it started: {listed}")
    unreadable = int(counters.get("rows_unreadable_time") or 0)
    if unreadable:
        found.add(
            "warn",
            "bridge",
            f"Monitor {name} skipped {unreadable} bridge row(s) whose time it could not read",
        )
    bridge = _status(beat).get("bridge") or {}
    for key in ("error", "contacts_error"):
        if bridge.get(key):
            found.add("warn", "bridge", f"Monitor {name}: {bridge[key]}")


def _local(when: Any, clock: Clock) -> str:
    moment = clock.moment(when)
    return moment.local if moment is not None else str(when)


def _bridge(
    settings: Settings,
    current: Mapping[str, Any] | None,
    hours: WorkingHours,
    clock: Clock,
    found: Findings,
    *,
    uses_bridge: bool = True,
) -> BridgeHealth:
    source: Literal["bridge store", "heartbeat"] | None
    if not uses_bridge:
        return BridgeHealth(
            status="unused",
            source=None,
            changedAt=None,
            detail="no project reads a bridge store: every one is on a webhook gateway",
        )
    if settings.whatsapp_db_path is not None:
        changed: datetime | str | None = store_changed_at(settings.whatsapp_db_path)
        source = "bridge store"
    elif current is not None:
        changed = (_status(current).get("bridge") or {}).get("changed_at")
        source = "heartbeat"
    else:
        changed, source = None, None
    moment = clock.moment(changed)
    limit = settings.bridge_stale_after
    if moment is None:
        detail = (
            f"{settings.whatsapp_db_path} not found"
            if source == "bridge store"
            else "no view of the bridge store: no monitor reports on it, and this host has "
            "no WHATSAPP_DB_PATH"
        )
        found.add("fail", "bridge", f"Bridge store: {detail}")
        return BridgeHealth(status="unknown", source=source, changedAt=None, detail=detail)
    detail = f"last changed {moment.age} ago"
    if moment.ageSeconds <= limit:
        return BridgeHealth(status="fresh", source=source, changedAt=moment, detail=detail)
    if not hours.contains(clock.now, clock.zone):
        detail += " (outside working hours)"
        return BridgeHealth(status="quiet", source=source, changedAt=moment, detail=detail)
    detail += f" (limit {describe_age(limit)} during working hours)"
    found.add(
        "fail",
        "bridge",
        f"Bridge store {detail}: is the bridge running and connected? "
        "(`systemctl status whatsapp-bridge`, its log's `Chat=` lines)",
    )
    return BridgeHealth(status="stale", source=source, changedAt=moment, detail=detail)


def _newest(
    settings: Settings, config: ProjectsConfig, current: Mapping[str, Any] | None, found: Findings
) -> tuple[dict[str, datetime | str | None], Literal["bridge store", "heartbeat"] | None]:
    """Each bridge group's newest message: from this host's bridge store, else the
    heartbeat's."""
    jids = [
        p.group_jid for p in config.enabled if gateway_of(p.gateway, settings.gateway) == BRIDGE
    ]
    if not jids:
        return {}, None
    if settings.whatsapp_db_path is not None:
        bridge = BridgeStore(settings.whatsapp_db_path)
        try:
            return dict(bridge.newest_messages(jids)), "bridge store"
        except BridgeStoreError as exc:
            found.add("fail", "bridge", f"The groups cannot be read: {exc}")
        finally:
            bridge.close()
    if current is None:
        return {}, None
    reported = _status(current).get("groups") or []
    return {
        str(g.get("jid")): g.get("newest_at") for g in reported if isinstance(g, dict)
    }, "heartbeat"


def _groups(
    request: Request,
    current: Mapping[str, Any] | None,
    hours: WorkingHours,
    clock: Clock,
    found: Findings,
) -> list[GroupHealth]:
    settings: Settings = request.app.state.settings
    config = _config(request)
    newest, bridge_source = _newest(settings, config, current, found)
    projects = config.enabled
    gateway = {p.name: gateway_of(p.gateway, settings.gateway) for p in projects}
    inbox = hq.inbox_newest(
        _store(request), [p.group_jid for p in projects if gateway[p.name] in INBOX_GATEWAYS]
    )
    drops = hq.last_drops(_store(request), [p.name for p in projects], clock.now - LAST_DROP_WINDOW)
    working = hours.contains(clock.now, clock.zone)
    groups = []
    for p in projects:
        its = gateway[p.name]
        label = hq.GATEWAY_LABELS[its]
        source: Literal["bridge store", "heartbeat", "inbox"] | None
        if its == BRIDGE:
            source, last = bridge_source, clock.moment(newest.get(p.group_jid))
            who, where = "the bridge", "the bridge store"
        else:
            row = inbox.get(p.group_jid)
            source, last = "inbox", clock.moment(row.sent_at if row is not None else None)
            who, where = label, f"the inbox from {label}"
        problem = None
        if source is None:
            problem = "no view of the group: no monitor reports on it, and no WHATSAPP_DB_PATH"
        elif last is None:
            problem = (
                f"no message in {where}: check the JID (`wa-monitor groups`) and that "
                f"{who}'s number is in the group"
            )
        elif last.ageSeconds > settings.stale_after and working:
            problem = (
                f"no message for {last.age} (limit {describe_age(settings.stale_after)} "
                f"during working hours): is {who} still in the group?"
            )
        if problem is not None:
            found.add("warn", "group", f"{p.name}: {problem}")
        drop = drops.get(p.name)
        groups.append(
            GroupHealth(
                project=p.name,
                jid=p.group_jid,
                description=p.description,
                gateway=its,
                lastMessage=last,
                lastMessageFrom=source if last is not None else None,
                lastDrop=LastDrop(dropNumber=drop.drop_number, **clock.at(drop.at).model_dump())
                if drop is not None
                else None,
                stale=problem is not None,
                problem=problem,
            )
        )
    return groups


def _sources(
    request: Request,
    groups: Sequence[GroupHealth],
    bridge: BridgeHealth,
    clock: Clock,
    found: Findings,
) -> list[SourceHealth]:
    """Per gateway in use: its groups, their newest message, its sessions, what is wrong."""
    settings: Settings = request.app.state.settings
    in_use = hq.projects_by_gateway(list(_config(request).enabled), settings.gateway)
    sessions = hq.session_states(_store(request))
    ours = {WAHA: settings.waha_session, EVOLUTION: settings.evolution_instance}
    sources = []
    for gateway in sorted(in_use, key=lambda g: (g != BRIDGE, g)):
        label = hq.GATEWAY_LABELS[gateway]
        mine = [g for g in groups if g.gateway == gateway]
        warnings = [f"{g.project}: {g.problem}" for g in mine if g.problem]
        level: Literal["ok", "warn", "fail"] = "warn" if warnings else "ok"
        states = []
        for state in sessions:
            wanted = ours.get(gateway)
            if state.gateway != gateway or (wanted and state.session != wanted):
                continue
            working = state.status in hq.WORKING_STATES.get(gateway, ())
            states.append(
                SessionHealth(
                    session=state.session,
                    status=state.status,
                    working=working,
                    changedAt=clock.at(state.changed_at),
                )
            )
            if not working:
                message = (
                    f"{label} session {state.session} is {state.status} (since "
                    f"{clock.at(state.changed_at).age} ago): no messages arrive until it is "
                    f"{' or '.join(hq.WORKING_STATES.get(gateway, ('working',)))}; "
                    "`wa-monitor doctor` says what to do"
                )
                warnings.append(message)
                found.add("fail", "source", message)
                level = "fail"
        connection = None
        if gateway == BRIDGE:
            connection = _connection(settings, warnings, found)
            if connection in hq.BRIDGE_DEAD_STATES or bridge.status in ("stale", "unknown"):
                level = "fail"
            if bridge.status in ("stale", "unknown"):
                warnings.append(f"bridge store: {bridge.detail}")
        if gateway in INBOX_GATEWAYS and not mine:
            warnings.append(f"GATEWAY is {gateway}, but no enabled project reads it")
        times = [g.lastMessage for g in mine if g.lastMessage is not None]
        sources.append(
            SourceHealth(
                gateway=gateway,
                label=label,
                status=level,
                groups=[
                    SourceGroup(project=g.project, jid=g.jid, lastMessage=g.lastMessage)
                    for g in mine
                ],
                lastMessage=min(times, key=lambda m: m.ageSeconds) if times else None,
                sessions=states,
                connection=connection,
                warnings=warnings,
            )
        )
    return sources


def _connection(settings: Settings, warnings: list[str], found: Findings) -> str | None:
    """`wa-monitor bridge`'s state from its status file (None: another bridge, or no file)."""
    folder = settings.bridge_store or (
        settings.whatsapp_db_path.parent if settings.whatsapp_db_path is not None else None
    )
    connection = hq.bridge_connection(folder)
    if connection is None:
        return None
    if connection.state != "connected":
        message = f"`wa-monitor bridge` is {connection.state}" + (
            f": {connection.detail}" if connection.detail else ""
        )
        warnings.append(message)
        found.add(
            "fail" if connection.state in hq.BRIDGE_DEAD_STATES else "warn", "bridge", message
        )
    return connection.state


def _feedback(request: Request, clock: Clock, found: Findings) -> FeedbackHealth:
    backlog = hq.feedback_backlog(_store(request))
    counts = backlog.counts
    if counts["failed"] or counts["unconfirmed"]:
        found.add(
            "warn",
            "feedback",
            f"Feedback: {counts['failed']} failed, {counts['unconfirmed']} unconfirmed: "
            "retry or mark each as sent on its drop",
        )
    return FeedbackHealth(
        pending=counts["pending"],
        sending=counts["sending"],
        failed=counts["failed"],
        unconfirmed=counts["unconfirmed"],
        entries=[
            FeedbackEntry(
                id=e.id,
                status=e.status,
                dropNumber=e.drop_number,
                project=e.project,
                attempts=e.attempts,
                lastError=e.last_error,
                requestedBy=e.requested_by,
                requestedAt=clock.at(e.created_at),
            )
            for e in backlog.entries
        ],
    )


def _media(
    request: Request, current: Mapping[str, Any] | None, clock: Clock, found: Findings
) -> MediaHealth:
    backlog = hq.media_backlog(_store(request))
    oldest = clock.moment(backlog.oldest_pending_at)
    worker = _status(current).get("media") if current is not None else None
    fetching = worker.get("fetching") if isinstance(worker, dict) else None
    if fetching is False:
        found.add(
            "warn",
            "photos",
            "The monitor links photos but does not fetch them: "
            f"{worker.get('reason') if isinstance(worker, dict) else ''} "
            "(fix MEDIA_DIR or MEDIA_URL, or BRIDGE_URL, then restart)",
        )
    if oldest is not None and oldest.ageSeconds > PHOTOS_LATE_AFTER:
        found.add(
            "warn",
            "photos",
            f"{backlog.pending} photo(s) waiting, the oldest posted {oldest.age} ago: is the "
            "monitor's media worker running, the bridge's API answering at BRIDGE_URL?",
        )
    if backlog.failed:
        latest = next((f.last_error for f in backlog.failures if f.last_error), None)
        found.add(
            "warn",
            "photos",
            f"{backlog.failed} photo(s) could not be fetched"
            + (f"; latest: {latest}" if latest else ""),
        )
    return MediaHealth(
        pending=backlog.pending,
        failed=backlog.failed,
        unlinked=backlog.unlinked,
        oldestPending=oldest,
        fetching=fetching if isinstance(fetching, bool) else None,
        failures=[
            PhotoFailure(
                dropNumber=f.drop_number,
                project=f.project,
                filename=f.filename,
                attempts=f.attempts,
                lastError=f.last_error,
                postedAt=clock.at(f.posted_at),
            )
            for f in backlog.failures
        ],
    )


def _reports(request: Request, clock: Clock, found: Findings) -> list[ReportFailure]:
    failed = hq.failed_reports(_store(request))
    for f in failed:
        found.add(
            "warn",
            "reports",
            f"Report {f.report} for {f.period} to its {f.kind} failed after {f.attempts} "
            f"attempt(s): {f.last_error or 'no reason recorded'}",
        )
    return [
        ReportFailure(
            report=f.report,
            period=f.period,
            destination=f.kind,
            attempts=f.attempts,
            lastError=f.last_error,
            at=clock.at(f.created_at),
        )
        for f in failed
    ]


def _alerts(request: Request, clock: Clock, found: Findings) -> list[AlertFiring]:
    firing = [a for a in alert_states.every(_store(request)) if a.state == alert_states.FIRING]
    for a in firing:
        if a.last_error:
            found.add(
                "warn",
                "alerts",
                f"Alert {a.alert} did not reach its {_kind(a.channel)}: {a.last_error}",
            )
    return [
        AlertFiring(
            alert=a.alert,
            channel=_kind(a.channel),
            since=clock.moment(a.since),
            sentAt=clock.moment(a.sent_at),
            message=a.message,
            lastError=a.last_error,
        )
        for a in firing
    ]


def _kind(channel: str) -> str:
    """A channel's kind only: its address may carry a token or a person's e-mail."""
    return channel.split(":", 1)[0]


def panel(request: Request, now: datetime | None = None) -> HealthPanel:
    """The whole panel, as the page shows it."""
    settings: Settings = request.app.state.settings
    config = _config(request)
    clock = Clock(now or datetime.now(UTC), config.zone)
    hours = WorkingHours.parse(settings.working_hours)
    found = Findings()
    monitors, current = _monitors(read_heartbeats(_store(request)), settings, clock, found)
    in_use = hq.projects_by_gateway(list(config.enabled), settings.gateway)
    bridge = _bridge(settings, current, hours, clock, found, uses_bridge=BRIDGE in in_use)
    groups = _groups(request, current, hours, clock, found)
    sources = _sources(request, groups, bridge, clock, found)
    feedback = _feedback(request, clock, found)
    media = _media(request, current, clock, found)
    reports = _reports(request, clock, found)
    alerts = _alerts(request, clock, found)
    warnings = found.sorted()
    levels = {w.level for w in warnings}
    return HealthPanel(
        status="fail" if "fail" in levels else "warn" if levels else "ok",
        generatedAt=clock.now,
        generatedLocal=local_text(clock.now, clock.zone) or "",
        timezone=config.timezone,
        zoneAbbr=_zone_abbr(config),
        refreshSeconds=_refresh_ms(request) / 1000,
        groups=groups,
        sources=sources,
        monitors=monitors,
        bridge=bridge,
        feedback=feedback,
        media=media,
        reports=reports,
        alerts=alerts,
        warnings=warnings,
    )


def _refresh_ms(request: Request) -> int:
    return REFRESH_POLLS * int(getattr(request.app.state, "poll_ms", 5000))


# -- the routes ---------------------------------------------------------------------------


@router.get("/api/wa-monitor-health-panel", response_model=Envelope[HealthPanel])
def health_panel(request: Request, _caller: Admin) -> JSONResponse:
    """The admins' health panel: groups, monitors, the bridge, backlogs and warnings."""
    return ok(panel(request).model_dump(mode="json"))


@router.get("/wa-monitor/health", response_class=HTMLResponse, include_in_schema=False)
def health_page(request: Request) -> Response:
    """The panel's page, for admins; it fills itself from the JSON and refreshes."""
    caller = _admin_page(request, "/wa-monitor/health", "health", "check the monitor")
    if not isinstance(caller, Caller):
        return caller
    config = _config(request)
    boot: dict[str, Any] = {
        "csrf": caller.csrf,
        "user": caller.user.username,
        "timezone": config.timezone,
        "zoneAbbr": _zone_abbr(config),
        "refreshMs": _refresh_ms(request),
    }
    return templates.TemplateResponse(
        request,
        "health.html",
        {"user": caller.user, "csrf": caller.csrf, "boot": boot, "version": __version__},
    )
