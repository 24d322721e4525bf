"""Judging and feedback through the API on both backends: the steps' reasons, reasons in a
review and in its feedback, the feedback's history, the assignment it ends, mentions and
quotes where the bridge takes them, and the monitor's notes kept apart from the comment."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.fakebridge import NOT_CONNECTED, RESET, FakeBridge, running_bridge
from tests.integration.test_api_support import (
    LAWLEY_JID,
    PROJECTS_YAML,
    People,
    TestClient,
    add_people,
    minutes_ago,
    now,
    post,
    record,
    review,
    settings_for,
)
from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.core.review_edits import EditConflict
from wa_monitor.core.reviews import RESUBMISSION_MARK
from wa_monitor.core.steps import DEFAULT_REASONS, STEP_COLUMNS
from wa_monitor.feedback.outbox import BridgeClient, FeedbackSender
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import drop_submissions, qa_photo_reviews, review_edits
from wa_monitor.web import queries as q
from wa_monitor.web.app import create_app

POLE = "step_02_cable_from_pole"
BARCODE = "step_08_ont_barcode"
HOUSE = "step_01_house_photo"
INSTALLER = "27821234567"
# The projects file of the tests, with the ONT barcode's own label and reasons.
CUSTOM_YAML = PROJECTS_YAML.replace(
    "steps:\n",
    "steps:\n  step_08_ont_barcode:\n    label: ONT barcode sticker\n"
    "    reasons: [serial unreadable, sticker missing]\n",
)


@dataclass
class Desk:
    """The dashboard over one database, with its users, its bridge and a posted drop."""

    client: TestClient
    store: ReviewStore
    people: People
    bridge: FakeBridge
    drop_id: str

    def as_(self, role: str) -> dict[str, str]:
        return self.people.bearer(role)

    def patch(self, role: str = "reviewer", **body: Any) -> Any:
        return self.client.patch(
            f"/api/wa-monitor-drops/{self.drop_id}", json=body, headers=self.as_(role)
        )

    def drop(self) -> dict[str, Any]:
        answer = self.client.get(
            f"/api/wa-monitor-drops/{self.drop_id}", headers=self.as_("viewer")
        )
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()["data"]["drop"]
        return data

    def send(self, message: str, key: str) -> Any:
        body = {"dropId": self.drop_id, "dropNumber": "DR80000001", "message": message}
        headers = {**self.as_("reviewer"), "Idempotency-Key": key}
        return self.client.post("/api/wa-monitor-send-feedback", json=body, headers=headers)

    def history(self, *actions: str) -> list[dict[str, Any]]:
        t = review_edits
        review_id = review(self.store, "DR80000001")["id"]
        with self.store.read() as conn:
            rows = conn.execute(
                sa.select(t.c.actor, t.c.action, t.c.changes)
                .where(t.c.review_id == review_id)
                .order_by(t.c.id)
            ).all()
        return [dict(r._mapping) for r in rows if not actions or r.action in actions]


def open_desk(
    store: ReviewStore, bridge: FakeBridge, config: ProjectsConfig, client: BridgeClient
) -> Iterator[Desk]:
    people = add_people(store)
    record(store, post("DR80000001", minutes_ago(30), sender=INSTALLER, message_id="3EB0POST1"))
    app = create_app(
        settings_for(store.url, bridge.url), config, store, bridge=client, run_sender=False
    )
    with TestClient(app) as http:
        yield Desk(http, store, people, bridge, str(review(store, "DR80000001")["id"]))


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    with running_bridge() as b:
        yield b


@pytest.fixture
def desk(store: ReviewStore, bridge: FakeBridge) -> Iterator[Desk]:
    config = parse_config(CUSTOM_YAML, Path("projects.yaml"))
    yield from open_desk(store, bridge, config, BridgeClient(bridge.url, timeout=2))


def assign(store: ReviewStore, agent: str) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.update(qa_photo_reviews)
            .where(qa_photo_reviews.c.drop_number == "DR80000001")
            .values(assigned_agent=agent, assigned_at=now())
        )


# -- the steps ---------------------------------------------------------------------------


def test_the_steps_list_the_projects_files_labels_and_reasons_in_order(desk: Desk) -> None:
    answer = desk.client.get("/api/wa-monitor-steps", headers=desk.as_("viewer"))
    assert answer.status_code == 200, answer.text
    steps = answer.json()["data"]
    assert [s["step"] for s in steps] == list(STEP_COLUMNS)
    barcode = steps[STEP_COLUMNS.index(BARCODE)]
    assert barcode == {
        "step": BARCODE,
        "label": "ONT barcode sticker",
        "reasons": ["serial unreadable", "sticker missing"],
    }
    # A step the file names by label only keeps the standard reasons.
    ups = steps[STEP_COLUMNS.index("step_09_ups_serial")]
    assert ups["label"] == "UPS serial number"
    assert ups["reasons"] == list(DEFAULT_REASONS["step_09_ups_serial"])
    assert desk.client.get("/api/wa-monitor-steps").status_code == 401


# -- reasons in a review -----------------------------------------------------------------


def test_reasons_saved_by_a_patch_are_shown_and_make_the_feedback(desk: Desk) -> None:
    saved = desk.patch(
        incorrectSteps=[POLE],
        incorrectComments={POLE: "re-take from the street"},
        incorrectReasons={POLE: [" blurred", "Blurred", "wrong angle"]},
        version=desk.drop()["version"],
    )
    assert saved.status_code == 200, saved.text
    drop = desk.drop()
    assert drop["incorrectReasons"] == {POLE: ["blurred", "wrong angle"]}
    assert drop["incorrectSteps"] == [POLE] and drop[POLE] is False
    draft = desk.client.get(
        f"/api/wa-monitor-drops/{desk.drop_id}/feedback", headers=desk.as_("viewer")
    )
    assert "• 2. Cable from pole - blurred, wrong angle: re-take from the street" in (
        draft.json()["data"]["message"].splitlines()
    )
    audited = [e for e in desk.history("edit") if "incorrect_reasons" in e["changes"]]
    assert audited[0]["actor"] == "reviewer"
    assert audited[0]["changes"]["incorrect_reasons"] == [{}, {POLE: ["blurred", "wrong angle"]}]
    # The step is correct again: its reasons go with its flag.
    desk.patch(incorrectSteps=[])
    assert desk.drop()["incorrectReasons"] == {}


def test_reasons_a_reviewer_saves_are_stored_counted_with_the_steps_and_shown(
    desk: Desk,
) -> None:
    rid = uuid.UUID(desk.drop_id)
    read = desk.drop()
    saved = q.update_review(
        desk.store, rid, "reviewer", {"incorrect_reasons": {POLE: ["blurred ", "Blurred"]}}
    )
    assert saved is not None
    stored = review(desk.store, "DR80000001")
    assert stored["incorrect_reasons"] == {POLE: ["blurred"]}
    assert stored["incorrect_steps"] == [POLE]
    # The database counts the reasons as a change of the steps (the version trigger).
    assert stored["steps_version"] == stored["version"] > stored["comment_version"]
    drop = desk.drop()
    assert drop["incorrectReasons"] == {POLE: ["blurred"]} and drop[POLE] is False
    # An edit of the steps made on the copy read before the reasons is refused; one of
    # the comment is merged.
    with pytest.raises(EditConflict) as caught:
        q.update_review(desk.store, rid, "ben", {HOUSE: True}, version=read["version"])
    assert caught.value.groups == ["steps"]
    merged = q.update_review(desk.store, rid, "ben", {"comment": "ok"}, version=read["version"])
    assert merged is not None and merged.merged == ("steps",)
    assert review(desk.store, "DR80000001")["incorrect_reasons"] == {POLE: ["blurred"]}


def test_bad_reasons_are_refused_and_change_nothing(desk: Desk) -> None:
    before = desk.drop()
    too_long = desk.patch(incorrectReasons={POLE: ["x" * 81]})
    assert too_long.status_code == 422
    blank = desk.patch(incorrectReasons={POLE: ["   "]})
    assert blank.status_code == 422 and POLE in blank.text
    contradiction = desk.patch(incorrectSteps=[BARCODE], incorrectReasons={POLE: ["blurred"]})
    assert contradiction.status_code == 422
    assert f"incorrectReasons.{POLE}" in contradiction.json()["error"]["message"]
    after = desk.drop()
    assert after["version"] == before["version"] and after["incorrectReasons"] == {}


# -- the feedback's history and the assignment it ends -----------------------------------


def test_a_delivered_feedback_is_in_the_history_and_ends_the_assignment(desk: Desk) -> None:
    assign(desk.store, "reviewer")
    text = "DR80000001\nNEEDS CORRECTION\n\nMissing items:\n• 3. Cable entry outside"
    sent = desk.send(text, "key-history-1")
    assert sent.status_code == 200, sent.text
    outbox = sent.json()["data"]["outboxId"]
    queued = desk.history("feedback")
    assert queued == [
        {
            "actor": "reviewer",
            "action": "feedback",
            "changes": {
                "message": text,
                "recipient": LAWLEY_JID,
                "group": "Lawley Activation 3 group",
                "outbox": outbox,
                "requestKey": "key-history-1",
            },
        }
    ]
    assert [e["changes"]["outboxId"] for e in desk.history("feedback_sent")] == [outbox]
    drop = desk.drop()
    assert drop["assignedAgent"] is None and drop["assignedAt"] is None
    assert drop["reviewState"] == "needs_correction"
    # GET shows the history with the text.
    edits = desk.client.get(
        f"/api/wa-monitor-drops/{desk.drop_id}", headers=desk.as_("viewer")
    ).json()["data"]["edits"]
    assert any(e["action"] == "feedback" and e["changes"]["message"] == text for e in edits)


def test_a_feedback_marked_as_sent_ends_the_assignment_too(desk: Desk) -> None:
    desk.bridge.answer(RESET)
    sent = desk.send(
        "DR80000001\nNEEDS CORRECTION\n\nMissing items:\n• 1. House photo", "key-marked-1"
    )
    assert sent.json()["data"]["status"] == "unconfirmed", sent.text
    assign(desk.store, "reviewer")
    assert desk.drop()["assignedAgent"] == "reviewer"  # still waits: nobody knows it arrived
    outbox = sent.json()["data"]["outboxId"]
    marked = desk.client.post(
        f"/api/wa-monitor-feedback-outbox/{outbox}/mark-sent", headers=desk.as_("reviewer")
    )
    assert marked.status_code == 200, marked.text
    drop = desk.drop()
    assert drop["assignedAgent"] is None and drop["feedbackSent"] is not None
    assert [e["actor"] for e in desk.history("feedback_marked_sent")] == ["reviewer"]


def test_a_feedback_that_did_not_go_out_keeps_the_assignment(desk: Desk) -> None:
    assign(desk.store, "reviewer")
    desk.bridge.answer(NOT_CONNECTED)
    assert desk.send("DR80000001\nAll items complete! ✅", "key-down-1").status_code == 202
    assert desk.drop()["assignedAgent"] == "reviewer"
    assert len(desk.history("feedback")) == 1  # asked for, in the history already


# -- mentions and quotes -----------------------------------------------------------------


def test_the_plain_bridge_gets_only_the_recipient_and_the_text(desk: Desk) -> None:
    assert desk.send("DR80000001\nAll items complete! ✅", "key-plain-1").status_code == 200
    assert desk.bridge.sent == [
        {"recipient": LAWLEY_JID, "message": "DR80000001\nAll items complete! ✅"}
    ]


def test_a_gateway_taking_replies_mentions_the_installer_and_quotes_the_latest_post(
    store: ReviewStore, bridge: FakeBridge
) -> None:
    config = parse_config(CUSTOM_YAML, Path("projects.yaml"))
    client = BridgeClient(bridge.url, timeout=2, replies=True)
    for desk in open_desk(store, bridge, config, client):
        record(
            store,
            post("DR80000001", minutes_ago(5), sender="27825550000", message_id="3EB0POST2"),
        )
        text = "DR80000001\nAll items complete! ✅"
        assert desk.send(text, "key-replies-1").status_code == 200
        assert bridge.sent == [
            {
                "recipient": LAWLEY_JID,
                "message": text,
                "mentions": ["27825550000@s.whatsapp.net"],
                "reply_to": "3EB0POST2",
                "reply_to_sender": "27825550000@s.whatsapp.net",
            }
        ]
        # The background sender does the same for an entry it delivers.
        bridge.answer(NOT_CONNECTED)
        assert desk.send(text + " (2)", "key-replies-2").status_code == 202
        FeedbackSender(store, client).deliver_due(now() + timedelta(minutes=1))
        assert bridge.sent[-1]["reply_to"] == "3EB0POST2"
        assert bridge.sent[-1]["message"] == text + " (2)"


def test_without_a_recorded_post_the_submitter_is_mentioned_and_nothing_quoted(
    store: ReviewStore, bridge: FakeBridge
) -> None:
    config = parse_config(CUSTOM_YAML, Path("projects.yaml"))
    client = BridgeClient(bridge.url, timeout=2, replies=True)
    for desk in open_desk(store, bridge, config, client):
        with store.begin() as conn:  # a drop recorded before posts were kept
            conn.execute(sa.delete(drop_submissions))
        assert desk.send("DR80000001\nAll items complete! ✅", "key-replies-3").status_code == 200
        assert bridge.sent[0]["mentions"] == [f"{INSTALLER}@s.whatsapp.net"]
        assert "reply_to" not in bridge.sent[0]


# -- the monitor's notes -----------------------------------------------------------------


def test_the_monitors_resubmission_notes_are_apart_from_the_reviewers_comment(
    desk: Desk,
) -> None:
    assert desk.patch(comment="Pole photo is blurred").status_code == 200
    record(desk.store, post("DR80000001", minutes_ago(5), message_id="3EB0POST2"))
    drop = desk.drop()
    assert drop["reviewerComment"] == "Pole photo is blurred"
    assert len(drop["monitorNotes"]) == 1
    assert drop["monitorNotes"][0].startswith(RESUBMISSION_MARK)
    assert drop["comment"] == f"Pole photo is blurred\n{drop['monitorNotes'][0]}"
    # The reviewer edits their text only: the monitor's line stays.
    assert desk.patch(comment="Pole photo is fine now").status_code == 200
    drop = desk.drop()
    assert drop["reviewerComment"] == "Pole photo is fine now"
    assert drop["comment"] == f"Pole photo is fine now\n{drop['monitorNotes'][0]}"
