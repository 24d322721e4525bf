"""Feedback outbox drain: 1,000 queued messages through a local fake bridge at its pace.

Worker: `python -m bench.feedback_bench SPEC`. 1,000 reviews are queued for feedback
(feedback.enqueue, as the dashboard does), then a FeedbackSender drains the outbox
through a fake `POST /api/send` that takes `pace` seconds per message, like a bridge
that paces its sends. Checks every message arrived exactly once and every review's
`feedback_sent` is set.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.dbs import fresh_database, url_for
from bench.measure import peak_rss_mb, rss_mb

Row = tuple[str, str, str, str]


class PacedBridge:
    """`POST /api/send` answering success after `pace` seconds, one message at a time."""

    def __init__(self, pace: float) -> None:
        self.received: Counter[str] = Counter()
        lock = threading.Lock()
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:  # the bridge sends one WhatsApp message at a time
                    time.sleep(pace)
                    bridge.received[body["message"]] += 1
                data = b'{"success": true, "message": "Message sent to recipient"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def main(spec: dict[str, Any]) -> dict[str, Any]:
    from wa_monitor.feedback import outbox as feedback
    from wa_monitor.store.review_store import ReviewStore
    from wa_monitor.store.schema import qa_photo_reviews

    n, pace = int(spec.get("n", 1000)), float(spec.get("pace", 0.01))
    store = ReviewStore(str(spec["url"]))
    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(n)]
    with store.begin() as conn:
        conn.execute(
            sa.insert(qa_photo_reviews),
            [
                {
                    "id": review_id,
                    "drop_number": f"DR{70_000_000 + i}",
                    "project": "Lawley",
                    "user_name": "Installer",
                    "whatsapp_message_date": now,
                    "review_date": now.date(),
                    "created_at": now,
                    "updated_at": now,
                }
                for i, review_id in enumerate(ids)
            ],
        )
    started = time.perf_counter()
    for i, review_id in enumerate(ids):
        feedback.enqueue(
            store,
            review_id=review_id,
            drop_number=f"DR{70_000_000 + i}",
            project="Lawley",
            recipient="120363418298130331@g.us",
            message=f"DR{70_000_000 + i}\nNEEDS CORRECTION\n\nMissing items:\n• 3. Cable entry",
            request_key=f"bench-{i}",
            requested_by="bench",
        )
    enqueue_s = time.perf_counter() - started
    bridge = PacedBridge(pace)
    sender = feedback.FeedbackSender(store, feedback.BridgeClient(bridge.url))
    rss_before = rss_mb()
    started = time.perf_counter()
    while sender.deliver_due():
        pass
    drain_s = time.perf_counter() - started
    bridge.stop()
    with store.begin() as conn:
        sent = conn.execute(
            sa.select(sa.func.count())
            .select_from(qa_photo_reviews)
            .where(qa_photo_reviews.c.feedback_sent.is_not(None))
        ).scalar_one()
    store.dispose()
    return {
        "n": n,
        "pace_s": pace,
        "enqueue_s": enqueue_s,
        "drain_s": drain_s,
        "delivered": sum(bridge.received.values()),
        "duplicates": sum(c - 1 for c in bridge.received.values() if c > 1),
        "reviews_marked": int(sent),
        "rss_before_mb": rss_before,
        "peak_rss_mb": peak_rss_mb(),
    }


def run_feedback(work: Path, worker: Callable[[str, dict[str, Any]], dict[str, Any]]) -> list[Row]:
    try:
        from wa_monitor import feedback  # noqa: F401 - it must exist
    except ImportError as exc:
        return [("Feedback outbox", "not measured", "—", f"⚠️ not available: {exc}")]
    with fresh_database("postgresql", work) as handle:
        r = worker("feedback_bench", {"url": url_for("postgresql", handle), "pace": 0.01})
    floor = r["n"] * r["pace_s"]
    exact = r["delivered"] == r["n"] and r["duplicates"] == 0 and r["reviews_marked"] == r["n"]
    # "At the bridge's pace": the sender adds at most as much time again as the bridge takes.
    ok = exact and r["drain_s"] <= 2 * floor and r["peak_rss_mb"] - r["rss_before_mb"] < 50
    return [
        (
            f"Feedback outbox drain: {r['n']:,} messages, fake bridge pacing "
            f"{r['pace_s'] * 1000:.0f} ms/message, PostgreSQL",
            f"{r['drain_s']:.1f} s = {r['n'] / r['drain_s']:.0f} msg/s (the bridge's pace alone: "
            f"{floor:.0f} s); {r['delivered']:,} delivered, {r['duplicates']} duplicates, "
            f"{r['reviews_marked']:,} reviews marked sent; queueing took {r['enqueue_s']:.1f} s",
            "≤ 2× the bridge's pace, exactly once, bounded memory",
            ("✅ pass" if ok else "❌ miss")
            + f" ({(r['drain_s'] - floor) / r['n'] * 1000:.1f} ms/message over the pace; "
            f"RSS {r['rss_before_mb']:.0f} → peak {r['peak_rss_mb']:.0f} MB)",
        )
    ]


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
