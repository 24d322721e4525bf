"""Feedback under a slow, broken or vanishing bridge, and a dashboard killed mid-send.

The bridge returns no message id: an attempt whose outcome is unknown is never sent again
by itself (the group would get it twice), an attempt that certainly did not reach the
bridge is. And a bridge that hangs must not hold the threads that answer everyone else.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.fakebridge import (
    HELD,
    NOT_CONNECTED,
    OK,
    PROXY_BAD_GATEWAY,
    PROXY_TIMEOUT,
    RESET,
    Answer,
    FakeBridge,
    closed_port_url,
    running_bridge,
    unanswered_url,
)
from tests.faults.support import WA_MONITOR, figure, wait_until
from tests.integration.test_api_support import (
    LAWLEY_JID,
    PROJECTS_YAML,
    People,
    TestClient,
    add_people,
    minutes_ago,
    now,
    post,
    projects_config,
    record,
    review,
    settings_for,
)
from wa_monitor.feedback.outbox import BridgeClient, FeedbackSender, enqueue, entries_for
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.app import create_app


def _message(drop: str) -> str:
    return f"{drop}\nNEEDS CORRECTION\n\nMissing items:\n• 3. Cable entry outside"


def _backend(store: ReviewStore) -> str:
    return store.dialect


@pytest.fixture
def bridge() -> Iterator[FakeBridge]:
    with running_bridge() as b:
        yield b


def _delivered(bridge: FakeBridge, message: str) -> int:
    """How many times the bridge was asked to post `message`."""
    return sum(1 for m in bridge.sent if m["message"] == message)


# -- every outcome, one by one -------------------------------------------------------------

UNKNOWN = [
    ("the bridge answered after the client's timeout", HELD),
    ("connection reset after the request was read", RESET),
    ("a proxy's 502 after the request went through", PROXY_BAD_GATEWAY),
    ("a proxy's 504", PROXY_TIMEOUT),
    (
        "the bridge: WhatsApp did not acknowledge the send",
        Answer(
            500,
            json.dumps(
                {
                    "success": False,
                    "message": "Error sending message: timed out waiting for message send response",
                }
            ),
        ),
    ),
]


def test_an_unknown_outcome_is_never_sent_again_by_itself(
    store: ReviewStore, bridge: FakeBridge
) -> None:
    people = add_people(store)
    app = create_app(
        settings_for(store.url, bridge.url),
        projects_config(),
        store,
        bridge=BridgeClient(bridge.url, timeout=0.5),
        run_sender=False,
    )
    later = FeedbackSender(store, BridgeClient(bridge.url), backoff=(0,))
    results = []
    with TestClient(app) as client:
        for i, (what, answer) in enumerate(UNKNOWN, start=1):
            drop = f"DR8100000{i}"
            record(store, post(drop, minutes_ago(10)))
            bridge.answer(answer)
            response = client.post(
                "/api/wa-monitor-send-feedback",
                json={
                    "dropId": str(review(store, drop)["id"]),
                    "dropNumber": drop,
                    "message": _message(drop),
                },
                headers={**people.bearer("reviewer"), "Idempotency-Key": f"key-unknown-{i}"},
            )
            if answer.hold:
                bridge.release()
                bridge.wait_for(requests=i, holding=0)
            data = response.json()["data"]
            assert response.status_code == 202 and data["status"] == "unconfirmed", (what, data)
            # Two passes of the sender a day later, and the browser retrying its request.
            passes = [later.deliver_due(now() + timedelta(days=1)) for _ in range(2)]
            retried = client.post(
                "/api/wa-monitor-send-feedback",
                json={
                    "dropId": str(review(store, drop)["id"]),
                    "dropNumber": drop,
                    "message": _message(drop),
                },
                headers={**people.bearer("reviewer"), "Idempotency-Key": f"key-unknown-{i}"},
            )
            assert passes == [0, 0] and retried.json()["data"]["status"] == "unconfirmed"
            assert _delivered(bridge, _message(drop)) == 1, what
            assert review(store, drop)["feedback_sent"] is None
            results.append(f"{what} → unconfirmed ({data['lastError'][:60]!r})")
    figure(
        f"fault 11a feedback, unknown outcomes ({_backend(store)}): {len(UNKNOWN)} injected, "
        "each left unconfirmed and posted once, 0 sent again after 2 sender passes and a "
        "retried request: " + "; ".join(results)
    )


def test_a_send_that_certainly_did_not_go_out_is_retried_and_delivered_once(
    store: ReviewStore, bridge: FakeBridge
) -> None:
    add_people(store)
    results = []
    with unanswered_url() as silent:
        cases = [
            ("connection refused (the bridge is down)", closed_port_url(), None),
            ("connect timeout (the host takes no connection)", silent, None),
            ("the bridge: not connected to WhatsApp", bridge.url, NOT_CONNECTED),
        ]
        for i, (what, url, answer) in enumerate(cases, start=1):
            drop = f"DR8200000{i}"
            record(store, post(drop, minutes_ago(10)))
            rid = review(store, drop)["id"]
            entry, _ = enqueue(
                store,
                review_id=rid,
                drop_number=drop,
                project="Lawley",
                recipient=LAWLEY_JID,
                message=_message(drop),
                request_key=f"key-not-sent-{i}",
                requested_by="reviewer",
            )
            if answer is not None:
                bridge.answer(answer)
            first = FeedbackSender(store, BridgeClient(url, timeout=0.5)).deliver(entry.id)
            assert first is not None and first.status == "pending", (what, first)
            later = FeedbackSender(store, BridgeClient(bridge.url))
            assert later.deliver_due(now() + timedelta(minutes=1)) == 1
            final = entries_for(store, rid)[0]
            assert final.status == "sent" and final.attempts == 2, (what, final)
            ok_answers = _delivered(bridge, _message(drop)) - (answer is not None)
            assert ok_answers == 1, what
            results.append(f"{what} → pending ({(first.last_error or '')[:50]!r}), then sent")
    figure(
        f"fault 11b feedback, certain failures ({_backend(store)}): {len(results)} injected, "
        "each retried and delivered exactly once: " + "; ".join(results)
    )


# -- `wa-monitor serve` as a process ----------------------------------------------------------


@dataclass
class Serve:
    """A `wa-monitor serve` process whose log goes to a file."""

    popen: subprocess.Popen[bytes]
    port: int
    log_path: Path

    @classmethod
    def start(cls, root: Path, db_url: str, bridge_url: str) -> Serve:
        config = root / "projects.yaml"
        config.write_text(PROJECTS_YAML)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "NEON_", "WHATSAPP_", "WA_MONITOR_", "LOG_"))
            and k not in ("BRIDGE_URL", "SECRET_KEY")
        }
        env.update(
            DATABASE_URL=db_url,
            SECRET_KEY="fault-tests-secret-key-0123456789",
            BRIDGE_URL=bridge_url,
            WA_MONITOR_CONFIG=str(config),
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        log_path = root / f"serve-{len(list(root.glob('serve-*.log'))):03d}.log"
        with log_path.open("wb") as out:
            popen = subprocess.Popen(
                [*WA_MONITOR, "serve", "--host", "127.0.0.1", "--port", str(port)],
                cwd=root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        serve = cls(popen, port, log_path)
        wait_until(serve.answers, 60, "serve to answer /healthz", process=serve)
        return serve

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def answers(self) -> bool:
        return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def ensure_dead(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


def _send(serve: Serve, people: People, store: ReviewStore, drop: str) -> httpx.Response:
    return httpx.post(
        f"{serve.url}/api/wa-monitor-send-feedback",
        json={
            "dropId": str(review(store, drop)["id"]),
            "dropNumber": drop,
            "message": _message(drop),
        },
        headers=people.bearer("reviewer"),
        timeout=60,
    )


def test_a_dashboard_killed_between_sending_and_recording(
    store: ReviewStore, bridge: FakeBridge, tmp_path: Path
) -> None:
    people = add_people(store)
    record(store, post("DR83000001", minutes_ago(10)), post("DR83000002", minutes_ago(9)))
    first = review(store, "DR83000001")["id"]
    bridge.default = HELD
    serve = Serve.start(tmp_path, store.url, bridge.url)
    try:
        with ThreadPoolExecutor(1) as pool:
            sending = pool.submit(_send, serve, people, store, "DR83000001")
            bridge.wait_for(requests=1, holding=1, timeout=30)  # the message is at the bridge
            serve.kill9()
            with pytest.raises(httpx.TransportError):
                sending.result()
        left = entries_for(store, first)[0]
        assert left.status == "sending"  # what the killed dashboard left behind
        bridge.default = OK
        bridge.release()
        serve = Serve.start(tmp_path, store.url, bridge.url)
        recovered = entries_for(store, first)[0]
        assert recovered.status == "unconfirmed", recovered
        # Its sender makes passes (it delivers an entry queued after the restart) and
        # leaves the unconfirmed one alone.
        enqueue(
            store,
            review_id=review(store, "DR83000002")["id"],
            drop_number="DR83000002",
            project="Lawley",
            recipient=LAWLEY_JID,
            message=_message("DR83000002"),
            request_key="key-after-restart",
            requested_by="reviewer",
        )
        wait_until(lambda: review(store, "DR83000002")["feedback_sent"], 30, "the next entry sent")
        assert _delivered(bridge, _message("DR83000001")) == 1
        assert entries_for(store, first)[0].status == "unconfirmed"
        # The reviewer checks the group and says it arrived.
        marked = httpx.post(
            f"{serve.url}/api/wa-monitor-feedback-outbox/{left.id}/mark-sent",
            headers=people.bearer("reviewer"),
        )
        assert marked.status_code == 200 and marked.json()["data"]["status"] == "sent"
        assert _delivered(bridge, _message("DR83000001")) == 1
        log = serve.log()
    finally:
        serve.ensure_dead()
    assert "delivery unconfirmed" in log and "Traceback" not in log
    figure(
        f"fault 11c feedback, dashboard killed ({_backend(store)}): kill -9 of `wa-monitor "
        "serve` while the bridge held its message; the restarted dashboard found the entry "
        "'sending' and made it unconfirmed; its sender delivered a later entry and posted "
        "the first 0 more times (1 in all); marked as sent by the reviewer"
    )


def test_a_bridge_that_hangs_does_not_hold_the_dashboards_reads(
    store: ReviewStore, bridge: FakeBridge, tmp_path: Path
) -> None:
    """Every route that calls the bridge (send, retry, send again) waits for it without
    holding a handler thread: reads answer while eight of them hang."""
    people = add_people(store)
    drops = [f"DR8400000{i}" for i in range(1, 9)]
    record(store, *(post(d, minutes_ago(10 + i)) for i, d in enumerate(drops)))
    serve = Serve.start(tmp_path, store.url, bridge.url)
    reads = httpx.Client(base_url=serve.url, headers=people.bearer("viewer"), timeout=30)

    def read_times(n: int) -> list[float]:
        times = []
        for _ in range(n):
            start = time.perf_counter()
            response = reads.get("/api/wa-monitor-drops")
            times.append(time.perf_counter() - start)
            assert response.status_code == 200, response.text
        return sorted(times)

    def outbox(action: str, entry: int) -> httpx.Response:
        return httpx.post(
            f"{serve.url}/api/wa-monitor-feedback-outbox/{entry}/{action}",
            headers=people.bearer("reviewer"),
            timeout=60,
        )

    try:
        # A failed feedback (to retry) and an unconfirmed one (to send again).
        bridge.answer(Answer(400, "Invalid request format", "text/plain"), RESET)
        failed = _send(serve, people, store, drops[6]).json()["error"]["details"]["outboxId"]
        unconfirmed = _send(serve, people, store, drops[7]).json()["data"]["outboxId"]
        bridge.default = HELD
        before = read_times(50)
        with ThreadPoolExecutor(len(drops)) as pool:
            calls = [pool.submit(_send, serve, people, store, d) for d in drops[:6]]
            calls.append(pool.submit(outbox, "retry", failed))
            calls.append(pool.submit(outbox, "send-again", unconfirmed))
            bridge.wait_for(requests=2 + len(calls), holding=len(calls), timeout=30)
            during = read_times(100)
            # Every read was answered while all eight calls still waited for the bridge.
            answered = [c for c in calls if c.done()]
            assert answered == [], [c.result().text for c in answered]
            assert bridge.holding == len(calls)
            bridge.release()
            answers = [c.result() for c in calls]
    finally:
        reads.close()
        serve.ensure_dead()
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"]["status"] == "sent"
    for answer in answers[:6]:
        data: dict[str, Any] = answer.json()["data"]
        assert {"dropNumber", "project", "group", "recipient", "sentAt"} <= set(data)
        assert data["sentAt"]
    assert len(bridge.sent) == 2 + len(calls)

    def ms(times: list[float], q: float) -> str:
        return f"{times[min(len(times) - 1, int(q * len(times)))] * 1000:.0f} ms"

    figure(
        f"fault 12 feedback, a bridge that hangs ({_backend(store)}): 6 sends, a retry and a "
        "send-again held at the bridge, 100 reads of GET /api/wa-monitor-drops meanwhile: "
        f"p50 {ms(during, 0.5)}, p99 {ms(during, 0.99)} (before: p50 {ms(before, 0.5)}, p99 "
        f"{ms(before, 0.99)}); every read answered while all 8 calls waited; released, each "
        "answered 200 (the sends with {dropNumber, project, group, recipient, sentAt})"
    )
