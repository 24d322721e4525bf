"""How the API answers what no route meant to answer: an unexpected error, HEAD, a method
the path does not take, a request with a hundred problems (both backends)."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI

from tests.integration.test_api_support import (
    LiveServer,
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    review,
    settings_for,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import qa_photo_reviews
from wa_monitor.web.app import create_app

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options")
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


@pytest.fixture
def app(store: ReviewStore) -> FastAPI:
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)

    def broken() -> None:
        raise RuntimeError("a bug no test foresaw")

    app.add_api_route("/api/broken", broken, methods=["GET"], include_in_schema=False)
    return app


@pytest.fixture
def people(store: ReviewStore) -> People:
    people = add_people(store)
    record(store, post("DR12121212", minutes_ago(3)))
    return people


@pytest.fixture
def client(app: FastAPI, people: People) -> Iterator[TestClient]:
    with TestClient(app) as c:
        yield c


def test_an_unexpected_error_is_a_500_in_the_envelope_on_a_connection_kept_open(
    app: FastAPI, people: People, caplog: pytest.LogCaptureFixture
) -> None:
    server = LiveServer(app).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request("GET", "/api/broken")
        sock = conn.sock
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 500
        assert body["success"] is False and body["error"]["code"] == "INTERNAL_ERROR"
        assert "a bug" not in json.dumps(body)  # the cause is for the log, not the caller
        for name in SECURITY_HEADERS:
            assert response.getheader(name), name
        assert not response.will_close
        conn.request("GET", "/healthz")
        again = conn.getresponse()
        again.read()
        assert again.status == 200 and conn.sock is sock  # the same connection
    finally:
        conn.close()
        server.stop()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].getMessage() == "unexpected error on GET /api/broken"
    assert errors[0].exc_info is not None


def _paths(client: TestClient, store: ReviewStore) -> dict[str, set[str]]:
    """Every documented path with a real id in it, and the methods the document gives it."""
    doc = client.get("/api/openapi.json").json()
    real = {
        "drop_id": str(review(store, "DR12121212")["id"]),
        "username": "viewer",
        "entry_id": "1",
        "name": "Lawley",
        "photo_id": "1",
        "sha256": "0" * 64,
    }
    paths = {}
    for template, operations in doc["paths"].items():
        path = template
        for param, value in real.items():
            path = path.replace("{" + param + "}", value)
        assert "{" not in path, template
        paths[path] = {m.upper() for m in operations}
    return paths


def test_head_answers_every_get_route_and_405_names_every_method_of_the_path(
    client: TestClient, store: ReviewStore, people: People
) -> None:
    headers = people.bearer("admin")
    checked = 0
    for path, documented in _paths(client, store).items():
        allowed = documented | ({"HEAD"} if "GET" in documented else set())
        for method in METHODS:
            response = client.request(method, path, headers=headers)
            if method == "HEAD" and "GET" in documented:
                get = client.get(path, headers=headers)
                assert response.status_code == get.status_code, path
                assert response.content == b"", path
                assert response.headers["content-type"] == get.headers["content-type"], path
            elif method not in allowed:
                assert response.status_code == 405, (method, path, response.status_code)
                if method != "HEAD":  # which has the headers only
                    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
                listed = set(response.headers["allow"].split(", "))
                assert listed == allowed, (method, path, listed)
            checked += 1
    assert checked > 100
    # Pages and static files too.
    assert client.head("/login").status_code == 200
    assert client.head("/static/app.js").status_code == 200
    assert set(client.delete("/static/app.js").headers["allow"].split(", ")) == {"GET", "HEAD"}


def test_a_request_with_a_hundred_problems_is_answered_with_the_first_twenty(
    client: TestClient, store: ReviewStore, people: People
) -> None:
    drop = str(review(store, "DR12121212")["id"])
    body: dict[str, Any] = {f"field{i}": i for i in range(100)}
    response = client.patch(
        f"/api/wa-monitor-drops/{drop}", json=body, headers=people.bearer("reviewer")
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert len(error["details"]) == 20
    assert "(and 80 more problems)" in error["message"]


def test_a_value_the_database_refuses_is_a_422_not_an_unavailable_database(
    app: FastAPI, client: TestClient, store: ReviewStore, people: People
) -> None:
    drop = review(store, "DR12121212")["id"]

    def unchecked_write() -> dict[str, bool]:
        # A route whose input check is missing: PostgreSQL's text refuses NUL.
        with store.begin() as conn:
            conn.execute(
                sa.update(qa_photo_reviews)
                .where(qa_photo_reviews.c.id == drop)
                .values(comment="a\x00b")
            )
        return {"written": True}

    app.add_api_route("/api/unchecked", unchecked_write, methods=["POST"])
    response = client.post("/api/unchecked", headers=people.bearer("admin"))
    if store.dialect == "postgresql":
        assert response.status_code == 422, response.text
        error = response.json()["error"]
        assert error["code"] == "VALIDATION_ERROR" and "refused a value" in error["message"]
    else:  # SQLite keeps NUL, and what it keeps is answered
        assert response.status_code == 200
        got = client.get(f"/api/wa-monitor-drops/{drop}", headers=people.bearer("viewer"))
        assert got.status_code == 200 and got.json()["data"]["drop"]["comment"] == "a\x00b"
