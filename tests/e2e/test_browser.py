"""The reviewers' page in headless Chromium (Debian's), against a live server and a fake bridge.

Takes screenshots of the main screens (desktop 1280, phone 390); they refresh
docs/screenshots/ only when WA_MONITOR_SCREENSHOTS=1, so a test run leaves the tree clean.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import httpx
import openpyxl
import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from tests.fakebridge import FakeBridge, running_bridge
from tests.helpers import wait_until
from tests.integration.test_api_support import (
    LAWLEY_JID,
    PASSWORD,
    LiveServer,
    add_people,
    post,
    projects_config,
    record,
    review,
    settings_for,
    today_minutes_ago,
)
from wa_monitor.cli.web import SUMMARY_SECONDS
from wa_monitor.feedback.outbox import BridgeClient
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import review_edits
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app
from wa_monitor.web.changes import feed_for

pytestmark = pytest.mark.browser

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
REFRESH_SHOTS = os.environ.get("WA_MONITOR_SCREENSHOTS") == "1"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
# The main flow runs on both backends; the other screens on SQLite only (the API tests
# cover both backends route by route).
SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
LIVE = 15_000  # ms: a recorded drop must show within a few polls


@dataclass
class Site:
    url: str
    store: ReviewStore
    bridge: FakeBridge
    browser: Browser


BRIDGE_TIMEOUT = 6.0


@pytest.fixture
def site(store: ReviewStore, chromium: Browser) -> Iterator[Site]:
    add_people(store, ("viewer", "reviewer", "reviewer2"))
    with running_bridge() as bridge:
        app = create_app(
            settings_for(store.url, bridge.url),
            projects_config(),
            store,
            # Long enough for an answer on a machine busy with parallel browsers; a held
            # answer costs this long once.
            bridge=BridgeClient(bridge.url, timeout=BRIDGE_TIMEOUT),
            sender_interval=0.2,
            poll_seconds=0.5,
            changes=feed_for(store.engine),  # as `wa-monitor serve`: answers kept on PostgreSQL
            summary_seconds=SUMMARY_SECONDS,
        )
        server = LiveServer(app).start()
        try:
            yield Site(server.url, store, bridge, chromium)
        finally:
            server.stop()


def today_before_now(n: float) -> datetime:
    """A time of today in the projects' zone, before now, in the order of `n` (minutes ago,
    n < 360): feedback sent now comes after it, whatever the hour the tests run."""
    local = datetime.now(UTC).astimezone(projects_config().zone)
    start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if local - timedelta(minutes=360) >= start:
        return local - timedelta(minutes=n)
    return start + (local - start) * ((360 - n) / 360)


def sign_in(site: Site, viewport: dict[str, int], user: str = "reviewer") -> Page:
    context = site.browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{site.url}/wa-monitor")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/wa-monitor$"))
    return page


def drop_item(page: Page, number: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#drops li[data-drop="{number}"]')


def send_feedback(page: Page) -> None:
    """Send the open drop's feedback draft, confirming the text and the group."""
    page.locator("#editor").get_by_role("button", name="Send to WhatsApp").click()
    page.locator("dialog#confirm-send").get_by_role("button", name="Confirm and send").click()


def shot(page: Page, name: str, *, full_page: bool = True) -> None:
    """The screen as a picture: proof that it renders, and the README's when asked."""
    picture = page.screenshot(full_page=full_page)
    assert picture.startswith(b"\x89PNG"), name
    if REFRESH_SHOTS:
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / name).write_bytes(picture)


def test_a_reviewer_reviews_a_new_drop_and_sends_feedback(site: Site) -> None:
    record(
        site.store,
        post("DR11110001", today_before_now(90), name="Sipho Dlamini", sender="27831110000"),
        post("DR11110002", today_before_now(75), project="Mohadin", name="Lerato M."),
    )
    # The sign-in screen.
    context = site.browser.new_context(viewport=DESKTOP)  # type: ignore[arg-type]
    login = context.new_page()
    login.goto(f"{site.url}/login")
    shot(login, "desktop-sign-in.png")
    context.close()

    page = sign_in(site, DESKTOP)
    expect(drop_item(page, "DR11110001")).to_be_visible()
    page.evaluate("window.__sameDocument = true")

    # The monitor records a new drop: it appears without a reload, at the end of the queue
    # (oldest waiting first), as New.
    record(site.store, post("DR22220002", today_before_now(1), name="Thabo Nkosi"))
    new = drop_item(page, "DR22220002")
    expect(new).to_be_visible(timeout=LIVE)
    expect(page.locator("#drops li").first).to_have_attribute("data-drop", "DR11110001")
    expect(page.locator("#drops li").last).to_have_attribute("data-drop", "DR22220002")
    expect(new.locator(".state")).to_have_text("New")
    expect(page.locator("#card-total")).to_have_text("3")
    expect(page.locator("#today-total")).to_have_text("3")
    assert page.evaluate("window.__sameDocument") is True
    expect(new).to_contain_text("0/12")
    shot(page, "desktop-dashboard.png")

    # Review it: tick ten steps, mark the outside cable entry incorrect with a comment.
    new.get_by_role("button").click()
    editor = page.locator("#editor")
    expect(editor.get_by_role("heading", name="DR22220002")).to_be_visible()
    for label in (
        "1. House photo",
        "2. Cable from pole",
        "3. Cable entry outside",
        "4. Cable entry inside",
        "5. Wall for installation",
        "6. ONT back after install",
        "8. ONT barcode",
        "9. UPS serial number",
        "10. Final installation",
        "11. Green lights",
    ):
        editor.get_by_label(label, exact=True).check()
    outside = editor.locator('li[data-step="step_03_cable_entry_outside"]')
    outside.get_by_label("Incorrect").check()
    outside.get_by_placeholder("What is wrong?").fill("Cable entry not visible")
    expect(editor.locator("#editor-progress")).to_have_text("9/12")
    editor.get_by_role("button", name="Save review").click()
    expect(editor.locator("#save-note")).to_have_text("Saved")
    expect(new).to_contain_text("9/12")
    saved = review(site.store, "DR22220002")
    assert saved["step_01_house_photo"] and not saved["step_03_cable_entry_outside"]
    assert saved["incorrect_comments"] == {"step_03_cable_entry_outside": "Cable entry not visible"}
    with site.store.begin() as conn:
        actors = conn.execute(
            sa.select(review_edits.c.actor).where(review_edits.c.review_id == saved["id"])
        ).scalars()
        assert set(actors) == {"reviewer"}

    # Generate the feedback, edit it, send it to the group through the bridge.
    editor.get_by_role("button", name="Generate feedback").click()
    text = editor.get_by_label("Feedback message")
    expect(text).to_have_value(re.compile(r"^DR22220002\nNEEDS CORRECTION\n"))
    expect(text).to_have_value(re.compile(r"• 7\. Power meter reading"))
    expect(text).to_have_value(re.compile(r"• 3\. Cable entry outside - Cable entry not visible"))
    text.fill(text.input_value() + "\n\nPlease resend the photos.")
    shot(page, "desktop-drop-review.png")
    editor.get_by_role("button", name="Send to WhatsApp").click()
    confirm = page.get_by_role("dialog", name="Send this feedback on DR22220002?")
    expect(confirm.locator("#confirm-group")).to_have_text("Lawley · Lawley Activation 3 group")
    expect(confirm.locator("#confirm-text")).to_contain_text("Please resend the photos.")
    confirm.get_by_role("button", name="Confirm and send").click()
    expect(editor.locator("#feedback-note")).to_contain_text("Sent to Lawley Activation 3 group")
    assert len(site.bridge.sent) == 1
    sent = site.bridge.sent[0]
    assert sent["recipient"] == LAWLEY_JID
    assert sent["message"].endswith("Please resend the photos.")
    assert "• 12. Customer signature" in sent["message"]
    assert review(site.store, "DR22220002")["feedback_sent"] is not None
    expect(new).to_contain_text("Feedback sent")
    expect(new.locator(".state")).to_have_text("Needs correction")
    expect(editor.locator(".feedback-list li").first).to_contain_text("sent")
    expect(editor.locator("#sent-feedback")).to_contain_text("Please resend the photos.")
    shot(page, "desktop-feedback-sent.png")
    editor.get_by_role("button", name="Close the drop").click()
    expect(editor).to_be_hidden()

    # The queue shows the drops waiting for a reviewer: DR22220002 waits for the installer.
    page.get_by_label("State").select_option(label="Waiting for review")
    expect(new).to_be_hidden()
    record(site.store, post("DR33330003", today_before_now(0.5), name="Lerato M."))
    expect(page.locator("#drops li").last).to_have_attribute(
        "data-drop", "DR33330003", timeout=LIVE
    )
    assert page.evaluate("window.__sameDocument") is True


@SQLITE_ONLY
def test_a_drop_posted_again_after_feedback_rejoins_the_queue_as_resubmitted(
    site: Site,
) -> None:
    record(
        site.store,
        post("DR22220001", today_before_now(60), name="Sipho Dlamini"),
        post("DR22220002", today_before_now(50), name="Thabo Nkosi"),
        post("DR22220003", today_before_now(40), name="Lerato M."),
    )
    page = sign_in(site, DESKTOP)
    page.get_by_label("State").select_option(label="Waiting for review")
    item = drop_item(page, "DR22220002")
    item.get_by_role("button").click()
    editor = page.locator("#editor")
    editor.get_by_role("button", name="Generate feedback").click()
    send_feedback(page)
    expect(editor.locator("#feedback-note")).to_contain_text("Sent to")
    editor.get_by_role("button", name="Close the drop").click()
    # Waiting for the installer: out of the reviewers' queue.
    expect(item).to_be_hidden(timeout=LIVE)
    # The installer re-posts it: back in the queue, behind the drops waiting longer.
    record(site.store, post("DR22220002", datetime.now(UTC), name="Thabo Nkosi"))
    back = page.locator("#drops li").last
    expect(back).to_have_attribute("data-drop", "DR22220002", timeout=LIVE)
    expect(back.locator(".state")).to_have_text("↻ Resubmitted")
    expect(back).not_to_contain_text("Feedback sent")  # a resubmission awaits a new review
    expect(page.locator("#list-count")).to_have_text("(3)", timeout=LIVE)
    expect(page.locator("#card-waiting")).to_have_text("3")
    shot(page, "desktop-resubmitted.png")


@SQLITE_ONLY
def test_live_updates_never_wipe_unsaved_edits_and_lock_out_others(site: Site) -> None:
    record(site.store, post("DR44440004", today_minutes_ago(30)))
    page = sign_in(site, DESKTOP)
    drop_item(page, "DR44440004").get_by_role("button").click()
    editor = page.locator("#editor")
    # The first edit takes the lock.
    with page.expect_response(lambda r: r.url.endswith("/lock")) as locked:
        editor.get_by_label("1. House photo", exact=True).check()
    assert locked.value.ok
    expect(editor.locator("#assignee")).to_have_text("Assigned to reviewer")
    editor.get_by_label("2. Cable from pole", exact=True).check()
    expect(editor.locator("#save-note")).to_have_text("Unsaved changes")
    # Another reviewer is told who is editing.
    rid = review(site.store, "DR44440004")["id"]
    _token, secret = create_token(site.store, "reviewer2", "second")
    other = httpx.post(
        f"{site.url}/api/wa-monitor-drops/{rid}/lock",
        headers={"Authorization": f"Bearer {secret}"},
    )
    assert other.status_code == 409
    assert other.json()["error"]["message"] == "Drop is currently being edited by reviewer"
    # New drops keep arriving; the list refreshes but the open card keeps its ticks.
    record(site.store, post("DR55550005", today_minutes_ago(1)))
    expect(drop_item(page, "DR55550005")).to_be_visible(timeout=LIVE)
    expect(editor.get_by_label("1. House photo", exact=True)).to_be_checked()
    expect(editor.get_by_label("2. Cable from pole", exact=True)).to_be_checked()
    expect(editor.locator("#editor-progress")).to_have_text("2/12")
    editor.get_by_role("button", name="Save review").click()
    expect(editor.locator("#save-note")).to_have_text("Saved")
    stored = review(site.store, "DR44440004")
    assert stored["step_02_cable_from_pole"] and stored["locked_by"] is None


@SQLITE_ONLY
def test_a_viewer_cannot_edit(site: Site) -> None:
    record(site.store, post("DR66660006", today_minutes_ago(5)))
    page = sign_in(site, DESKTOP, user="viewer")
    drop_item(page, "DR66660006").get_by_role("button").click()
    editor = page.locator("#editor")
    expect(editor.get_by_label("1. House photo", exact=True)).to_be_disabled()
    expect(editor.get_by_role("button", name="Save review")).to_have_count(0)
    expect(editor.get_by_role("button", name="Generate feedback")).to_have_count(0)


@SQLITE_ONLY
def test_the_page_works_on_a_phone(site: Site) -> None:
    record(
        site.store,
        post("DR77770007", today_minutes_ago(40), name="Sipho Dlamini"),
        post("DR77770008", today_minutes_ago(20), project="Mohadin", name="Lerato M."),
    )
    record(site.store, post("DR77770007", today_minutes_ago(5), name="Sipho Dlamini"))
    page = sign_in(site, PHONE)
    first = page.locator("#drops li").first
    expect(first).to_have_attribute("data-drop", "DR77770007")
    # Nothing is wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "phone-dashboard.png")
    # Keyboard: focus the drop, open it with Enter, close it with Escape.
    first.get_by_role("button").focus()
    page.keyboard.press("Enter")
    editor = page.locator("#editor")
    expect(editor.get_by_role("heading", name="DR77770007")).to_be_focused()
    box = editor.bounding_box()
    assert box is not None and box["width"] <= PHONE["width"]
    editor.get_by_label("1. House photo", exact=True).check()
    editor.get_by_role("button", name="Save review").click()
    expect(editor.locator("#save-note")).to_have_text("Saved")
    shot(page, "phone-drop-review.png", full_page=False)
    page.keyboard.press("Escape")
    expect(editor).to_be_hidden()
    expect(first).to_contain_text("1/12")


@SQLITE_ONLY
def test_a_drop_someone_else_is_editing_is_read_only_until_released(site: Site) -> None:
    record(site.store, post("DR88880008", today_minutes_ago(5)))
    rid = review(site.store, "DR88880008")["id"]
    _token, secret = create_token(site.store, "reviewer2", "second")
    other = {"Authorization": f"Bearer {secret}"}
    assert httpx.post(f"{site.url}/api/wa-monitor-drops/{rid}/lock", headers=other).is_success
    page = sign_in(site, DESKTOP)
    item = drop_item(page, "DR88880008")
    expect(item).to_contain_text("✎ reviewer2")
    item.get_by_role("button").click()
    editor = page.locator("#editor")
    expect(editor.locator("#lock-note")).to_have_text("Being edited by reviewer2")
    expect(editor.get_by_label("1. House photo", exact=True)).to_be_disabled()
    # reviewer2 is done: the card becomes editable without a reload.
    assert httpx.post(f"{site.url}/api/wa-monitor-drops/{rid}/unlock", headers=other).is_success
    expect(editor.get_by_label("1. House photo", exact=True)).to_be_enabled(timeout=LIVE)
    expect(editor.locator("#lock-note")).to_be_hidden()


@SQLITE_ONLY
def test_filters_narrow_the_list_and_the_export(site: Site) -> None:
    posts = [post(f"DR9{n:07d}", today_minutes_ago(200 - n)) for n in range(105)]
    posts.append(post("DR12345678", today_minutes_ago(1), project="Mohadin"))
    record(site.store, *posts)
    page = sign_in(site, DESKTOP)
    items = page.locator("#drops li.drop")
    expect(items).to_have_count(100)
    page.get_by_role("button", name="Show more (100 of 106)").click()
    expect(items).to_have_count(106)
    page.get_by_label("Project").select_option("Mohadin")
    expect(items).to_have_count(1)
    expect(items.first).to_have_attribute("data-drop", "DR12345678")
    expect(page.locator("#card-total")).to_have_text("1")
    export = page.get_by_role("link", name="Export CSV")
    expect(export).to_have_attribute("href", re.compile(r"project=Mohadin"))
    page.get_by_role("button", name="Clear").click()
    page.get_by_label("Drop number").fill("dr 9000010")
    expect(items).to_have_count(5)  # DR90000100 … DR90000104
    with page.expect_download() as download:
        export.click()
    lines = Path(download.value.path()).read_text().splitlines()
    assert len(lines) == 6 and lines[0].startswith("dropNumber,project,status")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export XLSX").click()
    workbook = BytesIO(Path(download.value.path()).read_bytes())  # a download has no suffix
    sheet = openpyxl.load_workbook(workbook, read_only=True).active
    numbers = sorted(row[0] for row in sheet.iter_rows(min_row=2, values_only=True))
    assert numbers == [f"DR9000010{n}" for n in range(5)]


def test_a_save_that_meets_a_resubmission_merges_or_shows_both_versions(site: Site) -> None:
    """The installer posts the drop again while a reviewer edits it (both backends)."""
    record(site.store, post("DR77770007", today_minutes_ago(30), name="Thabo Nkosi"))
    page = sign_in(site, DESKTOP)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    drop_item(page, "DR77770007").get_by_role("button").click()
    editor = page.locator("#editor")
    expect(editor.get_by_role("heading", name="DR77770007")).to_be_visible()
    checked: list[str] = []

    # Ticks only, saved after a resubmission: merged, the monitor's line is kept.
    editor.get_by_label("1. House photo", exact=True).check()
    record(site.store, post("DR77770007", today_minutes_ago(20), name="Sipho Dlamini"))
    editor.get_by_role("button", name="Save review").click()
    expect(editor.locator("#save-note")).to_contain_text("Saved · merged")
    saved = review(site.store, "DR77770007")
    assert saved["step_01_house_photo"] is True and "Sipho Dlamini" in saved["comment"]
    # The monitor's line is history, not the reviewer's text.
    expect(editor.locator("#comment")).to_have_value("")
    expect(editor.locator("#monitor-notes")).to_contain_text("Sipho Dlamini")
    checked.append("ticks after a resubmission: merged")

    # A comment written on the copy read before another resubmission: both versions shown.
    editor.locator("#comment").fill("Pole photo is blurry")
    record(site.store, post("DR77770007", today_minutes_ago(10), name="Lerato M."))
    editor.get_by_role("button", name="Save review").click()
    dialog = page.get_by_role("dialog", name="DR77770007 changed while you were editing it")
    expect(dialog).to_be_visible()
    expect(dialog.locator("#conflict-mine-comment")).to_have_value("Pole photo is blurry")
    expect(dialog.locator("#conflict-current-comment")).to_contain_text("Lerato M.")
    expect(dialog.locator("#conflict-current-comment")).to_contain_text("Sipho Dlamini")
    assert "Lerato M." in review(site.store, "DR77770007")["comment"]  # nothing overwritten
    # Escape closes the dialog, not the editor; the edit is still there.
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(editor.locator("#comment")).to_have_value("Pole photo is blurry")
    # Saving again asks again; this time the reviewer keeps theirs, edited: the monitor's
    # lines stay after it, the newest too.
    editor.get_by_role("button", name="Save review").click()
    expect(dialog).to_be_visible()
    notes = review(site.store, "DR77770007")["comment"].splitlines()
    dialog.locator("#conflict-mine-comment").fill("Pole photo is blurry, retake it")
    dialog.get_by_role("button", name="Keep mine").click()
    expect(dialog).to_be_hidden()
    expect(editor.locator("#save-note")).to_have_text("Saved")
    kept = review(site.store, "DR77770007")["comment"]
    assert kept == "\n".join(["Pole photo is blurry, retake it", *notes])
    expect(editor.locator("#comment")).to_have_value("Pole photo is blurry, retake it")
    expect(editor.locator("#monitor-notes li")).to_have_count(2)
    checked.append("comment after a resubmission: dialog, kept mine as edited, notes kept")

    # Once more, and the reviewer takes the current version: their edit is dropped.
    editor.locator("#comment").fill("Never mind")
    record(site.store, post("DR77770007", today_minutes_ago(5), name="Zanele K."))
    editor.get_by_role("button", name="Save review").click()
    expect(dialog).to_be_visible()
    dialog.get_by_role("button", name="Use the current version").click()
    expect(dialog).to_be_hidden()
    latest = review(site.store, "DR77770007")
    expect(editor.locator("#comment")).to_have_value("Pole photo is blurry, retake it")
    assert "Zanele K." in latest["comment"] and "Never mind" not in latest["comment"]
    # The page releases its lock as it closes the dialog; the release may land just after.
    wait_until(lambda: review(site.store, "DR77770007")["locked_by"] is None)
    checked.append("comment after a resubmission: dialog, took the current version")
    print(f"3 resubmissions while editing; checked: {checked}; page errors {errors}")
    assert not errors
    page.context.close()
