"""The admins' projects page in headless Chromium (Debian's), against a live server.

The page edits a real projects file on disk (with comments) and a real bridge store;
takes the screenshots desktop-projects.png and phone-projects.png (see test_browser.shot).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.test_browser import DESKTOP, PHONE, shot
from tests.helpers import Bridge
from tests.integration.test_api_support import (
    LAWLEY_JID,
    MOHADIN_JID,
    PASSWORD,
    LiveServer,
    add_people,
)
from wa_monitor.core.config import load_config
from wa_monitor.core.settings import settings_from
from wa_monitor.monitor.projects_edit import audit_rows
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.app import create_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]

VELO_JID = "120363421664266245@g.us"
MAMELODI_JID = "120363400000000777@g.us"
PROJECTS_FILE = f"""\
# WA Monitor projects: edited by hand, by `wa-monitor projects` and by the dashboard.
timezone: Africa/Johannesburg
steps:
  step_09_ups_serial: UPS serial number
projects:
  # The first group we monitored.
  - name: Lawley
    group_jid: "{LAWLEY_JID}"  # Lawley Activation 3
    description: Lawley Activation 3 group
  - name: Mohadin
    group_jid: "{MOHADIN_JID}"
    description: Mohadin Activations group
"""


@dataclass
class Site:
    url: str
    store: ReviewStore
    path: Path
    browser: Browser


@pytest.fixture
def site(store: ReviewStore, chromium: Browser, tmp_path: Path) -> Iterator[Site]:
    add_people(store, ("viewer", "reviewer", "admin"))
    path = tmp_path / "config" / "projects.yaml"
    path.parent.mkdir()
    path.write_text(PROJECTS_FILE)
    bridge = Bridge(tmp_path / "bridge")
    bridge.writer.add_chat(LAWLEY_JID, "Lawley Activation 3")
    bridge.writer.add_chat(MAMELODI_JID, "Mamelodi POP1 Activations")
    bridge.post(LAWLEY_JID, "hello")
    bridge.post(MAMELODI_JID, "hello")
    settings = settings_from(
        {
            "DATABASE_URL": store.url,
            "SECRET_KEY": "test-secret-key-0123456789",
            "BRIDGE_URL": "http://127.0.0.1:9/api",
            "WHATSAPP_DB_PATH": str(bridge.messages_db),
        }
    )
    app = create_app(settings, load_config(path), store, run_sender=False)
    server = LiveServer(app).start()
    try:
        yield Site(server.url, store, path, chromium)
    finally:
        server.stop()


def sign_in(site: Site, viewport: dict[str, int], user: str, start: str = "/wa-monitor") -> Page:
    context = site.browser.new_context(viewport=viewport)  # type: ignore[arg-type]
    page = context.new_page()
    page.goto(f"{site.url}{start}")
    expect(page).to_have_url(re.compile(r"/login"))
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(f"{re.escape(start)}$"))
    return page


def row(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#projects-rows tr[data-name="{name}"]')


def test_an_admin_adds_and_disables_a_project_from_the_dashboard(site: Site) -> None:
    page = sign_in(site, DESKTOP, "admin")
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))  # no script error, ever

    # The header links admins to the projects page.
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Projects").click()
    expect(page).to_have_url(re.compile(r"/wa-monitor/projects$"))
    expect(page.get_by_role("heading", name=re.compile(r"^Projects"))).to_be_visible()
    expect(row(page, "Lawley")).to_contain_text(LAWLEY_JID)
    expect(row(page, "Lawley")).to_contain_text("Lawley Activation 3 group")
    expect(row(page, "Lawley")).to_contain_text("Enabled")
    expect(row(page, "Mohadin")).to_be_visible()
    expect(page.locator("#history")).to_contain_text("No changes recorded yet")

    form = page.locator("#add-project")
    error = page.locator("#add-error")
    # A bad JID: the API's message next to the form, the field marked.
    form.get_by_label("Project name").fill("Velo Test")
    form.get_by_label("Group JID").fill("27821234567@s.whatsapp.net")
    form.get_by_role("button", name="Add project").click()
    expect(error).to_contain_text("is not a group JID")
    expect(form.get_by_label("Group JID")).to_have_attribute("aria-invalid", "true")
    # A name already taken.
    form.get_by_label("Project name").fill("Lawley")
    form.get_by_label("Group JID").fill(VELO_JID)
    form.get_by_role("button", name="Add project").click()
    expect(error).to_contain_text("a project named 'Lawley' already exists")
    expect(form.get_by_label("Project name")).to_have_attribute("aria-invalid", "true")
    expect(form.get_by_label("Project name")).to_be_focused()
    assert site.path.read_text() == PROJECTS_FILE  # nothing written by refused changes

    # Added by JID (keyboard only: type, then Enter submits).
    form.get_by_label("Project name").fill("Velo Test")
    form.get_by_label("Description").fill("Velo Test group")
    form.get_by_label("Description").press("Enter")
    expect(page.locator("#projects-status")).to_contain_text("Project Velo Test added")
    expect(error).to_be_hidden()
    velo = row(page, "Velo Test")
    expect(velo).to_contain_text(VELO_JID)
    expect(velo).to_contain_text("Velo Test group")
    expect(velo).to_contain_text("Enabled")
    first = page.locator("#history li.change").first
    expect(first).to_contain_text("dashboard:admin")
    expect(first.locator("pre")).to_contain_text("+  - name: Velo Test")
    expect(first.locator("pre")).to_contain_text(VELO_JID)
    expect(form.get_by_label("Project name")).to_have_value("")

    # Added by the group's name in the bridge store (case-insensitive).
    form.get_by_label("by its name in the bridge store").check()
    expect(form.get_by_label("Group JID")).to_be_hidden()
    form.get_by_label("Project name").fill("Mamelodi")
    form.get_by_role("textbox", name="Group name").fill("Mamelodi POP")
    form.get_by_role("button", name="Add project").click()
    expect(error).to_contain_text("no group called 'Mamelodi POP'")
    expect(error).to_contain_text("Mamelodi POP1 Activations")
    form.get_by_role("textbox", name="Group name").fill("mamelodi pop1 activations")
    form.get_by_role("button", name="Add project").click()
    expect(row(page, "Mamelodi")).to_contain_text(MAMELODI_JID)
    expect(row(page, "Mamelodi")).to_contain_text("Mamelodi POP1 Activations")
    # The drop number lists follow: the new project can be given its list at once.
    expect(page.locator('#lists-rows tr[data-project="Mamelodi"]')).to_contain_text("No list")

    # Disabled: the row says so, the keyboard stays on the row's (now Enable) button.
    row(page, "Velo Test").get_by_role("button", name="Disable Velo Test").click()
    expect(page.locator("#projects-status")).to_contain_text("Project Velo Test disabled")
    expect(velo).to_contain_text("Disabled")
    expect(velo.get_by_role("button", name="Enable Velo Test")).to_be_focused()
    expect(page.locator("#history li.change")).to_have_count(3)
    latest = page.locator("#history li.change").first
    expect(latest).to_contain_text("dashboard:admin")
    expect(latest.locator("pre")).to_contain_text("+    enabled: false")
    shot(page, "desktop-projects.png")

    # The file on disk: changed accordingly, its comments and order kept.
    text = site.path.read_text()
    for line in PROJECTS_FILE.splitlines():
        assert line in text, line
    config = load_config(site.path)
    assert [(p.name, p.group_jid, p.enabled) for p in config.projects] == [
        ("Lawley", LAWLEY_JID, True),
        ("Mohadin", MOHADIN_JID, True),
        ("Velo Test", VELO_JID, False),
        ("Mamelodi", MAMELODI_JID, True),
    ]
    assert {r["actor"] for r in audit_rows(site.store, site.path)} == {"dashboard:admin"}

    # Enabled again from the keyboard.
    page.keyboard.press("Enter")
    expect(velo).to_contain_text("Enabled")
    assert load_config(site.path).projects[2].enabled is True
    assert errors == []


def test_the_projects_page_works_on_a_phone(site: Site) -> None:
    page = sign_in(site, PHONE, "admin", start="/wa-monitor/projects")
    expect(row(page, "Lawley")).to_contain_text(LAWLEY_JID)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    button = row(page, "Mohadin").get_by_role("button", name="Disable Mohadin")
    box = button.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"]
    button.click()
    expect(row(page, "Mohadin")).to_contain_text("Disabled")
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(page, "phone-projects.png")


@pytest.mark.parametrize("user", ["viewer", "reviewer"])
def test_viewers_and_reviewers_cannot_reach_the_projects_page(site: Site, user: str) -> None:
    page = sign_in(site, DESKTOP, user)
    expect(page.locator("#drops")).to_be_visible()
    expect(page.get_by_role("link", name="Projects")).to_have_count(0)
    response = page.goto(f"{site.url}/wa-monitor/projects")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Admins only")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text(f"{user} is a {user}")
    expect(page.locator("#projects-rows")).to_have_count(0)
    # Nor its API, from the signed-in browser.
    status = page.evaluate(
        "fetch('/api/wa-monitor-projects', {credentials: 'same-origin'}).then(r => r.status)"
    )
    assert status == 403
    page.get_by_role("link", name="Back to the drops").click()
    expect(page).to_have_url(re.compile(r"/wa-monitor$"))
    assert site.path.read_text() == PROJECTS_FILE
