"""The dashboard's data layer: parameterised SQLAlchemy Core queries on PostgreSQL and SQLite."""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from time import monotonic as _monotonic
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wa_monitor.core import queue
from wa_monitor.core.queue import Clocks
from wa_monitor.core.review_edits import (
    LOCK_SECONDS,
    EditPlan,
    LockedByOther,
    held_by_other,
    plan_edit,
)
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import (
    drop_submissions,
    feedback_outbox,
    group_messages,
    qa_photo_reviews,
    review_edits,
    users,
)
from wa_monitor.web.changes import REVIEWS, ChangeFeed, Version

log = logging.getLogger("wa_monitor.web")
R = qa_photo_reviews
G = group_messages
# The serials a reviewer may confirm or correct in a drop edit (API name → column).
SERIALS = {"ontSerialScanned": "ont_serial_scanned", "upsSerialScanned": "ups_serial_scanned"}
# Newest WhatsApp message of a drop (a resubmission counts), for the `latest` order.
LATEST = sa.func.coalesce(R.c.last_message_date, R.c.whatsapp_message_date, R.c.created_at)
SORTS = ("queue", "latest")


@dataclass(frozen=True)
class DropFilter:
    """What the list, the summary and the exports are filtered by (a cache key: frozen)."""

    id: uuid.UUID | None = None
    status: str | None = None  # "complete" | "incomplete"
    project: str | None = None
    resubmitted: bool | None = None
    date_from: date | None = None  # local dates of the WhatsApp message
    date_to: date | None = None
    search: str | None = None
    feedback: str | None = None  # "sent" | "unsent"
    review_states: tuple[str, ...] = ()  # any of core.queue.STATES; () all
    overdue: bool | None = None
    assigned_agent: str | None = None
    sort: str = "queue"  # "queue" (the work queue) | "latest" (resubmitted, newest first)
    valid_only: bool = False  # leave invalid numbers out (the front end knows none)


def local_day_bounds(day: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of a calendar day in the business zone.

    At the ends of the calendar (0001-01-01, 9999-12-31) they are clamped to the first and
    last instants Python has rather than overflowing.
    """
    end = _midnight(day + timedelta(days=1), zone) if day < date.max else _LAST_INSTANT
    return _midnight(day, zone), end


_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


def _midnight(day: date, zone: tzinfo) -> datetime:
    local = datetime.combine(day, time(), tzinfo=zone)
    try:
        return local.astimezone(UTC)
    except OverflowError:
        return _FIRST_INSTANT if day.year == 1 else _LAST_INSTANT


def today(zone: tzinfo, now: datetime | None = None) -> date:
    return (now or datetime.now(UTC)).astimezone(zone).date()


def _overdue(cutoffs: Mapping[str, datetime]) -> sa.ColumnElement[bool]:
    """Overdue: waiting for a reviewer since before its project's cutoff (never NULL).

    One indexable range per project with a target (ix_qa_photo_reviews_queue), OR-ed.
    """
    if not cutoffs:
        return sa.false()
    return sa.and_(
        R.c.queue_rank == 0,
        R.c.project.is_not(None),
        sa.or_(
            *(
                sa.and_(R.c.project == project, R.c.waiting_since < cutoff)
                for project, cutoff in sorted(cutoffs.items())
            )
        ),
    )


def _conditions(
    f: DropFilter, zone: tzinfo, cutoffs: Mapping[str, datetime] | None = None
) -> list[sa.ColumnElement[bool]]:
    """The filter as SQL; `cutoffs` (Clocks.cutoffs) say which drops are overdue."""
    where: list[sa.ColumnElement[bool]] = []
    if f.id is not None:
        where.append(R.c.id == f.id)
    if f.status == "complete":
        where.append(R.c.completed.is_(True))
    elif f.status == "incomplete":
        where.append(R.c.completed.is_(False))
    if f.project is not None:
        where.append(R.c.project == f.project)
    if f.resubmitted is not None:
        where.append(R.c.resubmitted.is_(f.resubmitted))
    if f.date_from is not None:
        where.append(R.c.whatsapp_message_date >= local_day_bounds(f.date_from, zone)[0])
    if f.date_to is not None:
        where.append(R.c.whatsapp_message_date < local_day_bounds(f.date_to, zone)[1])
    if f.search:
        # A drop number (spaces ignored) or, as the company front end searches, a project.
        needle = "".join(f.search.split()).upper()
        where.append(
            sa.or_(
                sa.func.upper(R.c.drop_number).contains(needle, autoescape=True),
                sa.func.upper(R.c.project).contains(f.search.strip().upper(), autoescape=True),
            )
        )
    if f.feedback == "sent":
        where.append(R.c.feedback_sent.is_not(None))
    elif f.feedback == "unsent":
        where.append(R.c.feedback_sent.is_(None))
    if f.review_states:
        where.append(R.c.review_state.in_(f.review_states))
    if f.assigned_agent is not None:
        where.append(R.c.assigned_agent == f.assigned_agent)
    if f.valid_only:
        where.append(R.c.invalid.is_(False))
    if f.overdue is not None:
        overdue = _overdue(cutoffs or {})
        where.append(overdue if f.overdue else sa.not_(overdue))
    return where


def _ordered(query: sa.Select[Any], sort: str = "queue") -> sa.Select[Any]:
    if sort == "latest":
        return query.order_by(R.c.resubmitted.desc(), LATEST.desc(), R.c.drop_number, R.c.id)
    # The work queue, read from ix_qa_photo_reviews_queue: waiting for a reviewer first,
    # oldest first; then waiting for the installer; approved; invalid.
    return query.order_by(R.c.queue_rank, R.c.waiting_since, R.c.id)


@dataclass(frozen=True)
class QueueView:
    """The clocks and the moment a list is read at: ages and overdue are relative to it."""

    clocks: Clocks = dataclasses.field(default_factory=Clocks)
    now: datetime | None = None

    def at(self) -> datetime:
        return self.now or datetime.now(UTC)


def list_drops(
    store: ReviewStore,
    f: DropFilter,
    zone: tzinfo,
    *,
    limit: int | None = None,
    offset: int = 0,
    view: QueueView | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """The filtered reviews in list order (the work queue, or `latest`), and their count."""
    view = view or QueueView()
    now = view.at()
    cutoffs = view.clocks.cutoffs(now, zone)
    where = _conditions(f, zone, cutoffs)
    with store.begin() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(R).where(*where)).scalar_one()
        rows = _page(conn, where, f.sort, limit, offset)
    _attach_queue(rows, view.clocks, cutoffs, now, zone)
    return rows, int(total)


def page_of_drops(
    store: ReviewStore,
    f: DropFilter,
    zone: tzinfo,
    *,
    limit: int | None,
    offset: int = 0,
    view: QueueView | None = None,
) -> list[dict[str, Any]]:
    """One page of the filtered reviews in list order (None: all), without counting them.

    The first page of the queue is read from ix_qa_photo_reviews_queue (migration 0009),
    of `latest` from ix_qa_photo_reviews_list_latest (0004).
    """
    view = view or QueueView()
    now = view.at()
    cutoffs = view.clocks.cutoffs(now, zone)
    with store.read() as conn:
        rows = _page(conn, _conditions(f, zone, cutoffs), f.sort, limit, offset)
    _attach_queue(rows, view.clocks, cutoffs, now, zone)
    return rows


# Rows per read of an answer that lists every drop.
STREAM_BATCH = 500


def stream_drops(
    store: ReviewStore,
    f: DropFilter,
    zone: tzinfo,
    *,
    view: QueueView | None = None,
    batch: int = STREAM_BATCH,
) -> Iterator[list[dict[str, Any]]]:
    """Every filtered review in list order, `batch` rows at a time.

    The ids are read first, in order, in one query; the rows then in batches, each its own
    short read: memory holds the ids and one batch, and no read stays open while a slow
    client takes the answer (SQLite's transactions hold the write lock). A review deleted
    meanwhile is left out; one changed meanwhile is shown as it is now, in its place.
    """
    view = view or QueueView()
    now = view.at()
    cutoffs = view.clocks.cutoffs(now, zone)
    where = _conditions(f, zone, cutoffs)
    with store.read() as conn:
        ids = list(conn.execute(_ordered(sa.select(R.c.id).where(*where), f.sort)).scalars())
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        with store.read() as conn:
            found = {
                r["id"]: dict(r)
                for r in conn.execute(sa.select(R).where(R.c.id.in_(chunk))).mappings()
            }
            rows = [found[i] for i in chunk if i in found]
            _attach_outbox(conn, rows)
            _attach_photos(conn, rows)
        _attach_queue(rows, view.clocks, cutoffs, now, zone)
        yield rows


def _page(
    conn: Connection,
    where: list[sa.ColumnElement[bool]],
    sort: str,
    limit: int | None,
    offset: int,
) -> list[dict[str, Any]]:
    query = _ordered(sa.select(R).where(*where), sort).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    _attach_outbox(conn, rows)
    _attach_photos(conn, rows)
    return rows


def _attach_queue(
    rows: list[dict[str, Any]],
    clocks: Clocks,
    cutoffs: Mapping[str, datetime],
    now: datetime,
    zone: tzinfo,
) -> None:
    """Each review's wait, as `_queue`: working hours waited and overdue (no query)."""
    for r in rows:
        r["_queue"] = queue.queue_figures(r, clocks, cutoffs, now, zone)


def attach_queue(rows: list[dict[str, Any]], zone: tzinfo, view: QueueView | None = None) -> None:
    """`_queue` for review rows read one by one (a drop, the next drop, an edit's answer)."""
    view = view or QueueView()
    now = view.at()
    _attach_queue(rows, view.clocks, view.clocks.cutoffs(now, zone), now, zone)


def _attach_outbox(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Each review's latest feedback outbox entry, as `_outbox` (or None)."""
    ids = [r["id"] for r in rows]
    latest: dict[uuid.UUID, dict[str, Any]] = {}
    t = feedback_outbox
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        newest = (
            sa.select(sa.func.max(t.c.id)).where(t.c.review_id.in_(chunk)).group_by(t.c.review_id)
        )
        query = sa.select(t).where(t.c.id.in_(newest))
        for row in conn.execute(query).mappings():
            latest[row["review_id"]] = dict(row)
    for r in rows:
        r["_outbox"] = latest.get(r["id"])


def _attach_photos(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """Each review's photo figures, as `_photos`: {count, by_step, conflicts}.

    One grouped query over the reviews' ids (ix_group_messages_review), and one for the
    other reviews that carry the same serials, however many reviews there are.
    """
    ids = [r["id"] for r in rows]
    found: dict[uuid.UUID, dict[str, Any]] = {
        i: {"count": 0, "by_step": {}, "conflicts": []} for i in ids
    }
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = (
            sa.select(G.c.review_id, G.c.step, sa.func.count(), sa.func.max(G.c.id))
            .where(G.c.review_id.in_(chunk), G.c.media_type != "text")
            .group_by(G.c.review_id, G.c.step)
        )
        for review_id, step, count, newest in conn.execute(query).all():
            photos = found[review_id]
            photos["count"] += int(count)
            if step in STEP_COLUMNS:
                photos["by_step"][step] = int(newest)
    for field, column in SERIALS.items():
        serials = {r[column] for r in rows if r.get(column)}
        if not serials:
            continue
        others: dict[str, list[tuple[uuid.UUID, str]]] = defaultdict(list)
        for start in range(0, len(serials), 500):
            chunk = sorted(serials)[start : start + 500]
            query = sa.select(R.c.id, R.c.drop_number, R.c[column]).where(R.c[column].in_(chunk))
            for other_id, drop_number, serial in conn.execute(query).all():
                others[serial].append((other_id, drop_number))
        for r in rows:
            for other_id, drop_number in sorted(others.get(r.get(column) or "", []), key=str):
                if other_id != r["id"]:
                    found[r["id"]]["conflicts"].append(
                        {"field": field, "dropId": other_id, "dropNumber": drop_number}
                    )
    for r in rows:
        r["_photos"] = found[r["id"]]


def attach_photos(store: ReviewStore, rows: list[dict[str, Any]]) -> None:
    """`_photos` for review rows read elsewhere (an edit conflict's current review)."""
    with store.read() as conn:
        _attach_photos(conn, rows)


# -- photos -----------------------------------------------------------------------------

_DUP = G.alias("dup")
_PHOTO_COLUMNS = (
    *G.c,
    _DUP.c.id.label("dup_id"),
    _DUP.c.review_id.label("dup_review_id"),
    _DUP.c.drop_number.label("dup_drop_number"),
    _DUP.c.posted_at.label("dup_posted_at"),
)
_WITH_DUPLICATE = G.outerjoin(_DUP, _DUP.c.id == G.c.duplicate_of)
# The order of ix_group_messages_review: by round, then posting time.
_THREAD_ORDER = (G.c.round, G.c.posted_at, G.c.message_id, G.c.id)


def drop_photos(store: ReviewStore, review_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The media linked to a review, by round then posting time; None: no such review.

    One query (ix_group_messages_review), the photo each repeats joined in; a second,
    by primary key, only when there are none, to tell an empty drop from a missing one.
    """
    query = (
        sa.select(*_PHOTO_COLUMNS)
        .select_from(_WITH_DUPLICATE)
        .where(G.c.review_id == review_id, G.c.media_type != "text")
        .order_by(*_THREAD_ORDER)
    )
    with store.read() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
        if not rows and not _review_exists(conn, review_id):
            return None
    return rows


def drop_thread(store: ReviewStore, review_id: uuid.UUID) -> list[dict[str, Any]] | None:
    """The texts linked to a review, by round then posting time; None: no such review."""
    query = (
        sa.select(
            G.c.message_id, G.c.round, G.c.posted_at, G.c.sender, G.c.sender_name, G.c.content
        )
        .where(G.c.review_id == review_id, G.c.media_type == "text")
        .order_by(*_THREAD_ORDER)
    )
    with store.read() as conn:
        rows = [dict(r) for r in conn.execute(query).mappings()]
        if not rows and not _review_exists(conn, review_id):
            return None
    return rows


def _review_exists(conn: Connection, review_id: uuid.UUID) -> bool:
    return conn.execute(sa.select(R.c.id).where(R.c.id == review_id)).first() is not None


def photo(store: ReviewStore, photo_id: int) -> dict[str, Any] | None:
    """One media row of group_messages (with the photo it repeats), or None."""
    query = (
        sa.select(*_PHOTO_COLUMNS)
        .select_from(_WITH_DUPLICATE)
        .where(G.c.id == photo_id, G.c.media_type != "text")
    )
    with store.read() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def review_group(store: ReviewStore, review_id: uuid.UUID) -> dict[str, Any] | None:
    """A review's drop number and project (where a photo may be moved to), or None."""
    query = sa.select(R.c.id, R.c.drop_number, R.c.project).where(R.c.id == review_id)
    with store.read() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def available_media(store: ReviewStore, sha256: str) -> dict[str, Any] | None:
    """What the rows say of a verified file: type, name, size, thumbnail; None: none has it.

    Only a row whose fetch verified the file (status available) counts: nothing is
    served that was not verified against the bridge's SHA-256.
    """
    query = (
        sa.select(G.c.sha256, G.c.content_type, G.c.filename, G.c.size, G.c.thumb_sha256)
        .where(G.c.sha256 == sha256, G.c.status == "available")
        .order_by(G.c.thumb_sha256.is_(None), G.c.id)
        .limit(1)
    )
    with store.read() as conn:
        row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


_Key = tuple[DropFilter, str, Clocks]


class SummaryCache:
    """The summary cards per filter set, reused while current (ttl 0: never reused).

    The summary aggregates every matching review (the whole table without filters), too
    dear for each request of a polling dashboard. The first request for a filter set
    computes it; afterwards a stale entry is recomputed in a background thread while
    requests keep answering the previous value, so no request waits for a refresh. An
    entry is stale once PostgreSQL's change feed says the reviews changed, or, without a
    listening feed (SQLite), once it is `ttl` seconds old. `clear()` after this process's
    own writes (the next request computes afresh); other processes' writes (the monitor)
    show after one refresh. The overdue count moves with the clock alone: an entry older
    than `CLOCK_SECONDS` is stale too.
    """

    CLOCK_SECONDS = 60.0

    def __init__(
        self, ttl: float, *, feed: ChangeFeed | None = None, max_entries: int = 256
    ) -> None:
        self.ttl = ttl
        self.feed = feed
        self.max_entries = max_entries
        self._entries: dict[_Key, tuple[float, Version | None, dict[str, Any]]] = {}
        self._refreshing: set[_Key] = set()
        self._lock = threading.Lock()
        self._generation = 0

    def get(
        self, store: ReviewStore, f: DropFilter, zone: tzinfo, clocks: Clocks | None = None
    ) -> dict[str, Any]:
        clocks = clocks or Clocks()
        if self.ttl <= 0 or f.id is not None:
            return summary(store, f, zone, QueueView(clocks))
        key = (f, str(zone), clocks)
        version = self.feed.version(REVIEWS) if self.feed is not None else None
        with self._lock:
            cached = self._entries.get(key)
            generation = self._generation
            if cached is not None:
                age = _monotonic() - cached[0]
                if version is not None:
                    stale = cached[1] != version or age >= self.CLOCK_SECONDS
                else:
                    stale = age >= min(self.ttl, self.CLOCK_SECONDS)
                if stale and key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(
                        target=self._refresh,
                        args=(store, f, zone, clocks, key, generation),
                        name="summary-refresh",
                        daemon=True,
                    ).start()
                return cached[2]
        return self._compute(store, f, zone, clocks, key, generation)

    def _refresh(
        self,
        store: ReviewStore,
        f: DropFilter,
        zone: tzinfo,
        clocks: Clocks,
        key: _Key,
        generation: int,
    ) -> None:
        try:
            self._compute(store, f, zone, clocks, key, generation)
        except Exception:  # the previous value stays; the next request tries again
            log.exception("summary refresh failed")
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def _compute(
        self,
        store: ReviewStore,
        f: DropFilter,
        zone: tzinfo,
        clocks: Clocks,
        key: _Key,
        generation: int,
    ) -> dict[str, Any]:
        started = _monotonic()
        version = self.feed.version(REVIEWS) if self.feed is not None else None
        value = summary(store, f, zone, QueueView(clocks))
        with self._lock:
            if generation == self._generation:  # not computed across a clear()
                if len(self._entries) >= self.max_entries and key not in self._entries:
                    self._entries.pop(next(iter(self._entries)))
                self._entries[key] = (started, version, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._generation += 1


def summary(
    store: ReviewStore, f: DropFilter, zone: tzinfo, view: QueueView | None = None
) -> dict[str, Any]:
    """The summary cards over the filtered reviews, in one pass.

    An invalid number is no drop: the counts leave invalid reviews out, except
    byState.invalid. `listed` counts every review the filter lists (the pages).
    """
    view = view or QueueView()
    cutoffs = view.clocks.cutoffs(view.at(), zone)
    valid = R.c.invalid.is_(False)
    query = sa.select(
        sa.func.count().filter(valid),
        sa.func.count().filter(valid, R.c.completed.is_(True)),
        sa.func.count().filter(valid, R.c.feedback_sent.is_not(None)),
        sa.func.coalesce(sa.func.sum(R.c.feedback_count).filter(valid), 0),
        sa.func.count().filter(valid, R.c.resubmitted.is_(True)),
        sa.func.count().filter(_overdue(cutoffs)),
        *(sa.func.count().filter(R.c.review_state == state) for state in queue.STATES),
    ).where(*_conditions(f, zone, cutoffs))
    with store.read() as conn:
        total, complete, sent, feedback, resubmitted, overdue, *states = conn.execute(query).one()
    total, complete = int(total), int(complete)
    by_state = {state: int(n) for state, n in zip(queue.STATES, states, strict=True)}
    return {
        "total": total,
        "incomplete": total - complete,
        "complete": complete,
        "feedbackSent": int(sent),
        "resubmitted": int(resubmitted),
        "totalFeedback": int(feedback),
        "averageFeedbackCount": round(int(feedback) / total, 2) if total else 0.0,
        "byState": by_state,
        "overdue": int(overdue),
        "listed": sum(by_state.values()),
    }


def get_drop(store: ReviewStore, review_id: uuid.UUID) -> dict[str, Any] | None:
    with store.read() as conn:
        row = conn.execute(sa.select(R).where(R.c.id == review_id)).mappings().first()
        if row is None:
            return None
        rows = [dict(row)]
        _attach_outbox(conn, rows)
        _attach_photos(conn, rows)
    return rows[0]


def edits(store: ReviewStore, review_id: uuid.UUID, limit: int = 50) -> list[dict[str, Any]]:
    e = review_edits
    with store.begin() as conn:
        query = (
            sa.select(e.c.actor, e.c.action, e.c.changes, e.c.at)
            .where(e.c.review_id == review_id)
            .order_by(e.c.at.desc(), e.c.id.desc())
            .limit(limit)
        )
        return [dict(r) for r in conn.execute(query).mappings()]


def _lock_free_for(actor: str, now: datetime) -> sa.ColumnElement[bool]:
    """Free for `actor`: no holder, theirs, or expired (review_edits.held_by_other, in SQL)."""
    cutoff = now - timedelta(seconds=LOCK_SECONDS)
    return sa.or_(R.c.locked_by.is_(None), R.c.locked_by == actor, R.c.locked_at < cutoff)


def _current(conn: Connection, review_id: uuid.UUID) -> dict[str, Any] | None:
    """The review as it is, row-locked on PostgreSQL (SQLite's BEGIN IMMEDIATE serialises)."""
    query = sa.select(R).where(R.c.id == review_id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row is not None else None


def _audit(conn: Connection, review_id: uuid.UUID, actor: str, action: str, **changes: Any) -> None:
    """One entry of the drop's history, at this instant (to the microsecond, as edits)."""
    conn.execute(
        sa.insert(review_edits).values(
            review_id=review_id, actor=actor, action=action, changes=changes, at=datetime.now(UTC)
        )
    )


def _takes_assignment(row: Mapping[str, Any]) -> bool:
    """Whether taking the lock makes the taker its assignee: nobody holds it, not done."""
    return row["assigned_agent"] is None and not row["completed"] and not row["invalid"]


def lock(store: ReviewStore, review_id: uuid.UUID, actor: str) -> bool:
    """Take or refresh the 5-minute edit lock; False when there is no such review.

    Taking the lock of a drop nobody holds makes `actor` its assignee (recorded).
    One UPDATE, so the drop's version goes up by one as the dashboard expects.
    """
    now = datetime.now(UTC)
    with store.begin() as conn:
        current = _current(conn, review_id)
        if current is None:
            return False
        if held_by_other(current["locked_by"], current["locked_at"], actor, now):
            raise LockedByOther(str(current["locked_by"]))
        values: dict[str, Any] = {"locked_by": actor, "locked_at": now}
        assigns = _takes_assignment(current)
        if assigns:
            values.update(assigned_agent=actor, assigned_at=now)
        conn.execute(sa.update(R).where(R.c.id == review_id).values(**values))
        if assigns:
            _audit(conn, review_id, actor, "assign", assignedAgent=[None, actor], via="lock")
    return True


def unlock(store: ReviewStore, review_id: uuid.UUID, actor: str, *, force: bool = False) -> bool:
    """Release the lock (the holder's, an expired one, or any with force).

    The holder who unlocks a drop assigned to them releases it too (recorded): it goes
    back to the queue.
    """
    now = datetime.now(UTC)
    with store.begin() as conn:
        current = _current(conn, review_id)
        if current is None:
            return False
        if not force and held_by_other(current["locked_by"], current["locked_at"], actor, now):
            raise LockedByOther(str(current["locked_by"]))
        values: dict[str, Any] = {"locked_by": None, "locked_at": None}
        releases = current["assigned_agent"] is not None and current["assigned_agent"] == actor
        if releases:
            values.update(assigned_agent=None, assigned_at=None)
        conn.execute(sa.update(R).where(R.c.id == review_id).values(**values))
        if releases:
            _audit(conn, review_id, actor, "release", assignedAgent=[actor, None], via="unlock")
    return True


class AgentRefused(ValueError):
    """The agent named for a drop is no enabled reviewer or admin."""


class AssignedToOther(Exception):
    """The drop is held by someone else, who alone (or an admin) may release it."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


class NotInQueue(Exception):
    """The drop waits for no reviewer (approved, or its number is invalid)."""

    def __init__(self, state: str) -> None:
        super().__init__(state)
        self.state = state


# How often "next drop" looks again when another reviewer took its pick meanwhile.
_NEXT_ATTEMPTS = 5


def next_drop(
    store: ReviewStore, actor: str, project: str | None = None, now: datetime | None = None
) -> dict[str, Any] | None:
    """Take the oldest drop waiting for a reviewer that nobody holds: assigned to `actor`
    and edit-locked for them (recorded as "next"); None when nothing waits.

    Two reviewers never get the same drop: PostgreSQL skips the rows another transaction
    is taking (FOR UPDATE SKIP LOCKED); on both, the UPDATE applies only while the drop is
    still unassigned, and a lost race looks again.
    """
    now = now or datetime.now(UTC)
    waiting = [R.c.queue_rank == 0, R.c.assigned_agent.is_(None), _lock_free_for(actor, now)]
    if project is not None:
        waiting.append(R.c.project == project)
    pick = _ordered(sa.select(R.c.id).where(*waiting)).limit(1)
    taken: uuid.UUID | None = None
    with store.begin() as conn:
        if conn.dialect.name == "postgresql":
            pick = pick.with_for_update(skip_locked=True)
        for _ in range(_NEXT_ATTEMPTS):
            found = conn.execute(pick).scalar_one_or_none()
            if found is None:
                return None
            result = conn.execute(
                sa.update(R)
                .where(R.c.id == found, *waiting)
                .values(assigned_agent=actor, assigned_at=now, locked_by=actor, locked_at=now)
            )
            if result.rowcount == 1:
                taken = found
                _audit(conn, found, actor, "next", assignedAgent=[None, actor])
                break
    return get_drop(store, taken) if taken is not None else None


def _agent_ok(conn: Connection, agent: str) -> bool:
    row = conn.execute(
        sa.select(users.c.role, users.c.disabled).where(users.c.username == agent)
    ).first()
    return row is not None and not row.disabled and row.role in ("reviewer", "admin")


def assign(
    store: ReviewStore, review_id: uuid.UUID, agent: str, actor: str
) -> dict[str, Any] | None:
    """Make `agent` (an enabled reviewer or admin) the drop's assignee, recorded; None: no
    such drop. AgentRefused, NotInQueue (approved or invalid)."""
    now = datetime.now(UTC)
    with store.begin() as conn:
        if not _agent_ok(conn, agent):
            raise AgentRefused(f"{agent!r} is no enabled reviewer or admin")
        current = _current(conn, review_id)
        if current is None:
            return None
        state = queue.state_of(current)
        if state in (queue.APPROVED, queue.INVALID):
            raise NotInQueue(state)
        if current["assigned_agent"] != agent:
            conn.execute(
                sa.update(R)
                .where(R.c.id == review_id)
                .values(assigned_agent=agent, assigned_at=now)
            )
            _audit(
                conn, review_id, actor, "assign", assignedAgent=[current["assigned_agent"], agent]
            )
    return get_drop(store, review_id)


def release(
    store: ReviewStore, review_id: uuid.UUID, actor: str, *, admin: bool = False
) -> dict[str, Any] | None:
    """The drop goes back to the queue, recorded; None: no such drop.

    Only its assignee or an admin may release it (AssignedToOther); the releaser's own
    edit lock goes with it. A drop nobody holds is left as it is.
    """
    with store.begin() as conn:
        current = _current(conn, review_id)
        if current is None:
            return None
        holder = current["assigned_agent"]
        if holder is not None:
            if holder != actor and not admin:
                raise AssignedToOther(str(holder))
            values: dict[str, Any] = {"assigned_agent": None, "assigned_at": None}
            if current["locked_by"] == actor:
                values.update(locked_by=None, locked_at=None)
            conn.execute(sa.update(R).where(R.c.id == review_id).values(**values))
            _audit(conn, review_id, actor, "release", assignedAgent=[holder, None])
    return get_drop(store, review_id)


class NumberTaken(Exception):
    """The corrected drop number is another review's, in the same project."""

    def __init__(self, number: str, other: uuid.UUID) -> None:
        super().__init__(number)
        self.number = number
        self.other = other


# drop_submissions.kind of a post whose number a reviewer corrected: it stays in the log
# (re-reading the message changes nothing) and its copy under the new number links it.
RENUMBERED = "renumbered"


def _renumber(conn: Connection, current: Mapping[str, Any], number: str) -> None:
    """What names the review's old number follows it: its posts and its photos."""
    s, old, project = drop_submissions, current["drop_number"], current["project"]
    posts = conn.execute(
        sa.select(s).where(s.c.project == project, s.c.drop_number == old, s.c.kind != RENUMBERED)
    ).mappings()
    copies = [
        {k: v for k, v in p.items() if k not in ("id", "drop_number")} | {"drop_number": number}
        for p in posts
    ]
    if copies:
        have = {
            (r.chat_jid, r.message_id)
            for r in conn.execute(
                sa.select(s.c.chat_jid, s.c.message_id).where(
                    s.c.project == project, s.c.drop_number == number
                )
            )
        }
        fresh = [c for c in copies if (c["chat_jid"], c["message_id"]) not in have]
        if fresh:
            conn.execute(sa.insert(s), fresh)
        conn.execute(
            sa.update(s)
            .where(s.c.project == project, s.c.drop_number == old)
            .values(kind=RENUMBERED)
        )
    conn.execute(sa.update(G).where(G.c.review_id == current["id"]).values(drop_number=number))


@dataclass(frozen=True)
class Saved:
    """A saved edit: the review after it, and what was merged into it."""

    row: dict[str, Any]
    merged: tuple[str, ...] = ()  # groups changed since the edit's version, kept as they are
    kept_lines: tuple[str, ...] = ()  # the monitor's lines a versionless comment would drop


def update_review(
    store: ReviewStore,
    review_id: uuid.UUID,
    actor: str,
    changes: Mapping[str, Any],
    *,
    version: int | None = None,
    drop_number: str | None = None,
) -> Saved | None:
    """Apply a reviewer's edit and record it in review_edits; None when there is no review.

    The review is read and written in one transaction (row-locked on PostgreSQL); what the
    edit may change, and how it merges with what changed since `version`, is
    review_edits.plan_edit's to say (LockedByOther, EditRejected, EditConflict).

    `drop_number` (normalised and checked against the project's pattern by the caller)
    corrects a mistyped number: the review keeps its id and history, its posts and photos
    follow it, and the monitor finds it by the new number from then on (a post of it is a
    resubmission). NumberTaken when the project has a review of that number.
    """
    now = datetime.now(UTC)
    with store.begin() as conn:
        current = _current(conn, review_id)
        if current is None:
            return None
        serials = {c: changes[c] for c in SERIALS.values() if c in changes}
        rest = {k: v for k, v in changes.items() if k not in serials}
        if rest or drop_number is None:
            plan = plan_edit(dict(current), rest, actor, now, version=version)
        elif held_by_other(current["locked_by"], current["locked_at"], actor, now):
            raise LockedByOther(str(current["locked_by"]))
        else:
            plan = EditPlan()  # a corrected number is no review of the steps
        written, audit = dict(plan.written), dict(plan.audit)
        # Serials are the reviewer's word on what the photos show: written as given (the
        # latest edit wins), audited like the rest.
        for column, value in serials.items():
            if current[column] != value:
                written[column] = value
                audit[column] = [current[column], value]
        renumbered = drop_number is not None and drop_number != current["drop_number"]
        if renumbered:
            other = conn.execute(
                sa.select(R.c.id).where(
                    R.c.project == current["project"],
                    R.c.drop_number == drop_number,
                    R.c.id != review_id,
                )
            ).scalar()
            if other is not None:
                raise NumberTaken(str(drop_number), other)
            written["drop_number"] = drop_number
            _renumber(conn, current, str(drop_number))
        if written.get("completed") and current["assigned_agent"] is not None:
            # Approved: the drop leaves its reviewer.
            written.update(assigned_agent=None, assigned_at=None)
            audit["assignedAgent"] = [current["assigned_agent"], None]
        if written:
            audit.setdefault("version", [version or current["version"], current["version"] + 1])
            # The trigger of 0007 counts the version.
            conn.execute(sa.update(R).where(R.c.id == review_id).values(**written, updated_at=now))
            if renumbered:
                conn.execute(
                    sa.insert(review_edits).values(
                        review_id=review_id,
                        actor=actor,
                        action="renumber",
                        changes={
                            "dropNumber": [current["drop_number"], drop_number],
                            "version": audit["version"],
                        },
                        at=now,
                    )
                )
            if set(written) - {"drop_number"}:
                conn.execute(
                    sa.insert(review_edits).values(
                        review_id=review_id, actor=actor, action="edit", changes=audit, at=now
                    )
                )
    row = get_drop(store, review_id)
    return Saved(row, plan.merged, plan.kept_lines) if row is not None else None
