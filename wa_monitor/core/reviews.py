"""Deciding what a batch of drop posts does to the review table: pure functions over values."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections import defaultdict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
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
    # A photo (or other media) whose caption names the drop: it is a post only while the
    # drop is unknown, else one of the photos of its round (see `plan_batch`).
    media: bool = False

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
    invalid: Collection[Key] = frozenset(),
) -> Plan:
    """The rows a batch of new posts writes.

    The result does not depend on the order the bridge stored the posts in: the review's
    message date is its earliest post, `resubmitted` is set once two distinct posts are
    known, and the submitter is the one of the latest post.

    A photo whose caption names the drop (bridges that keep captions) is not a post of a
    drop already known, by a review or by a text post of the batch: it is one of that
    round's photos, and the photo linker links it by its caption. A drop known only from
    captions is recorded from its earliest captioned photo, the rest being its photos; so
    a burst of twelve captioned photos is one submission, not eleven resubmissions.

    A new review of a key in `invalid` (its number is not on its project's list) is
    recorded as invalid: kept and shown, never counted as a drop.
    """
    by_key: dict[Key, list[Post]] = defaultdict(list)
    for post in posts:
        by_key[post.key].append(post)
    plan = Plan()
    ids = _uuid4s(sum(1 for key in by_key if key not in existing))
    for key, posted in by_key.items():
        review = existing.get(key)
        group = _posts_of(posted, known=review is not None)
        if not group:
            continue
        if review is None:
            _plan_new(plan, group, zone, now, next(ids), invalid=key in invalid)
        else:
            _plan_resubmission(plan, review, group, zone, now)
    return plan


def _posts_of(posted: list[Post], *, known: bool) -> list[Post]:
    """The posts, oldest first, that count as submissions of one drop (see `plan_batch`)."""
    posted.sort(key=lambda p: (p.time, p.message_id))
    texts = [p for p in posted if not p.media]
    if texts or known:
        return texts
    return posted[:1]


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
    plan: Plan,
    group: list[Post],
    zone: tzinfo,
    now: datetime,
    review_id: uuid.UUID,
    *,
    invalid: bool = False,
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
            "invalid": invalid,
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
        # The feedback's time stays: a post after it is what makes the drop resubmitted
        # (the review state, derived from the row) rather than new.
        user_name, submitted_by = latest.sender_name[:100], latest.sender[:50]
        incomplete, last = False, latest.time
    # A review without a post (a drop entered by hand): its first post is its submission.
    first = review.last_message_date is None
    again = group[1:] if first else group
    lines = [resubmission_line(p, zone) for p in again]
    comment = "\n".join([review.comment, *lines] if review.comment else lines) or None
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
            "resubmitted": bool(again),
            "comment": comment,
            "updated_at": now,
        }
    )
    for index, post in enumerate(group):
        kind = "new" if first and index == 0 else "resubmission"
        plan.submissions.append(_submission(post, kind))
        plan.events.append(Event(kind, post))


# -- replies to numbers that are not on the project's list -------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """A message to a group about one of its posts, queued with the batch that records it."""

    request_key: str  # one per post: the outbox's unique key makes it exactly once
    review_id: uuid.UUID
    drop_number: str
    project: str
    recipient: str
    message: str


def invalid_reply_text(drops: list[str], project: str) -> str:
    """What the group is told about a post whose numbers are not on the project's list."""
    if len(drops) == 1:
        return f"❌ {drops[0]} is not a drop number of the {project} plan: check it and post again"
    return (
        f"❌ {', '.join(drops)} are not drop numbers of the {project} plan: check them and "
        "post again"
    )


def reply_key(chat_jid: str, message_id: str) -> str:
    """The outbox request key of the reply to one post (at most the column's 100 chars)."""
    key = f"invalid:{chat_jid}:{message_id}"
    if len(key) <= 100:
        return key
    return f"invalid:{hashlib.sha256(key.encode()).hexdigest()}"


# Posts older than this get no reply: a first scan of a group's history (or one after a
# long stop) must not answer weeks of old posts at once.
REPLY_WINDOW = timedelta(hours=24)


def invalid_replies(
    plan: Plan,
    existing: Mapping[Key, ExistingReview],
    invalid: Collection[Key],
    auto_reply: Collection[str],
    now: datetime,
) -> list[Reply]:
    """One reply per post of the plan that names a number off its project's list, for the
    projects in `auto_reply` (their `auto_reply_invalid`), posted within REPLY_WINDOW."""
    oldest = now - REPLY_WINDOW
    ids = {key: review.id for key, review in existing.items()}
    ids.update({(i["project"], i["drop_number"]): i["id"] for i in plan.inserts})
    by_post: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for sub in plan.submissions:
        key = (sub["project"], sub["drop_number"])
        recent = sub["message_time"] >= oldest
        if key in invalid and sub["project"] in auto_reply and key in ids and recent:
            by_post[(sub["chat_jid"], sub["message_id"])].append(sub)
    replies = []
    for (chat_jid, message_id), subs in by_post.items():
        first = subs[0]
        drops = list(dict.fromkeys(s["drop_number"] for s in subs))
        replies.append(
            Reply(
                request_key=reply_key(chat_jid, message_id),
                review_id=ids[(first["project"], first["drop_number"])],
                drop_number=first["drop_number"],
                project=first["project"],
                recipient=chat_jid,
                message=invalid_reply_text(drops, first["project"]),
            )
        )
    return replies
