"""The company dashboard's drop routes as its own client code calls them, with a front-end
token, on both backends: every drop in one answer, one drop by id, locks, a corrected drop
number, feedback, and who the history says acted."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
import sqlalchemy as sa

from tests.fakebridge import running_bridge
from tests.integration.test_api_support import (
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
from wa_monitor.store.schema import drop_submissions, feedback_outbox
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app

DROPS = "/api/wa-monitor-drops"
# What the newer front end's drop object has that WA Monitor cannot know.
UNKNOWABLE = (
    "ontConsumptionId",
    "upsConsumptionId",
    "scanGpsLat",
    "scanGpsLng",
    "onemapOntBarcode",
    "onemapOntActivationCode",
    "onemapUpsSerial",
    "onemapInstallerName",
    "onemapInstallationDate",
)


@dataclass
class FrontEnd:
    """The Next.js app's forwarding: its token, and the person signed in to it (if any)."""

    client: TestClient
    store: ReviewStore
    token: str
    reviewer: dict[str, str]

    def headers(self, acting: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {self.token}"}
        if acting is not None:
            headers["X-Acting-User"] = acting
        return headers

    def get(self, path: str, **params: Any) -> Any:
        return self.client.get(path, params=params, headers=self.headers())

    def post(self, path: str, body: Any = None, acting: str | None = None) -> Any:
        return self.client.post(path, json=body, headers=self.headers(acting))

    def patch(self, drop_id: str, body: Any, acting: str | None = None) -> Any:
        return self.client.patch(f"{DROPS}/{drop_id}", json=body, headers=self.headers(acting))


def _app(store: ReviewStore, bridge_url: str | None = None) -> Any:
    if bridge_url is None:
        return create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    return create_app(
        settings_for(store.url, bridge_url),
        projects_config(),
        store,
        bridge=BridgeClient(bridge_url, timeout=2),
        run_sender=False,
    )


@pytest.fixture
def fe(store: ReviewStore) -> Iterator[FrontEnd]:
    people = add_people(store)
    # The front end's own account: a reviewer, whose token forwards its people's requests.
    token = create_token(store, "reviewer", "company dashboard", front_end=True)[1]
    with TestClient(_app(store)) as client:
        yield FrontEnd(client, store, token, people.bearer("reviewer"))


def rid(store: ReviewStore, drop: str, project: str = "Lawley") -> str:
    return str(review(store, drop, project)["id"])


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["error"]["code"] == code
    return dict(body["error"])


def history(fe: FrontEnd, drop_id: str) -> list[tuple[str, str, Any]]:
    edits = fe.get(f"{DROPS}/{drop_id}").json()["data"]["edits"]
    return [(e["actor"], e["action"], e["changes"]) for e in edits]


# -- the list ------------------------------------------------------------------------------


def test_without_paging_every_drop_is_in_one_answer_newest_first(fe: FrontEnd) -> None:
    record(fe.store, *(post(f"DR5{n:07d}", minutes_ago(600 - n)) for n in range(69)))
    body = fe.get(DROPS).json()
    numbers = [d["dropNumber"] for d in body["data"]]
    assert len(numbers) == 69, "fetchAllDrops pages on the client: it needs every drop"
    assert numbers[:2] == ["DR50000068", "DR50000067"]  # it does not sort: newest first
    summary = body["summary"]
    assert (summary["total"], summary["incomplete"], summary["complete"]) == (69, 69, 0)
    assert summary["totalFeedback"] == 0 and summary["averageFeedbackCount"] == 0
    assert body["pagination"] == {
        "currentPage": 1,
        "pageSize": 69,
        "totalDrops": 69,
        "totalPages": 1,
        "hasNextPage": False,
        "hasPreviousPage": False,
    }
    assert body["meta"]["pagination"]["total"] == 69


def test_more_drops_than_a_read_are_streamed_whole_and_paged_with_limit(fe: FrontEnd) -> None:
    count = 1234
    record(fe.store, *(post(f"DR6{n:07d}", minutes_ago(2000 - n)) for n in range(count)))
    answer = fe.get(DROPS)
    assert answer.status_code == 200
    body = json.loads(answer.content)  # one JSON document, sent in batches
    numbers = [d["dropNumber"] for d in body["data"]]
    assert len(numbers) == len(set(numbers)) == count
    assert numbers == sorted(numbers, reverse=True)  # posted in number order: newest first
    assert body["summary"]["total"] == count and body["pagination"]["totalDrops"] == count
    assert all(d["status"] == "incomplete" for d in body["data"])

    # The newer version's paging: page, limit (up to 1000) and search.
    paged = fe.get(DROPS, page=2, limit=1000).json()
    assert len(paged["data"]) == count - 1000
    assert paged["pagination"] == {
        "currentPage": 2,
        "pageSize": 1000,
        "totalDrops": count,
        "totalPages": 2,
        "hasNextPage": False,
        "hasPreviousPage": True,
    }
    found = fe.get(DROPS, page=1, limit=1000, search="DR6000012").json()
    assert sorted(d["dropNumber"] for d in found["data"]) == [f"DR6000012{n}" for n in range(10)]
    assert found["pagination"]["totalDrops"] == 10
    too_many = fe.get(DROPS, limit=1001)
    assert_error(too_many, 422, "VALIDATION_ERROR")


def test_our_dashboard_keeps_its_pages_and_its_queue(fe: FrontEnd) -> None:
    record(fe.store, post("DR71000001", minutes_ago(30)), post("DR71000002", minutes_ago(20)))
    ours = fe.client.get(DROPS, params={"pageSize": 1}, headers=fe.reviewer).json()
    assert [d["dropNumber"] for d in ours["data"]] == ["DR71000001"]  # the longest waiting
    assert ours["meta"]["pagination"] == {"page": 1, "pageSize": 1, "total": 2, "pages": 2}
    assert ours["pagination"]["hasNextPage"] is True


def test_an_id_answers_that_drop_alone_and_an_unknown_one_is_not_found(fe: FrontEnd) -> None:
    record(fe.store, post("DR72000001", minutes_ago(30)), post("DR72000002", minutes_ago(20)))
    drop_id = rid(fe.store, "DR72000001")
    body = fe.get(DROPS, id=drop_id).json()
    drop = body["data"]
    assert isinstance(drop, dict) and drop["id"] == drop_id and drop["dropNumber"] == "DR72000001"
    # Every field of the front end's QaReviewDrop, typed as it reads them.
    assert drop["status"] == "incomplete" and drop["completedPhotos"] == 0
    assert drop["outstandingPhotos"] == 12
    for when in ("createdAt", "updatedAt", "reviewDate"):
        datetime.fromisoformat(drop[when])
    assert drop["feedbackSent"] is None and drop["lockedBy"] is None
    assert drop["incorrectSteps"] == [] and drop["incorrectComments"] == {}
    assert all(drop[s] is False for s in STEP_COLUMNS)
    assert drop["assignedAgent"] is None
    assert drop["ontSerialScanned"] is None and drop["upsSerialScanned"] is None
    assert drop["outstandingPhotosLoadedTo1map"] is False
    assert all(drop[k] is None for k in UNKNOWABLE)

    for unknown in ("nonexistent-id-12345", str(uuid.uuid4())):
        error = assert_error(fe.get(DROPS, id=unknown), 404, "NOT_FOUND")
        assert unknown in error["message"]


# -- locks -------------------------------------------------------------------------------


def test_a_lock_is_the_acting_persons_and_refused_to_everyone_else(fe: FrontEnd) -> None:
    record(fe.store, post("DR73000001", minutes_ago(30)))
    drop_id = rid(fe.store, "DR73000001")
    lock, unlock = f"{DROPS}/{drop_id}/lock", f"{DROPS}/{drop_id}/unlock"

    taken = fe.post(lock, {"userName": "Hein"})
    assert taken.status_code == 200, taken.text
    data = taken.json()["data"]
    assert (data["locked"], data["lockedBy"]) == (True, "Hein")
    first = datetime.fromisoformat(data["lockedAt"])
    again = fe.post(lock, {"userName": "Hein"}).json()["data"]  # refreshes the lock
    assert again["lockedBy"] == "Hein" and datetime.fromisoformat(again["lockedAt"]) >= first

    for refused in (
        fe.post(lock, {"userName": "Louis Duplessis"}),
        fe.client.post(lock, headers=fe.reviewer),  # our own dashboard's reviewer
    ):
        error = assert_error(refused, 409, "CONFLICT")
        assert error["message"] == "Drop is currently being edited by Hein"
        assert error["lockedBy"] == "Hein"  # the client reads data.error.lockedBy
        assert datetime.fromisoformat(error["lockedAt"]) >= first
    assert_error(fe.post(unlock, {"userName": "Louis Duplessis"}), 409, "CONFLICT")
    assert fe.get(DROPS, id=drop_id).json()["data"]["lockedBy"] == "Hein"

    # The person the proxy names (X-Acting-User) wins over a body's name: Hein never sees
    # his own lock as someone else's.
    mine = fe.post(lock, {"userName": "Louis Duplessis"}, acting="Hein")
    assert mine.status_code == 200 and mine.json()["data"]["lockedBy"] == "Hein"
    saved = fe.patch(drop_id, {"comment": "checked"}, acting="Hein")
    assert saved.status_code == 200, saved.text

    released = fe.post(unlock, {"userName": "Hein"})
    assert released.status_code == 200 and released.json()["data"]["unlocked"] is True
    assert fe.get(DROPS, id=drop_id).json()["data"]["lockedBy"] is None
    # Unlocking a drop nobody holds is no error.
    assert fe.post(unlock, {"userName": "Hein"}).json()["data"]["unlocked"] is True
    actors = {actor for actor, _action, _changes in history(fe, drop_id)}
    assert actors == {"Hein"}


def test_the_cards_save_is_accepted_as_it_sends_it_and_recorded_for_the_person(
    fe: FrontEnd,
) -> None:
    record(fe.store, post("DR74000001", minutes_ago(30)))
    drop_id = rid(fe.store, "DR74000001")
    steps = {s: s != "step_03_cable_entry_outside" for s in STEP_COLUMNS}
    card = {
        **steps,
        "comment": "Cable entry photo missing",
        "incomplete": True,
        "completed": False,
        "incorrectSteps": ["step_07_power_meter_reading"],
        "incorrectComments": {"step_07_power_meter_reading": "Reading not visible"},
    }
    saved = fe.patch(drop_id, card, acting="Hein")
    assert saved.status_code == 200, saved.text
    drop = fe.get(DROPS, id=drop_id).json()["data"]
    assert drop["incorrectComments"] == {"step_07_power_meter_reading": "Reading not visible"}
    assert drop["step_07_power_meter_reading"] is False  # an incorrect step is unticked
    assert drop["completedPhotos"] == 10
    assert [(a, action) for a, action, _ in history(fe, drop_id)] == [("Hein", "edit")]


# -- a corrected drop number ---------------------------------------------------------------


def test_a_corrected_drop_number_re_keys_the_review(fe: FrontEnd) -> None:
    wrong = post("DR75000001", minutes_ago(60), message_id="3EB0MISTYPED")
    record(fe.store, wrong, post("DR75000002", minutes_ago(50)))
    drop_id = rid(fe.store, "DR75000001")
    other = rid(fe.store, "DR75000002")
    before = fe.get(DROPS, id=drop_id).json()["data"]["version"]

    fixed = fe.patch(drop_id, {"dropNumber": " dr75000009 "}, acting="Hein")
    assert fixed.status_code == 200, fixed.text
    drop = fixed.json()["data"]
    assert drop["dropNumber"] == "DR75000009" and drop["id"] == drop_id
    assert drop["version"] == before + 1
    actor, action, changes = history(fe, drop_id)[0]
    assert (actor, action) == ("Hein", "renumber")
    assert changes["dropNumber"] == ["DR75000001", "DR75000009"]

    # Not a number of the project's pattern, or another drop's: nothing changes.
    bad = assert_error(fe.patch(drop_id, {"dropNumber": "DR123"}), 422, "VALIDATION_ERROR")
    assert "DR123" in bad["message"]
    taken = assert_error(fe.patch(drop_id, {"dropNumber": "DR75000002"}), 409, "CONFLICT")
    assert {d.get("dropId") for d in taken["details"]} == {drop_id, other}
    assert fe.get(DROPS, id=drop_id).json()["data"]["dropNumber"] == "DR75000009"

    # The monitor reading the mistyped post again (a re-scan) changes nothing; a post of
    # the corrected number is a resubmission of this review.
    record(fe.store, wrong)
    record(fe.store, post("DR75000009", minutes_ago(5)))
    numbers = {r["drop_number"]: str(r["id"]) for r in fe.store.reviews()}
    assert numbers == {"DR75000009": drop_id, "DR75000002": other}
    again = fe.get(DROPS, id=drop_id).json()["data"]
    assert again["resubmitted"] is True
    # Its first post is known under the new number (whom feedback answers, the team's
    # figures), and stays logged under the old one.
    with fe.store.begin() as conn:
        logged = conn.execute(
            sa.select(drop_submissions.c.drop_number, drop_submissions.c.kind).where(
                drop_submissions.c.message_id == "3EB0MISTYPED"
            )
        ).all()
    assert sorted(tuple(r) for r in logged) == [("DR75000001", "renumbered"), ("DR75000009", "new")]

    # A new post of the mistyped number is a drop of its own.
    record(fe.store, post("DR75000001", minutes_ago(1)))
    assert {r["drop_number"] for r in fe.store.reviews()} == {
        "DR75000001",
        "DR75000002",
        "DR75000009",
    }


# -- feedback and roles --------------------------------------------------------------------


def test_feedback_from_the_front_end_is_sent_for_the_acting_person(store: ReviewStore) -> None:
    add_people(store, ("reviewer",))
    token = create_token(store, "reviewer", "company dashboard", front_end=True)[1]
    record(store, post("DR76000001", minutes_ago(30)))
    drop_id = rid(store, "DR76000001")
    headers = {"Authorization": f"Bearer {token}", "X-Acting-User": "Hein"}
    body = {
        "dropId": drop_id,
        "dropNumber": "DR76000001",
        "message": "Redo step 3",
        "project": "Lawley",
    }
    with running_bridge() as bridge, TestClient(_app(store, bridge.url)) as client:
        send = "/api/wa-monitor-send-feedback"
        sent = client.post(send, json=body, headers=headers)
        assert sent.status_code == 200, sent.text
        answer = sent.json()
        assert answer["message"] == "Feedback sent to Lawley Activation 3 group"
        data = answer["data"]
        assert (data["dropNumber"], data["project"]) == ("DR76000001", "Lawley")
        assert data["group"] == "Lawley Activation 3 group" and data["recipient"]
        datetime.fromisoformat(data["sentAt"])
        assert [m["message"] for m in bridge.sent] == ["Redo step 3"]

        missing = {k: v for k, v in body.items() if k != "message"}
        assert_error(client.post(send, json=missing, headers=headers), 422, "VALIDATION_ERROR")
        unknown = {**body, "dropId": str(uuid.uuid4())}
        assert_error(client.post(send, json=unknown, headers=headers), 404, "NOT_FOUND")
        elsewhere = {**body, "project": "Velo Test"}  # the client's default for no project
        assert_error(client.post(send, json=elsewhere, headers=headers), 400, "BAD_REQUEST")
        assert len(bridge.sent) == 1, "refused requests send nothing"

        listed = client.get(DROPS, params={"id": drop_id}, headers=headers).json()["data"]
        assert listed["feedbackSent"] is not None
        users = client.post(
            "/api/wa-monitor-users",
            json={"username": "mallory", "password": "long-enough-1", "role": "admin"},
            headers=headers,
        )
        assert_error(users, 403, "FORBIDDEN")
    with store.begin() as conn:
        by = conn.execute(sa.select(feedback_outbox.c.requested_by)).scalars().all()
    assert by == ["Hein"]
