"""The bridge's `POST /api/download`, played over a simulated store and its origin files.

What the `whatsapp-bridge` of lharries/whatsapp-mcp does, and so what this does:

- It looks the message up in messages.db; an unknown message answers HTTP 500
  `{"success": false, "message": "Failed to download media: failed to find message: sql:
  no rows in result set"}`, a text message `... not a media message`.
- It puts the file at `<store>/<chat_jid with : as _>/<filename>` and answers
  `{"success": true, "message": "Successfully downloaded image media", "filename",
  "path"}` with the absolute path on the bridge host.
- If a file of that name is already there, it returns that file without downloading:
  photos stored in the same second share a name, so the answer for one can be another
  photo of its burst (`collisions="keep"`, the upstream behaviour). Some forks download
  again and overwrite it (`collisions="overwrite"`): then an earlier answer's file can
  change under its reader.
- WhatsApp's servers drop media after some weeks: the download fails with
  `Failed to download media: failed to download media: download failed with status code
  404` (here: the origin file is missing).
- A body that is not JSON answers 400 `Invalid request format` (plain text), a missing id
  400 `Message ID and Chat JID are required`, another method 405.

Failures a test needs can be scripted: `fail_next(...)` queues answers (not connected,
slow, a proxy's HTML) that are given before any real download.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Final, Literal

from wa_monitor.sim.media import chat_folder, origin_path

__all__ = [
    "EXPIRED_MESSAGE",
    "NOT_CONNECTED",
    "PROXY_BAD_GATEWAY",
    "BridgeMedia",
    "BridgeServer",
    "DownloadAnswer",
    "DownloadHandler",
    "answer_download",
]

EXPIRED_MESSAGE: Final = (
    "Failed to download media: failed to download media: download failed with status code 404"
)


@dataclass(frozen=True)
class DownloadAnswer:
    """One HTTP answer of the bridge: a status, and a JSON object or a plain-text body."""

    status: int
    body: dict[str, object] | str
    delay: float = 0.0
    """Seconds to wait before answering (a slow bridge)."""

    @property
    def content_type(self) -> str:
        if isinstance(self.body, dict):
            return "application/json"
        return "text/plain; charset=utf-8"

    def encoded(self) -> bytes:
        if isinstance(self.body, dict):
            # Go's json.Encoder ends the body with a newline.
            return json.dumps(self.body).encode() + b"\n"
        return self.body.encode()


NOT_CONNECTED: Final = DownloadAnswer(
    500,
    {
        "success": False,
        "message": "Failed to download media: failed to download media: websocket not connected",
    },
)
PROXY_BAD_GATEWAY: Final = DownloadAnswer(
    502, "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>"
)


def _failure(message: str) -> DownloadAnswer:
    text = f"Failed to download media: {message}"
    return DownloadAnswer(500, {"success": False, "message": text})


class BridgeMedia:
    """Downloads like the bridge: messages.db says what, the origin folder holds the files.

    Args:
        messages_db: the simulated bridge's messages.db.
        origin_root: where the simulation wrote the decrypted files (`MediaMaker`).
        store_dir: the bridge's store folder (default: the folder of messages.db); the
            files go to `<store_dir>/<chat>/<filename>`.
        collisions: "keep" returns a file already there under the same name (upstream);
            "overwrite" downloads again over it.
    """

    def __init__(
        self,
        messages_db: Path,
        origin_root: Path,
        *,
        store_dir: Path | None = None,
        collisions: Literal["keep", "overwrite"] = "keep",
    ) -> None:
        self.messages_db = Path(messages_db)
        self.origin_root = Path(origin_root)
        self.store_dir = Path(store_dir) if store_dir is not None else self.messages_db.parent
        self.collisions = collisions
        self.downloads = 0
        """Files copied into the store so far (answers from an existing file not counted)."""
        self._script: deque[DownloadAnswer] = deque()
        self._lock = threading.Lock()

    def fail_next(self, *answers: DownloadAnswer) -> None:
        """Give these answers (in order) to the next requests, before any real download."""
        with self._lock:
            self._script.extend(answers)

    def expire(self, chat_jid: str, message_id: str) -> None:
        """WhatsApp drops this message's media: its downloads fail with 404 from now on."""
        origin_path(self.origin_root, chat_jid, message_id).unlink(missing_ok=True)

    def answer(self, raw_body: bytes) -> DownloadAnswer:
        """The answer to one POST /api/download whose body is `raw_body`."""
        with self._lock:
            if self._script:
                return self._script.popleft()
        try:
            request = json.loads(raw_body)
        except ValueError:
            return DownloadAnswer(400, "Invalid request format\n")
        if not isinstance(request, dict):
            return DownloadAnswer(400, "Invalid request format\n")
        # Go decodes a JSON null into "" and anything but a string into an error.
        message_id = request.get("message_id") or ""
        chat_jid = request.get("chat_jid") or ""
        if not isinstance(message_id, str) or not isinstance(chat_jid, str):
            return DownloadAnswer(400, "Invalid request format\n")
        if not message_id or not chat_jid:
            return DownloadAnswer(400, "Message ID and Chat JID are required\n")
        return self.download(message_id, chat_jid)

    def download(self, message_id: str, chat_jid: str) -> DownloadAnswer:
        """Download one message's media into the store, as the bridge does."""
        found = self._media_info(message_id, chat_jid)
        if found is None:
            return _failure("failed to find message: sql: no rows in result set")
        media_type, filename = found
        if not media_type:
            return _failure("not a media message")
        folder = self.store_dir / chat_folder(chat_jid)
        target = folder / filename
        # The bridge would write wherever a hostile name points; this one never leaves
        # its store, so a test bridge cannot be made to answer a path outside it.
        store = self.store_dir.absolute()
        if (
            not filename
            or "/" in filename
            or "\\" in filename
            or filename in (".", "..")
            or not target.absolute().is_relative_to(store)
            or ".." in Path(chat_folder(chat_jid)).parts
            or "/" in chat_jid
        ):
            return _failure(f"failed to save media file: invalid file name {filename!r}")
        folder.mkdir(parents=True, exist_ok=True)
        success = {
            "success": True,
            "message": f"Successfully downloaded {media_type} media",
            "filename": filename,
            "path": str(target.absolute()),
        }
        with self._lock:
            if target.exists() and self.collisions == "keep":
                return DownloadAnswer(200, success)
            origin = origin_path(self.origin_root, chat_jid, message_id)
            if not origin.is_file():
                return DownloadAnswer(500, {"success": False, "message": EXPIRED_MESSAGE})
            partial = target.with_name(f".{filename}.part")
            shutil.copyfile(origin, partial)
            partial.replace(target)
            self.downloads += 1
        return DownloadAnswer(200, success)

    def _media_info(self, message_id: str, chat_jid: str) -> tuple[str, str] | None:
        conn = sqlite3.connect(f"file:{self.messages_db}?mode=ro", uri=True, timeout=5.0)
        try:
            row = conn.execute(
                "SELECT media_type, filename FROM messages WHERE id = ? AND chat_jid = ?",
                (message_id, chat_jid),
            ).fetchone()
        finally:
            conn.close()
        if row is None:
            return None
        return str(row[0] or ""), str(row[1] or "")


def answer_download(handler: BaseHTTPRequestHandler, media: BridgeMedia) -> None:
    """Read a POST /api/download request from `handler` and answer it from `media`."""
    length = int(handler.headers.get("Content-Length") or 0)
    answer = media.answer(handler.rfile.read(length))
    if answer.delay:
        time.sleep(answer.delay)
    send(handler, answer)


def send(handler: BaseHTTPRequestHandler, answer: DownloadAnswer) -> None:
    """Write `answer` as the HTTP response of `handler` (a client that left is ignored)."""
    data = answer.encoded()
    try:
        handler.send_response(answer.status)
        handler.send_header("Content-Type", answer.content_type)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass


class BridgeServer(ThreadingHTTPServer):
    """An HTTP server whose handlers answer downloads from `media`."""

    daemon_threads = True

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        media: BridgeMedia | None,
    ) -> None:
        super().__init__(address, handler)
        self.media = media


class DownloadHandler(BaseHTTPRequestHandler):
    """POST /api/download like the bridge (through its server's `media`); else 404/405."""

    def do_POST(self) -> None:
        media = getattr(self.server, "media", None)
        if self.path == "/api/download" and isinstance(media, BridgeMedia):
            answer_download(self, media)
            return
        send(self, DownloadAnswer(404, "404 page not found\n"))

    def do_GET(self) -> None:
        if self.path in ("/api/download", "/api/send"):
            send(self, DownloadAnswer(405, "Method not allowed\n"))
            return
        send(self, DownloadAnswer(404, "404 page not found\n"))

    def log_message(self, format: str, *args: object) -> None:
        return
