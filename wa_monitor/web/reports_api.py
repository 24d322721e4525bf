"""Report delivery on request: /api/wa-monitor-sync-sharepoint and its test route.

The front end's "sync to SharePoint" delivers the projects file's `daily-drops` reports
(the day's drops per project: what its sheet held) to their destinations, once per day
and destination; other reports are sent with `wa-monitor report send` and by the
scheduler that `serve` runs (`scheduler_for`). The test route is a dry run: it builds
them and checks their destinations, and sends nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta, tzinfo
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from wa_monitor.core import queue
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.report_config import ReportSpec
from wa_monitor.core.settings import Settings
from wa_monitor.reports import delivery
from wa_monitor.reports.build import NO_PROJECT, daily_rows
from wa_monitor.reports.destinations import Outbound
from wa_monitor.reports.schedule import Scheduler
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web import queries as q
from wa_monitor.web import stats_queries as sq
from wa_monitor.web.api import _config, _errors, _store, queue_view
from wa_monitor.web.auth import Reviewer
from wa_monitor.web.envelope import ApiError, Envelope, ok
from wa_monitor.web.models import Day, drop_out

router = APIRouter(prefix="/api", tags=["wa-monitor"], responses=_errors)

SYNCED = "daily-drops"  # the reports the front end's sync delivers
PAGE = 2000  # reviews read at a time


@dataclass(frozen=True)
class StoreInputs:
    """Reports' rows from the review database, as the dashboard reads them."""

    store: ReviewStore
    zone: tzinfo
    view: q.QueueView

    def daily_counts(self, day: date) -> Sequence[tuple[str | None, int]]:
        return sq.daily_counts(self.store, day, self.zone)

    def reviews(
        self, day: date, project: str | None
    ) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
        f = q.DropFilter(project=project, date_from=day, date_to=day, sort="latest")
        offset = 0
        while True:
            rows = q.page_of_drops(
                self.store, f, self.zone, limit=PAGE, offset=offset, view=self.view
            )
            for row in rows:
                yield row, drop_out(row, self.zone)
            if len(rows) < PAGE:
                return
            offset += PAGE

    def summary(self, day: date, project: str | None) -> Sequence[tuple[str, Mapping[str, int]]]:
        names = (
            [project]
            if project is not None
            else [p for p, _ in self.daily_counts(day) if p and p != NO_PROJECT]
        )
        rows = [(name, self._figures(day, name)) for name in names]
        if project is None:
            rows.append(("All", self._figures(day, None)))
        return rows

    def _figures(self, day: date, project: str | None) -> dict[str, int]:
        f = q.DropFilter(project=project, date_from=day, date_to=day)
        cards = q.summary(self.store, f, self.zone, self.view)
        keys = ("complete", "incomplete", "feedbackSent", "resubmitted", "overdue")
        return {"drops": int(cards["total"]), **{k: int(cards[k]) for k in keys}}


def sending_for(
    store: ReviewStore,
    config: ProjectsConfig,
    view: q.QueueView,
    requested_by: str,
    outbound: Outbound | None = None,
) -> delivery.Sending:
    """What `delivery.send` needs, over the review database (the CLI's too)."""
    return delivery.Sending(
        store=store,
        inputs=StoreInputs(store, config.zone, view),
        zone=config.zone,
        labels=config.step_labels,
        requested_by=requested_by,
        outbound=outbound or Outbound(),
    )


def scheduler_for(
    store: ReviewStore, settings: Settings, config: Callable[[], ProjectsConfig]
) -> Scheduler:
    """The report and alert scheduler over the review database, as `serve` runs it."""
    hours = WorkingHours.parse(settings.working_hours or "always")

    def sending(current: ProjectsConfig, by: str) -> delivery.Sending:
        view = q.QueueView(queue.clocks_for(current.projects, hours))
        return sending_for(store, current, view, by)

    return Scheduler(store, settings, config, sending)


def _outbound(request: Request) -> Outbound:
    settings: Settings = request.app.state.settings
    return Outbound.from_settings(settings)


class SyncRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    date: Day | None = Field(default=None, description="YYYY-MM-DD; default: today locally")
    force: bool = Field(default=False, description="Deliver again what was delivered")
    userName: str | None = Field(default=None, max_length=100, description="Who asks")


class ProjectCount(BaseModel):
    date: str
    project: str = Field(description="'Unknown' for drops of no project")
    count: int


class DeliveryOut(BaseModel):
    report: str
    period: str
    destination: str
    status: str = Field(
        description="delivered, already delivered, being delivered, failed, would be delivered"
    )
    message: str
    attempts: int
    file: str | None = None


class SyncAnswer(BaseModel):
    """The front end's shape; `synced: 0` (and no counts) on a day without drops."""

    synced: int | None = None
    succeeded: int | None = Field(default=None, description="Projects delivered everywhere")
    failed: int | None = Field(default=None, description="Projects whose delivery failed")
    total: int | None = Field(default=None, description="Projects the reports cover")
    message: str
    date: str
    projects: list[ProjectCount] | None = None
    deliveries: list[DeliveryOut] | None = None


class SyncTestAnswer(BaseModel):
    """The front end's test shape: a dry run; `synced: 0` on a day without drops."""

    testDate: str
    synced: int | None = None
    succeeded: int | None = None
    failed: int | None = None
    total: int | None = None
    message: str
    drops: list[ProjectCount] | None = None
    dryRun: bool | None = None
    deliveries: list[DeliveryOut] | None = None


class SyncTestRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    testDate: Day | None = Field(default=None, description="YYYY-MM-DD; default: yesterday")


def _synced_reports(config: ProjectsConfig) -> list[ReportSpec]:
    # A weekly report is the scheduler's; the front end syncs a day.
    reports = [
        r for r in config.reports if r.what == SYNCED and (r.when is None or r.when.weekday is None)
    ]
    if not reports:
        hint = (
            f"No `{SYNCED}` report is configured: add one under `reports:` in the projects "
            f"file {config.path}, e.g. `reports: [{{name: daily-sheet, what: {SYNCED}, "
            "format: xlsx, to: [{folder: /srv/reports}]}]`"
        )
        raise ApiError(422, hint, details=[{"field": "reports", "message": hint}])
    return reports


def _day(config: ProjectsConfig, day: date | None, default: date, field: str) -> date:
    picked = day or default
    today = q.today(config.zone)
    if picked > today:
        raise ApiError(
            422,
            f"{picked} is in the future (today is {today} in {config.timezone}); a day's "
            "report can be sent from that day on",
            details=[{"field": field}],
        )
    return picked


def _projects(day: date, counts: Sequence[tuple[str | None, int]]) -> list[dict[str, Any]]:
    return [{"date": day.isoformat(), "project": p or NO_PROJECT, "count": n} for p, n in counts]


def _tally(
    reports: Sequence[ReportSpec],
    outcomes: Sequence[delivery.Outcome],
    day: date,
    counts: Sequence[tuple[str | None, int]],
) -> tuple[int, int, int]:
    """(succeeded, failed, total) in the front end's terms: projects of the day's sheet
    delivered everywhere they go, or not; projects no report covers are not counted."""
    failed_reports = {o.report for o in outcomes if not o.ok}
    covered: dict[str, bool] = {}
    for spec in reports:
        names = {p for p, _ in daily_rows(spec, day, counts)}
        for name in (p or NO_PROJECT for p, _ in counts):
            if name in names:
                covered[name] = covered.get(name, True) and spec.name not in failed_reports
    total = len(covered)
    succeeded = sum(covered.values())
    return succeeded, total - succeeded, total


def _summary(outcomes: Sequence[delivery.Outcome]) -> str:
    statuses: dict[str, int] = {}
    for o in outcomes:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    parts = [f"{n} {status}" for status, n in statuses.items()]
    problems = [f"{o.report} → {o.destination}: {o.message}" for o in outcomes if not o.ok]
    return ", ".join(parts) + ("; " + "; ".join(problems) if problems else "")


@router.post("/wa-monitor-sync-sharepoint", response_model=Envelope[SyncAnswer])
def sync_sharepoint(
    request: Request,
    caller: Reviewer,
    body: Annotated[SyncRequest | None, Body()] = None,
) -> JSONResponse:
    """Deliver the day's `daily-drops` reports (default: today, business zone) to their
    destinations, once per day and destination (`force`: again); answers the front end's
    succeeded/failed/total per project, or `synced: 0` when the day has no drops."""
    body = body or SyncRequest()
    config, store = _config(request), _store(request)
    reports = _synced_reports(config)
    day = _day(config, body.date, q.today(config.zone), "body.date")
    actor = caller.acting_as(body.userName).actor
    sending = sending_for(store, config, queue_view(request), actor, _outbound(request))
    counts = sending.inputs.daily_counts(day)
    if not counts:
        return ok({"synced": 0, "message": f"No drops to sync for {day}", "date": day.isoformat()})
    outcomes = delivery.send(sending, reports, day, force=body.force, counts=counts)
    succeeded, failed, total = _tally(reports, outcomes, day, counts)
    head = (
        f"Synced {succeeded}/{total} project(s)"
        if not failed
        else f"Synced {succeeded}/{total} project(s) ({failed} failed)"
    )
    return ok(
        {
            "succeeded": succeeded,
            "failed": failed,
            "total": total,
            "message": f"{head}: {_summary(outcomes)}",
            "date": day.isoformat(),
            "projects": _projects(day, counts),
            "deliveries": [o.as_json() for o in outcomes],
        }
    )


@router.post("/wa-monitor-sync-sharepoint-test", response_model=Envelope[SyncTestAnswer])
def sync_sharepoint_test(
    request: Request,
    caller: Reviewer,
    body: Annotated[SyncTestRequest | None, Body()] = None,
) -> JSONResponse:
    """A dry run of the sync for `testDate` (default: yesterday): builds the `daily-drops`
    reports and checks their destinations; sends and records nothing."""
    body = body or SyncTestRequest()
    config, store = _config(request), _store(request)
    reports = _synced_reports(config)
    yesterday = q.today(config.zone) - timedelta(days=1)
    day = _day(config, body.testDate, yesterday, "body.testDate")
    sending = sending_for(store, config, queue_view(request), caller.actor, _outbound(request))
    counts = sending.inputs.daily_counts(day)
    if not counts:
        return ok(
            {"testDate": day.isoformat(), "synced": 0, "message": f"No drops found for {day}"}
        )
    outcomes = delivery.send(sending, reports, day, dry_run=True, counts=counts)
    succeeded, failed, total = _tally(reports, outcomes, day, counts)
    verdict = "Test successful" if not failed else "Test found problems"
    return ok(
        {
            "testDate": day.isoformat(),
            "succeeded": succeeded,
            "failed": failed,
            "total": total,
            "message": f"{verdict} for {day} (nothing sent): {_summary(outcomes)}",
            "drops": _projects(day, counts),
            "dryRun": True,
            "deliveries": [o.as_json() for o in outcomes],
        }
    )
