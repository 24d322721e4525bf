"""Hostile text from WhatsApp renders as text: a sender named `<script>…` in headless
Chromium (Debian's), in the drop list, the review editor, a resubmission comment, a
reviewer's comment and the sign-in page."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.integration.test_api_support import (
    PASSWORD,
    LiveServer,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    settings_for,
)
from wa_monitor.store import ReviewStore
from wa_monitor.web.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

PAYLOADS = [
    "<script>window.__xss='script'</script>",
    "<img src=x onerror=\"window.__xss='img'\">",
    '"><svg onload="window.__xss=\'svg\'">',
    "</script><script>window.__xss='boot'</script>",
]
NAME = "Thabo " + "".join(PAYLOADS)


@pytest.fixture
def server(store: ReviewStore) -> Iterator[str]:
    app = create_app(
        settings_for(store.url), projects_config(), store, run_sender=False, poll_seconds=0.5
    )
    live = LiveServer(app).start()
    try:
        yield live.url
    finally:
        live.stop()


def watch(page: Page) -> list[str]:
    """Every sign that injected script ran: dialogs and the __xss marker."""
    events: list[str] = []
    page.on("dialog", lambda d: (events.append(f"dialog {d.message}"), d.dismiss()))
    return events


def test_a_hostile_sender_name_renders_as_text(
    store: ReviewStore, server: str, chromium: Browser
) -> None:
    people = add_people(store, ("reviewer",))
    record(store, post("DR66660001", minutes_ago(30), name=NAME, sender="27820000666"))
    # A resubmission by the same hostile sender puts the name in the review's comment too.
    record(store, post("DR66660001", minutes_ago(20), name=NAME, sender="27820000666"))
    # A reviewer's comment with markup, saved through the API.
    drop_id = str(store.review_id("Lawley", "DR66660001"))
    saved = httpx.patch(
        f"{server}/api/wa-monitor-drops/{drop_id}",
        json={
            "comment": PAYLOADS[1],
            "incorrectSteps": ["step_01_house_photo"],
            "incorrectComments": {"step_01_house_photo": PAYLOADS[0]},
        },
        headers=people.bearer("reviewer"),
        timeout=10,
    )
    assert saved.status_code == 200, saved.text

    context = chromium.new_context()
    page = context.new_page()
    events = watch(page)
    try:
        page.goto(f"{server}/wa-monitor")
        page.get_by_label("User name").fill("reviewer")
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(re.compile(r"/wa-monitor$"))
        item = page.locator('#drops li[data-drop="DR66660001"]')
        expect(item).to_be_visible(timeout=15_000)
        # The name shows literally, as text.
        expect(item).to_contain_text("<script>window.__xss='script'</script>")
        item.get_by_role("button").first.click()
        editor = page.locator("#editor")
        expect(editor.get_by_role("heading", name="DR66660001")).to_be_visible()
        expect(editor).to_contain_text("<img src=x onerror=\"window.__xss='img'\">")
        page.wait_for_timeout(300)  # give an injected onerror/onload its chance to fire
        injected = page.evaluate(
            """() => ({
                marker: window.__xss || null,
                scripts: [...document.querySelectorAll('#drops script, #editor script')].length,
                images: [...document.querySelectorAll('#drops img, #editor img')]
                    .filter(i => i.getAttribute('src') === 'x').length,
                svgs: [...document.querySelectorAll('#drops svg[onload], #editor svg[onload]')]
                    .length,
            })"""
        )
    finally:
        context.close()
    print(f"hostile sender name and comments rendered: {injected}, dialogs {events}")
    assert injected == {"marker": None, "scripts": 0, "images": 0, "svgs": 0}
    assert not events


def test_the_sign_in_page_does_not_reflect_markup(server: str, chromium: Browser) -> None:
    context = chromium.new_context()
    page = context.new_page()
    events = watch(page)
    try:
        hostile = "/\"><script>window.__xss='next'</script>"
        page.goto(f"{server}/login?next={quote(hostile)}")
        page.get_by_label("User name").fill("<script>window.__xss='user'</script>")
        page.get_by_label("Password").fill("wrong password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Wrong user name or password.")).to_be_visible()
        marker = page.evaluate("() => window.__xss || null")
    finally:
        context.close()
    assert marker is None
    assert not events
