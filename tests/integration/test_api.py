"""The JSON API on both backends: contract shapes, every route's roles and error cases."""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from tests.fakebridge import running_bridge
from tests.integration.test_api_support import (
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
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback.outbox import BridgeClient
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import qa_photo_reviews, review_edits
from wa_monitor.web.app import create_app

SAST = ZoneInfo("Africa/Johannesburg")


@dataclass
class Api:
    client: TestClient
    store: ReviewStore
    people: People

    def get(self, path: str, role: str = "viewer", **kw: Any) -> Any:
        return self.client.get(path, headers=self.people.bearer(role), **kw)

    def call(self, method: str, path: str, role: str = "reviewer", **kw: Any) -> Any:
        headers = {**self.people.bearer(role), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)


@pytest.fixture
def api(store: ReviewStore) -> Iterator[Api]:
    people = add_people(store)
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    with TestClient(app) as client:
        yield Api(client, store, people)


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert "timestamp" in body["meta"]
    return dict(body["error"])


def drop_id(api: Api, drop: str, project: str = "Lawley") -> str:
    return str(review(api.store, drop, project)["id"])


# -- who may do what ----------------------------------------------------------------------

ROUTES: list[tuple[str, str, str]] = [
    # (method, path, the least role that may call it)
    ("GET", "/api/wa-monitor-me", "viewer"),
    ("GET", "/api/wa-monitor-daily-drops", "viewer"),
    ("GET", "/api/wa-monitor-drops", "viewer"),
    ("GET", "/api/wa-monitor-drops.csv", "viewer"),
    ("GET", "/api/wa-monitor-drops/{id}", "viewer"),
    ("GET", "/api/wa-monitor-drops/{id}/feedback", "viewer"),
    ("GET", "/api/wa-monitor-feedback-outbox?dropId={id}", "viewer"),
    ("GET", "/api/wa-monitor-project-stats", "viewer"),
    ("GET", "/api/wa-monitor-projects-summary", "viewer"),
    ("PATCH", "/api/wa-monitor-drops/{id}", "reviewer"),
    ("POST", "/api/wa-monitor-drops/{id}/lock", "reviewer"),
    ("POST", "/api/wa-monitor-drops/{id}/unlock", "reviewer"),
    ("POST", "/api/wa-monitor-send-feedback", "reviewer"),
    ("POST", "/api/wa-monitor-feedback-outbox/1/retry", "reviewer"),
    ("GET", "/api/wa-monitor-users", "admin"),
    ("POST", "/api/wa-monitor-users", "admin"),
    ("PATCH", "/api/wa-monitor-users/viewer", "admin"),
    ("GET", "/api/wa-monitor-drops.xlsx", "viewer"),
    ("GET", "/api/wa-monitor-steps", "viewer"),
    ("GET", "/api/wa-monitor-team-stats", "viewer"),
    ("GET", "/api/wa-monitor-team-charts/drops-per-week.svg", "viewer"),
    ("GET", "/api/wa-monitor-drop-lists", "viewer"),
    ("POST", "/api/wa-monitor-drops/next", "reviewer"),
    ("POST", "/api/wa-monitor-drops/{id}/release", "reviewer"),
    ("POST", "/api/wa-monitor-reconcile", "reviewer"),
    ("POST", "/api/wa-monitor-drops/{id}/assign", "admin"),
    ("POST", "/api/wa-monitor-drop-lists/Lawley", "admin"),
    ("GET", "/api/wa-monitor-users-audit", "admin"),
    ("POST", "/api/wa-monitor-users/viewer/password", "admin"),
]
RANK = {"viewer": 0, "reviewer": 1, "admin": 2}


def test_every_route_checks_the_callers_role(api: Api) -> None:
    record(api.store, post("DR11111111", minutes_ago(5)))
    rid = drop_id(api, "DR11111111")
    for method, template, least in ROUTES:
        path = template.format(id=rid)
        anonymous = api.client.request(method, path)
        assert_error(anonymous, 401, "UNAUTHORIZED")
        bad_token = api.client.request(method, path, headers={"Authorization": "Bearer wam_nope"})
        assert_error(bad_token, 401, "UNAUTHORIZED")
        for role, rank in RANK.items():
            response = api.client.request(method, path, headers=api.people.bearer(role))
            if rank < RANK[least]:
                assert_error(response, 403, "FORBIDDEN")
                assert least in response.json()["error"]["message"]
            else:
                # Allowed through: whatever the body says, it is not an auth failure.
                assert response.status_code not in (401, 403), (method, path, role, response.text)


def test_unknown_paths_wrong_methods_and_bad_input_answer_the_error_envelope(api: Api) -> None:
    assert_error(api.get("/api/nothing-here"), 404, "NOT_FOUND")
    assert_error(api.call("DELETE", "/api/wa-monitor-drops"), 405, "METHOD_NOT_ALLOWED")
    assert_error(api.get("/api/wa-monitor-drops?status=done"), 422, "VALIDATION_ERROR")
    # The company dashboard's ids are strings: one that is no id names no drop.
    assert_error(api.get("/api/wa-monitor-drops?id=nonexistent-id-12345"), 404, "NOT_FOUND")
    assert_error(api.get("/api/wa-monitor-drops?pageSize=0"), 422, "VALIDATION_ERROR")
    assert_error(api.get("/api/wa-monitor-daily-drops?date=2025-13-01"), 422, "VALIDATION_ERROR")
    error = assert_error(
        api.get("/api/wa-monitor-drops?dateFrom=2025-11-10&dateTo=2025-11-01"),
        422,
        "VALIDATION_ERROR",
    )
    assert "dateFrom" in error["message"]
    assert_error(api.get(f"/api/wa-monitor-drops/{uuid.uuid4()}"), 404, "NOT_FOUND")
    assert_error(api.get(f"/api/wa-monitor-drops?id={uuid.uuid4()}"), 404, "NOT_FOUND")
    malformed = api.call(
        "PATCH",
        f"/api/wa-monitor-drops/{uuid.uuid4()}",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_error(malformed, 400, "BAD_REQUEST")
    assert_error(api.get("/api/wa-monitor-projects-summary?startDate=x"), 422, "VALIDATION_ERROR")


def test_the_openapi_document_describes_the_contract_routes(api: Api) -> None:
    doc = api.client.get("/api/openapi.json").json()
    paths = doc["paths"]
    for method, template, _ in ROUTES:
        path = template.split("?")[0].replace("{id}", "{drop_id}").replace("/1/", "/{entry_id}/")
        path = path.replace("/viewer", "/{username}").replace("/Lawley", "/{name}")
        path = path.replace("/drops-per-week.svg", "/{name}.svg")
        assert method.lower() in paths[path], path
    drop = doc["components"]["schemas"]["Drop"]["properties"]
    for key in ("dropNumber", "resubmitted", "lockedBy", "incorrectSteps", *STEP_COLUMNS):
        assert key in drop
    patch = paths["/api/wa-monitor-drops/{drop_id}"]["patch"]["responses"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(patch)


# -- the list -----------------------------------------------------------------------------


def test_drop_list_is_the_queue_or_resubmissions_first_then_newest_message(api: Api) -> None:
    record(
        api.store,
        post("DR20000001", minutes_ago(50)),
        post("DR20000002", minutes_ago(40)),
        post("DR20000003", minutes_ago(30), project="Mohadin"),
    )
    record(api.store, post("DR20000001", minutes_ago(20)))  # posted again before any review
    latest = api.get("/api/wa-monitor-drops?sort=latest").json()
    assert [d["dropNumber"] for d in latest["data"]] == ["DR20000001", "DR20000003", "DR20000002"]
    # The work queue (the default): the longest waiting first; a post again before any
    # feedback leaves the drop waiting since its first post.
    body = api.get("/api/wa-monitor-drops").json()
    order = [d["dropNumber"] for d in body["data"]]
    assert order == ["DR20000001", "DR20000002", "DR20000003"]
    assert [d["reviewState"] for d in body["data"]] == ["new"] * 3
    first = body["data"][0]
    assert first["resubmitted"] is True
    assert first["completedPhotos"] == 0 and first["outstandingPhotos"] == 12
    assert first["status"] == "incomplete"
    assert first["senderPhone"] == "27821234567"
    assert first["receivedLocal"].endswith("SAST")
    assert body["summary"] == {
        "total": 3,
        "incomplete": 3,
        "complete": 0,
        "feedbackSent": 0,
        "resubmitted": 1,
        "averageFeedbackCount": 0.0,
        "totalFeedback": 0,
        "byState": {
            "new": 3,
            "resubmitted": 0,
            "in_review": 0,
            "needs_correction": 0,
            "approved": 0,
            "invalid": 0,
        },
        "overdue": 0,
    }
    # Without paging, every drop is on the one page.
    assert body["meta"]["pagination"] == {"page": 1, "pageSize": 3, "total": 3, "pages": 1}


def test_drop_list_filters_and_pages(api: Api) -> None:
    record(
        api.store,
        post("DR30000001", minutes_ago(60 * 24 * 3)),
        post("DR30000002", minutes_ago(30)),
        post("DR30000003", minutes_ago(20), project="Mohadin"),
        post("DR31000004", minutes_ago(10)),
    )
    record(api.store, post("DR30000002", minutes_ago(5)))
    complete = {s: True for s in STEP_COLUMNS}
    rid = drop_id(api, "DR31000004")
    assert api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=complete).status_code == 200

    def numbers(query: str) -> list[str]:
        response = api.get(f"/api/wa-monitor-drops?{query}")
        assert response.status_code == 200, response.text
        return [d["dropNumber"] for d in response.json()["data"]]

    assert numbers("status=complete") == ["DR31000004"]
    assert numbers("status=incomplete") == ["DR30000001", "DR30000002", "DR30000003"]
    assert numbers("project=Mohadin") == ["DR30000003"]
    assert numbers("resubmitted=true") == ["DR30000002"]
    assert numbers("resubmitted=false") == ["DR30000001", "DR30000003", "DR31000004"]
    assert numbers("resubmitted=false&sort=latest") == ["DR31000004", "DR30000003", "DR30000001"]
    assert numbers("search=dr 31") == ["DR31000004"]
    assert numbers("search=%25") == []  # LIKE wildcards are literal
    today = datetime.now(UTC).astimezone(SAST).date()
    three_days_ago = (today - timedelta(days=3)).isoformat()
    assert numbers(f"dateFrom={three_days_ago}&dateTo={three_days_ago}") == ["DR30000001"]
    assert "DR30000001" not in numbers(f"dateFrom={today.isoformat()}")
    assert api.get(f"/api/wa-monitor-drops?id={rid}").json()["data"]["dropNumber"] == "DR31000004"
    page2 = api.get("/api/wa-monitor-drops?pageSize=3&page=2").json()
    assert [d["dropNumber"] for d in page2["data"]] == ["DR31000004"]  # approved: last
    assert page2["meta"]["pagination"]["pages"] == 2
    assert page2["summary"]["total"] == 4  # the summary covers every page


def test_csv_export_holds_the_filtered_drops(api: Api) -> None:
    record(
        api.store,
        post("DR40000001", minutes_ago(30), name="=HYPERLINK(evil)"),
        post("DR40000002", minutes_ago(20), project="Mohadin"),
    )
    response = api.get("/api/wa-monitor-drops.csv?project=Lawley")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["dropNumber"] for r in rows] == ["DR40000001"]
    assert rows[0]["project"] == "Lawley" and rows[0]["completedPhotos"] == "0"
    assert rows[0]["userName"] == "'=HYPERLINK(evil)"  # no formula for spreadsheets


# How a cell can start so that Excel, LibreOffice or Google Sheets runs it as a formula.
FORMULA_STARTS = ["=", "+", "-", "@", "\t=", "\r=", "\n=", " =", "\u00a0=", "\uff1d", "\uff0b"]


def formula_like(cell: str) -> bool:
    first = cell.lstrip(" \t\r\n\u00a0\u3000")[:1]
    return cell[:1] in ("\t", "\r", "\n") or (first != "" and first in "=+-@＝＋－＠")


def test_csv_export_cells_never_start_a_formula(api: Api) -> None:
    payload = 'HYPERLINK("http://evil.example","x")'
    for i, start in enumerate(FORMULA_STARTS):
        drop = f"DR4100{i:04d}"
        record(api.store, post(drop, minutes_ago(30 - i), name=f"{start}{payload}", sender=start))
        saved = api.call(
            "PATCH",
            f"/api/wa-monitor-drops/{drop_id(api, drop)}",
            json={"comment": f"{start}cmd|' /C calc'!A0"},
        )
        assert saved.status_code == 200, saved.text
    response = api.get("/api/wa-monitor-drops.csv")
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.text, newline="")))
    cells = [cell for row in rows[1:] for cell in row]
    assert len(rows) == 1 + len(FORMULA_STARTS)
    dangerous = [cell for cell in cells if formula_like(cell)]
    print(
        f"injected {len(FORMULA_STARTS)} formula starts into names, phones and comments; "
        f"checked {len(cells)} cells: {len(dangerous)} would run"
    )
    assert not dangerous
    # Defused, not dropped: the text is still all there after the quote.
    names = {row[rows[0].index("userName")] for row in rows[1:]}
    assert names == {f"'{start}{payload}" for start in FORMULA_STARTS}


# -- reviewing ----------------------------------------------------------------------------


def test_ticking_all_twelve_steps_completes_the_review_and_is_audited(api: Api) -> None:
    record(api.store, post("DR50000001", minutes_ago(5)))
    rid = drop_id(api, "DR50000001")
    some = {s: True for s in STEP_COLUMNS[:5]}
    body = api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=some).json()
    assert body["success"] is True
    drop = body["data"]
    assert drop["completedPhotos"] == 5 and drop["status"] == "incomplete"
    assert drop["incomplete"] is True and drop["completed"] is False
    rest = {s: True for s in STEP_COLUMNS[5:]}
    drop = api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=rest).json()["data"]
    assert drop["status"] == "complete" and drop["completed"] is True
    assert drop["incomplete"] is False and drop["completedPhotos"] == 12
    stored = review(api.store, "DR50000001")
    assert stored["completed"] is True and all(stored[s] for s in STEP_COLUMNS)
    with api.store.begin() as conn:
        audit = conn.execute(
            sa.select(review_edits.c.actor, review_edits.c.action, review_edits.c.changes)
            .where(review_edits.c.review_id == uuid.UUID(rid))
            .order_by(review_edits.c.id)
        ).all()
    assert [(a.actor, a.action) for a in audit] == [("reviewer", "edit"), ("reviewer", "edit")]
    assert audit[1].changes["completed"] == [False, True]
    detail = api.get(f"/api/wa-monitor-drops/{rid}").json()["data"]
    assert detail["edits"][0]["actor"] == "reviewer"
    assert detail["edits"][0]["atLocal"].endswith("SAST")


def test_incorrect_steps_carry_comments_and_untick_the_step(api: Api) -> None:
    record(api.store, post("DR50000002", minutes_ago(5)))
    rid = drop_id(api, "DR50000002")
    patch = {
        **{s: True for s in STEP_COLUMNS},
        "incorrectSteps": ["step_01_house_photo"],
        "incorrectComments": {"step_01_house_photo": "  Photo is blurry  "},
        "comment": "Checked by QA",
    }
    drop = api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=patch).json()["data"]
    assert drop["incorrectSteps"] == ["step_01_house_photo"]
    assert drop["incorrectComments"] == {"step_01_house_photo": "Photo is blurry"}
    assert drop["step_01_house_photo"] is False
    assert drop["status"] == "incomplete" and drop["completedPhotos"] == 11
    assert drop["comment"] == "Checked by QA"
    draft = api.get(f"/api/wa-monitor-drops/{rid}/feedback").json()["data"]
    assert draft["message"] == (
        "DR50000002\nNEEDS CORRECTION\n\nIncorrect items:\n• 1. House photo - Photo is blurry"
    )
    assert draft["recipient"] == "120363418298130331@g.us"


def test_contradicting_or_malformed_edits_are_refused(api: Api) -> None:
    record(api.store, post("DR50000003", minutes_ago(5)))
    rid = drop_id(api, "DR50000003")
    url = f"/api/wa-monitor-drops/{rid}"
    assert_error(api.call("PATCH", url, json={"completed": True}), 422, "VALIDATION_ERROR")
    assert_error(api.call("PATCH", url, json={"step_13_extra": True}), 422, "VALIDATION_ERROR")
    assert_error(
        api.call("PATCH", url, json={"incorrectSteps": ["step_99"]}), 422, "VALIDATION_ERROR"
    )
    assert_error(
        api.call("PATCH", url, json={"step_01_house_photo": "maybe"}), 422, "VALIDATION_ERROR"
    )
    assert_error(api.call("PATCH", url, json={"completed": None}), 422, "VALIDATION_ERROR")
    assert_error(api.call("PATCH", url, json={}), 400, "BAD_REQUEST")
    assert_error(
        api.call("PATCH", f"/api/wa-monitor-drops/{uuid.uuid4()}", json={"comment": "x"}),
        404,
        "NOT_FOUND",
    )
    assert review(api.store, "DR50000003")["completed"] is False


# -- locks --------------------------------------------------------------------------------


def test_edit_locks_keep_two_reviewers_from_overwriting_each_other(api: Api) -> None:
    second = add_people(api.store, ("reviewer2",))
    record(api.store, post("DR60000001", minutes_ago(5)))
    rid = drop_id(api, "DR60000001")
    took = api.call("POST", f"/api/wa-monitor-drops/{rid}/lock").json()
    assert took["data"]["lockedBy"] == "reviewer" and took["data"]["expiresAt"]
    other = api.client.post(f"/api/wa-monitor-drops/{rid}/lock", headers=second.bearer("reviewer2"))
    error = assert_error(other, 409, "CONFLICT")
    assert error["message"] == "Drop is currently being edited by reviewer"
    blocked = api.client.patch(
        f"/api/wa-monitor-drops/{rid}",
        json={"step_01_house_photo": True},
        headers=second.bearer("reviewer2"),
    )
    assert_error(blocked, 409, "CONFLICT")
    assert review(api.store, "DR60000001")["step_01_house_photo"] is False
    unlock_other = api.client.post(
        f"/api/wa-monitor-drops/{rid}/unlock", headers=second.bearer("reviewer2")
    )
    assert_error(unlock_other, 409, "CONFLICT")
    # The holder saves under its own lock, then lets go.
    saved = api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json={"step_01_house_photo": True})
    assert saved.status_code == 200
    assert (
        api.call("POST", f"/api/wa-monitor-drops/{rid}/unlock").json()["data"]["lockedBy"] is None
    )
    relock = api.client.post(
        f"/api/wa-monitor-drops/{rid}/lock", headers=second.bearer("reviewer2")
    )
    assert relock.status_code == 200
    # A lock older than five minutes has expired: anyone may take it.
    with api.store.begin() as conn:
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.id == uuid.UUID(rid))
            .values(locked_at=datetime.now(UTC) - timedelta(minutes=6))
        )
    assert api.call("POST", f"/api/wa-monitor-drops/{rid}/lock").status_code == 200
    # An admin may release anyone's lock.
    assert api.call("POST", f"/api/wa-monitor-drops/{rid}/unlock", role="admin").status_code == 200
    assert review(api.store, "DR60000001")["locked_by"] is None
    missing = api.call("POST", f"/api/wa-monitor-drops/{uuid.uuid4()}/lock")
    assert_error(missing, 404, "NOT_FOUND")


# -- edits made on an older version -------------------------------------------------------


def versions(store: ReviewStore, drop: str) -> tuple[int, int, int]:
    r = review(store, drop)
    return (r["version"], r["comment_version"], r["steps_version"])


def opened(api: Api, rid: str, role: str = "reviewer") -> tuple[dict[str, Any], str]:
    """What a reviewer's page reads when it opens a drop: the drop and its ETag."""
    got = api.get(f"/api/wa-monitor-drops/{rid}", role=role)
    assert got.status_code == 200, got.text
    drop = got.json()["data"]["drop"]
    assert got.headers["etag"] == f'"{drop["version"]}"'
    return drop, got.headers["etag"]


def test_every_writer_of_a_review_counts_its_version(api: Api) -> None:
    record(api.store, post("DR61000001", minutes_ago(30)))
    rid = drop_id(api, "DR61000001")
    seen = [("recorded", versions(api.store, "DR61000001"))]

    def wrote(what: str) -> None:
        seen.append((what, versions(api.store, "DR61000001")))

    record(api.store, post("DR61000001", minutes_ago(20), name="Sipho"))
    wrote("resubmission (monitor)")
    assert api.call("POST", f"/api/wa-monitor-drops/{rid}/lock").status_code == 200
    wrote("lock")
    patch = {"step_01_house_photo": True}
    assert api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=patch).status_code == 200
    wrote("steps (API)")
    patch = {"comment": "checked"}
    assert api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=patch).status_code == 200
    wrote("comment (API)")
    assert api.call("POST", f"/api/wa-monitor-drops/{rid}/unlock").status_code == 200
    wrote("unlock")
    with running_bridge() as bridge:
        app = create_app(
            settings_for(api.store.url, bridge.url),
            projects_config(),
            api.store,
            bridge=BridgeClient(bridge.url, timeout=2),
            run_sender=False,
        )
        with TestClient(app) as client:
            sent = client.post(
                "/api/wa-monitor-send-feedback",
                json={"dropId": rid, "dropNumber": "DR61000001", "message": "All good"},
                headers=api.people.bearer("reviewer"),
            )
            assert sent.status_code == 200, sent.text
    wrote("feedback sent")
    with api.store.begin() as conn:  # an administrator's correction, by hand
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.id == uuid.UUID(rid))
            .values(user_name="Sipho M.")
        )
    wrote("hand-written SQL")
    print("writes and the (version, comment_version, steps_version) after each:", seen)
    assert seen == [
        ("recorded", (1, 1, 1)),
        ("resubmission (monitor)", (2, 2, 1)),
        ("lock", (3, 2, 1)),
        ("steps (API)", (4, 2, 4)),
        ("comment (API)", (5, 5, 4)),
        ("unlock", (6, 5, 4)),
        ("feedback sent", (7, 5, 4)),
        ("hand-written SQL", (8, 5, 4)),
    ]
    drop, etag = opened(api, rid)
    assert drop["version"] == 8 and etag == '"8"'
    listed = api.get(f"/api/wa-monitor-drops?id={rid}").json()["data"]
    assert listed["version"] == 8


def test_a_resubmission_between_a_reviewers_read_and_save_is_never_lost(api: Api) -> None:
    record(api.store, post("DR62000001", minutes_ago(30), name="Thabo"))
    rid = drop_id(api, "DR62000001")
    checked: list[str] = []

    # The reviewer opens the drop; the installer posts it again before they save.
    drop, etag = opened(api, rid)
    record(api.store, post("DR62000001", minutes_ago(10), name="Sipho"))
    line = review(api.store, "DR62000001")["comment"]
    assert line.startswith("🔄 Resubmitted") and "Sipho" in line
    # Ticking steps does not touch the comment: merged, the monitor's line stays.
    ticks = {"step_01_house_photo": True, "step_02_cable_from_pole": True}
    saved = api.call(
        "PATCH", f"/api/wa-monitor-drops/{rid}", json=ticks, headers={"If-Match": etag}
    )
    assert saved.status_code == 200, saved.text
    assert "merged" in saved.json()["message"]
    after = saved.json()["data"]
    assert after["comment"] == line and after["completedPhotos"] == 2
    assert saved.headers["etag"] == f'"{after["version"]}"'
    checked.append("steps saved on a stale version: merged, resubmission line kept")

    # Writing the comment on the copy read before another resubmission: refused, both shown.
    drop, _ = opened(api, rid)
    record(api.store, post("DR62000001", minutes_ago(5), name="Lerato"))
    mine = {"comment": "Pole photo is fine", "version": drop["version"]}
    refused = api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=mine)
    error = assert_error(refused, 409, "CONFLICT")
    details = error["details"]
    now = review(api.store, "DR62000001")
    assert details["conflicts"] == ["comment"]
    assert details["yourVersion"] == drop["version"]
    assert details["currentVersion"] == now["version"] == drop["version"] + 1
    assert details["current"]["comment"] == now["comment"] and "Lerato" in now["comment"]
    assert details["sent"] == mine
    assert refused.headers["etag"] == f'"{now["version"]}"'
    checked.append("comment saved on a stale version after a resubmission: 409 with both")
    # The reviewer chooses theirs, knowingly: sent again with the current version.
    mine["version"] = details["currentVersion"]
    chosen = api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=mine)
    assert chosen.status_code == 200, chosen.text
    assert review(api.store, "DR62000001")["comment"] == "Pole photo is fine"

    # Without a version (the company's dashboard) the comment keeps the monitor's lines.
    drop, _ = opened(api, rid)
    record(api.store, post("DR62000001", minutes_ago(2), name="Zanele"))
    new_line = review(api.store, "DR62000001")["comment"].splitlines()[-1]
    blind = api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json={"comment": "Redo pole"})
    assert blind.status_code == 200, blind.text
    assert blind.json()["data"]["comment"] == f"Redo pole\n{new_line}"
    assert "keeps 1 resubmission line" in blind.json()["message"]
    checked.append("versionless comment after a resubmission: the line appended again")

    # Two reviewers: a stale edit of the steps someone else changed meanwhile is refused,
    # a stale edit of the comment only is merged.
    drop, etag = opened(api, rid)
    assert (
        api.call(
            "PATCH", f"/api/wa-monitor-drops/{rid}", json={"step_05_wall_for_installation": True}
        ).status_code
        == 200
    )
    stale = {"step_03_cable_entry_outside": True}
    refused = api.call(
        "PATCH", f"/api/wa-monitor-drops/{rid}", json=stale, headers={"If-Match": etag}
    )
    assert assert_error(refused, 409, "CONFLICT")["details"]["conflicts"] == ["steps"]
    assert review(api.store, "DR62000001")["step_03_cable_entry_outside"] is False
    merged = api.call(
        "PATCH",
        f"/api/wa-monitor-drops/{rid}",
        json={"comment": "Redo pole\nok"},
        headers={"If-Match": etag},
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["data"]["step_05_wall_for_installation"] is True
    checked.append("stale steps over another's steps: 409; stale comment over steps: merged")
    # Both sides making the same change is no conflict (and no write).
    before = review(api.store, "DR62000001")["version"]
    same = {"step_05_wall_for_installation": True, "version": drop["version"]}
    assert api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json=same).status_code == 200
    assert review(api.store, "DR62000001")["version"] == before

    # The version's two spellings must agree, and an ETag is a quoted number.
    v = review(api.store, "DR62000001")["version"]
    for header, body in (
        ('W/"1"', {}),
        ("1", {}),
        ('"1", "2"', {}),
        (f'"{v}"', {"version": v + 1}),
    ):
        bad = api.call(
            "PATCH",
            f"/api/wa-monitor-drops/{rid}",
            json={"comment": "x", **body},
            headers={"If-Match": header},
        )
        assert_error(bad, 400, "BAD_REQUEST")
    anyv = api.call(
        "PATCH",
        f"/api/wa-monitor-drops/{rid}",
        json={"comment": "Redo pole\nok!"},
        headers={"If-Match": "*"},
    )
    assert anyv.status_code == 200, anyv.text
    print(f"monitor resubmissions between read and save: 3 injected; checked: {checked}")


# -- users --------------------------------------------------------------------------------


def test_admins_manage_users_through_the_api(api: Api) -> None:
    created = api.call(
        "POST",
        "/api/wa-monitor-users",
        role="admin",
        json={"username": "nomsa", "password": "long-enough-pw", "role": "viewer"},
    )
    assert created.status_code == 201
    assert created.json()["data"]["role"] == "viewer"
    again = api.call(
        "POST",
        "/api/wa-monitor-users",
        role="admin",
        json={"username": "nomsa", "password": "long-enough-pw", "role": "viewer"},
    )
    assert_error(again, 409, "CONFLICT")
    weak = api.call(
        "POST",
        "/api/wa-monitor-users",
        role="admin",
        json={"username": "x", "password": "short", "role": "viewer"},
    )
    assert_error(weak, 422, "VALIDATION_ERROR")
    promoted = api.call(
        "PATCH", "/api/wa-monitor-users/nomsa", role="admin", json={"role": "reviewer"}
    )
    assert promoted.json()["data"]["role"] == "reviewer"
    names = [u["username"] for u in api.get("/api/wa-monitor-users", role="admin").json()["data"]]
    assert "nomsa" in names
    unknown = api.call("PATCH", "/api/wa-monitor-users/ghost", role="admin", json={"role": "admin"})
    assert_error(unknown, 404, "NOT_FOUND")
    self_demote = api.call(
        "PATCH", "/api/wa-monitor-users/admin", role="admin", json={"disabled": True}
    )
    assert_error(self_demote, 422, "VALIDATION_ERROR")
    # Disabling a user shuts their API token out at once.
    api.call("PATCH", "/api/wa-monitor-users/viewer", role="admin", json={"disabled": True})
    assert_error(api.get("/api/wa-monitor-me"), 401, "UNAUTHORIZED")


def test_nul_characters_are_invalid_input_not_database_errors(api: Api) -> None:
    record(api.store, post("DR99000001", minutes_ago(5)))
    rid = drop_id(api, "DR99000001")
    for response in (
        api.get("/api/wa-monitor-drops?project=La%00wley"),
        api.get("/api/wa-monitor-drops?search=DR%00"),
        api.get("/api/wa-monitor-project-stats?project=%00"),
        api.call("PATCH", f"/api/wa-monitor-drops/{rid}", json={"comment": "bad\x00"}),
        api.call(
            "PATCH",
            f"/api/wa-monitor-drops/{rid}",
            json={
                "incorrectSteps": ["step_01_house_photo"],
                "incorrectComments": {"step_01_house_photo": "\x00"},
            },
        ),
        api.call("PATCH", "/api/wa-monitor-users/a%00b", role="admin", json={"role": "viewer"}),
    ):
        assert_error(response, 422, "VALIDATION_ERROR")
