"""neonize's events into messages.db rows: pure of the network, every value treated as data.

Live messages are stored as the upstream bridge stores them (sender: the user part of
the sender's JID, a LID number for LID-addressed groups); history-synced messages with
the sender's full JID, as upstream's history rows. Beyond upstream: captions of media,
edits (the new text replaces the row's content, as a new row) and deletions for everyone
(`deleted_messages`). A malformed or unsupported message is logged once per kind and
skipped; nothing here raises into neonize's event thread.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (  # type: ignore[import-untyped, unused-ignore]
    Message,
    ProtocolMessage,
)
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import (  # type: ignore[import-untyped, unused-ignore]
    WebMessageInfo,
)

from wa_monitor.bridge.store import BridgeStoreWriteError, MessageRow, MessageStore

log = logging.getLogger("wa_monitor.bridge")

Outcome = Literal["stored", "edited", "deleted", "ignored", "skipped", "failed"]

# Messages that only wrap another one (sent from our other device, disappearing, view
# once, a document with a caption, an edit's envelope).
_WRAPPERS: Final = (
    "deviceSentMessage",
    "ephemeralMessage",
    "viewOnceMessage",
    "viewOnceMessageV2",
    "viewOnceMessageV2Extension",
    "documentWithCaptionMessage",
    "editedMessage",
)
# The media kinds the upstream bridge stores, by the waE2E field that carries them.
_MEDIA: Final = {
    "imageMessage": "image",
    "videoMessage": "video",
    "ptvMessage": "video",
    "audioMessage": "audio",
    "documentMessage": "document",
}
_DEFAULT_EXTENSION: Final = {"image": "jpg", "video": "mp4", "audio": "ogg", "document": "bin"}
_EXTENSIONS: Final = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "audio/ogg": "ogg",
    "audio/mpeg": "mp3",
    "audio/mp4": "m4a",
    "application/pdf": "pdf",
}
# Protocol messages that are bookkeeping between devices, not something a person posted.
_SILENT: Final = ("senderKeyDistributionMessage", "messageContextInfo", "protocolMessage")
_UNSAFE_NAME: Final = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Parsed:
    """What a message carries that messages.db keeps."""

    content: str
    media_type: str = ""
    mimetype: str = ""
    filename: str = ""
    url: str = ""
    media_key: bytes = b""
    file_sha256: bytes = b""
    file_enc_sha256: bytes = b""
    file_length: int = 0
    media: bytes | None = None  # the media part, serialised, to download it later


def jid_text(jid: Any) -> str:
    """A JID protobuf as `user@server` (device and agent dropped: a chat's or user's JID)."""
    user, server = str(jid.User or ""), str(jid.Server or "")
    if not server:
        return ""
    return f"{user}@{server}" if user else server


def unwrap(message: Any) -> Any:
    """The message inside the wrappers WhatsApp puts around it."""
    for _ in range(8):
        for name in _WRAPPERS:
            if message.HasField(name) and message_of(getattr(message, name)) is not None:
                message = message_of(getattr(message, name))
                break
        else:
            return message
    return message


def message_of(wrapper: Any) -> Any:
    inner = getattr(wrapper, "message", None)
    return inner if isinstance(inner, Message) else None


def kind_of(message: Any) -> str:
    """The name of the first field set in a waE2E message (its kind), or "empty"."""
    fields = [f.name for f, _ in message.ListFields() if f.name not in ("messageContextInfo",)]
    return fields[0] if fields else "empty"


def safe_name(text: str, limit: int = 120) -> str:
    """`text` as a file name part: letters, digits, `.`, `_`, `-` only; never `..`."""
    cleaned = _UNSAFE_NAME.sub("_", text).strip("._") or "file"
    return cleaned[:limit]


def extension(mimetype: str, media_type: str) -> str:
    base = mimetype.split(";", 1)[0].strip().lower()
    if base in _EXTENSIONS:
        return _EXTENSIONS[base]
    guessed = mimetypes.guess_extension(base) if base else None
    return guessed.lstrip(".") if guessed else _DEFAULT_EXTENSION.get(media_type, "bin")


def parse(message: Any, message_id: str, when: datetime) -> Parsed | None:
    """Text and media of an (unwrapped) message; None when it has neither."""
    if message.HasField("extendedTextMessage"):
        return Parsed(str(message.extendedTextMessage.text))
    if message.conversation:
        return Parsed(str(message.conversation))
    for field, media_type in _MEDIA.items():
        if message.HasField(field):
            return _media(getattr(message, field), field, media_type, message_id, when)
    return None


def _media(part: Any, field: str, media_type: str, message_id: str, when: datetime) -> Parsed:
    mimetype = str(part.mimetype or "")
    ext = extension(mimetype, media_type)
    stamp = when.astimezone().strftime("%Y%m%d_%H%M%S")
    # Named by the message as well as the second: photos of one burst never share a name.
    filename = f"{media_type}_{stamp}_{safe_name(message_id, 64)}.{ext}"
    if media_type == "document" and (part.fileName or part.title):
        filename = safe_name(str(part.fileName or part.title), 200)
    kept = type(part)()
    kept.CopyFrom(part)
    for bulky in ("contextInfo", "JPEGThumbnail"):
        if kept.DESCRIPTOR.fields_by_name.get(bulky) is not None:
            kept.ClearField(bulky)
    holder = Message()
    getattr(holder, field).CopyFrom(kept)
    caption = str(getattr(part, "caption", "") or "") if media_type != "audio" else ""
    return Parsed(
        content=caption,
        media_type=media_type,
        mimetype=mimetype,
        filename=filename,
        url=str(part.URL or ""),
        media_key=bytes(part.mediaKey or b""),
        file_sha256=bytes(part.fileSHA256 or b""),
        file_enc_sha256=bytes(part.fileEncSHA256 or b""),
        file_length=int(part.fileLength or 0),
        media=holder.SerializeToString(),
    )


def from_epoch(value: int, *, default: datetime | None = None) -> datetime:
    """An event's time: neonize gives milliseconds for live messages, seconds elsewhere."""
    number = int(value or 0)
    if number <= 0:
        return default or datetime.now(UTC)
    seconds = number / 1000 if number > 100_000_000_000 else number
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return default or datetime.now(UTC)


class Handler:
    """Stores what neonize's events carry; `me` is our own user part, `group_name` looks
    a group's name up (through WhatsApp, in production) when the store has none."""

    def __init__(
        self,
        store: MessageStore,
        *,
        me: Callable[[], str] = lambda: "",
        group_name: Callable[[str], str | None] | None = None,
    ) -> None:
        self.store = store
        self.me = me
        self.group_name = group_name
        self._told: set[str] = set()
        self.counts: dict[str, int] = {}

    # -- events -------------------------------------------------------------------------

    def message(self, event: Any) -> Outcome:
        """A live message (neonize's MessageEv): stored, an edit, a deletion, or skipped."""
        try:
            outcome = self._message(event)
        except BridgeStoreWriteError as exc:
            log.error("❌ bridge: message not stored: %s", exc)
            outcome = "failed"
        except Exception as exc:  # one bad message must never stop the bridge
            self._once(
                f"error:{type(exc).__name__}",
                "a message could not be read (%s: %s); skipped",
                type(exc).__name__,
                exc,
            )
            outcome = "skipped"
        self.counts[outcome] = self.counts.get(outcome, 0) + 1
        return outcome

    def history(self, event: Any) -> int:
        """A history sync (neonize's HistorySyncEv): every conversation's messages; the count."""
        stored = 0
        for conversation in event.Data.conversations:
            try:
                stored += self._conversation(conversation)
            except BridgeStoreWriteError as exc:
                log.error("❌ bridge: history of %s not stored: %s", conversation.ID, exc)
            except Exception as exc:
                self._once(
                    f"history:{type(exc).__name__}",
                    "a history conversation could not be read (%s: %s); skipped",
                    type(exc).__name__,
                    exc,
                )
        if stored:
            log.info("bridge: history sync stored %d message(s)", stored)
        return stored

    def group_info(self, jid: str, name: str) -> None:
        """A group's name, from a group-info change or a group we joined."""
        if jid and name:
            try:
                self.store.name_chat(jid, name)
            except BridgeStoreWriteError as exc:
                log.error("❌ bridge: name of %s not stored: %s", jid, exc)

    # -- live messages ------------------------------------------------------------------

    def _message(self, event: Any) -> Outcome:
        info = event.Info
        source = info.MessageSource
        chat = jid_text(source.Chat)
        message_id = str(info.ID or "")
        if not chat or not message_id:
            self._once("malformed", "a message without a chat or an id was skipped")
            return "skipped"
        when = from_epoch(info.Timestamp)
        sender = str(source.Sender.User or "") or (self.me() if source.IsFromMe else "")
        from_me = bool(source.IsFromMe)
        message = unwrap(event.Message)
        if message.HasField("protocolMessage"):
            return self._protocol(message.protocolMessage, chat, sender, from_me, when)
        parsed = parse(message, message_id, when)
        if parsed is None:
            kind = kind_of(message)
            if kind not in _SILENT:
                self._once(
                    f"kind:{kind}",
                    "messages of kind %s are not stored (first: %s in %s)",
                    kind,
                    message_id,
                    chat,
                )
            return "ignored"
        name = self._chat_name(
            chat, bool(source.IsGroup), None if from_me else str(info.Pushname or "")
        )
        self.store.store(
            self._row(parsed, message_id, chat, sender, when, from_me),
            chat_name=name,
            media=parsed.media,
        )
        return "stored"

    def _protocol(
        self, protocol: Any, chat: str, sender: str, from_me: bool, when: datetime
    ) -> Outcome:
        target = str(protocol.key.ID or "")
        if protocol.type == ProtocolMessage.REVOKE:
            if not target:
                self._once("revoke-no-id", "a deletion without a message id was skipped")
                return "skipped"
            known = self.store.delete(chat, target, when)
            log.info(
                "bridge: message %s in %s deleted for everyone%s",
                target,
                chat,
                "" if known else " (never seen)",
            )
            return "deleted"
        if protocol.type == ProtocolMessage.MESSAGE_EDIT:
            edited = (
                parse(unwrap(protocol.editedMessage), target, when)
                if protocol.HasField("editedMessage")
                else None
            )
            if not target or edited is None:
                self._once("edit-empty", "an edit without a message id or text was skipped")
                return "skipped"
            unseen = self._row(edited, target, chat, sender, when, from_me)
            self.store.edit(chat, target, edited.content, unseen)
            return "edited"
        return "ignored"  # keys, history notifications, settings: between devices

    # -- history ------------------------------------------------------------------------

    def _conversation(self, conversation: Any) -> int:
        chat = str(conversation.ID or "")
        if not chat or "@" not in chat:
            self._once("history-malformed", "a history conversation without a chat JID was skipped")
            return 0
        rows: list[tuple[MessageRow, bytes | None]] = []
        for item in conversation.messages:
            try:
                row = self._history_row(chat, item.message)
            except BridgeStoreWriteError:
                raise
            except Exception as exc:  # one bad message costs only itself
                self._once(
                    f"history-message:{type(exc).__name__}",
                    "a history message could not be read (%s: %s); skipped",
                    type(exc).__name__,
                    exc,
                )
                continue
            if row is not None:
                rows.append(row)
        name = str(conversation.name or conversation.displayName or "") or None
        if name is None and chat.endswith("@g.us"):
            name = self._chat_name(chat, True, None)
        self.store.store_many(rows, name)
        return len(rows)

    def _history_row(self, chat: str, info: Any) -> tuple[MessageRow, bytes | None] | None:
        """One history message as a row (None: nothing to store; a deletion is recorded)."""
        key = info.key
        message_id = str(key.ID or "")
        if not message_id:
            return None
        when = from_epoch(info.messageTimestamp)
        if info.messageStubType == WebMessageInfo.REVOKE:
            deleted_at = from_epoch(info.revokeMessageTimestamp, default=when)
            self.store.delete(chat, message_id, deleted_at)
            return None
        if not info.HasField("message"):
            return None
        message = unwrap(info.message)
        if message.HasField("protocolMessage"):
            return None
        parsed = parse(message, message_id, when)
        if parsed is None:
            return None
        from_me = bool(key.fromMe)
        participant = str(key.participant or info.participant or "")
        # As upstream's history rows: a group member's full JID, ours as our user part.
        sender = self.me() if from_me else (participant or chat.split("@", 1)[0])
        return self._row(parsed, message_id, chat, sender, when, from_me), parsed.media

    # -- helpers ------------------------------------------------------------------------

    def _row(
        self, parsed: Parsed, message_id: str, chat: str, sender: str, when: datetime, from_me: bool
    ) -> MessageRow:
        return MessageRow(
            id=message_id,
            chat_jid=chat,
            sender=sender,
            content=parsed.content,
            timestamp=when,
            is_from_me=from_me,
            media_type=parsed.media_type,
            filename=parsed.filename,
            url=parsed.url,
            media_key=parsed.media_key,
            file_sha256=parsed.file_sha256,
            file_enc_sha256=parsed.file_enc_sha256,
            file_length=parsed.file_length,
        )

    def _chat_name(self, chat: str, is_group: bool, push_name: str | None) -> str | None:
        """The chat's name when the store has none yet: the group's, or a person's push name."""
        if self.store.chat_name(chat) is not None:
            return None
        if is_group or chat.endswith("@g.us"):
            if self.group_name is None:
                return None
            try:
                return self.group_name(chat)
            except Exception as exc:
                self._once(
                    f"group-name:{type(exc).__name__}",
                    "group names cannot be looked up (%s); chats keep no name",
                    exc,
                )
                return None
        return push_name or None

    def _once(self, key: str, message: str, *args: object) -> None:
        if key not in self._told:
            self._told.add(key)
            log.warning("⚠️ bridge: " + message, *args)
