"""Report deliveries: one record per (report, period, destination), claimed before sending.

The unique key decides who delivers: the request whose INSERT lands claims the period;
later ones see it delivered (or being delivered) and send nothing. A failed delivery is
claimed again by the next request, and `force` claims a delivered one; such re-claims
compare-and-set on `attempts`, so two of them cannot both win.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from wa_monitor.core.errors import UniqueViolation
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import report_deliveries as T

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
# A claim older than this, still pending, was left by a process that stopped mid-way.
STALE_AFTER = timedelta(minutes=10)
MAX_ERROR = 2000
MAX_BY = 100


@dataclass(frozen=True)
class Delivery:
    """One report period's record at one destination."""

    id: int
    report: str
    period: str
    destination: str
    status: str
    attempts: int
    last_error: str | None
    requested_by: str | None
    details: Mapping[str, Any] = field(default_factory=dict)
    created_at: datetime | None = None
    delivered_at: datetime | None = None

    @property
    def claimed_at(self) -> datetime | None:
        text = self.details.get("claimedAt")
        return datetime.fromisoformat(text) if isinstance(text, str) else self.created_at


@dataclass(frozen=True)
class Claim:
    """The record as a request found it; `mine`: this request must deliver, then call
    `delivered` or `failed` with it."""

    delivery: Delivery
    mine: bool


def _delivery(row: sa.RowMapping) -> Delivery:
    return Delivery(
        id=int(row["id"]),
        report=row["report"],
        period=row["period"],
        destination=row["destination"],
        status=row["status"],
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        requested_by=row["requested_by"],
        details=dict(row["details"] or {}),
        created_at=_utc(row["created_at"]),
        delivered_at=_utc(row["delivered_at"]),
    )


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC; PostgreSQL an aware instant."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)


def get(store: ReviewStore, report: str, period: str, destination: str) -> Delivery | None:
    with store.read() as conn:
        row = (
            conn.execute(
                sa.select(T).where(
                    T.c.report == report, T.c.period == period, T.c.destination == destination
                )
            )
            .mappings()
            .first()
        )
    return _delivery(row) if row is not None else None


def claim(
    store: ReviewStore,
    report: str,
    period: str,
    destination: str,
    *,
    requested_by: str,
    force: bool = False,
    now: datetime | None = None,
) -> Claim:
    """Claim the delivery of `report` for `period` to `destination`, or say who has it.

    Mine when nobody delivered it yet, when it failed last time, when `force` is given
    (and no one is delivering it right now), or when its claim is stale.
    """
    now = now or datetime.now(UTC)
    by = requested_by[:MAX_BY]
    claimed = {"claimedAt": now.isoformat()}
    try:
        with store.begin() as conn:
            row = (
                conn.execute(
                    sa.insert(T)
                    .values(
                        report=report,
                        period=period,
                        destination=destination,
                        status=PENDING,
                        attempts=1,
                        requested_by=by,
                        details=claimed,
                        created_at=now,
                    )
                    .returning(*T.c)
                )
                .mappings()
                .one()
            )
        return Claim(_delivery(row), mine=True)
    except UniqueViolation:
        pass
    found = get(store, report, period, destination)
    if found is None:  # deleted in between: nobody holds it
        return claim(store, report, period, destination, requested_by=by, force=force, now=now)
    if not _claimable(found, force, now):
        return Claim(found, mine=False)
    with store.begin() as conn:
        taken = (
            conn.execute(
                sa.update(T)
                .where(T.c.id == found.id, T.c.attempts == found.attempts)
                .values(
                    status=PENDING,
                    attempts=found.attempts + 1,
                    requested_by=by,
                    details={**found.details, **claimed},
                )
                .returning(*T.c)
            )
            .mappings()
            .first()
        )
    if taken is None:  # another request re-claimed it first
        latest = get(store, report, period, destination)
        return Claim(latest or found, mine=False)
    return Claim(_delivery(taken), mine=True)


def _claimable(found: Delivery, force: bool, now: datetime) -> bool:
    if found.status == FAILED:
        return True
    if found.status == PENDING:
        claimed_at = found.claimed_at
        return claimed_at is None or now - claimed_at > STALE_AFTER
    return force


def delivered(
    store: ReviewStore,
    claim: Claim,
    details: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> Delivery:
    """Record the claimed delivery as done, with what was sent (file, rows…)."""
    return _finish(
        store,
        claim,
        status=DELIVERED,
        delivered_at=now or datetime.now(UTC),
        details={**claim.delivery.details, **details},
    )


def failed(store: ReviewStore, claim: Claim, error: str) -> Delivery:
    """Record the claimed delivery as failed: the next request tries again."""
    return _finish(store, claim, status=FAILED, last_error=error[:MAX_ERROR])


def _finish(store: ReviewStore, claim: Claim, **values: Any) -> Delivery:
    if not claim.mine:
        raise ValueError("only the request that claimed a delivery records its outcome")
    d = claim.delivery
    with store.begin() as conn:
        row = (
            conn.execute(
                sa.update(T)
                .where(T.c.id == d.id, T.c.attempts == d.attempts)
                .values(**values)
                .returning(*T.c)
            )
            .mappings()
            .first()
        )
    # None: a stale claim was taken over; the record is the newer request's now.
    return _delivery(row) if row is not None else d


def recent(store: ReviewStore, *, report: str | None = None, limit: int = 50) -> list[Delivery]:
    """The latest deliveries, newest period first."""
    query = sa.select(T).order_by(T.c.period.desc(), T.c.report, T.c.destination).limit(limit)
    if report is not None:
        query = query.where(T.c.report == report)
    with store.read() as conn:
        return [_delivery(r) for r in conn.execute(query).mappings()]
