"""The dashboard's figures: drops per project today, a project's stats, the projects summary."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from wa_monitor.web import queries as q
from wa_monitor.web import stats_queries as sq
from wa_monitor.web.api import NO_NUL, _answers, _config, _errors, _store
from wa_monitor.web.auth import Viewer
from wa_monitor.web.envelope import ApiError, Envelope, ok
from wa_monitor.web.models import Day
from wa_monitor.web.stats_models import DailyDrops, ProjectsSummary, ProjectStats

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)


@router.get("/wa-monitor-daily-drops", response_model=Envelope[DailyDrops])
def daily_drops(
    request: Request,
    _caller: Viewer,
    day: Annotated[
        Day | None, Query(alias="date", description="YYYY-MM-DD; default: today locally")
    ] = None,
) -> JSONResponse:
    """Distinct drops per project whose WhatsApp message fell on the day (business zone)."""
    config, store, answers = _config(request), _store(request), _answers(request)
    day = day or q.today(config.zone)
    counts = answers.get(
        ("daily-drops", day, config.timezone), lambda: sq.daily_counts(store, day, config.zone)
    )
    drops = [{"date": day.isoformat(), "project": p, "count": n} for p, n in counts]
    return ok(
        {
            "drops": drops,
            "total": sum(n for _, n in counts),
            "date": day.isoformat(),
            "timezone": config.timezone,
        }
    )


@router.get("/wa-monitor-project-stats", response_model=Envelope[ProjectStats])
def project_stats(
    request: Request,
    _caller: Viewer,
    project: Annotated[
        str | None, Query(max_length=100, pattern=NO_NUL, description="required, e.g. Lawley")
    ] = None,
) -> JSONResponse:
    """One project's today, last 7 and 30 days and all time, under `stats`; an unknown
    project has zeros."""
    name = (project or "").strip()
    if not name:
        raise ApiError(
            422,
            "project is required: name one, e.g. ?project=Lawley",
            details=[{"field": "query.project", "message": "Project name is required"}],
        )
    config, store = _config(request), _store(request)
    day = q.today(config.zone)
    return ok(
        _answers(request).get(
            ("project-stats", name, day, config.timezone),
            lambda: sq.project_stats(store, name, config.zone),
        )
    )


@router.get("/wa-monitor-projects-summary", response_model=Envelope[ProjectsSummary])
def projects_summary(
    request: Request,
    _caller: Viewer,
    startDate: Annotated[Day | None, Query(description="default: endDate or today")] = None,
    endDate: Annotated[Day | None, Query(description="default: today")] = None,
) -> JSONResponse:
    """The range's totals, per project and installer, failures and feedback; all-time
    figures, outstanding drops, resubmissions and 7/30-day trends. Invalid numbers are no
    drops and left out."""
    config, store = _config(request), _store(request)
    day = q.today(config.zone)
    end = endDate or day
    start = startDate or min(day, end)
    if start > end:
        raise ApiError(422, "startDate is after endDate", details=[{"field": "query.startDate"}])
    if (end - start).days > 3660:
        raise ApiError(422, "The range may span at most 10 years")
    # "Needs attention" moves with the clock: an answer is kept for a minute at most.
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    labels = tuple(sorted(config.step_labels.items()))
    return ok(
        _answers(request).get(
            ("projects-summary", start, end, now, config.timezone, labels),
            lambda: sq.projects_summary(store, start, end, config.zone, dict(labels), now),
        )
    )
