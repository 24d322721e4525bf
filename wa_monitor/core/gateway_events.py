"""What the webhook gateways send, read into plain values: messages, deletions, states.

One reader per gateway turns a webhook's body into `Event`s, or raises `PayloadError`
with the reason a 400 answer gives. Readers are pure: no I/O, no clock (the caller
passes `now` where a signature's age is checked, and `received_at` for the few events
that carry no time of their own). Which groups are monitored is the caller's business:
a reader returns every message it can read. An event the monitor has no use for
(reactions, acks, presence, chats, contacts …) reads as `[]`: acknowledged, nothing
stored.

Message ids are WhatsApp's own (`3EB0C767D71D3AB3C9A1`), as the bridge stores them, so
that an edit or a deletion, which names the message by that id, finds it. JIDs are
written the whatsmeow way: `…@c.us` becomes `…@s.whatsapp.net`, a device suffix
(`:12`) is dropped. `sender_pn` is the author's phone number (digits) when the gateway
gives it beside a LID author; otherwise None. An edit (`edited=True`) names the edited
message; its `content` is the new text and `sent_at` the time of the edit, while its
author is best effort (Evolution's edit event does not name one): apply its content.

- WAHA: `{"id", "timestamp" (ms), "event", "session", "payload": {...}, "engine"}`.
  `message` / `message.any`: `payload.{id ("false_<chat>_<id>[_<participant>]"),
  timestamp (s), from, to, participant, fromMe, body, hasMedia, media.{url, mimetype,
  filename}, _data}`; in a group `from` is the group and `participant` the author. The
  phone beside a LID is looked for in the engine's `_data` (NOWEB:
  `key.participantAlt` / `key.remoteJidAlt` / `key.participantPn` / `key.senderPn`;
  GOWS: `Info.SenderAlt`). `message.edited`: the edited message is
  `payload.editedMessageId`, the new text `payload.body`. `message.revoked`:
  `payload.revokedMessageId` (else `before.id`), the chat from `after` / `before`.
  `session.status`: `payload.status` (STOPPED, STARTING, SCAN_QR_CODE, WORKING, FAILED).
- Evolution API: `{"event": "messages.upsert" | "messages.set" | "messages.update" |
  "messages.edited" | "messages.delete" | "connection.update", "instance", "data",
  "date_time", "sender", "server_url", "apikey"}` (`MESSAGES_UPSERT` spellings are read
  too; `data` may be a list). A message is `data.{key.{remoteJid, fromMe, id,
  participant, participantAlt, remoteJidAlt, addressingMode}, pushName, message,
  messageType, messageTimestamp}`. An edit arrives as `messages.edited` (the protocol
  message: `key` names the edited message, `editedMessage` holds the new text), as a
  `messages.upsert` of a protocol message, or as a `messages.update` carrying a
  `message`; an update without one is a delivery status and reads as `[]`. A protocol
  message of type REVOKE is a deletion. `messages.set` (history sync) is a list of
  messages, read as upserts. `messages.delete`: the deleted message's key (`data`
  itself, or `data.key`). `connection.update`: `data.state` (open, connecting, close,
  refused).
- The Go bridge fork's webhook (ycchoo28/whatsapp-mcp-forked): one message per call,
  `{"id", "chat_jid", "sender", "content", "timestamp" (Go's RFC 3339), "is_from_me",
  "media_type", "filename", "url", "quoted_message", "is_edited",
  "original_message_id"}`: the bridge's messages.db columns (`file_sha256` base64 and
  `file_length` are read when a fork adds them). Its `url`, like Evolution's media
  `url`, is WhatsApp's encrypted CDN address, of no use without the media key: the
  file is asked for by message id, so `MediaRef.url` stays None.

Authentication: WAHA signs the raw body (`verify_waha`). Evolution API and the Go fork
sign nothing: the fork posts with no header at all, so its WEBHOOK_URL carries the
token as `?token=<WEBHOOK_TOKEN>`; a proxy or Evolution's webhook `headers` may send
`Authorization: Bearer <WEBHOOK_TOKEN>` instead (`verify_token`). Evolution's body
carries the instance's `apikey` when its server exposes it (`verify_evolution`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

WAHA_GATEWAY: Final = "waha"
EVOLUTION_GATEWAY: Final = "evolution"
BRIDGE_WEBHOOK_GATEWAY: Final = "bridge-webhook"


class PayloadError(ValueError):
    """The body cannot be read as the gateway's webhook: the reason, for the 400 answer."""


class SignatureError(ValueError):
    """The call is not signed, wrongly signed, or signed too long ago (401)."""


class ReplayError(SignatureError):
    """Rightly signed, but at a time too far from now: a replay, or a clock off."""


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

# A JSON object as the readers see it.
_Obj = Mapping[str, object]

# Epoch values above this are milliseconds (in seconds it is the year 5138).
_MS_THRESHOLD: Final = 1e11
# The media messages of WhatsApp's protocol, and what `media_type` they give.
_MEDIA_MESSAGES: Final = (
    ("imageMessage", "image"),
    ("videoMessage", "video"),
    ("ptvMessage", "video"),
    ("audioMessage", "audio"),
    ("documentMessage", "document"),
    ("stickerMessage", "sticker"),
)
# Wrappers whose `.message` holds the real content.
_WRAPPERS: Final = (
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
)
# Messages that are not posts: reactions, poll votes, key distribution.
_NOT_POSTS: Final = frozenset(
    {"reactionMessage", "pollUpdateMessage", "senderKeyDistributionMessage", "keepInChatMessage"}
)
_REVOKE: Final = frozenset({0, "0", "REVOKE"})
_MESSAGE_EDIT: Final = frozenset({14, "14", "MESSAGE_EDIT"})


# --- JSON access -------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise PayloadError(f"the body has {name}, which is not JSON")


def _load(body: bytes) -> _Obj:
    """The body as a JSON object, or PayloadError."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant)
    except PayloadError:
        raise
    except RecursionError:
        raise PayloadError("the body is nested too deeply to read") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to read
        raise PayloadError(f"the body is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise PayloadError(f"the body is a JSON {_kind(doc)}, not an object")
    return doc


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _obj(value: object, where: str) -> _Obj:
    if not isinstance(value, dict):
        raise PayloadError(f"{where} must be an object, not {_kind(value)}")
    return value


def _opt_obj(value: object) -> _Obj:
    """An optional object: {} for anything else (engine-internal data, read leniently)."""
    return value if isinstance(value, dict) else {}


def _str(doc: _Obj, key: str, where: str) -> str:
    value = doc.get(key)
    if value is None:
        raise PayloadError(f"{where}.{key} is missing")
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key} must be a string, not {_kind(value)}")
    if not value.strip():
        raise PayloadError(f"{where}.{key} is empty")
    return value


def _opt_str(doc: _Obj, key: str, where: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}.{key} must be a string, not {_kind(value)}")
    return value


def _loose_str(value: object) -> str | None:
    """A non-empty string, else None (for engine-internal fields)."""
    return value if isinstance(value, str) and value.strip() else None


def _bool(doc: _Obj, key: str, where: str) -> bool:
    value = doc.get(key)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise PayloadError(f"{where}.{key} must be true or false, not {_kind(value)}")
    return value


def _number(value: object) -> float | None:
    """A JSON number, a digit string, or a protobuf Long ({low, high}); None otherwise."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float) or (
            isinstance(value, str) and re.fullmatch(r"\s*\d{1,20}(\.\d{1,9})?\s*", value)
        ):
            number = float(value)
        elif (
            isinstance(value, dict) and _is_int32(value.get("low")) and _is_int32(value.get("high"))
        ):
            number = float((value["high"] << 32) | (value["low"] & 0xFFFFFFFF))
        else:
            return None
    except OverflowError:  # an integer beyond any float
        return None
    return number if math.isfinite(number) else None


def _is_int32(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and -(2**31) <= value < 2**32


def _epoch(value: object, where: str) -> float:
    """Epoch seconds from seconds or milliseconds (a number, digit text or a Long)."""
    if value is None:
        raise PayloadError(f"{where} is missing")
    number = _number(value)
    if number is None:
        raise PayloadError(f"{where} must be epoch seconds, not {_kind(value)} {value!r:.40}")
    if number < 0:
        raise PayloadError(f"{where} is negative")
    return number / 1000 if number > _MS_THRESHOLD else number


def _opt_epoch(value: object) -> float | None:
    number = _number(value)
    if number is None or number < 0:
        return None
    return number / 1000 if number > _MS_THRESHOLD else number


_FRACTION = re.compile(r"(\.\d{6})\d+")


def _text_time(value: str, where: str) -> float:
    """RFC 3339 or go-sqlite3 text (`2025-11-09 19:15:30.123456789+02:00`); no zone: UTC."""
    text = _FRACTION.sub(r"\1", value.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    # Go writes `+0200` in some layouts and a ` +0200 SAST` tail in time.String().
    text = re.sub(r"\s+m=[+-][\d.]+$", "", text)
    text = re.sub(r"\s+[A-Z]{2,5}$", "", text)
    text = re.sub(r"\s*([+-]\d\d):?(\d\d)$", r"\1:\2", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise PayloadError(f"{where} is not a time: {value!r:.60}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        raise PayloadError(f"{where} is out of range: {value!r:.60}") from None


def _opt_bytes(value: object) -> bytes | None:
    """Bytes as the gateways write them in JSON: base64 text, a Node Buffer, an index map."""
    data: list[object] | None = None
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True) or None
        except (binascii.Error, ValueError):
            try:
                return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)) or None
            except (binascii.Error, ValueError):
                return None
    if isinstance(value, list):
        data = value
    elif isinstance(value, dict):
        if value.get("type") == "Buffer" and isinstance(value.get("data"), list):
            data = value["data"]
        elif value and all(isinstance(k, str) and k.isdigit() for k in value):
            data = [value[k] for k in sorted(value, key=int)]
    if data is None or not all(isinstance(b, int) and not isinstance(b, bool) for b in data):
        return None
    try:
        return bytes(data) or None  # type: ignore[arg-type]
    except ValueError:
        return None


def _opt_int(value: object) -> int | None:
    number = _number(value)
    if number is None or number < 0 or number >= 2**63:
        return None
    return int(number)


# --- JIDs ----------------------------------------------------------------------------


def normalise_jid(jid: str) -> str:
    """`…@c.us` as `…@s.whatsapp.net`, without a device suffix (`27821234567:12@…`)."""
    jid = jid.strip()
    user, at, server = jid.partition("@")
    if not at:
        return jid
    if server == "c.us":
        server = "s.whatsapp.net"
    if server in ("s.whatsapp.net", "lid"):
        user = user.split(":", 1)[0]
    return f"{user}@{server}"


def is_lid(jid: str) -> bool:
    """Whether a JID (or a bare user part) names a LID, not a phone number."""
    return jid.endswith("@lid")


def _phone(jid: object) -> str | None:
    """The phone number of a phone JID (`27821234567@s.whatsapp.net`), else None."""
    if not isinstance(jid, str):
        return None
    normal = normalise_jid(jid)
    user, _, server = normal.partition("@")
    if server == "s.whatsapp.net" and user.isdigit():
        return user
    return None


def _first_phone(*candidates: object) -> str | None:
    for candidate in candidates:
        phone = _phone(candidate)
        if phone:
            return phone
    return None


# --- WhatsApp's protocol messages (Evolution's `message`, WAHA's `_data`) ----------


def _unwrap(message: _Obj) -> _Obj:
    """The content inside ephemeral / view-once / caption / edit wrappers."""
    for _ in range(5):
        for wrapper in _WRAPPERS:
            inner = _opt_obj(message.get(wrapper))
            if isinstance(inner.get("message"), dict):
                message = inner["message"]  # type: ignore[assignment]
                break
        else:
            return message
    return message


def _proto_text(message: _Obj) -> str | None:
    """The text of a protocol message: conversation, extended text, or a caption."""
    message = _unwrap(message)
    if isinstance(message.get("conversation"), str):
        return message["conversation"]  # type: ignore[return-value]
    extended = _opt_obj(message.get("extendedTextMessage"))
    if isinstance(extended.get("text"), str):
        return extended["text"]  # type: ignore[return-value]
    for name, _media_type in _MEDIA_MESSAGES:
        caption = _opt_obj(message.get(name)).get("caption")
        if isinstance(caption, str):
            return caption
    return None


def _proto_media(message: _Obj, *, url: str | None = None) -> tuple[str, MediaRef] | None:
    """The media type and reference of a protocol message's image/video/… part."""
    message = _unwrap(message)
    for name, media_type in _MEDIA_MESSAGES:
        part = message.get(name)
        if not isinstance(part, dict):
            continue
        sha256 = _opt_bytes(part.get("fileSha256", part.get("fileSHA256")))
        return media_type, MediaRef(
            url=url,
            mimetype=_loose_str(part.get("mimetype")),
            filename=_loose_str(part.get("fileName")),
            sha256=sha256,
            length=_opt_int(part.get("fileLength")),
        )
    return None


def _media_type_of(mimetype: str | None) -> str:
    major = (mimetype or "").split("/", 1)[0].strip().lower()
    return major if major in ("image", "video", "audio") else "document"


def _protocol(message: _Obj) -> _Obj | None:
    """The protocol message (an edit or a revoke) inside a message, if it is one."""
    for _ in range(5):
        protocol = message.get("protocolMessage")
        if isinstance(protocol, dict):
            return protocol
        for wrapper in _WRAPPERS:
            inner = _opt_obj(message.get(wrapper)).get("message")
            if isinstance(inner, dict):
                message = inner
                break
        else:
            return None
    return None


# --- WAHA ---------------------------------------------------------------------------

_WAHA_ID = re.compile(r"^(?:true|false)_([^_]+)_([^_]+)(?:_(.+))?$")


def _waha_bare_id(serialized: str) -> str:
    """WhatsApp's id in WAHA's `false_<chat>_<id>[_<participant>]`; other ids as given."""
    match = _WAHA_ID.match(serialized)
    return match.group(2) if match else serialized


def _waha_chat_of_id(serialized: str) -> str | None:
    match = _WAHA_ID.match(serialized)
    return match.group(1) if match else None


def _waha_sender_pn(data: _Obj) -> str | None:
    key = _opt_obj(data.get("key"))
    info = _opt_obj(data.get("Info"))
    return _first_phone(
        key.get("participantAlt"),
        key.get("participantPn"),
        key.get("senderPn"),
        data.get("participantPn"),
        data.get("senderPn"),
        info.get("SenderAlt"),
        key.get("remoteJidAlt"),
        info.get("RecipientAlt") if info.get("IsFromMe") else None,
    )


def _waha_name(data: _Obj) -> str | None:
    info = _opt_obj(data.get("Info"))
    return (
        _loose_str(data.get("pushName"))
        or _loose_str(data.get("notifyName"))
        or _loose_str(info.get("PushName"))
    )


_WEBJS_MEDIA_TYPES: Final[Mapping[str, str]] = {
    "image": "image",
    "video": "video",
    "audio": "audio",
    "ptt": "audio",
    "document": "document",
    "sticker": "sticker",
}


def _waha_media(payload: _Obj, data: _Obj) -> tuple[str | None, MediaRef | None]:
    """Media type and reference from `hasMedia` / `media`, filled in from `_data`."""
    where = "payload.media"
    media = payload.get("media")
    if media is not None and not isinstance(media, dict):
        raise PayloadError(f"{where} must be an object or null, not {_kind(media)}")
    if not (_bool(payload, "hasMedia", "payload") or media):
        return None, None
    media = media or {}
    url = _opt_str(media, "url", where)
    mimetype = _opt_str(media, "mimetype", where)
    filename = _opt_str(media, "filename", where)
    # NOWEB's `_data.message` and GOWS's `_data.Message` are WhatsApp's own message.
    proto = _proto_media(_opt_obj(data.get("message")) or _opt_obj(data.get("Message")))
    engine_type = _WEBJS_MEDIA_TYPES.get(_loose_str(data.get("type")) or "")
    ref = MediaRef()
    if proto is not None:
        media_type, ref = proto
    elif engine_type is not None:
        media_type = engine_type
    else:
        media_type = _media_type_of(mimetype)
    return media_type, MediaRef(
        url=url or None,
        mimetype=mimetype or ref.mimetype,
        filename=filename or ref.filename,
        sha256=ref.sha256,
        length=ref.length,
    )


def _waha_message(payload: _Obj, *, edited: bool) -> InboxMessage:
    where = "payload"
    serialized = _str(payload, "id", where)
    sent_at = _epoch(payload.get("timestamp"), f"{where}.timestamp")
    from_jid = _str(payload, "from", where)
    to_jid = _opt_str(payload, "to", where)
    participant = _opt_str(payload, "participant", where)
    from_me = _bool(payload, "fromMe", where)
    body = _opt_str(payload, "body", where)
    data = _opt_obj(payload.get("_data"))

    if from_jid.endswith("@g.us"):
        chat = from_jid
    elif to_jid and to_jid.endswith("@g.us"):
        chat = to_jid  # some engines name our own group posts `from` us `to` the group
    elif from_me and to_jid:
        chat = to_jid
    else:
        chat = from_jid
    sender = participant or from_jid
    if sender == chat and chat.endswith("@g.us"):
        sender = _loose_str(data.get("author")) or chat  # WEBJS names a group's author so
    message_id = _waha_bare_id(serialized)
    if edited:
        edited_id = _opt_str(payload, "editedMessageId", where)
        if edited_id:
            message_id = _waha_bare_id(edited_id)
    sender = normalise_jid(sender)
    media_type, media = _waha_media(payload, data)
    return InboxMessage(
        gateway=WAHA_GATEWAY,
        chat_jid=normalise_jid(chat),
        message_id=message_id,
        sender=sender,
        sender_pn=_waha_sender_pn(data) if is_lid(sender) else None,
        sender_name=_waha_name(data),
        content=body,
        sent_at=sent_at,
        from_me=from_me,
        media_type=media_type,
        media=media,
        edited=edited,
    )


def _waha_revoked(doc: _Obj, payload: _Obj, received_at: float | None) -> InboxDeletion:
    where = "payload"
    after = payload.get("after")
    before = payload.get("before")
    if after is not None and not isinstance(after, dict):
        raise PayloadError(f"{where}.after must be an object or null, not {_kind(after)}")
    if before is not None and not isinstance(before, dict):
        raise PayloadError(f"{where}.before must be an object or null, not {_kind(before)}")
    after = after or {}
    before = before or {}
    revoked = _opt_str(payload, "revokedMessageId", where)
    if not revoked and before.get("id") is not None:
        revoked = _str(before, "id", f"{where}.before")
    if not revoked and after.get("id") is not None:
        revoked = _str(after, "id", f"{where}.after")
    if not revoked:
        raise PayloadError(f"{where}.revokedMessageId is missing (and no before.id)")
    chat = None
    for part, part_where in ((after, f"{where}.after"), (before, f"{where}.before")):
        if not part:
            continue
        from_jid = _opt_str(part, "from", part_where)
        to_jid = _opt_str(part, "to", part_where)
        for jid in (from_jid, to_jid):
            if jid and jid.endswith("@g.us"):
                chat = jid
                break
        if chat is None and isinstance(part.get("id"), str):
            chat = _waha_chat_of_id(part["id"])
        if chat is None:
            chat = from_jid
        if chat:
            break
    if chat is None:
        chat = _waha_chat_of_id(revoked)
    if not chat:
        raise PayloadError(f"{where}.after.from is missing: the deleted message's chat")
    deleted_at = _opt_epoch(after.get("timestamp"))
    if deleted_at is None:
        deleted_at = _opt_epoch(doc.get("timestamp"))
    if deleted_at is None:
        deleted_at = received_at
    if deleted_at is None:
        raise PayloadError(f"{where}.after.timestamp is missing")
    return InboxDeletion(
        gateway=WAHA_GATEWAY,
        chat_jid=normalise_jid(chat),
        message_id=_waha_bare_id(revoked),
        deleted_at=deleted_at,
    )


def _waha_status(doc: _Obj, payload: _Obj, received_at: float | None) -> SessionStatus:
    session = _str(doc, "session", "body")
    status = _str(payload, "status", "payload")
    # `statuses` lists the recent changes with their times (ms); the newest of this
    # status is when it began.
    statuses = payload.get("statuses")
    times = [
        _opt_epoch(entry.get("timestamp"))
        for entry in (statuses if isinstance(statuses, list) else [])
        if isinstance(entry, dict) and entry.get("status") == status
    ]
    at = max((t for t in times if t is not None), default=None)
    if at is None:
        at = _opt_epoch(doc.get("timestamp"))
    if at is None:
        at = received_at
    if at is None:
        raise PayloadError("body.timestamp is missing: when the session's status changed")
    return SessionStatus(gateway=WAHA_GATEWAY, session=session, status=status, at=at)


def parse_waha(body: bytes, *, received_at: float | None = None) -> list[Event]:
    """WAHA's webhook body as events.

    `received_at` (epoch seconds) stands for the time of a revoke or a status change
    whose body gives none (older WAHA versions); without it such a body is refused.
    """
    doc = _load(body)
    event = _str(doc, "event", "body")
    if event not in (
        "message",
        "message.any",
        "message.edited",
        "message.revoked",
        "session.status",
    ):
        return []
    payload = _obj(doc.get("payload"), "body.payload")
    if event == "session.status":
        return [_waha_status(doc, payload, received_at)]
    if event == "message.revoked":
        return [_waha_revoked(doc, payload, received_at)]
    return [_waha_message(payload, edited=event == "message.edited")]


# --- Evolution API ------------------------------------------------------------------


def _evolution_event(doc: _Obj) -> str:
    return _str(doc, "event", "body").strip().lower().replace("_", ".")


def _evolution_time(doc: _Obj, received_at: float | None, where: str) -> float:
    """When an event without a time of its own happened: `received_at`, else `date_time`.

    Evolution writes `date_time` as the server's local time with a `Z`; it is right only
    on a server kept in UTC, hence `received_at` first.
    """
    if received_at is not None:
        return received_at
    date_time = doc.get("date_time")
    if isinstance(date_time, str) and date_time.strip():
        return _text_time(date_time, "body.date_time")
    raise PayloadError(f"body.date_time is missing: when {where} happened")


def _evolution_items(doc: _Obj) -> list[tuple[_Obj, str]]:
    data = doc.get("data")
    if isinstance(data, list):
        return [(_obj(item, f"body.data[{i}]"), f"body.data[{i}]") for i, item in enumerate(data)]
    return [(_obj(data, "body.data"), "body.data")]


def _evolution_sender(
    item: _Obj, key: _Obj, chat: str, from_me: bool, doc: _Obj, where: str
) -> str:
    participant = _opt_str(key, "participant", f"{where}.key") or _loose_str(
        item.get("participant")
    )
    if participant:
        return participant
    if from_me:  # our own posts name no participant, in groups too: `sender` is us
        return _loose_str(doc.get("sender")) or chat
    if chat.endswith("@g.us"):
        raise PayloadError(f"{where}.key.participant is missing: the author of a group message")
    return chat


def _evolution_key(item: _Obj, where: str) -> tuple[_Obj, str, str, bool]:
    key = _obj(item.get("key"), f"{where}.key")
    chat = _str(key, "remoteJid", f"{where}.key")
    message_id = _str(key, "id", f"{where}.key")
    return key, chat, message_id, _bool(key, "fromMe", f"{where}.key")


def _evolution_message(
    doc: _Obj, item: _Obj, where: str, received_at: float | None
) -> Event | None:
    key, chat, message_id, from_me = _evolution_key(item, where)
    message = item.get("message")
    if message is None:
        return None  # a stub (a group notice, an undecryptable message): not a post
    message = _obj(message, f"{where}.message")
    protocol = _protocol(message)
    if protocol is not None:
        return _evolution_protocol(doc, protocol, item, where, received_at, fallback_chat=chat)
    inner = _unwrap(message)
    if inner.keys() & _NOT_POSTS or "pollCreationMessage" in inner:
        return None
    sent_at = _epoch(item.get("messageTimestamp"), f"{where}.messageTimestamp")
    sender = normalise_jid(_evolution_sender(item, key, chat, from_me, doc, where))
    media = _proto_media(message, url=_loose_str(message.get("mediaUrl")))
    return InboxMessage(
        gateway=EVOLUTION_GATEWAY,
        chat_jid=normalise_jid(chat),
        message_id=message_id,
        sender=sender,
        sender_pn=_evolution_sender_pn(item, key) if is_lid(sender) else None,
        sender_name=_opt_str(item, "pushName", where),
        content=_proto_text(message),
        sent_at=sent_at,
        from_me=from_me,
        media_type=media[0] if media else None,
        media=media[1] if media else None,
    )


def _evolution_sender_pn(item: _Obj, key: _Obj) -> str | None:
    return _first_phone(
        key.get("participantAlt"),
        key.get("participantPn"),
        key.get("senderPn"),
        item.get("participantAlt"),
        item.get("senderPn"),
        key.get("remoteJidAlt") if not str(key.get("remoteJid", "")).endswith("@g.us") else None,
    )


def _evolution_protocol(
    doc: _Obj,
    protocol: _Obj,
    item: _Obj,
    where: str,
    received_at: float | None,
    *,
    fallback_chat: str | None = None,
) -> Event | None:
    """An edit (type MESSAGE_EDIT) or a deletion (REVOKE); other protocol messages: None."""
    kind = protocol.get("type")
    if isinstance(kind, bool) or not isinstance(kind, int | str):
        kind = None
    edited = protocol.get("editedMessage")
    if kind not in _REVOKE and kind not in _MESSAGE_EDIT and not isinstance(edited, dict):
        return None
    target = _obj(protocol.get("key"), f"{where}.protocolMessage.key")
    chat = _opt_str(target, "remoteJid", f"{where}.protocolMessage.key") or fallback_chat
    if not chat:
        raise PayloadError(f"{where}.key.remoteJid is missing: the edited message's chat")
    message_id = _str(target, "id", f"{where}.protocolMessage.key")
    at = _opt_epoch(protocol.get("timestampMs"))
    if at is None:
        at = _opt_epoch(item.get("messageTimestamp"))
    if kind in _REVOKE and not isinstance(edited, dict):
        if at is None:
            at = _evolution_time(doc, received_at, "the deletion")
        return InboxDeletion(
            gateway=EVOLUTION_GATEWAY,
            chat_jid=normalise_jid(chat),
            message_id=message_id,
            deleted_at=at,
        )
    if at is None:
        at = _evolution_time(doc, received_at, "the edit")
    outer_key = _opt_obj(item.get("key"))
    # The protocol message's key is the editor's view of the message; the outer key,
    # when there is one, is ours.
    from_me = (outer_key if "fromMe" in outer_key else target).get("fromMe") is True
    author = (
        _loose_str(target.get("participant"))
        or _loose_str(outer_key.get("participant"))
        or _loose_str(item.get("participant"))
        or (_loose_str(doc.get("sender")) if from_me else None)
        or chat
    )
    sender = normalise_jid(author)
    new = _opt_obj(edited)
    media = _proto_media(new)
    return InboxMessage(
        gateway=EVOLUTION_GATEWAY,
        chat_jid=normalise_jid(chat),
        message_id=message_id,
        sender=sender,
        sender_pn=_evolution_sender_pn(item, outer_key or target) if is_lid(sender) else None,
        sender_name=_loose_str(item.get("pushName")),
        content=_proto_text(new),
        sent_at=at,
        from_me=from_me,
        media_type=media[0] if media else None,
        media=media[1] if media else None,
        edited=True,
    )


def _evolution_update(doc: _Obj, item: _Obj, where: str, received_at: float | None) -> Event | None:
    """An edit carried by messages.update; a delivery status (no `message`) is None."""
    message = item.get("message")
    if isinstance(message, dict):
        protocol = _protocol(message)
        key = _opt_obj(item.get("key"))
        chat = _loose_str(key.get("remoteJid")) or _loose_str(item.get("remoteJid"))
        if protocol is not None:
            return _evolution_protocol(doc, protocol, item, where, received_at, fallback_chat=chat)
        if isinstance(message.get("editedMessage"), dict) or "conversation" in message:
            target_id = _loose_str(key.get("id")) or _loose_str(item.get("keyId"))
            if chat and target_id:
                synthetic = {"key": {"remoteJid": chat, "id": target_id}, "editedMessage": message}
                return _evolution_protocol(doc, synthetic, item, where, received_at)
    return None


def _evolution_delete(doc: _Obj, item: _Obj, where: str, received_at: float | None) -> Event:
    """messages.delete: `data` is the deleted message's key, or a stored row with `key`."""
    if isinstance(item.get("key"), dict):
        key, key_where = _obj(item["key"], f"{where}.key"), f"{where}.key"
    else:
        key, key_where = item, where
    chat = _str(key, "remoteJid", key_where)
    message_id = _str(key, "id", key_where)
    return InboxDeletion(
        gateway=EVOLUTION_GATEWAY,
        chat_jid=normalise_jid(chat),
        message_id=message_id,
        deleted_at=_evolution_time(doc, received_at, "the deletion"),
    )


def _evolution_connection(doc: _Obj, item: _Obj, where: str, received_at: float | None) -> Event:
    state = _str(item, "state", where)
    instance = _loose_str(doc.get("instance")) or _loose_str(item.get("instance"))
    if instance is None:
        raise PayloadError("body.instance is missing: the instance whose connection changed")
    return SessionStatus(
        gateway=EVOLUTION_GATEWAY,
        session=instance,
        status=state,
        at=_evolution_time(doc, received_at, "the connection change"),
    )


_EvolutionReader = Callable[[_Obj, _Obj, str, float | None], Event | None]
_EVOLUTION_READERS: Final[Mapping[str, _EvolutionReader]] = {
    "messages.upsert": _evolution_message,
    "messages.set": _evolution_message,  # history sync: what was missed while away
    "messages.update": _evolution_update,
    "messages.edited": lambda doc, item, where, received_at: _evolution_protocol(
        doc, item, item, where, received_at
    ),
    "messages.delete": _evolution_delete,
    "connection.update": _evolution_connection,
}


def parse_evolution(body: bytes, *, received_at: float | None = None) -> list[Event]:
    """Evolution API's webhook body as events.

    `received_at` (epoch seconds) is the time of a deletion or a connection change,
    which Evolution does not date itself; without it `date_time` is used.
    """
    doc = _load(body)
    reader = _EVOLUTION_READERS.get(_evolution_event(doc))
    if reader is None:
        return []
    events: list[Event] = []
    for item, where in _evolution_items(doc):
        event = reader(doc, item, where, received_at)
        if event is not None:
            events.append(event)
    return events


# --- The Go bridge fork -------------------------------------------------------------


def parse_bridge_webhook(body: bytes) -> list[Event]:
    """The Go bridge fork's webhook body as events."""
    doc = _load(body)
    where = "body"
    message_id = _str(doc, "id", where)
    chat = _str(doc, "chat_jid", where)
    sender = _str(doc, "sender", where)
    raw_time = doc.get("timestamp")
    if isinstance(raw_time, str) and not _number(raw_time):
        sent_at = _text_time(raw_time, f"{where}.timestamp")
    else:
        sent_at = _epoch(raw_time, f"{where}.timestamp")
    edited = _bool(doc, "is_edited", where)
    if edited:
        message_id = _opt_str(doc, "original_message_id", where) or message_id
    media_type = _opt_str(doc, "media_type", where) or None
    media = None
    if media_type:
        _opt_str(doc, "url", where)  # WhatsApp's encrypted CDN address: fetched by id instead
        media = MediaRef(
            mimetype=_loose_str(doc.get("mimetype")) or _loose_str(doc.get("mime_type")),
            filename=_opt_str(doc, "filename", where) or None,
            sha256=_opt_bytes(doc.get("file_sha256")),
            length=_opt_int(doc.get("file_length")),
        )
    sender_name = _loose_str(doc.get("sender_name")) or _loose_str(doc.get("push_name"))
    return [
        InboxMessage(
            gateway=BRIDGE_WEBHOOK_GATEWAY,
            chat_jid=normalise_jid(chat),
            message_id=message_id,
            sender=normalise_jid(sender),
            sender_pn=None,
            sender_name=sender_name,
            content=_opt_str(doc, "content", where),
            sent_at=sent_at,
            from_me=_bool(doc, "is_from_me", where),
            media_type=media_type,
            media=media,
            edited=edited,
        )
    ]


# --- Authentication -----------------------------------------------------------------


def waha_signature(body: bytes, hmac_key: str) -> str:
    """WAHA's X-Webhook-Hmac of a body: HMAC-SHA512 of the raw bytes, hex."""
    return hmac.new(hmac_key.encode("utf-8"), body, hashlib.sha512).hexdigest()


def _signed_time(body: bytes, headers: Mapping[str, str]) -> float | None:
    """When WAHA made the event: the body's `timestamp` (ms, signed), else the header's."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        doc = None
    if isinstance(doc, dict):
        at = _opt_epoch(doc.get("timestamp"))
        if at is not None:
            return at
    header = headers.get("x-webhook-timestamp")
    if header is None:
        return None
    at = _opt_epoch(header.strip())
    if at is None:
        raise SignatureError("X-Webhook-Timestamp is not a time")
    return at


def verify_waha(
    body: bytes, headers: Mapping[str, str], *, hmac_key: str, now: float, window: float
) -> None:
    """Raise SignatureError unless WAHA signed `body` with `hmac_key` within `window` s.

    `headers` is case-insensitive (lower-case names). WAHA's `X-Webhook-Hmac` covers the
    body only, not the `X-Webhook-Timestamp` header, so replays are bounded by the
    body's own `timestamp` (milliseconds, signed with it; WAHA 2025+); bodies without
    one are checked against the header's. Within the window a replay is harmless: the
    inbox stores each (chat, message) once. `window` must exceed WAHA's retry span
    (`retries.attempts` × `delaySeconds` with its policy).
    """
    signature = headers.get("x-webhook-hmac")
    if not signature:
        raise SignatureError("no X-Webhook-Hmac header: set hmac.key on WAHA's webhook")
    algorithm = headers.get("x-webhook-hmac-algorithm", "sha512").strip().lower()
    if algorithm != "sha512":
        raise SignatureError(f"X-Webhook-Hmac-Algorithm {algorithm[:20]!r} is not sha512")
    expected = waha_signature(body, hmac_key)
    if not hmac.compare_digest(signature.strip().lower().encode(), expected.encode()):
        raise SignatureError("X-Webhook-Hmac does not match the body: check WAHA_HMAC_KEY")
    at = _signed_time(body, headers)
    if at is not None and abs(now - at) > window:
        age = now - at
        when = f"signed {age:.0f} s ago" if age > 0 else f"signed {-age:.0f} s ahead"
        raise ReplayError(f"{when}, outside the {window:.0f} s window")


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "").strip()
    scheme, _, credentials = value.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def verify_token(headers: Mapping[str, str], query_token: str | None, *, token: str) -> None:
    """Raise SignatureError unless the call carries `token` (bearer header or `?token=`).

    `headers` is case-insensitive (lower-case names). Compared in constant time.
    """
    given = _bearer(headers) or query_token
    if not given:
        raise SignatureError(
            "no token: add ?token=<WEBHOOK_TOKEN> to the webhook's URL "
            "or send Authorization: Bearer <WEBHOOK_TOKEN>"
        )
    if not _same(given, token):
        raise SignatureError("the webhook's token is wrong: check WEBHOOK_TOKEN")


def verify_bridge_webhook(
    headers: Mapping[str, str], query_token: str | None, *, token: str
) -> None:
    """Raise SignatureError unless the Go fork's call carries WEBHOOK_TOKEN.

    The fork posts with no header of its own: its WEBHOOK_URL ends in `?token=…`.
    """
    verify_token(headers, query_token, token=token)


def verify_evolution(
    body: bytes,
    headers: Mapping[str, str],
    query_token: str | None = None,
    *,
    api_key: str | None,
    token: str | None = None,
) -> None:
    """Raise SignatureError unless an Evolution API call is authenticated.

    Accepted: WEBHOOK_TOKEN (`token`) as a bearer header or `?token=` (Evolution's
    webhook `headers` can send it), or the body's `apikey` (the instance's key, sent
    when the server sets AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES) or an `apikey`
    header equal to `api_key`. Compared in constant time.
    """
    if token is not None and (_bearer(headers) or query_token):
        verify_token(headers, query_token, token=token)
        return
    if api_key is None:
        if token is None:
            raise SignatureError("neither EVOLUTION_API_KEY nor WEBHOOK_TOKEN is set")
        verify_token(headers, query_token, token=token)
        return
    given = headers.get("apikey")
    if given is None:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            doc = None
        value = doc.get("apikey") if isinstance(doc, dict) else None
        given = value if isinstance(value, str) else None
    if not given:
        raise SignatureError(
            "no apikey in the call: set AUTHENTICATION_EXPOSE_IN_FETCH_INSTANCES=true on "
            "Evolution API, or send WEBHOOK_TOKEN in the webhook's headers"
        )
    if not _same(given, api_key):
        raise SignatureError("the call's apikey is wrong: check EVOLUTION_API_KEY")
