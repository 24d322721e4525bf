"""`LiveSimulator`: one bridge event at a time, for the demo and live tests."""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from wa_monitor.sim.compose import Composer, TruthBuilder, check_rate, media_row, text_row
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


class LiveSimulator:
    """Writes one realistic bridge event per `step()`, for the demo and live tests.

    A drop post is followed by a few photos of the same sender and group on the next
    steps; a resubmission repeats a drop posted earlier in the same group; re-deliveries
    store a recent message again; history-sync events store an old message late.
    Content is decided by the seeded RNG; timestamps come from `clock` (default: now).
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
        photos_per_drop: tuple[int, int] = (2, 5),
        media_rate: float = 0.05,
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
        self._photos = photos_per_drop
        self._burst: tuple[int, int, int] | None = None  # (group, person, photos left)
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
        )

    def step(self) -> SimEvent:
        """Write one event and describe it."""
        rng = self._rng
        composer = self._composer
        now = self._clock_fn()
        epoch = max(int(now.timestamp()), self._last_epoch)
        self._last_epoch = epoch
        nanos = rng.randrange(1, 10**9) if rng.random() < 0.03 else 0

        if self._burst is not None:
            g, person, left = self._burst
            self._burst = (g, person, left - 1) if left > 1 else None
            return self._media_event(g, person, epoch, nanos)

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
                self._burst = (g, person, photos) if photos > 0 else None
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

    def _media_event(self, g: int, person: int, epoch: int, nanos: int) -> SimEvent:
        rng = self._rng
        composer = self._composer
        group = composer.groups[g]
        media = "image" if rng.random() < 0.9 else pick(rng, ("video", "document", "audio"))
        row = media_row(
            rng,
            group.jid,
            composer.people.live[person],
            self._clock.text(epoch, nanos),
            media,
            is_from_me=person == 0,
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
