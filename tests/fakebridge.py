"""A real HTTP server on 127.0.0.1 playing the WhatsApp bridge's `POST /api/send` and
`POST /api/download`.

Answers to /api/send are scripted (a queue; the default answer when it is empty) and every
request it received is recorded, so tests assert what the bridge was actually sent. An
answer may be held until the test releases it (a bridge slower than anyone's timeout,
without a sleep in the test), or be a connection reset after the request was read.

/api/download is answered like the bridge by `media` (a `wa_monitor.sim.BridgeMedia` over a
simulated store and its origin files), unless `answer_download()` queued answers for it
(scripted the same way as /api/send's); without `media` it is a 404, as before.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from wa_monitor.sim.bridge_api import BridgeMedia


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (a slow bridge)
    hold: bool = False  # wait until the test calls release() (or the bridge stops)
    reset: bool = False  # read the request, then reset the connection without answering


OK = Answer(200, json.dumps({"success": True, "message": "Message sent to recipient"}))
NOT_CONNECTED = Answer(500, json.dumps({"success": False, "message": "Not connected to WhatsApp"}))
BAD_REQUEST = Answer(400, "Invalid request format", "text/plain; charset=utf-8")


# The bridge sends, but answers only when the test says so.
HELD = Answer(OK.status, OK.body, OK.content_type, hold=True)
# The bridge read the request (and may have sent it), then the connection broke.
RESET = Answer(0, "", reset=True)
# A reverse proxy in front of the bridge, after the request went through it.
PROXY_BAD_GATEWAY = Answer(
    502, "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>", "text/html"
)
PROXY_TIMEOUT = Answer(504, "<html><body><h1>504 Gateway Time-out</h1></body></html>", "text/html")


def slow(seconds: float) -> Answer:
    return Answer(OK.status, OK.body, OK.content_type, seconds)


DOWNLOAD_NOT_CONNECTED = Answer(
    500,
    json.dumps(
        {
            "success": False,
            "message": "Failed to download media: failed to download media: "
            "websocket not connected",
        }
    ),
)


class FakeBridge:
    def __init__(self, media: BridgeMedia | None = None) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Answer] = []
        self.download_script: list[Answer] = []
        self.media = media
        self.default = OK
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self.holding = 0  # requests waiting for release()
        self._release = threading.Event()  # ends slow answers early at shutdown
        self._held = threading.Event()  # release(): held answers go out
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                download = self.path == "/api/download"
                scripted: Answer | None = None
                with bridge._lock:
                    if download and bridge.download_script:
                        scripted = bridge.download_script.pop(0)
                    elif not download:
                        scripted = bridge.script.pop(0) if bridge.script else bridge.default
                # The bridge's own download runs outside the lock: downloads overlap.
                answer = scripted if scripted is not None else bridge._download(raw)
                with bridge._lock:
                    try:
                        payload = json.loads(raw)
                    except ValueError:
                        payload = {"_raw": raw.decode("utf-8", "replace")}
                    bridge.requests.append({"path": self.path, "json": payload})
                    bridge.holding += answer.hold
                    bridge._changed.notify_all()
                if self.path != "/api/send" and not download:
                    answer = Answer(404, "404 page not found", "text/plain")
                if answer.reset:
                    # RST instead of FIN: the client sees "connection reset", no answer.
                    linger = struct.pack("ii", 1, 0)
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
                    self.connection.close()
                    self.close_connection = True
                    return
                if answer.hold:
                    while not (bridge._held.is_set() or bridge._release.is_set()):
                        bridge._held.wait(0.1)
                    with bridge._lock:
                        bridge.holding -= 1
                        bridge._changed.notify_all()
                if answer.delay:
                    bridge._release.wait(answer.delay)
                data = answer.body.encode()
                try:
                    self.send_response(answer.status)
                    self.send_header("Content-Type", answer.content_type)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (timeout tests)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The BRIDGE_URL of this bridge (its API root)."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/api"

    @property
    def sent(self) -> list[dict[str, Any]]:
        """The JSON bodies posted to /api/send."""
        with self._lock:
            return [r["json"] for r in self.requests if r["path"] == "/api/send"]

    @property
    def downloads(self) -> list[dict[str, Any]]:
        """The JSON bodies posted to /api/download."""
        with self._lock:
            return [r["json"] for r in self.requests if r["path"] == "/api/download"]

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self.script.extend(answers)

    def answer_download(self, *answers: Answer) -> None:
        """Give these answers to the next /api/download requests, before `media` answers."""
        with self._lock:
            self.download_script.extend(answers)

    def _download(self, raw: bytes) -> Answer:
        if self.media is None:
            return Answer(404, "404 page not found", "text/plain")
        found = self.media.answer(raw)
        return Answer(found.status, found.encoded().decode(), found.content_type, found.delay)

    def wait_for(self, requests: int = 0, holding: int = 0, timeout: float = 10.0) -> None:
        """Until the bridge has received `requests` in all and holds `holding` of them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.requests) < requests or self.holding < holding:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"the bridge got {len(self.requests)} request(s), holds "
                        f"{self.holding}; expected {requests} and {holding}"
                    )
                self._changed.wait(left)

    def release(self) -> None:
        """Let held answers go out (and every later held one at once)."""
        self._held.set()

    def start(self) -> FakeBridge:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@contextmanager
def running_bridge(media: BridgeMedia | None = None) -> Iterator[FakeBridge]:
    bridge = FakeBridge(media).start()
    try:
        yield bridge
    finally:
        bridge.stop()


def closed_port_url() -> str:
    """A BRIDGE_URL where nothing listens (the bridge is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"


@contextmanager
def unanswered_url() -> Iterator[str]:
    """A BRIDGE_URL whose host takes no connection at all (a connect timeout): a
    listener whose backlog is full and that never accepts."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):  # the handshake is never finished
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        yield f"http://127.0.0.1:{port}/api"
    finally:
        for filler in fillers:
            filler.close()
        listener.close()
