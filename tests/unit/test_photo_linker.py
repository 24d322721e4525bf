"""The photo linker without a database: reading source rows, windows, refused decisions."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest

from tests.helpers import LAWLEY, SAST, T0, VELO, config_from
from wa_monitor.core.errors import PhotoDecisionError
from wa_monitor.monitor.photo_linker import PhotoLinker, _merge, decide_photo
from wa_monitor.sources.memory import InMemorySource, Media
from wa_monitor.store.group_messages import Window
from wa_monitor.store.review_store import ReviewStore

NOW = datetime(2025, 11, 10, 8, 0, tzinfo=UTC)


def read(source: InMemorySource) -> list[dict[str, object]]:
    config = config_from()
    linker = PhotoLinker(cast(ReviewStore, None), source, lambda: config)
    rows = source.read_messages(0, source.max_rowid(), [LAWLEY, VELO])
    return linker._messages(rows, config.by_group(), config, NOW)


def test_source_rows_become_group_messages_as_the_scan_reads_them() -> None:
    source = InMemorySource()
    source.member("27821234567", lid="112233445566778", name="Thabo")
    digest = hashlib.sha256(b"photo").digest()
    source.store(
        LAWLEY, "A1", "112233445566778@lid", "", T0,
        media=Media("Image", "image_20251109_191530.jpg", digest, 123_456),
    )  # fmt: skip
    source.store(LAWLEY, "B" * 150, "27821234567", "pole\x00 done \udfff", T0)
    source.store(LAWLEY, "C1", "27821234567", None, T0, media=Media("video", None, b"\x01", -5))
    photo, text, video = read(source)

    assert photo["sender"] == "27821234567" and photo["sender_name"] == "Thabo"
    assert photo["media_type"] == "image" and photo["status"] == "pending"
    assert photo["file_sha256"] == digest.hex() and photo["file_length"] == 123_456
    assert photo["next_attempt_at"] == NOW
    assert photo["posted_at"] == T0.astimezone(UTC)
    assert photo["project"] == "Lawley"
    # A text: no fetch; an id too long for the column is stored as its hash, like the scan's.
    assert text["media_type"] == "text" and text["status"] is None
    assert str(text["message_id"]).startswith("sha256:")
    assert text["content"] == "pole done ?"
    # A hash that is not 32 bytes and a negative length are not believed.
    assert video["file_sha256"] is None and video["file_length"] is None


def test_a_row_without_an_id_is_skipped_and_one_without_a_time_gets_its_read_time() -> None:
    source = InMemorySource()
    source.store(LAWLEY, "GOOD", "27821234567", "", T0, media=Media("image"))
    source.store(LAWLEY, "BAD", "27821234567", "", "yesterday", media=Media("image"))
    source.store(LAWLEY, "", "27821234567", "", T0)
    source.store(LAWLEY, "NUM", "27821234567", "", 1_762_708_530)  # epoch seconds
    config = config_from()
    linker = PhotoLinker(cast(ReviewStore, None), source, lambda: config)
    rows = source.read_messages(0, source.max_rowid(), [LAWLEY])
    found = linker._messages(rows, config.by_group(), config, NOW)
    assert [m["message_id"] for m in found] == ["GOOD", "BAD", "NUM"]
    assert next(m for m in found if m["message_id"] == "BAD")["posted_at"] == NOW
    assert linker.skipped == {"no message id": 1}
    assert linker.untimed == 1


def test_a_message_read_twice_in_one_step_is_one_row() -> None:
    source = InMemorySource()
    source.store(LAWLEY, "A1", "27821234567", "", T0, media=Media("image"))
    rows = source.read_messages(0, 1, [LAWLEY])
    config = config_from()
    linker = PhotoLinker(cast(ReviewStore, None), source, lambda: config)
    found = linker._messages(rows + rows, config.by_group(), config, NOW)
    assert len(found) == 1


def test_read_messages_returns_only_the_asked_groups_in_rowid_order() -> None:
    source = InMemorySource()
    source.store(VELO, "V", "27821234567", "x", T0, rowid=5)
    source.store(LAWLEY, "L2", "27821234567", "", T0, rowid=9, media=Media("image"))
    source.store(LAWLEY, "L1", "27821234567", "hi", T0, rowid=3)
    source.store("120363400000000001@g.us", "O", "27821234567", "x", T0, rowid=4)
    found = source.read_messages(3, 9, [LAWLEY, VELO])
    assert [(m.rowid, m.id, m.media_type) for m in found] == [(5, "V", None), (9, "L2", "image")]
    # A re-delivered photo keeps its media columns under its new rowid.
    rowid = source.redeliver(LAWLEY, "L2")
    again = source.read_messages(9, rowid, [LAWLEY])
    assert [(m.id, m.media_type) for m in again] == [("L2", "image")]


def test_windows_of_one_sender_that_overlap_are_merged() -> None:
    at = datetime(2025, 11, 9, 8, 0, tzinfo=SAST)
    hour = timedelta(hours=1)
    windows = [
        Window(LAWLEY, "a", at, at + hour),
        Window(LAWLEY, "a", at + 2 * hour, at + 3 * hour),
        Window(LAWLEY, "a", at + hour / 2, at + 2 * hour),
        Window(LAWLEY, "b", at, at + hour),
        Window(VELO, "a", at, at + hour),
    ]
    assert _merge(windows) == [
        Window(LAWLEY, "a", at, at + 3 * hour),
        Window(LAWLEY, "b", at, at + hour),
        Window(VELO, "a", at, at + hour),
    ]
    assert _merge([]) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"step": "step_13_selfie"}, "'step_13_selfie' is not a step; use one of step_01"),
        ({"round": -1}, "round -1 is not a round"),
        ({"round": True}, "round True is not a round"),
        ({"detach": True, "drop_number": "DR12345678"}, "either detached or moved"),
        ({"detach": True, "round": 0}, "either detached or moved"),
    ],
)
def test_decisions_that_cannot_be_applied_are_refused_before_anything_is_written(
    changes: dict[str, object], message: str
) -> None:
    # No database: a refused decision must not even reach it.
    store = cast(ReviewStore, None)
    with pytest.raises(PhotoDecisionError, match=message):
        decide_photo(store, config_from(), 1, actor="alice", **changes)  # type: ignore[arg-type]
