"""Feedback to WhatsApp against a real HTTP server playing the bridge (both backends)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from tests.fakebridge import (
    BAD_REQUEST,
    HELD,
    NOT_CONNECTED,
    RESET,
    Answer,
    FakeBridge,
    closed_port_url,
    running_bridge,
)
from tests.helpers import wait_until
from tests.integration.test_api_support import (
    LAWLEY_JID,
    MOHADIN_JID,
    PROJECTS_YAML,
    LiveServer,
    People,
    TestClient,
    add_people,
    minutes_ago,
    now,
    post,
    projects_config,
    record,
    review,
    settings_for,
)
from wa_monitor.cli.main import main
from wa_monitor.core.config import load_config
from wa_monitor.feedback.outbox import (
    CLAIM_SECONDS,
    BridgeClient,
    FeedbackSender,
    enqueue,
    entries_for,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app

MESSAGE = "DR80000001\nNEEDS CORRECTION\n\nMissing items:\n• 3. Cable entry outside"


@dataclass
class World:
    client: TestClient
    store: ReviewStore
    people: People
    bridge: FakeBridge
    drop_id: str

    def send(self, key: str | None = None, message: str = MESSAGE, **body: Any) -> Any:
        headers = self.people.bearer("reviewer")
        if key:
            headers["Idempotency-Key"] = key
        payload = {"dropId": self.drop_id, "dropNumber": "DR80000001", "message": message, **body}
        return self.client.post("/api/wa-monitor-send-feedback", json=payload, headers=headers)


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    with running_bridge() as b:
        yield b


def make_world(
    store: ReviewStore,
    bridge: FakeBridge,
    bridge_url: str | None = None,
    *,
    add: bool = True,
    **app_options: Any,
) -> Iterator[World]:
    if add:
        people = add_people(store)
        record(store, post("DR80000001", minutes_ago(10)))
    else:  # a second dashboard over the same database
        roles = ("viewer", "reviewer", "admin")
        people = People({role: create_token(store, role, "again")[1] for role in roles})
    options: dict[str, Any] = {"run_sender": False, **app_options}
    url = bridge_url or bridge.url
    app = create_app(
        settings_for(store.url, url),
        projects_config(),
        store,
        bridge=BridgeClient(url, timeout=0.5),
        **options,
    )
    with TestClient(app) as client:
        yield World(client, store, people, bridge, str(review(store, "DR80000001")["id"]))


@pytest.fixture
def world(store: ReviewStore, bridge: FakeBridge) -> Iterator[World]:
    yield from make_world(store, bridge)


def test_feedback_is_posted_to_the_projects_group_and_marks_the_drop(world: World) -> None:
    response = world.send("key-success-1")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    data = body["data"]
    assert data["status"] == "sent" and data["sentAt"]
    assert data["dropNumber"] == "DR80000001" and data["project"] == "Lawley"
    assert data["recipient"] == LAWLEY_JID and data["group"] == "Lawley Activation 3 group"
    assert world.bridge.sent == [{"recipient": LAWLEY_JID, "message": MESSAGE}]
    stored = review(world.store, "DR80000001")
    assert stored["feedback_sent"] is not None and stored["feedback_count"] == 1
    listed = world.client.get("/api/wa-monitor-drops", headers=world.people.bearer("viewer"))
    drop = listed.json()["data"][0]
    assert drop["feedback"]["status"] == "sent" and drop["feedbackSentLocal"].endswith("SAST")
    assert listed.json()["summary"]["feedbackSent"] == 1


def test_a_retried_request_never_sends_twice(world: World) -> None:
    first = world.send("key-retry-same")
    again = world.send("key-retry-same")
    assert first.status_code == again.status_code == 200
    assert first.json()["data"]["outboxId"] == again.json()["data"]["outboxId"]
    in_body = world.send(None, requestKey="key-retry-same")
    assert in_body.json()["data"]["outboxId"] == first.json()["data"]["outboxId"]
    assert len(world.bridge.sent) == 1
    assert review(world.store, "DR80000001")["feedback_count"] == 1
    reused = world.send("key-retry-same", message="a different text")
    assert reused.status_code == 409
    assert reused.json()["error"]["code"] == "CONFLICT"
    assert len(world.bridge.sent) == 1


def test_bridge_not_connected_keeps_the_feedback_pending_then_the_sender_delivers(
    world: World,
) -> None:
    world.bridge.answer(NOT_CONNECTED)
    response = world.send("key-not-connected")
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data["status"] == "pending" and data["sentAt"] is None
    assert "Not connected to WhatsApp" in data["lastError"]
    assert "queued" in response.json()["message"]
    assert review(world.store, "DR80000001")["feedback_sent"] is None
    # The same request retried by the browser does not post a second message meanwhile.
    assert world.send("key-not-connected").status_code == 202
    assert len(world.bridge.sent) == 1
    # The bridge is back: the sender delivers once the backoff has passed, not before.
    sender = FeedbackSender(world.store, BridgeClient(world.bridge.url))
    assert sender.deliver_due() == 0
    assert sender.deliver_due(now() + timedelta(minutes=1)) == 1
    entry = entries_for(world.store, review(world.store, "DR80000001")["id"])[0]
    assert entry.status == "sent" and entry.attempts == 2 and entry.last_error is None
    assert review(world.store, "DR80000001")["feedback_sent"] is not None
    assert len(world.bridge.sent) == 2  # the failed attempt and the delivered one


def test_a_bad_request_fails_at_once_with_the_bridges_reason(world: World) -> None:
    world.bridge.answer(BAD_REQUEST)
    response = world.send("key-bad-request")
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["code"] == "BRIDGE_ERROR"
    assert "HTTP 400: Invalid request format" in error["message"]
    assert error["details"]["status"] == "failed"
    assert review(world.store, "DR80000001")["feedback_sent"] is None
    # Not retried by the sender: it would fail the same way.
    sender = FeedbackSender(world.store, BridgeClient(world.bridge.url), backoff=(0,))
    assert sender.deliver_due() == 0
    # A reviewer may queue it again after fixing the cause.
    outbox_id = error["details"]["outboxId"]
    retried = world.client.post(
        f"/api/wa-monitor-feedback-outbox/{outbox_id}/retry",
        headers=world.people.bearer("reviewer"),
    )
    assert retried.status_code == 200 and retried.json()["data"]["status"] == "sent"
    missing = world.client.post(
        "/api/wa-monitor-feedback-outbox/999999/retry", headers=world.people.bearer("reviewer")
    )
    assert missing.status_code == 404


def test_a_bridge_answering_after_the_timeout_gets_the_message_once(world: World) -> None:
    # The bridge sends the message but answers after the client gave up waiting.
    world.bridge.answer(HELD)
    response = world.send("key-slow")
    assert response.status_code == 202, response.text
    data = response.json()["data"]
    assert data["status"] == "unconfirmed" and data["sentAt"] is None
    assert "did not answer within 0.5s" in data["lastError"]
    assert response.json()["message"].startswith("Delivery unconfirmed")
    assert "check the group" in response.json()["message"]
    world.bridge.release()
    world.bridge.wait_for(requests=1, holding=0)
    # Nothing sends it again by itself: not the sender however late, not the browser
    # retrying its request, not the retry of failed feedback.
    sender = FeedbackSender(world.store, BridgeClient(world.bridge.url), backoff=(0,))
    assert sender.deliver_due(now() + timedelta(days=1)) == 0
    assert world.send("key-slow").json()["data"]["status"] == "unconfirmed"
    retried = world.client.post(
        f"/api/wa-monitor-feedback-outbox/{data['outboxId']}/retry",
        headers=world.people.bearer("reviewer"),
    )
    assert retried.status_code == 404
    assert len(world.bridge.sent) == 1
    assert review(world.store, "DR80000001")["feedback_sent"] is None
    detail = world.client.get(
        f"/api/wa-monitor-drops/{world.drop_id}", headers=world.people.bearer("viewer")
    ).json()["data"]
    assert detail["drop"]["feedback"]["status"] == "unconfirmed"
    assert detail["edits"][0]["action"] == "feedback_unconfirmed"


def _unconfirmed(world: World, key: str, message: str = MESSAGE) -> int:
    world.bridge.answer(RESET)
    response = world.send(key, message)
    assert response.json()["data"]["status"] == "unconfirmed", response.text
    return int(response.json()["data"]["outboxId"])


def test_send_again_and_mark_as_sent_are_a_reviewers_recorded_decisions(world: World) -> None:
    first = _unconfirmed(world, "key-unconfirmed-1")
    assert "connection to the bridge broke" in entries_for(world.store, _rid(world))[0].last_error
    outbox = "/api/wa-monitor-feedback-outbox"
    for action in ("send-again", "mark-sent"):
        viewer = world.client.post(
            f"{outbox}/{first}/{action}", headers=world.people.bearer("viewer")
        )
        assert viewer.status_code == 403
        assert world.client.post(f"{outbox}/{first}/{action}").status_code == 401
    again = world.client.post(
        f"{outbox}/{first}/send-again", headers=world.people.bearer("reviewer")
    )
    assert again.status_code == 200, again.text
    assert again.json()["data"]["status"] == "sent"
    assert len(world.bridge.sent) == 2  # the reviewer's explicit decision
    # Only an unconfirmed entry can be sent again or marked: not a sent one.
    for action in ("send-again", "mark-sent"):
        settled = world.client.post(
            f"{outbox}/{first}/{action}", headers=world.people.bearer("reviewer")
        )
        assert settled.status_code == 404
    # The reviewer saw the second one in the group: marked, nothing posted.
    second = _unconfirmed(world, "key-unconfirmed-2", MESSAGE + "\n(second)")
    marked = world.client.post(
        f"{outbox}/{second}/mark-sent", headers=world.people.bearer("reviewer")
    )
    assert marked.status_code == 200 and marked.json()["data"]["status"] == "sent"
    assert len(world.bridge.sent) == 3  # the reset attempt, not a fourth
    stored = review(world.store, "DR80000001")
    assert stored["feedback_sent"] is not None and stored["feedback_count"] == 2
    edits = world.client.get(
        f"/api/wa-monitor-drops/{world.drop_id}", headers=world.people.bearer("viewer")
    ).json()["data"]["edits"]
    decisions = [(e["action"], e["actor"]) for e in edits if e["action"].startswith("feedback_")]
    assert ("feedback_send_again", "reviewer") in decisions
    assert ("feedback_marked_sent", "reviewer") in decisions
    assert [e for e in decisions if e[0] == "feedback_unconfirmed"] == [
        ("feedback_unconfirmed", "reviewer")
    ] * 2


def _rid(world: World) -> Any:
    return review(world.store, "DR80000001")["id"]


def test_a_send_cut_short_by_a_stopped_dashboard_is_unconfirmed_never_resent(
    store: ReviewStore, bridge: FakeBridge
) -> None:
    # A dashboard claimed the entry, posted it, and died before recording the answer.
    for world in make_world(store, bridge):
        entry = enqueue(
            store,
            review_id=_rid(world),
            drop_number="DR80000001",
            project="Lawley",
            recipient=LAWLEY_JID,
            message=MESSAGE,
            request_key="key-crashed",
            requested_by="reviewer",
        )[0]
        claimed = world.client.app.state.sender._claim(entry.id, now())  # type: ignore[attr-defined]
        assert claimed is not None and claimed.status == "sending"
    record(store, post("DR80000002", minutes_ago(5)))
    # The next dashboard, with its background sender running.
    for world in make_world(store, bridge, run_sender=True, sender_interval=0.05, add=False):
        crashed = next(e for e in entries_for(store, _rid(world)) if e.id == entry.id)
        assert crashed.status == "unconfirmed"
        assert "stopped before the bridge answered" in (crashed.last_error or "")
        # A pending entry queued after it is delivered by the sender: it made passes,
        # and left the unconfirmed one alone.
        other = review(store, "DR80000002")["id"]
        enqueue(
            store,
            review_id=other,
            drop_number="DR80000002",
            project="Lawley",
            recipient=LAWLEY_JID,
            message="DR80000002\nAll items complete! ✅",
            request_key="key-after-crash",
            requested_by="reviewer",
        )
        wait_until(lambda: review(store, "DR80000002")["feedback_sent"] is not None)
        assert [m["message"] for m in bridge.sent] == ["DR80000002\nAll items complete! ✅"]
        assert entries_for(store, _rid(world))[0].status == "unconfirmed"


def test_an_abandoned_claim_becomes_unconfirmed_after_its_lease(world: World) -> None:
    entry = enqueue(
        world.store,
        review_id=_rid(world),
        drop_number="DR80000001",
        project="Lawley",
        recipient=LAWLEY_JID,
        message=MESSAGE,
        request_key="key-lease",
        requested_by="reviewer",
    )[0]
    sender = FeedbackSender(world.store, BridgeClient(world.bridge.url))
    assert sender._claim(entry.id, now()) is not None
    assert sender.recover() == 0  # still within its lease: someone may be sending it
    assert sender.deliver_due(now() + timedelta(seconds=CLAIM_SECONDS + 1)) == 0
    assert entries_for(world.store, _rid(world))[0].status == "unconfirmed"
    assert world.bridge.sent == []


def test_retries_give_up_after_the_backoff_and_report_failed(world: World) -> None:
    world.bridge.default = NOT_CONNECTED
    assert world.send("key-give-up").status_code == 202
    sender = FeedbackSender(world.store, BridgeClient(world.bridge.url), backoff=(0, 0))
    later = now() + timedelta(minutes=1)
    sender.deliver_due(later)
    sender.deliver_due(later)
    entry = entries_for(world.store, review(world.store, "DR80000001")["id"])[0]
    assert entry.status == "failed" and entry.attempts == 3
    assert entry.last_error == "HTTP 500: Not connected to WhatsApp"
    outbox = world.client.get(
        f"/api/wa-monitor-feedback-outbox?dropId={world.drop_id}",
        headers=world.people.bearer("viewer"),
    ).json()["data"]
    assert [(e["status"], e["attempts"]) for e in outbox] == [("failed", 3)]
    detail = world.client.get(
        f"/api/wa-monitor-drops/{world.drop_id}", headers=world.people.bearer("viewer")
    ).json()["data"]
    assert [e["action"] for e in detail["edits"]][:2] == [
        "feedback_failed",
        "feedback_retry_scheduled",
    ]


def test_the_servers_background_sender_delivers_when_the_bridge_comes_back(
    store: ReviewStore, bridge: FakeBridge
) -> None:
    bridge.answer(NOT_CONNECTED)
    for world in make_world(store, bridge, run_sender=True, sender_interval=0.05, backoff=(0.1,)):
        assert world.send("key-background").status_code == 202
        wait_until(lambda: review(store, "DR80000001")["feedback_sent"] is not None)
        assert len(bridge.sent) == 2
        listed = world.client.get("/api/wa-monitor-drops", headers=world.people.bearer("viewer"))
        assert listed.json()["data"][0]["feedback"]["status"] == "sent"


def test_the_bridge_being_down_is_not_an_error_for_the_reviewer(
    store: ReviewStore, bridge: FakeBridge
) -> None:
    for world in make_world(store, bridge, bridge_url=closed_port_url()):
        response = world.send("key-bridge-down")
        assert response.status_code == 202
        assert "cannot reach the bridge" in response.json()["data"]["lastError"]


def test_feedback_requests_are_checked_before_anything_is_sent(world: World) -> None:
    wrong_number = world.send("key-check-1", dropNumber="DR99999999")
    assert wrong_number.status_code == 400
    wrong_project = world.send("key-check-2", project="Mohadin")
    assert wrong_project.status_code == 400
    empty = world.send("key-check-3", message="")
    assert empty.status_code == 422
    no_drop = world.send(
        "key-check-4", dropId="00000000-0000-0000-0000-000000000000", dropNumber="DR80000001"
    )
    assert no_drop.status_code == 404
    short_key = world.send("k")
    assert short_key.status_code == 422
    viewer = world.client.post(
        "/api/wa-monitor-send-feedback",
        json={"dropId": world.drop_id, "dropNumber": "DR80000001", "message": MESSAGE},
        headers=world.people.bearer("viewer"),
    )
    assert viewer.status_code == 403
    assert world.bridge.sent == []


def test_a_drop_of_an_unconfigured_project_cannot_be_sent(world: World) -> None:
    record(world.store, post("DR80000009", minutes_ago(5), project="Mohadin"))
    # The projects file no longer lists Mohadin.
    config = projects_config()
    world.client.app.state.config = type(config)(  # type: ignore[attr-defined]
        path=config.path,
        timezone=config.timezone,
        drop_pattern=config.drop_pattern,
        projects=tuple(p for p in config.projects if p.name != "Mohadin"),
        step_labels=config.step_labels,
    )
    response = world.client.post(
        "/api/wa-monitor-send-feedback",
        json={
            "dropId": str(review(world.store, "DR80000009", "Mohadin")["id"]),
            "dropNumber": "DR80000009",
            "message": "x",
        },
        headers=world.people.bearer("reviewer"),
    )
    assert response.status_code == 400
    assert (
        "No WhatsApp group is configured for project Mohadin" in response.json()["error"]["message"]
    )
    assert world.bridge.sent == []


def test_a_200_without_success_is_not_taken_as_sent(world: World) -> None:
    world.bridge.answer(Answer(200, '{"success": false, "message": "Failed to send"}'))
    response = world.send("key-200-false")
    assert response.status_code == 202
    assert response.json()["data"]["lastError"] == "Failed to send"
    assert review(world.store, "DR80000001")["feedback_sent"] is None


def test_identical_sends_without_a_key_reach_the_group_once(
    store: ReviewStore, bridge: FakeBridge
) -> None:
    """8 reviewers' tabs (or the company front end, which sends no key) at the same instant."""
    people = add_people(store)
    record(store, post("DR80000001", minutes_ago(10)))
    drop = str(review(store, "DR80000001")["id"])
    app = create_app(
        settings_for(store.url, bridge.url),
        projects_config(),
        store,
        bridge=BridgeClient(bridge.url, timeout=5),
        run_sender=False,
    )
    server = LiveServer(app).start()
    payload = {"dropId": drop, "dropNumber": "DR80000001", "message": MESSAGE}
    start = threading.Barrier(8)

    def send(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, headers=people.bearer("reviewer")) as c:
            start.wait()
            return c.post("/api/wa-monitor-send-feedback", json=payload, timeout=30)

    try:
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, range(8)))
        assert sorted(a.status_code for a in answers) == [200] + [409] * 7, [
            a.text for a in answers
        ]
        assert len(bridge.sent) == 1
        sent = next(a for a in answers if a.status_code == 200).json()["data"]
        for refused in (a.json() for a in answers if a.status_code == 409):
            assert refused["error"]["code"] == "CONFLICT"
            assert "resend" in refused["error"]["message"]
            assert refused["error"]["details"]["outboxId"] == sent["outboxId"]
        # A reviewer's own new key changes nothing: the same text moments later is refused.
        keyed = httpx.post(
            f"{server.url}/api/wa-monitor-send-feedback",
            json=payload,
            headers={**people.bearer("reviewer"), "Idempotency-Key": "key-new-tab-1"},
        )
        assert keyed.status_code == 409
        assert "was sent to the group at" in keyed.json()["error"]["message"]
        # Asked for, it is posted again.
        again = httpx.post(
            f"{server.url}/api/wa-monitor-send-feedback",
            json={**payload, "resend": True},
            headers=people.bearer("reviewer"),
        )
        assert again.status_code == 200 and again.json()["data"]["outboxId"] != sent["outboxId"]
        assert len(bridge.sent) == 2
        assert review(store, "DR80000001")["feedback_count"] == 2
    finally:
        server.stop()


def test_a_failed_feedback_does_not_block_sending_the_same_text(world: World) -> None:
    world.bridge.answer(BAD_REQUEST)
    assert world.send("key-refused-1").status_code == 502
    assert world.send("key-refused-2").status_code == 200
    assert len(world.bridge.sent) == 2


def test_the_dashboard_follows_projects_added_while_it_runs(
    store: ReviewStore, bridge: FakeBridge, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """`wa-monitor projects add` while `serve` runs: feedback reaches the new group."""
    path = tmp_path / "projects.yaml"
    path.write_text(PROJECTS_YAML.split("  - name: Mohadin")[0])
    people = add_people(store)
    record(store, post("DR80000009", minutes_ago(5), project="Mohadin"))
    drop = str(review(store, "DR80000009", "Mohadin")["id"])
    body = {"dropId": drop, "dropNumber": "DR80000009", "message": "DR80000009\nAll items ok"}
    app = create_app(
        settings_for(store.url, bridge.url),
        load_config(path),
        store,
        bridge=BridgeClient(bridge.url, timeout=5),
        run_sender=False,
    )
    caplog.set_level(logging.INFO, "wa_monitor")
    with TestClient(app) as client:

        def send(key: str) -> Any:
            headers = {**people.bearer("reviewer"), "Idempotency-Key": key}
            body["message"] += "."
            return client.post("/api/wa-monitor-send-feedback", json=body, headers=headers)

        def recipient() -> Any:
            draft = client.get(
                f"/api/wa-monitor-drops/{drop}/feedback", headers=people.bearer("viewer")
            )
            return draft.json()["data"]["recipient"]

        refused = send("key-before-add")
        assert refused.status_code == 400 and "No WhatsApp group" in refused.text
        added = CliRunner().invoke(
            main,
            [
                *("--config", str(path), "projects", "add", "--name", "Mohadin"),
                *("--group-jid", MOHADIN_JID, "--description", "Mohadin Activations group"),
            ],
            env={"DATABASE_URL": store.url, "WA_MONITOR_CONFIG": None},
            catch_exceptions=False,
        )
        assert added.exit_code == 0, added.output
        wait_until(lambda: recipient() == MOHADIN_JID)
        sent = send("key-after-add")
        assert sent.status_code == 200, sent.text
        assert sent.json()["data"]["group"] == "Mohadin Activations group"
        assert bridge.sent[-1]["recipient"] == MOHADIN_JID
        # A bad edit is refused with one line; the last good config keeps serving.
        path.write_text(path.read_text() + "  - name: [broken\n")
        wait_until(
            lambda: any(
                r.levelno == logging.ERROR and str(path) in r.getMessage() for r in caplog.records
            )
        )
        assert recipient() == MOHADIN_JID
        assert send("key-after-bad-edit").status_code == 200
        assert len(bridge.sent) == 2
    assert "reloaded by the dashboard: 2 project(s), added Mohadin" in caplog.text
