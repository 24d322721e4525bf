"""The few figures a health panel shows beside the readiness checks, each one index read.

It is polled: nothing here counts a big table. Feedback entries are counted only in the
statuses that wait (over ix_feedback_outbox_due), drops only over the last day (over
ix_qa_photo_reviews_message_day).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa

from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import feedback_outbox, qa_photo_reviews

# The outbox's statuses other than sent (feedback/outbox.py names them).
WAITING = ("pending", "sending", "failed", "unconfirmed")


@dataclass(frozen=True)
class RecentDrops:
    count: int  # drops first posted since the moment asked for
    latest: datetime | None  # the newest first post of any drop


def outbox_counts(store: ReviewStore) -> dict[str, int]:
    """Feedback entries per waiting status (every status present, 0 when none)."""
    t = feedback_outbox
    query = (
        sa.select(t.c.status, sa.func.count()).where(t.c.status.in_(WAITING)).group_by(t.c.status)
    )
    with store.read() as conn:
        found = {str(status): int(n) for status, n in conn.execute(query)}
    return {status: found.get(status, 0) for status in WAITING}


def recent_drops(store: ReviewStore, since: datetime) -> RecentDrops:
    """How many drops were first posted since `since`, and the newest first post."""
    r = qa_photo_reviews
    with store.read() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).where(r.c.whatsapp_message_date >= since)
        ).scalar()
        latest = conn.execute(sa.select(sa.func.max(r.c.whatsapp_message_date))).scalar()
    return RecentDrops(count=int(count or 0), latest=latest)
