"""The monitor end to end over a source and a real review database (both backends).

Each test that is about the monitor's logic runs over both sources: the bridge's real
SQLite store, and the in-memory source, which must keep the same promises.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import random
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import (
    _OPEN,
    LAWLEY,
    MOHADIN,
    OTHER,
    PROJECTS_YAML,
    SAST,
    T0,
    VELO,
    Bridge,
    config_from,
    review_state,
    submissions,
)
from tests.helpers import make_monitor as make_bridge_monitor
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import ReviewDatabaseError, WaMonitorError
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sources.memory import InMemorySource, Media
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import qa_photo_reviews


@dataclass
class BridgeMessages:
    """Messages written to a real bridge store, read by BridgeStore."""

    directory: Path
    bridge: Bridge = field(init=False)

    def __post_init__(self) -> None:
        self.bridge = Bridge(self.directory)

    def post(
        self, chat_jid: str, content: str | None, *, rowid: int | None = None, **kw: Any
    ) -> tuple[str, int]:
        if rowid is None:
            return self.bridge.post(chat_jid, content, **kw)
        # A row at a chosen rowid (a gap), written as a repair tool would.
        message_id = kw.get("message_id") or uuid.uuid4().hex[:20].upper()
        when = kw.get("when", T0)
        with sqlite3.connect(self.bridge.messages_db) as conn:
            conn.execute(
                "INSERT INTO messages (rowid, id, chat_jid, sender, content, timestamp, "
                "is_from_me, media_type, filename, url, file_length) "
                "VALUES (?, ?, ?, ?, ?, ?, 0, '', '', '', 0)",
                (
                    rowid,
                    message_id,
                    chat_jid,
                    kw.get("sender", "27821234567"),
                    content,
                    self.bridge.writer.timestamp(when),
                ),
            )
        conn.close()
        return message_id, rowid

    def chatter(self, chat_jid: str, n: int, when: datetime = T0) -> None:
        self.bridge.chatter(chat_jid, n, when)

    def redeliver(self, chat_jid: str, message_id: str) -> int:
        return self.bridge.redeliver(chat_jid, message_id)

    def member(self, phone: str, *, lid: str | None = None, name: str | None = None) -> None:
        self.bridge.member(phone, lid=lid, name=name)

    def recreate(self) -> None:
        """Re-pairing: operators delete messages.db; the bridge starts over at rowid 1."""
        self.bridge.close()
        self.bridge.messages_db.unlink()
        self.bridge = Bridge(self.directory)

    def monitor(self, url: str, config: ProjectsConfig | None, chunk: int) -> Monitor[Any]:
        return make_bridge_monitor(self.bridge, url, config, chunk=chunk)


@dataclass
class MemoryMessages:
    """The same messages in an InMemorySource."""

    source: InMemorySource = field(default_factory=InMemorySource)

    def post(
        self,
        chat_jid: str,
        content: str | None,
        *,
        sender: str = "27821234567",
        when: datetime = T0,
        message_id: str | None = None,
        media_type: str = "",
        timestamp: str | None = None,
        rowid: int | None = None,
    ) -> tuple[str, int]:
        message_id = message_id or uuid.uuid4().hex[:20].upper()
        written = timestamp if timestamp is not None else when
        media = Media(media_type) if media_type else None
        return message_id, self.source.store(
            chat_jid, message_id, sender, content, written, rowid=rowid, media=media
        )

    def chatter(self, chat_jid: str, n: int, when: datetime = T0) -> None:
        for i in range(n):
            self.post(chat_jid, f"Pole {i} done, moving on", when=when + timedelta(seconds=i))

    def redeliver(self, chat_jid: str, message_id: str) -> int:
        return self.source.redeliver(chat_jid, message_id)

    def member(self, phone: str, *, lid: str | None = None, name: str | None = None) -> None:
        self.source.member(phone, lid=lid, name=name)

    def recreate(self) -> None:
        self.source.recreate()

    def monitor(self, url: str, config: ProjectsConfig | None, chunk: int) -> Monitor[Any]:
        self.source.open()
        monitor = Monitor(config or config_from(), self.source, ReviewStore(url), chunk=chunk)
        _OPEN.append(monitor)
        return monitor


Messages = BridgeMessages | MemoryMessages


@pytest.fixture(params=["bridge", "memory"])
def new_source(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[str], Messages]:
    def make(name: str) -> Messages:
        if request.param == "bridge":
            return BridgeMessages(tmp_path / name)
        return MemoryMessages()

    return make


@pytest.fixture
def bridge(new_source: Callable[[str], Messages]) -> Messages:
    return new_source("store")


def make_monitor(
    messages: Messages, url: str, config: ProjectsConfig | None = None, *, chunk: int = 100_000
) -> Monitor[Any]:
    return messages.monitor(url, config, chunk)


def test_new_drop_is_recorded_with_sender_and_dates(bridge: Messages, db_url: str) -> None:
    bridge.member("27821234567", name="Thabo Nkosi")
    late_evening = datetime(2025, 11, 9, 23, 30, tzinfo=SAST)  # 21:30 UTC: same SAST day
    bridge.post(VELO, "DR12345678 done, all photos attached", when=late_evening)
    monitor = make_monitor(bridge, db_url)

    summary = monitor.scan()

    assert summary.new == {"Velo Test": 1}
    [review] = monitor.store.reviews()
    assert review["drop_number"] == "DR12345678"
    assert review["project"] == "Velo Test"
    assert review["user_name"] == "Thabo Nkosi"
    assert review["submitted_by"] == "27821234567"
    assert review["whatsapp_message_date"] == late_evening.astimezone(UTC)
    assert review["review_date"] == date(2025, 11, 9)  # the business zone's date, not UTC's
    assert (review["resubmitted"], review["incomplete"], review["completed"]) == (
        False,
        False,
        False,
    )
    assert review["feedback_sent"] is None
    [logged] = submissions(monitor.store)
    assert (logged["kind"], logged["sender"], logged["project"]) == (
        "new",
        "27821234567",
        "Velo Test",
    )


def test_lid_sender_is_resolved_to_phone_and_name(bridge: Messages, db_url: str) -> None:
    # FIELD_NOTES bug 3: LIDs are digits too; only the lid map tells them apart.
    bridge.member("27829999999", lid="112233445566778", name="Sipho Dlamini")
    bridge.post(VELO, "DR11111111", sender="112233445566778")
    bridge.post(VELO, "DR22222222", sender="112233445566778@lid")
    bridge.post(VELO, "DR33333333", sender="27829999999@s.whatsapp.net")
    bridge.post(VELO, "DR44444444", sender="27820000000")  # unknown contact: the phone
    monitor = make_monitor(bridge, db_url)
    monitor.scan()

    by_drop = {r["drop_number"]: r for r in monitor.store.reviews()}
    for drop in ("DR11111111", "DR22222222", "DR33333333"):
        assert by_drop[drop]["submitted_by"] == "27829999999"
        assert by_drop[drop]["user_name"] == "Sipho Dlamini"
    assert by_drop["DR44444444"]["user_name"] == "27820000000"


def test_resubmission_updates_the_review(bridge: Messages, db_url: str) -> None:
    bridge.member("27821111111", name="First Installer")
    bridge.member("27822222222", name="Second Installer")
    bridge.post(VELO, "DR12345678", sender="27821111111", when=T0)
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    # A reviewer sent feedback and marked it incomplete.
    with monitor.store.engine.begin() as conn:
        conn.execute(
            sa.update(qa_photo_reviews).values(
                incomplete=True,
                feedback_sent=T0 + timedelta(hours=1),
                comment="Reviewer: redo step 3",
            )
        )
    later = T0 + timedelta(hours=2)
    bridge.post(VELO, "Resubmitting DR12345678 fixed", sender="27822222222", when=later)

    summary = monitor.scan()

    assert summary.resubmitted == {"Velo Test": 1}
    [review] = monitor.store.reviews()
    assert review["resubmitted"] is True
    assert review["incomplete"] is False
    assert review["feedback_sent"] is not None  # kept: the post after it is a resubmission
    assert review["review_state"] == "resubmitted"
    assert review["user_name"] == "Second Installer"
    assert review["submitted_by"] == "27822222222"
    assert review["whatsapp_message_date"] == T0.astimezone(UTC)  # still the first post
    lines = review["comment"].splitlines()
    assert lines[0] == "Reviewer: redo step 3"  # earlier text kept
    assert lines[1] == "🔄 Resubmitted 2025-11-09 21:15 SAST by Second Installer"
    kinds = sorted(s["kind"] for s in submissions(monitor.store))
    assert kinds == ["new", "resubmission"]


def test_redelivered_message_changes_nothing(bridge: Messages, db_url: str) -> None:
    message_id, rowid = bridge.post(VELO, "DR12345678")
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    before = review_state(monitor.store), submissions(monitor.store)

    new_rowid = bridge.redeliver(VELO, message_id)
    summary = monitor.scan()

    assert new_rowid > rowid
    assert summary.drops == 0
    assert (review_state(monitor.store), submissions(monitor.store)) == before


def test_a_redelivery_beside_a_captioned_photo_of_a_new_drop_records_the_drop(
    bridge: Messages, db_url: str
) -> None:
    """A re-delivered post makes the batch plan again without it; a captioned photo the
    first plan left out (its drop named by a text of the batch, or known) must not be
    taken for another monitor's work."""
    message_id, _ = bridge.post(VELO, "DR12345678")
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    bridge.redeliver(VELO, message_id)
    bridge.post(VELO, "DR87654321 house", media_type="image", when=T0 + timedelta(minutes=1))
    bridge.post(VELO, "DR87654321 pole", media_type="image", when=T0 + timedelta(minutes=2))
    summary = monitor.scan()
    assert summary.drops == 1
    states = {drop: r for (_, drop), r in review_state(monitor.store).items()}
    assert set(states) == {"DR12345678", "DR87654321"}
    assert states["DR87654321"]["resubmitted"] is False
    assert sorted((s["drop_number"], s["kind"]) for s in submissions(monitor.store)) == [
        ("DR12345678", "new"),
        ("DR87654321", "new"),
    ]


def test_random_message_ids_are_not_a_cursor(bridge: Messages, db_url: str) -> None:
    # FIELD_NOTES bug 1: 'ABCD…' then '3EB0…': an id cursor would skip the second.
    bridge.post(VELO, "DR11111111", message_id="ABCDEF0123456789")
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    bridge.post(VELO, "DR22222222", message_id="3EB0C767D71D3AB3C9A1")
    monitor.scan()
    assert {r["drop_number"] for r in monitor.store.reviews()} == {"DR11111111", "DR22222222"}


def test_history_synced_old_message_is_processed(bridge: Messages, db_url: str) -> None:
    bridge.post(VELO, "DR12345678 again", when=T0 + timedelta(days=1))
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    # After an outage, history sync stores the ORIGINAL post: old timestamp, new rowid.
    bridge.post(VELO, "DR12345678", when=T0, sender="27821234567@s.whatsapp.net")
    bridge.post(VELO, "DR87654321", when=T0 - timedelta(days=2))

    monitor.scan()

    by_drop = {r["drop_number"]: r for r in monitor.store.reviews()}
    assert by_drop["DR12345678"]["whatsapp_message_date"] == T0.astimezone(UTC)
    assert by_drop["DR12345678"]["review_date"] == date(2025, 11, 9)
    assert by_drop["DR12345678"]["resubmitted"] is True
    assert "DR87654321" in by_drop


def test_final_state_does_not_depend_on_storage_order(
    new_source: Callable[[str], Messages], tmp_path: Path, db_url: str
) -> None:
    posts = [
        (VELO, "DR12345678", "27821111111", T0),
        (VELO, "DR12345678 fixed", "27822222222", T0 + timedelta(hours=1)),
        (VELO, "DR12345678 fixed again", "27823333333", T0 + timedelta(hours=3)),
        (LAWLEY, "DR12345678", "27821111111", T0 + timedelta(hours=2)),
        (VELO, "DR55555555", "27821111111", T0 + timedelta(minutes=5)),
    ]
    states = []
    for n, order in enumerate(
        itertools.islice(itertools.permutations(range(len(posts))), 0, 120, 23)
    ):
        bridge = new_source(f"order{n}")
        for i in order:
            jid, text, sender, when = posts[i]
            bridge.post(jid, text, sender=sender, when=when, message_id=f"MSG{i:04d}")
        url = db_url if n == 0 else _fresh_copy(db_url, tmp_path, n)
        monitor = make_monitor(bridge, url, chunk=1)  # one message per batch: worst case
        monitor.scan()
        state = review_state(monitor.store)
        for row in state.values():
            row.pop("comment")
        states.append(state)
        monitor.store.dispose()
    assert all(s == states[0] for s in states)
    velo = states[0][("Velo Test", "DR12345678")]
    assert velo["whatsapp_message_date"] == T0.astimezone(UTC)
    assert velo["resubmitted"] is True
    assert velo["submitted_by"] == "27823333333"
    assert states[0][("Lawley", "DR12345678")]["resubmitted"] is False
    assert states[0][("Velo Test", "DR55555555")]["resubmitted"] is False


def _fresh_copy(db_url: str, tmp_path: Path, n: int) -> str:
    """Another empty database of the same backend: clear the tables of the given one."""
    store = ReviewStore(db_url)
    with store.engine.begin() as conn:
        for table in ("drop_submissions", "scan_cursors", "qa_photo_reviews"):
            conn.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 (fixed names)
    store.dispose()
    return db_url


def test_same_drop_in_two_groups_gives_two_reviews(bridge: Messages, db_url: str) -> None:
    # FIELD_NOTES bug 6.
    bridge.post(LAWLEY, "DR12345678")
    bridge.post(VELO, "DR12345678")
    monitor = make_monitor(bridge, db_url)
    summary = monitor.scan()
    assert summary.new == {"Lawley": 1, "Velo Test": 1}
    assert {(r["project"], r["resubmitted"]) for r in monitor.store.reviews()} == {
        ("Lawley", False),
        ("Velo Test", False),
    }


def test_one_message_naming_several_drops(bridge: Messages, db_url: str) -> None:
    bridge.post(VELO, "DR11111111 and DR22222222 done (DR11111111 again)")
    monitor = make_monitor(bridge, db_url)
    summary = monitor.scan()
    assert summary.new == {"Velo Test": 2}
    assert len(submissions(monitor.store)) == 2


def test_only_enabled_groups_are_monitored(bridge: Messages, db_url: str) -> None:
    bridge.post(MOHADIN, "DR11111111")  # disabled project
    bridge.post(OTHER, "DR22222222")  # not configured
    bridge.post(VELO, "DR33333333")
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    assert [r["drop_number"] for r in monitor.store.reviews()] == ["DR33333333"]


def test_per_project_pattern_and_since(bridge: Messages, db_url: str) -> None:
    # FIELD_NOTES bug 9: 6/7 digits, a space, lower case.
    config = config_from(
        PROJECTS_YAML.replace(
            '    description: "Velo Test group"\n',
            '    description: "Velo Test group"\n'
            "    drop_pattern: '(?i)\\bDR\\s?\\d{6,8}\\b'\n"
            "    since: 2025-11-01\n",
        )
    )
    bridge.post(VELO, "DR1752169 done", when=T0)
    bridge.post(VELO, "dr 470114 done", when=T0)
    bridge.post(VELO, "DR１２３４５６７８ (full-width digits are not a drop)", when=T0)
    bridge.post(VELO, "DR7777777 posted before `since`", when=datetime(2025, 10, 30, tzinfo=SAST))
    bridge.post(LAWLEY, "DR1752169 (default pattern needs 8 digits)", when=T0)
    monitor = make_monitor(bridge, db_url, config)
    monitor.scan()
    assert sorted((r["project"], r["drop_number"]) for r in monitor.store.reviews()) == [
        ("Velo Test", "DR1752169"),
        ("Velo Test", "DR470114"),
    ]


def test_cursor_survives_a_restart(bridge: Messages, db_url: str) -> None:
    # FIELD_NOTES bug 2: state persisted with the rows it produced.
    bridge.post(VELO, "DR11111111")
    first = make_monitor(bridge, db_url)
    first.scan()
    first.store.dispose()
    bridge.post(VELO, "DR22222222")
    restarted = make_monitor(bridge, db_url)
    summary = restarted.scan()
    assert summary.new == {"Velo Test": 1}
    assert summary.messages == 1  # only the new message was read
    assert len(submissions(restarted.store)) == 2


def test_a_failed_batch_leaves_nothing_half_done(bridge: Messages, db_url: str) -> None:
    bridge.post(VELO, "DR11111111")
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    bridge.post(VELO, "DR11111111 resubmitted")
    bridge.post(VELO, "DR22222222")

    def crash_on_review_insert(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "INSERT INTO qa_photo_reviews" in statement:
            raise ReviewDatabaseError("connection lost (injected)")

    sa.event.listen(monitor.store.engine, "before_cursor_execute", crash_on_review_insert)
    with pytest.raises(ReviewDatabaseError):
        monitor.scan()
    sa.event.remove(monitor.store.engine, "before_cursor_execute", crash_on_review_insert)
    # The submissions log, the review and the cursor rolled back together.
    assert len(submissions(monitor.store)) == 1
    monitor.forget_cursors()
    summary = monitor.scan()
    assert (summary.new, summary.resubmitted) == ({"Velo Test": 1}, {"Velo Test": 1})
    assert len(submissions(monitor.store)) == 3


def test_recreated_store_is_rescanned_without_duplicates(
    bridge: Messages, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bridge.chatter(VELO, 20)
    original, _ = bridge.post(VELO, "DR11111111")
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    # Re-pairing: operators delete messages.db; the bridge starts over at rowid 1 and
    # history sync brings back some old messages.
    bridge.recreate()
    bridge.post(VELO, "DR11111111", message_id=original)  # the same message, synced again
    bridge.post(VELO, "DR22222222")
    monitor.source.open()

    with caplog.at_level(logging.WARNING, logger="wa_monitor"):
        summary = monitor.scan()

    assert "messages.db was re-created" in caplog.text
    assert summary.new == {"Velo Test": 1}
    assert sorted(r["drop_number"] for r in monitor.store.reviews()) == ["DR11111111", "DR22222222"]


def test_recreated_store_grown_past_the_cursor_is_noticed(bridge: Messages, db_url: str) -> None:
    bridge.post(VELO, "DR11111111")
    monitor = make_monitor(bridge, db_url)
    monitor.scan()
    bridge.recreate()
    bridge.post(VELO, "DR22222222")  # rowid 1: at or below the old cursor
    bridge.chatter(VELO, 10)
    monitor.source.open()
    summary = monitor.scan()
    assert summary.new == {"Velo Test": 1}
    assert sorted(r["drop_number"] for r in monitor.store.reviews()) == ["DR11111111", "DR22222222"]


def test_hostile_message_content_is_data(bridge: Messages, db_url: str) -> None:
    bridge.post(VELO, None, media_type="image")
    bridge.post(VELO, "", media_type="image")
    bridge.post(VELO, "'); DROP TABLE qa_photo_reviews; -- DR11111111")
    bridge.post(VELO, "x" * 1_000_000 + " DR22222222 " + "y" * 1000)
    bridge.post(VELO, "emoji 📸🔥 DR33333333 ✅ ∂ƒ©", sender="27821234567\x00<script>")
    bridge.post(VELO, "DR44444444", message_id="Z" * 300)  # absurdly long id
    bridge.post(VELO, "DR55555555", timestamp="not a time")
    monitor = make_monitor(bridge, db_url)
    summary = monitor.scan()
    assert summary.new == {"Velo Test": 5}
    drops = sorted(r["drop_number"] for r in monitor.store.reviews())
    assert drops == ["DR11111111", "DR22222222", "DR33333333", "DR44444444", "DR55555555"]
    assert all(d.isascii() for d in drops)


def test_scan_never_writes_to_the_bridge_store(tmp_path: Path, db_url: str) -> None:
    bridge = Bridge(tmp_path / "store")
    bridge.chatter(VELO, 50)
    bridge.post(VELO, "DR12345678")
    bridge.close()
    before = hashlib.sha256(bridge.messages_db.read_bytes()).hexdigest()
    mtime = bridge.messages_db.stat().st_mtime_ns
    monitor = make_bridge_monitor(bridge, db_url)
    monitor.scan()
    monitor.source.close()
    assert hashlib.sha256(bridge.messages_db.read_bytes()).hexdigest() == before
    assert bridge.messages_db.stat().st_mtime_ns == mtime
    assert not bridge.messages_db.with_name("messages.db-journal").exists()


def test_many_batches_give_the_same_result_as_one(
    new_source: Callable[[str], Messages], db_url: str
) -> None:
    rng = random.Random(7)
    bridge = new_source("store")
    for i in range(300):
        jid = rng.choice([VELO, LAWLEY, OTHER])
        text = f"DR{rng.randrange(10**7, 10**7 + 40):08d}" if rng.random() < 0.3 else "chatter"
        bridge.post(jid, text, when=T0 + timedelta(minutes=i), sender=f"2782{rng.randrange(5):07d}")
    one = make_monitor(bridge, db_url)
    one.scan()
    expected = review_state(one.store)
    with one.store.engine.begin() as conn:
        for table in ("drop_submissions", "scan_cursors", "qa_photo_reviews"):
            conn.execute(sa.text(f"DELETE FROM {table}"))  # noqa: S608 (fixed names)
    many = make_monitor(bridge, db_url, chunk=7)
    many.scan()
    assert review_state(many.store) == expected
    assert len(expected) > 10


def test_rowid_gaps_cost_no_message(bridge: Messages, db_url: str) -> None:
    bridge.post(VELO, "DR11111111")
    bridge.post(VELO, "DR22222222", rowid=10**12)  # far above: a repair tool, a fork
    bridge.post(VELO, "DR33333333")  # the bridge goes on above it
    monitor = make_monitor(bridge, db_url, chunk=100)
    summary = monitor.scan()
    assert summary.messages == 3
    assert sorted(r["drop_number"] for r in monitor.store.reviews()) == [
        "DR11111111",
        "DR22222222",
        "DR33333333",
    ]
    bridge.post(VELO, "DR44444444")
    assert make_monitor(bridge, db_url, chunk=100).scan().new == {"Velo Test": 1}


def test_hooks_are_told_each_scan_and_each_error(bridge: Messages, db_url: str) -> None:
    bridge.post(VELO, "DR11111111")
    errors: list[WaMonitorError] = []
    durations: list[float] = []
    monitor = make_monitor(bridge, db_url)
    monitor.on_error, monitor.on_scanned = errors.append, durations.append
    monitor.scan()
    assert errors == [] and len(durations) == 1 and durations[0] >= 0

    def crash(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "INSERT INTO qa_photo_reviews" in statement:
            raise ReviewDatabaseError("connection lost (injected)")

    bridge.post(VELO, "DR22222222")
    sa.event.listen(monitor.store.engine, "before_cursor_execute", crash)
    with pytest.raises(ReviewDatabaseError) as raised:
        monitor.scan()
    sa.event.remove(monitor.store.engine, "before_cursor_execute", crash)
    assert errors == [raised.value]
    assert len(durations) == 1  # only completed scans are timed
