"""A real HTTP server on 127.0.0.1 playing the WhatsApp bridge's `POST /api/send`.

Answers are scripted (a queue; the default answer when it is empty) and every request it
received is recorded, so tests assert what the bridge was actually sent.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Answer:
    status: int
    body: str
    content_type: str = "application/json"
    delay: float = 0.0  # seconds to wait before answering (a slow bridge)


OK = Answer(200, json.dumps({"success": True, "message": "Message sent to recipient"}))
NOT_CONNECTED = Answer(500, json.dumps({"success": False, "message": "Not connected to WhatsApp"}))
BAD_REQUEST = Answer(400, "Invalid request format", "text/plain; charset=utf-8")


def slow(seconds: float) -> Answer:
    return Answer(OK.status, OK.body, OK.content_type, seconds)


class FakeBridge:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.script: list[Answer] = []
        self.default = OK
        self._lock = threading.Lock()
        self._release = threading.Event()  # ends slow answers early at shutdown
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with bridge._lock:
                    answer = bridge.script.pop(0) if bridge.script else bridge.default
                    try:
                        payload = json.loads(raw)
                    except ValueError:
                        payload = {"_raw": raw.decode("utf-8", "replace")}
                    bridge.requests.append({"path": self.path, "json": payload})
                if self.path != "/api/send":
                    answer = Answer(404, "404 page not found", "text/plain")
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

    def answer(self, *answers: Answer) -> None:
        with self._lock:
            self.script.extend(answers)

    def start(self) -> FakeBridge:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@contextmanager
def running_bridge() -> Iterator[FakeBridge]:
    bridge = FakeBridge().start()
    try:
        yield bridge
    finally:
        bridge.stop()


def closed_port_url() -> str:
    """A BRIDGE_URL where nothing listens (the bridge is down)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/api"
