"""Dashboard API figures: 1,000,000 reviews in PostgreSQL, `wa-monitor serve`, wrk -c32.

The reviews are generated in the database (generate_series): 20 projects, WhatsApp
message times spread over the last 365 days (so "today" holds ~2,700 of them), a fifth
resubmitted. A viewer's API token authenticates wrk.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.data import config, fixture
from bench.dbs import fresh_database, pg_url
from bench.measure import rss_mb, stop
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.reviews import Post
from wa_monitor.store.review_store import ReviewStore

Row = tuple[str, str, str, str]
N_REVIEWS = 1_000_000

_FILL = """
INSERT INTO qa_photo_reviews (id, drop_number, project, user_name, submitted_by,
    whatsapp_message_date, last_message_date, review_date, resubmitted, incomplete,
    completed, comment, created_at, updated_at, step_01_house_photo)
SELECT gen_random_uuid(), 'DR' || lpad(i::text, 8, '0'), p.name,
    'Installer ' || (i % 500), '2782' || lpad((i % 9973)::text, 7, '0'),
    t.at, t.at, (t.at AT TIME ZONE 'Africa/Johannesburg')::date, i % 5 = 0, i % 7 = 0,
    i % 3 = 0, CASE WHEN i % 5 = 0 THEN 'resubmitted' END, t.at, t.at, i % 2 = 0
FROM generate_series(1::bigint, :n) AS i
CROSS JOIN LATERAL (SELECT now() - (i % 365) * interval '1 day'
                        - ((i * 7919) % 86400) * interval '1 second' AS at) AS t
CROSS JOIN LATERAL (SELECT (CAST(:names AS text[]))[1 + i % :k] AS name) AS p
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wrk(url: str, token: str, seconds: int) -> dict[str, float]:
    done = subprocess.run(
        ["wrk", "-t2", "-c32", f"-d{seconds}s", "--timeout", "10s", "--latency", "-H",
         f"Authorization: Bearer {token}", url],
        capture_output=True, text=True, timeout=seconds + 60, check=True,
    )  # fmt: skip
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {}
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if m:
            scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[m.group(2)]
            lat[pct] = float(m.group(1)) * scale
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    timeouts = re.search(r"timeout (\d+)", out)
    return {
        "timeouts": float(timeouts.group(1)) if timeouts else 0.0,
        "rps": rps,
        "p50_ms": lat.get("50", float("nan")),
        "p99_ms": lat.get("99", float("nan")),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


@contextmanager
def _monitor_writing(url: str, cfg: ProjectsConfig, every: float) -> Iterator[list[int]]:
    """Record a new drop of today every `every` s as the monitor does (0: nothing): each
    one makes the server's kept answers stale (PostgreSQL's change notifications)."""
    written = [0]
    if not every:
        yield written
        return
    stop = threading.Event()
    store = ReviewStore(url, pre_ping=False)
    project = cfg.enabled[0]

    def write() -> None:
        while not stop.wait(every):
            n = written[0] = written[0] + 1
            post = Post(
                chat_jid=project.group_jid,
                message_id=f"BENCH{n:015d}",
                drop_number=f"DR9{n:07d}",
                project=project.name,
                sender="27820000000",
                sender_name="Bench Installer",
                time=datetime.now(UTC),
            )
            store.record_batch([post], {}, cfg.zone)

    thread = threading.Thread(target=write, name="bench-monitor", daemon=True)
    thread.start()
    try:
        yield written
    finally:
        stop.set()
        thread.join()
        store.dispose()


def run_api(work: Path, _worker: Callable[[str, dict[str, Any]], dict[str, Any]]) -> list[Row]:
    if shutil.which("wrk") is None:
        return [("Dashboard API", "not measured", "—", "⚠️ wrk is not installed")]
    try:
        from wa_monitor.store.users import add_user, create_token
        from wa_monitor.web.app import create_app  # noqa: F401 - it must exist
    except ImportError as exc:
        return [("Dashboard API", "not measured", "—", f"⚠️ no dashboard yet: {exc}")]
    fx = fixture(100_000)
    cfg = config(work, fx)
    names = [p.name for p in cfg.enabled]
    rows: list[Row] = []
    with fresh_database("postgresql", work) as name:
        url = pg_url(name)
        store = ReviewStore(url)
        started = time.monotonic()
        with store.begin() as conn:
            conn.execute(sa.text(_FILL), {"n": N_REVIEWS, "names": names, "k": len(names)})
        with store.engine.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT").execute(
                sa.text("VACUUM ANALYZE qa_photo_reviews")
            )
        fill_s = time.monotonic() - started
        add_user(store, "bench", "bench-password-123456", "viewer")
        _, token = create_token(store, "bench", "wrk")
        store.dispose()
        port = _free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WA_MONITOR", "DATABASE"))}
        env.update(
            DATABASE_URL=url, SECRET_KEY="bench-" + "x" * 40, WA_MONITOR_CONFIG=str(cfg.path)
        )
        exe = Path(sys.executable).with_name("wa-monitor")
        log = open(work / "serve.log", "w")  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [str(exe), "serve", "--port", str(port)], env=env, stdout=log, stderr=log, cwd=work
        )
        try:
            base = f"http://127.0.0.1:{port}/api"
            deadline = time.monotonic() + 60
            while True:
                try:
                    request = urllib.request.Request(
                        f"{base}/wa-monitor-daily-drops",
                        headers={"Authorization": f"Bearer {token}"},
                    )
                    with urllib.request.urlopen(request, timeout=30) as answer:
                        if answer.status == 200:
                            break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(
                            f"serve did not start; see {work / 'serve.log'}"
                        ) from None
                    time.sleep(0.3)
            # The dashboard's first page: without a page size the answer is every drop.
            first_page = "/wa-monitor-drops?pageSize=50"
            cases = [
                ("GET /api/wa-monitor-daily-drops", "/wa-monitor-daily-drops", 0.0),
                ("GET /api/wa-monitor-drops (first page, 50)", first_page, 0.0),
                ("GET /api/wa-monitor-daily-drops", "/wa-monitor-daily-drops", 1.0),
                ("GET /api/wa-monitor-drops (first page, 50)", first_page, 1.0),
            ]
            for label, path, every in cases:
                with _monitor_writing(url, cfg, every) as written:
                    _wrk(base + path, token, 3)  # warm-up
                    r = _wrk(base + path, token, 10)
                ok = r["p99_ms"] <= 50 and r["rps"] >= 1000
                load = (
                    f", while the monitor records a new drop every {every:g} s "
                    f"({written[0]} recorded)"
                    if every
                    else ""
                )
                rows.append(
                    (
                        f"{label}, {N_REVIEWS:,} reviews (wrk -t2 -c32 -d10s, same 2 CPUs){load}",
                        f"{r['rps']:,.0f} req/s, p50 {r['p50_ms']:.1f} ms, "
                        f"p99 {r['p99_ms']:.1f} ms, {r['errors']:.0f} non-2xx, "
                        f"{r['timeouts']:.0f} timed out (> 10 s)",
                        "p99 ≤ 50 ms, ≥ 1,000 req/s",
                        ("✅ pass" if ok else "❌ miss") + f" ({r['rps'] / 1000:.2f}× the rate, "
                        f"p99 {r['p99_ms'] / 50:.1f}× the bound)",
                    )
                )
            rows.append(
                (
                    "`wa-monitor serve` RSS after the API runs",
                    f"{rss_mb(proc.pid):.0f} MB "
                    f"(filling {N_REVIEWS:,} reviews took {fill_s:.0f} s)",
                    "—",
                    "measured",
                )
            )
        finally:
            stop(proc)
            log.close()
    return rows


if __name__ == "__main__":
    for row in run_api(Path(tempfile.mkdtemp(prefix="wa-bench-api-")), lambda m, s: {}):
        print(" | ".join(row))
