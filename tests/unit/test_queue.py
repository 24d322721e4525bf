"""The review queue's pure rules: a drop's state from its facts, working-hour ages, the
overdue cutoff (the inverse of the working time)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wa_monitor.core import queue
from wa_monitor.core.hours import WorkingHours

SAST = ZoneInfo("Africa/Johannesburg")
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)  # a Monday
OFFICE = WorkingHours.parse("Mon-Fri 08:00-17:00")


def at(hours: float) -> datetime:
    return T0 + timedelta(hours=hours)


def local(zone: ZoneInfo, *parts: int) -> datetime:
    return datetime(*parts, tzinfo=zone)  # type: ignore[misc]


# -- states ------------------------------------------------------------------------------


def state(**facts: Any) -> str:
    given_facts: dict[str, Any] = {
        "invalid": False,
        "completed": False,
        "assigned_agent": None,
        "feedback_sent": None,
        "last_message_date": at(0),
    }
    return queue.review_state(**{**given_facts, **facts})


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ({}, "new"),
        # Posted again before any feedback: still never reviewed.
        ({"last_message_date": at(5)}, "new"),
        ({"assigned_agent": "ben"}, "in_review"),
        ({"feedback_sent": at(1)}, "needs_correction"),
        ({"feedback_sent": at(1), "last_message_date": at(1)}, "needs_correction"),
        ({"feedback_sent": at(1), "last_message_date": at(2)}, "resubmitted"),
        ({"feedback_sent": at(1), "last_message_date": None}, "needs_correction"),
        # Someone holds it: in review, whatever waits.
        (
            {"feedback_sent": at(1), "last_message_date": at(2), "assigned_agent": "ben"},
            "in_review",
        ),
        ({"feedback_sent": at(1), "assigned_agent": "ben"}, "in_review"),
        # Approved leaves the queue, resubmitted or held.
        ({"completed": True}, "approved"),
        ({"completed": True, "feedback_sent": at(1), "last_message_date": at(2)}, "approved"),
        ({"completed": True, "assigned_agent": "ben"}, "approved"),
        # An invalid number is nothing else.
        ({"invalid": True, "completed": True, "assigned_agent": "ben"}, "invalid"),
        ({"invalid": True, "feedback_sent": at(1), "last_message_date": at(2)}, "invalid"),
    ],
)
def test_each_combination_of_facts_has_one_state(facts: dict[str, Any], expected: str) -> None:
    assert state(**facts) == expected


def test_every_state_has_a_rank_in_queue_order() -> None:
    ranks = [queue.RANKS[s] for s in queue.STATES]
    assert ranks == sorted(ranks)
    assert {s for s in queue.STATES if queue.RANKS[s] == 0} == queue.WAITING
    assert set(queue.TAKEABLE) < queue.WAITING


def row(**values: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "invalid": False,
        "completed": False,
        "assigned_agent": None,
        "feedback_sent": None,
        "whatsapp_message_date": at(0),
        "last_message_date": at(0),
        "created_at": at(0.5),
    }
    return {**base, **values}


def test_the_queue_waits_on_the_post_the_feedback_or_the_resubmission() -> None:
    assert queue.waiting_since_of(row()) == at(0)
    assert queue.waiting_since_of(row(whatsapp_message_date=None)) == at(0.5)
    assert queue.waiting_since_of(row(feedback_sent=at(1))) == at(1)
    assert queue.waiting_since_of(row(feedback_sent=at(1), last_message_date=at(3))) == at(3)
    assert queue.waiting_since_of(row(feedback_sent=at(1), completed=True)) == at(0)


# What happens to a drop, each at its moment: the facts a row holds are the latest post,
# the latest feedback, the latest assignment change, and whether it was approved or found
# invalid. Writers keep the latest of each, so the order they learn them in cannot matter.
@dataclass(frozen=True)
class Happening:
    kind: str  # post, feedback, assign, release, approve, invalidate
    at: datetime
    who: str = "ben"


def facts_of(happenings: list[Happening]) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "invalid": False,
        "completed": False,
        "assigned_agent": None,
        "feedback_sent": None,
        "last_message_date": None,
    }
    assignment: tuple[datetime, str | None] | None = None
    for h in happenings:
        if h.kind == "post":
            facts["last_message_date"] = max(filter(None, (facts["last_message_date"], h.at)))
        elif h.kind == "feedback":
            facts["feedback_sent"] = max(filter(None, (facts["feedback_sent"], h.at)))
        elif h.kind in ("assign", "release"):
            change = (h.at, h.who if h.kind == "assign" else None)
            if assignment is None or (change[0], change[1] or "") > (
                assignment[0],
                assignment[1] or "",
            ):
                assignment = change
        elif h.kind == "approve":
            facts["completed"] = True
        elif h.kind == "invalidate":
            facts["invalid"] = True
    facts["assigned_agent"] = assignment[1] if assignment else None
    return facts


happenings = st.lists(
    st.builds(
        Happening,
        kind=st.sampled_from(("post", "feedback", "assign", "release", "approve", "invalidate")),
        at=st.integers(0, 48).map(lambda h: at(h)),
        who=st.sampled_from(("ben", "ann")),
    ),
    min_size=1,
    max_size=8,
)


@given(happenings, st.randoms())
def test_the_same_facts_in_any_order_give_the_same_state(
    events: list[Happening], shuffler: Any
) -> None:
    first = queue.review_state(**facts_of(events))
    shuffled = list(events)
    shuffler.shuffle(shuffled)
    assert queue.review_state(**facts_of(shuffled)) == first
    assert first in queue.STATES


# -- working hours -----------------------------------------------------------------------


def test_working_time_skips_nights_and_weekends() -> None:
    friday_4pm = local(SAST, 2026, 11, 6, 16, 0)
    monday_9am = local(SAST, 2026, 11, 9, 9, 0)
    assert queue.working_seconds(friday_4pm, monday_9am, OFFICE, SAST) == 2 * 3600
    tuesday_4_30pm = local(SAST, 2026, 11, 3, 16, 30)
    wednesday_8_30am = local(SAST, 2026, 11, 4, 8, 30)
    assert queue.working_seconds(tuesday_4_30pm, wednesday_8_30am, OFFICE, SAST) == 3600
    saturday = local(SAST, 2026, 11, 7, 10, 0)
    sunday = local(SAST, 2026, 11, 8, 15, 0)
    assert queue.working_seconds(saturday, sunday, OFFICE, SAST) == 0
    # A whole working week.
    monday = local(SAST, 2026, 11, 2, 0, 0)
    assert queue.working_seconds(monday, monday + timedelta(days=7), OFFICE, SAST) == 45 * 3600
    # Backwards is nothing.
    assert queue.working_seconds(monday_9am, friday_4pm, OFFICE, SAST) == 0


def test_working_hours_are_read_in_the_zone_given() -> None:
    # 06:00-07:00 UTC is 08:00-09:00 in Johannesburg, before work in London.
    start, end = datetime(2026, 11, 3, 6, tzinfo=UTC), datetime(2026, 11, 3, 7, tzinfo=UTC)
    assert queue.working_seconds(start, end, OFFICE, SAST) == 3600
    assert queue.working_seconds(start, end, OFFICE, ZoneInfo("Europe/London")) == 0


def test_always_is_wall_time_and_never_is_none() -> None:
    always, never = WorkingHours.parse("always"), WorkingHours.parse("never")
    start = local(BERLIN, 2026, 3, 28, 12, 0)
    end = local(BERLIN, 2026, 3, 29, 12, 0)  # the clocks went forward in between
    assert queue.working_seconds(start, end, always, BERLIN) == 23 * 3600
    assert queue.working_seconds(start, end, never, BERLIN) == 0
    assert queue.overdue_cutoff(end, timedelta(hours=2), never, BERLIN) is None
    assert queue.overdue_cutoff(end, timedelta(hours=2), always, BERLIN) == end - timedelta(hours=2)


def test_a_day_whose_clock_changes_counts_the_time_that_passed() -> None:
    night = WorkingHours.parse("01:00-04:00")
    day = local(BERLIN, 2026, 3, 29, 0, 0)  # 02:00 becomes 03:00
    assert queue.working_seconds(day, day + timedelta(hours=12), night, BERLIN) == 2 * 3600
    autumn = local(BERLIN, 2026, 10, 25, 0, 0)  # 03:00 becomes 02:00 again
    assert queue.working_seconds(autumn, autumn + timedelta(hours=12), night, BERLIN) == 4 * 3600


def test_the_overdue_cutoff_walks_back_over_the_weekend() -> None:
    monday_9am = local(SAST, 2026, 11, 9, 9, 0)
    cutoff = queue.overdue_cutoff(monday_9am, timedelta(hours=2), OFFICE, SAST)
    assert cutoff == local(SAST, 2026, 11, 6, 16, 0)  # Friday 16:00


ZONES = [SAST, BERLIN, ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata"), UTC]
HOURS = [
    OFFICE,
    WorkingHours.parse("Mon-Sat 07:00-19:00"),
    WorkingHours.parse("Mon,Wed,Sat 8:00-12:00"),
    WorkingHours.parse("01:00-04:00"),
    WorkingHours.parse("always"),
]


@settings(max_examples=300)
@given(
    now=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    minutes=st.integers(0, 60 * 24 * 10),
    hours=st.sampled_from(HOURS),
    zone=st.sampled_from(ZONES),
)
def test_the_cutoff_is_the_inverse_of_the_working_time(
    now: datetime, minutes: int, hours: WorkingHours, zone: Any
) -> None:
    target = timedelta(minutes=minutes)
    cutoff = queue.overdue_cutoff(now, target, hours, zone)
    assert cutoff is not None and cutoff <= now
    assert hours.working_time(cutoff, now, zone) == target
    # Any later wait is shorter than the target; any earlier one at least as long.
    later = cutoff + timedelta(seconds=1)
    if later <= now and minutes:
        assert hours.working_time(later, now, zone) < target
    assert hours.working_time(cutoff - timedelta(hours=30), now, zone) >= target


# -- what the list shows -----------------------------------------------------------------


def test_the_list_shows_hours_waited_and_overdue_for_waiting_drops_only() -> None:
    clocks = queue.Clocks(
        default=queue.Clock(OFFICE),
        projects=(("Lawley", queue.Clock(WorkingHours.parse("always"), timedelta(hours=2))),),
    )
    now = at(10)
    cutoffs = clocks.cutoffs(now, SAST)
    assert cutoffs == {"Lawley": at(8)}

    def shown(**values: Any) -> dict[str, Any]:
        drop = {"review_state": "new", "project": "Lawley", "waiting_since": at(7.96), **values}
        return queue.queue_figures(drop, clocks, cutoffs, now, SAST)

    assert shown() == {"waitingWorkingHours": 2.0, "overdue": True}
    assert shown(waiting_since=at(8)) == {"waitingWorkingHours": 2.0, "overdue": False}
    assert shown(review_state="in_review")["overdue"] is True
    assert shown(review_state="needs_correction") == {"waitingWorkingHours": None, "overdue": False}
    assert shown(review_state="approved")["waitingWorkingHours"] is None
    # No target: never overdue; the project's own hours (the default here) count.
    other = shown(project="Mohadin", waiting_since=at(-24))
    assert other["overdue"] is False
    assert other["waitingWorkingHours"] == queue.working_seconds(at(-24), now, OFFICE, SAST) / 3600


def test_months_of_waiting_count_every_working_day_and_the_clock_change() -> None:
    # Mon-Fri 08:00-17:00 over 2026 in Johannesburg: 261 working days of 9 hours.
    year = (local(SAST, 2026, 1, 1, 0, 0), local(SAST, 2027, 1, 1, 0, 0))
    assert queue.working_seconds(*year, OFFICE, SAST) == 261 * 9 * 3600
    # 02:00-04:00 every day in Berlin, January to June: the night the clocks go forward
    # has one hour of it.
    night = WorkingHours.parse("02:00-04:00")
    half = (local(BERLIN, 2026, 1, 1, 0, 0), local(BERLIN, 2026, 7, 1, 0, 0))
    assert queue.working_seconds(*half, night, BERLIN) == (181 * 2 - 1) * 3600
