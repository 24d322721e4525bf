"""The monitor's records in the review database: heartbeats and the feedback outbox depth.

The service writes its heartbeat here; `status`, `/readyz`, `doctor`, the metrics
endpoint and the environment guard read it. Only SQL over the review store: the
checks that judge these rows are in `health`.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import feedback_outbox, monitor_heartbeats


def record_heartbeat(
    store: ReviewStore,
    instance: str,
    *,
    started_at: datetime,
    counters: Mapping[str, Any],
    status: Mapping[str, Any],
    now: datetime | None = None,
) -> None:
    """Upsert this monitor's heartbeat row."""
    t = monitor_heartbeats
    now = now or datetime.now(UTC)
    values = {
        "host": socket.gethostname()[:200],
        "pid": os.getpid(),
        "started_at": started_at,
        "beat_at": now,
        "counters": dict(counters),
        "status": dict(status),
    }
    with store.begin() as conn:
        # One upsert, not update-then-insert: two monitors of one instance (a restart while
        # the old process drains) beating at once must not collide on the primary key.
        dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
        stmt = dialect.insert(t).values(instance=instance, **values)
        conn.execute(stmt.on_conflict_do_update(index_elements=[t.c.instance], set_=values))


def read_heartbeats(store: ReviewStore) -> list[dict[str, Any]]:
    """Every monitor's latest heartbeat, freshest first."""
    t = monitor_heartbeats
    with store.begin() as conn:
        rows = conn.execute(sa.select(t).order_by(t.c.beat_at.desc())).mappings().all()
    return [dict(r) for r in rows]


def outbox_depth(store: ReviewStore, statuses: tuple[str, ...] = ("pending",)) -> int:
    """Feedback messages in these statuses (by default: waiting to be sent)."""
    t = feedback_outbox
    with store.begin() as conn:
        count = conn.execute(
            sa.select(sa.func.count()).select_from(t).where(t.c.status.in_(statuses))
        ).scalar()
    return int(count or 0)
