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

from wa_monitor.core.errors import ReviewDatabaseError
from wa_monitor.core.settings import Settings
from wa_monitor.monitor.health import Readiness, Report, reported_groups
from wa_monitor.monitor.health import readiness as readiness_of
from wa_monitor.monitor.metrics import database_registry
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.api import queue_clocks
from wa_monitor.web.auth import identify
from wa_monitor.web.envelope import ApiError

router = APIRouter(tags=["operations"])


def readiness(settings: Settings, store: ReviewStore, zone: Any = UTC) -> Report:
    """The readiness report, as the dashboard needs it: writes too, and quiet groups.

    This host may not have the bridge (no WHATSAPP_DB_PATH): the monitor's heartbeat
    then tells what it last saw of the bridge store and of the groups.
    """
    ready = dashboard_readiness(settings, store, zone)
    return Report(ready.report.checks + tuple(reported_groups(ready.beat)))


def dashboard_readiness(settings: Settings, store: ReviewStore, zone: Any = UTC) -> Readiness:
    """The checks /readyz reports, with the heartbeat row they judged (the health panel's)."""
    return readiness_of(settings, store, zone, writes=True, bridge_from_heartbeat=True)


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
        # The queue's clocks are read at each scrape: the projects file may be reloaded.
        registry = database_registry(state.store, lambda: queue_clocks(state))
        state.ops_metrics_registry = registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
