"""The team page in headless Chromium (Debian's), against a live server.

A demo-like history (four installers, three reviewers, eight weeks) written as the API
and the monitor leave it; takes desktop-team.png and phone-team.png (see
test_browser.shot: refreshed only with WA_MONITOR_SCREENSHOTS=1).
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import DESKTOP, PHONE, SQLITE_ONLY, Site, shot, sign_in, site
from tests.integration.test_api_support import post, projects_config, record
from tests.integration.test_team import edit, feedback
from wa_monitor.store.review_store import ReviewStore

pytestmark = [pytest.mark.browser, SQLITE_ONLY]
__all__ = ["site"]  # the live server, from test_browser

INSTALLERS = [
    ("Sipho Dlamini", "27831110000", "Lawley"),
    ("Thabo Nkosi", "27821110000", "Lawley"),
    ("Lerato Mokoena", "27721110000", "Mohadin"),
    ("27623558979", "27623558979", "Mohadin"),  # a sender without a contact name
]
REVIEWERS = ["reviewer", "reviewer2", "admin"]
CHARTS = ["drops-per-week", "first-time-pass", "review-time"]


def demo_history(store: ReviewStore, weeks: int = 8) -> int:
    """Drops over the last `weeks` ISO weeks: most pass, some are sent back and come
    again, the newest wait. Only moments in the past; returns how many drops."""
    rng = random.Random(12)
    zone = projects_config().zone
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    monday = today - timedelta(days=today.weekday()) - timedelta(weeks=weeks - 1)
    count = 0
    for day in range(weeks * 7):
        date = monday + timedelta(days=day)
        if date.weekday() == 6:
            continue
        for name, phone, project in INSTALLERS:
            for _ in range(rng.choice([0, 1, 1, 2])):
                count += 1
                number = f"DR{40000000 + count}"
                posted = datetime(date.year, date.month, date.day, 8, tzinfo=zone) + timedelta(
                    minutes=rng.randrange(0, 8 * 60)
                )
                if posted > now - timedelta(minutes=5):
                    continue
                record(store, post(number, posted, project=project, name=name, sender=phone))
                _review(store, rng, number, project, name, phone, posted, now)
    return count


def _review(
    store: ReviewStore,
    rng: random.Random,
    number: str,
    project: str,
    name: str,
    phone: str,
    posted: datetime,
    now: datetime,
) -> None:
    reviewer = rng.choice(REVIEWERS)
    opened = posted + timedelta(minutes=rng.randrange(10, 180))
    took = timedelta(minutes=rng.randrange(3, 25))
    if opened + took > now:
        return  # still waiting
    edit(store, number, reviewer, opened, project=project, step_01_house_photo=[False, True])
    # The first installers pass more often than the last.
    fails = rng.random() < 0.15 + 0.15 * [n for n, _, _ in INSTALLERS].index(name)
    if not fails:
        edit(store, number, reviewer, opened + took, project=project, approve=True)
        return
    asked = opened + took
    feedback(store, number, reviewer, asked, asked + timedelta(seconds=20), project=project)
    again = asked + timedelta(minutes=rng.randrange(40, 600))
    if again > now:
        return
    record(store, post(number, again, project=project, name=name, sender=phone))
    second = again + timedelta(minutes=rng.randrange(15, 120))
    if second + took > now:
        return
    other = rng.choice(REVIEWERS)
    edit(store, number, other, second, project=project, step_03_cable_entry_outside=[False, True])
    edit(store, number, other, second + took, project=project, approve=True)


def open_team(site: Site, viewport: dict[str, int]) -> Page:
    page = sign_in(site, viewport, user="viewer")
    page.get_by_role("link", name="Team").click()
    expect(page).to_have_url(re.compile(r"/wa-monitor/team$"))
    return page


def wait_for_charts(page: Page) -> None:
    for name in CHARTS:
        chart = page.locator(f"#chart-{name}")
        chart.scroll_into_view_if_needed()
        page.wait_for_function(
            "el => el.complete && el.naturalWidth > 0", arg=chart.element_handle()
        )


def test_the_team_page_shows_installers_reviewers_and_charts(site: Site) -> None:
    assert demo_history(site.store) > 50
    page = open_team(site, DESKTOP)
    installers = page.locator("#installers tbody tr")
    expect(installers.first).to_be_visible()
    for name, phone, _ in INSTALLERS:
        shown = name if name == phone else f"{name} ({phone})"
        expect(page.locator("#installers tbody th", has_text=shown).first).to_be_visible()
    expect(page.locator("#installers")).not_to_contain_text("27623558979 (27623558979)")
    for reviewer in REVIEWERS:
        cell = page.locator("#reviewers tbody th", has_text=re.compile(f"^{reviewer}$"))
        expect(cell.first).to_be_visible()
    wait_for_charts(page)
    shot(page, "desktop-team.png")

    # The filters live in the URL: one project, four weeks.
    page.locator("#team-project").select_option("Mohadin")
    page.locator("#team-weeks").select_option("4")
    page.get_by_role("button", name="Show").click()
    expect(page).to_have_url(re.compile(r"project=Mohadin&weeks=4"))
    expect(page.locator("#installers tbody tr")).to_have_count(2)
    expect(page.locator("#installers")).not_to_contain_text("Sipho Dlamini")
    wait_for_charts(page)
    page.reload()
    expect(page.locator("#team-project")).to_have_value("Mohadin")
    expect(page.locator("#team-weeks")).to_have_value("4")


def test_the_team_page_fits_a_phone(site: Site) -> None:
    demo_history(site.store)
    page = open_team(site, PHONE)
    expect(page.locator("#installers tbody tr").first).to_be_visible()
    wait_for_charts(page)
    # Drawn for a phone's width, so that its type stays readable.
    source = page.locator("#chart-review-time").evaluate("el => el.currentSrc")
    assert "size=narrow" in source
    # Nothing wider than the screen but the tables, which scroll inside their panel.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    width = page.locator("#chart-first-time-pass").bounding_box()
    assert width is not None and width["width"] <= PHONE["width"]
    shot(page, "phone-team.png")
