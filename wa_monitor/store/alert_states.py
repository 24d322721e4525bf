"""Alert states: what each alert last told each channel, one row per (alert, channel).

A message is claimed before it is sent: the INSERT of a first row, else an UPDATE that
compares-and-sets `version`, so two schedulers (two dashboards, a restart) never both
send it; the outcome is then recorded on the claimed version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from wa_monitor.core.errors import UniqueViolation
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import alert_states as T

FIRING, RESOLVED, NEW = "firing", "resolved", "new"
MAX_ERROR = 2000


@dataclass(frozen=True)
class AlertState:
    """An alert's last message on one channel."""

    id: int
    alert: str
    channel: str
    state: str  # NEW (claimed, never sent) | FIRING | RESOLVED
    since: datetime | None  # when it started firing (the last time)
    sent_at: datetime | None  # when its last message went
    attempt_at: datetime | None  # when a message was last tried
    version: int
    message: str | None = None
    last_error: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)


def _state(row: sa.RowMapping) -> AlertState:
    return AlertState(
        id=int(row["id"]),
        alert=row["alert"],
        channel=row["channel"],
        state=row["state"],
        since=row["since"],
        sent_at=row["sent_at"],
        attempt_at=row["attempt_at"],
        version=int(row["version"]),
        message=row["message"],
        last_error=row["last_error"],
        details=dict(row["details"] or {}),
    )


def get(store: ReviewStore, alert: str, channel: str) -> AlertState | None:
    with store.read() as conn:
        row = (
            conn.execute(sa.select(T).where(T.c.alert == alert, T.c.channel == channel))
            .mappings()
            .first()
        )
    return _state(row) if row is not None else None


def every(store: ReviewStore) -> list[AlertState]:
    with store.read() as conn:
        rows = conn.execute(sa.select(T).order_by(T.c.alert, T.c.channel)).mappings().all()
    return [_state(r) for r in rows]


def claim(
    store: ReviewStore, alert: str, channel: str, seen: AlertState | None, now: datetime
) -> AlertState | None:
    """Claim the next message of `alert` on `channel`, as `seen` last read it; None when
    another process claimed it first (it sends that message)."""
    if seen is None:
        try:
            with store.begin() as conn:
                row = (
                    conn.execute(
                        sa.insert(T)
                        .values(alert=alert, channel=channel, state=NEW, attempt_at=now, version=1)
                        .returning(*T.c)
                    )
                    .mappings()
                    .one()
                )
        except UniqueViolation:
            return None
        return _state(row)
    with store.begin() as conn:
        taken = (
            conn.execute(
                sa.update(T)
                .where(T.c.id == seen.id, T.c.version == seen.version)
                .values(version=seen.version + 1, attempt_at=now)
                .returning(*T.c)
            )
            .mappings()
            .first()
        )
    return _state(taken) if taken is not None else None


def sent(
    store: ReviewStore,
    claimed: AlertState,
    *,
    state: str,
    since: datetime | None,
    message: str,
    details: Mapping[str, Any],
    now: datetime | None = None,
) -> None:
    """Record the claimed message as gone: the alert is now `state` on the channel."""
    _finish(
        store,
        claimed,
        state=state,
        since=since,
        sent_at=now or datetime.now(UTC),
        message=message,
        last_error=None,
        details=dict(details),
    )


def failed(store: ReviewStore, claimed: AlertState, error: str) -> None:
    """Record that the claimed message did not go: it is tried again after a while."""
    _finish(store, claimed, last_error=error[:MAX_ERROR])


def _finish(store: ReviewStore, claimed: AlertState, **values: Any) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.update(T)
            .where(T.c.id == claimed.id, T.c.version == claimed.version)
            .values(**values)
        )
