"""The team: per installer and per reviewer, by project and week, with charts.

The statistics (GET /api/wa-monitor-team-stats), the same figures as SVG charts drawn by
pygal on the server (GET /api/wa-monitor-team-charts/{name}.svg) and the page that shows
both (/wa-monitor/team). The figures themselves are team_queries'.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import replace
from datetime import date
from typing import Annotated, Any, Literal
from urllib.parse import quote, urlencode

import pygal
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field, TypeAdapter, ValidationError
from pygal.style import Style

from wa_monitor import __version__
from wa_monitor.web import queries as q
from wa_monitor.web import team_queries as tq
from wa_monitor.web.api import NO_NUL, _answers, _config, _errors, _store
from wa_monitor.web.auth import Viewer
from wa_monitor.web.envelope import ApiError, Envelope, ok
from wa_monitor.web.models import Day
from wa_monitor.web.pages import _caller, templates

# pygal appends an import hook for its map plugins (pygal.maps.*, unused here) that only
# has the pre-3.4 finder API: every later import that misses warns. It goes.
sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, pygal.PluginImportFixer)]
log = logging.getLogger("wa_monitor.web")
# The API's routes and the page's: app.py includes this one router.
router = APIRouter(tags=["wa-monitor"], responses=_errors)
DEFAULT_WEEKS = 8


class InstallerStats(BaseModel):
    project: str | None
    week: str | None = Field(description="ISO week (2026-W48) in the business zone; null: all")
    userName: str
    phone: str | None
    drops: int = Field(description="Drops first posted in the week (invalid ones excluded)")
    reviewed: int = Field(description="Of those, approved or sent feedback")
    approved: int
    firstTimePass: int = Field(description="Approved without a resubmission after feedback")
    firstTimePassRate: float | None = Field(description="% of the reviewed drops")
    correctionRounds: int = Field(description="Feedbacks answered by a new post of the drop")
    averageCorrectionRounds: float | None = Field(description="Per reviewed drop")
    averageHoursToResubmit: float | None = Field(
        description="From a feedback to the post that answered it, in hours"
    )


class ReviewerStats(BaseModel):
    project: str | None
    week: str | None = Field(description="ISO week of the decisions; null: all")
    reviewer: str
    dropsReviewed: int = Field(description="Drops given feedback or approved")
    reviews: int = Field(description="Decisions: feedbacks requested and approvals")
    feedbackSent: int
    approvals: int
    averageMinutesPerReview: float | None = Field(
        description="From the first action on the drop (since its latest post) to the decision"
    )


class WeekDrops(BaseModel):
    project: str | None
    week: str
    drops: int


class TeamStats(BaseModel):
    startDate: date
    endDate: date
    timezone: str
    project: str | None
    weeks: list[str] = Field(description="The period's ISO weeks, oldest first")
    dropsByWeek: list[WeekDrops]
    installers: list[InstallerStats] = Field(description="By project, week and installer")
    installerTotals: list[InstallerStats] = Field(description="By project and installer")
    reviewers: list[ReviewerStats] = Field(description="By project, week and reviewer")
    reviewerTotals: list[ReviewerStats] = Field(description="By project and reviewer")


ProjectParam = Annotated[str | None, Query(max_length=100, pattern=NO_NUL)]
WeeksParam = Annotated[
    int, Query(ge=1, le=tq.MAX_WEEKS, description="How many ISO weeks, back from dateTo's")
]
DateToParam = Annotated[Day | None, Query(description="Last local day; default: today")]


RECENT_SECONDS = 10.0  # the charts are asked for right after the page


class Recent:
    """Figures read in the last `seconds`, by key: without a change feed (SQLite) the page
    and its three charts, asked for at once, share one reading of the period."""

    def __init__(self, seconds: float = RECENT_SECONDS, max_entries: int = 32) -> None:
        self.seconds = seconds
        self.max_entries = max_entries
        self._entries: dict[Hashable, tuple[float, tq.TeamFigures]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], tq.TeamFigures]) -> tq.TeamFigures:
        now = time.monotonic()
        with self._lock:
            found = self._entries.get(key)
        if found is not None and now - found[0] < self.seconds:
            return found[1]
        figures = compute()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.pop(next(iter(self._entries)))
            self._entries[key] = (now, figures)
        return figures


def _figures(
    request: Request, project: str | None, weeks: int, date_to: date | None
) -> tq.TeamFigures:
    config = _config(request)
    when = tq.period(date_to or q.today(config.zone), weeks)
    store = _store(request)
    key = ("team", project, when, config.timezone)

    def read() -> tq.TeamFigures:
        return tq.team_figures(store, project, when, config.zone)

    answers = _answers(request)
    if answers.feed is not None:  # kept until the reviews change
        figures: tq.TeamFigures = answers.get(key, read)
        return figures
    recent: Recent | None = getattr(request.app.state, "team_figures", None)
    if recent is None:
        recent = request.app.state.team_figures = Recent()
    return recent.get(key, read)


def stats_data(figures: tq.TeamFigures, project: str | None, timezone: str) -> dict[str, Any]:
    return {
        "startDate": figures.period.start,
        "endDate": figures.period.end,
        "timezone": timezone,
        "project": project,
        "weeks": list(figures.period.weeks),
        "dropsByWeek": tq.drops_by_week(figures),
        "installers": tq.installer_rows(figures.drops, by_week=True),
        "installerTotals": tq.installer_rows(figures.drops, by_week=False),
        "reviewers": tq.reviewer_rows(figures.decisions, by_week=True),
        "reviewerTotals": tq.reviewer_rows(figures.decisions, by_week=False),
    }


@router.get("/api/wa-monitor-team-stats", response_model=Envelope[TeamStats])
def team_stats(
    request: Request,
    _caller: Viewer,
    project: ProjectParam = None,
    weeks: WeeksParam = DEFAULT_WEEKS,
    dateTo: DateToParam = None,
) -> JSONResponse:
    """Per installer (drops, first-time pass rate, correction rounds, time to resubmit) and
    per reviewer (drops reviewed, time per review), by project and ISO week."""
    project = project or None
    figures = _figures(request, project, weeks, dateTo)
    data = stats_data(figures, project, _config(request).timezone)
    return ok(TeamStats.model_validate(data).model_dump(mode="json"))


# -- charts -------------------------------------------------------------------------------

CHARTS: dict[str, str] = {
    "drops-per-week": "Drops per week",
    "first-time-pass": "First-time pass rate per installer (%)",
    "review-time": "Average time per review per reviewer (minutes)",
}
ChartName = Literal["drops-per-week", "first-time-pass", "review-time"]
assert set(ChartName.__args__) == set(CHARTS)  # type: ignore[attr-defined]
MAX_BARS = 20  # people per chart: the busiest
_STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1c2430",
    foreground_strong="#1c2430",
    foreground_subtle="#5b6776",
    colors=("#0b6bcb", "#1b7f3b", "#e0a000", "#6a4fc9", "#b42318", "#2b8a9e", "#8a5a00"),
    font_family="system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif",
    # Read on a phone too, where the 800-pixel drawing shrinks to half its size.
    title_font_size=22,
    label_font_size=16,
    major_label_font_size=16,
    legend_font_size=16,
    value_font_size=16,
)
# pygal writes its name and web address in comments, and its settings for the tooltips'
# script in a script element (the script itself is left out): an image needs neither.
_UNUSED = re.compile(r"<!--.*?-->|<script\b[^>]*>.*?</script>", re.DOTALL)


def _config_for(title: str, **options: Any) -> pygal.Config:
    config = pygal.Config(
        js=[],  # pygal's tooltips load a script from the web: none (the CSP forbids it too)
        style=_STYLE,
        title=title,
        width=800,
        height=420,
        explicit_size=True,
        disable_xml_declaration=True,
        print_values=True,
        legend_at_bottom=True,
        truncate_legend=40,
        truncate_label=28,
        no_data_text="No data in this period",
        margin=16,
    )
    for name, value in options.items():
        setattr(config, name, value)
    return config


# Drawing sizes: the page's (the weekly chart spans it, above the other two) and a
# phone's, where the same type would shrink to nothing.
SIZES = {"wide": {"drops-per-week": (1100, 380), "": (800, 420)}, "narrow": {"": (480, 420)}}


def chart_size(name: str, size: str) -> tuple[int, int]:
    sizes = SIZES[size]
    return sizes.get(name, sizes[""])


def chart_svg(name: str, figures: tq.TeamFigures, size: str = "wide") -> str:
    """The named chart of the figures as a self-contained SVG document."""
    width, height = chart_size(name, size)
    labels = 28 if size == "wide" else 14  # characters of a name beside a bar
    if name == "drops-per-week":
        chart = pygal.StackedBar(
            _config_for(CHARTS[name], width=width, height=height, print_values=False)
        )
        chart.x_labels = [w.split("-")[1] for w in figures.period.weeks]
        by_project: dict[str | None, list[int]] = {}
        for row in tq.drops_by_week(figures):
            by_project.setdefault(row["project"], []).append(row["drops"])
        for project, counts in by_project.items():
            chart.add(project or "(no project)", counts)
    elif name == "first-time-pass":
        people = [replace(d, project=None) for d in figures.drops]
        rows = [r for r in tq.installer_rows(people, by_week=False) if r["reviewed"]]
        rows = sorted(rows, key=lambda r: -r["drops"])[:MAX_BARS]
        chart = pygal.HorizontalBar(
            _config_for(
                CHARTS[name],
                width=width,
                height=height,
                range=(0, 100),
                y_labels=[0, 25, 50, 75, 100],
                show_legend=False,
            )
        )
        # A phone has room for the name alone.
        chart.x_labels = [
            _person(r["userName"], r["phone"]) if size == "wide" else _short(r["userName"], labels)
            for r in rows
        ]
        chart.add("First-time pass %", [r["firstTimePassRate"] for r in rows])
    else:
        decisions = [replace(d, project=None) for d in figures.decisions]
        by_reviews = sorted(tq.reviewer_rows(decisions, by_week=False), key=lambda r: -r["reviews"])
        reviewers = by_reviews[:MAX_BARS]
        chart = pygal.HorizontalBar(
            _config_for(CHARTS[name], width=width, height=height, show_legend=False)
        )
        chart.x_labels = [_short(r["reviewer"], labels) for r in reviewers]
        chart.add("Minutes per review", [r["averageMinutesPerReview"] for r in reviewers])
    svg = chart.render(is_unicode=True)
    return _UNUSED.sub("", svg)


def _short(text: str, most: int) -> str:
    return text if len(text) <= most else text[: most - 1] + "…"


def _person(name: str, phone: str | None) -> str:
    """A sender without a contact name is shown once (the name is the phone then)."""
    return name if not phone or phone == name else f"{name} ({phone})"


@router.get(
    "/api/wa-monitor-team-charts/{name}.svg",
    response_class=Response,
    responses={200: {"content": {"image/svg+xml": {}}, "description": "The chart (SVG)"}},
)
def team_chart(
    request: Request,
    _caller: Viewer,
    name: ChartName,
    project: ProjectParam = None,
    weeks: WeeksParam = DEFAULT_WEEKS,
    dateTo: DateToParam = None,
    size: Annotated[
        Literal["wide", "narrow"], Query(description="narrow: drawn for a phone's width")
    ] = "wide",
) -> Response:
    """A chart of the team's figures: drops-per-week, first-time-pass or review-time."""
    figures = _figures(request, project or None, weeks, dateTo)
    return Response(
        chart_svg(name, figures, size),
        media_type="image/svg+xml; charset=utf-8",
        headers={"Cache-Control": "private, max-age=60"},
    )


# -- the page -----------------------------------------------------------------------------


_DAY: TypeAdapter[date] = TypeAdapter(Day)


@router.get("/wa-monitor/team", response_class=HTMLResponse, include_in_schema=False)
def team_page(
    request: Request,
    project: ProjectParam = None,
    weeks: Annotated[int, Query(ge=1, le=tq.MAX_WEEKS)] = DEFAULT_WEEKS,
    date_to: Annotated[str, Query(alias="dateTo", max_length=20)] = "",
) -> Response:
    """The team's tables and charts for every signed-in user; the filters live in the URL."""
    caller = _caller(request)
    if caller is None or caller.via != "session":
        here = "/wa-monitor/team" + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(here)}", status_code=303)
    # The form sends an empty day when none is picked: that is today.
    try:
        end_day = _DAY.validate_python(date_to) if date_to else None
    except ValidationError:
        raise ApiError(
            422,
            f"dateTo must be a day, YYYY-MM-DD (got {date_to!r})",
            details=[{"field": "query.dateTo"}],
        ) from None
    config = _config(request)
    project = project or None
    figures = _figures(request, project, weeks, end_day)
    stats = TeamStats.model_validate(stats_data(figures, project, config.timezone))
    query = urlencode(
        {
            k: v
            for k, v in (("project", project), ("weeks", weeks), ("dateTo", end_day))
            if v is not None
        }
    )
    projects = [p.name for p in config.projects]
    if project is not None and project not in projects:
        projects.append(project)
    return templates.TemplateResponse(
        request,
        "team.html",
        {
            "user": caller.user,
            "csrf": caller.csrf,
            "stats": stats,
            "projects": projects,
            "project": project,
            "weeks": weeks,
            "week_choices": sorted({4, 8, 12, 26, 52, weeks}),
            "date_to": end_day.isoformat() if end_day else "",
            "charts": [
                {
                    "name": n,
                    "title": t,
                    "src": f"/api/wa-monitor-team-charts/{n}.svg?{query}",
                    "size": chart_size(n, "wide"),
                    "narrow": f"/api/wa-monitor-team-charts/{n}.svg?{query}&size=narrow",
                }
                for n, t in CHARTS.items()
            ],
            "person": _person,
            "version": __version__,
        },
    )
