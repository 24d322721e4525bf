"""The admins' projects page `/wa-monitor/projects`: who may open it, and what it serves.

In-process against the app (no browser); the browser test drives the page itself.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from tests.integration.test_api_support import (
    PASSWORD,
    People,
    TestClient,
    add_people,
    projects_config,
    settings_for,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import users
from wa_monitor.web.app import create_app

pytestmark = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
PAGE = "/wa-monitor/projects"


@pytest.fixture
def app(store: ReviewStore) -> FastAPI:
    return create_app(settings_for(store.url), projects_config(), store, run_sender=False)


@pytest.fixture
def people(store: ReviewStore) -> People:
    return add_people(store)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c


def sign_in(client: TestClient, username: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    done = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf": token.group(1)}
    )
    assert done.status_code == 303, done.text[:500]


def test_anonymous_callers_and_api_tokens_are_sent_to_sign_in(
    client: TestClient, people: People
) -> None:
    page = client.get(PAGE)
    assert page.status_code == 303
    assert page.headers["location"] == "/login?next=/wa-monitor/projects"
    # An API token is for machines, even an admin's: not the page.
    page = client.get(PAGE, headers=people.bearer("admin"))
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def test_signing_in_from_the_page_comes_back_to_it(client: TestClient, people: People) -> None:
    login = client.get("/login", params={"next": PAGE})
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token
    done = client.post(
        "/login",
        data={"username": "admin", "password": PASSWORD, "csrf": token.group(1), "next": PAGE},
    )
    assert done.status_code == 303 and done.headers["location"] == PAGE


@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_viewers_and_reviewers_get_a_clear_403_page(
    client: TestClient, people: People, role: str
) -> None:
    sign_in(client, role)
    page = client.get(PAGE)
    assert page.status_code == 403
    assert page.headers["content-type"].startswith("text/html")
    assert "Admins only" in page.text
    assert f"The projects page is for admins; {role} is a {role}" in page.text
    assert 'href="/wa-monitor"' in page.text
    assert "projects.js" not in page.text  # none of the page's workings
    # No way there from their dashboard either.
    dashboard = client.get("/wa-monitor")
    assert dashboard.status_code == 200
    assert PAGE not in dashboard.text


def test_admins_get_the_page_and_a_header_link_to_it(client: TestClient, people: People) -> None:
    sign_in(client, "admin")
    page = client.get(PAGE)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert '<script src="/static/projects.js' in html
    # Only the JSON boot data inline: no inline script, no inline handler (CSP script-src 'self').
    for script in re.findall(r"<script(?![^>]*\bsrc=)([^>]*)>", html):
        assert 'type="application/json"' in script
    assert not re.search(r"\son[a-z]+=", html)
    csrf = re.search(r'"csrf": "([^"]+)"', html)
    assert csrf and csrf.group(1)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/projects.js").status_code == 200
    dashboard = client.get("/wa-monitor")
    assert f'href="{PAGE}"' in dashboard.text


def test_a_disabled_admin_is_signed_out_of_the_page(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    sign_in(client, "admin")
    assert client.get(PAGE).status_code == 200
    with store.begin() as conn:
        conn.execute(sa.update(users).where(users.c.username == "admin").values(disabled=True))
    page = client.get(PAGE)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
