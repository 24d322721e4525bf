"""The admins' health panel in headless Chromium (Debian's), against a live server.

Takes the screenshot desktop-health.png (see test_browser.shot: written only when
WA_MONITOR_SCREENSHOTS=1).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_browser import DESKTOP, PHONE, SQLITE_ONLY, shot
from tests.integration.test_api_support import (
    LAWLEY_JID,
    MOHADIN_JID,
    PASSWORD,
    LiveServer,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
)
from tests.integration.test_health_panel import feedback_entry, heartbeat, panel_settings
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import alert_states
from wa_monitor.web.app import create_app

pytestmark = [pytest.mark.browser, SQLITE_ONLY]
LIVE = 15_000  # ms: a change must show within a few refreshes


@dataclass
class Site:
    url: str
    store: ReviewStore
    browser: Browser


@pytest.fixture
def site(store: ReviewStore, chromium: Browser) -> Iterator[Site]:
    add_people(store, ("viewer", "reviewer", "admin"))
    app = create_app(
        panel_settings(store),
        projects_config(),
        store,
        run_sender=False,
        poll_seconds=0.5,  # the panel refreshes every 1.5 s
        follow_seconds=0,
    )
    server = LiveServer(app).start()
    try:
        yield Site(server.url, store, chromium)
    finally:
        server.stop()


def sign_in(site: Site, viewport: dict[str, int], user: str) -> Page:
    context = site.browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{site.url}/wa-monitor")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/wa-monitor$"))
    return page


def test_an_admin_sees_a_stale_group_and_a_failed_feedback(site: Site) -> None:
    heartbeat(site.store, groups={LAWLEY_JID: 4, MOHADIN_JID: 190})  # Mohadin silent 3 h
    record(
        site.store,
        post("DR11110001", minutes_ago(20)),
        post("DR22220001", minutes_ago(200), project="Mohadin"),
    )
    feedback_entry(site.store, "DR11110001", "failed", "the bridge is not connected", 15)
    with site.store.begin() as conn:
        conn.execute(
            sa.insert(alert_states).values(
                alert="group-silent",
                channel="webhook:https://hooks.example/abc",
                state="firing",
                since=minutes_ago(10),
                message="Mohadin has been silent for 3 h",
                last_error="HTTP 502 from the webhook",
            )
        )
    page = sign_in(site, DESKTOP, "admin")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Health").click()
    expect(page).to_have_url(re.compile(r"/wa-monitor/health$"))
    expect(page.locator("#health-overall")).to_have_text("Needs a look")

    mohadin = page.locator('#health-groups tr[data-project="Mohadin"]')
    expect(mohadin).to_have_class(re.compile(r"\bstale\b"))
    expect(mohadin).to_contain_text("Stale")
    expect(mohadin).to_contain_text(re.compile(r"no message for 3\.\d h"))
    expect(mohadin).to_contain_text("DR22220001")
    lawley = page.locator('#health-groups tr[data-project="Lawley"]')
    expect(lawley).to_contain_text("OK")
    expect(lawley).to_contain_text(re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d SAST \(4 min ago\)"))
    expect(lawley).to_contain_text("DR11110001")

    failed = page.locator("#health-feedback tbody tr")
    expect(failed).to_have_count(1)
    expect(failed).to_contain_text("DR11110001")
    expect(failed).to_contain_text("failed")
    expect(failed).to_contain_text("the bridge is not connected")
    expect(failed.get_by_role("link", name="DR11110001")).to_have_attribute(
        "href", re.compile(r"/wa-monitor\?drop=DR11110001$")
    )
    expect(page.locator("#health-feedback-counts")).to_contain_text("1 failed")
    warnings = page.locator("#health-warnings")
    expect(warnings).to_contain_text("Mohadin: no message for")
    expect(warnings).to_contain_text("Feedback: 1 failed, 0 unconfirmed")
    expect(page.locator('#health-monitors tr[data-instance="prod@vps1"]')).to_contain_text(
        "running"
    )
    alert = page.locator('#health-alerts tr[data-alert="group-silent"]')
    expect(alert).to_contain_text("not sent")
    expect(alert).to_contain_text("HTTP 502 from the webhook")
    expect(warnings).to_contain_text("Alert group-silent did not reach its webhook")
    shot(page, "desktop-health.png")

    # It refreshes by itself: a feedback that fails now shows without a reload.
    feedback_entry(site.store, "DR11110002", "unconfirmed", "no answer in 10 s", 0)
    expect(failed).to_have_count(2, timeout=LIVE)
    expect(failed.first).to_contain_text("DR11110002")
    # And by keyboard: the refresh button is reachable and works with Enter.
    page.locator("#health-refresh").focus()
    expect(page.locator("#health-refresh")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#health-status")).to_have_text("")
    assert errors == []


def test_the_panel_reads_on_a_phone_and_is_not_for_viewers(site: Site) -> None:
    heartbeat(site.store)
    feedback_entry(site.store, "DR11110001", "failed", "x" * 300, 5)  # a long error wraps
    page = sign_in(site, PHONE, "admin")
    page.goto(f"{site.url}/wa-monitor/health")
    expect(page.locator("#health-feedback tbody tr")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    # Each row is a card: the labels are shown beside the values.
    cell = page.locator('#health-groups tr[data-project="Lawley"] td[data-label="Last message"]')
    expect(cell).to_be_visible()
    assert page.screenshot(full_page=True).startswith(b"\x89PNG")

    viewer = sign_in(site, PHONE, "viewer")
    nav = viewer.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link", name="Health")).to_have_count(0)
    answer = viewer.goto(f"{site.url}/wa-monitor/health")
    assert answer is not None and answer.status == 403
    expect(viewer.get_by_role("alert")).to_contain_text("The health page is for admins")
