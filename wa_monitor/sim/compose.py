"""Who says what, where, with which id: the people, drop numbers and rows of a simulation."""

from __future__ import annotations

import bisect
import itertools
import random
from collections import deque
from collections.abc import Sequence
from datetime import datetime
from types import MappingProxyType
from typing import Final

from wa_monitor.sim import vocabulary as words
from wa_monitor.sim.timestamps import Clock
from wa_monitor.sim.values import (
    ALL_DROP_FORMATS,
    OUR_PHONE,
    DropFormat,
    DropTruth,
    Member,
    MessageRow,
    PhotoTruth,
    SimGroup,
    SimTruth,
)
from wa_monitor.sim.vocabulary import Slots, hex_digits, pick


def message_id(rng: random.Random) -> str:
    # Web/whatsmeow "3EB0…", iPhone "3A…", Android 32-hex: random, never ordered in time.
    r = rng.random()
    if r < 0.45:
        return f"3EB0{rng.getrandbits(64):016X}"
    if r < 0.70:
        return f"3A{rng.getrandbits(72):018X}"
    if r < 0.80:
        return f"{rng.getrandbits(80):020X}"
    return f"{rng.getrandbits(128):032X}"


_MEDIA_PATHS: Final = {
    "image": ("t62.7118-24", ".jpg", 40_000, 450_000),
    "video": ("t62.7161-24", ".mp4", 300_000, 16_000_000),
    "audio": ("t62.7117-24", ".ogg", 5_000, 200_000),
    "document": ("t62.7119-24", ".pdf", 20_000, 5_000_000),
}


def media_row(
    rng: random.Random,
    chat_jid: str,
    sender: str,
    timestamp: str,
    media_type: str,
    *,
    is_from_me: bool = False,
) -> MessageRow:
    segment, ext, low, high = _MEDIA_PATHS[media_type]
    if media_type == "document":
        filename = pick(rng, words.DOCUMENT_NAMES).format_map(Slots(rng))
    else:
        # The bridge names media by the time it stored them (here: the message time).
        ts = timestamp
        stamp = f"{ts[0:4]}{ts[5:7]}{ts[8:10]}_{ts[11:13]}{ts[14:16]}{ts[17:19]}"
        filename = f"{media_type}_{stamp}{ext}"
    url = (
        f"https://mmg.whatsapp.net/v/{segment}/{rng.randrange(10**7, 10**8)}_"
        f"{rng.randrange(10**15, 10**16)}_{rng.randrange(10**15, 10**16)}_n.enc"
        f"?ccb=11-4&oh=01_Q5Aa{hex_digits(rng, 36)}&oe={hex_digits(rng, 8)}"
        "&_nc_sid=5e03e0&mms3=true"
    )
    # Upstream drops captions (content ''); a few foreign-made stores hold NULL.
    content = None if rng.random() < 0.02 else ""
    return MessageRow(
        message_id(rng),
        chat_jid,
        sender,
        content,
        timestamp,
        is_from_me,
        media_type,
        filename,
        url,
        rng.randbytes(32),
        rng.randbytes(32),
        rng.randbytes(32),
        rng.randint(low, high),
    )


def text_row(
    rng: random.Random,
    chat_jid: str,
    sender: str,
    content: str,
    timestamp: str,
    *,
    is_from_me: bool = False,
) -> MessageRow:
    # go-sqlite3 binds the bridge's empty strings as '' and nil byte slices as NULL.
    return MessageRow(
        message_id(rng), chat_jid, sender, content, timestamp, is_from_me, "", "", "", None,
        None, None, 0,
    )  # fmt: skip


class _DropEntry:
    __slots__ = ("first", "last", "name", "phone", "posts")

    def __init__(self, when: tuple[int, int, int], phone: str, name: str) -> None:
        self.posts = 1
        self.first = when
        self.last = when
        self.phone = phone
        self.name = name


class TruthBuilder:
    """Accumulates drop posts; only drops are kept, so memory stays small for big stores."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._drops: dict[tuple[str, str], _DropEntry] = {}
        self._seq = 0
        self.drop_posts = 0

    def record(
        self, chat_jid: str, drops: Sequence[str], epoch: int, nanos: int, member: Member
    ) -> None:
        self._seq += 1
        self.drop_posts += 1
        when = (epoch, nanos, self._seq)
        for drop in dict.fromkeys(drops):
            entry = self._drops.get((chat_jid, drop))
            if entry is None:
                self._drops[(chat_jid, drop)] = _DropEntry(when, member.phone, member.display_name)
                continue
            entry.posts += 1
            entry.first = min(entry.first, when)
            if when > entry.last:
                entry.last = when
                entry.phone = member.phone
                entry.name = member.display_name

    def build(
        self,
        *,
        messages: int,
        media_rows: int,
        redeliveries: int,
        history_synced: int,
        first_time: datetime | None,
        last_time: datetime | None,
        members: tuple[Member, ...],
        photos: Sequence[PhotoTruth] = (),
    ) -> SimTruth:
        aware = self._clock.aware
        drops = {
            key: DropTruth(
                group_jid=key[0],
                drop_number=key[1],
                posts=e.posts,
                first_posted=aware(e.first[0], e.first[1]),
                last_posted=aware(e.last[0], e.last[1]),
                last_phone=e.phone,
                last_name=e.name,
            )
            for key, e in self._drops.items()
        }
        return SimTruth(
            drops=MappingProxyType(drops),
            messages=messages,
            media_rows=media_rows,
            redeliveries=redeliveries,
            history_synced=history_synced,
            drop_posts=self.drop_posts,
            first_time=first_time,
            last_time=last_time,
            members=members,
            photos=tuple(photos),
        )


class Population:
    """Everyone in the simulated groups; index 0 is the bridge's own account."""

    def __init__(self, rng: random.Random, n_groups: int, lid_share: float) -> None:
        self.members: list[Member] = [Member(phone=OUR_PHONE)]
        self.live: list[str] = [OUR_PHONE]
        self.history: list[str] = [OUR_PHONE]
        self._rng = rng
        self._lid_share = lid_share
        self._phones: set[str] = {OUR_PHONE}
        self._lids: set[str] = set()
        supervisors = [self._new_person() for _ in range(3)]
        # Per group: (everyone, cumulative weights) and (installers, cumulative weights).
        self.talkers: list[tuple[list[int], list[float]]] = []
        self.posters: list[tuple[list[int], list[float]]] = []
        installers_seen: list[int] = []
        for _ in range(n_groups):
            installers: list[int] = []
            for _ in range(rng.randint(5, 26)):
                if installers_seen and rng.random() < 0.1:
                    person = pick(rng, installers_seen)
                    if person in installers:
                        continue
                else:
                    person = self._new_person()
                    installers_seen.append(person)
                installers.append(person)
            weights = [min(20.0, rng.paretovariate(1.6)) for _ in installers]
            self.posters.append((installers, list(itertools.accumulate(weights))))
            everyone = [*supervisors, 0, *installers]
            all_weights = [1.5, 1.0, 0.8, 0.6, *weights]
            self.talkers.append((everyone, list(itertools.accumulate(all_weights))))

    def _new_person(self) -> int:
        rng = self._rng
        phone = OUR_PHONE
        while phone in self._phones:
            phone = "27" + pick(rng, words.PHONE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        self._phones.add(phone)
        lid: str | None = None
        if rng.random() < self._lid_share:
            while lid is None or lid in self._lids:
                lid = str(rng.randrange(10**14, 3 * 10**14))
            self._lids.add(lid)
        first = pick(rng, words.FIRST_NAMES)
        last = pick(rng, words.LAST_NAMES)
        full = f"{first} {last}" + (pick(rng, words.NAME_SUFFIXES) if rng.random() < 0.2 else "")
        r = rng.random()
        if r < 0.45:  # saved in the address book, with a push name
            member = Member(phone, lid, full, self._push_name(first, last), first)
        elif r < 0.55:  # saved, never sent a push name
            member = Member(phone, lid, full, None, first)
        elif r < 0.83:  # only the name they chose
            business = pick(rng, words.BUSINESS) if rng.random() < 0.1 else None
            member = Member(phone, lid, None, self._push_name(first, last), None, business)
        elif r < 0.90:  # a first name only
            member = Member(phone, lid, None, None, first)
        else:  # unknown: shown as the phone number
            member = Member(phone, lid)
        self.members.append(member)
        self.live.append(member.sender())
        self.history.append(member.sender(history=True))
        return len(self.members) - 1

    def _push_name(self, first: str, last: str) -> str:
        rng = self._rng
        r = rng.random()
        if r < 0.35:
            return first
        if r < 0.55:
            return f"{first} {last[0].upper()}"
        if r < 0.70:
            return f"{first} {pick(rng, words.EMOJI)}"
        if r < 0.85:
            return pick(rng, words.NICKNAMES)
        return f"{first} {last}"


_DIGITS: Final = {"DR8": 8, "DR7": 7, "DR6": 6}
_DIGIT_WEIGHTS: Final = {"DR8": 0.6, "DR7": 0.25, "DR6": 0.15}


class Drops:
    """Issues unique drop numbers and renders them in the enabled formats."""

    def __init__(self, rng: random.Random, formats: Sequence[DropFormat]) -> None:
        unknown = [f for f in formats if f not in ALL_DROP_FORMATS]
        if unknown:
            raise ValueError(f"unknown drop format(s) {unknown}; choose from {ALL_DROP_FORMATS}")
        self._lengths = [_DIGITS[f] for f in ALL_DROP_FORMATS if f in _DIGITS and f in formats]
        if not self._lengths:
            raise ValueError("drop_formats needs at least one of 'DR8', 'DR7', 'DR6'")
        weights = [_DIGIT_WEIGHTS[f] for f in ALL_DROP_FORMATS if f in _DIGITS and f in formats]
        self._cum = list(itertools.accumulate(weights))
        self._spaced = "spaced" in formats
        self._lower = "lower" in formats
        self._rng = rng
        self._issued: set[str] = set()

    def new(self) -> str:
        rng = self._rng
        length = self._lengths[bisect.bisect(self._cum, rng.random() * self._cum[-1])]
        number = ""
        while not number or number in self._issued:
            number = f"DR{rng.randrange(10 ** (length - 1), 10**length)}"
        self._issued.add(number)
        return number

    def render(self, number: str) -> str:
        if self._spaced or self._lower:
            r = self._rng.random()
            if self._spaced and r < 0.12:
                return "DR " + number[2:]
            if self._lower and r > 0.88:
                return number.lower()
        return number


class Composer:
    """Makes the messages of a simulation: who says what, where, with which id."""

    def __init__(
        self,
        rng: random.Random,
        groups: Sequence[SimGroup],
        *,
        lid_share: float,
        drop_formats: Sequence[DropFormat],
        resubmit_share: float,
    ) -> None:
        if not groups:
            raise ValueError("at least one group is needed")
        if len({g.jid for g in groups}) != len(groups):
            raise ValueError("group JIDs must be distinct")
        self.rng = rng
        self.groups = list(groups)
        self.people = Population(rng, len(groups), lid_share)
        self.drops = Drops(rng, drop_formats)
        self.resubmit_share = resubmit_share
        # Busy and quiet groups: weights fall off with a shuffled rank.
        ranks = list(range(len(groups)))
        rng.shuffle(ranks)
        self._group_cum = list(itertools.accumulate(1.0 / (rank + 1) ** 0.9 for rank in ranks))
        self._posted: list[deque[tuple[str, int]]] = [deque(maxlen=300) for _ in groups]
        self._numbers: list[set[str]] = [set() for _ in groups]
        self._recent_all: deque[str] = deque(maxlen=300)

    def pick_group(self) -> int:
        cum = self._group_cum
        return bisect.bisect(cum, self.rng.random() * cum[-1])

    def pick_talker(self, group: int) -> int:
        people, cum = self.people.talkers[group]
        return people[bisect.bisect(cum, self.rng.random() * cum[-1])]

    def pick_poster(self, group: int) -> int:
        people, cum = self.people.posters[group]
        return people[bisect.bisect(cum, self.rng.random() * cum[-1])]

    def drop_post(self, group: int) -> tuple[int, str, tuple[str, ...], bool]:
        """(poster, text, normalised drops, is a resubmission) of a drop post in `group`."""
        rng = self.rng
        posted = self._posted[group]
        drops = self.drops
        if posted and rng.random() < self.resubmit_share:
            number, original = posted[rng.randrange(len(posted))]
            # Usually the installer fixes their own drop; sometimes a colleague does.
            poster = original if rng.random() < 0.7 else self.pick_poster(group)
            text = pick(rng, words.RESUBMISSIONS).format_map(Slots(rng, d=drops.render(number)))
            posted.append((number, poster))
            return poster, text, (number,), True
        poster = self.pick_poster(group)
        numbers = [self._new_number(group)]
        if rng.random() < 0.05:
            numbers.append(self._new_number(group))
            template = pick(rng, words.DOUBLE_DROP_POSTS)
            slots = Slots(rng, d=drops.render(numbers[0]), d2=drops.render(numbers[1]))
        else:
            template = pick(rng, words.DROP_POSTS)
            slots = Slots(rng, d=drops.render(numbers[0]))
        for number in numbers:
            posted.append((number, poster))
            self._numbers[group].add(number)
            self._recent_all.append(number)
        return poster, template.format_map(slots), tuple(numbers), False

    def _new_number(self, group: int) -> str:
        # The same drop is sometimes posted in two project groups (FIELD_NOTES bug 6).
        recent = self._recent_all
        if recent and self.rng.random() < 0.02:
            number = recent[self.rng.randrange(len(recent))]
            if number not in self._numbers[group]:
                return number
        return self.drops.new()


def check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")
