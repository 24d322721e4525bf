"""The figures the company front end reads, on both backends, through its own token:
drops per project today, a project's periods, the projects summary."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_api_support import (
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    review,
    settings_for,
    today_minutes_ago,
)
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import qa_photo_reviews as R
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app

ZONE = projects_config().zone
ALL_STEPS = {s: True for s in STEP_COLUMNS}


@dataclass
class Figures:
    client: TestClient
    store: ReviewStore
    people: People
    front_end: dict[str, str]

    def get(self, path: str) -> Any:
        """What the front end's API routes forward: its token, no session."""
        return self.client.get(path, headers=self.front_end)

    def data(self, path: str) -> Any:
        response = self.get(path)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["success"] is True and "timestamp" in body["meta"]
        return body["data"]

    def review(self, drop: str, project: str = "Lawley", **steps: bool) -> None:
        rid = review(self.store, drop, project)["id"]
        response = self.client.patch(
            f"/api/wa-monitor-drops/{rid}", json=steps, headers=self.people.bearer("reviewer")
        )
        assert response.status_code == 200, response.text

    def set(self, drop: str, **values: Any) -> None:
        with self.store.begin() as conn:
            conn.execute(sa.update(R).where(R.c.drop_number == drop).values(**values))


@pytest.fixture
def figures(store: ReviewStore) -> Iterator[Figures]:
    people = add_people(store)
    secret = create_token(store, "reviewer", "FibreFlow", front_end=True)[1]
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    with TestClient(app) as client:
        yield Figures(client, store, people, {"Authorization": f"Bearer {secret}"})


def local_today() -> date:
    return datetime.now(UTC).astimezone(ZONE).date()


def noon(days_ago: int) -> datetime:
    """Midday of a business day `days_ago` days before today."""
    return datetime.combine(local_today() - timedelta(days=days_ago), time(12), tzinfo=ZONE)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code
    assert body["error"]["message"]
    return dict(body["error"])


def no_project(store: ReviewStore, drop: str, when: datetime) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.insert(R).values(
                id=uuid.uuid4(),
                drop_number=drop,
                user_name="legacy",
                project=None,
                whatsapp_message_date=when,
            )
        )


# -- daily drops --------------------------------------------------------------------------


def test_daily_drops_count_by_whatsapp_day_in_the_business_zone(figures: Figures) -> None:
    today = local_today()
    midnight = datetime.combine(today, time(), tzinfo=ZONE)
    record(
        figures.store,
        post("DR10000001", midnight + timedelta(minutes=30)),  # 22:30 UTC the day before
        post("DR10000002", midnight + timedelta(hours=1)),
        post("DR10000002", midnight + timedelta(hours=2)),  # resubmitted: still one drop
        post("DR10000003", midnight + timedelta(hours=1), project="Mohadin"),
        # History synced today, but posted yesterday: not today's.
        post("DR10000004", midnight - timedelta(minutes=10)),
    )
    # A row without a project is counted, under the front end's name for it.
    no_project(figures.store, "DR10000005", midnight + timedelta(hours=3))
    data = figures.data("/api/wa-monitor-daily-drops")
    assert data["date"] == today.isoformat()
    assert data["drops"] == [
        {"date": today.isoformat(), "project": "Lawley", "count": 2},
        {"date": today.isoformat(), "project": "Mohadin", "count": 1},
        {"date": today.isoformat(), "project": "Unknown", "count": 1},
    ]
    assert data["total"] == 4
    yesterday = (today - timedelta(days=1)).isoformat()
    other = figures.data(f"/api/wa-monitor-daily-drops?date={yesterday}")
    assert other["total"] == 1
    assert other["drops"] == [{"date": yesterday, "project": "Lawley", "count": 1}]
    assert_error(
        figures.get("/api/wa-monitor-daily-drops?date=2025-02-30"), 422, "VALIDATION_ERROR"
    )


# -- project stats ------------------------------------------------------------------------


def test_project_stats_sit_under_stats_with_the_front_ends_rolling_periods(
    figures: Figures,
) -> None:
    record(
        figures.store,
        post("DR20000001", today_minutes_ago(30)),
        post("DR20000002", today_minutes_ago(20)),
        post("DR20000003", noon(7)),  # the week's first day
        post("DR20000004", noon(8)),  # before the week
        post("DR20000005", noon(30)),  # the month's first day
        post("DR20000006", noon(31)),  # before the month
        post("DR20000007", today_minutes_ago(10), project="Mohadin"),
    )
    figures.review("DR20000001", **ALL_STEPS)
    figures.review("DR20000003", **ALL_STEPS)
    figures.set("DR20000002", invalid=True)  # not a drop number: counted nowhere

    data = figures.data("/api/wa-monitor-project-stats?project=Lawley")
    assert data["project"] == "Lawley"
    stats = data["stats"]
    assert stats["today"] == {"total": 1, "complete": 1, "incomplete": 0, "completionRate": 100}
    assert stats["week"] == {"total": 2, "complete": 2, "incomplete": 0, "completionRate": 100}
    assert stats["month"] == {
        "total": 4,
        "complete": 2,
        "incomplete": 2,
        "completionRate": 50,
    }
    assert stats["allTime"]["total"] == 5
    assert stats["allTime"]["completionRate"] == 40

    unknown = figures.data("/api/wa-monitor-project-stats?project=Nowhere")["stats"]
    assert unknown["allTime"] == {"total": 0, "complete": 0, "incomplete": 0, "completionRate": 0}
    for query in ("", "?project=", "?project=%20"):
        error = assert_error(
            figures.get(f"/api/wa-monitor-project-stats{query}"), 422, "VALIDATION_ERROR"
        )
        assert "project" in error["message"]
        assert error["details"][0]["field"] == "query.project"


# -- the projects summary -----------------------------------------------------------------


def test_the_projects_summary_has_the_front_ends_shape_for_today_by_default(
    figures: Figures,
) -> None:
    record(
        figures.store,
        post("DR30000001", today_minutes_ago(50), name="Thabo"),
        post("DR30000002", today_minutes_ago(40), name="Thabo"),
        post("DR30000003", today_minutes_ago(30), project="Mohadin", name="Sipho"),
        post("DR30000004", today_minutes_ago(20), project="Mohadin", name="Sipho"),
        post("DR30000005", today_minutes_ago(10), project="Mohadin", name="Sipho"),
        post("DR30000006", noon(3), name="Thabo"),  # this week, not today
        post("DR30000007", minutes_ago(60 * 24 * 10), name="Thabo"),  # 10 days: needs attention
    )
    record(figures.store, post("DR30000002", today_minutes_ago(5), name="Thabo"))  # again
    figures.review("DR30000001", **ALL_STEPS)
    figures.review("DR30000003", project="Mohadin", **ALL_STEPS)
    figures.review("DR30000006", **ALL_STEPS)
    # Reviewed, two steps missing; the feedback went out.
    missing = {s: True for s in STEP_COLUMNS[2:]}
    figures.review("DR30000004", project="Mohadin", **missing)
    figures.set("DR30000004", feedback_sent=datetime.now(UTC))
    for held in ("DR30000002", "DR30000005", "DR30000006"):  # the last one not today
        figures.set(held, assigned_agent="reviewer")

    s = figures.data("/api/wa-monitor-projects-summary")
    today = local_today().isoformat()
    assert (s["startDate"], s["endDate"]) == (today, today)
    # The projects page: "QA Drops Today".
    assert (s["total"], s["complete"], s["incomplete"], s["completionRate"]) == (5, 2, 3, 40)
    assert s["totals"]["total"] == 5
    assert [p["project"] for p in s["byProject"]] == ["Mohadin", "Lawley"]  # most drops first
    lawley = s["byProject"][1]
    assert (lawley["total"], lawley["complete"], lawley["completionRate"]) == (2, 1, 50)
    assert (lawley["overallTotal"], lawley["overallComplete"]) == (4, 2)
    assert lawley["overallCompletionRate"] == 50
    assert s["overallStats"] == {
        "totalInSystem": 7,
        "completedInSystem": 3,
        "systemCompletionRate": pytest.approx(42.9),
    }
    assert s["trends"]["weekly"]["total"] == 6 and s["trends"]["weekly"]["complete"] == 3
    assert s["trends"]["monthly"]["total"] == 7
    assert s["outstanding"] == {"totalIncomplete": 4, "needsAttention": 1, "recent": 3}
    assert s["resubmissions"]["total"] == 1
    assert s["resubmissions"]["rate"] == pytest.approx(14.3)
    assert s["resubmissions"]["firstTimePassRate"] == pytest.approx(85.7)
    # Sent: one drop; pending: not complete and no feedback yet (DR30000002, 05).
    fb = s["feedbackStats"]
    assert (fb["sent"], fb["pending"], fb["sendRate"]) == (1, 2, pytest.approx(33.3))
    assert s["commonFailures"][0]["step"] == "House photo"  # a label the page shows
    assert {f["column"] for f in s["commonFailures"]} == set(STEP_COLUMNS[:2])
    assert all(f["count"] == 1 and f["percentage"] == 100 for f in s["commonFailures"])
    # The front end's agents are the drops' assignedAgent; the installers are our extra.
    assert [(a["agent"], a["drops"], a["completionRate"]) for a in s["agentPerformance"]] == [
        ("reviewer", 2, 0)
    ]
    installers = {a["installer"]: a for a in s["installerPerformance"]}
    assert (installers["Sipho"]["drops"], installers["Sipho"]["completionRate"]) == (
        3,
        pytest.approx(33.3),
    )
    assert (installers["Thabo"]["drops"], installers["Thabo"]["completionRate"]) == (2, 50)

    week = figures.data(f"/api/wa-monitor-projects-summary?startDate={noon(3).date()}")
    assert week["total"] == 6 and week["endDate"] == today
    one_day = figures.data(f"/api/wa-monitor-projects-summary?endDate={noon(3).date()}")
    assert (one_day["startDate"], one_day["total"]) == (noon(3).date().isoformat(), 1)


def test_the_projects_summary_refuses_bad_dates(figures: Figures) -> None:
    path = "/api/wa-monitor-projects-summary"
    for query in ("?startDate=x", "?endDate=2025-02-30", "?startDate=2025-1-5"):
        assert_error(figures.get(path + query), 422, "VALIDATION_ERROR")
    backwards = assert_error(
        figures.get(f"{path}?startDate=2025-02-01&endDate=2025-01-01"), 422, "VALIDATION_ERROR"
    )
    assert "startDate" in backwards["message"]
    assert_error(
        figures.get(f"{path}?startDate=2000-01-01&endDate=2025-01-01"), 422, "VALIDATION_ERROR"
    )


def test_installer_performance_lists_the_ten_with_most_complete_drops(
    figures: Figures,
) -> None:
    posts = []
    for i in range(12):
        # Installer i posts i + 1 drops; installer 0's one drop will be complete.
        phone = f"2782000{i:04d}"
        posts += [
            post(f"DR4{i:02d}{n:05d}", today_minutes_ago(60 - n), name=f"Agent {i}", sender=phone)
            for n in range(i + 1)
        ]
    record(figures.store, *posts)
    figures.review("DR40000000", **ALL_STEPS)
    installers = figures.data("/api/wa-monitor-projects-summary")["installerPerformance"]
    assert len(installers) == 10
    assert installers[0]["installer"] == "Agent 0" and installers[0]["completionRate"] == 100
    assert [a["drops"] for a in installers[1:]] == [12, 11, 10, 9, 8, 7, 6, 5, 4]


def test_reasons_in_odd_shapes_are_skipped_not_failing_the_summary(figures: Figures) -> None:
    record(figures.store, *(post(f"DR5000000{i}", today_minutes_ago(30 - i)) for i in range(5)))
    odd: list[Any] = [
        ["step_01_house_photo"],  # a list, not steps to reasons
        {"step_01_house_photo": "blurred"},  # a text, not a list of them
        {"step_02_cable_from_pole": [1, "Too dark ", "", None]},
        {"not_a_step": ["blurred"]},
        {"step_02_cable_from_pole": ["too dark", "TOO DARK"]},  # one drop, one reason
    ]
    for i, reasons in enumerate(odd):
        figures.set(f"DR5000000{i}", incorrect_reasons=reasons, incomplete=True)
    failures = figures.data("/api/wa-monitor-projects-summary")["failuresByReason"]
    assert [(f["step"], f["reason"].lower(), f["count"]) for f in failures] == [
        ("step_02_cable_from_pole", "too dark", 2)
    ]


def test_the_summary_is_a_few_queries_whatever_the_number_of_reviews(figures: Figures) -> None:
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[2]))

    def queries_for_summary() -> int:
        statements.clear()
        sa.event.listen(figures.store.engine, "before_cursor_execute", seen)
        try:
            figures.data("/api/wa-monitor-projects-summary?startDate=2020-01-01")
        finally:
            sa.event.remove(figures.store.engine, "before_cursor_execute", seen)
        return sum(1 for s in statements if "qa_photo_reviews" in s)

    record(figures.store, post("DR60000001", today_minutes_ago(30)))
    few = queries_for_summary()
    record(figures.store, *(post(f"DR6100{i:04d}", noon(i % 40)) for i in range(300)))
    many = queries_for_summary()
    assert few == many <= 8
    assert figures.data("/api/wa-monitor-projects-summary?startDate=2020-01-01")["total"] == 301


def test_project_stats_and_summary_count_reviews(figures: Figures) -> None:
    record(
        figures.store,
        post("DR70000001", today_minutes_ago(30), name="Thabo"),
        post("DR70000002", today_minutes_ago(20), name="Thabo"),
        post(
            "DR70000003",
            today_minutes_ago(10),
            project="Mohadin",
            name="Sipho",
            sender="27830000000",
        ),
        post("DR70000004", minutes_ago(60 * 24 * 40)),  # 40 days ago
    )
    record(figures.store, post("DR70000002", today_minutes_ago(5), name="Thabo"))
    figures.review("DR70000001", **ALL_STEPS)
    figures.review(
        "DR70000002", **{s: True for s in STEP_COLUMNS if s != "step_07_power_meter_reading"}
    )

    stats = figures.data("/api/wa-monitor-project-stats?project=Lawley")["stats"]
    assert stats["today"] == {"total": 2, "complete": 1, "incomplete": 1, "completionRate": 50.0}
    assert stats["allTime"]["total"] == 3

    summary = figures.data("/api/wa-monitor-projects-summary")
    assert summary["totals"]["total"] == 3  # today
    assert summary["resubmissionRate"] == pytest.approx(33.3)
    assert summary["firstTimePassRate"] == pytest.approx(33.3)
    by_project = {p["project"]: p for p in summary["byProject"]}
    assert by_project["Lawley"]["total"] == 2 and by_project["Lawley"]["complete"] == 1
    assert summary["commonFailures"] == [
        {
            "step": "Power meter reading",
            "column": "step_07_power_meter_reading",
            "label": "Power meter reading",
            "count": 1,
            "percentage": 100.0,
        }
    ]
    installers = {a["installer"]: a for a in summary["installerPerformance"]}
    assert installers["Thabo"]["total"] == 2 and installers["Sipho"]["phone"] == "27830000000"
    wide = figures.data("/api/wa-monitor-projects-summary?startDate=2020-01-01")
    assert wide["totals"]["total"] == 4
