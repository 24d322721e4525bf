"""Gallery figures on PostgreSQL: 1,000,000 reviews, 5,000,000 group_messages rows, `serve`.

The rows are bulk-loaded with COPY (psycopg's `cursor.copy`) into a fresh database at the
schema head; the secondary indexes are dropped for the load and rebuilt after it with the
migrations' own definitions (read back from pg_indexes), then ANALYZE. Shape: a quarter
of the reviews have 15 photos and 2 texts (some over two rounds, most photos assigned to
a step, 1 % flagged as re-used), an eighth have 3 photos and a text, the rest none (drops
from before photos were fetched); 250,000 rows are linked to no drop. 95 % of the photos
are available, the rest pending, failed or unavailable.

Then `wa-monitor serve` (a subprocess, as deployed) answers, one request at a time over a
kept connection, `GET /api/wa-monitor-drops/{id}/photos` for random drops with photos; and
"opening a drop": its gallery data, then its 15 thumbnails (`thumbUrl`) six at a time as a
browser fetches them, for 20 drops whose thumbnails are real files in the media folder.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg

from bench.dbs import fresh_database, pg_url
from bench.measure import percentile, rss_mb, stop
from bench.photo_kit import draw_photo, ont_serial
from wa_monitor.core.steps import STEP_COLUMNS

Row = tuple[str, str, str, str]
N_PROJECTS = 20
OPENED_DROPS = 20  # drops whose 15 thumbnails are real files
PHOTOS_PER_FULL_DROP = 15

_REVIEW_COLUMNS = (
    "id, drop_number, user_name, project, whatsapp_message_date, last_message_date, "
    "review_date, resubmitted, submitted_by, created_at, updated_at"
)
_MESSAGE_COLUMNS = (
    "id, chat_jid, message_id, project, sender, sender_name, posted_at, content, media_type, "
    "filename, file_sha256, file_length, drop_number, review_id, round, post_message_id, "
    "link_reason, step, status, attempts, next_attempt_at, last_error, fetched_at, sha256, "
    "size, content_type, width, height, thumb_sha256, phash, phash_b0, phash_b1, phash_b2, "
    "phash_b3, duplicate_of, barcodes, hints, created_at, updated_at"
)
N = r"\N"


def _projects_yaml() -> str:
    lines = ["timezone: Africa/Johannesburg", "projects:"]
    for p in range(N_PROJECTS):
        lines += [
            f"  - name: P{p:02d}",
            "    enabled: true",
            f'    group_jid: "2782000{p:04d}-1600000000@g.us"',
            f'    description: "Bench group {p}"',
        ]
    return "\n".join(lines) + "\n"


class _Clock:
    """Epoch seconds as COPY's text for a UTC instant, fast: days and times of day cached."""

    def __init__(self) -> None:
        self.days: dict[int, str] = {}
        self.hms = [
            f"{h:02d}:{m:02d}:{s:02d}" for h in range(24) for m in range(60) for s in range(60)
        ]

    def __call__(self, epoch: int) -> str:
        day, second = divmod(epoch, 86400)
        text = self.days.get(day)
        if text is None:
            text = self.days[day] = (date(1970, 1, 1) + timedelta(days=day)).isoformat()
        return f"{text} {self.hms[second]}+00"


def _review_lines(n_reviews: int, ids: list[str], now: datetime) -> Iterator[str]:
    clock, now_s = _Clock(), int(now.timestamp())
    for i in range(n_reviews):
        epoch = now_s - (i % 365) * 86400 - (i * 7919) % 86400
        ts = clock(epoch)
        yield (
            f"{ids[i]}\tDR{i:08d}\tInstaller {i % 500}\tP{i % N_PROJECTS:02d}\t{ts}\t{ts}\t"
            f"{ts[:10]}\t{'t' if i % 5 == 0 else 'f'}\t2782{i % 9973:07d}\t{ts}\t{ts}\n"
        )


def _photo_fields(gid: int, sha: str, thumb: str, size: int, real: bool) -> str:
    """The fetch columns of a media row, status … hints, as COPY text."""
    rest = f"\t{N}" * 14  # nothing of what the file showed: it was not fetched
    if not real:
        kind = gid % 100
        if kind == 97:
            return f"pending\t1\t2026-12-01 10:00:00+00\t{N}\t{N}{rest}"
        if kind == 98:
            return f"failed\t8\t{N}\tthe file does not hash to file_sha256\t{N}{rest}"
        if kind == 99:
            return f"unavailable\t1\t{N}\tWhatsApp no longer has this media\t{N}{rest}"
    bits = (gid * 0x9E3779B97F4A7C15) % 2**64
    duplicate = str(gid - 1000) if gid % 100 == 13 and gid > 1000 else N
    barcodes = f'[{{"format": "Code 128", "text": "{ont_serial(gid)}"}}]' if gid % 15 == 7 else "[]"
    hints = '[{"kind": "blurred", "message": "looks blurred"}]' if gid % 20 == 3 else "[]"
    return (
        f"available\t1\t{N}\t{N}\t2026-12-01 10:00:00+00\t{sha}\t{size}\timage/jpeg\t1280\t"
        f"960\t{thumb}\t{bits:016x}\t{bits >> 48}\t{(bits >> 32) & 0xFFFF}\t"
        f"{(bits >> 16) & 0xFFFF}\t{bits & 0xFFFF}\t{duplicate}\t{barcodes}\t{hints}"
    )


# (position, is media, round, step) of each row of a drop's thread, by kind of drop.
Layout = list[tuple[int, bool, int, str]]


def _layout(full: bool, resubmitted: bool, steps: bool) -> Layout:
    if not full:
        return [(0, True, 0, N), (1, True, 0, N), (2, True, 0, N), (3, False, 0, N)]
    rows = [
        (j, True, 1 if resubmitted and j >= 10 else 0,
         STEP_COLUMNS[j] if steps and j < len(STEP_COLUMNS) else N)
        for j in range(PHOTOS_PER_FULL_DROP)
    ]  # fmt: skip
    return [*rows, (16, False, 0, N), (17, False, 0, N)]


def _message_lines(
    n_reviews: int,
    n_unlinked: int,
    ids: list[str],
    now: datetime,
    real: list[tuple[str, str, int]],
    opened: set[int],
) -> Iterator[str]:
    """The group_messages rows as COPY text: each drop's thread, then rows linked to none."""
    clock, now_s = _Clock(), int(now.timestamp())
    created = clock(now_s)
    tail = f"\t{created}\t{created}\n"
    text_rest = f"\t{N}\t0" + f"\t{N}" * 17  # status (none for a text), attempts, …
    layouts = {
        (full, resub, steps): _layout(full, resub, steps)
        for full in (True, False)
        for resub in (True, False)
        for steps in (True, False)
    }
    gid = 0
    for i in range(n_reviews + n_unlinked):
        linked = i < n_reviews
        if linked and i % 4 == 0:
            layout = layouts[True, i % 8 == 0, i % 3 != 0]
        elif linked and i % 8 == 1:
            layout = layouts[False, False, False]
        elif linked:
            continue
        else:
            layout = [(0, True, 0, N)]
        project = i % N_PROJECTS
        chat = f"2782000{project:04d}-1600000000@g.us"
        base = now_s - (i % 365) * 86400 - (i * 7919) % 86400
        who = f"P{project:02d}\t2782{i % 9973:07d}\tInstaller"
        random_hex = os.urandom(64 * len(layout)).hex()
        for n, (j, media, rnd, step) in enumerate(layout):
            gid += 1
            head = f"{gid}\t{chat}\t3EB0{gid:016X}\t{who}\t{clock(base + 20 * j)}\t"
            if linked:
                reason = "caption" if j == 0 else "after"
                link = f"DR{i:08d}\t{ids[i]}\t{rnd}\t3EB0POST{i:012d}{rnd}\t{reason}\t{step}"
            else:
                link = f"{N}\t{N}\t{N}\t{N}\tnone\t{N}"
            if not media:
                yield f"{head}on site, box fitted\ttext\t{N}\t{N}\t{N}\t{link}{text_rest}{tail}"
                continue
            if i in opened:
                sha, thumb, size = real[j % len(real)]
            else:
                sha = random_hex[128 * n : 128 * n + 64]
                thumb, size = random_hex[128 * n + 64 : 128 * n + 128], 250_000
            fields = _photo_fields(gid, sha, thumb, size, i in opened)
            name = f"image_20261130_{gid % 86400:06d}.jpg"
            yield f"{head}{N}\timage\t{name}\t{sha}\t{size}\t{link}\t{fields}{tail}"


def _copy(conn: psycopg.Connection[Any], table: str, columns: str, lines: Iterator[str]) -> int:
    count = 0
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        chunk: list[str] = []
        for line in lines:
            chunk.append(line)
            if len(chunk) == 20_000:
                copy.write("".join(chunk))
                count += len(chunk)
                chunk.clear()
        if chunk:
            copy.write("".join(chunk))
            count += len(chunk)
    return count


def _secondary_indexes(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str]]:
    """The table's indexes other than its primary key and unique constraints."""
    rows = conn.execute(
        "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.tablename = %s AND NOT "
        "EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
        (table,),
    ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def load(
    url: str, n_reviews: int, n_unlinked: int, real: list[tuple[str, str, int]]
) -> dict[str, Any]:
    """Fill the database at `url`; the ids of drops with photos, timings of each phase."""
    now = datetime.now(UTC).replace(microsecond=0)
    rng = random.Random(11)
    ids = [str(uuid.UUID(bytes=rng.randbytes(16), version=4)) for _ in range(n_reviews)]
    opened = set(range(0, 4 * OPENED_DROPS, 4))
    times: dict[str, float] = {}
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SET synchronous_commit = off")
        indexes = []
        for table in ("qa_photo_reviews", "group_messages"):
            for name, definition in _secondary_indexes(conn, table):
                indexes.append(definition)
                conn.execute(f'DROP INDEX "{name}"')
        conn.commit()
        started = time.monotonic()
        reviews = _copy(
            conn, "qa_photo_reviews", _REVIEW_COLUMNS, _review_lines(n_reviews, ids, now)
        )
        conn.commit()
        times["copy_reviews_s"] = time.monotonic() - started
        started = time.monotonic()
        lines = _message_lines(n_reviews, n_unlinked, ids, now, real, opened)
        messages = _copy(conn, "group_messages", _MESSAGE_COLUMNS, lines)
        conn.execute(
            "SELECT setval(pg_get_serial_sequence('group_messages', 'id'), "
            "(SELECT max(id) FROM group_messages))"
        )
        conn.commit()
        times["copy_messages_s"] = time.monotonic() - started
        started = time.monotonic()
        for definition in indexes:
            conn.execute(definition)
        conn.commit()
        times["indexes_s"] = time.monotonic() - started
        started = time.monotonic()
        conn.autocommit = True
        conn.execute("VACUUM ANALYZE qa_photo_reviews")
        conn.execute("VACUUM ANALYZE group_messages")
        times["analyze_s"] = time.monotonic() - started
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()
    with_photos = [ids[i] for i in range(n_reviews) if i % 4 == 0 or i % 8 == 1]
    return {
        "reviews": reviews,
        "messages": messages,
        "database_mb": (size[0] if size else 0) / 1024 / 1024,
        "with_photos": with_photos,
        "full": [ids[i] for i in range(0, n_reviews, 4)],
        "opened": [ids[i] for i in sorted(opened)],
        **times,
    }


def _real_photos(media_dir: Path) -> list[tuple[str, str, int]]:
    """15 photos and their thumbnails, stored in the media folder: (sha256, thumb, size)."""
    from wa_monitor.core import images
    from wa_monitor.store.media import FolderMediaStore

    media = FolderMediaStore(media_dir)
    out = []
    for seed in range(PHOTOS_PER_FULL_DROP):
        data = draw_photo(1280, 960, 1000 + seed)
        thumb = images.thumbnail(io.BytesIO(data), "image/jpeg")
        sha, thumb_sha = hashlib.sha256(data).hexdigest(), hashlib.sha256(thumb).hexdigest()
        media.put(sha, io.BytesIO(data), max_bytes=len(data))
        media.put(thumb_sha, io.BytesIO(thumb), max_bytes=len(thumb))
        out.append((sha, thumb_sha, len(data)))
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(work: Path, url: str, media_dir: Path) -> tuple[subprocess.Popen[bytes], str, Any]:
    config = work / "projects.yaml"
    config.write_text(_projects_yaml())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WA_MONITOR", "DATABASE"))}
    env.update(
        DATABASE_URL=url,
        SECRET_KEY="bench-" + "x" * 40,
        WA_MONITOR_CONFIG=str(config),
        MEDIA_DIR=str(media_dir),
    )
    port = _free_port()
    log = open(work / "serve.log", "w")  # noqa: SIM115 - closed by the caller
    exe = Path(sys.executable).with_name("wa-monitor")
    proc = subprocess.Popen(
        [str(exe), "serve", "--port", str(port)], env=env, stdout=log, stderr=log, cwd=work
    )
    return proc, f"http://127.0.0.1:{port}", log


def _wait_ready(client: httpx.Client, proc: subprocess.Popen[bytes], work: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            if client.get("/api/wa-monitor-daily-drops").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"serve did not start; see {work / 'serve.log'}")
        time.sleep(0.3)


def _timed_get(client: httpx.Client, path: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = client.get(path)
    return time.perf_counter() - started, response


def main(spec: dict[str, Any]) -> dict[str, Any]:
    from wa_monitor.store.review_store import ReviewStore
    from wa_monitor.store.users import add_user, create_token

    n_reviews = int(spec.get("reviews", 1_000_000))
    n_unlinked = int(spec.get("unlinked", n_reviews // 4))
    requests = int(spec.get("requests", 2000))
    work = Path(tempfile.mkdtemp(prefix="wa-bench-gallery-"))
    media_dir = work / "media"
    result: dict[str, Any] = {"load_average_start": os.getloadavg()[0]}
    real = _real_photos(media_dir)
    with fresh_database("postgresql", work) as name:
        url = pg_url(name)
        started = time.monotonic()
        loaded = load(url, n_reviews, n_unlinked, real)
        result["load_s"] = time.monotonic() - started
        result.update({k: v for k, v in loaded.items() if not isinstance(v, list)})
        store = ReviewStore(url)
        add_user(store, "bench", "bench-password-123456", "viewer")
        _, token = create_token(store, "bench", "gallery")
        store.dispose()
        proc, base, log = _serve(work, url, media_dir)
        headers = {"Authorization": f"Bearer {token}"}
        try:
            with httpx.Client(base_url=base, headers=headers, timeout=30) as client:
                _wait_ready(client, proc, work)
                rng = random.Random(3)
                for drop in rng.sample(loaded["with_photos"], 200):  # warm-up
                    client.get(f"/api/wa-monitor-drops/{drop}/photos").raise_for_status()
                for label, pool in (("any", loaded["with_photos"]), ("full", loaded["full"])):
                    times, photos = [], 0
                    for drop in rng.sample(pool, requests):
                        seconds, response = _timed_get(
                            client, f"/api/wa-monitor-drops/{drop}/photos"
                        )
                        response.raise_for_status()
                        times.append(seconds)
                        photos += len(response.json()["data"])
                    result[f"gallery_{label}"] = {
                        "requests": requests,
                        "photos_mean": photos / requests,
                        "p50_ms": percentile(times, 50) * 1000,
                        "p99_ms": percentile(times, 99) * 1000,
                        "max_ms": max(times) * 1000,
                    }
                result["open_drop"] = _open_drops(base, headers, loaded["opened"])
            result["serve_rss_mb"] = rss_mb(proc.pid)
        finally:
            stop(proc)
            log.close()
    result["load_average_end"] = os.getloadavg()[0]
    shutil.rmtree(work, ignore_errors=True)
    return result


def _open_drops(base: str, headers: dict[str, str], drops: list[str]) -> dict[str, Any]:
    """Each drop opened once: its gallery data, then every thumbnail, six at a time."""
    limits = httpx.Limits(max_connections=6, max_keepalive_connections=6)
    totals, thumbs_seen = [], 0
    with (
        httpx.Client(base_url=base, headers=headers, timeout=30, limits=limits) as client,
        ThreadPoolExecutor(6) as pool,
    ):
        client.get("/api/wa-monitor-daily-drops").raise_for_status()
        for drop in drops:
            started = time.perf_counter()
            answer = client.get(f"/api/wa-monitor-drops/{drop}/photos")
            answer.raise_for_status()
            urls = [p["thumbUrl"] for p in answer.json()["data"] if p["thumbUrl"]]
            sizes = list(pool.map(lambda u: len(client.get(u).raise_for_status().content), urls))
            totals.append(time.perf_counter() - started)
            thumbs_seen = max(thumbs_seen, sum(1 for s in sizes if s))
    return {
        "drops": len(drops),
        "thumbnails": thumbs_seen,
        "p50_ms": percentile(totals, 50) * 1000,
        "max_ms": max(totals) * 1000,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)


def run_gallery(work: Path, worker: Callable[..., dict[str, Any]], quick: bool) -> list[Row]:
    """The table rows: gallery p99 on the big database, and opening a drop of 15 photos."""
    spec = {"reviews": 100_000, "requests": 500} if quick else {"reviews": 1_000_000}
    r = worker("photo_gallery", spec, 3600)
    size = (
        f"{r['reviews']:,} reviews, {r['messages']:,} group_messages rows, PostgreSQL "
        f"({r['database_mb'] / 1024:.1f} GB; COPY and indexes took {r['load_s']:.0f} s)"
    )
    rows: list[Row] = []
    for key, which in (
        ("gallery_any", "random drops with photos"),
        ("gallery_full", "random drops of 15 photos"),
    ):
        g = r[key]
        rows.append(
            (
                f"GET /api/wa-monitor-drops/{{id}}/photos, {size}: {which} ({g['photos_mean']:.1f} "
                f"photos each), `serve`, one request at a time ({g['requests']:,})",
                f"p50 {g['p50_ms']:.1f} ms, p99 {g['p99_ms']:.1f} ms, max {g['max_ms']:.0f} ms",
                "p99 ≤ 50 ms",
                ("✅ pass" if g["p99_ms"] <= 50 else "❌ miss")
                + f" (p99 {g['p99_ms'] / 50:.1f}× the bound)",
            )
        )
    o = r["open_drop"]
    rows.append(
        (
            f"Opening a drop on the same database: its gallery data, then its {o['thumbnails']} "
            f"thumbnails six at a time (as a browser), {o['drops']} drops",
            f"median {o['p50_ms']:.0f} ms, slowest {o['max_ms']:.0f} ms",
            "≤ 300 ms",
            ("✅ pass" if o["max_ms"] <= 300 else "❌ miss")
            + f" (slowest {o['max_ms'] / 300:.1f}× the bound)",
        )
    )
    rows.append(
        (
            "`wa-monitor serve` RSS after the gallery runs",
            f"{r['serve_rss_mb']:.0f} MB (load: reviews {r['copy_reviews_s']:.0f} s, messages "
            f"{r['copy_messages_s']:.0f} s, indexes {r['indexes_s']:.0f} s, VACUUM ANALYZE "
            f"{r['analyze_s']:.0f} s; load average {r['load_average_start']:.1f} → "
            f"{r['load_average_end']:.1f})",
            "—",
            "measured",
        )
    )
    return rows
