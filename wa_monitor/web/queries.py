"""The dashboard's data layer: parameterised SQLAlchemy Core queries on PostgreSQL and SQLite."""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from time import monotonic as _monotonic
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wa_monitor.core.review_edits import LOCK_SECONDS, LockedByOther, plan_edit
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback.outbox import FAILED, PENDING, SENDING, SENT
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import feedback_outbox, qa_photo_reviews, review_edits
from wa_monitor.web.changes import REVIEWS, ChangeFeed, Version

log = logging.getLogger("wa_monitor.web")
R = qa_photo_reviews
# Newest WhatsApp message of a drop (a resubmission counts), for the list order.
LATEST = sa.func.coalesce(R.c.last_message_date, R.c.whatsapp_message_date, R.c.created_at)


@dataclass(frozen=True)
class DropFilter:
    id: uuid.UUID | None = None
    status: str | None = None  # "complete" | "incomplete"
    project: str | None = None
    resubmitted: bool | None = None
    date_from: date | None = None  # local dates of the WhatsApp message
    date_to: date | None = None
    search: str | None = None
    feedback: str | None = None  # "sent" | "unsent"


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


def _conditions(f: DropFilter, zone: tzinfo) -> list[sa.ColumnElement[bool]]:
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
        needle = "".join(f.search.split()).upper()
        where.append(sa.func.upper(R.c.drop_number).contains(needle, autoescape=True))
    if f.feedback == "sent":
        where.append(R.c.feedback_sent.is_not(None))
    elif f.feedback == "unsent":
        where.append(R.c.feedback_sent.is_(None))
    return where


def _ordered(query: sa.Select[Any]) -> sa.Select[Any]:
    return query.order_by(R.c.resubmitted.desc(), LATEST.desc(), R.c.drop_number, R.c.id)


def list_drops(
    store: ReviewStore,
    f: DropFilter,
    zone: tzinfo,
    *,
    limit: int | None = None,
    offset: int = 0,
) -> tuple[list[dict[str, Any]], int]:
    """The filtered reviews in list order (resubmitted first, newest message first), and count."""
    where = _conditions(f, zone)
    with store.begin() as conn:
        total = conn.execute(sa.select(sa.func.count()).select_from(R).where(*where)).scalar_one()
        rows = _page(conn, where, limit, offset)
    return rows, int(total)


def page_of_drops(
    store: ReviewStore, f: DropFilter, zone: tzinfo, *, limit: int, offset: int = 0
) -> list[dict[str, Any]]:
    """One page of the filtered reviews in list order, without counting them all.

    The first page is read from ix_qa_photo_reviews_list_latest (migration 0004).
    """
    with store.read() as conn:
        return _page(conn, _conditions(f, zone), limit, offset)


def _page(
    conn: Connection, where: list[sa.ColumnElement[bool]], limit: int | None, offset: int
) -> list[dict[str, Any]]:
    query = _ordered(sa.select(R).where(*where)).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    rows = [dict(r) for r in conn.execute(query).mappings()]
    _attach_outbox(conn, rows)
    return rows


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


class SummaryCache:
    """The summary cards per filter set, reused while current (ttl 0: never reused).

    The summary aggregates every matching review (the whole table without filters), too
    dear for each request of a polling dashboard. The first request for a filter set
    computes it; afterwards a stale entry is recomputed in a background thread while
    requests keep answering the previous value, so no request waits for a refresh. An
    entry is stale once PostgreSQL's change feed says the reviews changed, or, without a
    listening feed (SQLite), once it is `ttl` seconds old. `clear()` after this process's
    own writes (the next request computes afresh); other processes' writes (the monitor)
    show after one refresh.
    """

    def __init__(
        self, ttl: float, *, feed: ChangeFeed | None = None, max_entries: int = 256
    ) -> None:
        self.ttl = ttl
        self.feed = feed
        self.max_entries = max_entries
        self._entries: dict[
            tuple[DropFilter, str], tuple[float, Version | None, dict[str, Any]]
        ] = {}
        self._refreshing: set[tuple[DropFilter, str]] = set()
        self._lock = threading.Lock()
        self._generation = 0

    def get(self, store: ReviewStore, f: DropFilter, zone: tzinfo) -> dict[str, Any]:
        if self.ttl <= 0 or f.id is not None:
            return summary(store, f, zone)
        key = (f, str(zone))
        version = self.feed.version(REVIEWS) if self.feed is not None else None
        with self._lock:
            cached = self._entries.get(key)
            generation = self._generation
            if cached is not None:
                if version is not None:
                    stale = cached[1] != version
                else:
                    stale = _monotonic() - cached[0] >= self.ttl
                if stale and key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(
                        target=self._refresh,
                        args=(store, f, zone, key, generation),
                        name="summary-refresh",
                        daemon=True,
                    ).start()
                return cached[2]
        return self._compute(store, f, zone, key, generation)

    def _refresh(
        self,
        store: ReviewStore,
        f: DropFilter,
        zone: tzinfo,
        key: tuple[DropFilter, str],
        generation: int,
    ) -> None:
        try:
            self._compute(store, f, zone, key, generation)
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
        key: tuple[DropFilter, str],
        generation: int,
    ) -> dict[str, Any]:
        started = _monotonic()
        version = self.feed.version(REVIEWS) if self.feed is not None else None
        value = summary(store, f, zone)
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


def summary(store: ReviewStore, f: DropFilter, zone: tzinfo) -> dict[str, Any]:
    """The summary cards over the filtered reviews."""
    where = _conditions(f, zone)
    query = sa.select(
        sa.func.count(),
        sa.func.count().filter(R.c.completed.is_(True)),
        sa.func.count().filter(R.c.feedback_sent.is_not(None)),
        sa.func.coalesce(sa.func.sum(R.c.feedback_count), 0),
        sa.func.count().filter(R.c.resubmitted.is_(True)),
    ).where(*where)
    with store.read() as conn:
        total, complete, sent, feedback, resubmitted = conn.execute(query).one()
    total, complete = int(total), int(complete)
    return {
        "total": total,
        "incomplete": total - complete,
        "complete": complete,
        "feedbackSent": int(sent),
        "resubmitted": int(resubmitted),
        "totalFeedback": int(feedback),
        "averageFeedbackCount": round(int(feedback) / total, 2) if total else 0.0,
    }


def daily_counts(store: ReviewStore, day: date, zone: tzinfo) -> list[tuple[str | None, int]]:
    """Distinct drop numbers per project whose first WhatsApp message fell on `day` locally.

    Rows without a project are counted under None, never dropped.
    """
    start, end = local_day_bounds(day, zone)
    query = (
        sa.select(R.c.project, sa.func.count(sa.distinct(R.c.drop_number)))
        .where(R.c.whatsapp_message_date >= start, R.c.whatsapp_message_date < end)
        .group_by(R.c.project)
    )
    with store.read() as conn:
        rows = [(p, int(n)) for p, n in conn.execute(query).all()]
    return sorted(rows, key=lambda pn: (pn[0] is None, pn[0] or ""))


def _period_counts(
    conn: Connection, project: str | None, start: datetime | None, end: datetime | None
) -> dict[str, Any]:
    query = sa.select(sa.func.count(), sa.func.count().filter(R.c.completed.is_(True)))
    if project is not None:
        query = query.where(R.c.project == project)
    if start is not None:
        query = query.where(R.c.whatsapp_message_date >= start)
    if end is not None:
        query = query.where(R.c.whatsapp_message_date < end)
    total, complete = (int(v) for v in conn.execute(query).one())
    return {
        "total": total,
        "complete": complete,
        "incomplete": total - complete,
        "completionRate": round(100 * complete / total, 1) if total else 0.0,
    }


def project_stats(
    store: ReviewStore, project: str | None, zone: tzinfo, now: datetime | None = None
) -> dict[str, Any]:
    """today / this week (from Monday) / this month / all time, in the business zone."""
    day = today(zone, now)
    start_today, end_today = local_day_bounds(day, zone)
    week = local_day_bounds(day - timedelta(days=day.weekday()), zone)[0]
    month = local_day_bounds(day.replace(day=1), zone)[0]
    with store.begin() as conn:
        return {
            "project": project,
            "today": _period_counts(conn, project, start_today, end_today),
            "week": _period_counts(conn, project, week, end_today),
            "month": _period_counts(conn, project, month, end_today),
            "allTime": _period_counts(conn, project, None, None),
        }


def projects_summary(
    store: ReviewStore,
    start: date,
    end: date,
    zone: tzinfo,
    labels: Mapping[str, str],
) -> dict[str, Any]:
    """Totals, per project and per agent, failures and feedback over [start, end] local dates."""
    lo, hi = local_day_bounds(start, zone)[0], local_day_bounds(end, zone)[1]
    in_range = (R.c.whatsapp_message_date >= lo, R.c.whatsapp_message_date < hi)
    columns = [
        R.c.id,
        R.c.project,
        R.c.user_name,
        R.c.submitted_by,
        R.c.completed,
        R.c.incomplete,
        R.c.resubmitted,
        R.c.feedback_sent,
        R.c.feedback_count,
        R.c.incorrect_steps,
        *(R.c[s] for s in STEP_COLUMNS),
    ]
    t = feedback_outbox
    with store.begin() as conn:
        rows: list[Mapping[str, Any]] = [
            dict(r) for r in conn.execute(sa.select(*columns).where(*in_range)).mappings()
        ]
        outbox: dict[str, int] = {
            str(status): int(n)
            for status, n in conn.execute(
                sa.select(t.c.status, sa.func.count())
                .join(R, R.c.id == t.c.review_id)
                .where(*in_range)
                .group_by(t.c.status)
            ).all()
        }
    total = len(rows)

    def rate(part: int, whole: int) -> float:
        return round(100 * part / whole, 1) if whole else 0.0

    def tally(group: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        n = len(group)
        complete = sum(1 for r in group if r["completed"])
        resub = sum(1 for r in group if r["resubmitted"])
        first_pass = sum(1 for r in group if r["completed"] and not r["resubmitted"])
        return {
            "total": n,
            "complete": complete,
            "incomplete": n - complete,
            "resubmitted": resub,
            "completionRate": rate(complete, n),
            "firstTimePassRate": rate(first_pass, n),
        }

    by_project: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
    by_agent: dict[tuple[str, str | None], list[Mapping[str, Any]]] = defaultdict(list)
    for r in rows:
        by_project[r["project"]].append(r)
        by_agent[(r["user_name"], r["submitted_by"])].append(r)
    # A failure is a step a reviewed-but-not-complete drop misses, or one marked incorrect.
    failures: Counter[str] = Counter()
    reviewed = [r for r in rows if r["incomplete"] and not r["completed"]]
    for r in reviewed:
        wrong = set(r["incorrect_steps"] or [])
        for s in STEP_COLUMNS:
            if not r[s] or s in wrong:
                failures[s] += 1
    totals = tally(rows)
    sent = sum(1 for r in rows if r["feedback_sent"] is not None)
    messages = sum(int(r["feedback_count"] or 0) for r in rows)
    return {
        "startDate": start.isoformat(),
        "endDate": end.isoformat(),
        "totals": totals,
        "byProject": [
            {"project": p, **tally(g)}
            for p, g in sorted(by_project.items(), key=lambda kv: (kv[0] is None, kv[0] or ""))
        ],
        "resubmissionRate": rate(totals["resubmitted"], total),
        "firstTimePassRate": totals["firstTimePassRate"],
        "commonFailures": [
            {
                "step": s,
                "label": labels.get(s, s),
                "count": n,
                "percentage": rate(n, len(reviewed)),
            }
            for s, n in sorted(failures.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "feedbackStats": {
            "dropsWithFeedback": sent,
            "messagesSent": messages,
            "feedbackRate": rate(sent, total),
            "averagePerDrop": round(messages / total, 2) if total else 0.0,
            "pending": int(outbox.get(PENDING, 0)) + int(outbox.get(SENDING, 0)),
            "failed": int(outbox.get(FAILED, 0)),
            "sent": int(outbox.get(SENT, 0)),
        },
        "agentPerformance": [
            {"agent": name, "phone": phone, **tally(g)}
            for (name, phone), g in sorted(by_agent.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        ],
    }


def get_drop(store: ReviewStore, review_id: uuid.UUID) -> dict[str, Any] | None:
    with store.read() as conn:
        row = conn.execute(sa.select(R).where(R.c.id == review_id)).mappings().first()
        if row is None:
            return None
        rows = [dict(row)]
        _attach_outbox(conn, rows)
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


def _holder(conn: Connection, review_id: uuid.UUID) -> str | None:
    """Who holds the lock (None: no such review). Raises nothing."""
    row = conn.execute(sa.select(R.c.locked_by).where(R.c.id == review_id)).first()
    if row is None:
        return None
    return str(row.locked_by or "")


def lock(store: ReviewStore, review_id: uuid.UUID, actor: str) -> bool:
    """Take or refresh the 5-minute edit lock; False when there is no such review."""
    now = datetime.now(UTC)
    with store.begin() as conn:
        result = conn.execute(
            sa.update(R)
            .where(R.c.id == review_id, _lock_free_for(actor, now))
            .values(locked_by=actor, locked_at=now)
        )
        if result.rowcount == 1:
            return True
        holder = _holder(conn, review_id)
    if holder is None:
        return False
    raise LockedByOther(holder)


def unlock(store: ReviewStore, review_id: uuid.UUID, actor: str, *, force: bool = False) -> bool:
    """Release the lock (the holder's, an expired one, or any with force)."""
    now = datetime.now(UTC)
    with store.begin() as conn:
        query = sa.update(R).where(R.c.id == review_id)
        if not force:
            query = query.where(_lock_free_for(actor, now))
        result = conn.execute(query.values(locked_by=None, locked_at=None))
        if result.rowcount == 1:
            return True
        holder = _holder(conn, review_id)
    if holder is None:
        return False
    raise LockedByOther(holder)


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
) -> Saved | None:
    """Apply a reviewer's edit and record it in review_edits; None when there is no review.

    The review is read and written in one transaction (row-locked on PostgreSQL); what the
    edit may change, and how it merges with what changed since `version`, is
    review_edits.plan_edit's to say (LockedByOther, EditRejected, EditConflict).
    """
    now = datetime.now(UTC)
    with store.begin() as conn:
        current = (
            conn.execute(
                sa.select(R).where(R.c.id == review_id).with_for_update()
                if conn.dialect.name == "postgresql"
                else sa.select(R).where(R.c.id == review_id)
            )
            .mappings()
            .first()
        )
        if current is None:
            return None
        plan = plan_edit(dict(current), changes, actor, now, version=version)
        if plan.written:
            # The trigger of 0007 counts the version.
            conn.execute(
                sa.update(R).where(R.c.id == review_id).values(**plan.written, updated_at=now)
            )
            conn.execute(
                sa.insert(review_edits).values(
                    review_id=review_id, actor=actor, action="edit", changes=plan.audit, at=now
                )
            )
    row = get_drop(store, review_id)
    return Saved(row, plan.merged, plan.kept_lines) if row is not None else None
