"""Photos linked to drops through the review database: the media reader and the linker.

Each test writes messages to a source (the bridge's SQLite store, or the in-memory one),
runs the scan (drop posts) and the linker (every row), and checks the links stored in
group_messages, on both review backends. The oracle is `link_photos` over everything.
"""

from __future__ import annotations

import hashlib
import random
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.helpers import LAWLEY, PROJECTS_YAML, T0, VELO, config_from, review_id
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import PhotoDecisionError, UnknownPhoto
from wa_monitor.core.photo_links import Detached, DropPost, LinkRules, Moved, Photo, link_photos
from wa_monitor.monitor.photo_linker import PhotoLinker, decide_photo
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sim import MessageRow, StoreWriter
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.sources.memory import InMemorySource, Media
from wa_monitor.sources.protocol import Source
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import (
    drop_submissions,
    group_messages,
    media_cursors,
    photo_decisions,
    review_edits,
)

INSTALLER = "27821234567"
OTHER_INSTALLER = "27827654321"
LINK_COLUMNS = ("drop_number", "round", "post_message_id", "link_reason")


def file_hash(label: str) -> bytes:
    return hashlib.sha256(label.encode()).digest()


@dataclass
class World:
    """A source written the way the bridge writes, and the monitor and linker over it."""

    kind: str
    directory: Path
    store: ReviewStore
    config: ProjectsConfig = field(default_factory=config_from)
    source: Source = field(init=False)
    linker_source: Source = field(init=False)
    _memory: InMemorySource | None = None
    _writer: StoreWriter | None = None
    _opened: list[BridgeStore] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.kind == "memory":
            self._memory = InMemorySource()
            self._memory.open()
            self.source = self.linker_source = self._memory
        else:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._writer = StoreWriter(self.directory / "messages.db", self.directory / "wa.db")
            self.source = self._bridge()
            self.linker_source = self._bridge()
        self.monitor = Monitor(self.config, self.source, self.store)
        self.linker = PhotoLinker(self.store, self.linker_source, lambda: self.config)

    def _bridge(self) -> BridgeStore:
        bridge = BridgeStore(self.directory / "messages.db", self.directory / "wa.db")
        bridge.open()
        self._opened.append(bridge)
        return bridge

    def close(self) -> None:
        for bridge in self._opened:
            bridge.close()
        if self._writer is not None:
            self._writer.close()

    def write(
        self,
        content: str | None,
        *,
        when: datetime,
        chat: str = LAWLEY,
        sender: str = INSTALLER,
        message_id: str | None = None,
        media_type: str = "",
        sha: bytes | None = None,
        timestamp: str | None = None,
    ) -> str:
        """Store a message (a photo when media_type is given); returns its id."""
        message_id = message_id or uuid.uuid4().hex[:20].upper()
        length = 1000 if media_type else 0
        filename = f"image_{when:%Y%m%d_%H%M%S}.jpg" if media_type else ""
        if self._memory is not None:
            media = Media(media_type, filename, sha, length) if media_type else None
            self._memory.store(chat, message_id, sender, content, timestamp or when, media=media)
            return message_id
        assert self._writer is not None
        row = MessageRow(
            id=message_id,
            chat_jid=chat,
            sender=sender,
            content=content,
            timestamp=timestamp or self._writer.timestamp(when),
            is_from_me=False,
            media_type=media_type,
            filename=filename,
            url="",
            media_key=None,
            file_sha256=sha,
            file_enc_sha256=None,
            file_length=length,
        )
        self._writer.write(row)
        return message_id

    def photo(self, when: datetime, caption: str = "", **kwargs: Any) -> str:
        label = kwargs.pop("label", None) or uuid.uuid4().hex
        return self.write(caption, when=when, media_type="image", sha=file_hash(label), **kwargs)

    def redeliver(self, message_id: str, chat: str = LAWLEY) -> None:
        if self._memory is not None:
            self._memory.redeliver(chat, message_id)
        else:
            assert self._writer is not None
            self._writer.redeliver(chat, message_id)

    def sync(self, max_rows: int = 5000) -> None:
        """Scan (drop posts), then link until nothing is waiting."""
        self.monitor.scan()
        self.linker.run_until_done(max_rows)


@pytest.fixture(params=["memory", "bridge"])
def world(request: pytest.FixtureRequest, store: ReviewStore, tmp_path: Path) -> Iterator[World]:
    built = World(request.param, tmp_path / "bridge", store)
    yield built
    built.close()


def stored(store: ReviewStore) -> dict[str, dict[str, Any]]:
    """group_messages by message id: its link, step and fetch state."""
    t = group_messages
    with store.begin() as conn:
        rows = conn.execute(sa.select(t)).mappings().all()
    return {r["message_id"]: dict(r) for r in rows}


def links(store: ReviewStore) -> dict[str, tuple[Any, ...]]:
    return {key: tuple(r[c] for c in LINK_COLUMNS) for key, r in stored(store).items()}


def oracle(store: ReviewStore, config: ProjectsConfig) -> dict[str, tuple[Any, ...]]:
    """link_photos over every row, every drop post and every decision."""
    g, s, d = group_messages, drop_submissions, photo_decisions
    with store.begin() as conn:
        photos = [
            Photo(r.chat_jid, r.message_id, r.sender, r.posted_at, r.content, r.media_type)
            for r in conn.execute(sa.select(g))
        ]
        posts = [
            DropPost(r.chat_jid, r.message_id, r.sender, r.message_time, r.drop_number)
            for r in conn.execute(sa.select(s))
        ]
        decisions: list[Moved | Detached] = []
        for r in conn.execute(sa.select(d).where(d.c.action.in_(("moved", "detached")))):
            if r.action == "moved":
                decisions.append(
                    Moved(r.chat_jid, r.message_id, r.at, r.drop_number, r.round, r.id)
                )
            else:
                decisions.append(Detached(r.chat_jid, r.message_id, r.at, r.id))
    rules = {jid: LinkRules(p.pattern, p.photo_windows) for jid, p in config.by_group().items()}
    found = link_photos(photos, posts, rules=rules, decisions=decisions)
    return {
        link.photo_key: (link.drop_number, link.round, link.post_key, link.reason) for link in found
    }


def test_photos_are_linked_to_the_drop_of_their_sender(world: World) -> None:
    post = world.write("DR12345678 ready for QA", when=T0)
    after = [world.photo(T0 + timedelta(minutes=i)) for i in range(1, 4)]
    before = world.photo(T0 - timedelta(minutes=10))
    stranger = world.photo(T0 + timedelta(minutes=2), sender=OTHER_INSTALLER)
    late = world.photo(T0 + timedelta(hours=3))
    world.sync()

    found = links(world.store)
    for key in after:
        assert found[key] == ("DR12345678", 0, post, "after")
    assert found[before] == ("DR12345678", 0, post, "before")
    assert found[stranger] == (None, None, None, "none")
    assert found[late] == (None, None, None, "none")
    # The drop post itself is part of the thread: a text linked to the drop it names.
    assert found[post] == ("DR12345678", 0, post, "caption")
    rows = stored(world.store)
    rid = review_id(world.store, "Lawley", "DR12345678")
    assert rid is not None
    assert all(rows[k]["review_id"] == rid for k in [*after, before, post])
    assert rows[after[0]]["status"] == "pending"
    assert rows[after[0]]["file_sha256"] == rows[after[0]]["file_sha256"].lower()
    assert len(rows[after[0]]["file_sha256"]) == 64
    assert rows[post]["status"] is None and rows[post]["media_type"] == "text"
    assert found == oracle(world.store, world.config)


def test_every_post_of_a_drop_opens_a_round(world: World) -> None:
    first = world.write("DR12345678 done", when=T0)
    early = world.photo(T0 + timedelta(minutes=1))
    other = world.write("DR87654321 done", when=T0 + timedelta(minutes=30))
    between = world.photo(T0 + timedelta(minutes=31))
    # A caption naming a known drop makes the photo one of its round's photos, not a
    # post: it opens no round, and the photo after it follows the latest post.
    captioned = world.photo(T0 + timedelta(hours=1), caption="DR12345678 fixed cable")
    plain = world.photo(T0 + timedelta(hours=1, minutes=1))
    resub = world.write("DR12345678 resubmitted", when=T0 + timedelta(days=1))
    again = world.photo(T0 + timedelta(days=1, minutes=5))
    # A drop known only from captions is posted by its earliest captioned photo.
    opening = world.photo(T0 + timedelta(days=2), caption="DR55555555 step 1")
    burst = world.photo(T0 + timedelta(days=2, seconds=1), caption="DR55555555 step 2")
    world.sync()

    found = links(world.store)
    assert found[early] == ("DR12345678", 0, first, "after")
    assert found[between] == ("DR87654321", 0, other, "after")
    assert found[captioned] == ("DR12345678", 0, first, "caption")
    assert found[plain] == ("DR87654321", 0, other, "after")
    assert found[again] == ("DR12345678", 1, resub, "after")
    assert found[opening] == ("DR55555555", 0, opening, "caption")
    assert found[burst] == ("DR55555555", 0, opening, "caption")
    assert found == oracle(world.store, world.config)
    with world.store.begin() as conn:
        resubmitted = dict(
            conn.execute(sa.text("SELECT drop_number, resubmitted FROM qa_photo_reviews")).all()
        )
    # Two text posts of DR12345678; one burst of captioned photos for DR55555555.
    assert resubmitted == {"DR12345678": True, "DR87654321": False, "DR55555555": False}


def test_rows_arriving_in_any_order_link_as_if_read_at_once(
    store: ReviewStore, tmp_path: Path
) -> None:
    """History sync stores old rows under new rowids, re-delivery repeats rows, the linker
    reads in small steps between scans: the links are those of everything at once."""
    rng = random.Random(11)
    plan: list[tuple[str, dict[str, Any]]] = []
    for d in range(6):
        base = T0 + timedelta(hours=3 * d)
        sender = INSTALLER if d % 2 else OTHER_INSTALLER
        drop = f"DR{10000000 + d % 4}"
        plan.append(("text", {"content": f"{drop} done", "when": base, "sender": sender}))
        for i in range(5):
            when = base + timedelta(minutes=rng.randint(-40, 150))
            caption = f"{drop}" if i == 0 and d % 3 == 0 else ""
            plan.append(("photo", {"caption": caption, "when": when, "sender": sender}))
    ids = [f"M{i:04d}" for i in range(len(plan))]

    def play(world: World, order: list[int], step: int | None) -> None:
        for n, at in enumerate(order):
            kind, args = plan[at]
            if kind == "text":
                world.write(message_id=ids[at], **args)
            else:
                world.photo(message_id=ids[at], label=ids[at], **args)
            if n % 7 == 3:
                world.redeliver(ids[order[rng.randrange(n + 1)]])
            if step is not None and n % 5 == 0:
                world.monitor.scan()
                world.linker.step(step)
        world.sync(step or 5000)

    results = []
    for attempt, kind in enumerate(["memory", "bridge", "memory"]):
        store.engine.dispose()
        with store.begin() as conn:
            for table in (group_messages, drop_submissions, media_cursors):
                conn.execute(table.delete())
            conn.execute(sa.text("DELETE FROM worker_marks"))
            conn.execute(sa.text("DELETE FROM qa_photo_reviews"))
        order = list(range(len(plan)))
        if attempt:
            rng.shuffle(order)
            _captions_after_their_post(plan, order)
        world = World(kind, tmp_path / f"bridge{attempt}", store)
        try:
            play(world, order, None if attempt == 0 else 3)
            assert links(store) == oracle(store, world.config)
            results.append(links(store))
        finally:
            world.close()
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == len(plan)


def _captions_after_their_post(plan: list[tuple[str, dict[str, Any]]], order: list[int]) -> None:
    """Each captioned photo stored after its drop's text post, the rest in any order.

    A photo whose caption names a drop not yet known posts the drop (a caption-only drop
    must not be lost); stored before the drop's text post, it is the first submission and
    the text a resubmission: the one case where the order of storing changes the result.
    """
    for at, (kind, args) in enumerate(plan):
        if kind != "photo" or not args["caption"]:
            continue
        post = next(
            i
            for i in range(at - 1, -1, -1)
            if plan[i][0] == "text" and plan[i][1]["content"].startswith(args["caption"])
        )
        if order.index(at) < order.index(post):
            a, b = order.index(at), order.index(post)
            order[a], order[b] = order[b], order[a]


def test_reading_again_changes_nothing(world: World) -> None:
    world.write("DR12345678 done", when=T0)
    photo = world.photo(T0 + timedelta(minutes=1))
    world.sync()
    before = stored(world.store)
    world.redeliver(photo)
    world.sync()
    with world.store.begin() as conn:
        conn.execute(sa.delete(media_cursors))  # everything is read a second time
    world.sync()
    after = stored(world.store)
    assert after == before


def test_a_redelivered_photo_naming_another_file_is_fetched_again(world: World) -> None:
    world.write("DR12345678 done", when=T0)
    photo = world.photo(T0 + timedelta(minutes=1), label="first")
    world.sync()
    with world.store.begin() as conn:
        conn.execute(
            sa.update(group_messages)
            .where(group_messages.c.message_id == photo)
            .values(status="available", sha256=file_hash("first").hex(), step="step_01_house_photo")
        )
    world.photo(T0 + timedelta(minutes=1), label="second", message_id=photo)
    world.sync()
    row = stored(world.store)[photo]
    assert row["file_sha256"] == file_hash("second").hex()
    assert row["status"] == "pending" and row["sha256"] is None
    assert row["step"] == "step_01_house_photo"  # the reviewer's choice stays
    assert row["drop_number"] == "DR12345678"


def test_a_reviewers_move_detach_and_step_survive_rescans(world: World) -> None:
    first = world.write("DR12345678 done", when=T0)
    photo = world.photo(T0 + timedelta(minutes=1))
    second = world.write("DR87654321 done", when=T0 + timedelta(hours=5))
    world.sync()
    rows = stored(world.store)
    photo_id = rows[photo]["id"]
    decide_photo(
        world.store,
        world.config,
        photo_id,
        actor="alice",
        drop_number="dr 87654321",
        step="step_01_house_photo",
    )
    assert links(world.store)[photo] == ("DR87654321", 0, second, "moved")
    # A re-scan and a re-link from scratch keep the reviewer's word.
    with world.store.begin() as conn:
        conn.execute(sa.delete(media_cursors))
        conn.execute(sa.text("DELETE FROM worker_marks"))
    world.redeliver(photo)
    world.write("DR12345678 again", when=T0 + timedelta(minutes=2))
    world.sync()
    row = stored(world.store)[photo]
    assert (row["drop_number"], row["link_reason"], row["step"]) == (
        "DR87654321",
        "moved",
        "step_01_house_photo",
    )
    assert row["review_id"] == review_id(world.store, "Lawley", "DR87654321")
    assert links(world.store) == oracle(world.store, world.config)

    decide_photo(world.store, world.config, photo_id, actor="bob", detach=True)
    world.sync()
    assert links(world.store)[photo] == (None, None, None, "detached")
    assert stored(world.store)[photo]["review_id"] is None

    with world.store.begin() as conn:
        audit = conn.execute(
            sa.select(photo_decisions.c.action, photo_decisions.c.actor).order_by(
                photo_decisions.c.id
            )
        ).all()
        edits = conn.execute(
            sa.select(review_edits.c.review_id, review_edits.c.action, review_edits.c.actor)
        ).all()
    assert [tuple(a) for a in audit] == [("moved", "alice"), ("step", "alice"), ("detached", "bob")]
    moved_from = review_id(world.store, "Lawley", "DR12345678")
    moved_to = review_id(world.store, "Lawley", "DR87654321")
    assert {(e.review_id, e.actor) for e in edits} == {
        (moved_from, "alice"),
        (moved_to, "alice"),
        (moved_to, "bob"),
    }
    assert {e.action for e in edits} == {"photo"}
    assert first != second


def test_bad_decisions_are_refused_with_what_to_do(world: World) -> None:
    world.write("DR12345678 done", when=T0)
    world.write("DR87654321 done", when=T0, chat=VELO)
    photo = world.photo(T0 + timedelta(minutes=1))
    world.sync()
    photo_id = stored(world.store)[photo]["id"]
    with pytest.raises(UnknownPhoto, match="no photo 999999"):
        decide_photo(world.store, world.config, 999999, actor="a", detach=True)
    with pytest.raises(PhotoDecisionError, match="never posted in Lawley"):
        decide_photo(world.store, world.config, photo_id, actor="a", drop_number="DR87654321")
    with pytest.raises(PhotoDecisionError, match="is not a step"):
        decide_photo(world.store, world.config, photo_id, actor="a", step="step_13_selfie")
    with pytest.raises(PhotoDecisionError, match="round -1"):
        decide_photo(world.store, world.config, photo_id, actor="a", round=-1)
    with pytest.raises(PhotoDecisionError, match="round 1 does not exist"):
        decide_photo(world.store, world.config, photo_id, actor="a", round=1)
    with world.store.begin() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(photo_decisions)).scalar() == 0
    assert links(world.store)[photo][3] == "after"


def test_a_recreated_store_is_read_again_from_rowid_one(store: ReviewStore, tmp_path: Path) -> None:
    world = World("memory", tmp_path, store)
    world.write("DR12345678 done", when=T0)
    first = world.photo(T0 + timedelta(minutes=1))
    world.sync()
    assert world._memory is not None
    world._memory.recreate()
    world._memory.open()
    world.write("DR87654321 done", when=T0 + timedelta(days=1))
    later = world.photo(T0 + timedelta(days=1, minutes=1))
    world.sync()
    found = links(store)
    assert found[first][0] == "DR12345678"
    assert found[later][0] == "DR87654321"
    assert found == oracle(store, world.config)


def test_hostile_rows_are_skipped_and_counted(store: ReviewStore, tmp_path: Path) -> None:
    world = World("bridge", tmp_path / "b", store)
    try:
        world.write("DR12345678 done", when=T0)
        good = world.photo(T0 + timedelta(minutes=1))
        db = tmp_path / "b" / "messages.db"
        with sqlite3.connect(db) as conn:
            conn.execute(
                "INSERT INTO messages (id, chat_jid, sender, content, timestamp, media_type) "
                "VALUES ('BADTIME', ?, '27821234567', '', 'not a time', 'image')",
                (LAWLEY,),
            )
            conn.execute(
                "INSERT INTO messages (id, chat_jid, sender, content, timestamp, media_type, "
                "filename, file_sha256, file_length) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    b"BLOBID\xff",
                    LAWLEY.encode(),
                    27821234567,
                    b"DR12345678 \xff caption\x00",
                    1762708590,
                    b"image",
                    12,
                    "not bytes",
                    "big",
                ),
            )
            conn.execute(
                "INSERT INTO messages (id, chat_jid, sender, content, timestamp, media_type, "
                "file_sha256) VALUES ('SHORTHASH', ?, '27821234567', '', ?, 'image', ?)",
                (LAWLEY, "2025-11-09 19:20:00+02:00", b"\x01\x02"),
            )
        conn.close()
        world.sync()
        rows = stored(store)
        assert rows[good]["drop_number"] == "DR12345678"
        assert world.linker.skipped == {} and world.linker.untimed == 1
        assert "BADTIME" in rows  # kept, with the time it was first read
        blob = next(r for k, r in rows.items() if k.startswith("BLOBID"))
        assert blob["media_type"] == "image" and blob["file_sha256"] is None
        assert blob["filename"] == "12" and blob["file_length"] is None
        assert "\x00" not in blob["content"]
        assert blob["drop_number"] == "DR12345678"
        assert rows["SHORTHASH"]["file_sha256"] is None
        assert links(store) == oracle(store, world.config)
    finally:
        world.close()


def _clear(store: ReviewStore) -> None:
    with store.begin() as conn:
        for table in (
            "group_messages", "drop_submissions", "media_cursors", "worker_marks",
            "scan_cursors", "photo_decisions", "review_edits", "qa_photo_reviews",
        ):  # fmt: skip
            conn.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608


_event = st.tuples(
    st.sampled_from(["post", "photo", "photo", "photo"]),
    st.sampled_from([INSTALLER, OTHER_INSTALLER]),
    st.integers(0, 3),  # which drop a post (or a caption) names
    st.integers(-60, 600),  # minutes after T0
    st.booleans(),  # a photo's caption names its drop
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    events=st.lists(_event, min_size=1, max_size=25),
    order=st.randoms(use_true_random=False),
    step=st.integers(1, 7),
)
def test_links_do_not_depend_on_the_order_of_arrival_nor_on_step_sizes(
    store: ReviewStore, tmp_path: Path, events: list[tuple[str, str, int, int, bool]],
    order: random.Random, step: int,
) -> None:  # fmt: skip
    _clear(store)
    world = World("memory", tmp_path, store)
    ids = [f"E{i:03d}" for i in range(len(events))]
    arrival = list(range(len(events)))
    order.shuffle(arrival)
    for n, at in enumerate(arrival):
        kind, sender, drop, minutes, captioned = events[at]
        when = T0 + timedelta(minutes=minutes)
        number = f"DR{10000000 + drop}"
        if kind == "post":
            world.write(f"{number} done", when=when, sender=sender, message_id=ids[at])
        else:
            caption = f"{number} photo" if captioned else ""
            world.photo(when, caption, sender=sender, message_id=ids[at], label=ids[at])
        if order.random() < 0.2:
            world.redeliver(ids[arrival[order.randrange(n + 1)]])
        if order.random() < 0.4:
            world.monitor.scan()
        if order.random() < 0.4:
            world.linker.step(step)
    world.sync(step)
    found = links(store)
    assert len(found) == len(events)
    assert found == oracle(store, world.config)


def _counting(store: ReviewStore) -> list[str]:
    seen: list[str] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def _count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement.split(None, 1)[0].upper())

    return seen


def test_a_step_over_5000_rows_is_a_handful_of_statements(
    store: ReviewStore, tmp_path: Path
) -> None:
    world = World("memory", tmp_path, store)
    for d in range(250):
        base = T0 + timedelta(hours=d)
        sender = f"2782{d % 40:07d}"
        world.write(f"DR{20000000 + d} done", when=base, sender=sender)
        for i in range(19):
            world.photo(base + timedelta(seconds=30 * i), sender=sender, label=f"{d}-{i}")
    world.monitor.scan()
    seen = _counting(store)
    assert world.linker.step(5000) is False
    rows = stored(store)
    assert len(rows) == 5000
    assert all(r["drop_number"] is not None and r["review_id"] is not None for r in rows.values())
    # Not one statement per row: cursors, marks, the posts around the rows, the drops'
    # rounds, decisions, reviews, one upsert, the re-link for the 250 new drop posts.
    assert len(seen) <= 25, seen
    assert links(store) == oracle(store, world.config)


def test_photos_linked_before_their_review_existed_get_it(world: World) -> None:
    world.write("DR12345678 done", when=T0)
    photo = world.photo(T0 + timedelta(minutes=1))
    world.sync()
    with world.store.begin() as conn:
        conn.execute(sa.text("DELETE FROM qa_photo_reviews"))
        conn.execute(sa.update(group_messages).values(review_id=None))
    # The drop is posted again: the scan creates its review anew, the photos get it.
    world.write("DR12345678 resubmitted", when=T0 + timedelta(minutes=5))
    world.sync()
    rid = review_id(world.store, "Lawley", "DR12345678")
    assert rid is not None
    assert stored(world.store)[photo]["review_id"] == rid


def test_a_reviewer_moves_a_photo_to_another_round_and_clears_its_step(world: World) -> None:
    world.write("DR12345678 done", when=T0)
    photo = world.photo(T0 + timedelta(minutes=1))
    resub = world.write("DR12345678 again", when=T0 + timedelta(days=1))
    world.sync()
    photo_id = stored(world.store)[photo]["id"]
    decide_photo(
        world.store, world.config, photo_id, actor="a", round=1, step="step_08_ont_barcode"
    )
    assert links(world.store)[photo] == ("DR12345678", 1, resub, "moved")
    decide_photo(world.store, world.config, photo_id, actor="a", step=None)
    row = stored(world.store)[photo]
    assert row["step"] is None and row["round"] == 1
    # Moved to a drop without naming the round: the round of its post nearest the photo.
    decide_photo(world.store, world.config, photo_id, actor="a", drop_number="DR12345678")
    assert links(world.store)[photo][:2] == ("DR12345678", 0)
    assert links(world.store) == oracle(world.store, world.config)


def test_a_recreated_bridge_store_is_read_again_from_rowid_one(
    store: ReviewStore, tmp_path: Path
) -> None:
    world = World("bridge", tmp_path / "b", store)
    try:
        world.write("DR12345678 done", when=T0)
        first = world.photo(T0 + timedelta(minutes=1))
        for i in range(20):
            world.write(f"chatter {i}", when=T0 + timedelta(minutes=2))
        world.sync()
        # Re-paired: messages.db deleted and started over, rowids from 1 again.
        assert world._writer is not None
        world._writer.close()
        (tmp_path / "b" / "messages.db").unlink()
        world._writer = StoreWriter(tmp_path / "b" / "messages.db", tmp_path / "b" / "wa.db")
        world.source.open()
        world.write("DR87654321 done", when=T0 + timedelta(days=1))
        later = world.photo(T0 + timedelta(days=1, minutes=1))
        world.sync()
        found = links(store)
        assert found[first][0] == "DR12345678"
        assert found[later] == ("DR87654321", 0, found[later][2], "after")
        with store.begin() as conn:
            cursor = conn.execute(
                sa.select(media_cursors.c.last_rowid).where(media_cursors.c.chat_jid == LAWLEY)
            ).scalar_one()
        assert cursor == 2
    finally:
        world.close()


def test_a_caption_from_before_since_follows_its_drops_posts(
    store: ReviewStore, tmp_path: Path
) -> None:
    """A photo posted before the project's `since` is no drop post (the scan leaves it
    out), yet its caption links it; a drop post synced later, earlier in time, moves it."""
    text = PROJECTS_YAML.replace(
        '    description: "Lawley Activation 3 group"\n',
        '    description: "Lawley Activation 3 group"\n    since: 2025-11-09\n',
    )
    world = World("memory", tmp_path, store, config=config_from(text))
    old = world.photo(T0 - timedelta(days=3), "DR12345678 the pole")
    world.write("DR12345678 done", when=T0 + timedelta(hours=1))
    world.sync()
    assert links(store)[old][3] == "caption"
    earlier = world.write("DR12345678 first", when=T0 + timedelta(minutes=10))
    world.sync()
    assert links(store)[old] == ("DR12345678", 0, earlier, "caption")
    assert links(store) == oracle(store, world.config)


def test_new_windows_in_the_projects_file_re_link_the_groups_rows(world: World) -> None:
    post = world.write("DR12345678 done", when=T0)
    late = [world.photo(T0 + timedelta(hours=2, minutes=m)) for m in (10, 20, 30)]
    world.sync()
    assert {links(world.store)[k][0] for k in late} == {None}
    text = PROJECTS_YAML.replace(
        '    description: "Lawley Activation 3 group"\n',
        '    description: "Lawley Activation 3 group"\n    photos_after: 3h\n',
    )
    world.config = config_from(text)
    world.monitor.set_config(world.config)
    world.sync(max_rows=2)  # the group's rows, two per step
    found = links(world.store)
    assert all(found[k] == ("DR12345678", 0, post, "after") for k in late)
    assert found == oracle(world.store, world.config)
    # Nothing left to do once they are re-linked.
    assert world.linker.step() is False
