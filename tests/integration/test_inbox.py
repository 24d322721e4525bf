"""The webhook inbox on both backends: writes in group commits, and the inbox read as a Source.

What the monitor relies on: a (chat, message) is stored once, an edit or a deletion
brings the row back under a higher seq, a cursor read while writers commit never misses
a row, and a real `Monitor` over `InboxSource` records each drop once.
"""

from __future__ import annotations

import random
import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import LAWLEY, OTHER, T0, VELO, config_from, review_state, submissions
from wa_monitor.core.errors import BridgeStoreError, ReviewDatabaseError, ReviewDataError
from wa_monitor.core.gateway_events import (
    InboxDeletion,
    InboxMessage,
    MediaRef,
    SessionStatus,
)
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sources.protocol import Prefilter
from wa_monitor.store.inbox import PG_SEQ_LOCK, InboxRejected, InboxWriter, checked
from wa_monitor.store.inbox_source import InboxSource
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import gateway_inbox, gateway_lids, gateway_sessions, qa_photo_reviews

SENT = T0.timestamp()


def message(
    text: str | None,
    *,
    chat: str = VELO,
    message_id: str | None = None,
    sender: str = "27821234567",
    sender_pn: str | None = None,
    name: str | None = "Thabo Nkosi",
    at: float = SENT,
    **kw: Any,
) -> InboxMessage:
    return InboxMessage(
        gateway="waha",
        chat_jid=chat,
        message_id=message_id or uuid.uuid4().hex[:20].upper(),
        sender=sender,
        sender_pn=sender_pn,
        sender_name=name,
        content=text,
        sent_at=at,
        **kw,
    )


@pytest.fixture
def writer(store: ReviewStore) -> Iterator[InboxWriter]:
    w = InboxWriter(store)
    yield w
    w.close()


def rows(store: ReviewStore) -> dict[str, dict[str, Any]]:
    with store.begin() as conn:
        found = conn.execute(sa.select(gateway_inbox).order_by(gateway_inbox.c.seq)).mappings()
        return {r["message_id"]: dict(r) for r in found}


# -- writes --------------------------------------------------------------------------------


def test_a_message_delivered_again_is_stored_once_and_keeps_its_seq(
    store: ReviewStore, writer: InboxWriter
) -> None:
    first = message("DR12345678 done")
    writer.write([first, first])  # twice in one commit
    source = InboxSource(store)
    version = source.data_version()
    writer.write([first])  # and again later

    [row] = rows(store).values()
    assert (row["content"], row["seq"], row["edited_at"], row["deleted_at"]) == (
        "DR12345678 done",
        1,
        None,
        None,
    )
    assert source.data_version() == version  # nothing for the monitor to read again


def test_an_edit_replaces_the_text_under_a_new_seq_once(
    store: ReviewStore, writer: InboxWriter
) -> None:
    original = message("DR1234567 done")
    other = message("Pole 4 done")
    writer.write([original, other])
    edit = message("DR12345678 done", message_id=original.message_id, edited=True, at=SENT + 60)

    writer.write([edit])
    after_edit = rows(store)[original.message_id]
    writer.write([edit])  # the edit delivered again
    writer.write([original])  # and the original, late: the edit stays
    older = message("DR7654321", message_id=original.message_id, edited=True, at=SENT + 30)
    writer.write([older])  # an earlier edit, delivered late

    row = rows(store)[original.message_id]
    assert row["content"] == "DR12345678 done"
    assert row["edited_at"] == datetime.fromtimestamp(SENT + 60, UTC)
    assert row["sent_at"] == SENT  # when it was posted, not when it was edited
    assert row["seq"] == after_edit["seq"] == 3  # above both rows of the first commit


def test_a_deletion_keeps_the_row_and_its_text_under_a_new_seq(
    store: ReviewStore, writer: InboxWriter
) -> None:
    posted = message("DR12345678 done")
    writer.write([posted, message("Pole 4 done")])
    deleted_at = SENT + 120

    writer.write([InboxDeletion("waha", VELO, posted.message_id, deleted_at)])
    writer.write([InboxDeletion("waha", VELO, posted.message_id, deleted_at + 5)])  # again

    row = rows(store)[posted.message_id]
    assert row["content"] == "DR12345678 done"
    assert row["deleted_at"] == datetime.fromtimestamp(deleted_at, UTC)
    assert row["seq"] == 3
    source = InboxSource(store)
    [deletion] = source.read_deletions(0, source.max_rowid(), [VELO])
    assert (deletion.rowid, deletion.id, deletion.deleted_at) == (3, posted.message_id, deleted_at)
    assert source.read_deletions(0, 3, [LAWLEY]) == []
    assert source.read_deletions(3, 10, [VELO]) == []


def test_a_deletion_before_its_message_stores_what_is_known_then_the_message(
    store: ReviewStore, writer: InboxWriter
) -> None:
    late = message("DR12345678 done", sender="112233445566778@lid", sender_pn="27829999999")
    writer.write([InboxDeletion("waha", VELO, late.message_id, SENT + 60)])
    placeholder = rows(store)[late.message_id]
    assert (placeholder["content"], placeholder["sender"]) == (None, "")

    writer.write([late])

    row = rows(store)[late.message_id]
    assert (row["content"], row["sender"], row["sender_pn"], row["sent_at"]) == (
        "DR12345678 done",
        "112233445566778@lid",
        "27829999999",
        SENT,
    )
    assert row["deleted_at"] is not None  # still deleted
    assert row["seq"] > placeholder["seq"]


def test_a_delivery_with_more_details_updates_and_one_with_fewer_erases_nothing(
    store: ReviewStore, writer: InboxWriter
) -> None:
    bare = message(None, media_type="image")
    writer.write([bare])
    sha = bytes(range(32))
    detailed = message(
        None,
        message_id=bare.message_id,
        media_type="image",
        media=MediaRef(url="http://waha/f.jpg", filename="f.jpg", sha256=sha, length=1234),
    )
    writer.write([detailed])
    seq = rows(store)[bare.message_id]["seq"]
    writer.write([bare])

    row = rows(store)[bare.message_id]
    assert (row["filename"], bytes(row["file_sha256"]), row["file_length"]) == (
        "f.jpg",
        sha,
        1234,
    )
    assert row["seq"] == seq == 2


def test_session_states_keep_the_latest(store: ReviewStore, writer: InboxWriter) -> None:
    writer.write([SessionStatus("waha", "default", "WORKING", SENT + 10)])
    writer.write([SessionStatus("waha", "default", "STARTING", SENT)])  # older, late
    writer.write([SessionStatus("waha", "other", "SCAN_QR_CODE", SENT)])

    with store.begin() as conn:
        found = conn.execute(
            sa.select(gateway_sessions.c.session, gateway_sessions.c.status).order_by("session")
        ).all()
    assert [tuple(r) for r in found] == [("default", "WORKING"), ("other", "SCAN_QR_CODE")]


def test_bad_values_are_refused_before_they_join_a_batch() -> None:
    with pytest.raises(InboxRejected, match="message_id is longer than 100"):
        checked([message("x", message_id="A" * 101)])
    with pytest.raises(InboxRejected, match="sent_at is not a time"):
        checked([message("x", at=float("nan"))])
    with pytest.raises(InboxRejected, match="chat_jid holds a NUL"):
        checked([message("x", chat="12\x00@g.us")])
    [fixed] = checked([message("DR1\x00 \udc80", name="N" * 300)])
    assert isinstance(fixed, InboxMessage)
    assert (fixed.content, fixed.sender_name) == ("DR1\ufffd \ufffd", "N" * 100)


def _hold_sequencer(store: ReviewStore) -> tuple[threading.Event, threading.Event, Future[None]]:
    """Hold the inbox's write lock in another transaction until `release` is set."""
    held, release = threading.Event(), threading.Event()
    done: Future[None] = Future()

    def hold() -> None:
        try:
            with store.begin() as conn:  # SQLite: BEGIN IMMEDIATE takes the write lock
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_SEQ_LOCK})
                else:
                    conn.execute(sa.text("SELECT 1"))
                held.set()
                release.wait(30)
            done.set_result(None)
        except BaseException as exc:
            done.set_exception(exc)

    threading.Thread(target=hold, daemon=True).start()
    assert held.wait(30)
    return held, release, done


def test_a_refused_value_fails_only_its_own_request(store: ReviewStore) -> None:
    writer = InboxWriter(store)
    try:
        _, release, holder = _hold_sequencer(store)
        blocker = writer.submit([message("first")])
        good = writer.submit([message("DR11111111", message_id="GOOD1")])
        # Not `checked`: a value only the database refuses (no sender: NOT NULL).
        bad = writer.submit([message("DR22222222", message_id="BAD", sender=None)])  # type: ignore[arg-type]
        also_good = writer.submit([message("DR33333333", message_id="GOOD2")])
        release.set()
        holder.result(30)

        blocker.result(30)
        good.result(30)
        also_good.result(30)
        with pytest.raises(ReviewDataError):
            bad.result(30)
        assert writer.stats.failed_batches == 1  # the three were committed together, tried
    finally:
        writer.close()
    stored = rows(store)
    assert {"GOOD1", "GOOD2"} <= set(stored)
    assert "BAD" not in stored


def break_commits(store: ReviewStore) -> Callable[[], None]:
    """Make every commit that writes to the inbox fail; returns the repair.

    PostgreSQL: a deferred trigger fails the COMMIT itself (every statement before it
    succeeded). SQLite: a trigger whose table is gone fails the writes.
    """
    with store.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("CREATE TABLE inbox_gone (x int)"))
            conn.execute(
                sa.text(
                    "CREATE FUNCTION inbox_fail() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN INSERT INTO inbox_gone VALUES (1); RETURN NULL; END $$"
                )
            )
            conn.execute(
                sa.text(
                    "CREATE CONSTRAINT TRIGGER inbox_fail AFTER INSERT OR UPDATE ON "
                    "gateway_inbox DEFERRABLE INITIALLY DEFERRED FOR EACH ROW "
                    "EXECUTE FUNCTION inbox_fail()"
                )
            )
        else:
            conn.execute(sa.text("CREATE TABLE inbox_gone (x int)"))
            conn.execute(
                sa.text(
                    "CREATE TRIGGER inbox_fail AFTER INSERT ON gateway_inbox "
                    "BEGIN INSERT INTO inbox_gone VALUES (1); END"
                )
            )
        conn.execute(sa.text("DROP TABLE inbox_gone"))

    def repair() -> None:
        with store.begin() as conn:
            conn.execute(sa.text("CREATE TABLE inbox_gone (x int)"))

    return repair


def test_a_failed_commit_fails_every_request_of_its_batch_and_stores_nothing(
    store: ReviewStore,
) -> None:
    writer = InboxWriter(store)
    try:
        repair = break_commits(store)
        _, release, holder = _hold_sequencer(store)
        first = writer.submit([message("DR11111111", message_id="ONE")])
        second = writer.submit([message("DR22222222", message_id="TWO")])
        release.set()
        holder.result(30)
        for request in (first, second):
            with pytest.raises(ReviewDatabaseError) as failed:
                request.result(30)
            assert not isinstance(failed.value, ReviewDataError)
        assert rows(store) == {}

        repair()  # the gateway delivers again: stored once
        writer.write([message("DR11111111", message_id="ONE")], timeout=30)
    finally:
        writer.close()
    assert set(rows(store)) == {"ONE"}


# -- ordering under concurrent writers -----------------------------------------------------


def test_a_cursor_read_while_writers_commit_misses_no_row(store: ReviewStore) -> None:
    # Several writers (as several `serve` processes would have) and many requests each:
    # commits interleave, and a reader following max(seq) must see every row once.
    writers = [InboxWriter(store) for _ in range(3)]
    per_thread, threads_n = 60, 12
    written: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()
    seen: list[tuple[int, str]] = []
    failures: list[BaseException] = []

    def write(n: int) -> None:
        rng = random.Random(n)
        try:
            for i in range(per_thread):
                batch = [
                    message(f"DR{n:02d}{i:06d}", message_id=f"M{n}-{i}-{j}")
                    for j in range(rng.randint(1, 3))
                ]
                writers[n % len(writers)].write(batch, timeout=60)
                with lock:
                    written.extend(m.message_id for m in batch)
        except BaseException as exc:
            failures.append(exc)

    def read() -> None:
        source = InboxSource(store)
        cursor = 0
        try:
            while True:
                finished = stop.is_set()
                high = source.max_rowid()
                for row in source.read_messages(cursor, high, [VELO]):
                    seen.append((row.rowid, row.id))
                cursor = high
                if finished:
                    return
        except BaseException as exc:
            failures.append(exc)

    reader = threading.Thread(target=read)
    reader.start()
    threads = [threading.Thread(target=write, args=(n,)) for n in range(threads_n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    stop.set()
    reader.join(120)
    for w in writers:
        w.close()

    assert not failures, failures
    ids = [message_id for _, message_id in seen]
    assert len(ids) == len(set(ids))  # nothing twice
    assert set(ids) == set(written) == set(rows(store))  # nothing missed
    assert [seq for seq, _ in seen] == sorted(seq for seq, _ in seen)
    assert sum(w.stats.events for w in writers) == len(written)


# -- the Source contract -------------------------------------------------------------------


def test_the_source_answers_rowid_questions_by_seq(store: ReviewStore, writer: InboxWriter) -> None:
    source = InboxSource(store)
    assert (source.max_rowid(), source.next_rowid(0), source.anchor(10)) == (0, None, None)
    assert not source.replaced()
    a, b = message("DR1", chat=VELO), message("DR2", chat=LAWLEY)
    writer.write([a, b])

    assert (source.max_rowid(), source.next_rowid(0), source.next_rowid(1)) == (2, 1, 2)
    assert source.next_rowid(2) is None
    anchor = source.anchor(1)
    assert anchor == f"1 {VELO} {a.message_id}"
    assert not source.anchor_moved_back(anchor)
    with store.begin() as conn:  # the inbox emptied (restored from an older backup…)
        conn.execute(sa.delete(gateway_inbox))
    assert source.anchor_moved_back(anchor)
    assert not source.anchor_moved_back("not an anchor")


def test_read_range_prefilters_on_the_literal_and_counts_each_group(
    store: ReviewStore, writer: InboxWriter
) -> None:
    writer.write(
        [
            message("dr12345678 done", message_id="LOWER"),
            message("DR12345678 100%_done", message_id="UPPER"),
            message("Pole 4 done", message_id="CHAT"),
            message(None, message_id="PHOTO", media_type="image"),
            message("DR55555555", chat=LAWLEY, message_id="LAWLEY"),
            message("DR66666666", chat=OTHER, message_id="OTHER"),
        ]
    )
    source = InboxSource(store)

    loose = source.read_range(0, 10, {"dr": [VELO]})
    assert [r.id for r in loose.rows] == ["LOWER", "UPPER"]
    assert loose.counts == {VELO: 4}
    exact = source.read_range(0, 10, {Prefilter("DR", case_sensitive=True): [VELO]})
    assert "UPPER" in [r.id for r in exact.rows] and "CHAT" not in [r.id for r in exact.rows]
    wildcard = source.read_range(0, 10, {"100%_": [VELO]})  # LIKE's wildcards are text
    assert [r.id for r in wildcard.rows] == ["UPPER"]
    everything = source.read_range(0, 10, {None: [VELO], "DR": [LAWLEY]})
    assert [r.id for r in everything.rows] == ["LOWER", "UPPER", "CHAT", "LAWLEY"]
    assert everything.counts == {VELO: 4, LAWLEY: 1}
    [row] = source.read_range(1, 2, {"dr": [VELO]}).rows
    assert (row.rowid, row.timestamp, row.media) == (2, SENT, False)
    assert source.read_range(0, 10, {}).rows == []


def test_read_messages_hands_over_texts_and_media(store: ReviewStore, writer: InboxWriter) -> None:
    sha = bytes(range(32))
    writer.write(
        [
            message("DR12345678", message_id="TEXT"),
            message(
                "caption",
                message_id="PHOTO",
                media_type="image",
                media=MediaRef(filename="p.jpg", sha256=sha, length=99),
            ),
            message("DR55555555", chat=LAWLEY, message_id="ELSEWHERE"),
        ]
    )
    found = InboxSource(store).read_messages(0, 10, [VELO])
    assert [(m.rowid, m.id, m.media_type) for m in found] == [
        (1, "TEXT", None),
        (2, "PHOTO", "image"),
    ]
    photo = found[1]
    assert (photo.content, photo.filename, photo.file_sha256, photo.file_length) == (
        "caption",
        "p.jpg",
        sha,
        99,
    )


def test_senders_resolve_to_the_phone_beside_a_lid_then_the_looked_up_one(
    store: ReviewStore, writer: InboxWriter
) -> None:
    writer.write(
        [
            message("DR1", sender="111@lid", sender_pn="27821111111@s.whatsapp.net", name="Ann"),
            message("DR2", sender="222@lid", sender_pn=None, name=None),
            message("DR3", sender="27823333333@s.whatsapp.net", name=None),
        ]
    )
    with store.begin() as conn:
        conn.execute(
            sa.insert(gateway_lids).values(
                lid="222@lid", phone="27822222222", name="Ben", gateway="waha"
            )
        )
    source = InboxSource(store)
    source.read_range(0, 10, {None: [VELO]})  # as the monitor does before resolving

    found = source.resolve_senders(["111@lid", "222@lid", "27823333333@s.whatsapp.net"])
    assert {raw: (s.phone, s.name) for raw, s in found.items()} == {
        "111@lid": ("27821111111", "Ann"),
        "222@lid": ("27822222222", "Ben"),
        "27823333333@s.whatsapp.net": ("27823333333", "27823333333"),
    }
    # A fresh source (nothing read yet) finds the same in the inbox.
    assert InboxSource(store).resolve_senders(["111@lid"])["111@lid"].name == "Ann"


def test_an_unreachable_database_is_a_source_error_the_monitor_retries(tmp_path: Any) -> None:
    store = ReviewStore(f"sqlite:///{tmp_path / 'missing' / 'no.db'}")
    try:
        with pytest.raises(BridgeStoreError, match="webhook inbox"):
            InboxSource(store).max_rowid()
    finally:
        store.dispose()


# -- a real monitor over the inbox ---------------------------------------------------------


def monitor_over(store: ReviewStore) -> Monitor[InboxSource]:
    return Monitor(config_from(), InboxSource(store), store)


def test_the_monitor_records_inbox_drops_and_resubmissions_once(
    store: ReviewStore, writer: InboxWriter
) -> None:
    first = message(
        "DR12345678 done, all photos attached",
        sender="111@lid",
        sender_pn="27821111111",
        name="Thabo Nkosi",
    )
    writer.write([first, message("Pole 4 done"), message("DR55555555", chat=LAWLEY)])
    monitor = monitor_over(store)

    summary = monitor.scan()

    assert summary.new == {"Velo Test": 1, "Lawley": 1}
    review = {r["drop_number"]: r for r in store.reviews()}["DR12345678"]
    assert (review["submitted_by"], review["user_name"]) == ("27821111111", "Thabo Nkosi")
    assert review["whatsapp_message_date"] == T0.astimezone(UTC)

    with store.begin() as conn:  # feedback sent: the next post is a resubmission
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.drop_number == "DR12345678")
            .values(incomplete=True, feedback_sent=T0 + timedelta(hours=1))
        )
    writer.write([message("DR12345678 fixed", at=SENT + 7200)])
    assert monitor.scan().resubmitted == {"Velo Test": 1}
    before = review_state(store), submissions(store)

    # Everything delivered again, an edit naming the same drop: nothing recorded twice.
    writer.write([first, message("DR55555555", chat=LAWLEY, message_id="x")])
    writer.write([message("DR12345678 done!", message_id=first.message_id, edited=True)])
    monitor.scan()
    monitor.scan()

    state, logged = review_state(store), submissions(store)
    assert {k: v for k, v in state.items() if k != ("Lawley", "DR55555555")} == {
        k: v for k, v in before[0].items() if k != ("Lawley", "DR55555555")
    }
    assert len([s for s in logged if s["drop_number"] == "DR12345678"]) == 2
    assert len(state) == 2


def test_the_monitor_sees_rows_committed_while_it_scans(store: ReviewStore) -> None:
    # Drops posted while the monitor runs: each becomes one review, none is missed.
    writer = InboxWriter(store)
    monitor = monitor_over(store)
    drops = [f"DR{n:08d}" for n in range(1, 201)]
    stop = threading.Event()
    scanner = threading.Thread(target=monitor.run, args=(stop, 5.0), kwargs={"poll": 0.005})
    scanner.start()
    try:
        futures = [writer.submit([message(f"{d} done", message_id=f"ID{d}")]) for d in drops]
        for f in futures:
            f.result(60)
        from tests.helpers import wait_until

        wait_until(lambda: len(store.reviews()) == len(drops), timeout=60)
    finally:
        stop.set()
        scanner.join(30)
        writer.close()
    assert sorted(r["drop_number"] for r in store.reviews()) == drops
    assert len(submissions(store)) == len(drops)
