"""Users, API tokens and browser sessions (both backends)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from itsdangerous import URLSafeTimedSerializer

from tests.helpers import wait_until
from tests.integration.test_api_support import (
    PASSWORD,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    review,
    settings_for,
)
from wa_monitor.cli.main import main
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import config_audit, users
from wa_monitor.store.users import (
    UserError,
    add_user,
    authenticate,
    create_token,
    list_tokens,
    list_users,
    recent_changes,
    revoke_token,
    set_disabled,
    set_role,
    user_for_token,
)
from wa_monitor.web.app import create_app
from wa_monitor.web.auth import SESSION_COOKIE, LoginThrottle
from wa_monitor.web.changes import ACCOUNTS, feed_for


def test_users_are_stored_with_argon2_hashes_and_roles(store: ReviewStore) -> None:
    user = add_user(store, "nomsa", "a-long-password", "reviewer")
    assert user.role == "reviewer" and user.can("viewer") and not user.can("admin")
    with store.begin() as conn:
        stored = conn.execute(sa.select(users.c.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "a-long-password" not in stored
    signed_in = authenticate(store, "nomsa", "a-long-password")
    assert signed_in is not None and signed_in.last_login_at is not None
    assert authenticate(store, "nomsa", "wrong-password") is None
    assert authenticate(store, "nobody", "a-long-password") is None
    with pytest.raises(UserError, match="already exists"):
        add_user(store, "nomsa", "another-password", "viewer")
    with pytest.raises(UserError, match="at least 8"):
        add_user(store, "short", "1234", "viewer")
    with pytest.raises(UserError, match="unknown role"):
        add_user(store, "odd", "a-long-password", "owner")
    with pytest.raises(UserError, match="not allowed"):
        add_user(store, "white space", "a-long-password", "viewer")
    assert set_role(store, "nomsa", "admin").can("admin")
    set_disabled(store, "nomsa")
    assert authenticate(store, "nomsa", "a-long-password") is None
    assert [u.disabled for u in list_users(store)] == [True]
    with pytest.raises(UserError, match="no user"):
        set_role(store, "ghost", "viewer")


def test_api_tokens_act_as_their_user_until_revoked(store: ReviewStore) -> None:
    add_people(store, ("reviewer",))
    token, secret = create_token(store, "reviewer", "reporting")
    assert secret.startswith("wam_")
    user = user_for_token(store, secret)
    assert user is not None and user.username == "reviewer"
    assert list_tokens(store)[-1].last_used_at is not None
    assert user_for_token(store, secret + "x") is None
    assert user_for_token(store, "not-a-token") is None
    revoke_token(store, token.id)
    assert user_for_token(store, secret) is None
    with pytest.raises(UserError):
        revoke_token(store, token.id)
    with pytest.raises(UserError, match="no user"):
        create_token(store, "ghost", "x")


# -- browser sessions ---------------------------------------------------------------------


@pytest.fixture
def browser(store: ReviewStore) -> Iterator[TestClient]:
    add_people(store, ("viewer", "reviewer"))
    app = create_app(
        settings_for(store.url),
        projects_config(),
        store,
        run_sender=False,
        throttle=LoginThrottle(limit=3, window=600),
    )
    with TestClient(app, base_url="https://testserver") as client:
        yield client


def login_form(client: TestClient) -> str:
    page = client.get("/login")
    assert page.status_code == 200
    match = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert match
    return match.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    csrf = login_form(client)
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf": csrf, "next": "/wa-monitor"},
        follow_redirects=False,
    )


def page_csrf(client: TestClient) -> str:
    page = client.get("/wa-monitor")
    match = re.search(r'"csrf": "([^"]+)"', page.text)
    assert match, page.text[:500]
    return match.group(1)


def test_signing_in_sets_a_hardened_session_cookie_and_opens_the_page(
    browser: TestClient, store: ReviewStore
) -> None:
    assert (
        browser.get("/wa-monitor", follow_redirects=False).headers["location"].startswith("/login")
    )
    response = sign_in(browser, "reviewer")
    assert response.status_code == 303 and response.headers["location"] == "/wa-monitor"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if c.startswith("wa_monitor_session=")
    )
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" in cookie
    page = browser.get("/wa-monitor")
    assert page.status_code == 200
    assert "Today's submissions" in page.text and "reviewer" in page.text
    me = browser.get("/api/wa-monitor-me").json()["data"]
    assert me == {"username": "reviewer", "role": "reviewer", "via": "session"}


def test_cookie_authenticated_changes_need_the_csrf_token(
    browser: TestClient, store: ReviewStore
) -> None:
    record(store, post("DR90000001", minutes_ago(5)))
    rid = review(store, "DR90000001")["id"]
    sign_in(browser, "reviewer")
    change = {"step_01_house_photo": True}
    refused = browser.patch(f"/api/wa-monitor-drops/{rid}", json=change)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "FORBIDDEN"
    forged = browser.patch(
        f"/api/wa-monitor-drops/{rid}", json=change, headers={"X-CSRF-Token": "forged"}
    )
    assert forged.status_code == 403
    assert review(store, "DR90000001")["step_01_house_photo"] is False
    csrf = page_csrf(browser)
    ok = browser.patch(f"/api/wa-monitor-drops/{rid}", json=change, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert review(store, "DR90000001")["step_01_house_photo"] is True
    # Signing out ends the session.
    assert browser.post("/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    assert browser.get("/api/wa-monitor-me").status_code == 401


def test_a_viewer_session_may_read_but_not_edit(browser: TestClient, store: ReviewStore) -> None:
    record(store, post("DR90000002", minutes_ago(5)))
    rid = review(store, "DR90000002")["id"]
    sign_in(browser, "viewer")
    assert browser.get("/api/wa-monitor-drops").status_code == 200
    csrf = page_csrf(browser)
    response = browser.patch(
        f"/api/wa-monitor-drops/{rid}",
        json={"step_01_house_photo": True},
        headers={"X-CSRF-Token": csrf},
    )
    assert response.status_code == 403
    assert "reviewer role" in response.json()["error"]["message"]


def test_failed_sign_ins_are_rate_limited(browser: TestClient) -> None:
    for _ in range(3):
        wrong = sign_in(browser, "reviewer", "wrong-password")
        assert wrong.status_code == 401 and "Wrong user name or password" in wrong.text
    blocked = sign_in(browser, "reviewer")  # even the right password waits now
    assert blocked.status_code == 429
    assert "Too many failed sign-ins" in blocked.text
    assert int(blocked.headers["retry-after"]) > 0
    assert browser.get("/api/wa-monitor-me").status_code == 401


def test_the_sign_in_form_is_csrf_protected(browser: TestClient) -> None:
    response = browser.post(
        "/login",
        data={"username": "reviewer", "password": PASSWORD, "csrf": "guess"},
        follow_redirects=False,
    )
    assert response.status_code == 403
    assert browser.get("/api/wa-monitor-me").status_code == 401


def test_sign_in_never_redirects_off_site(browser: TestClient) -> None:
    csrf = login_form(browser)
    response = browser.post(
        "/login",
        data={
            "username": "reviewer",
            "password": PASSWORD,
            "csrf": csrf,
            "next": "//evil.example/",
        },
        follow_redirects=False,
    )
    assert response.headers["location"] == "/wa-monitor"


def test_a_tampered_session_cookie_is_ignored(browser: TestClient) -> None:
    sign_in(browser, "reviewer")
    value = browser.cookies.get("wa_monitor_session")
    assert value
    domain = next(c.domain for c in browser.cookies.jar if c.name == "wa_monitor_session")
    tampered = value[:-2] + ("xx" if not value.endswith("xx") else "yy")
    browser.cookies.set("wa_monitor_session", tampered, domain=domain)
    assert browser.get("/api/wa-monitor-me").status_code == 401
    browser.cookies.set("wa_monitor_session", value, domain=domain)  # the genuine one works
    assert browser.get("/api/wa-monitor-me").status_code == 200


# -- the commands -------------------------------------------------------------------------


def test_users_and_tokens_commands(db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db_url)
    runner = CliRunner()

    def run(*args: str, input: str | None = None) -> Any:
        result = runner.invoke(main, list(args), input=input, catch_exceptions=False)
        return result

    added = run("users", "add", "sipho", "--role", "viewer", input="pw-sipho-123\npw-sipho-123\n")
    assert added.exit_code == 0, added.output
    assert "user sipho created (viewer)" in added.output
    assert run("users", "set-role", "sipho", "reviewer").exit_code == 0
    listing = run("users", "list")
    assert re.search(r"sipho\s+.*reviewer\s+.*active", listing.output)
    token = run("tokens", "create", "sipho", "--name", "reporting")
    assert token.exit_code == 0
    secret = token.stdout.strip().splitlines()[-1]
    assert secret.startswith("wam_")
    tokens_listed = run("tokens", "list")
    assert "reporting" in tokens_listed.output and secret not in tokens_listed.output
    store = ReviewStore(db_url)
    try:
        found = user_for_token(store, secret)
        assert found is not None and found.role == "reviewer"
        token_id = list_tokens(store)[0].id
        assert run("tokens", "revoke", str(token_id)).exit_code == 0
        assert user_for_token(store, secret) is None
        assert run("users", "disable", "sipho").exit_code == 0
        assert authenticate(store, "sipho", "pw-sipho-123") is None
        # The users page's audit shows what the terminal did, and who did it there.
        changes = [(c.username, c.change) for c in recent_changes(store)]
        assert changes == [
            ("sipho", "disabled"),
            ("sipho", "role set to reviewer"),
            ("sipho", "added as viewer"),
        ]
        assert all(c.actor.startswith("cli:") for c in recent_changes(store))
    finally:
        store.dispose()
    duplicate = run("users", "add", "sipho", "--password", "pw-sipho-123")
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    bad_role = run("users", "set-role", "sipho", "owner")
    assert bad_role.exit_code == 2


# -- sessions end with the account's changes (copied cookies included) ------------------------

CHANGES = ("sign-out", "password by the CLI", "role", "disable", "role by an admin")


def _other_process_writes(store: ReviewStore, change: str) -> None:
    """What `wa-monitor users …` does, on a connection of its own (not the server's)."""
    if change == "password by the CLI":
        env = {**os.environ, "DATABASE_URL": store.url}
        done = subprocess.run(
            [sys.executable, "-m", "wa_monitor", "users", "set-password", "reviewer",
             "--password", NEW_PASSWORD],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return
    other = ReviewStore(store.url)
    try:
        if change == "role":
            set_role(other, "reviewer", "viewer")
        else:
            set_disabled(other, "reviewer")
    finally:
        other.dispose()


NEW_PASSWORD = "a-new-pass-phrase-42"


@pytest.mark.parametrize("change", CHANGES)
def test_a_copied_session_cookie_ends_with_sign_out_and_account_changes(
    store: ReviewStore, change: str
) -> None:
    people = add_people(store, ("reviewer", "admin"))
    feed = feed_for(store.engine)
    app = create_app(
        settings_for(store.url), projects_config(), store, run_sender=False, changes=feed
    )
    with (
        TestClient(app, base_url="https://testserver") as browser,
        TestClient(app, base_url="https://testserver") as thief,
    ):
        if feed is not None:
            assert feed.listening.wait(30), "the change feed did not start"
        assert sign_in(browser, "reviewer").status_code == 303
        # Someone copied the cookie (a shared machine, a proxy log, malware).
        thief.cookies.set(SESSION_COOKIE, browser.cookies[SESSION_COOKIE])
        assert thief.get("/api/wa-monitor-me").status_code == 200
        # The server's answers about accounts are cached now (on PostgreSQL).
        assert thief.get("/api/wa-monitor-me").status_code == 200
        before = feed.version(ACCOUNTS) if feed is not None else None
        waited = 0.0
        if change == "sign-out":
            out = browser.post("/logout", data={"csrf": page_csrf(browser)}, follow_redirects=False)
            assert out.status_code == 303
        elif change == "role by an admin":
            admin = people.bearer("admin")
            patched = thief.patch("/api/wa-monitor-users/reviewer", json={"role": "viewer"},
                                  headers=admin)  # fmt: skip
            assert patched.status_code == 200, patched.text
        else:
            _other_process_writes(store, change)
            if feed is not None:
                # Another process's change reaches this one as a notification.
                committed = time.monotonic()
                wait_until(lambda: feed.version(ACCOUNTS) not in (None, before))
                waited = time.monotonic() - committed
        # The very next request with either copy of the cookie is refused.
        for client in (thief, browser):
            refused = client.get("/api/wa-monitor-me")
            assert refused.status_code == 401, (change, refused.text)
        # The user's API tokens are machines' credentials: only disabling stops them.
        token = people.bearer("reviewer")
        assert thief.get("/api/wa-monitor-me", headers=token).status_code == (
            401 if change == "disable" else 200
        )
        if change == "disable":
            _enable(store)
            # (on PostgreSQL the enabling reaches the server as a notification)
            wait_until(lambda: thief.get("/api/wa-monitor-me", headers=token).status_code == 200)
            assert thief.get("/api/wa-monitor-me").status_code == 401  # no session revives
        # Signing in again works (with the new password after a change of password).
        password = NEW_PASSWORD if change == "password by the CLI" else PASSWORD
        if change == "password by the CLI":
            assert sign_in(thief, "reviewer", PASSWORD).status_code == 401
        assert sign_in(thief, "reviewer", password).status_code == 303
        assert thief.get("/api/wa-monitor-me").status_code == 200
    print(
        f"{store.dialect}: {change}: a copied cookie refused on its next request"
        + (
            f" (the server knew {waited * 1000:.0f} ms after the commit returned)"
            if waited or (feed and change in ("password by the CLI", "role", "disable"))
            else ""
        )
    )


def _enable(store: ReviewStore) -> None:
    other = ReviewStore(store.url)
    try:
        set_disabled(other, "reviewer", False)
    finally:
        other.dispose()


def test_a_cookie_signed_before_session_versions_is_refused(store: ReviewStore) -> None:
    add_people(store, ("reviewer",))
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    with TestClient(app) as client:
        with store.engine.connect() as conn:
            user_id = conn.execute(
                sa.select(users.c.id).where(users.c.username == "reviewer")
            ).scalar_one()
        old = URLSafeTimedSerializer("test-secret-key-0123456789", salt="wa-monitor-session")
        client.cookies.set(SESSION_COOKIE, old.dumps({"u": user_id, "c": "x"}))
        assert client.get("/api/wa-monitor-me").status_code == 401
        client.cookies.set(SESSION_COOKIE, old.dumps({"u": user_id, "c": "x", "v": 0}))
        assert client.get("/api/wa-monitor-me").status_code == 200


def test_admins_manage_accounts_through_the_api_and_every_change_is_audited(
    store: ReviewStore,
) -> None:
    people = add_people(store, ("viewer", "reviewer", "admin"))
    admin = people.bearer("admin")
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    with (
        TestClient(app, base_url="https://testserver") as api,
        TestClient(app, base_url="https://testserver") as reviewer,
    ):
        assert sign_in(reviewer, "reviewer").status_code == 303
        added = api.post(
            "/api/wa-monitor-users",
            json={"username": "thandi", "password": "a-long-password", "role": "viewer"},
            headers=admin,
        )
        assert added.status_code == 201, added.text
        assert api.patch(
            "/api/wa-monitor-users/thandi", json={"role": "reviewer"}, headers=admin
        ).is_success
        assert api.patch(
            "/api/wa-monitor-users/thandi", json={"disabled": True}, headers=admin
        ).is_success
        assert api.patch(
            "/api/wa-monitor-users/thandi", json={"disabled": False}, headers=admin
        ).is_success
        # A reset password works at once and ends the user's open sessions.
        reset = api.post(
            "/api/wa-monitor-users/reviewer/password",
            json={"password": NEW_PASSWORD},
            headers=admin,
        )
        assert reset.status_code == 200, reset.text
        assert "sessions ended" in reset.json()["message"]
        assert reviewer.get("/api/wa-monitor-me").status_code == 401
        assert sign_in(reviewer, "reviewer", PASSWORD).status_code == 401
        assert sign_in(reviewer, "reviewer", NEW_PASSWORD).status_code == 303
        # Bad input is refused and changes nothing (nor is it audited).
        short = api.post(
            "/api/wa-monitor-users/viewer/password", json={"password": "short"}, headers=admin
        )
        assert short.status_code == 422
        ghost = api.post(
            "/api/wa-monitor-users/ghost/password", json={"password": NEW_PASSWORD}, headers=admin
        )
        assert ghost.status_code == 404 and "ghost" in ghost.json()["error"]["message"]
        same_role = api.patch(
            "/api/wa-monitor-users/viewer", json={"role": "viewer"}, headers=admin
        )
        assert same_role.is_success
        refused = api.patch("/api/wa-monitor-users/admin", json={"disabled": True}, headers=admin)
        assert refused.status_code == 422
        # Only admins see or change accounts.
        for role in ("viewer", "reviewer"):
            headers = people.bearer(role)
            assert api.get("/api/wa-monitor-users-audit", headers=headers).status_code == 403
            assert (
                api.post(
                    "/api/wa-monitor-users/viewer/password",
                    json={"password": NEW_PASSWORD},
                    headers=headers,
                ).status_code
                == 403
            )
        audit = api.get("/api/wa-monitor-users-audit", headers=admin)
        assert audit.status_code == 200
        changes = [(c["actor"], c["username"], c["change"]) for c in audit.json()["data"]]
    assert changes == [
        ("admin", "reviewer", "password reset (sessions ended)"),
        ("admin", "thandi", "enabled"),
        ("admin", "thandi", "disabled"),
        ("admin", "thandi", "role viewer → reviewer"),
        ("admin", "thandi", "added as viewer"),
    ]
    with store.begin() as conn:
        diffs = " ".join(conn.execute(sa.select(config_audit.c.diff)).scalars())
    assert NEW_PASSWORD not in diffs and "a-long-password" not in diffs


def test_the_users_page_is_for_admins_and_the_favicon_is_served(store: ReviewStore) -> None:
    add_people(store, ("reviewer", "admin"))
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    with TestClient(app, base_url="https://testserver") as client:
        assert sign_in(client, "reviewer").status_code == 303
        refused = client.get("/wa-monitor/users")
        assert refused.status_code == 403 and "for admins" in refused.text
        dashboard = client.get("/wa-monitor").text
        assert 'href="/wa-monitor/team"' in dashboard
        assert 'href="/wa-monitor/users"' not in dashboard
        assert 'rel="icon"' in dashboard
        client.post("/logout", data={"csrf": page_csrf(client)})
        assert sign_in(client, "admin").status_code == 303
        page = client.get("/wa-monitor/users")
        assert page.status_code == 200 and "Add a user" in page.text
        icon = client.get("/favicon.ico")
        assert icon.status_code == 200 and icon.headers["content-type"].startswith("image/svg")
        assert icon.content == client.get("/static/favicon.svg").content
