"""Operational endpoints: /healthz (liveness), /readyz (readiness) and /metrics.

They need no sign-in (probes and Prometheus call them) and reveal no review data;
/readyz tells anonymous callers only which checks failed, not what they found (file
paths, the database's address). The app's `state.store` and `state.settings` are the
dashboard's own.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from wa_monitor.errors import ReviewDatabaseError
from wa_monitor.health import (
    Check,
    Report,
    WorkingHours,
    check_bridge_fresh,
    check_bridge_readable,
    check_database,
    check_heartbeat,
)
from wa_monitor.metrics import database_registry
from wa_monitor.settings import Settings
from wa_monitor.store import ReviewStore
from wa_monitor.web.auth import identify
from wa_monitor.web.envelope import ApiError

router = APIRouter(tags=["operations"])


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


def readiness(settings: Settings, store: ReviewStore, zone: Any = UTC) -> Report:
    """Database reachable, writable and at the schema head, heartbeat fresh, bridge readable."""
    checks: list[Check] = list(check_database(store))
    if all(c.ok for c in checks):
        checks.append(check_writes(store))
    if all(c.ok for c in checks):
        beat_check, beat = check_heartbeat(store, settings.heartbeat_stale_after)
        checks.append(beat_check)
    else:
        beat = None
    path = settings.whatsapp_db_path
    if path is not None:
        checks.append(check_bridge_readable(path))
        checks.append(
            check_bridge_fresh(
                path,
                settings.bridge_stale_after,
                WorkingHours.parse(settings.working_hours),
                zone,
            )
        )
    elif beat is not None:
        # No WHATSAPP_DB_PATH here (the bridge is on the monitor's host): trust the
        # monitor's last view of it.
        bridge = (beat.get("status") or {}).get("bridge") or {}
        if bridge.get("readable", True) is False:
            checks.append(
                Check("bridge store", "fail", f"the monitor cannot read it: {bridge.get('error')}")
            )
        elif bridge.get("stale"):
            checks.append(Check("bridge activity", "fail", "the monitor reports messages.db stale"))
        else:
            checks.append(Check("bridge store", "pass", "readable, as the monitor reports"))
    if beat is not None:
        # Quiet groups, as the monitor judged them (a warning: not a reason to be unready).
        for group in (beat.get("status") or {}).get("groups") or []:
            if group.get("stale"):
                checks.append(
                    Check(
                        f"group {group.get('project')}",
                        "warn",
                        f"{group.get('jid')}: newest message at {group.get('newest_at')}",
                        "is the bridge still in the group and connected?",
                    )
                )
    return Report(tuple(checks))


@router.get("/healthz", include_in_schema=False)
def healthz() -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok", "time": datetime.now(UTC).isoformat()})


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when healthy, 503 with the failing checks otherwise."""
    state = request.app.state
    config = getattr(state, "config", None)
    zone = config.zone if config is not None else UTC
    report = readiness(state.settings, state.store, zone)
    body = report.as_dict()
    if not _signed_in(request):
        body["checks"] = [{"name": c.name, "status": c.status} for c in report.checks]
    return JSONResponse(body, status_code=200 if report.healthy else 503)


def _signed_in(request: Request) -> bool:
    try:
        return identify(request) is not None
    except (ApiError, ReviewDatabaseError):  # a bad token, or no database to tell: as anyone
        return False


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text format: what the monitors report in their heartbeats, outbox depth."""
    state = request.app.state
    registry: CollectorRegistry | None = getattr(state, "ops_metrics_registry", None)
    if registry is None:
        registry = database_registry(state.store)
        state.ops_metrics_registry = registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
