"""Which source a scan cursor was written by: a group moved to another gateway starts over."""

from __future__ import annotations

from wa_monitor.monitor.scan import owns_anchor, recreated, tagged_anchor
from wa_monitor.sources.memory import InMemorySource
from wa_monitor.store.review_store import Cursor

GROUP = "120363418298130331@g.us"


def test_the_bridge_keeps_its_anchors_as_ever_and_the_inbox_tags_its_own() -> None:
    assert tagged_anchor("12 g 3EB0", "") == "12 g 3EB0"
    assert tagged_anchor(None, "") is None
    assert tagged_anchor("12 g 3EB0", "inbox") == "inbox:12 g 3EB0"
    assert tagged_anchor(None, "inbox") == "inbox:"  # a tagged cursor always names its source
    assert tagged_anchor("9" * 248, "inbox") == "inbox:"  # never past the column's 250


def test_a_cursor_of_the_other_source_is_not_its_own() -> None:
    bridge = Cursor(40, f"40 {GROUP} 3EB0AA")
    inbox = Cursor(7, f"inbox:7 {GROUP} 3EB0BB")
    legacy = Cursor(40, None)  # a bridge cursor without an anchor
    assert owns_anchor(bridge, "") and owns_anchor(legacy, "")
    assert not owns_anchor(inbox, "")
    assert owns_anchor(inbox, "inbox")
    assert not owns_anchor(bridge, "inbox") and not owns_anchor(legacy, "inbox")
    fresh = Cursor(0, None)
    assert owns_anchor(fresh, "") and owns_anchor(fresh, "inbox")


def test_a_tagged_anchor_is_checked_without_its_tag() -> None:
    source = InMemorySource()
    source.store(GROUP, "3EB0AA", "27821234567", "hello", 1_700_000_000)
    source.open()
    alive = Cursor(1, f"inbox:1 {GROUP} 3EB0AA")
    gone = Cursor(1, f"inbox:1 {GROUP} 3EB0ZZ")
    assert recreated(source, alive, 1, {}, "inbox") is None
    assert recreated(source, gone, 1, {}, "inbox") == "the last message read is gone from it"
