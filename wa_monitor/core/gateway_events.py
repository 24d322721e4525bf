"""What the webhook gateways send, read into plain values: messages, deletions, states.

One reader per gateway turns a webhook's body into `Event`s, or raises `PayloadError`
with the reason a 400 answer gives. Readers are pure: no I/O, no clock (the caller
passes `now` where a signature's age is checked). Which groups are monitored is the
caller's business: a reader returns every message it can read.

- WAHA: `{"event", "session", "payload": {...}}`, events `message`, `message.any`,
  `message.edited`, `message.revoked`, `session.status` (others: no events).
- Evolution API: `{"event": "messages.upsert" | "messages.update" | "messages.delete" |
  "connection.update", "instance", "data": {...}, "apikey"?}`.
- The maintained Go bridge fork's webhook: one stored message per call, with the
  bridge's messages.db columns.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


class PayloadError(ValueError):
    """The body cannot be read as the gateway's webhook: the reason, for the 400 answer."""


class SignatureError(ValueError):
    """The call is not signed, wrongly signed, or signed too long ago (401)."""


@dataclass(frozen=True, slots=True)
class MediaRef:
    """Where a message's media can be fetched from, and what the gateway said of it."""

    url: str | None = None  # WAHA's media.url; None where the file is asked for by id
    mimetype: str | None = None
    filename: str | None = None
    sha256: bytes | None = None  # of the decrypted file, when the gateway gives it
    length: int | None = None


@dataclass(frozen=True, slots=True)
class InboxMessage:
    """A group message (new, re-delivered or edited), as it goes into the inbox."""

    gateway: str
    chat_jid: str  # the group's JID (…@g.us); a direct chat's for other chats
    message_id: str
    sender: str  # as the gateway names the author: a phone, a LID, or a JID
    sender_pn: str | None  # the author's phone number when the gateway gives it beside a LID
    sender_name: str | None  # the push name
    content: str | None  # the text, or a media message's caption
    sent_at: float  # epoch seconds, WhatsApp's timestamp
    from_me: bool = False
    media_type: str | None = None  # image, video, audio, document, sticker; None: a text
    media: MediaRef | None = None
    edited: bool = False  # an edit: `content` replaces what was stored


@dataclass(frozen=True, slots=True)
class InboxDeletion:
    """A message deleted for everyone."""

    gateway: str
    chat_jid: str
    message_id: str
    deleted_at: float  # epoch seconds


@dataclass(frozen=True, slots=True)
class SessionStatus:
    """The gateway's WhatsApp session changed state (WORKING, SCAN_QR_CODE, open, close …)."""

    gateway: str
    session: str
    status: str
    at: float  # epoch seconds


Event = InboxMessage | InboxDeletion | SessionStatus


def parse_waha(body: bytes) -> list[Event]:
    """WAHA's webhook body as events."""
    raise NotImplementedError


def parse_evolution(body: bytes) -> list[Event]:
    """Evolution API's webhook body as events."""
    raise NotImplementedError


def parse_bridge_webhook(body: bytes) -> list[Event]:
    """The Go bridge fork's webhook body as events."""
    raise NotImplementedError


def verify_waha(
    body: bytes, headers: Mapping[str, str], *, hmac_key: str, now: float, window: float
) -> None:
    """Raise SignatureError unless WAHA signed `body` with `hmac_key` within `window` s.

    `headers` is case-insensitive (lower-case names).
    """
    raise NotImplementedError
