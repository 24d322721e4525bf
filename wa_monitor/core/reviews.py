"""Deciding what a batch of drop posts does to the review table: pure functions over values."""

from __future__ import annotations

import os
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from typing import Any

Key = tuple[str, str]  # (project, drop_number)


@dataclass(frozen=True, slots=True)
class Post:
    """One drop number named by one WhatsApp message."""

    chat_jid: str
    message_id: str
    drop_number: str
    project: str
    sender: str
    sender_name: str
    time: datetime

    @property
    def key(self) -> Key:
        return (self.project, self.drop_number)

    @property
    def log_key(self) -> tuple[str, str, str]:
        return (self.chat_jid, self.message_id, self.drop_number)


@dataclass(frozen=True, slots=True)
class ExistingReview:
    """The columns of an existing review that a resubmission reads."""

    id: uuid.UUID
    whatsapp_message_date: datetime | None
    last_message_date: datetime | None
    user_name: str
    submitted_by: str | None
    incomplete: bool
    feedback_sent: datetime | None
    comment: str | None


@dataclass(frozen=True, slots=True)
class Event:
    """What happened to a review, for the log and the scan summary."""

    kind: str  # "new" | "resubmission"
    post: Post


@dataclass
class Plan:
    submissions: list[dict[str, Any]] = field(default_factory=list)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)


def local_date(when: datetime, zone: tzinfo) -> date:
    return when.astimezone(zone).date()


# How the comment line of a resubmission starts (reviewers' edits keep these lines).
RESUBMISSION_MARK = "🔄 Resubmitted "


def resubmission_line(post: Post, zone: tzinfo) -> str:
    local = post.time.astimezone(zone)
    return f"{RESUBMISSION_MARK}{local:%Y-%m-%d %H:%M} {local.tzname()} by {post.sender_name}"


def plan_batch(
    posts: Iterable[Post],
    existing: Mapping[Key, ExistingReview],
    zone: tzinfo,
    now: datetime,
) -> Plan:
    """The rows a batch of new posts writes.

    The result does not depend on the order the bridge stored the posts in: the review's
    message date is its earliest post, `resubmitted` is set once two distinct posts are
    known, and the submitter is the one of the latest post.
    """
    by_key: dict[Key, list[Post]] = defaultdict(list)
    for post in posts:
        by_key[post.key].append(post)
    plan = Plan()
    ids = _uuid4s(sum(1 for key in by_key if key not in existing))
    for key, group in by_key.items():
        group.sort(key=lambda p: (p.time, p.message_id))
        review = existing.get(key)
        if review is None:
            _plan_new(plan, group, zone, now, next(ids))
        else:
            _plan_resubmission(plan, review, group, zone, now)
    return plan


def _uuid4s(n: int) -> Iterator[uuid.UUID]:
    """`n` random (version 4) UUIDs, as uuid.uuid4() makes them, from one read of urandom."""
    raw = os.urandom(16 * n)
    return (uuid.UUID(bytes=raw[i : i + 16], version=4) for i in range(0, 16 * n, 16))


def _submission(post: Post, kind: str) -> dict[str, Any]:
    return {
        "chat_jid": post.chat_jid,
        "message_id": post.message_id,
        "drop_number": post.drop_number,
        "project": post.project,
        "sender": post.sender[:50],
        "sender_name": post.sender_name[:100],
        "message_time": post.time,
        "kind": kind,
    }


def _plan_new(
    plan: Plan, group: list[Post], zone: tzinfo, now: datetime, review_id: uuid.UUID
) -> None:
    first, latest = group[0], group[-1]
    lines = [resubmission_line(p, zone) for p in group[1:]]
    plan.inserts.append(
        {
            "id": review_id,
            "drop_number": first.drop_number,
            "project": first.project,
            "user_name": latest.sender_name[:100],
            "submitted_by": latest.sender[:50],
            "whatsapp_message_date": first.time,
            "last_message_date": latest.time,
            "review_date": local_date(first.time, zone),
            "resubmitted": len(group) > 1,
            "incomplete": False,
            "completed": False,
            "comment": "\n".join(lines) if lines else None,
            "created_at": now,
            "updated_at": now,
        }
    )
    for index, post in enumerate(group):
        kind = "new" if index == 0 else "resubmission"
        plan.submissions.append(_submission(post, kind))
        plan.events.append(Event(kind, post))


def _plan_resubmission(
    plan: Plan, review: ExistingReview, group: list[Post], zone: tzinfo, now: datetime
) -> None:
    earliest = group[0].time
    if review.whatsapp_message_date is not None:
        earliest = min(earliest, review.whatsapp_message_date)
    latest = group[-1]
    user_name, submitted_by = review.user_name, review.submitted_by
    incomplete, feedback_sent = review.incomplete, review.feedback_sent
    last = review.last_message_date
    if last is None or latest.time >= last:
        # A later post than any seen: the installer re-posted the drop after fixing it.
        user_name, submitted_by = latest.sender_name[:100], latest.sender[:50]
        incomplete, feedback_sent, last = False, None, latest.time
    lines = [resubmission_line(p, zone) for p in group]
    comment = "\n".join([review.comment, *lines] if review.comment else lines)
    plan.updates.append(
        {
            "_id": review.id,
            "whatsapp_message_date": earliest,
            "review_date": local_date(earliest, zone),
            "last_message_date": last,
            "user_name": user_name,
            "submitted_by": submitted_by,
            "incomplete": incomplete,
            "feedback_sent": feedback_sent,
            "resubmitted": True,
            "comment": comment,
            "updated_at": now,
        }
    )
    for post in group:
        plan.submissions.append(_submission(post, "resubmission"))
        plan.events.append(Event("resubmission", post))
