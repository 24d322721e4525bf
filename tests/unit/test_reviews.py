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
