"""Feedback to the installers' group: the text, the gateways' clients, the outbox and its sender.

A feedback request is written to `feedback_outbox` first (idempotent on the client's
request key; the same message for the same drop moments later is refused unless asked
to resend), then delivered through the project's gateway (feedback.gateways): at once by
the request, later by the retrying sender when the gateway certainly did not take it
(down, not connected to WhatsApp). A gateway that answers the message's WhatsApp id
(WAHA, Evolution API, `wa-monitor bridge`) confirms the send, and the id is kept with the
entry. The upstream bridge returns no id, so an attempt whose outcome is unknown (no
answer in time, a connection broken after the message went out, a proxy's 5xx, a
dashboard that stopped between sending and recording) is never repeated automatically:
the entry becomes `unconfirmed` until a reviewer sends it again or marks it as sent.
`feedback_sent` is set on the review only when the gateway says it sent the message, or
a reviewer saw it.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import partial
from typing import Any, Protocol

import anyio.to_thread
import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import ReviewDatabaseError, UniqueViolation
from wa_monitor.core.steps import STEP_COLUMNS, STEP_LABELS
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import (
    drop_submissions,
    feedback_outbox,
    qa_photo_reviews,
    review_edits,
)

log = logging.getLogger("wa_monitor.feedback.outbox")

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
# The bridge may or may not have sent it: never picked up again without a reviewer.
UNCONFIRMED = "unconfirmed"
STATUSES = (PENDING, SENDING, SENT, FAILED, UNCONFIRMED)
# Delay before attempt n+1 after n failed attempts; after the last one the entry fails.
DEFAULT_BACKOFF: tuple[float, ...] = (5, 15, 60, 300, 900, 1800)
# How long a claimed entry stays reserved; a claim older than this was abandoned by a
# sender that stopped mid-send, and becomes unconfirmed.
CLAIM_SECONDS = 120.0
# Due entries read per pass of the sender.
DUE_BATCH = 100
# The same message for the same drop within this time is a repeat (a second click, a
# twin request without a key), refused unless the request asks to resend.
DUPLICATE_WINDOW = timedelta(minutes=10)


# -- the text ---------------------------------------------------------------------------


def feedback_text(
    drop_number: str,
    steps: Mapping[str, bool],
    incorrect_steps: Sequence[str] = (),
    incorrect_comments: Mapping[str, str] | None = None,
    labels: Mapping[str, str] = STEP_LABELS,
    incorrect_reasons: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The message the dashboard sends for a review (FIELD_NOTES section 2 template).

    An incorrect item carries its reasons, then the reviewer's comment:
    `• 2. Cable from pole - blurred, wrong angle: re-take from the street`.
    """
    comments = incorrect_comments or {}
    reasons = incorrect_reasons or {}
    wrong = [s for s in STEP_COLUMNS if s in set(incorrect_steps)]
    missing = [s for s in STEP_COLUMNS if not steps.get(s) and s not in wrong]
    if not missing and not wrong:
        return f"{drop_number}\nAll items complete! ✅"
    lines = [drop_number, "NEEDS CORRECTION"]
    if missing:
        lines += ["", "Missing items:"]
        lines += [f"• {STEP_COLUMNS.index(s) + 1}. {labels.get(s, s)}" for s in missing]
    if wrong:
        lines += ["", "Incorrect items:"]
        for s in wrong:
            item = f"• {STEP_COLUMNS.index(s) + 1}. {labels.get(s, s)}"
            why = ", ".join(r.strip() for r in reasons.get(s) or () if r.strip())
            comment = (comments.get(s) or "").strip()
            said = ": ".join(part for part in (why, comment) if part)
            lines.append(f"{item} - {said}" if said else item)
    return "\n".join(lines)


# -- the gateways -----------------------------------------------------------------------


class Outcome(StrEnum):
    """What an attempt tells about the message: only the gateway's own answer settles
    it, and anything short of that leaves the question open."""

    SENT = "sent"  # the gateway says it sent the message
    NOT_SENT = "not_sent"  # it certainly did not go out: safe to try again later
    REFUSED = "refused"  # the gateway refused the request: the same request fails again
    UNKNOWN = "unknown"  # it may be in the group: only a person may send it again


@dataclass(frozen=True)
class SendResult:
    outcome: Outcome
    reason: str  # the gateway's message, or what went wrong reaching it
    # WhatsApp's id of the message, when the gateway answered one: the send is confirmed.
    message_id: str | None = None
    # The gateway it went through (core.gateways), when a router chose one.
    gateway: str | None = None

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.SENT


# Raised before the request reached the gateway, so nothing can have been sent.
_BEFORE_SENDING = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.LocalProtocolError,
)
# The bridge's own words when WhatsApp did not confirm a send the bridge made (whatsmeow's
# "timed out waiting for message send response"): the message may be in the group.
_UNSURE_WORDS = re.compile(r"time[sd]?[ -]?out", re.IGNORECASE)
# The longest message id the outbox keeps (feedback_outbox.gateway_message_id).
MESSAGE_ID_LENGTH = 100


def classify_error(
    exc: Exception,
    url: str,
    timeout: float,
    *,
    who: str = "the bridge",
    setting: str = "BRIDGE_URL",
) -> SendResult:
    """What a failed request to `who` says about the message (sent, certainly not, or
    unknown); `setting` names where its URL comes from."""
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return SendResult(Outcome.REFUSED, f"{setting} {url} cannot be used: {exc}")
    if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
        return SendResult(
            Outcome.NOT_SENT, f"cannot reach {who} at {url}: no connection within {timeout:g}s"
        )
    if isinstance(exc, _BEFORE_SENDING):
        return SendResult(Outcome.NOT_SENT, f"cannot reach {who} at {url}: {exc}")
    if isinstance(exc, httpx.TimeoutException):
        return SendResult(
            Outcome.UNKNOWN,
            f"{who} did not answer within {timeout:g}s after the message went out",
        )
    return SendResult(
        Outcome.UNKNOWN,
        f"the connection to {who} broke after the message went out "
        f"({type(exc).__name__}: {exc or 'no answer'})",
    )


def message_id_of(value: Any) -> str | None:
    """A gateway's message id as the outbox keeps it: a non-empty text that fits."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value if 0 < len(value) <= MESSAGE_ID_LENGTH else None


def interpret(status: int, text: str) -> SendResult:
    """What the bridge's HTTP answer says about the message.

    The upstream bridge answers `{success, message}`; `wa-monitor bridge` adds the
    message's `message_id`, which the result carries.
    """
    try:
        body: Any = json.loads(text)
    except ValueError:
        body = None
    said = body.get("success") if isinstance(body, dict) else None
    if isinstance(said, bool) and isinstance(body, dict):  # the bridge's {success, message}
        words = str(body.get("message") or "")[:500] or f"HTTP {status}"
        reason = words if status == 200 else f"HTTP {status}: {words}"
        if said:
            if status == 200:
                return SendResult(Outcome.SENT, reason, message_id_of(body.get("message_id")))
            return SendResult(Outcome.UNKNOWN, reason)
        if 400 <= status < 500:
            return SendResult(Outcome.REFUSED, reason)
        if _UNSURE_WORDS.search(words):
            return SendResult(Outcome.UNKNOWN, reason)
        return SendResult(Outcome.NOT_SENT, reason)
    words = " ".join(text.split())[:300] or "no message"
    if status in (408, 429):  # whatever is in front of the bridge did not pass it on
        return SendResult(Outcome.NOT_SENT, f"HTTP {status}: {words}")
    if 300 <= status < 500:
        return SendResult(Outcome.REFUSED, f"HTTP {status}: {words}")
    # A 5xx from a proxy in front of the bridge, or an answer the bridge never writes:
    # the request went out, so the message may have too.
    return SendResult(Outcome.UNKNOWN, f"HTTP {status}, not the bridge's own answer: {words}")


@dataclass(frozen=True)
class ReplyTo:
    """The installer's post a feedback answers: whom to mention, which message to quote."""

    mention: str | None  # the installer's JID
    message_id: str | None  # their latest post of the drop, in the feedback's group


def bridge_payload(
    recipient: str, message: str, reply: ReplyTo | None = None, *, replies: bool = False
) -> dict[str, Any]:
    """The JSON of a `/send` request.

    The bridge of FIELD_NOTES takes only `recipient` and `message`: that is all it gets
    unless the gateway takes replies (`replies`), when the installer is mentioned
    (`mentions`, without touching the text the reviewer confirmed) and their post quoted
    (`reply_to` and its sender `reply_to_sender`, as WAHA names them).
    """
    payload: dict[str, Any] = {"recipient": recipient, "message": message}
    if replies and reply is not None:
        if reply.mention:
            payload["mentions"] = [reply.mention]
        if reply.message_id:
            payload["reply_to"] = reply.message_id
            if reply.mention:
                payload["reply_to_sender"] = reply.mention
    return payload


def person_jid(sender: str) -> str:
    """A sender as stored (a phone number, or already a JID) as a person's JID."""
    return sender if "@" in sender else f"{sender}@s.whatsapp.net"


class FeedbackClient(Protocol):
    """What the sender needs of a gateway: one gateway's client, or a router choosing the
    gateway of each recipient's project (feedback.gateways.GatewayClients)."""

    @property
    def timeout(self) -> float: ...

    def takes_replies(self, recipient: str) -> bool:
        """Whether a feedback to `recipient` may mention the installer and quote a post."""
        ...

    def send(self, recipient: str, message: str, reply: ReplyTo | None = None) -> SendResult: ...

    async def send_async(
        self, recipient: str, message: str, reply: ReplyTo | None = None
    ) -> SendResult: ...

    def close(self) -> None: ...

    async def aclose(self) -> None: ...


class GatewayClient:
    """One gateway's send endpoint: a JSON POST over one pooled HTTP client per side
    (threads, event loop), its answer read by `interpret`, its failures by `failed`."""

    # What the error messages call the gateway, and the setting of its URL.
    who = "the gateway"
    setting = "the gateway's URL"

    def __init__(
        self, *, timeout: float, headers: Mapping[str, str] | None = None, replies: bool = False
    ) -> None:
        self.timeout = timeout
        self.replies = replies
        self._headers = dict(headers or {})
        # One HTTP client (connection pool, TLS context) for every message: `httpx.post`
        # built a client and loaded the CA bundle per message (~75 % of a delivery).
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()
        # Request handlers wait for the gateway on the event loop, not in a thread: a slow
        # gateway must not hold the threads that answer everyone else.
        self._async: httpx.AsyncClient | None = None

    @property
    def send_url(self) -> str:
        raise NotImplementedError

    def payload(self, recipient: str, message: str, reply: ReplyTo | None) -> dict[str, Any]:
        raise NotImplementedError

    def interpret(self, status: int, text: str) -> SendResult:
        raise NotImplementedError

    def failed(self, exc: Exception) -> SendResult:
        return classify_error(exc, self.send_url, self.timeout, who=self.who, setting=self.setting)

    def takes_replies(self, recipient: str) -> bool:
        return self.replies

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout, headers=self._headers)
            return self._client

    def close(self) -> None:
        """Close the HTTP client; a later send opens a new one."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the event loop's HTTP client; a later send opens a new one."""
        client, self._async = self._async, None
        if client is not None:
            await client.aclose()

    def send(self, recipient: str, message: str, reply: ReplyTo | None = None) -> SendResult:
        try:
            response = self._http().post(
                self.send_url, json=self.payload(recipient, message, reply)
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return self.failed(exc)
        return self.interpret(response.status_code, response.text)

    async def send_async(
        self, recipient: str, message: str, reply: ReplyTo | None = None
    ) -> SendResult:
        if self._async is None:
            self._async = httpx.AsyncClient(timeout=self.timeout, headers=self._headers)
        try:
            response = await self._async.post(
                self.send_url, json=self.payload(recipient, message, reply)
            )
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            return self.failed(exc)
        return self.interpret(response.status_code, response.text)


class BridgeClient(GatewayClient):
    """The bridge's `POST {BRIDGE_URL}/send`: the upstream bridge (no authentication, no
    message id), the maintained Go fork, or `wa-monitor bridge` (a bearer token; it
    answers the message's id, which confirms the send).

    `token`: sent as `Authorization: Bearer …` (BRIDGE_TOKEN). `replies`: the bridge takes
    mentions and a quoted post with the text; by default when a token is set. Without a
    token the upstream bridge gets its plain request, as it always did.
    """

    who = "the bridge"
    setting = "BRIDGE_URL"

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        replies: bool | None = None,
        token: str | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        super().__init__(
            timeout=timeout, headers=headers, replies=bool(token) if replies is None else replies
        )
        self.base_url = base_url.rstrip("/")
        self._has_token = bool(token)

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/send"

    def payload(self, recipient: str, message: str, reply: ReplyTo | None) -> dict[str, Any]:
        return bridge_payload(recipient, message, reply, replies=self.replies)

    def interpret(self, status: int, text: str) -> SendResult:
        result = interpret(status, text)
        if status in (401, 403):
            hint = (
                "the bridge refused BRIDGE_TOKEN: check it"
                if self._has_token
                else "the bridge wants a token: set BRIDGE_TOKEN"
            )
            return replace(result, reason=f"{result.reason} ({hint})")
        return result


# -- the outbox -------------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    review_id: uuid.UUID
    drop_number: str
    project: str | None
    recipient: str
    message: str
    request_key: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str | None
    requested_by: str | None
    created_at: datetime
    sent_at: datetime | None
    gateway: str | None = None  # the gateway of the last attempt (core.gateways)
    gateway_message_id: str | None = None  # WhatsApp's id of the message it sent


class KeyReused(Exception):
    """The request key was already used for a different feedback."""


class DuplicateFeedback(Exception):
    """The same message for the same drop was sent or queued moments ago."""

    def __init__(self, entry: OutboxEntry) -> None:
        super().__init__(f"outbox #{entry.id} holds the same message ({entry.status})")
        self.entry = entry
        self.group: str | None = None  # the project's group, when the request named it


def _entry(row: Any) -> OutboxEntry:
    m = row._mapping
    return OutboxEntry(**{f: m[f] for f in OutboxEntry.__dataclass_fields__})


def enqueue(
    store: ReviewStore,
    *,
    review_id: uuid.UUID,
    drop_number: str,
    project: str | None,
    recipient: str,
    message: str,
    request_key: str,
    requested_by: str,
    resend: bool = False,
    group: str | None = None,
) -> tuple[OutboxEntry, bool]:
    """The outbox entry for this request key, created if new; returns (entry, created).

    A new entry is recorded in the drop's history (action `feedback`: the text, the
    recipient and the project's `group`, the entry's id) by `requested_by`, in the same
    transaction.

    Raises KeyReused when the key names another feedback, and DuplicateFeedback when
    the same message for the drop was sent or queued within DUPLICATE_WINDOW (a twin
    request without a key, a second click) unless `resend`.
    """
    t, r = feedback_outbox, qa_photo_reviews
    now = datetime.now(UTC)
    try:
        with store.begin() as conn:
            # Requests for one drop queue on its review row (SQLite's BEGIN IMMEDIATE
            # already queues every writer), so of identical requests arriving together
            # one creates the entry and the others find it.
            conn.execute(sa.select(r.c.id).where(r.c.id == review_id).with_for_update())
            row = conn.execute(sa.select(t).where(t.c.request_key == request_key)).first()
            if row is not None:
                return _same_request(_entry(row), review_id, message), False
            if not resend:
                twin = conn.execute(
                    sa.select(t)
                    .where(
                        t.c.review_id == review_id,
                        t.c.message == message,
                        t.c.status != FAILED,
                        t.c.created_at >= now - DUPLICATE_WINDOW,
                    )
                    .order_by(t.c.id.desc())
                    .limit(1)
                ).first()
                if twin is not None:
                    raise DuplicateFeedback(_entry(twin))
            created = conn.execute(
                sa.insert(t)
                .values(
                    review_id=review_id,
                    drop_number=drop_number,
                    project=project,
                    recipient=recipient,
                    message=message,
                    request_key=request_key,
                    status=PENDING,
                    attempts=0,
                    next_attempt_at=now,
                    requested_by=requested_by,
                    created_at=now,
                )
                .returning(*t.c)
            ).one()
            changes: dict[str, Any] = {
                "message": message,
                "recipient": recipient,
                "group": group,
                "outbox": created.id,
                "requestKey": request_key,
            }
            if resend:
                changes["resend"] = True
            _audit(conn, review_id, requested_by, "feedback", changes)
    except UniqueViolation:
        # The key was taken at this instant by a request for another drop.
        entry = get_entry(store, request_key=request_key)
        if entry is None:
            raise
        return _same_request(entry, review_id, message), False
    return _entry(created), True


def _same_request(entry: OutboxEntry, review_id: uuid.UUID, message: str) -> OutboxEntry:
    if entry.review_id != review_id or entry.message != message:
        raise KeyReused(entry.request_key)
    return entry


def get_entry(
    store: ReviewStore, *, entry_id: int | None = None, request_key: str | None = None
) -> OutboxEntry | None:
    t = feedback_outbox
    query = sa.select(t)
    query = query.where(t.c.id == entry_id) if entry_id is not None else query
    query = query.where(t.c.request_key == request_key) if request_key is not None else query
    with store.read() as conn:
        row = conn.execute(query).first()
    return _entry(row) if row is not None else None


def entries_for(store: ReviewStore, review_id: uuid.UUID) -> list[OutboxEntry]:
    t = feedback_outbox
    with store.read() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.review_id == review_id).order_by(t.c.id.desc())
        ).all()
    return [_entry(r) for r in rows]


def retry(store: ReviewStore, entry_id: int, actor: str) -> OutboxEntry | None:
    """Put a failed entry back in the queue; None when there is no such failed entry."""
    return _requeue(store, entry_id, actor, FAILED, "feedback_retry")


def send_again(store: ReviewStore, entry_id: int, actor: str) -> OutboxEntry | None:
    """Queue an unconfirmed entry again, at a reviewer's word (the group may get it twice);
    None when there is no such unconfirmed entry."""
    return _requeue(store, entry_id, actor, UNCONFIRMED, "feedback_send_again")


def _requeue(
    store: ReviewStore, entry_id: int, actor: str, status: str, action: str
) -> OutboxEntry | None:
    t = feedback_outbox
    with store.begin() as conn:
        row = conn.execute(
            sa.update(t)
            .where(t.c.id == entry_id, t.c.status == status)
            .values(status=PENDING, attempts=0, next_attempt_at=datetime.now(UTC))
            .returning(*t.c)
        ).first()
        if row is None:
            return None
        _audit(conn, row.review_id, actor, action, {"outboxId": entry_id, "was": status})
    entry = _entry(row)
    log.info(
        "🔁 Feedback for %s (%s) queued again by %s (outbox #%d, was %s)",
        entry.drop_number,
        entry.project,
        actor,
        entry.id,
        status,
    )
    return entry


def mark_sent(store: ReviewStore, entry_id: int, actor: str) -> OutboxEntry | None:
    """A reviewer saw the message in the group: an unconfirmed (or failed) entry is sent;
    None when there is no such entry."""
    t, r = feedback_outbox, qa_photo_reviews
    now = datetime.now(UTC)
    with store.begin() as conn:
        row = conn.execute(
            sa.select(t.c.review_id, t.c.status).where(t.c.id == entry_id).with_for_update()
        ).first()
        if row is None or row.status not in (UNCONFIRMED, FAILED):
            return None
        marked = conn.execute(
            sa.update(t)
            .where(t.c.id == entry_id)
            .values(status=SENT, sent_at=now, next_attempt_at=None)
            .returning(*t.c)
        ).one()
        conn.execute(sa.update(r).where(r.c.id == row.review_id).values(**_delivered(now)))
        changes = {"outboxId": entry_id, "was": row.status}
        _audit(conn, row.review_id, actor, "feedback_marked_sent", changes)
    entry = _entry(marked)
    log.info(
        "📤 Feedback for %s (%s) marked as sent by %s (outbox #%d, was %s)",
        entry.drop_number,
        entry.project,
        actor,
        entry.id,
        row.status,
    )
    return entry


def _delivered(now: datetime) -> dict[str, Any]:
    """What a delivered feedback writes on its review: sent now, one more feedback, and
    no assignee (the drop waits for the installer now, not for its reviewer)."""
    r = qa_photo_reviews
    return {
        "feedback_sent": now,
        "feedback_count": r.c.feedback_count + 1,
        "assigned_agent": None,
        "assigned_at": None,
    }


def _audit(
    conn: Connection, review_id: uuid.UUID, actor: str, action: str, changes: dict[str, Any]
) -> None:
    conn.execute(
        sa.insert(review_edits).values(
            review_id=review_id,
            actor=actor,
            action=action,
            changes=changes,
            at=datetime.now(UTC),
        )
    )


def reply_for(store: ReviewStore, entry: OutboxEntry) -> ReplyTo | None:
    """Whom a feedback mentions and what it quotes: the latest post of its drop in the
    entry's group (drop_submissions), else the review's submitter, unquoted; None when
    neither is known."""
    d, r = drop_submissions, qa_photo_reviews
    with store.read() as conn:
        latest = conn.execute(
            sa.select(d.c.sender, d.c.message_id)
            .where(
                d.c.project == entry.project,
                d.c.drop_number == entry.drop_number,
                d.c.chat_jid == entry.recipient,
            )
            .order_by(d.c.message_time.desc(), d.c.id.desc())
            .limit(1)
        ).first()
        if latest is not None:
            return ReplyTo(person_jid(latest.sender), latest.message_id)
        submitter = conn.execute(
            sa.select(r.c.submitted_by).where(r.c.id == entry.review_id)
        ).scalar()
    return ReplyTo(person_jid(submitter), None) if submitter else None


class FeedbackSender:
    """Delivers outbox entries through the gateways, retrying only what certainly did not
    go out."""

    def __init__(
        self,
        store: ReviewStore,
        client: FeedbackClient,
        *,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
    ) -> None:
        self.store = store
        self.client = client
        self.backoff = tuple(backoff)

    def _claim(self, entry_id: int, now: datetime) -> OutboxEntry | None:
        """Reserve a due pending entry for this sender (a concurrent sender cannot also
        send it); returns it as claimed, or None when it is not due or someone holds it."""
        t = feedback_outbox
        due = sa.or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now)
        with self.store.begin() as conn:
            row = conn.execute(
                sa.update(t)
                .where(t.c.id == entry_id, t.c.status == PENDING, due)
                .values(status=SENDING, next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
                .returning(*t.c)
            ).first()
        return _entry(row) if row is not None else None

    def deliver(self, entry_id: int, now: datetime | None = None) -> OutboxEntry | None:
        """Try to send one entry if it is due (at `now`); returns its state afterwards."""
        self._deliver(entry_id, now or datetime.now(UTC))
        return get_entry(self.store, entry_id=entry_id)

    async def deliver_async(self, entry_id: int) -> OutboxEntry | None:
        """`deliver` for request handlers: the database in short thread hops, the bridge
        awaited on the event loop."""
        entry = await anyio.to_thread.run_sync(self._claim, entry_id, datetime.now(UTC))
        if entry is not None:
            reply = await anyio.to_thread.run_sync(self._reply_for, entry)
            result = await self.client.send_async(entry.recipient, entry.message, reply)
            await anyio.to_thread.run_sync(self._record, entry, result)
        return await anyio.to_thread.run_sync(partial(get_entry, self.store, entry_id=entry_id))

    def _deliver(self, entry_id: int, now: datetime) -> None:
        entry = self._claim(entry_id, now)
        if entry is not None:
            result = self.client.send(entry.recipient, entry.message, self._reply_for(entry))
            self._record(entry, result)

    def _reply_for(self, entry: OutboxEntry) -> ReplyTo | None:
        """The installer's post the entry answers, when the gateway takes replies."""
        if not self.client.takes_replies(entry.recipient):
            return None
        try:
            return reply_for(self.store, entry)
        except ReviewDatabaseError as exc:
            # The entry is claimed: a mention is worth less than the feedback itself.
            log.warning(
                "⚠️ Feedback for %s (%s): the installer's post cannot be read (%s); "
                "sent without mention or quote",
                entry.drop_number,
                entry.project,
                exc,
            )
            return None

    def _record(self, entry: OutboxEntry, result: SendResult) -> None:
        t, r = feedback_outbox, qa_photo_reviews
        now = datetime.now(UTC)
        attempts = entry.attempts + 1
        # A message id is WhatsApp's own: whatever else the answer said, the message is out.
        outcome = Outcome.SENT if result.message_id else result.outcome
        delay = 0.0
        if outcome is Outcome.SENT:
            status, action = SENT, "feedback_sent"
        elif outcome is Outcome.UNKNOWN:
            status, action = UNCONFIRMED, "feedback_unconfirmed"
        elif outcome is Outcome.REFUSED or attempts > len(self.backoff):
            status, action = FAILED, "feedback_failed"
        else:
            status, action = PENDING, "feedback_retry_scheduled"
            delay = self.backoff[attempts - 1]
        values: dict[str, Any] = {
            "status": status,
            "attempts": attempts,
            "last_error": None if status == SENT else result.reason,
            "next_attempt_at": now + timedelta(seconds=delay) if status == PENDING else None,
        }
        if status == SENT:
            values["sent_at"] = now
        if result.gateway is not None:
            values["gateway"] = result.gateway
        if result.message_id:
            values["gateway_message_id"] = result.message_id
        with self.store.begin() as conn:
            # Unconfirmed too: the start-up check may have given up on this very attempt.
            recorded = conn.execute(
                sa.update(t)
                .where(t.c.id == entry.id, t.c.status.in_([SENDING, UNCONFIRMED]))
                .values(**values)
                .returning(t.c.id)
            ).first()
            if recorded is not None:
                if status == SENT:
                    conn.execute(
                        sa.update(r).where(r.c.id == entry.review_id).values(**_delivered(now))
                    )
                changes: dict[str, Any] = {"outboxId": entry.id}
                if result.gateway is not None:
                    changes["gateway"] = result.gateway
                if result.message_id:
                    changes["messageId"] = result.message_id
                if status != SENT:
                    changes.update(reason=result.reason, attempts=attempts)
                _audit(conn, entry.review_id, entry.requested_by or "system", action, changes)
        if recorded is None:
            log.warning(
                "⚠️ Feedback for %s (%s): the gateway's answer (%s) came after a reviewer "
                "settled outbox #%d; not recorded",
                entry.drop_number,
                entry.project,
                result.reason,
                entry.id,
            )
        elif status == SENT:
            log.info(
                "📤 Feedback for %s (%s) sent to %s%s%s",
                entry.drop_number,
                entry.project,
                entry.recipient,
                f" via {result.gateway}" if result.gateway else "",
                f" (message {result.message_id})" if result.message_id else "",
            )
        elif status == UNCONFIRMED:
            log.warning(
                "⚠️ Feedback for %s (%s) delivery unconfirmed (outbox #%d, attempt %d): %s; "
                "not sent again automatically: check the group, then send again or mark as sent",
                entry.drop_number,
                entry.project,
                entry.id,
                attempts,
                result.reason,
            )
        else:
            log.warning(
                "⚠️ Feedback for %s (%s) not sent (attempt %d): %s%s",
                entry.drop_number,
                entry.project,
                attempts,
                result.reason,
                f"; retrying in {delay:g}s" if status == PENDING else "",
            )

    def recover(self, now: datetime | None = None, *, every_claim: bool = False) -> int:
        """Claims whose sender stopped between sending and recording become unconfirmed
        (never pending: the message may be in the group); returns how many.

        A claim is abandoned once its lease has passed; at start-up (`every_claim`) every
        claim is, as this dashboard is the only sender of its database. A claim that was
        still alive after all has its real answer recorded over `unconfirmed`.
        """
        t = feedback_outbox
        now = now or datetime.now(UTC)
        reason = "the dashboard stopped before the bridge answered; the message may be in the group"
        where = [t.c.status == SENDING]
        if not every_claim:
            where.append(t.c.next_attempt_at <= now)
        # Read first: an UPDATE, even of no row, would tell the dashboards (PostgreSQL's
        # statement trigger) that the outbox changed, at every pass.
        with self.store.read() as conn:
            abandoned = list(conn.execute(sa.select(t.c.id).where(*where)).scalars())
        if not abandoned:
            return 0
        with self.store.begin() as conn:
            rows = conn.execute(
                sa.update(t)
                .where(t.c.id.in_(abandoned), *where)
                .values(
                    status=UNCONFIRMED,
                    attempts=t.c.attempts + 1,
                    next_attempt_at=None,
                    last_error=reason,
                )
                .returning(*t.c)
            ).all()
            for row in rows:
                changes = {"outboxId": row.id, "reason": reason, "attempts": row.attempts}
                _audit(conn, row.review_id, "system", "feedback_unconfirmed", changes)
        for row in rows:
            log.warning(
                "⚠️ Feedback for %s (%s) delivery unconfirmed (outbox #%d): %s; check the group, "
                "then send again or mark as sent",
                row.drop_number,
                row.project,
                row.id,
                reason,
            )
        return len(rows)

    def due(self, now: datetime | None = None) -> list[int]:
        t = feedback_outbox
        now = now or datetime.now(UTC)
        with self.store.read() as conn:
            return [
                int(i)
                for i in conn.execute(
                    sa.select(t.c.id)
                    .where(t.c.status == PENDING, t.c.next_attempt_at <= now)
                    .order_by(t.c.next_attempt_at, t.c.id)
                    .limit(DUE_BATCH)
                ).scalars()
            ]

    def deliver_due(self, now: datetime | None = None) -> int:
        """One pass over the entries due at `now`; returns how many were attempted.

        Entries are sent one at a time, in order. With several due, a helper thread
        claims the next entry and records the previous result while this thread waits
        for the bridge, so a backlog drains at the bridge's pace rather than at the
        bridge's pace plus two transactions per message.
        """
        self.recover(now)
        ids = self.due(now)
        if len(ids) < 2:
            for entry_id in ids:
                self._deliver(entry_id, now or datetime.now(UTC))
            return len(ids)
        with ThreadPoolExecutor(1, thread_name_prefix="feedback-db") as db:
            recording: list[Future[None]] = []
            claim = db.submit(self._claim, ids[0], now or datetime.now(UTC))
            for i in range(len(ids)):
                entry = claim.result()
                # The helper runs tasks in order: the records before this claim are done.
                for done in [f for f in recording if f.done()]:
                    recording.remove(done)
                    done.result()  # a failed record ends the pass, as it did sequentially
                if i + 1 < len(ids):
                    claim = db.submit(self._claim, ids[i + 1], now or datetime.now(UTC))
                if entry is not None:
                    reply = self._reply_for(entry)
                    result = self.client.send(entry.recipient, entry.message, reply)
                    recording.append(db.submit(self._record, entry, result))
            for pending in recording:
                pending.result()
        return len(ids)

    def close(self) -> None:
        self.client.close()

    def run(self, stop: threading.Event, interval: float = 2.0) -> None:
        """Deliver due entries every `interval` seconds until `stop` is set.

        A full pass (a backlog) is followed by the next one at once, not after `interval`:
        a queue drains at the bridge's pace. The HTTP client is closed on the way out.
        """
        try:
            while not stop.is_set():
                attempted = 0
                try:
                    attempted = self.deliver_due()
                except Exception:  # keep retrying: a database blip must not end the sender
                    log.exception("feedback sender pass failed")
                if attempted < DUE_BATCH:
                    stop.wait(interval)
        finally:
            self.close()


# -- a reviewer's request ---------------------------------------------------------------


class NoSuchReview(LookupError):
    """The request names a review that does not exist."""


class FeedbackRefused(ValueError):
    """The request contradicts the review or the projects file; nothing was queued."""


@dataclass(frozen=True)
class FeedbackRequest:
    """A reviewer's request to post a feedback, as the dashboard received it."""

    review_id: uuid.UUID
    drop_number: str  # as typed: blanks and case do not matter
    message: str
    requested_by: str
    project: str | None = None  # when given, it must be the review's
    idempotency_key: str | None = None  # the header; `request_key` the body's, same role
    request_key: str | None = None
    resend: bool = False


@dataclass(frozen=True)
class Delivery:
    """Where a request stands once answered: its outbox entry and the project's group."""

    entry: OutboxEntry
    group: str | None  # the project's description


async def request_feedback(
    store: ReviewStore, sender: FeedbackSender, config: ProjectsConfig, request: FeedbackRequest
) -> Delivery:
    """Check the request against the review and the projects file, queue it, send it.

    The answer waits for the attempt this request starts, or for one under way for the
    same entry (the background sender, a twin request), up to the bridge's timeout; the
    database is used in short thread hops, the bridge awaited on the event loop.

    Raises NoSuchReview, FeedbackRefused (the drop number or project is not the review's,
    no group is configured for its project, the two request keys differ), KeyReused and
    DuplicateFeedback (with `group` set).
    """
    review = await anyio.to_thread.run_sync(_review_of, store, request.review_id)
    if review is None:
        raise NoSuchReview(f"No drop with id {request.review_id}")
    drop_number, project_name = review
    if request.drop_number.replace(" ", "").upper() != drop_number:
        raise FeedbackRefused(
            f"dropNumber {request.drop_number} is not the number of drop {request.review_id}"
        )
    if request.project is not None and request.project != project_name:
        raise FeedbackRefused(f"Drop {drop_number} belongs to project {project_name}")
    project = config.by_name(project_name) if project_name else None
    if project is None:
        raise FeedbackRefused(
            f"No WhatsApp group is configured for project {project_name or '(none)'}; "
            "add it to projects.yaml"
        )
    key = request.idempotency_key or request.request_key or f"srv-{uuid.uuid4()}"
    header, body = request.idempotency_key, request.request_key
    if header and body and header != body:
        raise FeedbackRefused("Idempotency-Key header and requestKey differ")
    queue = partial(
        enqueue,
        store,
        review_id=request.review_id,
        drop_number=drop_number,
        project=project_name,
        recipient=project.group_jid,
        message=request.message,
        request_key=key,
        requested_by=request.requested_by,
        resend=request.resend,
        group=project.description,
    )
    try:
        entry, _created = await anyio.to_thread.run_sync(queue)
    except DuplicateFeedback as exc:
        exc.group = project.description
        raise
    return Delivery(await settle(store, sender, entry), project.description)


async def settle(store: ReviewStore, sender: FeedbackSender, entry: OutboxEntry) -> OutboxEntry:
    """`entry` after this request's attempt, or after the one under way elsewhere.

    A pending entry is attempted at once. One that the background sender (or a twin
    request) holds is watched until its attempt is recorded, for at most the bridge's
    timeout and 2 s, so the answer gives that outcome rather than "queued".
    """
    if entry.status == PENDING:
        entry = await sender.deliver_async(entry.id) or entry
    deadline = time.monotonic() + sender.client.timeout + 2
    while entry.status == SENDING and time.monotonic() < deadline:
        await anyio.sleep(0.05)
        latest = await anyio.to_thread.run_sync(partial(get_entry, store, entry_id=entry.id))
        entry = latest or entry
    return entry


def _review_of(store: ReviewStore, review_id: uuid.UUID) -> tuple[str, str | None] | None:
    """The review's drop number and project (None: no such review)."""
    r = qa_photo_reviews
    with store.read() as conn:
        row = conn.execute(sa.select(r.c.drop_number, r.c.project).where(r.c.id == review_id))
        found = row.first()
    return (str(found.drop_number), found.project) if found is not None else None


class Decision(StrEnum):
    """A reviewer's decision on an outbox entry."""

    RETRY = "retry"  # a failed entry is queued again
    SEND_AGAIN = "send-again"  # an unconfirmed one is, at the reviewer's word
    MARK_SENT = "mark-sent"  # the reviewer saw it in the group


async def decide(
    store: ReviewStore, sender: FeedbackSender, decision: Decision, entry_id: int, actor: str
) -> OutboxEntry | None:
    """Apply `actor`'s decision on entry `entry_id`; an entry queued again is attempted at once.

    Returns the entry afterwards, or None when there is no entry in the state the decision
    needs (failed for retry, unconfirmed for send-again, either for mark-sent).
    """
    change = {Decision.RETRY: retry, Decision.SEND_AGAIN: send_again, Decision.MARK_SENT: mark_sent}
    entry = await anyio.to_thread.run_sync(change[decision], store, entry_id, actor)
    if entry is not None and decision is not Decision.MARK_SENT:
        entry = await sender.deliver_async(entry.id) or entry
    return entry


@dataclass(frozen=True)
class Draft:
    """The feedback a saved review gives, and where it would go."""

    message: str
    recipient: str | None  # the project's group; None when none is configured


def draft_for(review: Mapping[str, Any], config: ProjectsConfig) -> Draft:
    """The message generated from a saved review (its columns), for the reviewer to edit."""
    text = feedback_text(
        review["drop_number"],
        {s: bool(review[s]) for s in STEP_COLUMNS},
        review["incorrect_steps"] or [],
        review["incorrect_comments"] or {},
        config.step_labels,
        review.get("incorrect_reasons") or {},
    )
    project = config.by_name(review["project"]) if review["project"] else None
    return Draft(text, project.group_jid if project else None)
