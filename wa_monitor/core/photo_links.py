"""Linking photos to drops and their rounds: one pure function over plain values.

The rules, per group (a project's WhatsApp group):

1. A photo can only belong to a drop that the same person (after LID resolution)
   posted in the same group.
2. A caption naming such a drop links the photo to it, whatever the times.
3. Otherwise the photo belongs to the latest drop post by the same person at or before
   it, when it came at most `after` (2 h) later; failing that, to the first drop post
   by the same person after it, when that post came at most `before` (30 min) later.
4. Every post of a drop in a group opens a round (0: first submission, 1: resubmission
   1, …, in posting order); a photo belongs to the round of the post it links to.
5. A reviewer's latest decision on a photo (moved, detached) wins over the rules.

Every order is by (time, message key), so the result does not depend on the order in
which rows were stored or read; a row read twice counts once.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from wa_monitor.core.detect import DEFAULT_DROP_PATTERN, DropPattern, compile_pattern, normalise

DEFAULT_PHOTOS_AFTER = timedelta(hours=2)
DEFAULT_PHOTOS_BEFORE = timedelta(minutes=30)

_DURATION = re.compile(r"\s*(-?\d{1,7})\s*([hms])\s*", re.ASCII)
_UNITS = {"h": 3600, "m": 60, "s": 1}


def parse_duration(text: str) -> timedelta:
    """`2h`, `30m`, `90s` as a timedelta; raises ValueError saying what to write."""
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"`{text}` is not a duration; write e.g. 2h, 30m or 90s")
    seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"`{text}` is not a positive duration; write e.g. 2h, 30m or 90s")
    return timedelta(seconds=seconds)


@dataclass(frozen=True, slots=True)
class Photo:
    """One media message of a group (image, video, document, audio); the caller picks
    which media types it links."""

    chat: str
    key: str  # the message's id in the bridge store
    sender: str  # the sender's phone number, LIDs already resolved
    posted: datetime
    caption: str | None = None
    media_type: str = "image"

    def __post_init__(self) -> None:
        _aware(self.posted)


@dataclass(frozen=True, slots=True)
class DropPost:
    """One drop number named by one message of a group."""

    chat: str
    key: str
    sender: str
    posted: datetime
    drop_number: str

    def __post_init__(self) -> None:
        _aware(self.posted)


@dataclass(frozen=True, slots=True)
class PhotoWindows:
    """How far a photo may be from the drop post it belongs to."""

    after: timedelta = DEFAULT_PHOTOS_AFTER
    before: timedelta = DEFAULT_PHOTOS_BEFORE

    def __post_init__(self) -> None:
        # A zero window would silently link nothing by time; refuse it where it is made.
        if self.after <= timedelta(0) or self.before <= timedelta(0):
            raise ValueError("photo windows must be positive durations")


_DEFAULT_PATTERN = compile_pattern(DEFAULT_DROP_PATTERN)


@dataclass(frozen=True, slots=True)
class LinkRules:
    """A group's rules: its project's drop pattern (for captions) and windows."""

    pattern: DropPattern = field(default_factory=lambda: _DEFAULT_PATTERN)
    windows: PhotoWindows = field(default_factory=PhotoWindows)


@dataclass(frozen=True, slots=True)
class Moved:
    """A reviewer moved a photo to a drop, and to a round of it when `round` is given."""

    chat: str
    photo_key: str
    at: datetime
    drop_number: str
    round: int | None = None
    seq: int = 0  # the audit entry's id: orders decisions made in the same instant

    def __post_init__(self) -> None:
        if self.round is not None and self.round < 0:
            raise ValueError("a round is 0 (the first submission) or more")


@dataclass(frozen=True, slots=True)
class Detached:
    """A reviewer detached a photo from any drop."""

    chat: str
    photo_key: str
    at: datetime
    seq: int = 0


Decision = Moved | Detached


@dataclass(frozen=True, slots=True)
class PhotoLink:
    """Where one photo belongs; `drop_number` None when it belongs to no drop.

    `reason`: caption, after (posted after the drop post), before (posted before it),
    moved, detached, or none (no rule linked it).
    """

    chat: str
    photo_key: str
    drop_number: str | None
    round: int | None
    post_key: str | None
    reason: str


def link_photos(
    photos: Iterable[Photo],
    posts: Iterable[DropPost],
    *,
    rules: Mapping[str, LinkRules] | None = None,
    default: LinkRules | None = None,
    decisions: Iterable[Decision] = (),
) -> tuple[PhotoLink, ...]:
    """Link every photo to a drop and round of its group.

    Args:
        photos: the groups' media messages; a row given twice counts once.
        posts: the groups' drop posts (one per message and drop number).
        rules: each group's rules by chat JID; a group not named uses `default`.
        default: the rules of groups not in `rules` (the default pattern, 2 h, 30 min).
        decisions: reviewers' decisions, in any order; the latest (time, then `seq`) on
            a photo wins, whatever the rules say.

    Returns:
        One PhotoLink per distinct photo, ordered by group, time and message key.
    """
    fallback = default if default is not None else LinkRules()
    group_rules = rules or {}
    by_photo = _dedupe_photos(photos)
    posts_by_chat: dict[str, set[DropPost]] = defaultdict(set)
    for post in posts:
        posts_by_chat[post.chat].add(post)
    photos_by_chat: dict[str, list[Photo]] = defaultdict(list)
    for photo in by_photo.values():
        photos_by_chat[photo.chat].append(photo)
    latest = _latest_decisions(decisions)
    links: list[PhotoLink] = []
    for chat in sorted(photos_by_chat):
        group = _Group(sorted(posts_by_chat.get(chat, ()), key=_post_order))
        chat_rules = group_rules.get(chat, fallback)
        for photo in sorted(photos_by_chat[chat], key=_order):
            decision = latest.get((chat, photo.key))
            if decision is not None:
                links.append(group.decided(photo, decision))
            else:
                links.append(group.link(photo, chat_rules))
    return tuple(links)


def _order(photo: Photo) -> tuple[datetime, str]:
    return (photo.posted, photo.key)


def _post_order(post: DropPost) -> tuple[datetime, str, str]:
    return (post.posted, post.key, post.drop_number)


def _dedupe_photos(photos: Iterable[Photo]) -> dict[tuple[str, str], Photo]:
    # Two different rows under one key (a foreign-made store) must not make the result
    # depend on which came last: the smallest by its fields is kept.
    kept: dict[tuple[str, str], Photo] = {}
    for photo in photos:
        ident = (photo.chat, photo.key)
        other = kept.get(ident)
        if other is None or _photo_fields(photo) < _photo_fields(other):
            kept[ident] = photo
    return kept


def _photo_fields(photo: Photo) -> tuple[datetime, str, str, str]:
    return (photo.posted, photo.sender, photo.caption or "", photo.media_type)


def _latest_decisions(decisions: Iterable[Decision]) -> dict[tuple[str, str], Decision]:
    latest: dict[tuple[str, str], Decision] = {}
    for decision in decisions:
        ident = (decision.chat, decision.photo_key)
        other = latest.get(ident)
        if other is None or _decision_order(decision) > _decision_order(other):
            latest[ident] = decision
    return latest


def _decision_order(decision: Decision) -> tuple[datetime, int, str, int, str]:
    if isinstance(decision, Moved):
        round_ = -1 if decision.round is None else decision.round
        return (decision.at, decision.seq, "moved", round_, decision.drop_number)
    return (decision.at, decision.seq, "detached", 0, "")


class _Group:
    """One group's drop posts, ordered, with each post's round."""

    def __init__(self, posts: list[DropPost]) -> None:
        self.rounds: dict[tuple[str, str], int] = {}
        self.by_drop: dict[str, list[DropPost]] = defaultdict(list)
        self.by_sender: dict[str, list[DropPost]] = defaultdict(list)
        for post in posts:
            drop = _canonical(post.drop_number)
            same_drop = self.by_drop[drop]
            # A message naming the drop twice is one post, so one round.
            if not any(p.key == post.key for p in same_drop):
                self.rounds[(post.key, drop)] = len({p.key for p in same_drop})
                same_drop.append(post)
            self.by_sender[post.sender].append(post)
        self.sender_times: dict[str, list[tuple[datetime, str, str]]] = {
            sender: [_post_order(p) for p in ps] for sender, ps in self.by_sender.items()
        }

    def round_of(self, post: DropPost) -> int:
        drop = _canonical(post.drop_number)
        first = next(p for p in self.by_drop[drop] if p.key == post.key)
        return self.rounds[(first.key, drop)]

    def _linked(self, photo: Photo, post: DropPost, reason: str) -> PhotoLink:
        return PhotoLink(
            photo.chat,
            photo.key,
            _canonical(post.drop_number),
            self.round_of(post),
            post.key,
            reason,
        )

    def link(self, photo: Photo, rules: LinkRules) -> PhotoLink:
        own = self.by_sender.get(photo.sender, [])
        for drop in rules.pattern.find(photo.caption):
            named = [p for p in own if _canonical(p.drop_number) == drop]
            if named:
                return self._linked(photo, _nearest(named, photo), "caption")
        times = self.sender_times.get(photo.sender, [])
        # Posts at or before the photo: a photo of the same second as its post (the
        # bridge's times are by the second) counts as after it.
        split = bisect_right(times, (photo.posted, "\U0010ffff", "\U0010ffff"))
        if split > 0:
            previous = own[split - 1]
            if photo.posted - previous.posted <= rules.windows.after:
                return self._linked(photo, previous, "after")
        if split < len(own):
            following = own[split]
            if following.posted - photo.posted <= rules.windows.before:
                return self._linked(photo, following, "before")
        return PhotoLink(photo.chat, photo.key, None, None, None, "none")

    def decided(self, photo: Photo, decision: Decision) -> PhotoLink:
        if isinstance(decision, Detached):
            return PhotoLink(photo.chat, photo.key, None, None, None, "detached")
        drop = _canonical(decision.drop_number)
        opened = self.by_drop.get(drop, [])
        if decision.round is not None:
            post = opened[decision.round] if 0 <= decision.round < len(opened) else None
            # A round that the group's posts do not (or no longer) show is kept as
            # decided: the reviewer's word stands, without a post to point at.
            return PhotoLink(
                photo.chat,
                photo.key,
                drop,
                decision.round,
                post.key if post else None,
                "moved",
            )
        if not opened:
            return PhotoLink(photo.chat, photo.key, drop, None, None, "moved")
        post = _nearest(opened, photo)
        return PhotoLink(photo.chat, photo.key, drop, self.round_of(post), post.key, "moved")


def _nearest(posts: list[DropPost], photo: Photo) -> DropPost:
    """The latest of `posts` (ordered) at or before the photo, else the first after it."""
    before = [p for p in posts if p.posted <= photo.posted]
    return before[-1] if before else posts[0]


def _aware(moment: datetime) -> None:
    # Naive and aware times cannot be compared; a naive one would fail far from its source.
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"posting time {moment.isoformat()} has no time zone")


def _canonical(drop: str) -> str:
    return normalise(drop) or drop
