"""What a batch of posts does to the reviews: decided from values alone."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta

from tests.helpers import SAST, VELO
from wa_monitor.core.reviews import ExistingReview, Post, plan_batch

T = datetime(2025, 11, 9, 23, 50, tzinfo=SAST)
NOW = datetime(2025, 11, 10, tzinfo=UTC)


def post(i: int, minutes: int, drop: str = "DR12345678", name: str = "") -> Post:
    return Post(
        VELO,
        f"M{i}",
        drop,
        "Velo Test",
        f"2782000000{i}",
        name or f"P{i}",
        T + timedelta(minutes=minutes),
    )


def test_a_new_drop_posted_twice_in_one_batch() -> None:
    plan = plan_batch([post(2, 30), post(1, 0)], {}, SAST, NOW)
    [row] = plan.inserts
    assert row["whatsapp_message_date"] == T
    assert str(row["review_date"]) == "2025-11-09"  # 23:50 SAST, although 21:50 UTC
    assert row["resubmitted"] is True
    assert row["user_name"] == "P2"  # the latest submitter
    assert row["comment"] == "🔄 Resubmitted 2025-11-10 00:20 SAST by P2"
    assert [s["kind"] for s in plan.submissions] == ["new", "resubmission"]


def test_a_late_older_post_keeps_the_latest_submitter_and_review_state() -> None:
    existing = ExistingReview(
        id=uuid.uuid4(),
        whatsapp_message_date=T + timedelta(hours=1),
        last_message_date=T + timedelta(hours=1),
        user_name="Latest",
        submitted_by="27820000009",
        incomplete=True,
        feedback_sent=NOW,
        comment=None,
    )
    plan = plan_batch([post(1, 0)], {("Velo Test", "DR12345678"): existing}, SAST, NOW)
    [update] = plan.updates
    assert update["whatsapp_message_date"] == T
    assert update["resubmitted"] is True
    assert (update["user_name"], update["incomplete"], update["feedback_sent"]) == (
        "Latest",
        True,
        NOW,
    )


def test_batches_in_any_order_reach_the_same_dates_and_flags() -> None:
    posts = [post(1, 0), post(2, 10), post(3, 20)]
    results = set()
    for order in itertools.permutations(posts):
        existing: dict[tuple[str, str], ExistingReview] = {}
        for p in order:
            plan = plan_batch([p], existing, SAST, NOW)
            row = (plan.inserts or plan.updates)[0]
            old = existing.get(p.key)
            existing[p.key] = ExistingReview(
                id=row.get("id") or row["_id"],
                whatsapp_message_date=row["whatsapp_message_date"],
                last_message_date=row["last_message_date"],
                user_name=row["user_name"],
                submitted_by=row["submitted_by"],
                incomplete=row["incomplete"],
                feedback_sent=row.get("feedback_sent", old.feedback_sent if old else None),
                comment=row["comment"],
            )
        final = existing[("Velo Test", "DR12345678")]
        results.add((final.whatsapp_message_date, final.last_message_date, final.submitted_by))
    assert results == {(T, T + timedelta(minutes=20), "27820000003")}


def photo(i: int, minutes: int, drop: str = "DR12345678") -> Post:
    """A photo whose caption names the drop (bridges that keep captions)."""
    text = post(i, minutes, drop)
    return Post(*[getattr(text, f) for f in Post.__slots__ if f != "media"], media=True)


def test_a_burst_of_captioned_photos_is_one_submission_not_resubmissions() -> None:
    burst = [photo(i, i) for i in range(1, 13)]
    plan = plan_batch(burst[::-1], {}, SAST, NOW)
    [row] = plan.inserts
    assert row["resubmitted"] is False
    assert row["whatsapp_message_date"] == T + timedelta(minutes=1)  # the earliest photo
    assert [(s["message_id"], s["kind"]) for s in plan.submissions] == [("M1", "new")]


def test_captioned_photos_of_a_known_drop_are_its_photos_not_posts() -> None:
    # With the drop's text post in the same batch: the text is the post.
    plan = plan_batch([photo(1, 0), post(2, 5), photo(3, 6)], {}, SAST, NOW)
    [row] = plan.inserts
    assert row["resubmitted"] is False and row["whatsapp_message_date"] == T + timedelta(minutes=5)
    assert [s["message_id"] for s in plan.submissions] == ["M2"]
    # With a review of the drop: nothing to write.
    existing = ExistingReview(
        id=uuid.uuid4(),
        whatsapp_message_date=T,
        last_message_date=T,
        user_name="P1",
        submitted_by="27820000001",
        incomplete=False,
        feedback_sent=None,
        comment=None,
    )
    plan = plan_batch([photo(4, 10)], {("Velo Test", "DR12345678"): existing}, SAST, NOW)
    assert (plan.inserts, plan.updates, plan.submissions, plan.events) == ([], [], [], [])


def test_the_first_post_of_a_drop_entered_by_hand_is_its_submission_not_a_resubmission() -> None:
    entered = ExistingReview(
        id=uuid.uuid4(),
        whatsapp_message_date=T - timedelta(hours=3),  # the client's install time
        last_message_date=None,  # no post yet
        user_name="Manual Entry",
        submitted_by=None,
        incomplete=True,
        feedback_sent=None,
        comment=None,
    )
    key = ("Velo Test", "DR12345678")
    [update] = plan_batch([post(1, 0)], {key: entered}, SAST, NOW).updates
    assert (update["resubmitted"], update["comment"], update["incomplete"]) == (False, None, False)
    assert (update["user_name"], update["last_message_date"]) == ("P1", T)
    assert update["whatsapp_message_date"] == T - timedelta(hours=3)

    twice = plan_batch([post(2, 30), post(1, 0)], {key: entered}, SAST, NOW)
    assert twice.updates[0]["resubmitted"] is True
    assert [s["kind"] for s in twice.submissions] == ["new", "resubmission"]
