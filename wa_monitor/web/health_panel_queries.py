"""The admins' health panel's reads: each one an index read or a tiny table, never a count
of a big table, since the page polls.

What each uses: the last drop per project, ix_qa_photo_reviews_message_day read backwards
from now (its project column filters in the index); the photo backlog, ix_group_messages_queue
over the waiting statuses only (not the available photos, nearly all rows) and
ix_group_messages_posted for the oldest and the newest failures; feedback, ix_feedback_outbox_due
over the statuses a person must look at. Report deliveries (one row per period and
destination) and heartbeats (one row per monitor) are small tables. A webhook gateway's
group: its newest inbox row, ix_gateway_inbox_chat_seq read backwards; the gateways'
sessions are a small table. `inbox_groups` and `last_webhooks` read the whole inbox: they
are for `wa-monitor groups` and `doctor`, run by hand, never for the polled panel.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from wa_monitor.core.config import Project
from wa_monitor.core.gateways import BRIDGE, BRIDGE_WEBHOOK, EVOLUTION, WAHA, gateway_of
from wa_monitor.store.health_figures import outbox_counts
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import (
    feedback_outbox,
    gateway_inbox,
    gateway_sessions,
    group_messages,
    qa_photo_reviews,
    report_deliveries,
)

# How each gateway is named to an operator.
GATEWAY_LABELS = {
    BRIDGE: "bridge store",
    WAHA: "WAHA",
    EVOLUTION: "Evolution API",
    BRIDGE_WEBHOOK: "Go bridge fork's webhook",
}
# The session states in which a gateway receives messages (WAHA's, Evolution's).
WORKING_STATES = {WAHA: ("WORKING",), EVOLUTION: ("open",)}


def projects_by_gateway(projects: Sequence[Project], default: str) -> dict[str, list[Project]]:
    """The projects of each gateway in use (GATEWAY's, `default`, always among them)."""
    found: dict[str, list[Project]] = {default: []}
    for project in projects:
        found.setdefault(gateway_of(project.gateway, default), []).append(project)
    return found


# The feedback statuses a person has to act on (outbox.py: failed gave up, unconfirmed may
# or may not be in the group).
NEEDS_A_PERSON = ("failed", "unconfirmed")


@dataclass(frozen=True)
class LastDrop:
    drop_number: str
    at: datetime  # when it was first posted


@dataclass(frozen=True)
class FailedFeedback:
    id: int
    status: str
    drop_number: str
    project: str | None
    attempts: int
    last_error: str | None
    requested_by: str | None
    created_at: datetime


@dataclass(frozen=True)
class FeedbackBacklog:
    counts: dict[str, int]  # pending, sending, failed, unconfirmed
    entries: list[FailedFeedback]  # failed and unconfirmed, newest first


@dataclass(frozen=True)
class FailedPhoto:
    drop_number: str | None
    project: str | None
    filename: str | None
    attempts: int
    last_error: str | None
    posted_at: datetime


@dataclass(frozen=True)
class MediaBacklog:
    pending: int  # linked to a drop: the worker fetches these
    unlinked: int  # group chatter: never fetched
    failed: int
    oldest_pending_at: datetime | None
    failures: list[FailedPhoto] = field(default_factory=list)


@dataclass(frozen=True)
class FailedReport:
    report: str
    period: str
    kind: str  # folder, email, webhook: the destination's kind, never its address
    attempts: int
    last_error: str | None
    created_at: datetime


def last_drops(
    store: ReviewStore, projects: Iterable[str], since: datetime
) -> dict[str, LastDrop | None]:
    """Each project's newest drop first posted since `since` (None: none since then).

    One query per project, each stopping at its first row; `since` bounds the read of a
    project that posts nothing.
    """
    r = qa_photo_reviews
    # PostgreSQL filters the project inside ix_qa_photo_reviews_message_day; SQLite, which
    # keeps no statistics, would read the project's every row through the unique key and
    # sort them, unless the project is an expression no index holds.
    column = r.c.project if store.dialect == "postgresql" else sa.func.coalesce(r.c.project, "")
    found: dict[str, LastDrop | None] = {}
    with store.read() as conn:
        for project in projects:
            row = conn.execute(
                sa.select(r.c.drop_number, r.c.whatsapp_message_date)
                .where(r.c.whatsapp_message_date >= since, column == project)
                .order_by(r.c.whatsapp_message_date.desc())
                .limit(1)
            ).first()
            found[project] = LastDrop(row.drop_number, row.whatsapp_message_date) if row else None
    return found


def feedback_backlog(store: ReviewStore, limit: int = 20) -> FeedbackBacklog:
    """The outbox's waiting counts, and the entries that wait for a person."""
    t = feedback_outbox
    with store.read() as conn:
        rows = conn.execute(
            sa.select(
                t.c.id,
                t.c.status,
                t.c.drop_number,
                t.c.project,
                t.c.attempts,
                t.c.last_error,
                t.c.requested_by,
                t.c.created_at,
            )
            .where(t.c.status.in_(NEEDS_A_PERSON))
            .order_by(t.c.id.desc())
            .limit(limit)
        ).all()
    entries = [
        FailedFeedback(
            id=int(r.id),
            status=str(r.status),
            drop_number=str(r.drop_number),
            project=r.project,
            attempts=int(r.attempts),
            last_error=r.last_error,
            requested_by=r.requested_by,
            created_at=r.created_at,
        )
        for r in rows
    ]
    return FeedbackBacklog(counts=outbox_counts(store), entries=entries)


def media_backlog(store: ReviewStore, limit: int = 5) -> MediaBacklog:
    """Photos waiting to be fetched, failed ones, the oldest waiting, the newest failures."""
    g = group_messages
    linked = g.c.drop_number.is_not(None)
    with store.read() as conn:
        counts = conn.execute(
            sa.select(g.c.status, linked.label("linked"), sa.func.count().label("n"))
            .where(g.c.status.in_(("pending", "failed")))
            .group_by(g.c.status, linked)
        ).all()
        oldest = conn.execute(
            sa.select(g.c.posted_at)
            .where(g.c.status == "pending", linked)
            .order_by(g.c.posted_at)
            .limit(1)
        ).scalar()
        failed = conn.execute(
            sa.select(
                g.c.drop_number,
                g.c.project,
                g.c.filename,
                g.c.attempts,
                g.c.last_error,
                g.c.posted_at,
            )
            .where(g.c.status == "failed")
            .order_by(g.c.posted_at.desc())
            .limit(limit)
        ).all()
    by = {(str(r.status), bool(r.linked)): int(r.n) for r in counts}
    return MediaBacklog(
        pending=by.get(("pending", True), 0),
        unlinked=by.get(("pending", False), 0),
        failed=by.get(("failed", True), 0) + by.get(("failed", False), 0),
        oldest_pending_at=oldest,
        failures=[
            FailedPhoto(
                drop_number=r.drop_number,
                project=r.project,
                filename=r.filename,
                attempts=int(r.attempts),
                last_error=r.last_error,
                posted_at=r.posted_at,
            )
            for r in failed
        ],
    )


def failed_reports(store: ReviewStore, limit: int = 5) -> list[FailedReport]:
    """The latest report deliveries that failed and were not delivered since."""
    t = report_deliveries
    with store.read() as conn:
        rows = conn.execute(
            sa.select(
                t.c.report,
                t.c.period,
                t.c.destination,
                t.c.attempts,
                t.c.last_error,
                t.c.created_at,
            )
            .where(t.c.status == "failed")
            .order_by(t.c.id.desc())
            .limit(limit)
        ).all()
    return [
        FailedReport(
            report=str(r.report),
            period=str(r.period),
            kind=str(r.destination).split(":", 1)[0],
            attempts=int(r.attempts),
            last_error=r.last_error,
            created_at=r.created_at,
        )
        for r in rows
    ]


# -- the webhook gateways' inbox ------------------------------------------------------------


@dataclass(frozen=True)
class InboxNewest:
    """A group's newest row in the inbox: WhatsApp's time of it, and when it was received."""

    gateway: str
    sent_at: datetime
    received_at: datetime


@dataclass(frozen=True)
class InboxGroup:
    """One chat the webhook gateways delivered messages of."""

    gateway: str
    chat_jid: str
    messages: int
    last_sent_at: datetime
    last_received_at: datetime


@dataclass(frozen=True)
class SessionState:
    """A gateway session's last reported state (WAHA's session.status, Evolution's
    connection.update)."""

    gateway: str
    session: str
    status: str
    changed_at: datetime


def _utc(when: datetime) -> datetime:
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _epoch(seconds: float) -> datetime:
    return datetime.fromtimestamp(float(seconds), UTC)


def inbox_newest(store: ReviewStore, chats: Iterable[str]) -> dict[str, InboxNewest | None]:
    """Each chat's newest sequenced inbox row (None: the inbox has none of the chat).

    One query per chat, each stopping at its first row of ix_gateway_inbox_chat_seq.
    """
    t = gateway_inbox
    found: dict[str, InboxNewest | None] = {}
    with store.read() as conn:
        for chat in sorted(set(chats)):
            row = conn.execute(
                sa.select(t.c.gateway, t.c.sent_at, t.c.received_at)
                .where(t.c.chat_jid == chat, t.c.seq.is_not(None))
                .order_by(t.c.seq.desc())
                .limit(1)
            ).first()
            found[chat] = (
                InboxNewest(str(row.gateway), _epoch(row.sent_at), _utc(row.received_at))
                if row is not None
                else None
            )
    return found


def session_states(store: ReviewStore) -> list[SessionState]:
    """Every gateway session's last reported state (a row per gateway and session)."""
    t = gateway_sessions
    with store.read() as conn:
        rows = conn.execute(
            sa.select(t.c.gateway, t.c.session, t.c.status, t.c.changed_at).order_by(
                t.c.gateway, t.c.session
            )
        ).all()
    return [
        SessionState(str(r.gateway), str(r.session), str(r.status), _utc(r.changed_at))
        for r in rows
    ]


def inbox_groups(store: ReviewStore) -> list[InboxGroup]:
    """Every chat in the inbox, per gateway: its messages, its newest, when last received.

    Reads the whole inbox: for `wa-monitor groups`, not for a page that polls.
    """
    t = gateway_inbox
    with store.read() as conn:
        rows = conn.execute(
            sa.select(
                t.c.gateway,
                t.c.chat_jid,
                sa.func.count().label("n"),
                sa.func.max(t.c.sent_at).label("last_sent"),
                sa.func.max(t.c.received_at).label("last_received"),
            )
            .group_by(t.c.gateway, t.c.chat_jid)
            .order_by(t.c.gateway, t.c.chat_jid)
        ).all()
    return [
        InboxGroup(
            gateway=str(r.gateway),
            chat_jid=str(r.chat_jid),
            messages=int(r.n),
            last_sent_at=_epoch(r.last_sent),
            last_received_at=_utc(r.last_received),
        )
        for r in rows
    ]


def last_webhooks(store: ReviewStore) -> dict[str, datetime]:
    """When each gateway's newest stored message or session state was received.

    Reads the whole inbox: for `doctor`, not for a page that polls.
    """
    found: dict[str, datetime] = {}
    with store.read() as conn:
        rows = conn.execute(
            sa.select(gateway_inbox.c.gateway, sa.func.max(gateway_inbox.c.received_at)).group_by(
                gateway_inbox.c.gateway
            )
        ).all()
        sessions = conn.execute(
            sa.select(
                gateway_sessions.c.gateway, sa.func.max(gateway_sessions.c.updated_at)
            ).group_by(gateway_sessions.c.gateway)
        ).all()
    for gateway, when in [*rows, *sessions]:
        if when is not None:
            when = _utc(when)
            found[str(gateway)] = max(found.get(str(gateway), when), when)
    return found


# -- `wa-monitor bridge`'s connection ---------------------------------------------------------

# Written by `wa-monitor bridge` in its store folder at every change of state (docs/bridge.md).
BRIDGE_STATUS_FILE = "bridge-status.json"
# The states in which `wa-monitor bridge` cannot receive anything until a person acts.
BRIDGE_DEAD_STATES = ("logged_out", "outdated", "banned", "stopped")


@dataclass(frozen=True)
class BridgeConnection:
    """`wa-monitor bridge`'s last recorded connection state (its bridge-status.json)."""

    state: str  # starting, pairing, connected, disconnected, logged_out, outdated, banned, stopped
    since: datetime | None
    detail: str
    pid: int
    pairing_failures: int
    path: Path


def bridge_connection(folder: Path | None) -> BridgeConnection | None:
    """The status file in a bridge's store folder; None when there is none (another bridge)
    or it cannot be read."""
    if folder is None:
        return None
    path = folder / BRIDGE_STATUS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("state"), str):
        return None
    try:
        since = datetime.fromisoformat(str(data.get("since") or ""))
    except ValueError:
        since = None
    try:
        pid, failures = int(data.get("pid") or 0), int(data.get("pairing_failures") or 0)
    except (TypeError, ValueError):
        pid, failures = 0, 0
    return BridgeConnection(
        state=data["state"],
        since=_utc(since) if since is not None else None,
        detail=str(data.get("detail") or ""),
        pid=pid,
        pairing_failures=failures,
        path=path,
    )
