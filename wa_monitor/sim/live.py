"""`LiveSimulator`: one bridge event at a time, for the demo and live tests."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

from wa_monitor.sim.compose import Composer, TruthBuilder, check_rate, media_row, text_row
from wa_monitor.sim.media import MediaMaker
from wa_monitor.sim.timestamps import Clock, parse_bridge_timestamp
from wa_monitor.sim.values import (
    DEFAULT_DROP_FORMATS,
    DEMO_GROUPS,
    DropFormat,
    Member,
    MessageRow,
    SimGroup,
    SimTruth,
)
from wa_monitor.sim.vocabulary import chatter_text, pick
from wa_monitor.sim.writer import StoreWriter

EventKind = Literal["chatter", "drop", "resubmission", "photo", "redelivery", "history_sync"]


@dataclass(frozen=True)
class SimEvent:
    """One message a LiveSimulator step wrote."""

    kind: EventKind
    group: SimGroup
    message_id: str
    rowid: int
    sender: str
    """The `sender` text as written (user part live, full JID from history sync)."""
    member: Member
    content: str | None
    timestamp: datetime
    drop_numbers: tuple[str, ...]
    """Normalised drop numbers the message names (for a re-delivery: the original's)."""
    media_type: str

    @property
    def lid_sender(self) -> bool:
        """The sender is addressed by LID, not by phone number."""
        return self.member.lid is not None and self.sender.split("@", 1)[0] == self.member.lid


class SteppingClock:
    """A deterministic clock: `start`, then `step` later on every call."""

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=20)) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self._now = start
        self._step = step

    def __call__(self) -> datetime:
        now = self._now
        self._now += self._step
        return now


@dataclass
class _Burst:
    """Photos still to come from one person after (or before) a drop post."""

    g: int
    person: int
    left: int
    drop: str | None = None
    round: int | None = None
    steps: list[int] = field(default_factory=list)
    gaps: list[int] = field(default_factory=list)
    start: int | None = None
    caption: str | None = None
    post: tuple[str, tuple[str, ...], bool] | None = None
    """A drop post (text, drops, resubmission) written once the photos are out."""


class LiveSimulator:
    """Writes one realistic bridge event per `step()`, for the demo and live tests.

    A drop post is followed by a few photos of the same sender and group on the next
    steps; a resubmission repeats a drop posted earlier in the same group; re-deliveries
    store a recent message again; history-sync events store an old message late.
    Content is decided by the seeded RNG; timestamps come from `clock` (default: now).

    With `media` (a MediaMaker), every media row gets a real file: a drop post comes
    with a burst of photos of its steps (8-15 unless `photos_per_drop` says otherwise;
    sometimes posted before the post), stored within seconds of each other, so some
    share a second and a file name; resubmissions post new photos.
    """

    def __init__(
        self,
        writer: StoreWriter,
        groups: Sequence[SimGroup] = DEMO_GROUPS,
        *,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        drop_rate: float = 0.15,
        resubmit_share: float = 0.2,
        redelivery_rate: float = 0.03,
        history_sync_rate: float = 0.02,
        lid_share: float = 0.3,
        drop_formats: Sequence[DropFormat] = DEFAULT_DROP_FORMATS,
        photos_per_drop: tuple[int, int] | None = None,
        media_rate: float = 0.05,
        media: MediaMaker | None = None,
    ) -> None:
        for name, value in (
            ("drop_rate", drop_rate),
            ("resubmit_share", resubmit_share),
            ("redelivery_rate", redelivery_rate),
            ("history_sync_rate", history_sync_rate),
            ("lid_share", lid_share),
            ("media_rate", media_rate),
        ):
            check_rate(name, value)
        if redelivery_rate + history_sync_rate + drop_rate + media_rate > 1.0:
            raise ValueError("the event rates must add up to at most 1")
        self.writer = writer
        self._rng = random.Random(seed)
        self._composer = Composer(
            self._rng,
            groups,
            lid_share=lid_share,
            drop_formats=drop_formats,
            resubmit_share=resubmit_share,
        )
        self._clock_fn = clock or (lambda: datetime.now(UTC))
        self._clock = Clock(writer.zone)
        self._truth = TruthBuilder(self._clock)
        self._rates = (redelivery_rate, history_sync_rate, drop_rate, media_rate)
        self._photos = photos_per_drop or ((8, 15) if media is not None else (2, 5))
        self.media = media
        self._burst: _Burst | None = None
        self._recent: deque[tuple[MessageRow, int, int, tuple[str, ...]]] = deque(maxlen=50)
        self._last_epoch = 0
        self._messages = self._media = self._redeliveries = self._history = 0
        self._first: datetime | None = None
        self._latest: datetime | None = None
        for group in groups:
            writer.add_chat(group.jid, group.name)
        writer.add_members(self._composer.people.members[1:])

    @property
    def members(self) -> tuple[Member, ...]:
        """Everyone who may post; the first is the bridge's own account."""
        return tuple(self._composer.people.members)

    def run(self, steps: int) -> list[SimEvent]:
        return [self.step() for _ in range(steps)]

    def truth(self) -> SimTruth:
        """The truth of everything written so far."""
        return self._truth.build(
            messages=self._messages,
            media_rows=self._media,
            redeliveries=self._redeliveries,
            history_synced=self._history,
            first_time=self._first,
            last_time=self._latest,
            members=self.members,
            photos=self.media.truths if self.media is not None else (),
        )

    def step(self) -> SimEvent:
        """Write one event and describe it."""
        rng = self._rng
        composer = self._composer
        now = self._clock_fn()
        epoch = max(int(now.timestamp()), self._last_epoch)
        self._last_epoch = epoch
        nanos = rng.randrange(1, 10**9) if rng.random() < 0.03 else 0

        burst = self._burst
        if burst is not None:
            if burst.left == 0 and burst.post is not None:
                self._burst = None
                text, drops, resub = burst.post
                return self._post(burst.g, burst.person, text, drops, resub, epoch, nanos)
            burst.left -= 1
            if burst.left == 0 and burst.post is None:
                self._burst = None
            return self._media_event(burst.g, burst.person, epoch, nanos, burst)

        redelivery, history, drop, media = self._rates
        r = rng.random()
        if r < redelivery and self._recent:
            return self._redeliver()
        r -= redelivery
        if r < history:
            age = rng.randint(600, 6 * 3600)
            return self._message_event(composer.pick_group(), epoch - age, nanos, history=True)
        r -= history
        if r < drop:
            return self._message_event(composer.pick_group(), epoch, nanos, drop=True)
        r -= drop
        if r < media:
            g = composer.pick_group()
            return self._media_event(g, composer.pick_talker(g), epoch, nanos)
        return self._message_event(composer.pick_group(), epoch, nanos)

    def _message_event(
        self, g: int, epoch: int, nanos: int, *, drop: bool = False, history: bool = False
    ) -> SimEvent:
        rng = self._rng
        composer = self._composer
        people = composer.people
        group = composer.groups[g]
        kind: EventKind = "chatter"
        drops: tuple[str, ...] = ()
        if drop or (history and rng.random() < 0.3):
            person, text, drops, resub = composer.drop_post(g)
            kind = "resubmission" if resub else "drop"
            if not history:
                low, high = self._photos
                photos = rng.randint(low, high)
                self._burst = _Burst(g, person, photos) if photos > 0 else None
                if self.media is not None and self._burst is not None:
                    self._plan_burst(self._burst, group.jid, text, drops, resub)
                    if self._burst.post is not None:  # the photos come first
                        return self._media_event(g, person, epoch, nanos, self._burst, first=True)
        else:
            person = composer.pick_talker(g)
            text = chatter_text(rng)
        sender = people.history[person] if history else people.live[person]
        row = text_row(
            rng, group.jid, sender, text, self._clock.text(epoch, nanos), is_from_me=person == 0
        )
        rowid = self.writer.write(row)
        if drops:
            self._truth.record(group.jid, drops, epoch, nanos, people.members[person])
        if history:
            self._history += 1
            kind = "history_sync"
        return self._record(kind, row, rowid, g, person, epoch, nanos, drops)

    def _plan_burst(
        self, burst: _Burst, jid: str, text: str, drops: tuple[str, ...], resub: bool
    ) -> None:
        media = self.media
        assert media is not None
        burst.drop = drops[0]
        burst.round = media.open_round(jid, drops[0])
        burst.steps = media.plan_steps(burst.left, resubmission=resub)
        burst.gaps = media.burst_gaps(burst.left)
        if media.rng.random() < media.shares.caption:
            burst.caption = media.rng.choice(("{d}", "{d} photos", "Photos {d}", "{d} step 1"))
            burst.caption = burst.caption.format(d=drops[0])
        if media.rng.random() < media.shares.before:
            burst.post = (text, drops, resub)

    def _post(
        self,
        g: int,
        person: int,
        text: str,
        drops: tuple[str, ...],
        resub: bool,
        epoch: int,
        nanos: int,
    ) -> SimEvent:
        """A drop post written after its photos."""
        group = self._composer.groups[g]
        row = text_row(
            self._rng,
            group.jid,
            self._composer.people.live[person],
            text,
            self._clock.text(epoch, nanos),
            is_from_me=person == 0,
        )
        rowid = self.writer.write(row)
        self._truth.record(group.jid, drops, epoch, nanos, self._composer.people.members[person])
        kind: EventKind = "resubmission" if resub else "drop"
        return self._record(kind, row, rowid, g, person, epoch, nanos, drops)

    def _media_event(
        self,
        g: int,
        person: int,
        epoch: int,
        nanos: int,
        burst: _Burst | None = None,
        *,
        first: bool = False,
    ) -> SimEvent:
        rng = self._rng
        composer = self._composer
        group = composer.groups[g]
        media = "image" if rng.random() < 0.9 else pick(rng, ("video", "document", "audio"))
        maker = self.media
        index = 0
        if maker is not None and burst is not None and burst.steps:
            # Burst photos are stored within seconds of the first: some share a second.
            index = len(burst.steps) - burst.left - (0 if first else 1)
            if first:
                burst.left -= 1
            if burst.start is None:
                burst.start = epoch
            epoch = min(epoch, burst.start + burst.gaps[index])
            nanos = 0
            media = "image" if maker.rng.random() < 0.96 else "video"
        row = media_row(
            rng,
            group.jid,
            composer.people.live[person],
            self._clock.text(epoch, nanos),
            media,
            is_from_me=person == 0,
        )
        if maker is not None:
            member = composer.people.members[person]
            posted_at = self._clock.aware(epoch, nanos)
            if burst is not None and burst.steps and media == "image":
                row = maker.photo(
                    row,
                    posted_at=posted_at,
                    sender_phone=member.phone,
                    drop=burst.drop,
                    round=burst.round,
                    step=burst.steps[index],
                    caption=burst.caption if index == 0 else None,
                )
            else:
                drop = burst.drop if burst is not None else None
                round_ = burst.round if burst is not None else None
                row = maker.other(
                    row, posted_at=posted_at, sender_phone=member.phone, drop=drop, round=round_
                )
        rowid = self.writer.write(row)
        self._media += 1
        return self._record("photo", row, rowid, g, person, epoch, nanos, ())

    def _redeliver(self) -> SimEvent:
        recent = self._recent
        row, g, person, drops = recent[self._rng.randrange(len(recent))]
        rowid = self.writer.redeliver(row.chat_jid, row.id)
        self._redeliveries += 1
        return SimEvent(
            kind="redelivery",
            group=self._composer.groups[g],
            message_id=row.id,
            rowid=rowid,
            sender=row.sender,
            member=self._composer.people.members[person],
            content=row.content,
            timestamp=parse_bridge_timestamp(row.timestamp),
            drop_numbers=drops,
            media_type=row.media_type,
        )

    def _record(
        self,
        kind: EventKind,
        row: MessageRow,
        rowid: int,
        g: int,
        person: int,
        epoch: int,
        nanos: int,
        drops: tuple[str, ...],
    ) -> SimEvent:
        self._messages += 1
        self._recent.append((row, g, person, drops))
        when = self._clock.aware(epoch, nanos)
        if self._first is None or when < self._first:
            self._first = when
        if self._latest is None or when > self._latest:
            self._latest = when
        return SimEvent(
            kind=kind,
            group=self._composer.groups[g],
            message_id=row.id,
            rowid=rowid,
            sender=row.sender,
            member=self._composer.people.members[person],
            content=row.content,
            timestamp=when,
            drop_numbers=drops,
            media_type=row.media_type,
        )
