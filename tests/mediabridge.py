"""A small stand-in for the bridge's `POST /api/download`, on 127.0.0.1, for the media tests.

Like the bridge it writes the file into `<store>/<chat_jid>/<filename>` and answers
`{"success", "message", "filename", "path"}`. Each message can be given a script of
answers, played one per request before the normal answer: `500` (an error page without
JSON), `nonjson` (HTTP 200 with HTML: a proxy), `slow` (no answer before the client's
timeout), `gone` (WhatsApp's 404), `outside` (a path outside the store), `sibling` (another
photo of the same burst written under this name: the bridge's collision bug), `hang`
(holds the request until the test releases it).
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import zxingcpp
from PIL import Image, ImageDraw, ImageFont

from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.monitor.media_worker import MediaWorker
from wa_monitor.store.media import FolderMediaStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import group_messages as G
from wa_monitor.store.schema import qa_photo_reviews as R


@dataclass
class MediaFile:
    chat_jid: str
    message_id: str
    filename: str
    data: bytes
    script: list[str] = field(default_factory=list)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


class MediaBridge:
    """The files the bridge can download, its store folder, and what it was asked."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.store.mkdir(parents=True, exist_ok=True)
        self.files: dict[tuple[str, str], MediaFile] = {}
        self.requests: Counter[str] = Counter()  # message_id -> downloads asked
        self.release = threading.Event()  # lets `hang` requests go on
        self.hanging = threading.Event()  # set while a `hang` request is held
        self.slow_seconds = 3.0
        self.lock = threading.Lock()
        self.url = ""
        self._server: ThreadingHTTPServer | None = None

    def add(
        self, chat_jid: str, message_id: str, filename: str, data: bytes, *script: str
    ) -> MediaFile:
        media = MediaFile(chat_jid, message_id, filename, data, list(script))
        self.files[(chat_jid, message_id)] = media
        return media

    def answer(self, body: dict[str, Any]) -> tuple[int, bytes, str]:
        key = (str(body.get("chat_jid")), str(body.get("message_id")))
        with self.lock:
            self.requests[key[1]] += 1
            media = self.files.get(key)
            step = media.script.pop(0) if media is not None and media.script else ""
        if media is None:
            return self._json(200, {"success": False, "message": "Message not found"})
        if step == "500":
            return 500, b"<html>Internal Server Error</html>", "text/html"
        if step == "nonjson":
            return 200, b"<html>502 Bad Gateway from a proxy</html>", "text/html"
        if step == "slow":
            threading.Event().wait(self.slow_seconds)
        if step == "hang":
            self.hanging.set()
            self.release.wait(60)
        if step == "gone":
            return self._json(
                200,
                {
                    "success": False,
                    "message": "Failed to download media: download failed with status code 404",
                },
            )
        folder = self.store / media.chat_jid
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / media.filename
        if step == "outside":
            return self._json(
                200,
                {
                    "success": True,
                    "message": "ok",
                    "filename": media.filename,
                    "path": "/etc/passwd",
                },
            )
        data = media.data
        if step == "sibling":
            data = b"\xff\xd8\xff" + hashlib.sha256(media.data).digest() * 100
        target.write_bytes(data)
        return self._json(
            200,
            {
                "success": True,
                "message": "Successfully downloaded image media",
                "filename": media.filename,
                "path": str(target),
            },
        )

    @staticmethod
    def _json(status: int, body: dict[str, Any]) -> tuple[int, bytes, str]:
        return status, json.dumps(body).encode(), "application/json"

    @contextmanager
    def serving(self) -> Iterator[MediaBridge]:
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except ValueError:
                    body = {}
                if self.path.rstrip("/") != "/api/download":
                    status, data, kind = 404, b"not found", "text/plain"
                else:
                    status, data, kind = bridge.answer(body)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the client gave up (its timeout)

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        self._server = server
        self.url = f"http://127.0.0.1:{server.server_address[1]}/api"
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.release.set()
            server.shutdown()
            server.server_close()


# -- photos, rows and a worker over them ---------------------------------------------------

CHAT = "120363000000000001@g.us"
T0 = datetime(2025, 11, 9, 17, 15, tzinfo=UTC)


# -- photos -------------------------------------------------------------------------------


def scene(seed: int = 0, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A photo-like scene: shapes and text on a light background, laid out by `seed`."""
    image = Image.new("RGB", size, (200, 190, 170))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    if seed == 0:
        draw.rectangle((60, 60, 360, 300), fill=(30, 60, 160))
        draw.ellipse((420, 120, 740, 440), fill=(200, 40, 40))
        draw.line((0, 560, 800, 380), fill=(20, 20, 20), width=12)
        draw.text((80, 460), "ONT HWTC 1234", fill=(0, 0, 0), font=font)
    else:
        draw.polygon([(400, 40), (760, 560), (40, 560)], fill=(20, 120, 40))
        draw.rectangle((520, 40, 780, 200), fill=(240, 220, 30))
        for x in range(0, 800, 80):
            draw.line((x, 0, x, 600), fill=(60, 60, 60), width=4)
        draw.text((40, 60), "UPS 9876", fill=(255, 255, 255), font=font)
    return image


def jpeg(image: Image.Image, quality: int = 90) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=quality)
    return out.getvalue()


def label(text: str, fmt: Any = zxingcpp.BarcodeFormat.Code128) -> bytes:
    """A barcode sticker photographed: the code on white inside a grey photo."""
    code = zxingcpp.create_barcode(text, fmt)
    printed = Image.fromarray(code.to_image(scale=4)).convert("RGB")
    photo = Image.new("RGB", (printed.width + 300, printed.height + 200), (120,) * 3)
    photo.paste((255, 255, 255), (100, 50, printed.width + 200, printed.height + 150))
    photo.paste(printed, (150, 100))
    return jpeg(photo, 95)


# -- rows and the worker ------------------------------------------------------------------


def add_media(
    store: ReviewStore,
    data: bytes | None,
    *,
    media_type: str = "image",
    posted_at: datetime = T0,
    drop: str | None = "DR1000001",
    project: str = "Lawley",
    filename: str | None = None,
    review_id: uuid.UUID | None = None,
    step: str | None = None,
    caption: str | None = None,
    file_length: int | None = None,
    file_sha256: str | None = None,
    chat: str = CHAT,
) -> tuple[int, str]:
    """A pending media row as the linker leaves it; returns its id and message id."""
    message_id = uuid.uuid4().hex[:20].upper()
    sha = file_sha256 or (hashlib.sha256(data).hexdigest() if data is not None else None)
    with store.begin() as conn:
        new_id = conn.execute(
            sa.insert(G)
            .values(
                chat_jid=chat,
                message_id=message_id,
                project=project,
                sender="27821234567",
                posted_at=posted_at,
                content=caption,
                media_type=media_type,
                filename=filename or f"image_{posted_at:%Y%m%d_%H%M%S}.jpg",
                file_sha256=sha,
                file_length=file_length if file_length is not None else len(data or b""),
                drop_number=drop,
                review_id=review_id,
                step=step,
                status="pending",
                next_attempt_at=posted_at,
            )
            .returning(G.c.id)
        ).scalar_one()
    return int(new_id), message_id


def add_review(store: ReviewStore, drop: str, project: str = "Lawley") -> uuid.UUID:
    review_id = uuid.uuid4()
    with store.begin() as conn:
        conn.execute(
            sa.insert(R).values(id=review_id, drop_number=drop, user_name="Thabo", project=project)
        )
    return review_id


def row(store: ReviewStore, media_id: int) -> dict[str, Any]:
    with store.read() as conn:
        found = conn.execute(sa.select(G).where(G.c.id == media_id)).mappings().one()
    return dict(found)


def make_due(store: ReviewStore) -> None:
    """Time passes: every pending photo's backoff (or lease) is over."""
    with store.begin() as conn:
        conn.execute(
            sa.update(G)
            .where(G.c.status == "pending")
            .values(next_attempt_at=datetime.now(UTC) - timedelta(seconds=1))
        )


@dataclass
class Rig:
    store: ReviewStore
    bridge: MediaBridge
    media: FolderMediaStore
    settings: Settings

    def worker(self, **options: Any) -> MediaWorker:
        options.setdefault("analyse_in_process", False)
        return MediaWorker(self.store, self.settings, **options)

    def add(self, chat: str, data: bytes, **row_options: Any) -> tuple[int, str]:
        media_id, message_id = add_media(self.store, data, chat=chat, **row_options)
        filename = row(self.store, media_id)["filename"]
        self.bridge.add(chat, message_id, filename, data)
        return media_id, message_id


def settings_for(db_url: str, root: Path, bridge: MediaBridge, **extra: str) -> Settings:
    return settings_from(
        {
            "DATABASE_URL": db_url,
            "WHATSAPP_DB_PATH": str(bridge.store / "messages.db"),
            "BRIDGE_URL": bridge.url,
            "MEDIA_DIR": str(root / "media"),
            **extra,
        }
    )
