"""The dashboard's figures: drops per day, a project's periods, the projects summary.

Every figure is an aggregate computed by the database (a handful of grouped queries per
answer, whatever the number of reviews). Invalid numbers are no drops: left out of all.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback.outbox import FAILED, PENDING, SENDING, SENT
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import UTCDateTime, feedback_outbox
from wa_monitor.web.queries import R, local_day_bounds, today

# A review without a project is counted under this name, as the front end names it.
UNKNOWN_PROJECT = "Unknown"
# The front end's periods: from this many days before today through today.
WEEK_DAYS = 7
MONTH_DAYS = 30
# An incomplete drop first posted longer ago than this needs attention.
ATTENTION_AFTER = timedelta(days=7)
# agentPerformance and installerPerformance list this many, most complete drops first.
TOP_AGENTS = 10

STEP_ORDER = {s: i for i, s in enumerate(STEP_COLUMNS)}

_PROJECT = sa.func.coalesce(R.c.project, UNKNOWN_PROJECT)
_VALID = R.c.invalid.is_(False)


def _count(*where: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.count().filter(sa.and_(*where)) if where else sa.func.count()


def rate(part: int, whole: int) -> float:
    """A percentage with one decimal; 0 of nothing is 0."""
    return round(100 * part / whole, 1) if whole else 0.0


def daily_counts(store: ReviewStore, day: date, zone: tzinfo) -> list[tuple[str, int]]:
    """Distinct drop numbers per project whose first WhatsApp message fell on `day` locally.

    Rows without a project are counted under UNKNOWN_PROJECT, never dropped.
    """
    start, end = local_day_bounds(day, zone)
    query = (
        sa.select(_PROJECT, sa.func.count(sa.distinct(R.c.drop_number)))
        .where(R.c.whatsapp_message_date >= start, R.c.whatsapp_message_date < end, _VALID)
        .group_by(_PROJECT)
        .order_by(_PROJECT)
    )
    with store.read() as conn:
        return [(str(p), int(n)) for p, n in conn.execute(query).all()]


def _period(total: int, complete: int) -> dict[str, Any]:
    return {
        "total": total,
        "complete": complete,
        "incomplete": total - complete,
        "completionRate": rate(complete, total),
    }


def project_stats(
    store: ReviewStore, project: str, zone: tzinfo, now: datetime | None = None
) -> dict[str, Any]:
    """today, the last 7 and 30 days (through today) and all time, in the business zone.

    An unknown project has zeros everywhere, as the front end answers it.
    """
    day = today(zone, now)
    start_today, end_today = local_day_bounds(day, zone)
    week = local_day_bounds(day - timedelta(days=WEEK_DAYS), zone)[0]
    month = local_day_bounds(day - timedelta(days=MONTH_DAYS), zone)[0]
    at = R.c.whatsapp_message_date
    done = R.c.completed.is_(True)
    periods = {
        "today": (at >= start_today, at < end_today),
        "week": (at >= week, at < end_today),
        "month": (at >= month, at < end_today),
    }
    columns = [_count(), _count(done)]
    for bounds in periods.values():
        columns += [_count(*bounds), _count(*bounds, done)]
    query = sa.select(*columns).where(R.c.project == project, _VALID)
    with store.read() as conn:
        counts = [int(n) for n in conn.execute(query).one()]
    stats = {name: _period(*counts[2 + 2 * i : 4 + 2 * i]) for i, name in enumerate(periods)}
    return {"project": project, "stats": {**stats, "allTime": _period(*counts[:2])}}


def projects_summary(
    store: ReviewStore,
    start: date,
    end: date,
    zone: tzinfo,
    labels: Mapping[str, str],
    now: datetime | None = None,
) -> dict[str, Any]:
    """The front end's projects summary over [start, end] local dates, with our extras.

    In the range: the totals, per project (beside its all-time figures), per agent and per
    installer, failures by step and by reason, feedback. All time: the system's figures, outstanding
    drops and resubmissions. Trends: the last 7 and 30 days through today.
    """
    lo, hi = local_day_bounds(start, zone)[0], local_day_bounds(end, zone)[1]
    in_range = (R.c.whatsapp_message_date >= lo, R.c.whatsapp_message_date < hi, _VALID)
    with store.read() as conn:
        ranged = _ranged_by_project(conn, in_range)
        overall = _overall_by_project(conn, (now or datetime.now(UTC)) - ATTENTION_AFTER)
        trends = _trends(conn, zone, now)
        failures, reviewed = _step_failures(conn, in_range)
        reasons = _reason_counts(conn, lo, hi)
        outbox = _outbox_counts(conn, in_range)
        agents = _agents(conn, in_range)
        installers = _installers(conn, in_range)

    totals = _tally({k: sum(p[k] for p in ranged.values()) for k in _TALLY_KEYS})
    all_time = {k: sum(p[k] for p in overall.values()) for k in ("total", "complete", "resub")}
    stale = sum(p["stale"] for p in overall.values())
    incomplete_now = all_time["total"] - all_time["complete"]
    by_project = []
    for name, counts in sorted(ranged.items(), key=lambda kv: (-kv[1]["total"], kv[0])):
        whole = overall.get(name, {"total": 0, "complete": 0})
        by_project.append(
            {
                "project": name,
                **_tally(counts),
                "overallTotal": whole["total"],
                "overallComplete": whole["complete"],
                "overallCompletionRate": rate(whole["complete"], whole["total"]),
            }
        )
    sent, pending = totals["feedbackSent"], totals["feedbackPending"]
    return {
        "startDate": start.isoformat(),
        "endDate": end.isoformat(),
        "total": totals["total"],
        "complete": totals["complete"],
        "incomplete": totals["incomplete"],
        "completionRate": totals["completionRate"],
        "totals": {k: totals[k] for k in _TALLY_OUT},
        "byProject": [{k: p[k] for k in ("project", *_TALLY_OUT, *_OVERALL)} for p in by_project],
        "overallStats": {
            "totalInSystem": all_time["total"],
            "completedInSystem": all_time["complete"],
            "systemCompletionRate": rate(all_time["complete"], all_time["total"]),
        },
        "trends": trends,
        "outstanding": {
            "totalIncomplete": incomplete_now,
            "needsAttention": stale,
            "recent": incomplete_now - stale,
        },
        "resubmissions": {
            "total": all_time["resub"],
            "rate": rate(all_time["resub"], all_time["total"]),
            # The front end's: drops never resubmitted; 100 when there is no drop yet.
            "firstTimePassRate": (
                rate(all_time["total"] - all_time["resub"], all_time["total"])
                if all_time["total"]
                else 100.0
            ),
        },
        "resubmissionRate": rate(totals["resubmitted"], totals["total"]),
        "firstTimePassRate": totals["firstTimePassRate"],
        "commonFailures": [
            {
                "step": labels.get(s, s),
                "column": s,
                "label": labels.get(s, s),
                "count": n,
                "percentage": rate(n, reviewed),
            }
            for s, n in sorted(failures.items(), key=lambda kv: (-kv[1], STEP_ORDER[kv[0]]))
            if n
        ],
        "failuresByReason": [
            {"step": s, "label": labels.get(s, s), "reason": reason, "count": n}
            for s, reason, n in reasons
        ],
        "feedbackStats": {
            "sent": sent,
            "pending": pending,
            "sendRate": rate(sent, sent + pending),
            "dropsWithFeedback": sent,
            "messagesSent": totals["messages"],
            "feedbackRate": rate(sent, totals["total"]),
            "averagePerDrop": round(totals["messages"] / totals["total"], 2)
            if totals["total"]
            else 0.0,
            "outbox": outbox,
        },
        "agentPerformance": agents,
        "installerPerformance": installers,
    }


_TALLY_KEYS = (
    "total",
    "complete",
    "resubmitted",
    "firstPass",
    "feedbackSent",
    "feedbackPending",
    "messages",
)
_TALLY_OUT = (
    "total",
    "complete",
    "incomplete",
    "resubmitted",
    "completionRate",
    "firstTimePassRate",
)
_OVERALL = ("overallTotal", "overallComplete", "overallCompletionRate")


def _tally(c: Mapping[str, int]) -> dict[str, Any]:
    return {
        **c,
        "incomplete": c["total"] - c["complete"],
        "completionRate": rate(c["complete"], c["total"]),
        "firstTimePassRate": rate(c["firstPass"], c["total"]),
    }


def _tally_columns() -> list[sa.ColumnElement[Any]]:
    done, resub = R.c.completed.is_(True), R.c.resubmitted.is_(True)
    return [
        _count().label("total"),
        _count(done).label("complete"),
        _count(resub).label("resubmitted"),
        _count(done, R.c.resubmitted.is_(False)).label("firstPass"),
    ]


def _ranged_by_project(
    conn: Connection, in_range: tuple[sa.ColumnElement[bool], ...]
) -> dict[str, dict[str, int]]:
    # Pending feedback, as the front end counts it: not complete, no feedback sent yet.
    query = (
        sa.select(
            _PROJECT.label("project"),
            *_tally_columns(),
            _count(R.c.feedback_sent.is_not(None)).label("feedbackSent"),
            _count(R.c.feedback_sent.is_(None), R.c.completed.is_(False)).label("feedbackPending"),
            sa.func.coalesce(sa.func.sum(R.c.feedback_count), 0).label("messages"),
        )
        .where(*in_range)
        .group_by(_PROJECT)
    )
    return {
        str(r["project"]): {k: int(r[k]) for k in _TALLY_KEYS}
        for r in conn.execute(query).mappings()
    }


def _overall_by_project(conn: Connection, cutoff: datetime) -> dict[str, dict[str, int]]:
    first_post = sa.func.coalesce(R.c.whatsapp_message_date, R.c.created_at)
    query = (
        sa.select(
            _PROJECT.label("project"),
            _count().label("total"),
            _count(R.c.completed.is_(True)).label("complete"),
            _count(R.c.resubmitted.is_(True)).label("resub"),
            _count(R.c.completed.is_(False), first_post < cutoff).label("stale"),
        )
        .where(_VALID)
        .group_by(_PROJECT)
    )
    keys = ("total", "complete", "resub", "stale")
    return {str(r["project"]): {k: int(r[k]) for k in keys} for r in conn.execute(query).mappings()}


def _trends(conn: Connection, zone: tzinfo, now: datetime | None) -> dict[str, Any]:
    day = today(zone, now)
    end = local_day_bounds(day, zone)[1]
    week = local_day_bounds(day - timedelta(days=WEEK_DAYS), zone)[0]
    month = local_day_bounds(day - timedelta(days=MONTH_DAYS), zone)[0]
    at, done = R.c.whatsapp_message_date, R.c.completed.is_(True)
    query = sa.select(_count(at >= week), _count(at >= week, done), _count(), _count(done)).where(
        at >= month, at < end, _VALID
    )
    w_total, w_done, m_total, m_done = (int(n) for n in conn.execute(query).one())
    return {"weekly": _period(w_total, w_done), "monthly": _period(m_total, m_done)}


def _step_failures(
    conn: Connection, in_range: tuple[sa.ColumnElement[bool], ...]
) -> tuple[dict[str, int], int]:
    """Per step, the reviewed-but-not-complete drops missing it (a step marked incorrect is
    unticked, see core.review_edits); and how many such drops there are."""
    missing = [
        sa.func.coalesce(sa.func.sum(sa.case((R.c[s].is_(False), 1), else_=0)), 0)
        for s in STEP_COLUMNS
    ]
    query = sa.select(sa.func.count(), *missing).where(
        *in_range, R.c.incomplete.is_(True), R.c.completed.is_(False)
    )
    reviewed, *counts = (int(n) for n in conn.execute(query).one())
    return dict(zip(STEP_COLUMNS, counts, strict=True)), reviewed


# The (step, reason) pairs of incorrect_reasons, one row per pick. Entries that are not a
# list of text are skipped (guarded, so odd JSON never fails the query).
_REASONS_SQL = {
    "postgresql": """
        SELECT s.key AS step, btrim(r.value #>> '{}') AS reason, q.id AS review_id
        FROM qa_photo_reviews AS q
        CROSS JOIN LATERAL jsonb_each(CASE WHEN jsonb_typeof(q.incorrect_reasons) = 'object'
            THEN q.incorrect_reasons ELSE '{}'::jsonb END) AS s(key, value)
        CROSS JOIN LATERAL jsonb_array_elements(CASE WHEN jsonb_typeof(s.value) = 'array'
            THEN s.value ELSE '[]'::jsonb END) AS r(value)
        WHERE q.whatsapp_message_date >= :lo AND q.whatsapp_message_date < :hi
          AND NOT q.invalid AND q.incorrect_reasons IS NOT NULL
          AND jsonb_typeof(r.value) = 'string'
    """,
    "sqlite": """
        SELECT s.key AS step, trim(r.value) AS reason, q.id AS review_id
        FROM qa_photo_reviews AS q,
             json_each(CASE WHEN json_type(q.incorrect_reasons) = 'object'
                 THEN q.incorrect_reasons ELSE '{}' END) AS s,
             json_each(CASE WHEN s.type = 'array' THEN s.value ELSE '[]' END) AS r
        WHERE q.whatsapp_message_date >= :lo AND q.whatsapp_message_date < :hi
          AND NOT q.invalid AND q.incorrect_reasons IS NOT NULL
          AND r.type = 'text'
    """,
}


def _reason_counts(conn: Connection, lo: datetime, hi: datetime) -> list[tuple[str, str, int]]:
    """How many drops carry each (step, reason) the reviewers picked, most common first.

    Spellings that differ only in (ASCII) case are one reason, shown in one of them.
    """
    picks = sa.text(_REASONS_SQL[conn.dialect.name]).bindparams(
        sa.bindparam("lo", lo, type_=UTCDateTime()), sa.bindparam("hi", hi, type_=UTCDateTime())
    )
    p = picks.columns(
        sa.column("step", sa.String), sa.column("reason", sa.String), sa.column("review_id")
    ).subquery("picks")
    folded = sa.func.lower(p.c.reason)
    query = (
        sa.select(p.c.step, sa.func.max(p.c.reason), sa.func.count(sa.distinct(p.c.review_id)))
        .where(p.c.reason != "")
        .group_by(p.c.step, folded)
    )
    rows = [(str(s), str(r), int(n)) for s, r, n in conn.execute(query).all() if s in STEP_ORDER]
    return sorted(rows, key=lambda row: (-row[2], STEP_ORDER[row[0]], row[1]))


def _outbox_counts(
    conn: Connection, in_range: tuple[sa.ColumnElement[bool], ...]
) -> dict[str, int]:
    """The feedback messages of the range's drops by delivery state."""
    t = feedback_outbox
    counts = {
        str(status): int(n)
        for status, n in conn.execute(
            sa.select(t.c.status, sa.func.count())
            .join(R, R.c.id == t.c.review_id)
            .where(*in_range)
            .group_by(t.c.status)
        ).all()
    }
    return {
        "pending": counts.get(PENDING, 0) + counts.get(SENDING, 0),
        "failed": counts.get(FAILED, 0),
        "sent": counts.get(SENT, 0),
    }


def _top(
    conn: Connection,
    in_range: tuple[sa.ColumnElement[bool], ...],
    who: tuple[sa.Column[Any], ...],
) -> list[dict[str, Any]]:
    """Per `who`, the TOP_AGENTS with the most complete drops, then the most drops."""
    complete = _count(R.c.completed.is_(True))
    query = (
        sa.select(*who, *_tally_columns())
        .where(*in_range, *(c.is_not(None) for c in who[:1]))
        .group_by(*who)
        .order_by(complete.desc(), sa.func.count().desc(), *who)
        .limit(TOP_AGENTS)
    )
    rows: list[dict[str, Any]] = []
    for r in conn.execute(query).mappings():
        tally = _tally({k: int(r[k]) for k in ("total", "complete", "resubmitted", "firstPass")})
        rows.append(
            {
                **{c.name: r[c.name] for c in who},
                "drops": tally["total"],
                **{k: tally[k] for k in _TALLY_OUT},
            }
        )
    return rows


def _agents(conn: Connection, in_range: tuple[sa.ColumnElement[bool], ...]) -> list[dict[str, Any]]:
    """The front end's agents: the drops' assignedAgent (the reviewer holding them)."""
    return [
        {"agent": r.pop("assigned_agent"), **r} for r in _top(conn, in_range, (R.c.assigned_agent,))
    ]


def _installers(
    conn: Connection, in_range: tuple[sa.ColumnElement[bool], ...]
) -> list[dict[str, Any]]:
    """The installers who posted the drops, by name and phone."""
    return [
        {"installer": r.pop("user_name"), "phone": r.pop("submitted_by"), **r}
        for r in _top(conn, in_range, (R.c.user_name, R.c.submitted_by))
    ]
