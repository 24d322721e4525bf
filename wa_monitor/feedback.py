"""Feedback to the installers' group: the text, the bridge client, the outbox and its sender.

A feedback request is written to `feedback_outbox` first (idempotent on the client's
request key), then delivered: at once by the request, later by the retrying sender
when the bridge is down or answers an error. `feedback_sent` is set on the review only
when the bridge says it sent the message.
"""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from wa_monitor.schema import feedback_outbox, qa_photo_reviews, review_edits
from wa_monitor.steps import STEP_COLUMNS, STEP_LABELS
from wa_monitor.store import ReviewStore

log = logging.getLogger("wa_monitor.feedback")

PENDING, SENDING, SENT, FAILED = "pending", "sending", "sent", "failed"
# Delay before attempt n+1 after n failed attempts; after the last one the entry fails.
DEFAULT_BACKOFF: tuple[float, ...] = (5, 15, 60, 300, 900, 1800)
# How long a claimed entry stays reserved; a sender that died mid-send frees it after this.
CLAIM_SECONDS = 120.0
# Due entries read per pass of the sender.
DUE_BATCH = 100


# -- the text ---------------------------------------------------------------------------


def feedback_text(
    drop_number: str,
    steps: Mapping[str, bool],
    incorrect_steps: Sequence[str] = (),
    incorrect_comments: Mapping[str, str] | None = None,
    labels: Mapping[str, str] = STEP_LABELS,
) -> str:
    """The message the dashboard sends for a review (FIELD_NOTES section 2 template)."""
    comments = incorrect_comments or {}
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
            comment = (comments.get(s) or "").strip()
            lines.append(f"{item} - {comment}" if comment else item)
    return "\n".join(lines)


# -- the bridge -------------------------------------------------------------------------


@dataclass(frozen=True)
class SendResult:
    ok: bool
    reason: str  # the bridge's message, or what went wrong reaching it
    retryable: bool  # worth trying again later (bridge down, 5xx, timeout)


class BridgeClient:
    """The bridge's `POST {BRIDGE_URL}/send` (no authentication, no message id)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        # One HTTP client (connection pool, TLS context) for every message: `httpx.post`
        # built a client and loaded the CA bundle per message (~75 % of a delivery).
        self._client: httpx.Client | None = None
        self._client_lock = threading.Lock()

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/send"

    def _http(self) -> httpx.Client:
        with self._client_lock:
            if self._client is None:
                self._client = httpx.Client(timeout=self.timeout)
            return self._client

    def close(self) -> None:
        """Close the HTTP client; a later send opens a new one."""
        with self._client_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def send(self, recipient: str, message: str) -> SendResult:
        try:
            response = self._http().post(
                self.send_url,
                json={"recipient": recipient, "message": message},
            )
        except httpx.TimeoutException:
            return SendResult(False, f"the bridge did not answer within {self.timeout:g}s", True)
        except httpx.HTTPError as exc:
            return SendResult(False, f"cannot reach the bridge at {self.send_url}: {exc}", True)
        return _interpret(response)


def _interpret(response: httpx.Response) -> SendResult:
    body: Any = None
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if isinstance(body, dict):
        reason = str(body.get("message") or "")
        success = body.get("success") is True
    else:
        reason = response.text.strip()
        success = False
    reason = reason[:500] or f"HTTP {response.status_code}"
    if response.status_code == 200 and success:
        return SendResult(True, reason, False)
    if response.status_code == 200:
        return SendResult(False, reason, True)
    # 4xx: the bridge refused this request; sending it again cannot help.
    return SendResult(False, f"HTTP {response.status_code}: {reason}", response.status_code >= 500)


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


class KeyReused(Exception):
    """The request key was already used for a different feedback."""


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
) -> tuple[OutboxEntry, bool]:
    """The outbox entry for this request key, created if new; returns (entry, created)."""
    t = feedback_outbox
    now = datetime.now(UTC)
    created = True
    try:
        with store.begin() as conn:
            conn.execute(
                sa.insert(t).values(
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
            )
            _audit(conn, review_id, requested_by, "feedback_queued", {"requestKey": request_key})
    except IntegrityError:
        created = False
    entry = get_entry(store, request_key=request_key)
    assert entry is not None
    if not created and (entry.review_id != review_id or entry.message != message):
        raise KeyReused(request_key)
    return entry, created


def get_entry(
    store: ReviewStore, *, entry_id: int | None = None, request_key: str | None = None
) -> OutboxEntry | None:
    t = feedback_outbox
    query = sa.select(t)
    query = query.where(t.c.id == entry_id) if entry_id is not None else query
    query = query.where(t.c.request_key == request_key) if request_key is not None else query
    with store.begin() as conn:
        row = conn.execute(query).first()
    return _entry(row) if row is not None else None


def entries_for(store: ReviewStore, review_id: uuid.UUID) -> list[OutboxEntry]:
    t = feedback_outbox
    with store.begin() as conn:
        rows = conn.execute(
            sa.select(t).where(t.c.review_id == review_id).order_by(t.c.id.desc())
        ).all()
    return [_entry(r) for r in rows]


def retry(store: ReviewStore, entry_id: int, actor: str) -> OutboxEntry | None:
    """Put a failed entry back in the queue; None when there is no such failed entry."""
    t = feedback_outbox
    with store.begin() as conn:
        row = conn.execute(
            sa.update(t)
            .where(t.c.id == entry_id, t.c.status == FAILED)
            .values(status=PENDING, attempts=0, next_attempt_at=datetime.now(UTC))
            .returning(t.c.review_id)
        ).first()
        if row is None:
            return None
        _audit(conn, row.review_id, actor, "feedback_retry", {"outboxId": entry_id})
    return get_entry(store, entry_id=entry_id)


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


class FeedbackSender:
    """Delivers outbox entries through the bridge, retrying with backoff."""

    def __init__(
        self,
        store: ReviewStore,
        client: BridgeClient,
        *,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
    ) -> None:
        self.store = store
        self.client = client
        self.backoff = tuple(backoff)

    def _claim(self, entry_id: int, now: datetime) -> OutboxEntry | None:
        """Reserve a due entry for this sender (a concurrent sender cannot also send it);
        returns it as claimed, or None when it is not due or someone else holds it."""
        t = feedback_outbox
        due = sa.or_(t.c.next_attempt_at.is_(None), t.c.next_attempt_at <= now)
        with self.store.begin() as conn:
            row = conn.execute(
                sa.update(t)
                .where(t.c.id == entry_id, t.c.status.in_([PENDING, SENDING]), due)
                .values(status=SENDING, next_attempt_at=now + timedelta(seconds=CLAIM_SECONDS))
                .returning(*t.c)
            ).first()
        return _entry(row) if row is not None else None

    def deliver(self, entry_id: int, now: datetime | None = None) -> OutboxEntry | None:
        """Try to send one entry if it is due (at `now`); returns its state afterwards."""
        self._deliver(entry_id, now or datetime.now(UTC))
        return get_entry(self.store, entry_id=entry_id)

    def _deliver(self, entry_id: int, now: datetime) -> None:
        entry = self._claim(entry_id, now)
        if entry is not None:
            result = self.client.send(entry.recipient, entry.message)
            self._record(entry, result)

    def _record(self, entry: OutboxEntry, result: SendResult) -> None:
        t, r = feedback_outbox, qa_photo_reviews
        now = datetime.now(UTC)
        attempts = entry.attempts + 1
        with self.store.begin() as conn:
            if result.ok:
                conn.execute(
                    sa.update(t)
                    .where(t.c.id == entry.id)
                    .values(
                        status=SENT,
                        attempts=attempts,
                        sent_at=now,
                        next_attempt_at=None,
                        last_error=None,
                    )
                )
                conn.execute(
                    sa.update(r)
                    .where(r.c.id == entry.review_id)
                    .values(feedback_sent=now, feedback_count=r.c.feedback_count + 1)
                )
                action = "feedback_sent"
                changes: dict[str, Any] = {"outboxId": entry.id}
                log.info(
                    "📤 Feedback for %s (%s) sent to %s",
                    entry.drop_number,
                    entry.project,
                    entry.recipient,
                )
            else:
                final = not result.retryable or attempts > len(self.backoff)
                delay = 0.0 if final else self.backoff[attempts - 1]
                conn.execute(
                    sa.update(t)
                    .where(t.c.id == entry.id)
                    .values(
                        status=FAILED if final else PENDING,
                        attempts=attempts,
                        last_error=result.reason,
                        next_attempt_at=None if final else now + timedelta(seconds=delay),
                    )
                )
                action = "feedback_failed" if final else "feedback_retry_scheduled"
                changes = {"outboxId": entry.id, "reason": result.reason, "attempts": attempts}
                log.warning(
                    "⚠️ Feedback for %s (%s) not sent (attempt %d): %s%s",
                    entry.drop_number,
                    entry.project,
                    attempts,
                    result.reason,
                    "" if final else f"; retrying in {delay:g}s",
                )
            _audit(conn, entry.review_id, entry.requested_by or "system", action, changes)

    def due(self, now: datetime | None = None) -> list[int]:
        t = feedback_outbox
        now = now or datetime.now(UTC)
        with self.store.begin() as conn:
            return [
                int(i)
                for i in conn.execute(
                    sa.select(t.c.id)
                    .where(t.c.status.in_([PENDING, SENDING]), t.c.next_attempt_at <= now)
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
                    result = self.client.send(entry.recipient, entry.message)
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
