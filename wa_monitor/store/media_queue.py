"""The photo fetch queue: the media rows of `group_messages`, claimed, retried and settled.

A media row waits as `pending` with `next_attempt_at` its due time. A claim takes due rows
(newest posted first: reviewers look at today's drops) and moves their `next_attempt_at`
one lease ahead, in the same transaction, so no other worker takes them; a worker killed
mid-fetch leaves its rows to come back once the lease ends, nothing lost. On PostgreSQL
the claim locks with `FOR UPDATE SKIP LOCKED`, so two workers never claim one row; SQLite
has a single writer (`BEGIN IMMEDIATE`), which serialises claims by itself.

Each claim counts as an attempt, so a photo that crashes its worker every time still
ends as `failed` instead of looping forever. A row ends `available` (fetched, with what
the file showed), `failed` (with the reason reviewers see) or `unavailable` (WhatsApp no
longer has the file: final, no retry can help).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import group_messages, qa_photo_reviews

__all__ = [
    "BACKOFF_CAP",
    "BACKOFF_START",
    "LEASE",
    "MAX_ATTEMPTS",
    "STATUSES",
    "Analysis",
    "Backlog",
    "QueuedMedia",
    "backlog",
    "backoff",
    "claim",
    "duplicate_of",
    "fill_serials",
    "later_copies",
    "mark_available",
    "mark_failed",
    "mark_unavailable",
    "retry_later",
    "set_duplicate",
    "store_serials",
    "stored_elsewhere",
]

STATUSES: Final = ("pending", "available", "failed", "unavailable")

# A claim holds its rows this long: longer than any one fetch (the bridge's answer within
# its HTTP timeout, then a stream into the media store), short enough that a killed
# worker's photos come back within the quarter hour.
LEASE: Final = timedelta(minutes=15)

# The first retry after 30 s (a burst's sibling overwritten by then, a phone back online),
# doubling, never more than an hour apart; after 8 attempts (about 2 h of trying) the
# photo is `failed` with the last reason.
BACKOFF_START: Final = timedelta(seconds=30)
BACKOFF_CAP: Final = timedelta(hours=1)
MAX_ATTEMPTS: Final = 8

# Reasons are shown to reviewers and kept in the row: bounded, like the bridge's message.
_REASON_CHARS: Final = 1000

G = group_messages


@dataclass(frozen=True)
class QueuedMedia:
    """A claimed media row: what the worker needs to fetch, analyse and link it."""

    id: int
    chat_jid: str
    message_id: str
    project: str | None
    posted_at: datetime
    content: str | None
    media_type: str
    filename: str | None
    file_sha256: str | None  # 64 lowercase hex digits, or None
    file_length: int | None
    drop_number: str | None
    review_id: Any
    step: str | None
    attempts: int  # this claim included


@dataclass(frozen=True)
class Analysis:
    """What a fetched file showed; the image fields stay None for a video or document."""

    sha256: str
    size: int
    content_type: str
    width: int | None = None
    height: int | None = None
    thumb_sha256: str | None = None
    phash: str | None = None
    barcodes: Sequence[Mapping[str, str]] = ()
    hints: Sequence[Mapping[str, Any]] = ()

    def bands(self) -> tuple[int, int, int, int] | None:
        """The pHash's four 16-bit bands, most significant first (phash_b0..b3)."""
        if self.phash is None:
            return None
        value = int(self.phash, 16)
        return (value >> 48 & 0xFFFF, value >> 32 & 0xFFFF, value >> 16 & 0xFFFF, value & 0xFFFF)


@dataclass(frozen=True)
class Backlog:
    """The queue at a glance: rows per status, the oldest waiting photo, recent failures."""

    counts: Mapping[str, int]  # pending: those linked to a drop, the only ones fetched
    oldest_pending_at: datetime | None = None
    due: int = 0
    unlinked: int = 0  # media of no drop, not fetched
    failures: Sequence[tuple[str, datetime | None]] = field(default_factory=tuple)

    def count(self, status: str) -> int:
        return int(self.counts.get(status, 0))

    def oldest_pending_age(self, now: datetime | None = None) -> float | None:
        if self.oldest_pending_at is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.oldest_pending_at).total_seconds())

    def as_dict(self, now: datetime | None = None) -> dict[str, Any]:
        age = self.oldest_pending_age(now)
        return {
            **{status: self.count(status) for status in STATUSES},
            "due": self.due,
            "oldest_pending_at": self.oldest_pending_at.isoformat()
            if self.oldest_pending_at
            else None,
            "oldest_pending_seconds": None if age is None else round(age, 1),
            "failures": [reason for reason, _ in self.failures],
        }


def backoff(attempts: int) -> timedelta:
    """The wait before the next try after `attempts` failed ones: 30 s, 1 min, 2 min, … 1 h."""
    if attempts < 1:
        return BACKOFF_START
    wait: timedelta = BACKOFF_START * (2 ** min(attempts - 1, 20))
    return min(wait, BACKOFF_CAP)


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _reason(text: str) -> str:
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"


_CLAIMED_COLUMNS = (
    G.c.id,
    G.c.chat_jid,
    G.c.message_id,
    G.c.project,
    G.c.posted_at,
    G.c.content,
    G.c.media_type,
    G.c.filename,
    G.c.file_sha256,
    G.c.file_length,
    G.c.drop_number,
    G.c.review_id,
    G.c.step,
    G.c.attempts,
)


def _waiting() -> sa.ColumnElement[bool]:
    """Pending and linked to a drop: a photo of no drop (group chatter) is not fetched,
    unless a re-link or a reviewer gives it one later."""
    return sa.and_(G.c.status == "pending", G.c.drop_number.is_not(None))


def _due(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        _waiting(),
        sa.or_(G.c.next_attempt_at.is_(None), G.c.next_attempt_at <= now),
    )


def claim(
    store: ReviewStore, limit: int, *, now: datetime | None = None, lease: timedelta = LEASE
) -> list[QueuedMedia]:
    """Take up to `limit` due photos, newest posted first, each held for `lease`.

    A claimed row stays `pending` with its `next_attempt_at` pushed to the lease's end
    and one more attempt counted: if this worker dies, the row is due again after it.
    """
    if limit < 1:
        return []
    now = _now(now)
    pick = (
        sa.select(G.c.id)
        .where(_due(now))
        .order_by(G.c.posted_at.desc(), G.c.id.desc())
        .limit(limit)
    )
    with store.begin() as conn:
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        ids = [row.id for row in conn.execute(pick)]
        if not ids:
            return []
        conn.execute(
            sa.update(G)
            .where(G.c.id.in_(ids))
            .values(next_attempt_at=now + lease, attempts=G.c.attempts + 1, updated_at=now)
        )
        rows = conn.execute(
            sa.select(*_CLAIMED_COLUMNS)
            .where(G.c.id.in_(ids))
            .order_by(G.c.posted_at.desc(), G.c.id.desc())
        ).all()
    return [QueuedMedia(**row._asdict()) for row in rows]


def _settle(store: ReviewStore, media_id: int, values: Mapping[str, Any]) -> bool:
    """Write an outcome to a row still pending; False when it was settled meanwhile."""
    with store.begin() as conn:
        done = conn.execute(
            sa.update(G).where(G.c.id == media_id, G.c.status == "pending").values(**values)
        )
    return bool(done.rowcount)


def mark_available(
    store: ReviewStore,
    media_id: int,
    analysis: Analysis,
    *,
    duplicate: int | None = None,
    now: datetime | None = None,
) -> bool:
    """The photo is in the media store, verified: record what it showed."""
    now = _now(now)
    bands = analysis.bands() or (None, None, None, None)
    return _settle(
        store,
        media_id,
        {
            "status": "available",
            "next_attempt_at": None,
            "last_error": None,
            "fetched_at": now,
            "updated_at": now,
            "sha256": analysis.sha256,
            "size": analysis.size,
            "content_type": analysis.content_type,
            "width": analysis.width,
            "height": analysis.height,
            "thumb_sha256": analysis.thumb_sha256,
            "phash": analysis.phash,
            "phash_b0": bands[0],
            "phash_b1": bands[1],
            "phash_b2": bands[2],
            "phash_b3": bands[3],
            "duplicate_of": duplicate,
            "barcodes": [dict(b) for b in analysis.barcodes],
            "hints": [dict(h) for h in analysis.hints],
        },
    )


def retry_later(
    store: ReviewStore, media_id: int, attempts: int, reason: str, *, now: datetime | None = None
) -> str:
    """Try again after the backoff for `attempts`; `failed` once MAX_ATTEMPTS are spent.

    Returns the status the row now has (`pending` or `failed`).
    """
    now = _now(now)
    if attempts >= MAX_ATTEMPTS:
        mark_failed(store, media_id, f"{reason} (gave up after {attempts} attempts)", now=now)
        return "failed"
    _settle(
        store,
        media_id,
        {
            "next_attempt_at": now + backoff(attempts),
            "last_error": _reason(reason),
            "updated_at": now,
        },
    )
    return "pending"


def mark_failed(
    store: ReviewStore, media_id: int, reason: str, *, now: datetime | None = None
) -> bool:
    """No retry will help (a file that is not what it claims, too large, damaged)."""
    now = _now(now)
    return _settle(
        store,
        media_id,
        {
            "status": "failed",
            "next_attempt_at": None,
            "last_error": _reason(reason),
            "updated_at": now,
        },
    )


def mark_unavailable(
    store: ReviewStore, media_id: int, reason: str, *, now: datetime | None = None
) -> bool:
    """WhatsApp no longer has the file: final, only the phone can send it again."""
    now = _now(now)
    return _settle(
        store,
        media_id,
        {
            "status": "unavailable",
            "next_attempt_at": None,
            "last_error": _reason(reason),
            "updated_at": now,
        },
    )


def stored_elsewhere(store: ReviewStore, file_sha256: str, media_id: int) -> Analysis | None:
    """What another row that fetched the same file found, so it is neither fetched nor
    analysed twice (a photo forwarded to two groups, a re-read row)."""
    with store.read() as conn:
        row = conn.execute(
            sa.select(
                G.c.sha256,
                G.c.size,
                G.c.content_type,
                G.c.width,
                G.c.height,
                G.c.thumb_sha256,
                G.c.phash,
                G.c.barcodes,
                G.c.hints,
            )
            .where(G.c.sha256 == file_sha256, G.c.status == "available", G.c.id != media_id)
            .order_by(G.c.id)
            .limit(1)
        ).first()
    if row is None:
        return None
    return Analysis(
        sha256=row.sha256,
        size=int(row.size or 0),
        content_type=row.content_type or "application/octet-stream",
        width=row.width,
        height=row.height,
        thumb_sha256=row.thumb_sha256,
        phash=row.phash,
        barcodes=tuple(row.barcodes or ()),
        hints=tuple(_as_found(h) for h in row.hints or ()),
    )


# What a reviewer decided on a hint belongs to that row's photo, not to the file.
_DECISION_KEYS = frozenset({"state", "by", "at"})


def _as_found(hint: Any) -> Any:
    """A hint as the analysis found it, without another row's reviewer decision."""
    if not isinstance(hint, dict):
        return hint
    return {k: v for k, v in hint.items() if k not in _DECISION_KEYS}


def duplicate_of(
    store: ReviewStore,
    media: QueuedMedia,
    phash: str,
    similar: Any,
) -> int | None:
    """The earliest available photo of ANOTHER drop, posted before this one, that
    `similar` calls a copy of it (by pHash): the photo this one re-uses.

    Candidates share at least one of the four 16-bit bands (each band indexed): a copy
    within 10 bits of 64 differs in at most 10 bits, so at least one band is equal.
    """
    bands = Analysis(sha256="", size=0, content_type="", phash=phash).bands()
    assert bands is not None
    same_drop = sa.and_(
        G.c.project.is_not_distinct_from(media.project),
        G.c.drop_number == media.drop_number,
    )
    other_drop = sa.and_(G.c.drop_number.is_not(None), sa.not_(same_drop))
    if media.drop_number is None:
        other_drop = G.c.drop_number.is_not(None)
    query = (
        sa.select(G.c.id, G.c.phash)
        .where(
            G.c.status == "available",
            G.c.id != media.id,
            G.c.phash.is_not(None),
            other_drop,
            sa.or_(
                G.c.posted_at < media.posted_at,
                sa.and_(G.c.posted_at == media.posted_at, G.c.id < media.id),
            ),
            sa.or_(
                G.c.phash_b0 == bands[0],
                G.c.phash_b1 == bands[1],
                G.c.phash_b2 == bands[2],
                G.c.phash_b3 == bands[3],
            ),
        )
        .order_by(G.c.posted_at, G.c.id)
        .limit(200)
    )
    with store.read() as conn:
        for row in conn.execute(query):
            if similar(phash, row.phash):
                return int(row.id)
    return None


def later_copies(store: ReviewStore, media: QueuedMedia, phash: str) -> list[QueuedMedia]:
    """Available photos of other drops posted after `media` sharing a pHash band with it:
    the ones whose `duplicate_of` an earlier photo fetched late can change."""
    bands = Analysis(sha256="", size=0, content_type="", phash=phash).bands()
    assert bands is not None
    query = (
        sa.select(*_CLAIMED_COLUMNS)
        .where(
            G.c.status == "available",
            G.c.id != media.id,
            G.c.drop_number.is_not(None),
            G.c.posted_at >= media.posted_at,
            sa.or_(
                G.c.phash_b0 == bands[0],
                G.c.phash_b1 == bands[1],
                G.c.phash_b2 == bands[2],
                G.c.phash_b3 == bands[3],
            ),
        )
        .order_by(G.c.posted_at, G.c.id)
        .limit(200)
    )
    with store.read() as conn:
        return [QueuedMedia(**r._asdict()) for r in conn.execute(query)]


def set_duplicate(store: ReviewStore, media_id: int, duplicate: int | None) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.update(G)
            .where(G.c.id == media_id, G.c.duplicate_of.is_distinct_from(duplicate))
            .values(duplicate_of=duplicate)
        )


def store_serials(
    store: ReviewStore,
    review_id: Any,
    *,
    ont: str | None,
    ups: str | None,
    now: datetime | None = None,
) -> list[str]:
    """Put serials read from a photo on its review where that column is still empty.

    A serial a reviewer (or an earlier photo) already set is never overwritten. Returns
    the columns written.
    """
    if review_id is None:
        return []
    with store.begin() as conn:
        return fill_serials(conn, review_id, ont=ont, ups=ups, now=_now(now))


def fill_serials(
    conn: Connection, review_id: Any, *, ont: str | None, ups: str | None, now: datetime
) -> list[str]:
    """`store_serials` inside the caller's transaction (a reviewer assigning a step)."""
    if review_id is None:
        return []
    written: list[str] = []
    R = qa_photo_reviews
    for column, value in (("ont_serial_scanned", ont), ("ups_serial_scanned", ups)):
        if not value:
            continue
        done = conn.execute(
            sa.update(R)
            .where(R.c.id == review_id, R.c[column].is_(None))
            .values({column: value[:100], "updated_at": now})
        )
        if done.rowcount:
            written.append(column)
    return written


def backlog(store: ReviewStore, *, now: datetime | None = None, failures: int = 3) -> Backlog:
    """Rows per status, the oldest pending photo's posting time, the latest failures.

    Counted over the (status, next_attempt_at) index; the one place status, doctor and
    /metrics read the queue from.
    """
    now = _now(now)
    with store.read() as conn:
        linked = G.c.drop_number.is_not(None)
        counts: dict[str, int] = {}
        unlinked = 0
        for row in conn.execute(
            sa.select(G.c.status, linked.label("linked"), sa.func.count().label("n"))
            .where(G.c.status.is_not(None))
            .group_by(G.c.status, linked)
        ):
            if row.status == "pending" and not row.linked:
                unlinked += int(row.n)
            else:
                counts[str(row.status)] = counts.get(str(row.status), 0) + int(row.n)
        oldest = conn.execute(sa.select(sa.func.min(G.c.posted_at)).where(_waiting())).scalar()
        due = int(
            conn.execute(sa.select(sa.func.count()).select_from(G).where(_due(now))).scalar() or 0
        )
        failed = conn.execute(
            sa.select(G.c.last_error, G.c.updated_at)
            .where(G.c.status == "failed")
            .order_by(G.c.updated_at.desc(), G.c.id.desc())
            .limit(failures)
        ).all()
    return Backlog(
        counts=counts,
        oldest_pending_at=oldest,
        due=due,
        unlinked=unlinked,
        failures=tuple((str(r.last_error or ""), r.updated_at) for r in failed),
    )
