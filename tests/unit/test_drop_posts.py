"""Rows to drop posts (pure), and the in-memory source's promises, without any database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from wa_monitor.core.config import Project
from wa_monitor.core.detect import DEFAULT_DROP_PATTERN, compile_pattern
from wa_monitor.monitor.scan import drop_posts, filters_of, find_drops, read_posts
from wa_monitor.sources.memory import InMemorySource
from wa_monitor.sources.protocol import Prefilter, RawMessage, Sender

SAST = ZoneInfo("Africa/Johannesburg")
VELO = "120363421664266245@g.us"
LAWLEY = "120363418298130331@g.us"
READ_AT = datetime(2025, 11, 10, 8, 0, tzinfo=UTC)
PATTERN = compile_pattern(DEFAULT_DROP_PATTERN)
PROJECTS = {
    VELO: Project("Velo Test", VELO, "", True, PATTERN),
    LAWLEY: Project("Lawley", LAWLEY, "", True, PATTERN, since=datetime(2025, 11, 1, tzinfo=SAST)),
}
SENDERS = {"27821234567": Sender("27821234567", "Thabo Nkosi")}


def row(rowid: int, content: str | None, *, chat: str = VELO, **kw: object) -> RawMessage:
    values: dict[str, object] = {
        "id": f"MSG{rowid}",
        "sender": "27821234567",
        "timestamp": "2025-11-09 19:15:30+02:00",
    }
    values.update(kw)
    return RawMessage(rowid, chat, content=content, **values)  # type: ignore[arg-type]


class Exploding:
    def find(self, text: str | None) -> list[str]:
        raise RuntimeError("the pattern broke")


def test_rows_naming_drops_become_one_post_per_drop() -> None:
    rows = [row(1, "DR11111111 and DR22222222"), row(2, "chatter"), row(3, None)]
    matches, odd = find_drops(rows, PROJECTS)
    assert odd == []
    assert [m.row.rowid for m in matches] == [1]
    posts, odd = drop_posts(matches, SENDERS, SAST, READ_AT)
    assert odd == []
    assert [(p.drop_number, p.sender, p.sender_name, p.project) for p in posts] == [
        ("DR11111111", "27821234567", "Thabo Nkosi", "Velo Test"),
        ("DR22222222", "27821234567", "Thabo Nkosi", "Velo Test"),
    ]
    assert posts[0].time == datetime(2025, 11, 9, 17, 15, 30, tzinfo=UTC)


def test_an_unreadable_time_keeps_the_drop_at_the_time_read() -> None:
    matches, _ = find_drops([row(1, "DR11111111", timestamp="not a time")], PROJECTS)
    [post], [note] = drop_posts(matches, SENDERS, SAST, READ_AT)
    assert post.time == READ_AT
    assert (note.rowid, note.reason, note.drops) == (1, "", ("DR11111111",))
    assert "unreadable timestamp 'not a time'" in note.problem


def test_posts_before_since_are_left_out_and_long_ids_hashed() -> None:
    early = row(1, "DR11111111", chat=LAWLEY, timestamp="2025-10-30 10:00:00+02:00")
    long_id = row(2, "DR22222222", chat=LAWLEY, id="Z" * 300)
    posts, odd = drop_posts(find_drops([early, long_id], PROJECTS)[0], SENDERS, SAST, READ_AT)
    assert odd == []
    [post] = posts
    assert post.drop_number == "DR22222222"
    assert post.message_id.startswith("sha256:") and len(post.message_id) <= 100


def test_a_row_that_fails_costs_only_itself() -> None:
    projects = {**PROJECTS, LAWLEY: Project("Lawley", LAWLEY, "", True, Exploding())}  # type: ignore[arg-type]
    # Row 3's sender is missing from the senders: a fault nobody foresaw, that row only.
    rows = [
        row(1, "DR11111111", chat=LAWLEY),
        row(2, "DR22222222"),
        row(3, "DR33333333", sender="unresolved"),
    ]
    matches, odd = find_drops(rows, projects)
    assert [(o.rowid, o.reason) for o in odd] == [(1, "RuntimeError")]
    posts, odd = drop_posts(matches, SENDERS, SAST, READ_AT)
    assert [p.drop_number for p in posts] == ["DR22222222"]
    assert [(o.rowid, o.reason) for o in odd] == [(3, "KeyError")]


def test_read_posts_resolves_only_the_senders_of_drops() -> None:
    source = InMemorySource()
    source.member("27829999999", lid="112233445566778", name="Sipho Dlamini")
    asked: list[set[str]] = []
    resolve = source.resolve_senders

    def counting(senders: object) -> dict[str, Sender]:
        wanted = set(senders)  # type: ignore[call-overload]
        asked.append(wanted)
        return resolve(wanted)

    source.resolve_senders = counting  # type: ignore[method-assign]
    rows = [row(1, "DR11111111", sender="112233445566778@lid"), row(2, "hi", sender="2782000")]
    [post], odd = read_posts(source, rows, PROJECTS, SAST, READ_AT)
    assert odd == []
    assert (post.sender, post.sender_name) == ("27829999999", "Sipho Dlamini")
    assert asked == [{"112233445566778@lid"}]


def test_filters_group_the_projects_by_their_required_text() -> None:
    filters = filters_of(PROJECTS)
    assert sorted(j for jids in filters.values() for j in jids) == sorted(PROJECTS)
    [literal] = filters
    assert isinstance(literal, Prefilter) and literal.text.upper() == "DR"


# -- the in-memory source keeps the bridge's promises ------------------------------------


def test_redelivery_moves_a_message_to_a_new_higher_rowid() -> None:
    source = InMemorySource()
    first = source.store(VELO, "A", "27821234567", "DR11111111", READ_AT)
    source.store(VELO, "B", "27821234567", "chatter", READ_AT)
    again = source.redeliver(VELO, "A")
    assert again > first and source.max_rowid() == again
    anchor = source.anchor(first)
    assert anchor is None  # the row at `first` is gone
    assert source.anchor_moved_back(f"{first} {VELO} A") is False  # it moved up, not back
    rows = source.read_range(0, again, {None: [VELO]}).rows
    assert [r.rowid for r in rows] == [2, again]


def test_gaps_are_one_step_and_ranges_are_in_rowid_order() -> None:
    source = InMemorySource()
    source.store(VELO, "A", "s", "DR11111111", READ_AT)
    source.store(VELO, "B", "s", "DR22222222", READ_AT - timedelta(days=3), rowid=10**12)
    source.store(LAWLEY, "C", "s", "dr33333333 x", READ_AT)
    assert source.next_rowid(1) == 10**12 and source.next_rowid(10**12) == 10**12 + 1
    assert source.next_rowid(10**12 + 1) is None
    scanned = source.read_range(
        0, 10**13, {Prefilter("DR", case_sensitive=True): [VELO], "dr": [LAWLEY]}
    )
    assert [r.id for r in scanned.rows] == ["A", "B", "C"]
    assert scanned.counts == {VELO: 2, LAWLEY: 1}
    cased = source.read_range(0, 10**13, {Prefilter("dr", case_sensitive=True): [VELO]})
    assert cased.rows == [] and cased.counts == {VELO: 2}


def test_a_recreated_source_starts_over_and_says_so() -> None:
    source = InMemorySource()
    source.open()
    for n in range(5):
        source.store(VELO, f"M{n}", "s", "chatter", READ_AT)
    anchor = source.anchor(5)
    assert anchor == f"5 {VELO} M4" and not source.replaced()
    version = source.data_version()
    source.recreate()
    assert source.replaced() and source.data_version() != version
    assert source.store(VELO, "M4", "s", "chatter", READ_AT) == 1
    assert source.anchor_moved_back(anchor)
    source.open()
    assert not source.replaced()


def test_a_taken_rowid_is_refused() -> None:
    source = InMemorySource()
    source.store(VELO, "A", "s", "x", READ_AT)
    with pytest.raises(ValueError, match="taken"):
        source.store(VELO, "B", "s", "x", READ_AT, rowid=1)
