"""Fault: `kill -9` of `wa-monitor serve` while a gateway posts webhooks, then restarts.

A test gateway posts drop messages to WAHA's webhook from several threads and, as WAHA
does, delivers each one again until it is answered 2xx. `serve` is killed at random
moments and started again. Afterwards every message is in the inbox exactly once, and a
monitor reading the inbox records each drop once and each post once. At least one kill
must have fallen between a COMMIT and its answer (a call left unanswered whose row was
stored): the case a lost answer must not turn into a duplicate.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import sqlalchemy as sa

from tests import gateways as gw
from tests.faults.support import figure, wait_until
from tests.helpers import submissions
from wa_monitor.core.config import parse_config
from wa_monitor.monitor.scan import Monitor
from wa_monitor.store.inbox_source import InboxSource
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import gateway_inbox

GROUP = "120363418298130331@g.us"
API_KEY = "fault-test-waha-key-0123456789"
PROJECTS_YAML = f"""\
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "{GROUP}"
    description: Lawley Activation 3 group
    gateway: waha
"""
POSTERS = 12
MIN_KILLS = 4
MAX_KILLS = 25


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Serve:
    """`wa-monitor serve` lives on one port, each killed or stopped in turn."""

    root: Path
    db_url: str
    port: int = field(default_factory=_free_port)
    process: subprocess.Popen[bytes] | None = None
    lives: int = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "WA_MON"))}
        env.update(
            DATABASE_URL=self.db_url,
            WA_MONITOR_CONFIG=str(self.root / "projects.yaml"),
            SECRET_KEY="a-secret-key-for-the-crash-test",
            GATEWAY="waha",
            WAHA_API_KEY=API_KEY,
            BRIDGE_URL="http://127.0.0.1:9/api",
            PYTHONUNBUFFERED="1",
        )
        self.lives += 1
        with (self.root / f"serve-{self.lives:03d}.log").open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "wa_monitor", "serve", "--port", str(self.port)],
                env=env,
                cwd=self.root,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def listening() -> bool:
            assert self.process is not None and self.process.poll() is None, self.log()
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_until(listening, 60, "serve to listen")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        path = self.root / f"serve-{self.lives:03d}.log"
        return path.read_text(encoding="utf-8", errors="replace")


@dataclass
class Gateway:
    """Posters delivering new messages until told to stop, each one until answered 2xx."""

    url: str
    store: ReviewStore
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    posted: dict[str, str] = field(default_factory=dict)  # message id → drop number
    acknowledged: int = 0
    acknowledged_at: float = 0.0
    unanswered: int = 0  # attempts sent that got no answer
    stored_unanswered: int = 0  # …of which the row was stored: a kill after COMMIT
    answers: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def run(self, n: int) -> None:
        rng = random.Random(n)
        count = 0
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                count += 1
                # One post in ten names a drop posted before (a resubmission).
                with self.lock:
                    earlier = list(self.posted.values())
                drop = (
                    rng.choice(earlier)
                    if earlier and rng.random() < 0.1
                    else f"DR{n:02d}{count:06d}"
                )
                doc = gw.waha_message(GROUP, f"2782{n:07d}", f"{drop} done, photos attached")
                message_id = doc["payload"]["_data"]["key"]["id"]
                with self.lock:
                    self.posted[message_id] = drop
                try:
                    self.deliver(client, gw.encode(doc), message_id)
                except Exception as exc:  # reported by the test
                    self.failures.append(f"{message_id}: {exc!r}")
                    return

    def deliver(self, client: httpx.Client, body: bytes, message_id: str) -> None:
        seen_stored = False
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                response = client.post(
                    self.url,
                    content=body,
                    headers={"Content-Type": "application/json", "X-Api-Key": API_KEY},
                )
            except (httpx.ConnectError, httpx.ConnectTimeout):
                time.sleep(0.05)  # serve is down: WAHA backs off, then delivers again
                continue
            except httpx.TransportError:
                # Sent, and no answer: the process died with the call in hand.
                stored = self.is_stored(message_id)
                with self.lock:
                    self.unanswered += 1
                    if stored and not seen_stored:
                        self.stored_unanswered += 1
                seen_stored = seen_stored or stored
                continue
            with self.lock:
                self.answers[response.status_code] = self.answers.get(response.status_code, 0) + 1
            if response.status_code == 200:
                with self.lock:
                    self.acknowledged += 1
                    self.acknowledged_at = time.monotonic()
                return
            time.sleep(0.05)
        raise AssertionError(f"{message_id} not acknowledged in 180 s")

    def is_stored(self, message_id: str) -> bool:
        with self.store.engine.connect() as conn:
            found = conn.execute(
                sa.select(sa.func.count()).where(gateway_inbox.c.message_id == message_id)
            ).scalar_one()
        return bool(found)


def test_kill_9_of_serve_loses_no_webhook_and_doubles_none(tmp_path: Path, db_url: str) -> None:
    backend = "postgresql" if db_url.startswith("postgresql") else "sqlite"
    (tmp_path / "projects.yaml").write_text(PROJECTS_YAML)
    seed = int(os.environ.get("WA_MONITOR_FAULT_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    store = ReviewStore(db_url)
    serve = Serve(tmp_path, db_url)
    gateway = Gateway(f"http://127.0.0.1:{serve.port}/webhooks/waha", store)
    posters = [threading.Thread(target=gateway.run, args=(n,)) for n in range(POSTERS)]
    kills = 0
    try:
        serve.start()
        for poster in posters:
            poster.start()
        while kills < MAX_KILLS and not (kills >= MIN_KILLS and gateway.stored_unanswered):
            before = gateway.acknowledged
            wait_until(lambda b=before: gateway.acknowledged > b, 60, "an answer in this life")
            time.sleep(rng.uniform(0.0, 0.4))  # the random kill moment
            serve.kill9()
            kills += 1
            serve.start()
        gateway.stop.set()
        for poster in posters:
            poster.join(240)
        assert not gateway.failures, gateway.failures[:5]
        serve.stop()
        posted = dict(gateway.posted)

        with store.engine.connect() as conn:
            rows = conn.execute(
                sa.select(gateway_inbox.c.message_id, gateway_inbox.c.seq, gateway_inbox.c.content)
            ).all()
        ids = [r.message_id for r in rows]
        assert sorted(ids) == sorted(posted)  # every message, exactly once
        assert len({r.seq for r in rows}) == len(rows)

        config = parse_config(PROJECTS_YAML, tmp_path / "projects.yaml")
        monitor = Monitor(config, InboxSource(store), store)
        monitor.scan()
        reviews = store.reviews()
        logged = submissions(store)
    finally:
        gateway.stop.set()
        serve.stop()
        store.dispose()

    drops = set(posted.values())
    assert sorted(r["drop_number"] for r in reviews) == sorted(drops)  # each drop once
    keys = [(s["message_id"], s["drop_number"]) for s in logged]
    assert len(keys) == len(set(keys)) == len(posted)  # each post once, none doubled
    figure(
        f"webhook crash ({backend}): {kills} kill -9 of `wa-monitor serve` at random moments "
        f"(seed {seed}) while {POSTERS} posters delivered {len(posted)} WAHA messages "
        f"({len(drops)} drops) until answered 2xx; {gateway.unanswered} calls left "
        f"unanswered, {gateway.stored_unanswered} of them already stored; answers "
        f"{dict(sorted(gateway.answers.items()))}; the inbox holds each message once, the "
        "monitor recorded each drop once and each post once"
    )
    assert gateway.stored_unanswered >= 1, (
        f"no kill fell between a COMMIT and its answer in {kills} kills: the case is not proven"
    )
