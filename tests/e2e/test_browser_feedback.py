"""Feedback whose delivery is unconfirmed, on the reviewers' page in headless Chromium."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Dialog, expect

from tests.e2e.test_browser import (
    DESKTOP,
    LIVE,
    SQLITE_ONLY,
    Site,
    drop_item,
    send_feedback,
    sign_in,
    site,
)
from tests.fakebridge import HELD, RESET
from tests.integration.test_api_support import minutes_ago, post, record, review

__all__ = ["site"]  # the live server, bridge and browser of the page's tests
pytestmark = pytest.mark.browser


@SQLITE_ONLY
def test_an_unconfirmed_feedback_is_the_reviewers_call(site: Site) -> None:
    record(site.store, post("DR55550001", minutes_ago(20), name="Sipho Dlamini"))
    page = sign_in(site, DESKTOP)
    item = drop_item(page, "DR55550001")
    expect(item).to_be_visible(timeout=LIVE)
    item.get_by_role("button").click()
    editor = page.locator("#editor")
    note = editor.locator("#feedback-note")
    confirmed: list[str] = []

    def accept(dialog: Dialog) -> None:
        confirmed.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)

    # The bridge takes the message but answers after the dashboard stopped waiting.
    site.bridge.answer(HELD)
    editor.get_by_role("button", name="Generate feedback").click()
    send_feedback(page)
    expect(note).to_contain_text("Delivery unconfirmed: check the group", timeout=LIVE)
    expect(item).to_contain_text("Delivery unconfirmed")
    entry = editor.locator(".feedback-list li").first
    expect(entry).to_contain_text("delivery unconfirmed: check the group")
    site.bridge.release()
    assert len(site.bridge.sent) == 1  # nothing sent it again by itself

    # The reviewer decides it did not arrive: sent again, after saying so.
    entry.get_by_role("button", name="Send again").click()
    # Delivered by the request itself ("Sent to the group") or, when the background sender
    # took the entry first, by it ("Sent <time>"): either way once.
    expect(note).to_have_text(re.compile(r"^Sent "), timeout=LIVE)
    assert "the group gets it twice" in confirmed[-1]
    assert len(site.bridge.sent) == 2
    expect(item).to_contain_text("Feedback sent")

    # The same text again moments later: the page asks before posting it a third time.
    site.bridge.answer(RESET)
    editor.get_by_role("button", name="Generate feedback").click()
    send_feedback(page)
    expect(note).to_contain_text("Delivery unconfirmed", timeout=LIVE)
    assert "was sent to the group at" in confirmed[-1]
    assert len(site.bridge.sent) == 3
    # This time the reviewer sees it in the group.
    editor.locator(".feedback-list li").first.get_by_role("button", name="Mark as sent").click()
    expect(note).to_contain_text("Marked as sent by reviewer")
    expect(editor.locator(".feedback-list li").first).to_contain_text("sent")
    expect(editor.locator(".feedback-list li button")).to_have_count(0)
    assert len(site.bridge.sent) == 3
    assert review(site.store, "DR55550001")["feedback_count"] == 2
