"""Worker: live latency, idle CPU and idle RSS of `wa-monitor run` at default settings.

Starts the service (a subprocess) over a copy of a generated store, waits for its
backfill, then writes messages one at a time with a StoreWriter, as the bridge does,
and times each until its review row is committed (seen by another connection).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bench.data import config, fixture
from bench.measure import cpu_seconds, percentile, rss_mb, stop
from wa_monitor.sim import MessageRow, StoreWriter
from wa_monitor.store.schema import qa_photo_reviews


def _row(writer: StoreWriter, jid: str, drop: str, n: int) -> MessageRow:
    return MessageRow(
        id=f"3EB0{random.getrandbits(64):016X}",
        chat_jid=jid,
        sender="27821234567",
        content=f"{drop} installed, all 12 photos below ({n})",
        timestamp=writer.timestamp(datetime.now(UTC)),
        is_from_me=False,
        media_type="",
        filename="",
        url="",
        media_key=None,
        file_sha256=None,
        file_enc_sha256=None,
        file_length=0,
    )


def _count(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).select_from(qa_photo_reviews)
        return int(conn.execute(query).scalar_one())


def main(spec: dict[str, Any]) -> dict[str, Any]:
    fx = fixture(int(spec["n"]), int(spec.get("seed", 1)))
    work = Path(tempfile.mkdtemp(prefix="wa-bench-live-"))
    fx = fx.copy_to(work / "store")
    cfg = config(work, fx)
    url = str(spec["url"])
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WA_MONITOR", "DATABASE_URL", "NEON_", "WHATSAPP_", "SCAN_"))
    }
    env.update(
        DATABASE_URL=url,
        WHATSAPP_DB_PATH=str(fx.messages_db),
        WA_MONITOR_CONFIG=str(cfg.path),
    )
    log = open(work / "run.log", "w")  # noqa: SIM115 - closed below
    exe = Path(sys.executable).with_name("wa-monitor")
    proc = subprocess.Popen([str(exe), "run"], env=env, stdout=log, stderr=log, cwd=work)
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    result: dict[str, Any] = {}
    try:
        expected = len(fx.monitored_drops())
        deadline = time.monotonic() + 120
        while _count(engine) < expected:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"run did not backfill; see {work / 'run.log'}")
            time.sleep(0.2)
        time.sleep(1.0)
        jid = fx.monitored[0].jid
        n = int(spec.get("messages", 100))
        latencies = drop_latencies(engine, fx.messages_db, fx.whatsapp_db, jid, n)
        result.update(
            messages=n,
            recorded=len(latencies),
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            max_ms=max(latencies) * 1000 if latencies else float("nan"),
        )
        # Idle: nothing written; the service only polls PRAGMA data_version.
        time.sleep(2.0)
        window = float(spec.get("idle_seconds", 15))
        before, t0 = cpu_seconds(proc.pid), time.monotonic()
        time.sleep(window)
        used, elapsed = cpu_seconds(proc.pid) - before, time.monotonic() - t0
        result.update(
            idle_cpu_percent=100 * used / elapsed,
            idle_window_s=elapsed,
            idle_rss_mb=rss_mb(proc.pid),
        )
    finally:
        stop(proc)
        engine.dispose()
        log.close()
    return result


def drop_latencies(
    engine: Engine, messages_db: Path, whatsapp_db: Path, jid: str, n: int
) -> list[float]:
    """Write `n` drop posts 50-350 ms apart into a group of the store; the seconds until
    each one is a review (as a reviewer's page would see it), for those that became one."""
    seen: dict[str, float] = {}
    written: dict[str, float] = {}
    done = threading.Event()
    t = qa_photo_reviews

    def watch() -> None:
        with engine.connect() as conn:
            while not done.is_set():
                pending = [d for d in written if d not in seen]
                if pending:
                    query = sa.select(t.c.drop_number).where(t.c.drop_number.in_(pending))
                    found = conn.execute(query).scalars().all()
                    conn.commit()
                    now = time.perf_counter()
                    for drop in found:
                        seen[drop] = now
                time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    rng = random.Random(5)
    with StoreWriter(messages_db, whatsapp_db) as writer:
        for i in range(n):
            drop = f"DR9{i:07d}"
            row = _row(writer, jid, drop, i)
            written[drop] = time.perf_counter()
            writer.write(row)
            time.sleep(rng.uniform(0.05, 0.35))
    deadline = time.monotonic() + 20
    while len(seen) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    done.set()
    watcher.join()
    return [seen[d] - written[d] for d in written if d in seen]


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
