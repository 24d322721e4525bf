"""The bridge's HTTP API, under /api like upstream's, behind a bearer token.

- `POST /api/send {recipient, message, media_path?, mentions?, reply_to?,
  reply_to_sender?}` → `{"success": true, "message", "message_id", "timestamp"}`: the id
  WhatsApp assigned, so feedback can be traced. What is sent is stored in messages.db
  (`is_from_me` = 1), unlike upstream.
- `POST /api/download {message_id, chat_jid}` → `{success, message, filename, path}`.
- `GET /api/health` → `{success, connected}`.

Errors as upstream: 400 with a plain-text body for a bad request, 500 with
`{"success": false, "message"}` when WhatsApp is not reached. Every request needs
`Authorization: Bearer <BRIDGE_TOKEN>` (401 otherwise). WhatsApp itself is behind a
`Transport` (neonize's client in production, a fake in the tests).
"""

from __future__ import annotations

import hmac
import json
import logging
import mimetypes
import re
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final, Protocol

import uvicorn
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (  # type: ignore[import-untyped, unused-ignore]
    AudioMessage,
    ContextInfo,
    DocumentMessage,
    ExtendedTextMessage,
    ImageMessage,
    Message,
    VideoMessage,
)
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from wa_monitor.bridge import media as media_files
from wa_monitor.bridge.handler import parse
from wa_monitor.bridge.store import BridgeStoreWriteError, MessageRow, MessageStore
from wa_monitor.core.errors import ConfigError

log = logging.getLogger("wa_monitor.bridge")

NOT_CONNECTED: Final = "Not connected to WhatsApp"
MAX_MEDIA_BYTES: Final = 100 * 1024 * 1024
_JID: Final = re.compile(r"[0-9A-Za-z._:-]+@(s\.whatsapp\.net|g\.us|lid|broadcast|newsletter)")
_PHONE: Final = re.compile(r"\+?[0-9]{5,20}")


class NotConnected(Exception):
    """WhatsApp is not reached now (the bridge is connecting, or was logged out)."""


@dataclass(frozen=True)
class Sent:
    """WhatsApp's answer to a send: the message's id and its time."""

    message_id: str
    timestamp: datetime


@dataclass(frozen=True)
class Uploaded:
    """An uploaded media file: what a media message needs to point at it."""

    url: str
    direct_path: str
    media_key: bytes
    file_enc_sha256: bytes
    file_sha256: bytes
    file_length: int


class Transport(Protocol):
    """WhatsApp, as the API needs it."""

    def connected(self) -> bool: ...

    def me(self) -> str:
        """Our own user part (phone number), "" before the first connection."""
        ...

    def send(self, chat_jid: str, message: Any) -> Sent: ...

    def upload(self, data: bytes, media_type: str) -> Uploaded: ...

    def download(self, media: bytes) -> bytes:
        """A media message (serialised waE2E.Message) → the decrypted file."""
        ...


class BadRequest(ValueError):
    """A request the API refuses with 400 and this text."""


@dataclass(frozen=True)
class SendRequest:
    recipient: str
    message: str
    media_path: str | None = None
    mentions: tuple[str, ...] = ()
    reply_to: str | None = None
    reply_to_sender: str | None = None


def recipient_jid(value: str) -> str:
    """A recipient as a JID: a JID as given, a phone number as `<digits>@s.whatsapp.net`."""
    text = value.strip()
    if _JID.fullmatch(text):
        return text
    digits = re.sub(r"[\s-]", "", text)
    if _PHONE.fullmatch(digits):
        return f"{digits.lstrip('+')}@s.whatsapp.net"
    raise BadRequest(f"Invalid recipient {text[:80]!r}: give a JID or a phone number")


def _optional_text(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{key} must be a string")
    return value


def send_request(body: object) -> SendRequest:
    """The JSON body of /api/send, checked; BadRequest says what is wrong."""
    if not isinstance(body, dict):
        raise BadRequest("Invalid request format")
    recipient = _optional_text(body, "recipient")
    if recipient is None:
        raise BadRequest("Recipient is required")
    message = _optional_text(body, "message") or ""
    media_path = _optional_text(body, "media_path")
    if not message and media_path is None:
        raise BadRequest("Message or media path is required")
    mentions = body.get("mentions") or []
    if not isinstance(mentions, list) or not all(isinstance(m, str) for m in mentions):
        raise BadRequest("mentions must be a list of JIDs")
    return SendRequest(
        recipient=recipient_jid(recipient),
        message=message,
        media_path=media_path,
        mentions=tuple(recipient_jid(m) for m in mentions),
        reply_to=_optional_text(body, "reply_to"),
        reply_to_sender=_optional_text(body, "reply_to_sender"),
    )


def media_kind(path: Path) -> tuple[str, str]:
    """(media type, mimetype) of a file to send, from its name."""
    mimetype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    for prefix, kind in (("image/", "image"), ("video/", "video"), ("audio/", "audio")):
        if mimetype.startswith(prefix):
            return kind, mimetype
    return "document", mimetype


def context_info(request: SendRequest, quoted: str | None, quoted_sender: str | None) -> Any:
    """Mentions and the quoted message of a reply, or None when there is neither."""
    if not request.mentions and not request.reply_to:
        return None
    context = ContextInfo(mentionedJID=list(request.mentions))
    if request.reply_to:
        context.stanzaID = request.reply_to
        participant = request.reply_to_sender or quoted_sender
        if participant:
            context.participant = participant
        if quoted:
            context.quotedMessage.CopyFrom(Message(conversation=quoted))
    return context


def compose(
    request: SendRequest,
    *,
    quoted: str | None = None,
    quoted_sender: str | None = None,
    upload: Uploaded | None = None,
    media_type: str = "",
    mimetype: str = "",
    file_name: str = "",
) -> Any:
    """The waE2E message to send: plain text, text with mentions or a quote, or media."""
    context = context_info(request, quoted, quoted_sender)
    if upload is None:
        if context is None:
            return Message(conversation=request.message)
        return Message(
            extendedTextMessage=ExtendedTextMessage(text=request.message, contextInfo=context)
        )
    common: dict[str, Any] = {
        "URL": upload.url,
        "directPath": upload.direct_path,
        "mediaKey": upload.media_key,
        "fileEncSHA256": upload.file_enc_sha256,
        "fileSHA256": upload.file_sha256,
        "fileLength": upload.file_length,
        "mimetype": mimetype,
    }
    if context is not None:
        common["contextInfo"] = context
    if media_type == "image":
        return Message(imageMessage=ImageMessage(caption=request.message, **common))
    if media_type == "video":
        return Message(videoMessage=VideoMessage(caption=request.message, **common))
    if media_type == "audio":
        return Message(audioMessage=AudioMessage(**common))
    return Message(
        documentMessage=DocumentMessage(
            caption=request.message, fileName=file_name, title=file_name, **common
        )
    )


def _participant(sender: str | None) -> str | None:
    """A stored sender as a JID: history rows hold one, live rows the user part only."""
    if not sender:
        return None
    return sender if "@" in sender else f"{sender}@s.whatsapp.net"


class BridgeApi:
    """The API's work, each method one request; `app()` wraps it in Starlette."""

    def __init__(self, store: MessageStore, root: Path, transport: Transport, token: str) -> None:
        if not token:
            raise ConfigError(
                ["BRIDGE_TOKEN is not set: the bridge's API refuses to run without one"]
            )
        self.store = store
        self.root = root
        self.transport = transport
        self.token = token

    def send(self, request: SendRequest) -> tuple[int, dict[str, object]]:
        if not self.transport.connected():
            return 500, {"success": False, "message": NOT_CONNECTED}
        quoted = quoted_sender = None
        if request.reply_to:
            row = self.store.message(request.recipient, request.reply_to)
            if row is not None:
                quoted, quoted_sender = row.content or None, _participant(row.sender)
        upload = None
        media_type = mimetype = file_name = ""
        if request.media_path is not None:
            path = Path(request.media_path)
            try:
                if not path.is_file():
                    return 400, {"success": False, "message": f"media_path {path} is not a file"}
                if path.stat().st_size > MAX_MEDIA_BYTES:
                    return 400, {"success": False, "message": f"media_path {path} is over 100 MiB"}
                data = path.read_bytes()
            except OSError as exc:
                return 400, {
                    "success": False,
                    "message": f"cannot read media_path {path}: {exc.strerror}",
                }
            media_type, mimetype = media_kind(path)
            file_name = path.name
            try:
                upload = self.transport.upload(data, media_type)
            except NotConnected:
                return 500, {"success": False, "message": NOT_CONNECTED}
            except Exception as exc:
                return 500, {
                    "success": False,
                    "message": f"Error uploading media: {media_files._without_urls(str(exc))}",
                }
        message = compose(
            request,
            quoted=quoted,
            quoted_sender=quoted_sender,
            upload=upload,
            media_type=media_type,
            mimetype=mimetype,
            file_name=file_name,
        )
        try:
            sent = self.transport.send(request.recipient, message)
        except NotConnected:
            return 500, {"success": False, "message": NOT_CONNECTED}
        except Exception as exc:
            return 500, {
                "success": False,
                "message": f"Error sending message: {media_files._without_urls(str(exc))}",
            }
        self._keep(request, message, sent)
        log.info("bridge: message %s sent to %s", sent.message_id, request.recipient)
        return 200, {
            "success": True,
            "message": f"Message sent to {request.recipient}",
            "message_id": sent.message_id,
            "timestamp": sent.timestamp.isoformat(),
        }

    def _keep(self, request: SendRequest, message: Any, sent: Sent) -> None:
        """Store what was sent, as WhatsApp will show it (is_from_me = 1)."""
        parsed = parse(message, sent.message_id, sent.timestamp)
        if parsed is None:
            return
        row = MessageRow(
            id=sent.message_id,
            chat_jid=request.recipient,
            sender=self.transport.me(),
            content=parsed.content,
            timestamp=sent.timestamp,
            is_from_me=True,
            media_type=parsed.media_type,
            filename=parsed.filename,
            url=parsed.url,
            media_key=parsed.media_key,
            file_sha256=parsed.file_sha256,
            file_enc_sha256=parsed.file_enc_sha256,
            file_length=parsed.file_length,
        )
        try:
            self.store.store(row, media=parsed.media)
        except BridgeStoreWriteError as exc:
            log.error("❌ bridge: sent message %s not stored: %s", sent.message_id, exc)

    def download(self, body: object) -> media_files.DownloadAnswer:
        if not isinstance(body, dict):
            raise BadRequest("Invalid request format")
        message_id, chat_jid = body.get("message_id"), body.get("chat_jid")
        if (
            not isinstance(message_id, str)
            or not isinstance(chat_jid, str)
            or not message_id
            or not chat_jid
        ):
            raise BadRequest("Message ID and Chat JID are required")
        return media_files.download(
            self.store, self.root, message_id, chat_jid, self.transport.download
        )

    def authorised(self, request: Request) -> bool:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())

    # -- HTTP -------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/send", self._send, methods=["POST"]),
                Route("/api/download", self._download, methods=["POST"]),
                Route("/api/health", self._health, methods=["GET"]),
            ],
            middleware=[],
        )

    async def _guard(self, request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
        if not self.authorised(request):
            return JSONResponse(
                {
                    "success": False,
                    "message": "Unauthorized: send Authorization: Bearer <BRIDGE_TOKEN>",
                },
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        try:
            return await work()
        except BadRequest as exc:
            return PlainTextResponse(str(exc), status_code=400)

    async def _body(self, request: Request) -> object:
        raw = await request.body()
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest("Invalid request format") from None

    async def _send(self, request: Request) -> Response:
        async def work() -> Response:
            parsed = send_request(await self._body(request))
            status, body = await run_in_threadpool(self.send, parsed)
            return JSONResponse(body, status_code=status)

        return await self._guard(request, work)

    async def _download(self, request: Request) -> Response:
        async def work() -> Response:
            body = await self._body(request)
            answer = await run_in_threadpool(self.download, body)
            return JSONResponse(answer.body(), status_code=answer.status)

        return await self._guard(request, work)

    async def _health(self, request: Request) -> Response:
        async def work() -> Response:
            return JSONResponse({"success": True, "connected": self.transport.connected()})

        return await self._guard(request, work)


def listen_address(text: str) -> tuple[str, int]:
    """BRIDGE_LISTEN (`127.0.0.1:8080`, `[::1]:8080`, `:8080`) as host and port."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError([f"BRIDGE_LISTEN={text!r}: give address:port, e.g. 127.0.0.1:8080"])
    return (host.strip("[]") or "127.0.0.1"), int(port)


class ApiServer:
    """The API under uvicorn in a thread of its own (signals stay with the main thread)."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", lifespan="off", ws="none"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="bridge-api", daemon=True)
        self.host = host

    def start(self, timeout: float = 20.0) -> ApiServer:
        """Start serving; ConfigError if the address cannot be listened on."""
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self.thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        if not self.server.started:
            self.stop()
            raise ConfigError(
                [
                    f"the bridge's API cannot listen on {self.host}:{self.server.config.port}: "
                    "the port is taken or the address is not this host's; change BRIDGE_LISTEN"
                ]
            )
        return self

    @property
    def port(self) -> int:
        servers = self.server.servers
        sockets: Sequence[socket.socket] = servers[0].sockets if servers else ()
        return int(sockets[0].getsockname()[1]) if sockets else 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/api"

    def stop(self) -> None:
        self.server.should_exit = True
        if self.thread.is_alive():
            self.thread.join(timeout=10)


__all__ = [
    "ApiServer",
    "BadRequest",
    "BridgeApi",
    "NotConnected",
    "SendRequest",
    "Sent",
    "Transport",
    "Uploaded",
    "compose",
    "listen_address",
    "recipient_jid",
    "send_request",
]
