"""`wa-monitor serve` as a real process, spoken to over one keep-alive connection."""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.faults.support import wait_until
from tests.integration.test_api_support import PROJECTS_YAML, People

SECURITY_HEADERS = ("content-security-policy", "x-content-type-options", "x-frame-options")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Server:
    """One `wa-monitor serve` process, spoken to over one keep-alive connection."""

    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    people: People
    conn: http.client.HTTPConnection | None = None
    sock: socket.socket | None = None
    answers: Counter[int] = field(default_factory=Counter)
    reconnects: int = 0

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        role: str | None = "admin",
        chunked: bool = False,
    ) -> Answer:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.conn.connect()
            if self.sock is not None:
                self.reconnects += 1
            self.sock = self.conn.sock
        sent = dict(headers or {})
        if role is not None:
            sent.update(self.people.bearer(role))
        self.conn.putrequest(method, path, skip_accept_encoding=True)
        for name, value in sent.items():
            self.conn.putheader(name, value.encode("latin-1"))
        if chunked and body is not None:
            self.conn.putheader("Transfer-Encoding", "chunked")
            self.conn.endheaders(
                (body[i : i + 65536] for i in range(0, len(body), 65536)), encode_chunked=True
            )
        else:
            if body is not None:
                self.conn.putheader("Content-Length", str(len(body)))
            self.conn.endheaders(body)
        response = self.conn.getresponse()
        data = response.read()
        answer = Answer(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        self.answers[answer.status] += 1
        for name in SECURITY_HEADERS:
            assert name in answer.headers, (method, path, answer.status, answer.headers)
        # Only readiness answers 503, by design; anything else >= 500 is a failure.
        unready = answer.status == 503 and path == "/readyz"
        assert answer.status < 500 or unready, (method, path, answer.status, data[:500])
        if response.will_close or self.conn.sock is not self.sock:
            self.conn.close()
            self.conn = None  # counted as a reconnection at the next request
        return answer

    def json_request(self, method: str, path: str, body: bytes, **kw: Any) -> Answer:
        headers = {"Content-Type": "application/json", **kw.pop("headers", {})}
        return self.request(method, path, body, headers=headers, **kw)

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_serve(db_url: str, root: Path, people: People, **extra: str) -> Iterator[Server]:
    """`wa-monitor serve` on a free port over `db_url`, its log in root/serve.log."""
    (root / "projects.yaml").write_text(PROJECTS_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "WA_MON"))}
    env.update(
        DATABASE_URL=db_url,
        WA_MONITOR_CONFIG=str(root / "projects.yaml"),
        SECRET_KEY="a-secret-key-for-the-hostile-test",
        BRIDGE_URL="http://127.0.0.1:9/api",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    port = _free_port()
    log_path = root / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "wa_monitor", "serve", "--port", str(port)],
            env=env,
            cwd=root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    live = Server(process, port, log_path, people)
    try:

        def up() -> bool:
            assert process.poll() is None, live.log()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0

        wait_until(up, 60, "serve to listen")
        yield live
    finally:
        if live.conn is not None:
            live.conn.close()
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
