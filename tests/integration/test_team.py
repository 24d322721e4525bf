"""The team's statistics and charts on both backends, from a history written by hand."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.integration.test_api_support import (
    People,
    TestClient,
    add_people,
    post,
    projects_config,
    record,
    review,
    settings_for,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import feedback_outbox, qa_photo_reviews, review_edits
from wa_monitor.web.app import create_app

SAST = ZoneInfo("Africa/Johannesburg")
THABO = {"name": "Thabo Nkosi", "sender": "27821110000"}
SIPHO = {"name": "Sipho Dlamini", "sender": "27832220000"}


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of November 2025 in the business zone (W45: 3-9, W46: 10-16)."""
    return datetime(2025, 11, day, hour, minute, tzinfo=SAST)


@dataclass
class Team:
    client: TestClient
    store: ReviewStore
    people: People

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.people.bearer("viewer"))

    def stats(self, **params: Any) -> dict[str, Any]:
        response = self.get("/api/wa-monitor-team-stats", dateTo="2025-11-16", weeks=2, **params)
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()["data"]
        return data


@pytest.fixture
def team(store: ReviewStore) -> Iterator[Team]:
    people = add_people(store)
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    with TestClient(app) as client:
        yield Team(client, store, people)


def drop(store: ReviewStore, number: str, project: str = "Lawley") -> uuid.UUID:
    rid: uuid.UUID = review(store, number, project)["id"]
    return rid


def edit(
    store: ReviewStore,
    number: str,
    actor: str,
    when: datetime,
    *,
    project: str = "Lawley",
    approve: bool = False,
    **changes: Any,
) -> None:
    """A reviewer's edit as the API records it; `approve` writes the completed review."""
    if approve:
        changes["completed"] = [False, True]
    rid = drop(store, number, project)
    with store.begin() as conn:
        conn.execute(
            sa.insert(review_edits).values(
                review_id=rid, actor=actor, action="edit", changes=changes, at=when
            )
        )
        if approve:
            conn.execute(
                sa.update(qa_photo_reviews)
                .where(qa_photo_reviews.c.id == rid)
                .values(completed=True, incomplete=False)
            )


def feedback(
    store: ReviewStore,
    number: str,
    actor: str,
    asked: datetime,
    sent: datetime,
    *,
    project: str = "Lawley",
) -> None:
    """A feedback requested by `actor` and delivered, with the sender's own history line."""
    rid = drop(store, number, project)
    with store.begin() as conn:
        outbox_id = conn.execute(
            sa.insert(feedback_outbox)
            .values(
                review_id=rid,
                drop_number=number,
                project=project,
                recipient="120363418298130331@g.us",
                message=f"{number}: step 3 is blurred",
                request_key=uuid.uuid4().hex,
                status="sent",
                attempts=1,
                requested_by=actor,
                created_at=asked,
                sent_at=sent,
            )
            .returning(feedback_outbox.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(review_edits).values(
                review_id=rid,
                actor=actor,
                action="feedback_sent",
                changes={"outboxId": outbox_id},
                at=sent,
            )
        )
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.id == rid)
            .values(feedback_sent=sent, feedback_count=qa_photo_reviews.c.feedback_count + 1)
        )


def history(store: ReviewStore) -> dict[str, datetime]:
    """Two installers, two reviewers, two weeks; returns the moments the figures hang on."""
    moments = {
        "dr1_post": at(3, 9),
        "dr1_edit": at(3, 9, 30),
        "dr1_approve": at(3, 9, 50),
        "dr2_post": at(4, 10),
        "dr2_edit": at(4, 10, 10),
        "dr2_asked": at(4, 10, 40),
        "dr2_sent": at(4, 10, 41),
        "dr2_again": at(4, 13, 41),
        "dr2_edit2": at(4, 14),
        "dr2_approve": at(4, 14, 30),
        "dr3_post": at(10, 8),
        "dr3_edit": at(10, 8, 5),
        "dr3_approve": at(10, 8, 15),
    }
    m = moments
    # Thabo, week 45: DR1 passes at once; DR2 is sent back once and passes after.
    record(store, post("DR10000001", m["dr1_post"], **THABO))
    edit(store, "DR10000001", "alice", m["dr1_edit"], step_01_house_photo=[False, True])
    edit(store, "DR10000001", "alice", m["dr1_approve"], approve=True)
    record(store, post("DR10000002", m["dr2_post"], **THABO))
    edit(store, "DR10000002", "bob", m["dr2_edit"], step_03_cable_entry_outside=[True, False])
    feedback(store, "DR10000002", "bob", m["dr2_asked"], m["dr2_sent"])
    record(store, post("DR10000002", m["dr2_again"], **THABO))
    edit(store, "DR10000002", "bob", m["dr2_edit2"], step_03_cable_entry_outside=[False, True])
    edit(store, "DR10000002", "bob", m["dr2_approve"], approve=True)
    # Sipho, week 46: DR3 passes at once; DR4 is off the project's list; DR5 waits.
    record(store, post("DR10000003", m["dr3_post"], **SIPHO))
    edit(store, "DR10000003", "alice", m["dr3_edit"], step_01_house_photo=[False, True])
    edit(store, "DR10000003", "alice", m["dr3_approve"], approve=True)
    record(store, post("DR99999999", at(11, 9), **SIPHO))
    with store.begin() as conn:
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.drop_number == "DR99999999")
            .values(invalid=True)
        )
    edit(store, "DR99999999", "alice", at(11, 9, 5), approve=True)
    record(store, post("DR10000005", at(12, 9), project="Mohadin", **SIPHO))
    # Outside the period: never counted.
    record(store, post("DR10000006", at(17, 9), **THABO))
    edit(store, "DR10000006", "alice", at(17, 9, 1), approve=True)
    return moments


def minutes(a: datetime, b: datetime) -> float:
    return (b - a).total_seconds() / 60


def one(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any]:
    found = [r for r in rows if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, rows)
    return found[0]


def test_installers_figures_are_what_their_drops_say(team: Team) -> None:
    m = history(team.store)
    data = team.stats()
    assert data["weeks"] == ["2025-W45", "2025-W46"]
    assert (data["startDate"], data["endDate"]) == ("2025-11-03", "2025-11-16")

    thabo = one(data["installers"], userName="Thabo Nkosi", week="2025-W45")
    # Two drops, both reviewed and approved; DR2 took one round, answered 3 hours later.
    assert thabo["phone"] == THABO["sender"] and thabo["project"] == "Lawley"
    assert (thabo["drops"], thabo["reviewed"], thabo["approved"]) == (2, 2, 2)
    assert (thabo["firstTimePass"], thabo["firstTimePassRate"]) == (1, 50.0)
    assert (thabo["correctionRounds"], thabo["averageCorrectionRounds"]) == (1, 0.5)
    hours = (m["dr2_again"] - m["dr2_sent"]).total_seconds() / 3600
    assert thabo["averageHoursToResubmit"] == round(hours, 2) == 3.0

    sipho = one(data["installers"], userName="Sipho Dlamini", project="Lawley")
    # The invalid DR99999999 is not one of his drops.
    assert (sipho["week"], sipho["drops"], sipho["firstTimePassRate"]) == ("2025-W46", 1, 100.0)
    assert sipho["averageHoursToResubmit"] is None and sipho["correctionRounds"] == 0
    waiting = one(data["installers"], userName="Sipho Dlamini", project="Mohadin")
    assert (waiting["drops"], waiting["reviewed"], waiting["firstTimePassRate"]) == (1, 0, None)

    totals = {(r["project"], r["userName"]): r["drops"] for r in data["installerTotals"]}
    assert totals == {
        ("Lawley", "Thabo Nkosi"): 2,
        ("Lawley", "Sipho Dlamini"): 1,
        ("Mohadin", "Sipho Dlamini"): 1,
    }
    weekly = {(r["project"], r["week"]): r["drops"] for r in data["dropsByWeek"]}
    assert weekly == {
        ("Lawley", "2025-W45"): 2,
        ("Lawley", "2025-W46"): 1,
        ("Mohadin", "2025-W45"): 0,
        ("Mohadin", "2025-W46"): 1,
    }


def test_reviewers_figures_count_decisions_and_their_time(team: Team) -> None:
    m = history(team.store)
    data = team.stats()
    alice45 = one(data["reviewers"], reviewer="alice", week="2025-W45")
    alice46 = one(data["reviewers"], reviewer="alice", week="2025-W46")
    assert (alice45["dropsReviewed"], alice45["approvals"], alice45["feedbackSent"]) == (1, 1, 0)
    assert alice45["averageMinutesPerReview"] == minutes(m["dr1_edit"], m["dr1_approve"]) == 20
    # The approval of the invalid DR99999999 is not a review.
    assert (alice46["dropsReviewed"], alice46["reviews"]) == (1, 1)
    assert alice46["averageMinutesPerReview"] == minutes(m["dr3_edit"], m["dr3_approve"]) == 10

    bob = one(data["reviewers"], reviewer="bob")
    # DR2 twice: the feedback (from his first edit) and, after the new post, the approval.
    first = minutes(m["dr2_edit"], m["dr2_asked"])
    second = minutes(m["dr2_edit2"], m["dr2_approve"])
    assert (bob["week"], bob["dropsReviewed"], bob["reviews"]) == ("2025-W45", 1, 2)
    assert (bob["feedbackSent"], bob["approvals"]) == (1, 1)
    assert bob["averageMinutesPerReview"] == round((first + second) / 2, 1) == 30

    alice = one(data["reviewerTotals"], reviewer="alice")
    assert (alice["week"], alice["dropsReviewed"], alice["reviews"]) == (None, 2, 2)
    assert alice["averageMinutesPerReview"] == 15
    assert {r["reviewer"] for r in data["reviewerTotals"]} == {"alice", "bob"}


def test_the_project_and_the_weeks_narrow_the_figures(team: Team) -> None:
    history(team.store)
    mohadin = team.stats(project="Mohadin")
    assert [(r["userName"], r["drops"]) for r in mohadin["installers"]] == [("Sipho Dlamini", 1)]
    assert mohadin["reviewers"] == [] and mohadin["project"] == "Mohadin"
    last_week = team.get(
        "/api/wa-monitor-team-stats", weeks=1, dateTo="2025-11-16", project="Lawley"
    ).json()["data"]
    assert last_week["weeks"] == ["2025-W46"]
    assert [r["userName"] for r in last_week["installers"]] == ["Sipho Dlamini"]
    assert [(r["reviewer"], r["reviews"]) for r in last_week["reviewers"]] == [("alice", 1)]
    # The week after: only DR10000006.
    later = team.get("/api/wa-monitor-team-stats", weeks=1, dateTo="2025-11-17").json()["data"]
    assert [(r["userName"], r["drops"]) for r in later["installers"]] == [("Thabo Nkosi", 1)]


def test_bad_parameters_get_a_clear_error(team: Team) -> None:
    for params in ({"weeks": 0}, {"weeks": 53}, {"dateTo": "2025-13-01"}, {"weeks": "x"}):
        response = team.get("/api/wa-monitor-team-stats", **params)
        assert response.status_code == 422, (params, response.text)
        body = response.json()
        assert body["success"] is False and body["error"]["code"] == "VALIDATION_ERROR"
    missing = team.get("/api/wa-monitor-team-charts/pie.svg")
    assert missing.status_code == 422
    assert "drops-per-week" in missing.text
    anonymous = team.client.get("/api/wa-monitor-team-stats")
    assert anonymous.status_code == 401


# pygal's tooltips would load a script from the web; the SVG must stand alone.
_EXTERNAL = re.compile(r"""(?:href|src)\s*=\s*["'](?!#)|url\(\s*["']?(?!#)|@import|<script""")


@pytest.mark.parametrize("name", ["drops-per-week", "first-time-pass", "review-time"])
@pytest.mark.parametrize("size", ["wide", "narrow"])
def test_charts_are_svg_that_reference_nothing_outside(team: Team, name: str, size: str) -> None:
    history(team.store)
    response = team.get(
        f"/api/wa-monitor-team-charts/{name}.svg", dateTo="2025-11-16", weeks=2, size=size
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("image/svg+xml")
    svg = response.text
    assert svg.lstrip().startswith("<svg")
    assert not _EXTERNAL.search(svg), _EXTERNAL.search(svg)
    # The only address left is the SVG namespace, which names and fetches nothing.
    addresses = set(re.findall(r"https?://[^\s\"'<>]+", svg))
    assert addresses <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}
    width = re.search(r'<svg[^>]* width="(\d+)"', svg)
    assert width is not None and (int(width.group(1)) == 480) == (size == "narrow")
    if name == "first-time-pass":
        assert "Thabo Nkosi" in svg and "Sipho Dlamini" in svg
    if name == "review-time":
        assert "alice" in svg and "bob" in svg


def test_the_team_page_shows_the_tables_and_the_charts(team: Team) -> None:
    history(team.store)
    page = team.client.get("/wa-monitor/team", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    signed_in = team.client.post(
        "/login",
        data={
            "username": "viewer",
            "password": "correct-horse-battery",
            "csrf": _login_csrf(team),
            "next": "/wa-monitor/team",
        },
        follow_redirects=False,
    )
    assert signed_in.status_code == 303, signed_in.text
    html = team.client.get("/wa-monitor/team?weeks=2&dateTo=2025-11-16&project=Lawley").text
    assert "Thabo Nkosi (27821110000)" in html and "alice" in html
    assert "Mohadin" in html  # offered in the filter
    assert "<script" not in html  # nothing for the CSP to forbid
    for name in ("drops-per-week", "first-time-pass", "review-time"):
        src = f"/api/wa-monitor-team-charts/{name}.svg?project=Lawley&amp;weeks=2&amp;"
        assert src in html


def _login_csrf(team: Team) -> str:
    form = team.client.get("/login").text
    match = re.search(r'name="csrf" value="([^"]+)"', form)
    assert match is not None
    return match.group(1)


def test_resubmit_delays_pair_each_feedback_with_the_post_that_answered_it() -> None:
    from wa_monitor.web.team_queries import resubmit_delays

    t = at(3, 8)
    hour = timedelta(hours=1)
    # Feedback at 8 and 10, posts at 9 and 13: two rounds, of 1 and 3 hours.
    assert resubmit_delays([t, t + 2 * hour], [t - hour, t + hour, t + 5 * hour]) == [
        hour,
        3 * hour,
    ]
    # A second feedback before any post: the first one had no answer.
    assert resubmit_delays([t, t + hour], [t + 3 * hour]) == [2 * hour]
    assert resubmit_delays([], [t]) == [] and resubmit_delays([t], [t - hour]) == []


def test_a_review_starts_with_whoever_takes_the_drop_after_a_release() -> None:
    from wa_monitor.web.team_queries import TimelineEvent, review_times

    t = at(3, 8)
    minute = timedelta(minutes=1)
    events = [
        TimelineEvent(t, 0, "post", None),
        TimelineEvent(t + minute, 1, "action", "alice"),  # next drop
        TimelineEvent(t + 5 * minute, 1, "release", "alice"),
        TimelineEvent(t + 30 * minute, 1, "action", "bob"),
        TimelineEvent(t + 42 * minute, 1, "approval", "bob"),
    ]
    assert review_times(events) == [(t + 42 * minute, "approval", "bob", 12 * minute)]
    # The same feedback sent twice without anything between is one review.
    twice = [
        TimelineEvent(t, 0, "post", None),
        TimelineEvent(t + minute, 1, "action", "bob"),
        TimelineEvent(t + 3 * minute, 2, "feedback", "bob"),
        TimelineEvent(t + 4 * minute, 2, "feedback", "bob"),
    ]
    assert review_times(twice) == [(t + 3 * minute, "feedback", "bob", 2 * minute)]


def test_hostile_names_stay_text_in_the_page_and_the_charts(team: Team) -> None:
    import xml.etree.ElementTree as ET

    hostile = '<img src=x onerror="alert(1)">&amp;</text><script>alert(2)</script>'
    record(team.store, post("DR10000009", at(12, 9), name=hostile, sender="27830000009"))
    edit(team.store, "DR10000009", hostile, at(12, 9, 10), approve=True)
    for name in ("first-time-pass", "review-time"):
        svg = team.get(f"/api/wa-monitor-team-charts/{name}.svg", dateTo="2025-11-16").text
        root = ET.fromstring(svg)  # well-formed: the name did not break out of its text
        texts = "".join(root.itertext())
        assert hostile[:20] in texts  # as text (long names are cut beside the bars)
        assert not [e for e in root.iter() if e.tag.endswith("script") or e.tag.endswith("img")]
    team.client.cookies.clear()
    team.client.post(
        "/login",
        data={
            "username": "viewer",
            "password": "correct-horse-battery",
            "csrf": _login_csrf(team),
            "next": "/wa-monitor/team",
        },
    )
    html = team.client.get("/wa-monitor/team?dateTo=2025-11-16").text
    assert hostile not in html and "&lt;img src=x" in html and "<script>alert" not in html


def test_feedback_from_before_the_outbox_counts_by_its_resubmissions(team: Team) -> None:
    # A replayed history: feedback counted on the drop, no outbox entry; posted twice.
    record(team.store, post("DR10000010", at(5, 9), **SIPHO))
    record(team.store, post("DR10000010", at(5, 15), **SIPHO))
    with team.store.begin() as conn:
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.drop_number == "DR10000010")
            .values(feedback_count=1, completed=True)
        )
    row = one(team.stats()["installers"], userName="Sipho Dlamini")
    assert (row["drops"], row["reviewed"], row["approved"]) == (1, 1, 1)
    assert (row["firstTimePass"], row["correctionRounds"]) == (0, 1)
    assert row["averageHoursToResubmit"] is None  # when it was sent is not known
