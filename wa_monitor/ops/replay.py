"""`wa-monitor replay`: the current detection over past messages; `--record` records them.

It reads the source (the bridge store) like a scan does (rowid ranges, the projects' patterns),
keeps the posts whose message time is in the window, and asks the review database what
is already recorded. The result: what a scan of this code would record now (new
reviews, resubmissions), what is already recorded, and what is recorded but this code
no longer detects.

A scan starts after its cursor, so posts that a looser pattern now detects below it are
never recorded by the monitor: `record` hands them to the monitor's own batch path
(the submissions log makes it idempotent, the media worker links their photos as it
does for every logged post) and audits the run in config_audit.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.reviews import Event, ExistingReview, Key, Plan, Post, plan_batch
from wa_monitor.core.times import shown
from wa_monitor.monitor.scan import DEFAULT_CHUNK, filters_of, read_posts
from wa_monitor.sources.protocol import Source
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import config_audit, drop_submissions, qa_photo_reviews

# The config_audit source of a recording replay (its path column names no file: the
# projects file's own history stays the file's changes).
AUDIT_SOURCE = "replay"
# Posts per recording transaction: each is one batch of the monitor's.
RECORD_CHUNK = 5000


@dataclass
class ReplayResult:
    since: datetime
    until: datetime | None
    messages: Counter[str] = field(default_factory=Counter)  # project → messages read
    detected: list[Post] = field(default_factory=list)
    already: list[Post] = field(default_factory=list)
    would_record: list[Event] = field(default_factory=list)
    not_detected: list[dict[str, Any]] = field(default_factory=list)
    fresh: list[Post] = field(default_factory=list)  # detected, not in the submissions log

    def per_project(self) -> dict[str, dict[str, int]]:
        table: dict[str, Counter[str]] = {}
        for project, count in self.messages.items():
            table.setdefault(project, Counter())["messages"] += count
        for post in self.detected:
            table.setdefault(post.project, Counter())["detected"] += 1
        for post in self.already:
            table.setdefault(post.project, Counter())["already"] += 1
        for event in self.would_record:
            kind = "new" if event.kind == "new" else "resubmission"
            table.setdefault(event.post.project, Counter())[kind] += 1
        for row in self.not_detected:
            table.setdefault(row["project"], Counter())["not_detected"] += 1
        keys = ("messages", "detected", "already", "new", "resubmission", "not_detected")
        return {p: {k: c.get(k, 0) for k in keys} for p, c in sorted(table.items())}

    def as_dict(self) -> dict[str, Any]:
        def post(p: Post) -> dict[str, Any]:
            return {
                "project": p.project,
                "drop_number": p.drop_number,
                "chat_jid": p.chat_jid,
                "message_id": p.message_id,
                "sender": p.sender,
                "message_time": p.time.isoformat(),
            }

        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "projects": self.per_project(),
            "would_record": [{"kind": e.kind, **post(e.post)} for e in self.would_record],
            "not_detected": [
                {**r, "message_time": r["message_time"].isoformat()} for r in self.not_detected
            ],
        }


def _existing(store: ReviewStore, keys: set[Key]) -> dict[Key, ExistingReview]:
    """The reviews the posts touch (a plain read: no row locks)."""
    t = qa_photo_reviews
    found: dict[Key, ExistingReview] = {}
    ordered = sorted(keys)
    with store.begin() as conn:
        for start in range(0, len(ordered), 1000):
            chunk = ordered[start : start + 1000]
            query = sa.select(
                t.c.project,
                t.c.drop_number,
                t.c.id,
                t.c.whatsapp_message_date,
                t.c.last_message_date,
                t.c.user_name,
                t.c.submitted_by,
                t.c.incomplete,
                t.c.feedback_sent,
                t.c.comment,
            ).where(sa.tuple_(t.c.project, t.c.drop_number).in_(chunk))
            for r in conn.execute(query):
                found[(r.project, r.drop_number)] = ExistingReview(
                    id=r.id,
                    whatsapp_message_date=r.whatsapp_message_date,
                    last_message_date=r.last_message_date,
                    user_name=r.user_name,
                    submitted_by=r.submitted_by,
                    incomplete=bool(r.incomplete),
                    feedback_sent=r.feedback_sent,
                    comment=r.comment,
                )
    return found


def _recorded(
    store: ReviewStore, jids: list[str], since: datetime, until: datetime | None
) -> list[dict[str, Any]]:
    t = drop_submissions
    query = sa.select(
        t.c.chat_jid, t.c.message_id, t.c.drop_number, t.c.project, t.c.kind, t.c.message_time
    ).where(t.c.chat_jid.in_(jids), t.c.message_time >= since)
    if until is not None:
        query = query.where(t.c.message_time < until)
    with store.begin() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


def replay(
    config: ProjectsConfig,
    source: Source,
    store: ReviewStore,
    since: datetime,
    until: datetime | None = None,
    *,
    projects: list[str] | None = None,
    chunk: int = DEFAULT_CHUNK,
) -> ReplayResult:
    """What scanning the source's messages of [since, until) would record now."""
    result = ReplayResult(since, until)
    by_group = {
        jid: p for jid, p in config.by_group().items() if not projects or p.name in projects
    }
    if not by_group:
        return result
    filters = filters_of(by_group)
    high = source.max_rowid()
    low = 0
    read_at = datetime.now(UTC)
    # A range that would hold no row starts at the next row present: a gap costs one seek.
    while (following := source.next_rowid(low)) is not None and following <= high:
        if following > low + chunk:
            low = following - 1
        upper = min(low + chunk, high)
        scanned = source.read_range(low, upper, filters)
        for jid, count in scanned.counts.items():
            result.messages[by_group[jid].name] += count
        posts, _ = read_posts(source, scanned.rows, by_group, config.zone, read_at)
        for post in posts:
            if post.time >= since and (until is None or post.time < until):
                result.detected.append(post)
        low = upper
    recorded = _recorded(store, list(by_group), since, until)
    logged = {(r["chat_jid"], r["message_id"], r["drop_number"]) for r in recorded}
    detected_keys = {p.log_key for p in result.detected}
    result.already = [p for p in result.detected if p.log_key in logged]
    fresh = result.fresh = [p for p in result.detected if p.log_key not in logged]
    result.not_detected = sorted(
        (
            r
            for r in recorded
            if (r["chat_jid"], r["message_id"], r["drop_number"]) not in detected_keys
        ),
        key=lambda r: (r["message_time"], r["drop_number"]),
    )
    if fresh:
        existing = _existing(store, {p.key for p in fresh})
        plan = plan_batch(fresh, existing, config.zone, datetime.now(UTC))
        result.would_record = sorted(plan.events, key=lambda e: (e.post.time, e.post.drop_number))
    return result


@dataclass
class Recorded:
    """What `record` wrote: the monitor's events, and whether the audit row was written."""

    events: list[Event] = field(default_factory=list)
    audited: bool = False

    def count(self, kind: str, project: str | None = None) -> int:
        return sum(
            1
            for e in self.events
            if e.kind == kind and (project is None or e.post.project == project)
        )


def record(
    config: ProjectsConfig,
    store: ReviewStore,
    result: ReplayResult,
    *,
    actor: str,
    chunk: int = RECORD_CHUNK,
) -> Recorded:
    """Record the replay's unlogged posts as the monitor would, and audit who did it.

    The monitor's `record_batch` with no cursor to advance: resubmissions, the
    submissions log, invalid drops and their auto-replies follow its rules, and a post
    logged meanwhile (by the monitor, or an earlier run) is not recorded twice. What was
    recorded is audited even when a later batch fails.
    """
    done = Recorded()
    auto_reply = {p.name for p in config.enabled if p.auto_reply_invalid}
    try:
        for start in range(0, len(result.fresh), chunk):
            batch = result.fresh[start : start + chunk]
            plan: Plan = store.record_batch(batch, {}, config.zone, auto_reply=auto_reply)
            done.events.extend(plan.events)
    finally:
        if done.events:
            record_audit(store, config, result, done, actor)
            done.audited = True
    return done


def audit_text(config: ProjectsConfig, result: ReplayResult, done: Recorded) -> str:
    """The audit's description: how many, of which window, by which patterns."""
    zone = config.zone
    until = shown(result.until, zone) if result.until else "now"
    lines = [
        f"replay --record: {done.count('new')} new, {done.count('resubmission')} "
        f"resubmission(s) from the messages of {shown(result.since, zone)} to {until}; "
        f"projects file {config.path.resolve()}"
    ]
    for name in sorted({e.post.project for e in done.events}):
        project = config.by_name(name)
        pattern = project.pattern.source if project is not None else "?"
        lines.append(
            f"{name}: {done.count('new', name)} new, {done.count('resubmission', name)} "
            f"resubmission(s), pattern {pattern}"
        )
    return "\n".join(lines) + "\n"


def record_audit(
    store: ReviewStore, config: ProjectsConfig, result: ReplayResult, done: Recorded, actor: str
) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.insert(config_audit).values(
                at=datetime.now(UTC),
                actor=actor[:100],
                source=AUDIT_SOURCE,
                path=None,
                diff=audit_text(config, result, done),
            )
        )


def recorded_runs(store: ReviewStore, limit: int = 20) -> list[dict[str, Any]]:
    """The latest recording replays, newest first (at, actor, diff)."""
    t = config_audit
    query = (
        sa.select(t.c.at, t.c.actor, t.c.diff)
        .where(t.c.source == AUDIT_SOURCE)
        .order_by(t.c.id.desc())
        .limit(limit)
    )
    with store.begin() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]
