"""What the photo benchmarks share: realistic photos drawn with Pillow, and a test bridge.

The photos are drawn, not random noise (which no camera makes and which JPEG cannot
compress): a sky gradient, a wall, a door and window, a label naming the step, a barcode
sticker on some, sensor noise, and EXIF with the time taken and sometimes a rotation. A
12 MP one comes out at about 3 MB, as a phone's camera writes it; WhatsApp recompresses
what it sends to about 1600 px on the long side, so 1280×960 is what most groups hold.

The bridge runs in its own process, as the real one does (a Go program): it answers
`POST /api/download` by copying the file from its origin folder (the phone's copy) into its
store folder under the message's filename, then naming that path.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import zxingcpp
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
CHAT = "27820000000-1600000000@g.us"
STEPS = ("house", "cable entry", "wall box", "splitter", "drop cable", "router", "ONT", "UPS")

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_ORIENTATION = 0x0112


def draw_photo(width: int, height: int, seed: int, *, barcode: str | None = None) -> bytes:
    """A JPEG of `width`×`height` that looks like an installer's photo (quality 90)."""
    rng = random.Random(seed)
    # A small base image scaled up gives smooth areas, as real scenes have; detail on top.
    base = Image.new("RGB", (width // 8, height // 8))
    draw = ImageDraw.Draw(base)
    w, h = base.size
    sky = (rng.randint(90, 160), rng.randint(140, 200), rng.randint(190, 250))
    for y in range(h):
        shade = y / h
        draw.line([(0, y), (w, y)], fill=tuple(int(c * (1 - 0.4 * shade)) for c in sky))
    wall = (rng.randint(150, 230), rng.randint(130, 210), rng.randint(100, 190))
    top = int(h * rng.uniform(0.25, 0.45))
    draw.rectangle([0, top, w, h], fill=wall)
    for _ in range(rng.randint(2, 5)):
        x0, y0 = rng.randint(0, w - 20), rng.randint(top, h - 20)
        colour = tuple(rng.randint(20, 120) for _ in range(3))
        draw.rectangle([x0, y0, x0 + rng.randint(10, w // 3), y0 + rng.randint(10, h // 3)],
                       fill=colour)  # fmt: skip
    image = base.resize((width, height), Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(40):  # cables, edges: the detail a phone captures
        x0, y0 = rng.randint(0, width), rng.randint(0, height)
        draw.line([(x0, y0), (x0 + rng.randint(-width // 4, width // 4), y0 + rng.randint(
            -height // 4, height // 4))], fill=tuple(rng.randint(0, 80) for _ in range(3)),
            width=max(1, width // 400))  # fmt: skip
    label = f"Step {seed % 12 + 1}: {STEPS[seed % len(STEPS)]}"
    draw.text((width // 20, height // 20), label, fill=(255, 255, 255), font_size=height // 20)
    if barcode is not None:
        code = zxingcpp.write_barcode(
            zxingcpp.BarcodeFormat.Code128, barcode, width // 3, height // 8
        )
        sticker = Image.fromarray(np.asarray(code)).convert("RGB")
        image.paste(sticker, (width // 3, height // 2))
    image = image.filter(ImageFilter.GaussianBlur(radius=max(0.6, width / 4000)))
    noise = np.random.default_rng(seed).normal(0, 4, (height, width, 1)).astype(np.int16)
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    taken = datetime(2026, 11, 30, 9, 0, tzinfo=UTC) + timedelta(minutes=seed)
    exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = taken.strftime("%Y:%m:%d %H:%M:%S")
    if seed % 4 == 1:
        exif[_ORIENTATION] = 6  # held upright: the thumbnail must turn it
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, exif=exif)
    return out.getvalue()


def ont_serial(seed: int) -> str:
    """A GPON serial as printed on an ONT's sticker: vendor id + 8 hex digits."""
    return f"HWTC{seed * 2654435761 % 2**32:08X}"


@dataclass(frozen=True)
class OriginPhoto:
    """A photo as the phone holds it, and the bridge row that announces it."""

    message_id: str
    filename: str
    sha256: bytes
    size: int


def write_origin(
    origin: Path, photos: Iterator[tuple[str, bytes]], chat: str = CHAT
) -> list[OriginPhoto]:
    """Write each (message_id, JPEG) under `origin/<chat>/<message_id>`; their rows."""
    folder = origin / chat
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for n, (message_id, data) in enumerate(photos):
        (folder / message_id).write_bytes(data)
        filename = f"image_20261130_{9 + n // 3600:02d}{n // 60 % 60:02d}{n % 60:02d}.jpg"
        rows.append(OriginPhoto(message_id, filename, hashlib.sha256(data).digest(), len(data)))
    return rows


def draw_origin(
    origin: Path, count: int, chat: str = CHAT, *, prefix: str = "3EB0"
) -> list[OriginPhoto]:
    """`count` distinct 1280×960 photos (an ONT sticker on every third) drawn in two other
    processes, so that drawing costs neither this process's memory nor its time; written
    to the origin folder as the phone holds them, message ids `prefix` + number."""
    drawn = origin / "drawn"
    drawn.mkdir(parents=True)
    paths = [drawn / f"{n}.jpg" for n in range(count)]
    halves = ((0, paths[: count // 2]), (count // 2, paths[count // 2 :]))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.photos",
                json.dumps(
                    {
                        "case": "draw",
                        "width": 1280,
                        "height": 960,
                        "first_seed": first,
                        "paths": [str(p) for p in half],
                    }
                ),
            ],
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
        )
        for first, half in halves
    ]
    for proc in procs:
        if proc.wait(1800) != 0:
            raise RuntimeError("drawing the photos failed")
    width = max(9, len(prefix) + len(str(count)))
    files = (
        (f"{prefix}{n:0{width - len(prefix)}d}", path.read_bytes()) for n, path in enumerate(paths)
    )
    photos = write_origin(origin, files, chat)
    shutil.rmtree(drawn)
    return photos


def serve_bridge(spec: dict[str, Any]) -> None:
    """The test bridge's process: serves until its stdin closes; prints its port first."""
    origin, store = Path(spec["origin"]), Path(spec["store"])
    names: dict[str, str] = spec.get("filenames", {})

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            asked = json.loads(raw)
            chat, message_id = str(asked["chat_jid"]), str(asked["message_id"])
            source = origin / chat / message_id
            if source.is_file():
                target = store / chat / names.get(message_id, message_id)
                target.parent.mkdir(parents=True, exist_ok=True)
                if source.resolve() != target.resolve():
                    shutil.copyfile(source, target)
                answer = {"success": True, "message": "Downloaded", "filename": target.name,
                          "path": str(target)}  # fmt: skip
            else:
                answer = {"success": False, "message": "Failed to download media: 404"}
            data = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(server.server_address[1], flush=True)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    sys.stdin.read()  # the benchmark closes our stdin when it is done
    server.shutdown()


@contextmanager
def bridge_process(origin: Path, store: Path, filenames: dict[str, str]) -> Iterator[str]:
    """Start the test bridge in its own process; yields its API URL."""
    spec = {"case": "bridge", "origin": str(origin), "store": str(store), "filenames": filenames}
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.photos", json.dumps(spec)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}/api"
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
