"""Posts deleted in WhatsApp, through the real monitor, on both review backends.

Each test runs over the bridge's real SQLite store (with the `deleted_messages` table
`wa-monitor bridge` keeps) and over the in-memory source, which keep the same promise: a
deletion stores the message's row again and names it deleted.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Protocol

import pytest
import sqlalchemy as sa

from tests.helpers import LAWLEY, T0, Bridge, config_from, submissions
from tests.integration.test_api_support import (
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    settings_for,
)
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.sources.memory import InMemorySource
from wa_monitor.sources.protocol import Source
from wa_monitor.store.review_store import DeletedPost, ReviewStore
from wa_monitor.store.schema import qa_photo_reviews
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app


class Group(Protocol):
    source: Source

    def post(self, text: str, when: datetime = T0) -> str: ...
    def delete(self, message_id: str, when: datetime) -> None: ...


class MemoryGroup:
    def __init__(self) -> None:
        self.source = InMemorySource()
        self._n = 0

    def post(self, text: str, when: datetime = T0) -> str:
        self._n += 1
        message_id = f"M{self._n:04d}"
        self.source.store(LAWLEY, message_id, "27821234567", text, when)
        return message_id

    def delete(self, message_id: str, when: datetime) -> None:
        self.source.delete(LAWLEY, message_id, when)


class BridgeGroup:
    """A bridge store written as `wa-monitor bridge` writes a deletion."""

    def __init__(self, directory: Path) -> None:
        self.bridge = Bridge(directory)
        self.bridge.post(LAWLEY, "hello")  # the store exists before it is opened
        with sqlite3.connect(self.bridge.messages_db) as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS deleted_messages (id TEXT, chat_jid TEXT, "
                "deleted_at TIMESTAMP, PRIMARY KEY (id, chat_jid))"
            )
        conn.close()
        self.source: BridgeStore = self.bridge.reader()

    def post(self, text: str, when: datetime = T0) -> str:
        return self.bridge.post(LAWLEY, text, when=when)[0]

    def delete(self, message_id: str, when: datetime) -> None:
        with sqlite3.connect(self.bridge.messages_db) as conn:
            row = conn.execute(
                "SELECT * FROM messages WHERE id = ? AND chat_jid = ?", (message_id, LAWLEY)
            ).fetchone()
            marks = ",".join("?" * len(row))
            conn.execute(
                "INSERT OR REPLACE INTO deleted_messages VALUES (?, ?, ?)",
                (message_id, LAWLEY, when.isoformat(sep=" ")),
            )
            conn.execute(f"INSERT OR REPLACE INTO messages VALUES ({marks})", row)  # noqa: S608
        conn.close()


@pytest.fixture(params=["bridge", "memory"])
def group(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryGroup | BridgeGroup]:
    made: MemoryGroup | BridgeGroup = (
        BridgeGroup(tmp_path / "store") if request.param == "bridge" else MemoryGroup()
    )
    yield made
    if isinstance(made, BridgeGroup):
        made.source.close()
        made.bridge.close()


@pytest.fixture
def monitor(group: MemoryGroup | BridgeGroup, store: ReviewStore) -> Monitor[Source]:
    return Monitor(config_from(), group.source, store)


def flag(store: ReviewStore, drop: str) -> datetime | None:
    t = qa_photo_reviews
    with store.begin() as conn:
        value = conn.execute(sa.select(t.c.post_deleted_at).where(t.c.drop_number == drop))
        return value.scalar_one()  # type: ignore[no-any-return]


def deleted_posts(store: ReviewStore) -> dict[str, bool]:
    return {s["message_id"]: s["deleted_at"] is not None for s in submissions(store)}


def test_a_drop_whose_only_post_was_deleted_is_flagged(
    group: Group, monitor: Monitor[Source], store: ReviewStore
) -> None:
    first = group.post("DR11111111 done")
    assert monitor.scan().new["Lawley"] == 1
    assert flag(store, "DR11111111") is None

    deleted_at = T0 + timedelta(minutes=3)
    group.delete(first, deleted_at)
    summary = monitor.scan()

    assert summary.deletions == 1
    assert flag(store, "DR11111111") == deleted_at
    assert deleted_posts(store) == {first: True}
    # The re-stored row is a repeat: no second submission, no resubmission.
    assert summary.drops == 0


def test_a_drop_with_one_of_two_posts_deleted_is_not_flagged(
    group: Group, monitor: Monitor[Source], store: ReviewStore
) -> None:
    first = group.post("DR22222222 done")
    second = group.post("DR22222222 again, fixed", T0 + timedelta(minutes=10))
    monitor.scan()
    group.delete(first, T0 + timedelta(minutes=11))
    monitor.scan()
    assert deleted_posts(store) == {first: True, second: False}
    assert flag(store, "DR22222222") is None

    group.delete(second, T0 + timedelta(minutes=12))
    monitor.scan()
    assert flag(store, "DR22222222") == T0 + timedelta(minutes=12)


def test_a_post_and_its_deletion_read_in_one_batch_end_flagged(
    group: Group, monitor: Monitor[Source], store: ReviewStore
) -> None:
    first = group.post("DR33333333 done")
    group.delete(first, T0 + timedelta(minutes=1))
    assert monitor.scan().new["Lawley"] == 1
    assert flag(store, "DR33333333") == T0 + timedelta(minutes=1)


def test_a_rescan_changes_nothing(
    group: Group, monitor: Monitor[Source], store: ReviewStore
) -> None:
    first = group.post("DR44444444 done")
    group.post("DR55555555 done")
    monitor.scan()
    group.delete(first, T0 + timedelta(minutes=2))
    monitor.scan()
    with store.begin() as conn:
        before = conn.execute(sa.select(qa_photo_reviews).order_by("drop_number")).all()
    log_before = submissions(store)

    again = Monitor(config_from(), group.source, store)
    with store.begin() as conn:
        conn.execute(sa.text("DELETE FROM scan_cursors"))
    summary = again.scan()

    assert summary.drops == 0
    assert summary.deletions == 1
    with store.begin() as conn:
        after = conn.execute(sa.select(qa_photo_reviews).order_by("drop_number")).all()
    assert after == before  # not even a version bump
    assert submissions(store) == log_before


def test_a_repost_clears_the_flag(
    group: Group, monitor: Monitor[Source], store: ReviewStore
) -> None:
    first = group.post("DR66666666 done")
    monitor.scan()
    group.delete(first, T0 + timedelta(minutes=2))
    monitor.scan()
    assert flag(store, "DR66666666") is not None

    group.post("DR66666666 posted again", T0 + timedelta(minutes=5))
    summary = monitor.scan()

    assert summary.resubmitted["Lawley"] == 1
    assert flag(store, "DR66666666") is None


def test_an_upstream_store_without_deletions_reads_none(tmp_path: Path) -> None:
    bridge = Bridge(tmp_path / "upstream")
    _, rowid = bridge.post(LAWLEY, "DR77777777")
    reader = bridge.reader()
    try:
        assert reader.read_deletions(0, rowid, [LAWLEY]) == []
    finally:
        reader.close()
        bridge.close()


def test_the_dashboard_and_the_front_end_see_the_deleted_post(store: ReviewStore) -> None:
    gone, kept = post("DR80000001", minutes_ago(30)), post("DR80000002", minutes_ago(20))
    record(store, gone, kept)
    deleted_at = minutes_ago(5)
    store.record_batch(
        [],
        {},
        projects_config().zone,
        deletions=[DeletedPost(gone.chat_jid, gone.message_id, deleted_at)],
    )
    people = add_people(store)
    front_end = create_token(store, "reviewer", "company dashboard", front_end=True)[1]
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    with TestClient(app) as client:
        for headers in (people.bearer("reviewer"), {"Authorization": f"Bearer {front_end}"}):
            answer = client.get("/api/wa-monitor-drops", headers=headers)
            assert answer.status_code == 200, answer.text
            by_number = {d["dropNumber"]: d for d in answer.json()["data"]}
            flagged, fine = by_number["DR80000001"], by_number["DR80000002"]
            assert flagged["postDeleted"] is True
            assert datetime.fromisoformat(flagged["postDeletedAt"]) == deleted_at
            assert fine["postDeleted"] is False and fine["postDeletedAt"] is None
            one = client.get(f"/api/wa-monitor-drops/{flagged['id']}", headers=headers).json()
            assert one["data"]["drop"]["postDeleted"] is True
