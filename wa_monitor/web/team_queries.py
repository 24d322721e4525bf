"""The team's figures: per installer and per reviewer, by project and ISO week.

Three reads per side over the period's rows (the drops, their posts, their feedback and
edits), then one pass in Python: no query per drop. Weeks are ISO weeks of the business
zone. Invalid drops (numbers off the project's list) are never counted.

An installer's figures come from the drops first posted in the period: a correction
round is a sent feedback followed by a post of the drop before the next feedback; the
time to resubmit runs from that feedback to that post. A first-time pass is an approved
drop without a correction round. Feedback counted on a drop without outbox entries (a
history replayed from before the outbox) gives rounds from its resubmissions, no times.

A reviewer's figures come from the decisions taken in the period: a feedback requested,
or the edit that approved the drop. A review runs from the first action on the drop (taking
it as the next drop, an edit, a photo moved…) after its latest post, the previous decision
or its release, to the decision; a decision without an earlier action took no time that
the history shows. An admin's assignment is not an action on the drop.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from statistics import fmean
from typing import Any

import sqlalchemy as sa

from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import (
    drop_submissions,
    feedback_outbox,
    qa_photo_reviews,
    review_edits,
)
from wa_monitor.web.queries import local_day_bounds

R, S, F, E = qa_photo_reviews, drop_submissions, feedback_outbox, review_edits
MAX_WEEKS = 52
# Who writes history without being a reviewer: the feedback sender without a requester.
_NOT_PEOPLE = frozenset({"system", "monitor"})


@dataclass(frozen=True)
class Period:
    """The local days [start, end]: whole ISO weeks back from the week of `end`."""

    start: date  # a Monday
    end: date
    weeks: tuple[str, ...]  # "2026-W45", oldest first


def period(end: date, weeks: int) -> Period:
    """The `weeks` ISO weeks ending with the one `end` falls in (cut at `end`)."""
    monday = end - timedelta(days=end.weekday())
    start = monday - timedelta(weeks=weeks - 1)
    labels = tuple(week_label(start + timedelta(weeks=i)) for i in range(weeks))
    return Period(start, end, labels)


def week_label(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class InstallerDrop:
    """What one drop says of its installer."""

    project: str | None
    week: str
    name: str
    phone: str | None
    approved: bool
    reviewed: bool  # approved, or feedback was sent
    rounds: int
    hours_to_resubmit: tuple[float, ...]


@dataclass(frozen=True)
class Decision:
    """One review: a feedback requested or an approval, and how long it took."""

    project: str | None
    week: str
    reviewer: str
    drop_id: uuid.UUID
    kind: str  # "feedback" | "approval"
    minutes: float


@dataclass(frozen=True)
class TeamFigures:
    period: Period
    drops: list[InstallerDrop] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)


def team_figures(
    store: ReviewStore, project: str | None, when: Period, zone: tzinfo
) -> TeamFigures:
    """The period's installer drops and review decisions (see the module's docstring)."""
    lo = local_day_bounds(when.start, zone)[0]
    hi = local_day_bounds(when.end, zone)[1]
    valid: list[sa.ColumnElement[bool]] = [R.c.invalid.is_(False)]
    if project is not None:
        valid.append(R.c.project == project)
    with store.read() as conn:
        drops = _installer_drops(conn, valid, lo, hi, zone)
        decisions = _decisions(conn, valid, lo, hi, zone)
    return TeamFigures(when, drops, decisions)


def _installer_drops(
    conn: sa.Connection,
    valid: list[sa.ColumnElement[bool]],
    lo: datetime,
    hi: datetime,
    zone: tzinfo,
) -> list[InstallerDrop]:
    posted = [*valid, R.c.whatsapp_message_date >= lo, R.c.whatsapp_message_date < hi]
    reviews = conn.execute(
        sa.select(
            R.c.id,
            R.c.project,
            R.c.user_name,
            R.c.submitted_by,
            R.c.whatsapp_message_date,
            R.c.completed,
            R.c.feedback_count,
        ).where(*posted)
    ).all()
    posts: dict[uuid.UUID, list[datetime]] = defaultdict(list)
    resubmissions: dict[uuid.UUID, int] = defaultdict(int)
    on_review = sa.and_(S.c.project == R.c.project, S.c.drop_number == R.c.drop_number)
    for review_id, at, kind in conn.execute(
        sa.select(R.c.id, S.c.message_time, S.c.kind)
        .select_from(S.join(R, on_review))
        .where(*posted)
    ).all():
        posts[review_id].append(at)
        resubmissions[review_id] += kind == "resubmission"
    sent: dict[uuid.UUID, list[datetime]] = defaultdict(list)
    for review_id, at in conn.execute(
        sa.select(F.c.review_id, F.c.sent_at)
        .select_from(F.join(R, R.c.id == F.c.review_id))
        .where(*posted, F.c.status == "sent", F.c.sent_at.is_not(None))
    ).all():
        sent[review_id].append(at)
    found = []
    for r in reviews:
        delays = resubmit_delays(sent.get(r.id, []), posts.get(r.id, []))
        rounds = len(delays)
        if not sent.get(r.id) and r.feedback_count:
            # Feedback from before the outbox (a replayed history) says how many were
            # sent, not when: the rounds are the resubmissions it can account for.
            rounds = min(int(r.feedback_count), resubmissions[r.id])
        found.append(
            InstallerDrop(
                project=r.project,
                week=week_label(r.whatsapp_message_date.astimezone(zone).date()),
                name=r.user_name,
                phone=r.submitted_by,
                approved=bool(r.completed),
                reviewed=bool(r.completed) or bool(sent.get(r.id)) or bool(r.feedback_count),
                rounds=rounds,
                hours_to_resubmit=tuple(d.total_seconds() / 3600 for d in delays),
            )
        )
    return found


def resubmit_delays(feedback: Iterable[datetime], posts: Iterable[datetime]) -> list[timedelta]:
    """Per correction round, from the feedback to the first post after it (before the next
    feedback): a feedback nobody answered with a post is no round."""
    sent, posted = sorted(feedback), sorted(posts)
    delays = []
    for i, at in enumerate(sent):
        until = sent[i + 1] if i + 1 < len(sent) else None
        answer = next((p for p in posted if p > at and (until is None or p <= until)), None)
        if answer is not None:
            delays.append(answer - at)
    return delays


def _decisions(
    conn: sa.Connection,
    valid: list[sa.ColumnElement[bool]],
    lo: datetime,
    hi: datetime,
    zone: tzinfo,
) -> list[Decision]:
    # The drops with history in the period; their whole history says when reviews began.
    active = sa.union(
        sa.select(E.c.review_id).where(E.c.at >= lo, E.c.at < hi),
        sa.select(F.c.review_id).where(F.c.created_at >= lo, F.c.created_at < hi),
    ).subquery()
    chosen = [*valid, R.c.id.in_(sa.select(active.c.review_id))]
    projects: dict[uuid.UUID, str | None] = {
        review_id: project
        for review_id, project in conn.execute(sa.select(R.c.id, R.c.project).where(*chosen))
    }
    timelines: dict[uuid.UUID, list[TimelineEvent]] = defaultdict(list)
    on_review = sa.and_(S.c.project == R.c.project, S.c.drop_number == R.c.drop_number)
    for review_id, at in conn.execute(
        sa.select(R.c.id, S.c.message_time).select_from(S.join(R, on_review)).where(*chosen)
    ).all():
        timelines[review_id].append(TimelineEvent(at, 0, "post", None))
    for review_id, actor, action, changes, at in conn.execute(
        sa.select(E.c.review_id, E.c.actor, E.c.action, E.c.changes, E.c.at)
        .select_from(E.join(R, R.c.id == E.c.review_id))
        .where(*chosen)
    ).all():
        if actor in _NOT_PEOPLE or action.startswith("feedback") or action == "assign":
            # The sender's records of a feedback already counted as requested; an admin
            # handing the drop to someone is no work on it.
            continue
        kind = "approval" if _approves(action, changes) else "action"
        if action == "release":
            kind = "release"
        timelines[review_id].append(TimelineEvent(at, 1, kind, actor))
    for review_id, actor, at in conn.execute(
        sa.select(F.c.review_id, F.c.requested_by, F.c.created_at)
        .select_from(F.join(R, R.c.id == F.c.review_id))
        .where(*chosen, F.c.requested_by.is_not(None))
    ).all():
        timelines[review_id].append(TimelineEvent(at, 2, "feedback", actor))
    found = []
    for review_id, events in timelines.items():
        for at, kind, actor, took in review_times(events):
            if lo <= at < hi:
                found.append(
                    Decision(
                        project=projects.get(review_id),
                        week=week_label(at.astimezone(zone).date()),
                        reviewer=actor,
                        drop_id=review_id,
                        kind=kind,
                        minutes=took.total_seconds() / 60,
                    )
                )
    return found


@dataclass(frozen=True, order=True)
class TimelineEvent:
    """One moment of a drop's history, as review_times reads it."""

    at: datetime
    order: int  # at the same instant: the post, then actions, then the feedback
    kind: str  # "post" | "action" | "release" | "approval" | "feedback"
    actor: str | None


def review_times(events: Iterable[TimelineEvent]) -> list[tuple[datetime, str, str, timedelta]]:
    """Each decision of a drop's history: when, which, by whom, and how long it took."""
    decided: list[tuple[datetime, str, str, timedelta]] = []
    began: datetime | None = None  # the first action since the latest post or decision
    since_decision = True  # nothing happened since the last feedback (a resend)
    last_kind = ""
    for event in sorted(events):
        if event.kind == "post":
            began, since_decision, last_kind = None, True, "post"
            continue
        if event.kind == "action":
            began = began or event.at
            since_decision = False
            continue
        if event.kind == "release":
            began = None  # given back undone: the review starts with whoever takes it next
            continue
        if event.kind == "feedback" and last_kind == "feedback" and since_decision:
            continue  # the same feedback sent again: one review
        start = began or event.at
        decided.append((event.at, event.kind, str(event.actor), event.at - start))
        began, since_decision, last_kind = None, True, event.kind
    return decided


def _approves(action: str, changes: Any) -> bool:
    """An edit that made the drop completed (plan_edit records `completed: [old, new]`)."""
    if action != "edit" or not isinstance(changes, Mapping):
        return False
    completed = changes.get("completed")
    return isinstance(completed, list) and len(completed) == 2 and completed[1] is True


# -- the figures, grouped -----------------------------------------------------------------


def _rate(part: int, whole: int) -> float | None:
    return round(100 * part / whole, 1) if whole else None


def _mean(values: list[float], digits: int) -> float | None:
    return round(fmean(values), digits) if values else None


def _grouped(items: Iterable[Any], key: Callable[[Any], Hashable]) -> dict[Any, list[Any]]:
    groups: dict[Any, list[Any]] = defaultdict(list)
    for item in items:
        groups[key(item)].append(item)
    return groups


def _order(key: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((k is None, k or "") for k in key)


def installer_rows(drops: Iterable[InstallerDrop], *, by_week: bool) -> list[dict[str, Any]]:
    """Per project, installer (name and phone) and, with `by_week`, week."""

    def key(d: InstallerDrop) -> tuple[Any, ...]:
        return (d.project, d.week if by_week else None, d.name, d.phone)

    rows = []
    for (project, week, name, phone), group in sorted(
        _grouped(drops, key).items(), key=lambda kv: _order(kv[0])
    ):
        reviewed = sum(1 for d in group if d.reviewed)
        first_pass = sum(1 for d in group if d.approved and d.rounds == 0)
        rounds = sum(d.rounds for d in group)
        rows.append(
            {
                "project": project,
                "week": week,
                "userName": name,
                "phone": phone,
                "drops": len(group),
                "reviewed": reviewed,
                "approved": sum(1 for d in group if d.approved),
                "firstTimePass": first_pass,
                "firstTimePassRate": _rate(first_pass, reviewed),
                "correctionRounds": rounds,
                "averageCorrectionRounds": round(rounds / reviewed, 2) if reviewed else None,
                "averageHoursToResubmit": _mean([h for d in group for h in d.hours_to_resubmit], 2),
            }
        )
    return rows


def reviewer_rows(decisions: Iterable[Decision], *, by_week: bool) -> list[dict[str, Any]]:
    """Per project, reviewer and, with `by_week`, week."""

    def key(d: Decision) -> tuple[Any, ...]:
        return (d.project, d.week if by_week else None, d.reviewer)

    rows = []
    for (project, week, reviewer), group in sorted(
        _grouped(decisions, key).items(), key=lambda kv: _order(kv[0])
    ):
        rows.append(
            {
                "project": project,
                "week": week,
                "reviewer": reviewer,
                "dropsReviewed": len({d.drop_id for d in group}),
                "reviews": len(group),
                "feedbackSent": sum(1 for d in group if d.kind == "feedback"),
                "approvals": sum(1 for d in group if d.kind == "approval"),
                "averageMinutesPerReview": _mean([d.minutes for d in group], 1),
            }
        )
    return rows


def drops_by_week(figures: TeamFigures) -> list[dict[str, Any]]:
    """Drops first posted per project and week, every week of the period (0 when none)."""
    counts = _grouped(figures.drops, lambda d: (d.project, d.week))
    projects = sorted({d.project for d in figures.drops}, key=lambda p: (p is None, p or ""))
    return [
        {"project": p, "week": w, "drops": len(counts.get((p, w), []))}
        for p in projects
        for w in figures.period.weeks
    ]
