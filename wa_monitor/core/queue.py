"""The review queue: a drop's state, how long it waited in working hours, when it is overdue.

Pure functions over plain values. The database derives the same state, rank and waiting
time in generated columns (store/schema.py STATE_SQL, RANK_SQL, WAITING_SQL); these say it
in Python for code that has a row in hand, and for the tests that hold the two together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from wa_monitor.core.hours import WorkingHours

if TYPE_CHECKING:
    from wa_monitor.core.config import Project

NEW = "new"
IN_REVIEW = "in_review"
NEEDS_CORRECTION = "needs_correction"
RESUBMITTED = "resubmitted"
APPROVED = "approved"
INVALID = "invalid"
# In the queue's order.
STATES = (NEW, RESUBMITTED, IN_REVIEW, NEEDS_CORRECTION, APPROVED, INVALID)
# Waiting for a reviewer: the queue's head (rank 0), where the waiting time and the
# target count.
WAITING = frozenset({NEW, RESUBMITTED, IN_REVIEW})
# Free for "next drop": waiting and nobody holds them.
TAKEABLE = (NEW, RESUBMITTED)
RANKS = {NEW: 0, RESUBMITTED: 0, IN_REVIEW: 0, NEEDS_CORRECTION: 1, APPROVED: 2, INVALID: 3}


def review_state(
    *,
    invalid: bool,
    completed: bool,
    assigned_agent: str | None,
    feedback_sent: datetime | None,
    last_message_date: datetime | None,
) -> str:
    """The drop's state from its facts; the first that holds wins.

    invalid > approved > in review (someone holds it) > resubmitted (posted again after
    feedback) > needs correction (feedback sent) > new. A resubmission before any
    feedback leaves the drop new.
    """
    if invalid:
        return INVALID
    if completed:
        return APPROVED
    if assigned_agent is not None:
        return IN_REVIEW
    if _resubmitted(feedback_sent, last_message_date):
        return RESUBMITTED
    if feedback_sent is not None:
        return NEEDS_CORRECTION
    return NEW


def _resubmitted(feedback_sent: datetime | None, last_message_date: datetime | None) -> bool:
    return (
        feedback_sent is not None
        and last_message_date is not None
        and last_message_date > feedback_sent
    )


def state_of(row: Mapping[str, Any]) -> str:
    """`review_state` of a qa_photo_reviews row."""
    return review_state(
        invalid=bool(row["invalid"]),
        completed=bool(row["completed"]),
        assigned_agent=row["assigned_agent"],
        feedback_sent=row["feedback_sent"],
        last_message_date=row["last_message_date"],
    )


def rank_of(row: Mapping[str, Any]) -> int:
    """The queue rank of a row: 0 waits for a reviewer, 1 for the installer, 2, 3 done."""
    return RANKS[state_of(row)]


def waiting_since_of(row: Mapping[str, Any]) -> datetime:
    """What the queue waits on: the resubmission after feedback, the feedback while the
    installer corrects, else the first post."""
    if _resubmitted(row["feedback_sent"], row["last_message_date"]):
        last: datetime = row["last_message_date"]
        return last
    if row["feedback_sent"] is not None and not row["completed"]:
        sent: datetime = row["feedback_sent"]
        return sent
    first: datetime = row["whatsapp_message_date"] or row["created_at"]
    return first


def working_seconds(start: datetime, end: datetime, hours: WorkingHours, zone: tzinfo) -> float:
    """Seconds inside working hours (local to `zone`) between two instants; 0 if end <= start."""
    return hours.working_time(start, end, zone).total_seconds()


def overdue_cutoff(
    now: datetime, target: timedelta, hours: WorkingHours, zone: tzinfo
) -> datetime | None:
    """The instant a drop must have waited since, before it is overdue at `now`.

    A drop waiting since before it (`waiting_since < cutoff`) waited more than `target`
    of working time; one since it or later did not. None: nothing can be overdue (the
    hours are `never`).
    """
    return hours.walk_back(now, target, zone)


@dataclass(frozen=True)
class Clock:
    """A project's review clock: its working hours and how long a drop may wait."""

    hours: WorkingHours
    target: timedelta | None = None


@dataclass(frozen=True)
class Clocks:
    """Every project's clock, and the one of drops of no (or an unknown) project.

    Frozen and hashable: part of the keys the summary is cached under.
    """

    default: Clock = field(default_factory=lambda: Clock(WorkingHours()))
    projects: tuple[tuple[str, Clock], ...] = ()

    def of(self, project: str | None) -> Clock:
        for name, clock in self.projects:
            if name == project:
                return clock
        return self.default

    def cutoffs(self, now: datetime, zone: tzinfo) -> dict[str, datetime]:
        """Per project with a target, the instant before which a waiting drop is overdue."""
        found: dict[str, datetime] = {}
        for name, clock in self.projects:
            if clock.target is None:
                continue
            cutoff = overdue_cutoff(now, clock.target, clock.hours, zone)
            if cutoff is not None:
                found[name] = cutoff
        return found


def clocks_for(projects: Iterable[Project], default_hours: WorkingHours) -> Clocks:
    """The clocks of the projects file's projects (`working_hours` None: `default_hours`)."""
    return Clocks(
        default=Clock(default_hours),
        projects=tuple(
            (p.name, Clock(p.working_hours or default_hours, p.review_target)) for p in projects
        ),
    )


def queue_figures(
    row: Mapping[str, Any],
    clocks: Clocks,
    cutoffs: Mapping[str, datetime],
    now: datetime,
    zone: tzinfo,
) -> dict[str, Any]:
    """What the list shows of a drop's wait: working hours waited (0.1 h), overdue.

    Only a drop waiting for a reviewer has them; `cutoffs` are Clocks.cutoffs at `now`,
    so the badge agrees with the overdue filter.
    """
    if row["review_state"] not in WAITING:
        return {"waitingWorkingHours": None, "overdue": False}
    since: datetime = row["waiting_since"]
    clock = clocks.of(row["project"])
    seconds = working_seconds(since, now, clock.hours, zone)
    cutoff = cutoffs.get(row["project"] or "")
    return {
        "waitingWorkingHours": round(seconds / 3600, 1),
        "overdue": cutoff is not None and since < cutoff,
    }
