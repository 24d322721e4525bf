"""The front end's health panel: /api/wa-monitor-health, from WA Monitor's own readiness checks.

The panel's sections keep their names; what fills them is what /readyz judges: the
bridge (its store, its groups, and the feedback sent through it), the monitor (its
heartbeat, its scans, its photo queue), the review database, and the reads behind the
drop list and the daily counts. When no project reads a bridge store (every one is on a
webhook gateway), the bridge's section tells of the gateways instead: each group's newest
message in the inbox and each session's reported state. Always 200 while an answer can be
built: the panel shows `overall_status`, and a failed request would hide which part is
down. No file path or database address is in it: those stay in /readyz and `wa-monitor
doctor`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from wa_monitor.core.config import Project
from wa_monitor.core.errors import ReviewDatabaseError
from wa_monitor.core.gateways import BRIDGE, EVOLUTION, WAHA
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.settings import Settings
from wa_monitor.monitor.health import Check, check_photos, store_changed_at
from wa_monitor.store.health_figures import outbox_counts, recent_drops
from wa_monitor.store.heartbeats import read_heartbeats
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import SCHEMA_HEAD
from wa_monitor.web import health_panel_queries as hq
from wa_monitor.web.api import _config, _errors, _store
from wa_monitor.web.auth import Viewer
from wa_monitor.web.envelope import Envelope, ok
from wa_monitor.web.health import dashboard_readiness

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)

Status = Literal["up", "down", "degraded", "stale"]
Overall = Literal["healthy", "degraded", "down"]
T = TypeVar("T")
# The front end's own thresholds: a read slower than this is degraded; scans older than
# LOG_DOWN_AFTER are down (between the monitor's limit and it: stale).
SLOW_MS = 2000
LOG_DOWN_AFTER = 1800.0
DAY = timedelta(hours=24)
# The photo queue is counted per status over all its rows: once a minute at most, however
# many panels poll.
PHOTOS_EVERY = 60.0


class HealthCheck(BaseModel):
    status: Status
    details: dict[str, Any]
    latency_ms: int | None = None
    error: str | None = None


class VpsChecks(BaseModel):
    whatsapp_bridge: HealthCheck
    drop_monitor_prod: HealthCheck
    drop_monitor_dev: HealthCheck
    log_activity: HealthCheck


class DatabaseChecks(BaseModel):
    connection: HealthCheck
    table_exists: HealthCheck
    recent_data: HealthCheck


class ApiChecks(BaseModel):
    get_drops: HealthCheck
    get_daily_drops: HealthCheck


class Checks(BaseModel):
    vps: VpsChecks
    database: DatabaseChecks
    api: ApiChecks


class HealthData(BaseModel):
    overall_status: Overall
    timestamp: datetime
    checks: Checks


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _age(value: datetime | str | None, now: datetime) -> int | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return max(0, int((now - value).total_seconds()))


def _timed(read: Callable[[], T]) -> tuple[T | None, int, str | None]:
    """`read()`'s answer, its time in ms, and why it failed (None: it did not)."""
    start = time.perf_counter()
    try:
        value: T | None = read()
        problem = None
    except ReviewDatabaseError:
        value, problem = None, "the review database cannot be read"
    return value, max(1, round((time.perf_counter() - start) * 1000)), problem


def _worst(*checks: HealthCheck) -> Overall:
    statuses = {c.status for c in checks}
    if "down" in statuses:
        return "down"
    return "degraded" if statuses & {"degraded", "stale"} else "healthy"


def _find(checks: Sequence[Check], name: str) -> Check | None:
    return next((c for c in checks if c.name == name), None)


def _bridge(
    checks: Sequence[Check],
    beat: Mapping[str, Any] | None,
    settings: Settings,
    outbox: Mapping[str, int] | None,
    now: datetime,
) -> HealthCheck:
    status = (beat or {}).get("status") or {}
    groups = status.get("groups") or []
    newest = [g["newest_at"] for g in groups if g.get("newest_at")]
    reported = status.get("bridge") or {}
    if settings.whatsapp_db_path is not None:
        changed = _iso(store_changed_at(settings.whatsapp_db_path))
    else:
        changed = reported.get("changed_at")
    details: dict[str, Any] = {
        "source": "this host's bridge store"
        if settings.whatsapp_db_path is not None
        else "the monitor's heartbeat",
        "store_changed_at": changed,
        "store_changed_seconds_ago": _age(changed, now),
        "last_message_at": max(newest) if newest else None,
        "last_message_seconds_ago": _age(max(newest), now) if newest else None,
        "groups": {
            str(g.get("project")): {
                "last_message_at": g.get("newest_at"),
                "seconds_ago": _age(g.get("newest_at"), now),
                "quiet": bool(g.get("stale")),
            }
            for g in groups
        },
    }
    if outbox is not None:
        details.update({f"feedback_{k}": v for k, v in outbox.items()})
    store_check, activity = _find(checks, "bridge store"), _find(checks, "bridge activity")
    if store_check is not None and not store_check.ok:
        return HealthCheck(
            status="down",
            details=details,
            error=f"The bridge store cannot be read: {_fix(store_check)}",
        )
    if activity is not None and not activity.ok:
        return HealthCheck(
            status="stale",
            details=details,
            error="The bridge store has not changed for too long in working hours: "
            + _fix(activity),
        )
    if store_check is None and activity is None:
        return HealthCheck(
            status="stale",
            details=details,
            error="No view of the bridge: no monitor reports on it, and this host has no "
            "WHATSAPP_DB_PATH",
        )
    quiet = sorted(str(g.get("project")) for g in groups if g.get("stale"))
    return _verdict(details, quiet, outbox)


def _gateways(
    store: ReviewStore,
    settings: Settings,
    in_use: Mapping[str, Sequence[Project]],
    outbox: Mapping[str, int] | None,
    hours: WorkingHours,
    zone: Any,
    now: datetime,
) -> HealthCheck:
    """The bridge's section for an installation on webhook gateways only: the inbox's view."""
    projects = [p for its in in_use.values() for p in its]
    try:
        newest = hq.inbox_newest(store, [p.group_jid for p in projects])
        sessions = hq.session_states(store)
    except ReviewDatabaseError as exc:
        return HealthCheck(status="down", details={}, error=f"The inbox cannot be read: {exc}")
    working = hours.contains(now, zone)
    groups: dict[str, dict[str, Any]] = {}
    for p in projects:
        found = newest.get(p.group_jid)
        at = found.sent_at if found is not None else None
        age = _age(at, now)
        groups[p.name] = {
            "last_message_at": _iso(at),
            "seconds_ago": age,
            "quiet": age is not None and age > settings.stale_after and working,
        }
    times = [found.sent_at for found in newest.values() if found is not None]
    ours = {WAHA: settings.waha_session, EVOLUTION: settings.evolution_instance}
    states = {
        f"{s.gateway}/{s.session}": s.status
        for s in sessions
        if s.gateway in in_use and (not ours.get(s.gateway) or s.session == ours[s.gateway])
    }
    details: dict[str, Any] = {
        "source": "the webhook gateways' inbox (" + ", ".join(sorted(in_use)) + ")",
        "last_message_at": _iso(max(times)) if times else None,
        "last_message_seconds_ago": _age(max(times), now) if times else None,
        "sessions": states,
        "groups": groups,
    }
    if outbox is not None:
        details.update({f"feedback_{k}": v for k, v in outbox.items()})
    down = [
        f"{name} is {status}"
        for name, status in sorted(states.items())
        if status not in hq.WORKING_STATES.get(name.split("/")[0], ())
    ]
    if down:
        return HealthCheck(
            status="down",
            details=details,
            error="Gateway session not connected: " + "; ".join(down) + " (`wa-monitor doctor`)",
        )
    if not times:
        return HealthCheck(
            status="stale",
            details=details,
            error="No message has come through the webhook gateways yet: `wa-monitor doctor` "
            "says what to configure",
        )
    quiet = sorted(name for name, g in groups.items() if g["quiet"])
    return _verdict(details, quiet, outbox)


def _verdict(
    details: dict[str, Any], quiet: list[str], outbox: Mapping[str, Any] | None
) -> HealthCheck:
    """Up, or degraded by groups quiet in working hours and feedback stuck in the outbox."""
    problems = []
    if quiet:
        problems.append(f"quiet in working hours: {', '.join(quiet)}")
    if outbox is not None and (outbox["failed"] or outbox["unconfirmed"]):
        problems.append(
            f"feedback: {outbox['failed']} failed, {outbox['unconfirmed']} unconfirmed (see "
            "each drop's feedback on the dashboard)"
        )
    if problems:
        return HealthCheck(status="degraded", details=details, error="; ".join(problems))
    return HealthCheck(status="up", details=details)


def _fix(check: Check) -> str:
    return check.fix or "run `wa-monitor doctor`"


def _monitor(
    heartbeat: Check | None, beat: Mapping[str, Any] | None, photos: Check | None, now: datetime
) -> HealthCheck:
    status = (beat or {}).get("status") or {}
    details: dict[str, Any] = {
        "instance": (beat or {}).get("instance"),
        "env": status.get("env"),
        "healthy": status.get("healthy"),
        "last_beat_at": _iso((beat or {}).get("beat_at")),
        "last_beat_seconds_ago": _age((beat or {}).get("beat_at"), now),
        "started_at": _iso((beat or {}).get("started_at")),
        "projects": len(status.get("projects") or []),
    }
    if photos is not None:
        details["photos"] = photos.detail
    if heartbeat is None:
        return HealthCheck(
            status="down", details=details, error="The review database cannot be read"
        )
    if not heartbeat.ok:
        return HealthCheck(
            status="down", details=details, error=f"{heartbeat.detail}: {_fix(heartbeat)}"
        )
    if photos is not None and photos.status != "pass":
        return HealthCheck(status="degraded", details=details, error=f"photos: {_fix(photos)}")
    return HealthCheck(status="up", details=details)


def _other_monitor(
    beats: Sequence[Mapping[str, Any]],
    judged: Mapping[str, Any] | None,
    settings: Settings,
    now: datetime,
) -> HealthCheck:
    """The dev monitor, when one reports to this database (it normally has its own)."""
    others = [
        b
        for b in beats
        if judged is None or b["instance"] != judged["instance"]
        if ((b.get("status") or {}).get("env") or "") == "dev"
        or str(b["instance"]).startswith("dev@")
    ]
    if not others:
        return HealthCheck(
            status="up",
            details={
                "configured": False,
                "message": "no dev monitor reports to this database (it keeps its own)",
            },
        )
    beat = others[0]
    age = _age(beat["beat_at"], now)
    details = {
        "configured": True,
        "instance": beat["instance"],
        "last_beat_at": _iso(beat["beat_at"]),
        "last_beat_seconds_ago": age,
    }
    stopped = (beat.get("status") or {}).get("stopped_at")
    if stopped or age is None or age > settings.heartbeat_stale_after:
        return HealthCheck(
            status="down",
            details=details,
            error=f"stopped at {stopped}" if stopped else "its heartbeat is stale",
        )
    return HealthCheck(status="up", details=details)


def _scans(beat: Mapping[str, Any] | None, settings: Settings, now: datetime) -> HealthCheck:
    status = (beat or {}).get("status") or {}
    last = status.get("last_scan_at")
    age = _age(last, now)
    details = {
        "last_scan_at": last,
        "last_scan_minutes_ago": None if age is None else age // 60,
        "last_scan_seconds": status.get("last_scan_seconds"),
        "last_error": status.get("last_error"),
    }
    limit = max(4 * settings.scan_interval, 60.0)
    if age is None:
        return HealthCheck(status="down", details=details, error="No scan reported yet")
    if age > LOG_DOWN_AFTER:
        return HealthCheck(status="down", details=details, error=f"No scan for {age // 60} minutes")
    if age > limit:
        return HealthCheck(
            status="stale", details=details, error=f"No scan for {age // 60} minutes"
        )
    return HealthCheck(status="up", details=details)


def _database(
    checks: Sequence[Check], store: ReviewStore, latency: int
) -> tuple[HealthCheck, HealthCheck]:
    reachable, schema, writes = (
        _find(checks, "database"),
        _find(checks, "schema"),
        _find(checks, "database writes"),
    )
    backend = {"backend": store.dialect}
    if reachable is None or not reachable.ok:
        down = HealthCheck(
            status="down",
            details=backend,
            error=f"The review database is unreachable: {_fix(reachable) if reachable else ''}",
        )
        return down, HealthCheck(
            status="down", details={}, error="The review database is unreachable"
        )
    connection = HealthCheck(status="up", details=backend, latency_ms=latency)
    details: dict[str, Any] = {
        "schema_revision": SCHEMA_HEAD if schema is not None and schema.ok else None,
        "writable": writes is not None and writes.ok,
    }
    if schema is not None and not schema.ok:
        return connection, HealthCheck(
            status="down", details=details, error=f"Schema: {_fix(schema)}"
        )
    if writes is not None and not writes.ok:
        return connection, HealthCheck(
            status="down", details=details, error=f"Refuses writes: {_fix(writes)}"
        )
    return connection, HealthCheck(status="up", details=details)


@router.get("/wa-monitor-health", response_model=Envelope[HealthData])
def health(request: Request, _caller: Viewer) -> JSONResponse:
    """The health panel: each part of WA Monitor up, stale, degraded or down, and overall."""
    state = request.app.state
    settings: Settings = state.settings
    store = _store(request)
    config = _config(request)
    now = datetime.now(UTC)
    _, ping_ms, _ = _timed(store.ping)
    ready = dashboard_readiness(settings, store, config.zone)
    checks = ready.report.checks
    reachable = all(c.ok for c in checks if c.name in ("database", "schema"))
    outbox = _timed(lambda: outbox_counts(store))[0] if reachable else None
    photos = _photos(request, store, ready.beat, now) if reachable else None
    beats = _timed(lambda: read_heartbeats(store))[0] if reachable else None
    recent, recent_ms, recent_problem = _timed(lambda: recent_drops(store, now - DAY))
    connection, tables = _database(checks, store, ping_ms)
    hours = WorkingHours.parse(settings.working_hours)
    if recent is None:
        recent_data = HealthCheck(status="down", details={}, error=recent_problem)
    else:
        quiet = recent.count == 0 and hours.contains(now, config.zone)
        recent_data = HealthCheck(
            status="degraded" if quiet else "up",
            details={"drops_last_24h": recent.count, "latest_drop": _iso(recent.latest)},
            latency_ms=recent_ms,
            error="No drop first posted in the last 24 hours" if quiet else None,
        )
    drops_read = _api("GET /api/wa-monitor-drops", recent_ms, recent_problem)
    daily_read = _api("GET /api/wa-monitor-daily-drops", recent_ms, recent_problem)
    in_use = hq.projects_by_gateway(list(config.enabled), settings.gateway)
    if BRIDGE in in_use or not reachable:
        bridge = _bridge(checks, ready.beat, settings, outbox, now)
    else:
        bridge = _gateways(store, settings, in_use, outbox, hours, config.zone, now)
    vps = VpsChecks(
        whatsapp_bridge=bridge,
        drop_monitor_prod=_monitor(_find(checks, "heartbeat"), ready.beat, photos, now),
        drop_monitor_dev=_other_monitor(beats or [], ready.beat, settings, now),
        log_activity=_scans(ready.beat, settings, now),
    )
    database = DatabaseChecks(connection=connection, table_exists=tables, recent_data=recent_data)
    api = ApiChecks(get_drops=drops_read, get_daily_drops=daily_read)
    every = (*vps.__dict__.values(), *database.__dict__.values(), *api.__dict__.values())
    data = HealthData(
        overall_status=_worst(*every),
        timestamp=now,
        checks=Checks(vps=vps, database=database, api=api),
    )
    body = data.model_dump(mode="json")
    for section in body["checks"].values():
        for check in section.values():
            for key in ("latency_ms", "error"):  # absent, not null, as the panel's type says
                if check[key] is None:
                    del check[key]
    return ok(body)


def _photos(
    request: Request, store: ReviewStore, beat: Mapping[str, Any] | None, now: datetime
) -> Check:
    state = request.app.state
    cached: tuple[float, Check] | None = getattr(state, "fe_health_photos", None)
    if cached is not None and time.monotonic() - cached[0] < PHOTOS_EVERY:
        return cached[1]
    check = check_photos(store, beat, now=now)[0]
    state.fe_health_photos = (time.monotonic(), check)
    return check


def _api(name: str, latency: int, problem: str | None) -> HealthCheck:
    """A route of this process: up while its reads answer, degraded when they are slow."""
    details = {"name": name, "served_by": "wa-monitor serve"}
    if problem is not None:
        return HealthCheck(status="down", details=details, error=problem)
    if latency > SLOW_MS:
        return HealthCheck(
            status="degraded",
            details=details,
            latency_ms=latency,
            error="Response time > 2s (slow)",
        )
    return HealthCheck(status="up", details=details, latency_ms=latency)
