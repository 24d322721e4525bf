"""A reviewer's feedback request, without the web layer: checked, queued, sent (both backends)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.fakebridge import BAD_REQUEST, FakeBridge, running_bridge
from tests.integration.test_api_support import (
    LAWLEY_JID,
    minutes_ago,
    post,
    projects_config,
    record,
    review,
)
from wa_monitor.feedback import outbox as fb
from wa_monitor.store.review_store import ReviewStore

MESSAGE = "DR80000002\nAll items complete! ✅"


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    with running_bridge() as b:
        yield b


@pytest.fixture
def sender(store: ReviewStore, bridge: FakeBridge) -> Iterator[fb.FeedbackSender]:
    sender = fb.FeedbackSender(store, fb.BridgeClient(bridge.url, timeout=0.5))
    yield sender
    sender.close()


@pytest.fixture
def asked(store: ReviewStore) -> fb.FeedbackRequest:
    record(store, post("DR80000002", minutes_ago(5)))
    return fb.FeedbackRequest(
        review_id=review(store, "DR80000002")["id"],
        drop_number="dr 8000 0002",  # as a reviewer may type it
        message=MESSAGE,
        requested_by="reviewer",
    )


def ask(store: ReviewStore, sender: fb.FeedbackSender, request: fb.FeedbackRequest) -> fb.Delivery:
    async def run() -> fb.Delivery:
        try:
            return await fb.request_feedback(store, sender, projects_config(), request)
        finally:
            await sender.client.aclose()

    return asyncio.run(run())


def test_a_request_is_sent_to_the_projects_group(
    store: ReviewStore, sender: fb.FeedbackSender, bridge: FakeBridge, asked: fb.FeedbackRequest
) -> None:
    done = ask(store, sender, replace(asked, request_key="key-domain-1"))
    assert done.entry.status == fb.SENT and done.entry.request_key == "key-domain-1"
    assert done.group == "Lawley Activation 3 group"
    assert bridge.sent == [{"recipient": LAWLEY_JID, "message": MESSAGE}]
    assert review(store, "DR80000002")["feedback_count"] == 1


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"drop_number": "DR80000003"}, "is not the number of drop"),
        ({"project": "Mohadin"}, "belongs to project Lawley"),
        ({"idempotency_key": "key-header-1", "request_key": "key-body-1"}, "differ"),
    ],
)
def test_a_contradicting_request_is_refused_before_anything_is_queued(
    store: ReviewStore,
    sender: fb.FeedbackSender,
    bridge: FakeBridge,
    asked: fb.FeedbackRequest,
    fields: dict[str, Any],
    words: str,
) -> None:
    with pytest.raises(fb.FeedbackRefused, match=words):
        ask(store, sender, replace(asked, **fields))
    assert fb.entries_for(store, asked.review_id) == []
    assert bridge.requests == []


def test_a_request_for_no_review_is_refused(
    store: ReviewStore, sender: fb.FeedbackSender, asked: fb.FeedbackRequest
) -> None:
    missing = uuid.uuid4()
    with pytest.raises(fb.NoSuchReview, match=str(missing)):
        ask(store, sender, replace(asked, review_id=missing))


def test_the_same_message_moments_later_names_the_first_entry_and_its_group(
    store: ReviewStore, sender: fb.FeedbackSender, asked: fb.FeedbackRequest
) -> None:
    first = ask(store, sender, asked)
    with pytest.raises(fb.DuplicateFeedback) as caught:
        ask(store, sender, asked)
    assert caught.value.entry.id == first.entry.id
    assert caught.value.group == "Lawley Activation 3 group"


def test_a_reviewers_decision_needs_the_entry_in_the_state_it_names(
    store: ReviewStore, sender: fb.FeedbackSender, bridge: FakeBridge, asked: fb.FeedbackRequest
) -> None:
    sent = ask(store, sender, asked).entry
    for decision in fb.Decision:
        assert asyncio.run(fb.decide(store, sender, decision, sent.id, "ben")) is None
    assert len(bridge.requests) == 1


def test_a_failed_feedback_marked_as_sent_is_not_posted_again(
    store: ReviewStore, sender: fb.FeedbackSender, bridge: FakeBridge, asked: fb.FeedbackRequest
) -> None:
    bridge.answer(BAD_REQUEST)
    failed = ask(store, sender, asked).entry
    assert failed.status == fb.FAILED
    marked = asyncio.run(fb.decide(store, sender, fb.Decision.MARK_SENT, failed.id, "ben"))
    assert marked is not None and marked.status == fb.SENT
    assert len(bridge.requests) == 1
    assert review(store, "DR80000002")["feedback_count"] == 1
