"""`wa-monitor serve` as a hostile user finds it: text that is not valid Unicode in every
kind of input, rows already holding such text, dates at the ends of the calendar, names the
file system cannot look up, oversized lists and bodies, HEAD and wrong methods.

Every answer must be a 4xx in the contract's envelope (never a 500), carry the security
headers and keep the connection open; nothing refused is stored, every later read still
answers, and the server logs no traceback.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.faults.conftest import backend_of
from tests.faults.serve import Answer, Server, running_serve
from tests.faults.support import figure
from tests.integration.test_api_support import (
    add_people,
    minutes_ago,
    post,
    record,
    review,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import feedback_outbox, qa_photo_reviews, review_edits, users

# Checks wall-clock bounds: run alone, not beside the parallel part of the suite.
pytestmark = pytest.mark.timing

OUT_OF_RANGE = ("0001-01-01", "9999-12-31", "1969-12-31", "3000-01-01")
DATE_ROUTES = (
    ("/api/wa-monitor-drops", ("dateFrom", "dateTo")),
    ("/api/wa-monitor-drops.csv", ("dateFrom", "dateTo")),
    ("/api/wa-monitor-daily-drops", ("date",)),
    ("/api/wa-monitor-projects-summary", ("startDate", "endDate")),
)


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    store = ReviewStore(db_url)
    people = add_people(store)
    record(
        store,
        post("DR12121212", minutes_ago(30)),
        post("DR34343434", minutes_ago(5), project="Mohadin"),
    )
    store.dispose()
    with running_serve(db_url, tmp_path, people) as live:
        yield live


def _stored(db_url: str) -> dict[str, Any]:
    """What a refused request must not have changed."""
    store = ReviewStore(db_url)
    try:
        with store.engine.connect() as conn:
            reviews = [
                dict(r)
                for r in conn.execute(sa.select(qa_photo_reviews).order_by(qa_photo_reviews.c.id))
                .mappings()
                .all()
            ]
            counts = {
                t.name: conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
                for t in (review_edits, users, feedback_outbox)
            }
    finally:
        store.dispose()
    return {"reviews": reviews, **counts}


def _reads_answer(server: Server, drop_id: str) -> list[int]:
    return [
        server.request("GET", path).status
        for path in (
            "/api/wa-monitor-drops",
            f"/api/wa-monitor-drops/{drop_id}",
            "/api/wa-monitor-drops.csv",
            "/api/wa-monitor-daily-drops",
            "/api/wa-monitor-projects-summary",
        )
    ]


def _field(answer: Answer) -> set[str]:
    return {d.get("field", "") for d in answer.json()["error"].get("details") or []}


def _surrogate_json(obj: Any) -> bytes:
    # json.dumps writes a lone surrogate as the escape \udfff, exactly what a client sends.
    return json.dumps(obj).encode()


def test_text_that_is_not_valid_unicode_is_refused_in_every_kind_of_input(
    server: Server, db_url: str
) -> None:
    store = ReviewStore(db_url)
    drop_id = str(review(store, "DR12121212")["id"])
    store.dispose()
    before = _stored(db_url)
    patch = f"/api/wa-monitor-drops/{drop_id}"
    step = "step_01_house_photo"
    # (what, request, field the answer must name)
    cases: list[tuple[str, Any, str]] = [
        (
            "lone surrogate in incorrectComments",
            lambda: server.json_request(
                "PATCH",
                patch,
                _surrogate_json({"incorrectSteps": [step], "incorrectComments": {step: "\udfff"}}),
            ),
            f"body.incorrectComments.{step}",
        ),
        (
            "lone surrogate as a key",
            lambda: server.json_request(
                "PATCH", patch, _surrogate_json({"incorrectComments": {"\ud800x": "bad"}})
            ),
            "body.incorrectComments.\ufffdx",
        ),
        (
            "UTF-8-encoded surrogate bytes in the comment",
            lambda: server.json_request("PATCH", patch, b'{"comment": "ok \xed\xbf\xbf"}'),
            "body.comment",
        ),
        (
            "NUL in the comment",
            lambda: server.json_request("PATCH", patch, _surrogate_json({"comment": "a\x00b"})),
            "body.comment",
        ),
        (
            "lone surrogate in the feedback message",
            lambda: server.json_request(
                "POST",
                "/api/wa-monitor-send-feedback",
                _surrogate_json(
                    {"dropId": drop_id, "dropNumber": "DR12121212", "message": "hi \ud83d"}
                ),
            ),
            "body.message",
        ),
        (
            "lone surrogate in a new user's password",
            lambda: server.json_request(
                "POST",
                "/api/wa-monitor-users",
                _surrogate_json({"username": "mallory", "password": "\udc00" * 9, "role": "admin"}),
            ),
            "body.password",
        ),
        (
            "undecodable bytes in the query string",
            lambda: server.request("GET", "/api/wa-monitor-drops?search=%ED%BF%BF"),
            "query.search",
        ),
        (
            "NUL in the query string",
            lambda: server.request("GET", "/api/wa-monitor-project-stats?project=La%00wley"),
            "query.project",
        ),
        (
            "undecodable bytes in a path parameter",
            lambda: server.json_request(
                "PATCH", "/api/wa-monitor-users/%FFadmin", b'{"role": "viewer"}'
            ),
            "path",
        ),
        (
            "undecodable bytes in the sign-in form's user name",
            lambda: server.request(
                "POST",
                "/login",
                b"username=%ED%A0%80&password=x&csrf=x",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                role=None,
            ),
            "body.username",
        ),
        (
            "NUL in the sign-in form's user name",
            lambda: server.request(
                "POST",
                "/login",
                b"username=admin%00&password=x&csrf=x",
                headers={"Content-Type": "application/x-www-form-urlencoded"},
                role=None,
            ),
            "body.username",
        ),
        (
            "non-ASCII bytes in the Idempotency-Key header",
            lambda: server.json_request(
                "POST",
                "/api/wa-monitor-send-feedback",
                _surrogate_json({"dropId": drop_id, "dropNumber": "DR12121212", "message": "hi"}),
                headers={"Idempotency-Key": "key-\xff\xfe-12345"},
            ),
            "header.Idempotency-Key",
        ),
    ]
    for what, send, expected_field in cases:
        answer = send()
        assert answer.status == 422, (what, answer.status, answer.body[:300])
        assert answer.json()["error"]["code"] == "VALIDATION_ERROR", what
        assert expected_field in _field(answer), (what, answer.json())
    multipart = server.request(
        "POST",
        "/login",
        b'--x\r\nContent-Disposition: form-data; name="username"\r\n\r\nad\x00min\r\n--x--\r\n',
        headers={"Content-Type": "multipart/form-data; boundary=x"},
        role=None,
    )
    assert multipart.status == 415, multipart.body
    assert _stored(db_url) == before, "a refused request changed the database"
    reads = _reads_answer(server, drop_id)
    assert reads == [200] * len(reads), reads
    log = server.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert server.reconnects == 0
    figure(
        f"hostile text ({backend_of(db_url)}): {len(cases) + 1} requests with lone "
        "surrogates, encoded surrogates, undecodable bytes or NUL in JSON bodies, keys, query "
        "strings, a path, sign-in forms (urlencoded and multipart) and a header -> 422 naming "
        "the field (415 multipart); database unchanged; drop list, drop, CSV, daily drops and "
        "summary 200 after; 0 tracebacks, 0 ERROR lines, 0 reconnections"
    )


def test_rows_already_holding_bad_text_are_still_served(server: Server, db_url: str) -> None:
    store = ReviewStore(db_url)
    drop_id = review(store, "DR34343434", "Mohadin")["id"]
    if store.dialect == "sqlite":
        # What an older version (or another tool) left: JSON with lone-surrogate escapes,
        # and text columns holding bytes that are not UTF-8.
        store.dispose()
        path = db_url.removeprefix("sqlite:///")
        raw = sqlite3.connect(path)
        raw.execute(
            "UPDATE qa_photo_reviews SET incorrect_steps = ?, incorrect_comments = ?, "
            "comment = CAST(x'6f6bff' AS TEXT), user_name = CAST(x'c328' AS TEXT) "
            "WHERE id = ?",
            ('["step_01_house_photo"]', '{"step_01_house_photo": "\\udfff"}', drop_id.hex),
        )
        raw.execute(
            "INSERT INTO review_edits (review_id, actor, action, changes, at) "
            "VALUES (?, 'old', 'edit', ?, '2025-11-09 17:15:30.000000')",
            (drop_id.hex, '{"comment": [null, "\\ud800"]}'),
        )
        raw.commit()
        raw.close()
        planted = "lone-surrogate JSON and non-UTF-8 bytes"
    else:
        # PostgreSQL refuses both; what it does take must be served as it is.
        with store.begin() as conn:
            conn.execute(
                sa.update(qa_photo_reviews)
                .where(qa_photo_reviews.c.id == drop_id)
                .values(
                    incorrect_steps=["step_01_house_photo"],
                    incorrect_comments={"step_01_house_photo": "\ufffe\uffff\x85\u202e"},
                    comment="\x1b[31m\u2028",
                )
            )
        store.dispose()
        planted = "noncharacters, C1 and bidi controls (it refuses lone surrogates and NUL)"
    reads = _reads_answer(server, str(drop_id))
    assert reads == [200] * len(reads), reads
    one = server.request("GET", f"/api/wa-monitor-drops/{drop_id}").json()["data"]
    comments = one["drop"]["incorrectComments"]["step_01_house_photo"]
    if store.dialect == "sqlite":
        assert comments == "\ufffd" and one["drop"]["comment"] == "ok\ufffd"
        assert one["drop"]["userName"] == "\ufffd("
        assert ["\ufffd"] in [e["changes"].get("comment", [])[1:] for e in one["edits"]]
    # The row stays editable: its old values are read to record the change.
    edit = server.json_request(
        "PATCH", f"/api/wa-monitor-drops/{drop_id}", b'{"comment": "fixed"}', role="reviewer"
    )
    assert edit.status == 200, edit.body
    figure(
        f"rows already holding bad text ({backend_of(db_url)}): {planted} in a review"
        f"{' and its edit history' if store.dialect == 'sqlite' else ''} -> drop list, drop, "
        "CSV, daily drops and summary 200"
        f"{', what UTF-8 cannot carry shown as U+FFFD' if store.dialect == 'sqlite' else ''}; "
        "the row still editable"
    )


def test_dates_at_the_ends_of_the_calendar_are_refused(server: Server, db_url: str) -> None:
    sent = 0
    for path, params in DATE_ROUTES:
        for param in params:
            for day in OUT_OF_RANGE:
                answer = server.request("GET", f"{path}?{param}={day}")
                sent += 1
                assert answer.status == 422, (path, param, day, answer.body[:300])
                assert f"query.{param}" in _field(answer), answer.json()
        for day in ("1970-01-01", "2999-12-31"):
            query = "&".join(f"{p}={day}" for p in params)
            assert server.request("GET", f"{path}?{query}").status == 200, (path, day)
            sent += 1
    assert server.reconnects == 0
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    figure(
        f"calendar ends ({backend_of(db_url)}): {sent} requests, "
        f"{', '.join(OUT_OF_RANGE)} in every date parameter of the drop list, CSV export, "
        "daily drops and projects summary -> 422 naming the parameter; 1970-01-01 and "
        "2999-12-31 -> 200; 0 tracebacks, 0 reconnections"
    )


def test_names_files_cannot_have_bounds_and_methods(server: Server, db_url: str) -> None:
    store = ReviewStore(db_url)
    drop_id = str(review(store, "DR12121212")["id"])
    store.dispose()
    for path in ("/static/app.js%00.png", "/static/" + "a" * 5000, "/static/%ED%A0%80.js"):
        answer = server.request("GET", path, role=None)
        assert 400 <= answer.status < 500, (path, answer.status)
        assert answer.json()["success"] is False
    assert server.request("GET", "/static/app.js", role=None).status == 200
    # HEAD answers as GET does, without a body; 405 names every method of the path.
    for path in ("/api/wa-monitor-drops", f"/api/wa-monitor-drops/{drop_id}", "/static/app.js"):
        head = server.request("HEAD", path)
        assert head.status == 200 and head.body == b"", (path, head.status)
    allow = {
        f"/api/wa-monitor-drops/{drop_id}": "GET, HEAD, PATCH",
        f"/api/wa-monitor-drops/{drop_id}/lock": "POST",
        "/api/wa-monitor-users/viewer": "PATCH",
        "/api/wa-monitor-users": "GET, HEAD, POST",
    }
    for path, methods in allow.items():
        answer = server.request("DELETE", path)
        assert answer.status == 405 and answer.headers["allow"] == methods, (path, answer.headers)
    # Oversized input is refused at once, whatever its shape: lists and maps by the model
    # before their items are checked, bodies by size before they are parsed.
    timings = {}
    for what, body, status, chunked in (
        ("40,000 incorrectSteps", {"incorrectSteps": ["x"] * 40_000}, 422, False),
        ("15,000 incorrectComments", {"incorrectComments": {f"k{i}": "" for i in range(15_000)}},
         422, False),
        ("100,000 incorrectSteps", {"incorrectSteps": ["x"] * 100_000}, 413, False),
        ("a 1 MB comment, chunked", {"comment": "x" * 1_000_000}, 413, True),
    ):  # fmt: skip
        started = time.perf_counter()
        answer = server.json_request(
            "PATCH", f"/api/wa-monitor-drops/{drop_id}", json.dumps(body).encode(), chunked=chunked
        )
        timings[what] = time.perf_counter() - started
        assert answer.status == status, (what, answer.status, answer.body[:300])
        assert timings[what] < 1.0, timings
    # A 413 answered before the body is read may end the connection; nothing else does.
    assert server.reconnects <= 2
    log = server.log()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    slowest = max(timings.values())
    figure(
        f"names, bounds, methods ({backend_of(db_url)}): NUL, 5,000-character and "
        "undecodable static names -> 4xx, 0 log lines; HEAD on GET routes 200 without a body; "
        "405 with the full Allow; 40,000 incorrectSteps and 15,000 comments -> 422, 100,000 "
        f"incorrectSteps and a chunked 1 MB body -> 413, each in {slowest * 1000:.0f} ms at "
        f"most; answers {dict(sorted(server.answers.items()))}"
    )
