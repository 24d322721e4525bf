"""`generate_store`: a whole bridge store in bulk, with its truth, for tests and benchmarks."""

from __future__ import annotations

import bisect
import itertools
import math
import random
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from wa_monitor.sim.compose import Composer, TruthBuilder, check_rate, media_row, text_row
from wa_monitor.sim.media import MediaMaker, MediaShares
from wa_monitor.sim.timestamps import Clock
from wa_monitor.sim.values import (
    DEFAULT_DROP_FORMATS,
    DEFAULT_START,
    DEFAULT_TZ,
    DEMO_GROUPS,
    DropFormat,
    MessageRow,
    SimGroup,
    SimTruth,
)
from wa_monitor.sim.vocabulary import BENCH_KINDS, BENCH_PLACES, chatter_text, pick
from wa_monitor.sim.writer import StoreWriter

# Media outside photo bursts: site photos, voice notes, videos, documents.
_STRAY_MEDIA: Final = ("image", "audio", "video", "document")
_STRAY_MEDIA_CUM: Final = (0.65, 0.80, 0.90)


def _burst_size(rng: random.Random, mean: float) -> int:
    if mean >= 3:
        return rng.randint(3, max(3, round(2 * mean - 3)))
    if mean >= 1:
        return rng.randint(1, max(1, round(2 * mean - 1)))
    return 1 if rng.random() < mean else 0


def _plan_outages(rng: random.Random, n: int, share: float) -> list[tuple[int, int]]:
    """Windows [start, end) of message indices the bridge missed, about `share` of `n`."""
    target = min(round(n * share), n - 1)
    if target <= 0:
        return []
    k = max(1, math.ceil(target / 1500))
    cuts = sorted(rng.sample(range(1, target), k - 1)) if k > 1 else []
    lengths = [b - a for a, b in zip([0, *cuts], [*cuts, target], strict=True)]
    gaps = sorted(rng.randrange(n - target + 1) for _ in range(k))
    windows: list[tuple[int, int]] = []
    consumed = 0
    for gap, length in zip(gaps, lengths, strict=True):
        windows.append((gap + consumed, gap + consumed + length))
        consumed += length
    return windows


def generate_store(
    messages_db: Path,
    whatsapp_db: Path | None,
    *,
    groups: Sequence[SimGroup] = DEMO_GROUPS,
    n_messages: int,
    seed: int = 0,
    drop_rate: float = 0.01,
    resubmit_share: float = 0.2,
    media_rate: float = 0.10,
    redelivery_rate: float = 0.002,
    lid_share: float = 0.3,
    history_sync_share: float = 0.05,
    start: datetime = DEFAULT_START,
    tz: str = DEFAULT_TZ,
    drop_formats: Sequence[DropFormat] = DEFAULT_DROP_FORMATS,
    fraction_rate: float = 0.03,
    from_me_rate: float = 0.01,
    mean_gap_s: float | None = None,
    with_lid_map: bool = True,
    chunk_size: int = 50_000,
    media_origin: Path | None = None,
    media_shares: MediaShares | None = None,
    media_expired_before: datetime | None = None,
    on_media: Callable[[int], None] | None = None,
) -> SimTruth:
    """Write a realistic bridge store of `n_messages` distinct messages; return its truth.

    Deterministic: the same arguments give the same rows (ids, senders, contents,
    timestamps) in the same rowid order. Appends to an existing store; the truth covers
    what this call wrote.

    Args:
        messages_db: the bridge's messages.db (created if missing).
        whatsapp_db: whatsmeow's whatsapp.db for contacts and LIDs, or None.
        groups: the groups to post in; weights make some busy and some quiet.
        n_messages: distinct messages to write (media rows included).
        seed: the random seed.
        drop_rate: share of messages that are drop posts (resubmissions included).
        resubmit_share: share of drop posts that repeat an earlier drop of the same group.
        media_rate: share of messages that are media rows (photo bursts after drop posts,
            plus stray photos, videos, voice notes and documents).
        redelivery_rate: chance per live message that a recent message is stored again.
        lid_share: share of members addressed by LID (0 when `with_lid_map` is False).
        history_sync_share: share of messages missed during outages and written later by
            history sync, with full-JID senders and old timestamps.
        start: aware time of the first message.
        tz: the bridge host's zone, used for the timestamp text.
        drop_formats: drop number formats to post (ALL_DROP_FORMATS for FIELD_NOTES bug 9).
        fraction_rate: share of timestamps written with fractional seconds.
        from_me_rate: share of chatter sent by the bridge's own account (is_from_me).
        mean_gap_s: mean seconds between messages in working hours (default from the
            number of groups); nights and Sundays are quieter. Gaps are at least 1 s, so
            timestamps never repeat.
        with_lid_map: create whatsmeow_lid_map (an older bridge has none, and no LIDs).
        chunk_size: rows per write transaction.
        media_origin: write a real file behind every media row, as the phone holds it,
            under this folder (`<media_origin>/<chat_jid>/<message_id>`; keep it outside
            the bridge store), with the row's true file_sha256 and file_length. Off by
            default (a benchmark's millions of rows keep random media columns). The
            messages written are the same either way; only their media columns differ.
        media_shares: how many of those photos are blurred, dark, re-used, expired, ...
        media_expired_before: media posted before this time has expired (no file).
        on_media: called with the count of files written so far (a progress bar).

    Returns:
        The SimTruth of everything posted.
    """
    for name, value in (
        ("drop_rate", drop_rate),
        ("resubmit_share", resubmit_share),
        ("media_rate", media_rate),
        ("redelivery_rate", redelivery_rate),
        ("lid_share", lid_share),
        ("history_sync_share", history_sync_share),
        ("fraction_rate", fraction_rate),
        ("from_me_rate", from_me_rate),
    ):
        check_rate(name, value)
    if n_messages < 0:
        raise ValueError(f"n_messages must be >= 0, got {n_messages}")
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be an aware datetime")
    if drop_rate + media_rate > 1.0:
        raise ValueError("drop_rate + media_rate must not exceed 1")
    run = _BulkRun(
        groups=groups,
        seed=seed,
        drop_rate=drop_rate,
        resubmit_share=resubmit_share,
        media_rate=media_rate,
        redelivery_rate=redelivery_rate,
        lid_share=lid_share if with_lid_map else 0.0,
        history_sync_share=history_sync_share,
        start=start,
        zone=ZoneInfo(tz),
        drop_formats=drop_formats,
        fraction_rate=fraction_rate,
        from_me_rate=from_me_rate,
        mean_gap_s=mean_gap_s if mean_gap_s is not None else min(60.0, 160.0 / len(groups)),
    )
    if media_origin is not None:
        run.media = MediaMaker(
            media_origin,
            seed=seed,
            zone=ZoneInfo(tz),
            shares=media_shares or MediaShares(),
            expired_before=media_expired_before,
        )
        run.on_media = on_media
    with StoreWriter(
        messages_db, whatsapp_db, tz=tz, with_lid_map=with_lid_map, bulk=True
    ) as writer:
        for group in groups:
            writer.add_chat(group.jid, group.name)
        writer.add_members(run.composer.people.members[1:])
        return run.run(writer, n_messages, chunk_size)


class _BulkRun:
    def __init__(
        self,
        *,
        groups: Sequence[SimGroup],
        seed: int,
        drop_rate: float,
        resubmit_share: float,
        media_rate: float,
        redelivery_rate: float,
        lid_share: float,
        history_sync_share: float,
        start: datetime,
        zone: ZoneInfo,
        drop_formats: Sequence[DropFormat],
        fraction_rate: float,
        from_me_rate: float,
        mean_gap_s: float,
    ) -> None:
        self.rng = random.Random(seed)
        self.composer = Composer(
            self.rng,
            groups,
            lid_share=lid_share,
            drop_formats=drop_formats,
            resubmit_share=resubmit_share,
        )
        self.clock = Clock(zone)
        self.truth = TruthBuilder(self.clock)
        self.drop_rate = drop_rate
        self.media_rate = media_rate
        self.redelivery_rate = redelivery_rate
        self.history_sync_share = history_sync_share
        self.start = start
        self.fraction_rate = fraction_rate
        self.from_me_rate = from_me_rate
        self.mean_gap_s = max(0.0, mean_gap_s - 1.0)
        self.media: MediaMaker | None = None
        self.on_media: Callable[[int], None] | None = None

    def run(self, writer: StoreWriter, n: int, chunk_size: int) -> SimTruth:
        # SQLite releases the GIL while it inserts, so one chunk is written while the
        # next is composed; rows still reach the table in order, one chunk at a time.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulate-writer") as pool:
            return self._generate(writer, n, chunk_size, pool)

    def _generate(
        self, writer: StoreWriter, n: int, chunk_size: int, pool: ThreadPoolExecutor
    ) -> SimTruth:
        rng = self.rng
        composer = self.composer
        people = composer.people
        clock = self.clock
        text_of = clock.text
        truth = self.truth
        jids = [g.jid for g in composer.groups]

        # Photo bursts follow drop posts in the next slots; the drawn slots make up the rest.
        drop_rate, media_rate = self.drop_rate, self.media_rate
        burst_mean = min(7.5, media_rate / drop_rate) if drop_rate > 0 else 0.0
        drawn = max(1e-9, 1.0 - drop_rate * burst_mean)
        p_drop = drop_rate / drawn
        p_media = p_drop + max(0.0, media_rate - drop_rate * burst_mean) / drawn

        outages = deque(_plan_outages(rng, n, self.history_sync_share))
        outage_end: int | None = None
        flush_at: int | None = None
        missed: list[tuple[MessageRow, str]] = []  # (row, history sender)
        overlap: list[tuple[MessageRow, str]] = []

        pending: list[MessageRow] = []
        writing: Future[int] | None = None
        recent: deque[tuple[MessageRow, str]] = deque(maxlen=64)
        recent_drops: deque[tuple[MessageRow, str]] = deque(maxlen=16)
        burst_group, burst_person, burst_left = 0, 0, 0
        maker = self.media
        burst_drop: str | None = None
        burst_round: int | None = None
        burst_steps: list[int] = []
        burst_caption: str | None = None
        media_rows = redeliveries = history_synced = 0

        epoch = int(self.start.timestamp())
        first_epoch = epoch
        offset = clock.offset_seconds(epoch)
        mean_gap = self.mean_gap_s
        fraction_rate, from_me_rate, redelivery_rate = (
            self.fraction_rate,
            self.from_me_rate,
            self.redelivery_rate,
        )

        def flush_history() -> None:
            nonlocal missed, overlap, flush_at, redeliveries, history_synced
            # History sync comes conversation by conversation, newest message first.
            by_chat: dict[str, list[MessageRow]] = {}
            for row, sender in itertools.chain(overlap, missed):
                by_chat.setdefault(row.chat_jid, []).append(row._replace(sender=sender))
            for rows in by_chat.values():
                pending.extend(reversed(rows))
            redeliveries += len(overlap)
            history_synced += len(missed)
            missed, overlap, flush_at = [], [], None

        for i in range(n):
            if outages and outages[0][0] == i:
                if flush_at is not None:
                    flush_history()
                outage_end = outages.popleft()[1]
                # The sync also re-sends a few messages stored just before the outage.
                resent = rng.randint(0, 5)
                overlap = list(recent)[len(recent) - resent :] if resent else []
            if outage_end is not None and i == outage_end:
                outage_end = None
                flush_at = i + rng.randint(5, 80)
            if flush_at is not None and i >= flush_at:
                flush_history()

            if burst_left:
                burst_left -= 1
                epoch += rng.randint(1, 4)
                g, person = burst_group, burst_person
                kind = 3
            else:
                hour = (epoch + offset) // 3600
                factor = 1.0 if 6 <= hour % 24 < 18 else (3.0 if 18 <= hour % 24 < 22 else 12.0)
                if (hour // 24 + 3) % 7 == 6:  # Sunday
                    factor *= 3.0
                epoch += 1 + int(rng.expovariate(1.0 / (mean_gap * factor))) if mean_gap else 1
                g = composer.pick_group()
                r = rng.random()
                kind = 1 if r < p_drop else (2 if r < p_media else 0)
                person = 0
            nanos = rng.randrange(1, 10**9) if rng.random() < fraction_rate else 0
            ts = text_of(epoch, nanos)
            if i == 0:
                first_epoch = epoch
            jid = jids[g]

            drops: tuple[str, ...] = ()
            if kind == 0:
                from_me = rng.random() < from_me_rate
                person = 0 if from_me else composer.pick_talker(g)
                sender = people.live[person]
                row = text_row(rng, jid, sender, chatter_text(rng), ts, is_from_me=from_me)
            elif kind == 1:
                person, text, drops, _resub = composer.drop_post(g)
                row = text_row(rng, jid, people.live[person], text, ts)
                truth.record(jid, drops, epoch, nanos, people.members[person])
                burst_group, burst_person = g, person
                burst_left = _burst_size(rng, burst_mean)
                if maker is not None:
                    burst_drop = drops[0]
                    burst_round = maker.open_round(jid, drops[0])
                    burst_steps = maker.plan_steps(burst_left, resubmission=_resub)
                    burst_caption = drops[0] if maker.rng.random() < maker.shares.caption else None
            else:
                if kind == 2:
                    person = composer.pick_talker(g)
                    media = _STRAY_MEDIA[bisect.bisect(_STRAY_MEDIA_CUM, rng.random())]
                else:
                    media = "image" if rng.random() < 0.95 else "video"
                row = media_row(rng, jid, people.live[person], ts, media, is_from_me=person == 0)
                media_rows += 1
                if maker is not None:
                    row = self._with_file(
                        maker,
                        row,
                        epoch,
                        nanos,
                        people.members[person].phone,
                        (burst_drop, burst_round, burst_steps, burst_caption)
                        if kind == 3
                        else None,
                    )
                    if kind == 3:
                        burst_caption = None
                    if self.on_media is not None:
                        self.on_media(len(maker.truths))

            if outage_end is not None:
                missed.append((row, people.history[person]))
            else:
                pending.append(row)
                entry = (row, people.history[person])
                recent.append(entry)
                if drops:
                    recent_drops.append(entry)
                if rng.random() < redelivery_rate:
                    source = recent_drops if recent_drops and rng.random() < 0.4 else recent
                    pending.append(source[rng.randrange(len(source))][0])
                    redeliveries += 1
            if len(pending) >= chunk_size:
                if writing is not None:
                    writing.result()
                writing = pool.submit(writer.write_many, pending, chunk_size=chunk_size)
                pending = []

        if missed or overlap:
            flush_history()
        if writing is not None:
            writing.result()
        writer.write_many(pending, chunk_size=chunk_size)
        return truth.build(
            messages=n,
            media_rows=media_rows,
            redeliveries=redeliveries,
            history_synced=history_synced,
            first_time=clock.aware(first_epoch) if n else None,
            last_time=clock.aware(epoch) if n else None,
            members=tuple(people.members),
            photos=maker.truths if maker is not None else (),
        )

    def _with_file(
        self,
        maker: MediaMaker,
        row: MessageRow,
        epoch: int,
        nanos: int,
        phone: str,
        burst: tuple[str | None, int | None, list[int], str | None] | None,
    ) -> MessageRow:
        posted_at = self.clock.aware(epoch, nanos)
        if burst is None:
            return maker.other(row, posted_at=posted_at, sender_phone=phone)
        drop, round_, steps, caption = burst
        if row.media_type != "image" or not steps:
            return maker.other(
                row, posted_at=posted_at, sender_phone=phone, drop=drop, round=round_
            )
        return maker.photo(
            row,
            posted_at=posted_at,
            sender_phone=phone,
            drop=drop,
            round=round_,
            step=steps.pop(0),
            caption=caption,
        )


def bench_groups(n: int, *, seed: int = 0) -> list[SimGroup]:
    """`n` plausible groups (`1203634` + 11 digits + `@g.us`, distinct names), deterministic."""
    rng = random.Random(f"bench-groups-{seed}")
    taken = {g.jid for g in DEMO_GROUPS}
    names: set[str] = set()
    groups: list[SimGroup] = []
    while len(groups) < n:
        jid = f"1203634{rng.randrange(10**11):011d}@g.us"
        kind = pick(rng, BENCH_KINDS).format(n=rng.randint(1, 9))
        name = f"{pick(rng, BENCH_PLACES)} {kind}"
        if name in names:
            name = f"{name} {len(groups) + 1}"
        if jid in taken or name in names:
            continue
        taken.add(jid)
        names.add(name)
        groups.append(SimGroup(jid, name))
    return groups
