"""The drop number lists on the admins' projects page, in headless Chromium: an upload that
replaces a project's list (and one refused, which changes nothing), and a day's
reconciliation shown side by side."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.e2e.test_browser import DESKTOP
from tests.e2e.test_browser_projects import Site, sign_in, site
from tests.integration.test_api_support import post, record, review, today_minutes_ago
from wa_monitor.store import drop_lists

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("db_url", ["sqlite"], indirect=True),
]
__all__ = ["site"]  # the projects page's live server, with its projects file

PAGE = "/wa-monitor/projects"


def csv_file(name: str, text: str) -> dict[str, object]:
    return {"name": name, "mimeType": "text/csv", "buffer": text.encode()}


def test_an_admin_uploads_a_drop_list_and_a_bad_file_changes_nothing(site: Site) -> None:
    record(
        site.store,
        post("DR11111111", today_minutes_ago(20)),
        post("DR33333333", today_minutes_ago(10)),
    )
    page = sign_in(site, DESKTOP, "admin", PAGE)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    lawley = page.locator('#lists-rows tr[data-project="Lawley"]')
    expect(lawley.locator(".list-total")).to_have_text("No list")

    lawley.get_by_role("button", name="Upload the list of Lawley").click()
    page.locator("#upload-file").set_input_files(
        csv_file("plan.csv", "Pole;Drop Number\nP1;DR11111111\nP2;DR22222222\nP3;tbc\n")  # type: ignore[arg-type]
    )
    page.get_by_role("button", name="Upload list").click()

    status = page.locator("#lists-status")
    expect(status).to_contain_text("Lawley: 2 numbers (2 added, 0 removed)")
    expect(status).to_contain_text("1 drop(s) changed validity")
    expect(status).to_contain_text('row 4 "tbc"')
    expect(lawley.locator(".list-total")).to_have_text("2")
    expect(lawley).to_contain_text("admin")
    assert review(site.store, "DR33333333")["invalid"]

    lawley.get_by_role("button", name="Upload the list of Lawley").click()
    page.locator("#upload-file").set_input_files(
        csv_file("other.csv", "Pole,Address\nP1,1 Main\n")  # type: ignore[arg-type]
    )
    page.get_by_label("Drop number column").first.fill("Drop")
    page.get_by_role("button", name="Upload list").click()

    alert = page.locator("#upload-error")
    expect(alert).to_contain_text("The list of Lawley is unchanged")
    expect(alert).to_contain_text("has no column 'Drop'; its headers are: 'Pole', 'Address'")
    expect(lawley.locator(".list-total")).to_have_text("2")
    [info] = drop_lists.info(site.store)
    assert info.total == 2
    assert errors == []


def test_a_day_is_reconciled_side_by_side(site: Site) -> None:
    record(
        site.store,
        post("DR11111111", today_minutes_ago(20)),
        post("DR33333333", today_minutes_ago(10)),
    )
    page = sign_in(site, DESKTOP, "admin", PAGE)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    form = page.locator("#reconcile")
    form.get_by_label("Project").select_option("Lawley")
    page.locator("#reconcile-file").set_input_files(
        csv_file("today.csv", "Drop\nDR11111111\nDR22222222\n")  # type: ignore[arg-type]
    )
    page.get_by_role("button", name="Reconcile").click()

    expect(page.locator("#not-posted-head")).to_have_text("On the list, never posted (1)")
    expect(page.locator("#not-listed-head")).to_have_text("Posted that day, not on the list (1)")
    [row] = page.locator("#reconcile-rows tr").all()
    expect(row.locator(".not-posted")).to_have_text("DR22222222")
    expect(row.locator(".not-listed")).to_have_text("DR33333333")
    expect(page.locator("#reconcile-summary")).to_contain_text("2 numbers on the list")
    assert drop_lists.info(site.store) == []  # nothing imported
    assert errors == []
