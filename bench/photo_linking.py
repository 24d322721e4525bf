"""Reading and linking photos: rows per second of `PhotoLinker.step` over a bridge store.

`.venv/bin/python -m bench.photo_linking [ROWS] [BACKEND,...]` (from the repo root):
builds a bridge store of ROWS messages (default 100,000) in three groups, where each
drop post is followed by a burst of photos and a few texts, records the drops with the
scan, then times the linker reading every row into group_messages and linking it
(default backends: sqlite,postgresql), then the re-link a late history sync causes.
Prints one JSON line per backend.
"""

from __future__ import annotations

import hashlib
import json
import random
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event

from bench.dbs import fresh_database, url_for
from wa_monitor.core.config import parse_config
from wa_monitor.monitor.photo_linker import PhotoLinker
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sim import StoreWriter
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.review_store import ReviewStore

GROUPS = ("120363418298130331@g.us", "120363421664266245@g.us", "120363421532174586@g.us")
CONFIG = "timezone: Africa/Johannesburg\nprojects:\n" + "".join(
    f'  - name: P{i}\n    enabled: true\n    description: group {i}\n    group_jid: "{jid}"\n'
    for i, jid in enumerate(GROUPS)
)
T0 = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)
INSERT = (
    "INSERT OR REPLACE INTO messages (id, chat_jid, sender, content, timestamp, is_from_me, "
    "media_type, filename, url, media_key, file_sha256, file_enc_sha256, file_length) "
    "VALUES (?, ?, ?, ?, ?, 0, ?, ?, '', NULL, ?, NULL, ?)"
)


def build_store(directory: Path, n: int, seed: int = 1) -> Path:
    """A messages.db of `n` rows: drop posts, 12-photo bursts, texts, in three groups."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    writer = StoreWriter(directory / "messages.db", directory / "whatsapp.db")
    writer.close()
    rows: list[tuple[Any, ...]] = []
    when = T0
    drop = 10_000_000
    while len(rows) < n:
        chat = rng.choice(GROUPS)
        sender = f"2782{rng.randrange(100):07d}"
        when += timedelta(minutes=rng.randint(1, 20))
        drop += 1
        stamp = when.strftime("%Y-%m-%d %H:%M:%S+00:00")
        rows.append((f"P{len(rows)}", chat, sender, f"DR{drop} done", stamp, "", "", None, 0))
        for i in range(12):
            at = when + timedelta(seconds=20 * i + rng.randint(0, 5))
            sha = hashlib.sha256(f"{drop}-{i}".encode()).digest()
            rows.append(
                (
                    f"I{len(rows)}", chat, sender, "", at.strftime("%Y-%m-%d %H:%M:%S+00:00"),
                    "image", f"image_{at:%Y%m%d_%H%M%S}.jpg", sha, 250_000,
                )
            )  # fmt: skip
        for _ in range(rng.randint(0, 3)):
            at = when + timedelta(minutes=rng.randint(0, 60))
            rows.append(
                (f"T{len(rows)}", chat, sender, "pole done", at.strftime("%Y-%m-%d %H:%M:%S+00:00"),
                 "", "", None, 0)
            )  # fmt: skip
    with sqlite3.connect(directory / "messages.db") as conn:
        conn.executemany(INSERT, rows[:n])
    conn.close()
    return directory / "messages.db"


def count_statements(store: ReviewStore) -> list[int]:
    counter = [0]

    @event.listens_for(store.engine, "before_cursor_execute")
    def _count(*_args: Any) -> None:
        counter[0] += 1

    return counter


def run(backend: str, n: int, work: Path) -> dict[str, Any]:
    messages_db = work / "bridge" / "messages.db"
    config = parse_config(CONFIG, Path("projects.yaml"))
    with fresh_database(backend, work) as handle:
        store = ReviewStore(url_for(backend, handle))
        source = BridgeStore(messages_db, work / "bridge" / "whatsapp.db")
        source.open()
        Monitor(config, source, store).scan()
        linker_source = BridgeStore(messages_db, work / "bridge" / "whatsapp.db")
        linker = PhotoLinker(store, linker_source, lambda: config)
        statements = count_statements(store)
        started = time.perf_counter()
        steps = linker.run_until_done()
        seconds = time.perf_counter() - started
        with store.read() as conn:
            stored = conn.execute(sa.text("SELECT count(*) FROM group_messages")).scalar_one()
            linked = conn.execute(
                sa.text("SELECT count(*) FROM group_messages WHERE drop_number IS NOT NULL")
            ).scalar_one()
        first = {"steps": steps, "seconds": round(seconds, 2), "statements": statements[0]}
        # A history sync: 5,000 old rows stored again under new rowids, re-read and re-linked.
        with sqlite3.connect(messages_db) as bridge:
            old = bridge.execute(
                "SELECT id, chat_jid, sender, content, timestamp, media_type, filename, "
                "file_sha256, file_length FROM messages ORDER BY random() LIMIT 5000"
            ).fetchall()
            bridge.executemany(INSERT, old)
        bridge.close()
        statements[0] = 0
        started = time.perf_counter()
        linker.run_until_done()
        resync = time.perf_counter() - started
        linker_source.close()
        source.close()
        store.dispose()
    return {
        "backend": backend,
        "rows": n,
        "stored": stored,
        "linked": linked,
        "rows_per_second": round(n / seconds),
        "first_read": first,
        "history_sync_5000": {
            "seconds": round(resync, 2),
            "statements": statements[0],
            "rows_per_second": round(5000 / resync),
        },
    }


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    backends = sys.argv[2].split(",") if len(sys.argv) > 2 else ["sqlite", "postgresql"]
    with tempfile.TemporaryDirectory(prefix="wa-bench-photos-") as tmp:
        work = Path(tmp)
        build_store(work / "bridge", n)
        for backend in backends:
            print(json.dumps(run(backend, n, work)), flush=True)


if __name__ == "__main__":
    main()
