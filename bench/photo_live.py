"""Live drop latency of `wa-monitor run` while its media worker fetches a backlog of photos.

As `bench/live.py` (same store, same writes, same measure: bridge write → committed
review row), with the review database holding `backlog` pending photos before `run`
starts: the newest `real` of them have files behind them (1280×960 JPEGs drawn before the
start, each distinct), which the test bridge (its own process) copies into the store
folder on `POST /api/download`; the others are gone from WhatsApp (the bridge answers
404, they become unavailable). With `backlog` 0 there is no bridge: the worker links the
group's messages and fetches nothing, the figure to compare with.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.data import config, fixture
from bench.live import _count, drop_latencies
from bench.measure import percentile, rss_mb, stop
from bench.photo_kit import OriginPhoto, bridge_process, draw_origin
from wa_monitor.store.schema import group_messages


def _queue(url: str, jid: str, project: str, photos: list[OriginPhoto], expired: int) -> None:
    """Pending rows as the linker leaves them: the drawn photos newest, then expired ones."""
    now = datetime.now(UTC)
    rows = [
        {
            "message_id": p.message_id,
            "filename": p.filename,
            "file_sha256": p.sha256.hex(),
            "file_length": p.size,
            "posted_at": now - timedelta(seconds=n),
        }
        for n, p in enumerate(photos)
    ] + [
        {
            "message_id": f"3EB0EXPIRED{n:09d}",
            "filename": f"image_20261101_{n:06d}.jpg",
            "file_sha256": f"{n:064x}",
            "file_length": 250_000,
            "posted_at": now - timedelta(days=30, seconds=n),
        }
        for n in range(expired)
    ]
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.execute(
            sa.insert(group_messages),
            [
                {
                    **r,
                    "chat_jid": jid,
                    "project": project,
                    "sender": "27821234567",
                    "media_type": "image",
                    "drop_number": f"DR8{n // 12:07d}",
                    "link_reason": "after",
                    "status": "pending",
                    "next_attempt_at": r["posted_at"],
                }
                for n, r in enumerate(rows)
            ],
        )
    engine.dispose()


def _statuses(engine: sa.Engine) -> dict[str, int]:
    g = group_messages
    with engine.connect() as conn:
        query = sa.select(g.c.status, sa.func.count()).group_by(g.c.status)
        return {str(s): int(n) for s, n in conn.execute(query).all() if s is not None}


def _caught_up(
    engine: sa.Engine, proc: subprocess.Popen[bytes], fetching: bool, work: Path
) -> float:
    """Wait until the worker's linker has read the whole store (the group rows stop growing
    for 3 s) and, with a backlog, its first photos are settled: from then on the worker is
    fetching. Returns the seconds waited."""
    started = time.monotonic()
    deadline = started + 600
    last, steady_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"run stopped; see {work / 'run.log'}")
        with engine.connect() as conn:
            rows = int(
                conn.execute(sa.select(sa.func.count()).select_from(group_messages)).scalar_one()
            )
        if rows != last:
            last, steady_since = rows, time.monotonic()
        statuses = _statuses(engine)
        settled = statuses.get("available", 0) + statuses.get("unavailable", 0)
        if time.monotonic() - steady_since >= 3 and (settled or not fetching):
            return time.monotonic() - started
        time.sleep(0.5)
    raise RuntimeError(f"the media worker did not catch up in 600 s; see {work / 'run.log'}")


@contextmanager
def _service(env: dict[str, str], work: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = open(work / "run.log", "w")  # noqa: SIM115 - closed below
    exe = Path(sys.executable).with_name("wa-monitor")
    proc = subprocess.Popen([str(exe), "run"], env=env, stdout=log, stderr=log, cwd=work)
    try:
        yield proc
    finally:
        stop(proc)
        log.close()


def main(spec: dict[str, Any]) -> dict[str, Any]:
    backlog = int(spec.get("backlog", 0))
    real = min(backlog, int(spec.get("real", 600)))
    fx = fixture(int(spec.get("n", 100_000)), int(spec.get("seed", 1)))
    work = Path(tempfile.mkdtemp(prefix="wa-bench-photo-live-"))
    fx = fx.copy_to(work / "store")
    cfg = config(work, fx)
    url = str(spec["url"])
    project = cfg.enabled[0]
    jid = fx.monitored[0].jid
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(
            ("WA_MONITOR", "DATABASE_URL", "NEON_", "WHATSAPP_", "SCAN_", "MEDIA_", "BRIDGE_")
        )
    }
    env.update(
        DATABASE_URL=url,
        WHATSAPP_DB_PATH=str(fx.messages_db),
        WA_MONITOR_CONFIG=str(cfg.path),
        MEDIA_DIR=str(work / "media"),
    )
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    result: dict[str, Any] = {"backlog": backlog, "real": real}
    with ExitStack() as stack:
        if backlog:
            photos = draw_origin(work / "origin", real, jid, prefix="3EB0BACKLOG")
            _queue(url, jid, project.name, photos, backlog - real)
            names = {p.message_id: f"{p.message_id}-{p.filename}" for p in photos}
            env["BRIDGE_URL"] = stack.enter_context(
                bridge_process(work / "origin", fx.directory, names)
            )
        proc = stack.enter_context(_service(env, work))
        expected = len(fx.monitored_drops())
        deadline = time.monotonic() + 180
        while _count(engine) < expected:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"run did not backfill; see {work / 'run.log'}")
            time.sleep(0.2)
        result["linked_after_s"] = _caught_up(engine, proc, backlog > 0, work)
        before = _statuses(engine)
        n = int(spec.get("messages", 100))
        started = time.monotonic()
        latencies = drop_latencies(engine, fx.messages_db, fx.whatsapp_db, jid, n)
        window = time.monotonic() - started
        after = _statuses(engine)
        settled = sum(after.get(s, 0) - before.get(s, 0) for s in ("available", "unavailable"))
        result.update(
            messages=n,
            recorded=len(latencies),
            p50_ms=percentile(latencies, 50) * 1000,
            p99_ms=percentile(latencies, 99) * 1000,
            max_ms=max(latencies) * 1000 if latencies else float("nan"),
            window_s=window,
            before=before,
            after=after,
            settled_in_window=settled,
            fetched_in_window=after.get("available", 0) - before.get("available", 0),
            rss_mb=rss_mb(proc.pid),
            load_average=os.getloadavg()[0],
        )
    engine.dispose()
    shutil.rmtree(work, ignore_errors=True)
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
