"""The figures the front end shows: today's drops per project, a project's stats, and the
projects summary of the projects page and the drops dashboard."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

from tests.contract import world as w
from tests.contract.shapes import (
    AGENT,
    BY_PROJECT,
    DAILY,
    DAILY_ROW,
    FAILURE,
    PERIOD,
    PERIODS,
    PROJECT_STATS,
    SUMMARY,
    SUMMARY_PARTS,
    check,
    check_each,
    check_error,
    check_success,
)
from tests.contract.world import FrontEnd


class rate:
    """A completion rate in percent: the front end rounds to a whole number, WA Monitor may
    keep a decimal; either is within half a point of part / whole (0 for nothing)."""

    def __init__(self, part: int, whole: int) -> None:
        self.exact = part * 100 / whole if whole else 0.0

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int | float) and abs(other - self.exact) <= 0.5

    def __repr__(self) -> str:
        return f"~{self.exact:.2f}"


def has(actual: Any, **expected: Any) -> bool:
    """`actual` holds these values (WA Monitor's extra fields beside them are fine)."""
    return isinstance(actual, dict) and all(
        k in actual and actual[k] == v for k, v in expected.items()
    )


def test_daily_drops_counts_today_per_project(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-daily-drops")

    assert answer.status == 200, answer.body[:500]
    data = check_success(answer.json(), "daily-drops")
    check(data, DAILY, "data")
    check_each(data["drops"], DAILY_ROW, "data.drops")
    assert data["date"] == fe.today.isoformat()  # the business zone's today
    assert {r["project"]: r["count"] for r in data["drops"]} == w.TODAY_BY_PROJECT
    assert {r["date"] for r in data["drops"]} == {data["date"]}
    assert data["total"] == w.TODAY


def test_project_stats_per_period(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-project-stats?project=Lawley")

    assert answer.status == 200, answer.body[:500]
    data = check_success(answer.json(), "project-stats")
    check(data, PROJECT_STATS, "data")
    for period in PERIODS:
        check(data["stats"].get(period), PERIOD, f"data.stats.{period}")
    assert data["project"] == "Lawley"
    # week = the last 7 days, month = the last 30 days, as the front end's queries.
    expected = {"today": 0, "week": 7, "month": 30, "allTime": None}
    done = len(w.COMPLETED)
    for period, days in expected.items():
        total = w.posted("Lawley", days)
        assert has(
            data["stats"][period],
            total=total,
            complete=done,
            incomplete=total - done,
            completionRate=rate(done, total),
        ), (period, data["stats"][period])


def test_project_stats_needs_a_project(fe: FrontEnd) -> None:
    for path in ("/api/wa-monitor-project-stats", "/api/wa-monitor-project-stats?project="):
        answer = fe.get(path)
        assert answer.status == 422, (path, answer.status, answer.body[:300])
        check_error(answer.json(), ("VALIDATION_ERROR",), path)


def test_project_stats_of_a_project_without_drops(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-project-stats?project=Nowhere")

    # The front end's query answers zeros; a 404 naming the project is as clear.
    if answer.status == 404:
        check_error(answer.json(), ("NOT_FOUND",), "project-stats unknown")
        return
    assert answer.status == 200, answer.body[:300]
    stats = check_success(answer.json(), "project-stats unknown")["stats"]
    assert {p: stats[p]["total"] for p in PERIODS} == dict.fromkeys(PERIODS, 0)


def summary(fe: FrontEnd, query: str = "") -> dict[str, Any]:
    answer = fe.get(f"/api/wa-monitor-projects-summary{query}")
    assert answer.status == 200, answer.body[:500]
    data: dict[str, Any] = check_success(answer.json(), f"projects-summary{query}")
    check(data, SUMMARY, "data")
    for path, shape in SUMMARY_PARTS.items():
        part: Any = data
        for key in path.split("."):
            part = part.get(key) if isinstance(part, dict) else None
        check(part, shape, f"data.{path}")
    check_each(data["byProject"], BY_PROJECT, "data.byProject")
    check_each(data["commonFailures"], FAILURE, "data.commonFailures")
    check_each(data["agentPerformance"], AGENT, "data.agentPerformance")
    return data


def test_projects_summary_of_today(fe: FrontEnd) -> None:
    data = summary(fe)

    done = len(w.COMPLETED)
    # The projects page: waStats.total.toLocaleString(), complete, incomplete, rate.
    assert (data["total"], data["complete"], data["incomplete"], data["completionRate"]) == (
        w.TODAY,
        done,
        w.TODAY - done,
        rate(done, w.TODAY),
    )
    lawley = next(p for p in data["byProject"] if p["project"] == "Lawley")
    assert has(
        lawley,
        total=w.TODAY_BY_PROJECT["Lawley"],
        complete=done,
        completionRate=rate(done, w.TODAY_BY_PROJECT["Lawley"]),
        overallTotal=w.posted("Lawley"),
        overallComplete=done,
        overallCompletionRate=rate(done, w.posted("Lawley")),
    ), lawley
    assert {p["project"]: p["total"] for p in data["byProject"]} == w.TODAY_BY_PROJECT
    assert has(
        data["overallStats"],
        totalInSystem=w.ALL_DROPS,
        completedInSystem=done,
        systemCompletionRate=rate(done, w.ALL_DROPS),
    ), data["overallStats"]
    week = sum(w.posted(p, 7) for p in w.PROJECTS)
    month = sum(w.posted(p, 30) for p in w.PROJECTS)
    weekly, monthly = data["trends"]["weekly"], data["trends"]["monthly"]
    assert has(weekly, total=week, complete=done, completionRate=rate(done, week)), weekly
    assert has(monthly, total=month, complete=done, completionRate=rate(done, month)), monthly
    older = w.ALL_DROPS - week  # waiting more than 7 days
    assert has(
        data["outstanding"],
        totalIncomplete=w.ALL_DROPS - done,
        needsAttention=older,
        recent=w.ALL_DROPS - done - older,
    ), data["outstanding"]
    assert has(
        data["resubmissions"],
        total=1,
        rate=rate(1, w.ALL_DROPS),
        firstTimePassRate=rate(w.ALL_DROPS - 1, w.ALL_DROPS),
    ), data["resubmissions"]
    # The drops dashboard: Sent / Pending / Rate.
    assert data["feedbackStats"]["sent"] >= 1


def test_projects_summary_of_a_date_range(fe: FrontEnd) -> None:
    start = (fe.today - timedelta(days=60)).isoformat()

    data = summary(fe, f"?startDate={start}&endDate={fe.today.isoformat()}")

    assert data["total"] == w.ALL_DROPS
    assert {p["project"]: p["total"] for p in data["byProject"]} == {
        p: w.posted(p) for p in w.PROJECTS
    }
    # The front end groups by the drops' assignedAgent (the reviewer took a Lawley drop
    # from the queue in set-up): the same people as the drop list's assignedAgent.
    drops = fe.get("/api/wa-monitor-drops").json()["data"]
    assigned = Counter(d["assignedAgent"] for d in drops if d["assignedAgent"] is not None)
    assert assigned == {"reviewer": 1}
    agents = {a["agent"]: a["drops"] for a in data["agentPerformance"]}
    assert agents == assigned, data["agentPerformance"]


def test_projects_summary_refuses_a_bad_date(fe: FrontEnd) -> None:
    answer = fe.get("/api/wa-monitor-projects-summary?startDate=yesterday")

    assert answer.status == 422, answer.body[:300]
    check_error(answer.json(), ("VALIDATION_ERROR",), "projects-summary?startDate=yesterday")


def test_figures_refuse_another_method(fe: FrontEnd) -> None:
    for path in (
        "/api/wa-monitor-daily-drops",
        "/api/wa-monitor-project-stats?project=Lawley",
        "/api/wa-monitor-projects-summary",
    ):
        answer = fe.call("POST", path, {})
        assert answer.status == 405, (path, answer.status)
        check_error(answer.json(), ("METHOD_NOT_ALLOWED",), f"POST {path}")
