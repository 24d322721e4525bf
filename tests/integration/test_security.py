"""Who gets in: every route per role, CSRF, session cookies, sign-in throttling, password
hashing, hostile parameters. In-process against the app (no network)."""

from __future__ import annotations

import asyncio
import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.routing import APIRoute

from tests.helpers import review_id
from tests.integration.test_api_support import (
    PASSWORD,
    LiveServer,
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    settings_for,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import users
from wa_monitor.web.app import create_app
from wa_monitor.web.auth import CSRF_HEADER, LOGIN_CSRF_COOKIE, SESSION_COOKIE, LoginThrottle

SQLITE_ONLY = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
ROLES = ("viewer", "reviewer", "admin")
# Routes only an admin may use (users, the projects file); every other write: a reviewer.
ADMIN_ONLY = {("GET", "/api/wa-monitor-users"), ("POST", "/api/wa-monitor-users")}
ADMIN_ONLY_PREFIXES = ("/api/wa-monitor-users", "/api/wa-monitor-projects/")
ADMIN_ONLY_PATHS = (
    "/api/wa-monitor-projects",
    "/api/wa-monitor-drops/{drop_id}/assign",
    "/api/wa-monitor-drop-lists/{name}",
    "/api/wa-monitor-health-panel",
)
ERROR_CODES = {"BAD_REQUEST", "UNAUTHORIZED", "FORBIDDEN", "NOT_FOUND", "METHOD_NOT_ALLOWED",
               "CONFLICT", "VALIDATION_ERROR", "TOO_MANY_REQUESTS", "INTERNAL_ERROR",
               "DATABASE_ERROR", "BRIDGE_ERROR"}  # fmt: skip


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


def api_routes(app: FastAPI) -> list[tuple[str, str]]:
    return sorted(
        (method, route.path_format)  # `{drop_id:uuid}` as `{drop_id}`
        for route in app.routes
        if isinstance(route, APIRoute) and route.path.startswith("/api/")
        for method in route.methods
    )


def minimum_role(method: str, path: str) -> str:
    if path.startswith(ADMIN_ONLY_PREFIXES) or path in ADMIN_ONLY_PATHS:
        return "admin"
    return "viewer" if method == "GET" else "reviewer"


def concrete(path: str, drop_id: str) -> str:
    return (
        path.replace("{drop_id}", drop_id)
        .replace("{entry_id}", "1")
        .replace("{username}", "viewer")
        .replace("{name}", "Lawley")
    )


def assert_error_envelope(response: Any, status: int) -> None:
    assert response.status_code == status, (response.status_code, response.text[:300])
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] in ERROR_CODES
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "timestamp" in body["meta"]


def sign_in(client: TestClient, username: str, password: str = PASSWORD) -> Any:
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    return client.post(
        "/login", data={"username": username, "password": password, "csrf": token.group(1)}
    )


def session_csrf(client: TestClient) -> str:
    me = client.get("/api/wa-monitor-me")
    assert me.status_code == 200, me.text
    page = client.get("/wa-monitor")
    found = re.search(r'"csrf": "([^"]+)"', page.text) or re.search(
        r'name="csrf" value="([^"]+)"', page.text
    )
    assert found, page.text[:500]
    return found.group(1)


# -- every route, every role ---------------------------------------------------------------


@SQLITE_ONLY
def test_every_api_route_needs_the_right_role(
    app: FastAPI, client: TestClient, store: ReviewStore, people: People
) -> None:
    record(store, post("DR10000001", minutes_ago(5)))
    drop_id = str(review_id(store, "Lawley", "DR10000001"))
    routes = api_routes(app)
    assert len(routes) >= 17
    checked = 0
    for method, path in routes:
        url = concrete(path, drop_id)
        needed = minimum_role(method, path)
        # Nobody: 401 in the contract's envelope, whatever the route.
        assert_error_envelope(client.request(method, url, json={}), 401)
        # A forged bearer token: 401 too.
        forged = {"Authorization": "Bearer " + uuid.uuid4().hex}
        assert_error_envelope(client.request(method, url, json={}, headers=forged), 401)
        for role in ROLES:
            response = client.request(method, url, json={}, headers=people.bearer(role))
            if ROLES.index(role) < ROLES.index(needed):
                assert_error_envelope(response, 403)
            else:
                # Allowed in: whatever the body's fate (validation, not found), never 401/403.
                assert response.status_code not in (401, 403), (method, path, role, response.text)
            checked += 1
    print(f"{len(routes)} API routes × (anonymous, forged token, {len(ROLES)} roles): {checked}")


@SQLITE_ONLY
def test_pages_need_a_session(client: TestClient, people: People) -> None:
    page = client.get("/wa-monitor")
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    # An API token is for machines: it does not open the reviewers' page.
    page = client.get("/wa-monitor", headers=people.bearer("admin"))
    assert page.status_code == 303
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code in (200, 503)


# -- sessions, cookies, CSRF ---------------------------------------------------------------


@SQLITE_ONLY
def test_session_cookie_flags_over_http_and_https(app: FastAPI, people: People) -> None:
    for base, secure in (("http://testserver", False), ("https://testserver", True)):
        with TestClient(app, base_url=base, follow_redirects=False) as c:
            login_page = c.get("/login")
            login_cookie = login_page.headers["set-cookie"]
            assert LOGIN_CSRF_COOKIE in login_cookie
            response = sign_in(c, "reviewer")
            assert response.status_code == 303
            cookies = response.headers.get_list("set-cookie")
            session = next(h for h in cookies if h.startswith(SESSION_COOKIE + "="))
            flags = {part.strip().lower() for part in session.split(";")}
            assert "httponly" in flags
            assert "samesite=lax" in flags
            assert ("secure" in flags) is secure, session
            assert any(f.startswith("max-age=") for f in flags)


@SQLITE_ONLY
def test_csrf_is_required_for_session_writes(
    client: TestClient, store: ReviewStore, people: People
) -> None:
    record(store, post("DR10000002", minutes_ago(5)))
    drop_id = str(review_id(store, "Lawley", "DR10000002"))
    assert sign_in(client, "reviewer").status_code == 303
    token = session_csrf(client)
    url = f"/api/wa-monitor-drops/{drop_id}"
    body = {"comment": "checked"}
    assert_error_envelope(client.patch(url, json=body), 403)  # no token
    assert_error_envelope(client.patch(url, json=body, headers={CSRF_HEADER: "x" * 32}), 403)
    # Another session's token does not work either.
    with TestClient(client.app, follow_redirects=False) as other:
        assert sign_in(other, "viewer").status_code == 303
        assert_error_envelope(
            client.patch(url, json=body, headers={CSRF_HEADER: session_csrf(other)}), 403
        )
    ok = client.patch(url, json=body, headers={CSRF_HEADER: token})
    assert ok.status_code == 200, ok.text
    # Reads need no token; the sign-out form does.
    assert client.get("/api/wa-monitor-drops").status_code == 200
    assert client.post("/logout", data={"csrf": "wrong"}).status_code == 403
    assert client.post("/logout", data={"csrf": token}).status_code == 303


@SQLITE_ONLY
def test_the_sign_in_form_is_csrf_protected(client: TestClient, people: People) -> None:
    client.get("/login")
    forged = client.post("/login", data={"username": "admin", "password": PASSWORD, "csrf": "x"})
    assert forged.status_code == 403
    assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")
    with TestClient(client.app, follow_redirects=False) as fresh:  # no login cookie at all
        response = fresh.post(
            "/login", data={"username": "admin", "password": PASSWORD, "csrf": "anything"}
        )
        assert response.status_code == 403


@SQLITE_ONLY
def test_forged_or_foreign_session_cookies_are_refused(
    app: FastAPI, client: TestClient, store: ReviewStore, people: People
) -> None:
    from wa_monitor.web.auth import Sessions

    admin_id = (
        store.engine.connect()
        .execute(sa.select(users.c.id).where(users.c.username == "admin"))
        .scalar()
    )
    store.engine.dispose()
    forged = Sessions("not-the-server-key").__dict__["_session"].dumps({"u": admin_id, "c": "x"})
    client.cookies.set(SESSION_COOKIE, forged)
    assert_error_envelope(client.get("/api/wa-monitor-me"), 401)
    client.cookies.set(SESSION_COOKIE, forged[:-3] + "AAA")
    assert_error_envelope(client.get("/api/wa-monitor-me"), 401)


@SQLITE_ONLY
def test_a_disabled_user_loses_the_session_at_once(
    client: TestClient, store: ReviewStore, people: People
) -> None:
    assert sign_in(client, "reviewer").status_code == 303
    assert client.get("/api/wa-monitor-me").status_code == 200
    with store.begin() as conn:
        conn.execute(sa.update(users).where(users.c.username == "reviewer").values(disabled=True))
    assert_error_envelope(client.get("/api/wa-monitor-me"), 401)
    assert sign_in(client, "reviewer").status_code == 401


@SQLITE_ONLY
def test_open_redirects_are_refused(client: TestClient, people: People) -> None:
    for target in ("//evil.example/x", "https://evil.example", "/\\evil.example", "javascript:1"):
        page = client.get("/login", params={"next": target})
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token
        response = client.post(
            "/login",
            data={
                "username": "viewer",
                "password": PASSWORD,
                "csrf": token.group(1),
                "next": target,
            },
        )
        assert response.status_code == 303
        assert response.headers["location"] == "/wa-monitor", target
        client.cookies.clear()


# -- sign-in throttling, password storage ----------------------------------------------------


@SQLITE_ONLY
def test_sign_in_is_rate_limited_per_address_and_per_user(
    store: ReviewStore, people: People
) -> None:
    app = create_app(
        settings_for(store.url),
        projects_config(),
        store,
        run_sender=False,
        throttle=LoginThrottle(limit=5, window=900),
    )
    with TestClient(app, follow_redirects=False) as c:
        answers = [sign_in(c, "admin", "wrong").status_code for _ in range(5)]
        assert answers == [401] * 5
        locked = sign_in(c, "admin")  # the right password, too late
        assert locked.status_code == 429
        assert int(locked.headers["retry-after"]) > 0
        assert SESSION_COOKIE not in locked.headers.get("set-cookie", "")
        # The same address trying another user is throttled too.
        assert sign_in(c, "viewer").status_code == 429
    print("sign-in: 5 failures, then 429 with Retry-After even for the right password")


@SQLITE_ONLY
def test_passwords_are_stored_as_argon2id(store: ReviewStore) -> None:
    from wa_monitor.store.users import add_user, authenticate

    add_user(store, "newcomer", "a long pass phrase 123", "viewer")
    with store.engine.connect() as conn:
        stored = conn.execute(
            sa.select(users.c.password_hash).where(users.c.username == "newcomer")
        ).scalar_one()
    assert stored.startswith("$argon2id$"), stored[:20]
    params = dict(p.split("=") for p in stored.split("$")[3].split(","))
    assert int(params["m"]) >= 19_456 and int(params["t"]) >= 2, params  # OWASP's minimum
    assert "a long pass phrase" not in stored
    assert authenticate(store, "newcomer", "a long pass phrase 123") is not None
    assert authenticate(store, "newcomer", "a long pass phrase 124") is None


# -- hostile parameters, headers ---------------------------------------------------------------

HOSTILE = [
    "' OR '1'='1",
    "'; DROP TABLE qa_photo_reviews; --",
    "%",
    "_",
    "\\",
    "DR1' UNION SELECT password_hash FROM users --",
    "<script>alert(1)</script>",
    "\u202e",
    "🔥" * 50,
    "x" * 5000,
]


def test_hostile_query_parameters_are_data(
    client: TestClient, store: ReviewStore, people: People
) -> None:
    record(store, post("DR10000003", minutes_ago(5)))
    headers = people.bearer("admin")
    for value in HOSTILE:
        for params in (
            {"search": value},
            {"project": value},
            {"status": value},
            {"id": value},
            {"startDate": value, "endDate": value},
        ):
            for path in (
                "/api/wa-monitor-drops",
                "/api/wa-monitor-drops.csv",
                "/api/wa-monitor-project-stats",
                "/api/wa-monitor-projects-summary",
                "/api/wa-monitor-daily-drops",
            ):
                response = client.get(path, params=params, headers=headers)
                assert response.status_code < 500, (path, params, response.text[:300])
                if response.status_code >= 400:
                    assert_error_envelope(response, response.status_code)
        assert_error_envelope(
            client.get(f"/api/wa-monitor-drops/{value[:100]}", headers=headers),
            client.get(f"/api/wa-monitor-drops/{value[:100]}", headers=headers).status_code,
        )
    # Nothing was dropped, nothing leaked.
    assert len(store.reviews()) == 1
    everything = client.get(
        "/api/wa-monitor-drops", params={"search": "' OR '1'='1"}, headers=headers
    )
    assert everything.json()["data"] == []


@SQLITE_ONLY
def test_security_headers_on_every_answer(client: TestClient, people: People) -> None:
    for path in ("/login", "/api/wa-monitor-me", "/healthz", "/api/openapi.json", "/nowhere"):
        headers = client.get(path).headers
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"].split("style-src")[0]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["x-frame-options"] == "DENY"


@SQLITE_ONLY
def test_a_revoked_token_is_refused(client: TestClient, store: ReviewStore) -> None:
    from wa_monitor.store.users import create_token, revoke_token

    add_people(store, ("reviewer",))
    token, secret = create_token(store, "reviewer", "laptop")
    bearer = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/wa-monitor-me", headers=bearer).status_code == 200
    revoke_token(store, token.id)
    assert_error_envelope(client.get("/api/wa-monitor-me", headers=bearer), 401)
    assert_error_envelope(
        client.get("/api/wa-monitor-me", headers={"Authorization": "Basic x"}), 401
    )


# -- sign-in throttling: what a success forgets, bursts, where passwords are checked ----------


def throttled_app(store: ReviewStore) -> FastAPI:
    return create_app(
        settings_for(store.url),
        projects_config(),
        store,
        run_sender=False,
        throttle=LoginThrottle(limit=5, window=900),
    )


def at(app: FastAPI, address: str) -> TestClient:
    """A browser at `address`, as the server sees its peer."""
    return TestClient(app, follow_redirects=False, client=(address, 40000))


def test_a_success_on_ones_own_account_resets_no_limit(store: ReviewStore) -> None:
    add_people(store)  # the attacker is the viewer, with an account of their own
    app = throttled_app(store)
    with at(app, "203.0.113.7") as attacker:
        guesses = [sign_in(attacker, "admin", f"guess-{n}").status_code for n in range(4)]
        assert sign_in(attacker, "viewer").status_code == 303  # their own password
        attacker.cookies.delete(SESSION_COOKIE)
        guesses.append(sign_in(attacker, "admin", "guess-4").status_code)
        assert guesses == [401] * 5
        # The account's limit: even the right password waits now, from any address.
        assert sign_in(attacker, "admin").status_code == 429
        # The address's limit: five failures from it, whatever succeeded in between.
        assert sign_in(attacker, "reviewer", "guess-5").status_code == 429
    with at(app, "203.0.113.8") as sprayer:
        names = ["nobody-1", "nobody-2", "nobody-3", "nobody-4"]
        sprayed = [sign_in(sprayer, name, "guess").status_code for name in names]
        assert sign_in(sprayer, "reviewer").status_code == 303
        sprayer.cookies.delete(SESSION_COOKIE)
        sprayed.append(sign_in(sprayer, "nobody-5", "guess").status_code)
        assert sprayed == [401] * 5
        assert sign_in(sprayer, "nobody-6", "guess").status_code == 429
    with at(app, "198.51.100.9") as elsewhere:
        assert sign_in(elsewhere, "admin").status_code == 429
        assert sign_in(elsewhere, "reviewer").status_code == 303
    print(
        f"{store.dialect}: 4 guesses + a success on one's own account + 1 guess: the 6th "
        "attempt refused (429) for the account from anywhere and for the address on any "
        "account; 4 names + a success + 1 name: the 6th name refused"
    )


def test_ones_own_typos_are_forgotten_when_the_password_is_right(store: ReviewStore) -> None:
    add_people(store, ("reviewer",))
    app = throttled_app(store)
    with at(app, "192.0.2.10") as browser:
        for _ in range(3):
            typos = [sign_in(browser, "reviewer", "typo").status_code for _ in range(4)]
            assert typos == [401] * 4
            assert sign_in(browser, "reviewer").status_code == 303
            browser.cookies.delete(SESSION_COOKIE)


def test_a_burst_of_sign_ins_checks_no_more_passwords_than_the_limit(
    store: ReviewStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    add_people(store, ("viewer",))
    lock = threading.Lock()
    seen: dict[str, Any] = {"checks": 0, "at_once": 0, "most": 0, "threads": set()}
    verify = PasswordHasher.verify

    def counted(self: PasswordHasher, hash: str | bytes, password: str | bytes) -> bool:
        with lock:
            seen["checks"] += 1
            seen["at_once"] += 1
            seen["most"] = max(seen["most"], seen["at_once"])
            seen["threads"].add(threading.current_thread().name)
        try:
            return verify(self, hash, password)
        finally:
            with lock:
                seen["at_once"] -= 1

    monkeypatch.setattr(PasswordHasher, "verify", counted)
    server = LiveServer(throttled_app(store)).start()

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            page = await client.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', page.text)
            assert token
            form = {"username": "viewer", "password": "guess", "csrf": token.group(1)}
            return await asyncio.gather(*(client.post("/login", data=form) for _ in range(20)))

    try:
        answers = asyncio.run(burst())
    finally:
        server.stop()
    codes = sorted(r.status_code for r in answers)
    assert codes == [401] * 5 + [429] * 15, codes
    assert seen["checks"] == 5  # a refused attempt costs no hashing
    assert seen["most"] == 1  # one password check at a time…
    assert all(t.startswith("password-check") for t in seen["threads"]), seen["threads"]
    print(
        f"{store.dialect}: 20 simultaneous wrong passwords for one account: 5 checked (401), "
        f"15 refused unchecked (429); at most {seen['most']} check at a time, in "
        f"{sorted(seen['threads'])} (not the request handlers' threads)"
    )
