"""The review queue on the reviewers' page in headless Chromium: next drop, judging with
reasons, the confirmed feedback, an admin's assignment and the page's address."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import (
    DESKTOP,
    LIVE,
    PHONE,
    SQLITE_ONLY,
    Site,
    drop_item,
    shot,
    sign_in,
    site,
    today_before_now,
)
from tests.integration.test_api_support import PASSWORD, add_people, post, record, review
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.store.users import create_token

__all__ = ["site"]  # the live server, bridge and browser of the page's tests
pytestmark = pytest.mark.browser

ELEVEN_STEPS = (
    "1. House photo",
    "2. Cable from pole",
    "4. Cable entry inside",
    "5. Wall for installation",
    "6. ONT back after install",
    "7. Power meter reading",
    "8. ONT barcode",
    "9. UPS serial number",
    "10. Final installation",
    "11. Green lights",
    "12. Customer signature",
)


def address(page: Page) -> dict[str, list[str]]:
    return parse_qs(urlparse(page.url).query)


def test_next_drop_opens_the_oldest_waiting_drop_and_holds_it(site: Site) -> None:
    record(
        site.store,
        # WhatsApp knows no contact name for this sender: the number is the name.
        post("DR10000002", today_before_now(30), name="27623558979", sender="27623558979"),
        post("DR10000001", today_before_now(60), name="Sipho Dlamini"),
    )
    page = sign_in(site, DESKTOP)
    expect(drop_item(page, "DR10000002")).to_be_visible()
    # The queue: oldest waiting first, both New.
    expect(page.locator("#drops li").first).to_have_attribute("data-drop", "DR10000001")
    expect(drop_item(page, "DR10000001").locator(".state")).to_have_text("New")
    expect(drop_item(page, "DR10000001")).to_contain_text(re.compile(r"waited [\d.]+ working h"))

    page.get_by_role("button", name="Next drop").click()
    editor = page.locator("#editor")
    expect(editor.get_by_role("heading", name="DR10000001")).to_be_visible()
    first = str(review(site.store, "DR10000001")["id"])
    expect(page).to_have_url(re.compile(f"drop={first}"))
    expect(editor.locator("#assignee")).to_have_text("Assigned to reviewer")
    expect(drop_item(page, "DR10000001").locator(".state")).to_have_text(
        "In review · reviewer", timeout=LIVE
    )
    held = review(site.store, "DR10000001")
    assert held["assigned_agent"] == "reviewer" and held["locked_by"] == "reviewer"

    # The next one (key n) is the other drop; the first goes back to the queue.
    page.keyboard.press("n")
    expect(editor.get_by_role("heading", name="DR10000002")).to_be_visible()
    expect(page).to_have_url(re.compile(f"drop={review(site.store, 'DR10000002')['id']}"))
    assert review(site.store, "DR10000002")["assigned_agent"] == "reviewer"
    expect(editor.locator("#editor-meta")).to_have_text(
        re.compile(r"^Lawley · 27623558979 · received ")
    )
    expect(drop_item(page, "DR10000001").locator(".state")).to_have_text("New", timeout=LIVE)
    assert review(site.store, "DR10000001")["assigned_agent"] is None

    # Nothing waits in a project without drops.
    page.get_by_label("Project").select_option("Mohadin")
    page.get_by_role("button", name="Next drop").click()
    expect(page.locator("#next-note")).to_have_text("Nothing waits for review")


def test_a_full_review_with_a_reason_reaches_the_group_after_a_confirmation(site: Site) -> None:
    record(site.store, post("DR20000001", today_before_now(45), name="Sipho Dlamini"))
    page = sign_in(site, DESKTOP)
    drop_item(page, "DR20000001").get_by_role("button").click()
    editor = page.locator("#editor")
    expect(editor.get_by_role("heading", name="DR20000001")).to_be_visible()
    for label in ELEVEN_STEPS:
        editor.get_by_label(label, exact=True).check()
    outside = editor.locator('li[data-step="step_03_cable_entry_outside"]')
    chips = outside.get_by_role("group", name="Reasons: Cable entry outside")
    expect(chips).to_be_hidden()
    outside.get_by_label("Incorrect").check()
    expect(chips).to_be_visible()
    chips.get_by_role("button", name="wrong angle").click()
    chips.get_by_role("button", name="blurred").click()
    chips.get_by_role("button", name="blurred").click()  # toggled back off
    expect(chips.get_by_role("button", name="wrong angle")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(chips.get_by_role("button", name="blurred")).to_have_attribute("aria-pressed", "false")
    outside.get_by_placeholder("What is wrong?").fill("show the entry from the street")
    editor.get_by_role("button", name="Save review").click()
    expect(editor.locator("#save-note")).to_have_text("Saved")
    saved = review(site.store, "DR20000001")

    assert saved["incorrect_reasons"] == {"step_03_cable_entry_outside": ["wrong angle"]}
    assert saved["incorrect_steps"] == ["step_03_cable_entry_outside"]
    # Saved and opened again: the chip is still on.
    expect(
        editor.locator('[data-reasons="step_03_cable_entry_outside"] [aria-pressed="true"]')
    ).to_have_text("wrong angle")

    editor.get_by_role("button", name="Generate feedback").click()
    text = editor.get_by_label("Feedback message")
    item = "• 3. Cable entry outside - wrong angle: show the entry from the street"
    expect(text).to_have_value(re.compile(re.escape(item)))
    editor.get_by_role("button", name="Send to WhatsApp").click()
    confirm = page.get_by_role("dialog", name="Send this feedback on DR20000001?")
    expect(confirm.locator("#confirm-group")).to_have_text("Lawley · Lawley Activation 3 group")
    expect(confirm.locator("#confirm-text")).to_have_text(text.input_value())
    # Going back sends nothing.
    confirm.get_by_role("button", name="Back to editing").click()
    expect(confirm).to_be_hidden()
    assert site.bridge.sent == []
    editor.get_by_role("button", name="Send to WhatsApp").click()
    page.get_by_role("button", name="Confirm and send").click()
    expect(editor.locator("#feedback-note")).to_contain_text("Sent to")
    assert len(site.bridge.sent) == 1 and item in site.bridge.sent[0]["message"]
    # The sent text stays on the drop, and the history says who changed and sent what.
    expect(editor.locator("#sent-feedback")).to_contain_text(item)
    history = editor.locator("#history")
    history.locator("summary").click()
    expect(history).to_contain_text("3. Cable entry outside: reasons wrong angle")
    expect(history).to_contain_text("3. Cable entry outside: marked incorrect")
    expect(history.locator('li[data-action="feedback"]')).to_contain_text(item)
    expect(history.locator('li[data-action="feedback"] strong')).to_have_text("reviewer")
    expect(drop_item(page, "DR20000001").locator(".state")).to_have_text(
        "Needs correction", timeout=LIVE
    )


@SQLITE_ONLY
def test_the_filters_and_the_open_drop_live_in_the_address(site: Site) -> None:
    record(
        site.store,
        post("DR30000001", today_before_now(50)),
        post("DR30000002", today_before_now(40)),
        post("DR30000003", today_before_now(30), project="Mohadin"),
    )
    page = sign_in(site, DESKTOP)
    items = page.locator("#drops li.drop")
    expect(items).to_have_count(3)
    page.get_by_label("Project").select_option("Lawley")
    page.get_by_label("State").select_option(label="Waiting for review")
    expect(items).to_have_count(2)
    expect(page).to_have_url(re.compile(r"project=Lawley"))
    drop_item(page, "DR30000002").get_by_role("button").click()
    editor = page.locator("#editor")
    expect(editor.get_by_role("heading", name="DR30000002")).to_be_visible()
    rid = str(review(site.store, "DR30000002")["id"])
    assert address(page) == {
        "project": ["Lawley"],
        "reviewState": ["new,resubmitted,in_review"],
        "drop": [rid],
    }

    # Nothing is overdue (no project sets a review target): the filter says so.
    page.get_by_label("Overdue").check()
    expect(page).to_have_url(re.compile(r"overdue=true"))
    expect(page.locator("#drops")).to_have_text("No drops match the filters")
    page.get_by_label("Overdue").uncheck()
    expect(items).to_have_count(2)
    expect(page).not_to_have_url(re.compile(r"overdue="))

    # A reload shows the same: the filters set, the list narrowed, the drop open.
    page.reload()
    expect(editor.get_by_role("heading", name="DR30000002")).to_be_visible()
    expect(page.get_by_label("Project")).to_have_value("Lawley")
    expect(page.get_by_label("State")).to_have_value("new,resubmitted,in_review")
    expect(items).to_have_count(2)

    # Back closes the drop, forward opens it again.
    page.go_back()
    expect(editor).to_be_hidden()
    assert "drop" not in address(page)
    page.go_forward()
    expect(editor.get_by_role("heading", name="DR30000002")).to_be_visible()

    # A copied link opens the drop for another reviewer, after they sign in.
    link = page.url
    other = site.browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    second = other.new_page()
    second.goto(link)
    expect(second).to_have_url(re.compile(r"/login"))
    second.get_by_label("User name").fill("reviewer2")
    second.get_by_label("Password").fill(PASSWORD)
    second.get_by_role("button", name="Sign in").click()
    expect(second.locator("#editor").get_by_role("heading", name="DR30000002")).to_be_visible()
    expect(second.get_by_label("Project")).to_have_value("Lawley")
    # A link to a drop that does not exist says so and opens nothing.
    second.goto(f"{link.split('?')[0]}?drop=00000000-0000-0000-0000-000000000000")
    expect(second.locator("#live")).to_contain_text("Could not open the drop")
    expect(second.locator("#editor")).to_be_hidden()
    other.close()


@SQLITE_ONLY
def test_an_admin_assigns_and_releases_a_drop(site: Site) -> None:
    add_people(site.store, ("admin",))
    record(site.store, post("DR40000001", today_before_now(20), name="Sipho Dlamini"))
    page = sign_in(site, DESKTOP, user="admin")
    drop_item(page, "DR40000001").get_by_role("button").click()
    editor = page.locator("#editor")
    expect(editor.locator("#assignee")).to_have_text("Not assigned")
    editor.get_by_label("Assign to").select_option("reviewer2")
    editor.get_by_role("button", name="Assign", exact=True).click()
    expect(editor.locator("#assignee")).to_have_text("Assigned to reviewer2")
    assert review(site.store, "DR40000001")["assigned_agent"] == "reviewer2"
    expect(drop_item(page, "DR40000001").locator(".state")).to_have_text(
        "In review · reviewer2", timeout=LIVE
    )
    editor.get_by_role("button", name="Release").click()
    expect(editor.locator("#assignee")).to_have_text("Not assigned")
    assert review(site.store, "DR40000001")["assigned_agent"] is None
    # A viewer's page offers neither.
    viewer = sign_in(site, DESKTOP, user="viewer")
    drop_item(viewer, "DR40000001").get_by_role("button").click()
    expect(viewer.get_by_role("button", name="Next drop")).to_have_count(0)
    expect(viewer.locator("#editor").get_by_label("Assign to")).to_have_count(0)


@SQLITE_ONLY
def test_the_queue_on_a_desktop_and_a_phone(site: Site) -> None:
    """The queue's screens (the README's screenshots when asked), on both sizes."""
    record(
        site.store,
        post("DR50000001", today_before_now(300), name="Sipho Dlamini"),
        post("DR50000002", today_before_now(200), name="Lerato M."),
        post("DR50000003", today_before_now(100), project="Mohadin", name="Thabo Nkosi"),
        post("DR50000004", today_before_now(50), name="Zanele K."),
        post("DR50000005", today_before_now(20), name="27623558979", sender="27623558979"),
    )
    # reviewer2 holds the oldest; DR50000004 is approved.
    _token, secret = create_token(site.store, "reviewer2", "second")
    other = {"Authorization": f"Bearer {secret}"}
    taken = httpx.post(f"{site.url}/api/wa-monitor-drops/next", json={}, headers=other)
    assert taken.json()["data"]["dropNumber"] == "DR50000001"
    approved = {s: True for s in STEP_COLUMNS} | {"completed": True}
    rid = review(site.store, "DR50000004")["id"]
    assert httpx.patch(f"{site.url}/api/wa-monitor-drops/{rid}", json=approved, headers=other)
    for size, name in ((DESKTOP, "desktop-queue.png"), (PHONE, "phone-queue.png")):
        page = sign_in(site, size)
        items = page.locator("#drops li.drop")
        expect(items).to_have_count(5)
        expect(items.last).to_have_attribute("data-drop", "DR50000004")
        expect(items.last.locator(".state")).to_have_text("✓ Approved")
        expect(items.first.locator(".state")).to_have_text("In review · reviewer2")
        if size is PHONE:
            assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            items.first.scroll_into_view_if_needed()
            page.locator(".list-head").scroll_into_view_if_needed()
            shot(page, name, full_page=False)
        page.get_by_role("button", name="Next drop").click()
        expect(page.locator("#editor-title")).to_have_text("DR50000002")
        if size is DESKTOP:
            expect(items.nth(1).locator(".state")).to_have_text(
                "In review · reviewer", timeout=LIVE
            )
            shot(page, name)
            page.get_by_role("button", name="Close the drop").click()
        else:
            box = page.locator("#editor").bounding_box()
            assert box is not None and box["width"] <= PHONE["width"]
            page.keyboard.press("Escape")
        expect(page.locator("#editor")).to_be_hidden()
        expect(items.nth(1).locator(".state")).to_have_text("New", timeout=LIVE)
        page.context.close()
