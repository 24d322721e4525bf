"""Hostile text renders as text, in headless Chromium (Debian's): every field that reaches
a page (project names and descriptions, group names, step labels, drop numbers, user
names, senders' names and phones, comments, incorrect-step comments, feedback and the
bridge's errors) holds markup, a comment opener that keeps a `<script>` open, quotes
that would end an attribute, `javascript:` URLs, entities and line separators."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.fakebridge import Answer, running_bridge
from tests.helpers import Bridge, review_id
from tests.integration.test_api_support import (
    LAWLEY_JID,
    PASSWORD,
    LiveServer,
    add_people,
    post,
    projects_config,
    record,
    settings_for,
    today_minutes_ago,
)
from wa_monitor.core.config import load_config
from wa_monitor.core.reviews import Post
from wa_monitor.core.settings import settings_from
from wa_monitor.feedback.outbox import BridgeClient
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import users
from wa_monitor.store.users import create_token, hash_password
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
    record(store, post("DR66660001", today_minutes_ago(30), name=NAME, sender="27820000666"))
    # A resubmission by the same hostile sender puts the name in the review's comment too.
    record(store, post("DR66660001", today_minutes_ago(20), name=NAME, sender="27820000666"))
    # A reviewer's comment with markup, saved through the API.
    drop_id = str(review_id(store, "Lawley", "DR66660001"))
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


# -- every field that reaches a page ----------------------------------------------------

# `<!--<script>` in a script element makes the HTML parser skip its `</script>`: the
# boot JSON then swallows the page's scripts and the dashboard stays at "Loading…".
OPENER = "<!--<script>"
# Short enough for the narrowest columns (a sender's phone: 50 characters).
SHORT = OPENER + "'\"&amp;<img src=x onerror=__xss=1>"
LONG = (
    OPENER
    + "</script><script>window.__xss='boot'</script>"
    + "<img src=x onerror=\"window.__xss='img'\">"
    + '"><svg onload="window.__xss=\'svg\'">'
    + "' onmouseover='window.__xss=1' x='"
    + " javascript:window.__xss='url' &lt;b&gt; \u2028\u2029 {{7*7}} ${7*7}"
)
PROJECT = f"{OPENER} Mamelodi {SHORT}"[:100]
DESCRIPTION = f"Mamelodi POP1 {LONG}"[:200]
GROUP_NAME = f"Velo \"'><svg onload=__xss=4> &amp; {OPENER}"
GROUP_PROJECT = f"Velo {SHORT}"
STEP_LABEL = f"Cable entry {LONG}"
ADMIN = f"adm{SHORT}"
REVIEWER = f"rev</script><svg onload=__xss=2>{OPENER}"
# As the monitor stores drop numbers: upper case, no spaces (`/` separates attributes).
DROP = f"DR1{SHORT}".upper().replace(" ", "/")[:50]
SENDER_NAME = f"Thabo {LONG}"[:100]
PHONE = f"+27{SHORT}"[:50]
WHY = f"blurry {LONG}"
COMMENT = f"Please redo {LONG}"
BRIDGE_ERROR = f"recipient {LONG}"
# The outbox keeps a bridge's reason on one line: up to the line separators it is shown.
BRIDGE_SHOWN = BRIDGE_ERROR.split(" \u2028")[0]
UNKNOWN_GROUP = f'Nowhere {OPENER}"&amp;<img src=x onerror=__xss=1>'  # quoted by repr()
MAMELODI_JID = "120363400000000777@g.us"
VELO_JID = "120363421664266245@g.us"
STEP = "step_03_cable_entry_outside"

# Everything a browser would run or follow that text from the data could have added.
INJECTED_JS = """() => {
    const body = [...document.body.querySelectorAll("*")];
    const urlAttrs = ["href", "src", "action", "formaction", "xlink:href"];
    return {
        marker: window.__xss ?? null,
        handlers: body.flatMap((e) => [...e.attributes]
            .filter((a) => a.name.startsWith("on")).map((a) => `${e.localName}[${a.name}]`)),
        elements: body.map((e) => e.localName)
            .filter((n) => ["img", "svg", "iframe", "object", "embed", "math", "base",
                            "meta", "link", "style"].includes(n)),
        scripts: [...document.scripts].map((e) => e.id || e.getAttribute("src")),
        urls: body.flatMap((e) => urlAttrs.map((n) => e.getAttribute(n)))
            .filter((v) => v && !/^(\\/(?!\\/)|https?:|about:blank)/i.test(v.trim())),
    };
}"""


def injected(page: Page, scripts: list[str]) -> dict[str, Any]:
    """What the page holds that its own code did not put there (empty lists: nothing)."""
    found: dict[str, Any] = page.evaluate(INJECTED_JS)
    page_scripts = found.pop("scripts")
    own = [s.split("?")[0] for s in page_scripts if s != "boot"]
    if page_scripts[:1] != ["boot"] or own != scripts:
        found["unexpected scripts"] = page_scripts
    return {k: v for k, v in found.items() if v}


def text(page: Page, selector: str) -> str:
    value: str = page.eval_on_selector(selector, "(e) => e.textContent")
    return value


def value(page: Page, selector: str) -> str:
    got: str = page.eval_on_selector(selector, "(e) => e.value")
    return got


@dataclass
class HostileSite:
    url: str
    store: ReviewStore
    browser: Browser


@pytest.fixture
def hostile_site(store: ReviewStore, chromium: Browser, tmp_path: Path) -> Iterator[HostileSite]:
    path = tmp_path / "projects.yaml"
    path.write_text(
        "timezone: Africa/Johannesburg\n"
        f"steps:\n  {STEP}: {json.dumps(STEP_LABEL)}\n"
        "projects:\n"
        f'  - name: Lawley\n    group_jid: "{LAWLEY_JID}"\n    description: Lawley group\n'
    )
    bridge_store = Bridge(tmp_path / "bridge")
    bridge_store.writer.add_chat(VELO_JID, GROUP_NAME)
    bridge_store.post(VELO_JID, "hello")
    with store.begin() as conn:  # names the sign-up rules would refuse, as if they had not
        for username, role in ((ADMIN, "admin"), (REVIEWER, "reviewer")):
            conn.execute(
                users.insert().values(
                    username=username,
                    password_hash=hash_password(PASSWORD),
                    role=role,
                    disabled=False,
                )
            )
    settings = settings_from(
        {
            "DATABASE_URL": store.url,
            "SECRET_KEY": "test-secret-key-0123456789",
            "WHATSAPP_DB_PATH": str(bridge_store.messages_db),
        }
    )
    with running_bridge() as bridge:
        bridge.default = Answer(400, BRIDGE_ERROR, "text/plain; charset=utf-8")
        app = create_app(
            settings,
            load_config(path),
            store,
            bridge=BridgeClient(bridge.url, timeout=2),
            run_sender=False,
            poll_seconds=0.5,
        )
        live = LiveServer(app).start()
        try:
            _fill(live.url, store)
            yield HostileSite(live.url, store, chromium)
        finally:
            live.stop()


def _fill(url: str, store: ReviewStore) -> None:
    """Hostile text in every field, each through the way it gets there in production."""
    admin = {"Authorization": f"Bearer {create_token(store, ADMIN, 'tests')[1]}"}
    reviewer = {"Authorization": f"Bearer {create_token(store, REVIEWER, 'tests')[1]}"}
    with httpx.Client(base_url=url, timeout=10) as http:
        added = http.post(
            "/api/wa-monitor-projects",
            json={"name": PROJECT, "groupJid": MAMELODI_JID, "description": DESCRIPTION},
            headers=admin,
        )
        assert added.status_code == 200, added.text
        added = http.post(
            "/api/wa-monitor-projects",
            json={"name": GROUP_PROJECT, "groupName": GROUP_NAME},
            headers=admin,
        )
        assert added.status_code == 200, added.text
        first = Post(
            MAMELODI_JID, "3EB0X1", DROP, PROJECT, PHONE, SENDER_NAME, today_minutes_ago(30)
        )
        record(store, first, post("DR66660002", today_minutes_ago(25)))
        drop_id = str(review_id(store, PROJECT, DROP))
        saved = http.patch(
            f"/api/wa-monitor-drops/{drop_id}",
            json={"comment": COMMENT, "incorrectSteps": [STEP], "incorrectComments": {STEP: WHY}},
            headers=admin,
        )
        assert saved.status_code == 200, saved.text
        # The installer posts it again: the monitor adds a line naming them to the comment.
        again = Post(
            MAMELODI_JID, "3EB0X2", DROP, PROJECT, PHONE, SENDER_NAME, today_minutes_ago(20)
        )
        record(store, again)
        sent = http.post(
            "/api/wa-monitor-send-feedback",
            json={"dropId": drop_id, "dropNumber": DROP, "project": PROJECT, "message": LONG},
            headers=admin,
        )
        assert sent.status_code == 502, sent.text  # the bridge refused it, with its reason
        other = str(review_id(store, "Lawley", "DR66660002"))
        locked = http.post(f"/api/wa-monitor-drops/{other}/lock", headers=reviewer)
        assert locked.status_code == 200, locked.text


def sign_in_as(site: HostileSite, username: str) -> tuple[Page, list[str]]:
    page = site.browser.new_context().new_page()
    problems = watch(page)
    page.on("pageerror", lambda e: problems.append(f"page error {e}"))
    page.goto(f"{site.url}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(re.compile(r"/wa-monitor$"))
    return page, problems


def test_hostile_text_in_every_field_renders_as_text_on_every_page(
    hostile_site: HostileSite,
) -> None:
    site = hostile_site
    page, problems = sign_in_as(site, ADMIN)
    found: dict[str, dict[str, Any]] = {}
    try:
        # The page boots: its JSON came through whole.
        expect(page.locator("#drops li.drop")).to_have_count(2, timeout=15_000)
        boot = page.evaluate("() => window.WaMonitor.boot")
        assert boot["user"] == ADMIN
        assert PROJECT in boot["projects"] and GROUP_PROJECT in boot["projects"]
        assert [STEP, STEP_LABEL] in boot["steps"]
        assert ADMIN in text(page, "header .who")
        assert PROJECT in text(page, "#today-rows")
        options = page.eval_on_selector_all(
            "#filters select[name=project] option", "(os) => os.map((o) => o.value)"
        )
        assert PROJECT in options and GROUP_PROJECT in options
        listed = text(page, "#drops")
        for shown in (DROP, PROJECT, SENDER_NAME, f"✎ {REVIEWER}"):
            assert shown in listed, shown
        titles = page.eval_on_selector_all("#drops .chip[title]", "(cs) => cs.map((c) => c.title)")
        assert any(t.startswith(f"HTTP 400: {BRIDGE_SHOWN}") for t in titles), titles

        # The review editor of the hostile drop.
        page.evaluate(
            """(drop) => [...document.querySelectorAll("#drops li.drop")]
                .find((li) => li.dataset.drop === drop).querySelector("button").click()""",
            DROP,
        )
        expect(page.locator("#editor-title")).to_have_text(DROP)
        editor = text(page, "#editor")
        for shown in (PROJECT, SENDER_NAME, f"({PHONE})", f"3. {STEP_LABEL}", BRIDGE_SHOWN):
            assert shown in editor, shown
        assert ADMIN in text(page, "#editor details.history")
        # The reviewer's text in the box, whole; the monitor's resubmission line apart.
        assert value(page, "#comment") == COMMENT
        assert f"by {SENDER_NAME}" in text(page, "#monitor-notes")
        assert value(page, f'input[name="why:{STEP}"]') == WHY
        assert page.get_attribute(f'input[name="why:{STEP}"]', "aria-label") == (
            f"Comment on {STEP_LABEL}"
        )
        page.get_by_role("button", name="Generate feedback").click()
        expect(page.locator("#feedback-text")).to_be_visible()
        draft = value(page, "#feedback-text")
        assert f"3. {STEP_LABEL} - {WHY}" in draft and draft.startswith(DROP)

        # The project filter and the export link carry the name as data.
        page.locator("#filters select[name=project]").select_option(value=PROJECT)
        expect(page.locator("#drops li.drop")).to_have_count(1)
        exported = page.evaluate(
            "() => new URL(document.getElementById('export').href).searchParams.get('project')"
        )
        assert exported == PROJECT
        page.wait_for_timeout(300)  # give an injected onerror/onload its chance to fire
        found["dashboard"] = injected(page, ["/static/common.js", "/static/app.js"])

        # The admins' projects page.
        page.goto(f"{site.url}/wa-monitor/projects")
        expect(page.locator("#projects-rows tr")).to_have_count(3)
        rows = text(page, "#projects-rows")
        for shown in (PROJECT, DESCRIPTION, GROUP_PROJECT, GROUP_NAME):
            assert shown in rows, shown
        expect(page.locator("#history li.change")).to_have_count(2)
        assert PROJECT in text(page, "#history") and ADMIN in text(page, "#history")
        page.get_by_label("Project name").fill(UNKNOWN_GROUP)
        page.get_by_label("by its name in the bridge store").check()
        page.get_by_label("Group name").fill(UNKNOWN_GROUP)
        page.get_by_role("button", name="Add project").click()
        expect(page.locator("#add-error")).to_be_visible()
        assert UNKNOWN_GROUP in text(page, "#add-error")
        page.wait_for_timeout(300)
        found["projects"] = injected(
            page, ["/static/common.js", "/static/projects.js", "/static/droplists.js"]
        )

        # The admins' users page lists the hostile user names as text.
        page.goto(f"{site.url}/wa-monitor/users")
        expect(page.locator("#users-rows")).to_contain_text(ADMIN)
        assert REVIEWER in text(page, "#users-rows")
        page.wait_for_timeout(300)
        found["users"] = injected(page, ["/static/common.js", "/static/users.js"])
    finally:
        page.context.close()

    # A reviewer with a hostile name is refused the projects page by name.
    page, refused = sign_in_as(site, REVIEWER)
    problems += refused
    try:
        page.goto(f"{site.url}/wa-monitor/projects")
        assert REVIEWER in text(page, "p.alert")
        found["forbidden"] = injected(page, [])
    finally:
        page.context.close()
    print(
        "injected: markup, <!--<script>, quotes, javascript:, entities, U+2028/9 into 14 "
        "fields (project name, description, group name, step label, drop number, user "
        "names, sender name and phone, comment, incorrect-step comment, feedback, bridge "
        f"error, lock holder); checked 4 pages: injected {found}, problems {problems}"
    )
    assert found == {"dashboard": {}, "projects": {}, "users": {}, "forbidden": {}}
    assert not problems
