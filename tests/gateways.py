"""Test gateways: the webhook bodies WAHA, Evolution API and the Go bridge fork send.

Builders return the documented JSON (as a dict); `encode` makes the bytes to post (and
to sign: WAHA signs the raw body). `sign_waha` gives WAHA's headers, and
`post_until_acknowledged` delivers a body the way the gateways do: again and again until
a 2xx answer (WAHA retries on every other answer and on timeouts; Evolution API gives up
on 400, 401, 403, 404 and 422). The shapes follow tests/fixtures/gateways (see its
README for the sources).

Ids are WhatsApp's bare message ids (`3EB0…`), as the bridge stores them; a sender is a
phone number (`27821234567`) or a JID. `lid=True` makes the author a LID (derived from
the phone number) with the phone number beside it, where each gateway puts it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

FIXTURES = Path(__file__).parent / "fixtures" / "gateways"
GROUP = "120363418298130331@g.us"
# Evolution API gives up on these answers; WAHA retries on every non-2xx answer.
EVOLUTION_FINAL = frozenset({400, 401, 403, 404, 422})

Doc = dict[str, Any]


def fixture(name: str) -> bytes:
    """A sample body of tests/fixtures/gateways, as bytes (`name` without `.json`)."""
    return (FIXTURES / f"{name}.json").read_bytes()


def encode(doc: Doc) -> bytes:
    """The bytes a gateway posts for `doc` (compact UTF-8 JSON, as Node's JSON.stringify)."""
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def new_id() -> str:
    """A fresh WhatsApp-style message id (`3EB0` and 16 hex digits)."""
    return "3EB0" + secrets.token_hex(8).upper()


def lid_of(phone: str) -> str:
    """A stable made-up LID (15 digits, not the phone number) for a phone number."""
    digest = hashlib.sha256(phone.encode()).hexdigest()
    return str(100_000_000_000_000 + int(digest[:12], 16) % 900_000_000_000_000)


def _user(sender: str) -> str:
    return sender.split("@", 1)[0]


def _jid(sender: str, server: str) -> str:
    return sender if "@" in sender else f"{sender}@{server}"


def _author(sender: str, lid: bool | str, server: str) -> tuple[str, str | None]:
    """The author's JID as the gateway names it, and the phone JID beside a LID."""
    if lid is False or sender.endswith("@lid"):
        return _jid(sender, server), None
    lid_user = lid if isinstance(lid, str) else lid_of(_user(sender))
    return f"{_user(lid_user)}@lid", f"{_user(sender)}@s.whatsapp.net"


def _now(timestamp: float | None) -> float:
    return time.time() if timestamp is None else timestamp


# --- WAHA ---------------------------------------------------------------------------


def _waha(event: str, payload: Doc, *, session: str, engine: str, timestamp: float) -> Doc:
    return {
        "id": f"evt_{uuid.uuid4().hex[:26]}",
        "timestamp": int(timestamp * 1000),
        "event": event,
        "session": session,
        "me": {"id": "27820000000@c.us", "pushName": "WA Monitor"},
        "payload": payload,
        "engine": engine,
        "environment": {"tier": "CORE", "version": "2025.11.2", "engine": engine},
    }


def waha_message(
    chat: str,
    sender: str,
    text: str | None,
    *,
    id: str | None = None,
    timestamp: float | None = None,
    media: Doc | None = None,
    lid: bool | str = False,
    name: str | None = "Installer",
    from_me: bool = False,
    event: str = "message",
    session: str = "default",
    engine: str = "NOWEB",
) -> Doc:
    """WAHA's `message` (or `message.any`) for a post in `chat`.

    `media` is WAHA's `media` object (`{"url", "mimetype", "filename"}`); the NOWEB
    engine's `_data` carries the push name and, with `lid`, the phone number in
    `key.participantAlt`.
    """
    message_id = id or new_id()
    sent = _now(timestamp)
    participant, phone = _author(sender, lid, "c.us")
    group = chat.endswith("@g.us")
    key: Doc = {"remoteJid": chat, "fromMe": from_me, "id": message_id}
    if group:
        key["participant"] = participant
        if phone:
            key["participantAlt"] = phone
    payload: Doc = {
        "id": f"{str(from_me).lower()}_{chat}_{message_id}" + (f"_{participant}" if group else ""),
        "timestamp": int(sent),
        "from": chat if group else participant,
        "fromMe": from_me,
        "source": "app",
        "participant": participant if group else None,
        "to": None,
        "body": text,
        "hasMedia": media is not None,
        "media": media,
        "ack": 2,
        "ackName": "DEVICE",
        "replyTo": None,
        "_data": {"key": key, "messageTimestamp": int(sent), "pushName": name},
    }
    return _waha(event, payload, session=session, engine=engine, timestamp=sent)


def waha_image(
    chat: str,
    sender: str,
    caption: str | None = None,
    *,
    url: str = "http://127.0.0.1:3000/api/files/default/photo.jpeg",
    **kwargs: Any,
) -> Doc:
    """WAHA's `message` for a photo (`media.url` where WAHA serves the file)."""
    media = {"url": url, "mimetype": "image/jpeg", "filename": None, "error": None}
    return waha_message(chat, sender, caption or "", media=media, **kwargs)


def waha_edited(
    chat: str,
    sender: str,
    text: str,
    *,
    edited_id: str,
    timestamp: float | None = None,
    lid: bool | str = False,
    session: str = "default",
) -> Doc:
    """WAHA's `message.edited`: `editedMessageId` names the message, `body` its new text."""
    doc = waha_message(chat, sender, text, timestamp=timestamp, lid=lid, session=session)
    doc["event"] = "message.edited"
    doc["payload"]["editedMessageId"] = edited_id
    return doc


def waha_revoked(
    chat: str,
    message_id: str,
    *,
    sender: str = "27821234567",
    timestamp: float | None = None,
    session: str = "default",
) -> Doc:
    """WAHA's `message.revoked`: `revokedMessageId` names the deleted message."""
    sent = _now(timestamp)
    after = waha_message(chat, sender, "", timestamp=sent)["payload"]
    return _waha(
        "message.revoked",
        {"after": after, "revokedMessageId": message_id, "before": None},
        session=session,
        engine="NOWEB",
        timestamp=sent,
    )


def waha_session_status(
    status: str, *, session: str = "default", timestamp: float | None = None
) -> Doc:
    """WAHA's `session.status` (STOPPED, STARTING, SCAN_QR_CODE, WORKING, FAILED)."""
    at = _now(timestamp)
    payload = {
        "name": session,
        "status": status,
        "statuses": [{"status": status, "timestamp": int(at * 1000)}],
        "data": None,
    }
    return _waha("session.status", payload, session=session, engine="NOWEB", timestamp=at)


def sign_waha(body: bytes, key: str, timestamp: float | None = None) -> dict[str, str]:
    """WAHA's headers for `body`: HMAC-SHA512 hex of the raw bytes, request id, time (ms)."""
    return {
        "Content-Type": "application/json",
        "X-Webhook-Request-Id": str(uuid.uuid4()),
        "X-Webhook-Timestamp": str(int(_now(timestamp) * 1000)),
        "X-Webhook-Hmac": hmac.new(key.encode(), body, hashlib.sha512).hexdigest(),
        "X-Webhook-Hmac-Algorithm": "sha512",
    }


# --- Evolution API ------------------------------------------------------------------


def _evolution(event: str, data: Doc | list[Doc], *, instance: str, apikey: str | None) -> Doc:
    return {
        "event": event,
        "instance": instance,
        "data": data,
        "destination": "http://127.0.0.1/webhooks/evolution",
        "date_time": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "sender": "27820000000@s.whatsapp.net",
        "server_url": "http://127.0.0.1:8080",
        "apikey": apikey,
    }


def evolution_upsert(
    chat: str,
    sender: str,
    text: str | None,
    *,
    id: str | None = None,
    timestamp: float | None = None,
    media: Doc | None = None,
    lid: bool | str = False,
    name: str | None = "Installer",
    from_me: bool = False,
    instance: str = "wa-monitor",
    apikey: str | None = None,
    as_list: bool = False,
) -> Doc:
    """Evolution API's `messages.upsert` for a post in `chat`.

    `media` is an `imageMessage` (or video/document) object, e.g. from `evolution_image`;
    its caption is `text`. With `lid` the key is LID-addressed (`addressingMode: "lid"`,
    the phone JID in `participantAlt`).
    """
    participant, phone = _author(sender, lid, "s.whatsapp.net")
    key: Doc = {"remoteJid": chat, "fromMe": from_me, "id": id or new_id()}
    if chat.endswith("@g.us"):
        key["participant"] = participant
        key["addressingMode"] = "lid" if phone else "pn"
        if phone:
            key["participantAlt"] = phone
    if media is not None:
        kind = next(iter(media))
        message: Doc = {kind: {**media[kind], "caption": text}}
        message_type = kind
    else:
        message = {"conversation": text}
        message_type = "conversation"
    data = {
        "key": key,
        "pushName": name,
        "status": "DELIVERY_ACK",
        "message": message,
        "contextInfo": None,
        "messageType": message_type,
        "messageTimestamp": int(_now(timestamp)),
        "instanceId": "c6a2b8f0-5d1e-4f3a-9b7c-2e4d6f8a0b1c",
        "source": "android",
    }
    return _evolution(
        "messages.upsert", [data] if as_list else data, instance=instance, apikey=apikey
    )


def evolution_image(sha256: bytes | None = None, length: int = 204_811) -> Doc:
    """An `imageMessage` as Evolution API posts it (`fileSha256` as an index map)."""
    digest = sha256 or hashlib.sha256(b"photo").digest()
    return {
        "imageMessage": {
            "url": "https://mmg.whatsapp.net/o1/v/t62.7118-24/f1/m231/photo.enc",
            "mimetype": "image/jpeg",
            "fileSha256": {str(i): b for i, b in enumerate(digest)},
            "fileLength": {"low": length, "high": 0, "unsigned": True},
            "mediaKey": "cGhvdG8ta2V5",
        }
    }


def evolution_update(
    chat: str,
    message_id: str,
    *,
    status: str = "READ",
    participant: str | None = None,
    instance: str = "wa-monitor",
) -> Doc:
    """Evolution API's `messages.update` for a delivery status (no content: not an edit)."""
    data = {
        "keyId": message_id,
        "remoteJid": chat,
        "fromMe": False,
        "participant": participant,
        "status": status,
        "instanceId": "c6a2b8f0-5d1e-4f3a-9b7c-2e4d6f8a0b1c",
    }
    return _evolution("messages.update", data, instance=instance, apikey=None)


def evolution_edited(
    chat: str,
    message_id: str,
    text: str,
    *,
    sender: str = "27821234567",
    timestamp: float | None = None,
    instance: str = "wa-monitor",
) -> Doc:
    """Evolution API's `messages.edited`: the protocol message naming the edited post."""
    data = {
        "key": {
            "remoteJid": chat,
            "fromMe": False,
            "id": message_id,
            "participant": _jid(sender, "s.whatsapp.net"),
        },
        "type": "MESSAGE_EDIT",
        "editedMessage": {"conversation": text},
        "timestampMs": str(int(_now(timestamp) * 1000)),
    }
    return _evolution("messages.edited", data, instance=instance, apikey=None)


def evolution_delete(
    chat: str,
    message_id: str,
    *,
    participant: str | None = None,
    instance: str = "wa-monitor",
) -> Doc:
    """Evolution API's `messages.delete`: the deleted message's key."""
    data = {"remoteJid": chat, "fromMe": False, "id": message_id, "participant": participant}
    return _evolution("messages.delete", data, instance=instance, apikey=None)


def evolution_connection(state: str, *, instance: str = "wa-monitor") -> Doc:
    """Evolution API's `connection.update` (state open, connecting, close, refused)."""
    data = {"instance": instance, "wuid": "27820000000@s.whatsapp.net", "state": state}
    return _evolution("connection.update", data, instance=instance, apikey=None)


# --- The Go bridge fork -------------------------------------------------------------


def bridge_webhook_message(
    chat: str,
    sender: str,
    text: str | None,
    *,
    id: str | None = None,
    timestamp: float | None = None,
    media_type: str | None = None,
    filename: str | None = None,
    url: str | None = None,
    edited_id: str | None = None,
    from_me: bool = False,
) -> Doc:
    """The Go fork's webhook for one message: messages.db's columns, Go's RFC 3339 time."""
    moment = datetime.fromtimestamp(_now(timestamp), UTC).isoformat().replace("+00:00", "Z")
    doc: Doc = {
        "id": id or new_id(),
        "chat_jid": chat,
        "sender": _user(sender),
        "content": text,
        "timestamp": moment,
        "is_from_me": from_me,
        "media_type": media_type or "",
        "filename": filename or "",
        "url": url or "",
        "quoted_message": "",
        "is_edited": edited_id is not None,
    }
    if edited_id is not None:
        doc["original_message_id"] = edited_id
    return doc


# --- Delivery -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delivery:
    """How a gateway's delivery ended: the last answer (None: no answer) and the tries."""

    status: int | None
    attempts: int
    text: str

    @property
    def acknowledged(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def post_until_acknowledged(
    url: str,
    body: bytes,
    headers: dict[str, str] | None = None,
    *,
    attempts: int = 5,
    delay: float = 0.0,
    timeout: float = 5.0,
    final: frozenset[int] = frozenset(),
) -> Delivery:
    """POST `body` until a 2xx answer, as WAHA and Evolution API retry their webhooks.

    A timeout or a refused connection is a failed attempt, as is any non-2xx answer
    except those in `final` (pass `EVOLUTION_FINAL` to give up as Evolution does).
    `delay` seconds pass between attempts (the gateways' back-off, shortened).
    """
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    status: int | None = None
    text = ""
    with httpx.Client(timeout=timeout) as client:
        for attempt in range(1, attempts + 1):
            try:
                response = client.post(url, content=body, headers=sent_headers)
            except httpx.TransportError as exc:
                status, text = None, f"{type(exc).__name__}: {exc}"
            else:
                status, text = response.status_code, response.text
                if 200 <= status < 300 or status in final:
                    return Delivery(status, attempt, text)
            if attempt < attempts and delay:
                time.sleep(delay)
    return Delivery(status, attempts, text)
