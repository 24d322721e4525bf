"""The admins' users page in headless Chromium: add, role, disable, reset a password, audit."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser import DESKTOP, PHONE, SQLITE_ONLY, Site, sign_in, site
from tests.integration.test_api_support import PASSWORD, add_people

__all__ = ["site"]  # the live server, bridge and browser of the page's tests
pytestmark = [pytest.mark.browser, SQLITE_ONLY]

NEW_PASSWORD = "pass-phrase-of-nomsa-7"


def test_an_admin_manages_users_and_every_change_is_in_the_audit(site: Site) -> None:
    add_people(site.store, ("admin",))
    page = sign_in(site, DESKTOP, user="admin")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Users").click()
    expect(page).to_have_url(re.compile(r"/wa-monitor/users$"))
    rows = page.locator("#users-rows tr")
    expect(rows).to_have_count(4)  # admin, reviewer, reviewer2, viewer
    # Admins cannot demote or disable themselves.
    me = page.locator('#users-rows tr[data-user="admin"]')
    expect(me.get_by_label("Role of admin")).to_be_disabled()
    expect(me.get_by_role("button", name="Disable admin")).to_have_count(0)

    # Add: a too short password is refused before anything is sent; then it works.
    form = page.locator("#add-user")
    form.get_by_label("User name").fill("nomsa")
    form.get_by_label("Password").fill("short")
    form.get_by_role("button", name="Add user").click()
    expect(page.locator("#add-error")).to_contain_text("at least 8 characters")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_label("Role").select_option("viewer")
    form.get_by_role("button", name="Add user").click()
    expect(page.locator("#users-status")).to_have_text("nomsa added as viewer")
    nomsa = page.locator('#users-rows tr[data-user="nomsa"]')
    expect(nomsa).to_contain_text("never")  # has not signed in yet
    # The same name again: the server's reason is shown.
    form.get_by_label("User name").fill("nomsa")
    form.get_by_label("Password").fill(PASSWORD)
    form.get_by_role("button", name="Add user").click()
    expect(page.locator("#add-error")).to_contain_text("already exists")

    # Role, disable, enable.
    nomsa.get_by_label("Role of nomsa").select_option("reviewer")
    expect(page.locator("#users-status")).to_have_text("nomsa is now a reviewer")
    nomsa.get_by_role("button", name="Disable nomsa").click()
    expect(nomsa).to_contain_text("Disabled")
    nomsa.get_by_role("button", name="Enable nomsa").click()
    expect(nomsa).to_contain_text("Active")

    # Reset the password: the dialog, then nomsa signs in with the new one only.
    nomsa.get_by_role("button", name="Reset the password of nomsa").click()
    dialog = page.get_by_role("dialog", name="Reset the password of nomsa")
    dialog.get_by_label("New password").fill(NEW_PASSWORD)
    dialog.get_by_role("button", name="Set the password").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#users-status")).to_contain_text("sessions ended")

    audit = page.locator("#audit li")
    expect(audit).to_have_count(5)
    expect(audit.nth(0)).to_contain_text("admin: nomsa password reset")
    expect(audit.nth(1)).to_contain_text("nomsa enabled")
    expect(audit.nth(2)).to_contain_text("nomsa disabled")
    expect(audit.nth(3)).to_contain_text("nomsa role viewer → reviewer")
    expect(audit.nth(4)).to_contain_text("nomsa added as viewer")
    assert NEW_PASSWORD not in page.locator("#audit").inner_text()

    context = site.browser.new_context(viewport=PHONE)  # type: ignore[arg-type]
    phone = context.new_page()
    phone.goto(f"{site.url}/wa-monitor")
    for password in (PASSWORD, NEW_PASSWORD):
        phone.get_by_label("User name").fill("nomsa")
        phone.get_by_label("Password").fill(password)
        phone.get_by_role("button", name="Sign in").click()
        if password == PASSWORD:  # the first password no longer works
            expect(phone.get_by_role("alert")).to_have_text("Wrong user name or password.")
    expect(phone).to_have_url(re.compile(r"/wa-monitor$"))
    # A reviewer sees the Team link but neither the Users link nor the page.
    nav = phone.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link", name="Team")).to_be_visible()
    expect(nav.get_by_role("link", name="Users")).to_have_count(0)
    assert phone.goto(f"{site.url}/wa-monitor/users").status == 403
    context.close()


def test_the_users_page_works_on_a_phone(site: Site) -> None:
    add_people(site.store, ("admin",))
    page = sign_in(site, PHONE, user="admin")
    page.goto(f"{site.url}/wa-monitor/users")
    expect(page.locator("#users-rows tr")).to_have_count(4)
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert page.screenshot().startswith(b"\x89PNG")
