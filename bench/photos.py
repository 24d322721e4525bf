"""Photo figures: worker memory on a 200 MB video, analysis time per photo, fetch throughput.

Run by `python -m bench --only photos` (with `gallery` for the database figures). Each case
runs in its own process (`python -m bench.photos SPEC`, its last line JSON), so a peak RSS
is that case's alone:

- `memory`: the test bridge (its own process) holds a 200 MB video; a fresh process runs
  `fetch_photo` into a FolderMediaStore with a limit above the file's size, and reports its
  peak RSS (VmHWM) before and after, beside `getrusage(RUSAGE_CHILDREN)` seen from here.
- `analysis`: `core.images` thumbnail, perceptual_hash, barcodes and hints, each timed on
  drawn 12 MP and 1280×960 JPEGs (one in three with an ONT barcode sticker).
- `throughput`: photos fetched end to end from the test bridge (POST /api/download, the
  copy into its store folder, the read, SHA-256 check, the media store) — alone, and with
  the analysis and the thumbnail stored — one at a time and two at a time (MEDIA_WORKERS'
  default).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.dbs import fresh_database, pg_url
from bench.measure import peak_rss_mb
from bench.photo_kit import (
    CHAT,
    ROOT,
    bridge_process,
    draw_origin,
    draw_photo,
    ont_serial,
    serve_bridge,
)

Row = tuple[str, str, str, str]
MB = 1024 * 1024


def _verdict(ok: bool, how: str) -> str:
    return f"{'✅ pass' if ok else '❌ miss'} ({how})"


# -- 1: memory while streaming a 200 MB video ------------------------------------------------


def memory(spec: dict[str, Any]) -> dict[str, Any]:
    """The bridge holds a video of `mb` MB; a fresh process fetches it into a media folder."""
    work = Path(tempfile.mkdtemp(prefix="wa-bench-video-"))
    try:
        size = int(spec.get("mb", 200)) * MB
        origin, store, media = work / "origin", work / "bridge-store", work / "media"
        (origin / CHAT).mkdir(parents=True)
        message_id = "3EB0VIDEO200MB"
        digest = hashlib.sha256()
        block = bytearray(os.urandom(MB))
        with open(origin / CHAT / message_id, "wb") as out:
            for n in range(size // MB):
                block[:16] = (
                    b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00" if n == 0 else n.to_bytes(16)
                )
                digest.update(block)
                out.write(block)
        filename = "video_20261130_090000.mp4"
        with bridge_process(origin, store, {message_id: filename}) as url:
            child = {
                "case": "memory_fetch",
                "url": url,
                "store": str(store),
                "media": str(media),
                "message_id": message_id,
                "filename": filename,
                "sha256": digest.hexdigest(),
                "size": size,
            }
            done = subprocess.run(
                [sys.executable, "-m", "bench.photos", json.dumps(child)],
                capture_output=True, text=True, timeout=600, cwd=ROOT,
            )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(f"the fetch process failed:\n{done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        # ru_maxrss of the largest child so far (the fetch, or the bridge): kB on Linux.
        result["children_maxrss_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def memory_fetch(spec: dict[str, Any]) -> dict[str, Any]:
    from wa_monitor.monitor.photo_fetch import MediaRow, fetch_photo
    from wa_monitor.sources.bridge_media import BridgeMediaClient
    from wa_monitor.store.media import FolderMediaStore

    store = Path(spec["store"])
    store.mkdir(parents=True, exist_ok=True)
    client = BridgeMediaClient(spec["url"], store, timeout=300)
    media = FolderMediaStore(Path(spec["media"]))
    row = MediaRow(
        spec["message_id"], CHAT, spec["filename"], bytes.fromhex(spec["sha256"]), spec["size"]
    )
    before = peak_rss_mb()
    started = time.perf_counter()
    outcome = fetch_photo(row, client, media, max_bytes=spec["size"] + 64 * MB)
    seconds = time.perf_counter() - started
    return {
        "status": outcome.status,
        "reason": outcome.reason,
        "stored_bytes": outcome.size,
        "seconds": seconds,
        "peak_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
    }


# -- 2: analysis time per photo --------------------------------------------------------------


def _analyse(source: Path | io.BytesIO, posted_at: datetime) -> dict[str, float]:
    """Seconds of each `core.images` step on one photo (each opens the file itself)."""
    from wa_monitor.core import images

    times = {}
    for name, call in (
        ("thumbnail", lambda: images.thumbnail(source, "image/jpeg")),
        ("perceptual_hash", lambda: images.perceptual_hash(source, "image/jpeg")),
        ("barcodes", lambda: images.barcodes(source, "image/jpeg")),
        ("hints", lambda: images.hints(source, posted_at, "image/jpeg")),
    ):
        if isinstance(source, io.BytesIO):
            source.seek(0)
        started = time.perf_counter()
        call()
        times[name] = time.perf_counter() - started
    times["total"] = sum(times.values())
    return times


def analysis(spec: dict[str, Any]) -> dict[str, Any]:
    from wa_monitor.core import images

    work = Path(tempfile.mkdtemp(prefix="wa-bench-analysis-"))
    posted_at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    result: dict[str, Any] = {}
    try:
        for label, (width, height), count in (
            ("12mp", (4000, 3000), int(spec.get("n_large", 8))),
            ("1280", (1280, 960), int(spec.get("n_small", 30))),
        ):
            # Drawn in another process: drawing 12 MP takes far more memory than reading it.
            # The first photo warms up (imports, zxing's tables) and is not counted.
            paths = [work / f"{label}-{seed}.jpg" for seed in range(count + 1)]
            subprocess.run(
                [sys.executable, "-m", "bench.photos", json.dumps(
                    {"case": "draw", "width": width, "height": height,
                     "paths": [str(p) for p in paths]})],
                check=True, cwd=ROOT, timeout=600,
            )  # fmt: skip
            runs = [_analyse(path, posted_at) for path in paths]
            runs = runs[1:]
            found = sum(
                1
                for seed, path in enumerate(paths)
                if seed and seed % 3 == 0 and images.barcodes(path)
            )
            result[label] = {
                "photos": count,
                "megapixels": width * height / 1e6,
                "mean_bytes": statistics.mean(p.stat().st_size for p in paths[1:]),
                "barcodes_read": found,
                "barcodes_drawn": sum(1 for seed in range(1, count + 1) if seed % 3 == 0),
                **{
                    f"{step}_ms": statistics.median(r[step] for r in runs) * 1000
                    for step in runs[0]
                },
                "total_max_ms": max(r["total"] for r in runs) * 1000,
            }
        result["peak_rss_mb"] = peak_rss_mb()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def draw(spec: dict[str, Any]) -> dict[str, Any]:
    """Draw the photos `paths` (seed = position from `first_seed`; an ONT sticker on every
    third)."""
    for seed, path in enumerate(spec["paths"], start=int(spec.get("first_seed", 0))):
        serial = ont_serial(seed) if seed % 3 == 0 else None
        Path(path).write_bytes(draw_photo(spec["width"], spec["height"], seed, barcode=serial))
    return {"drawn": len(spec["paths"])}


# -- 3: fetch throughput ---------------------------------------------------------------------


def throughput(spec: dict[str, Any]) -> dict[str, Any]:
    from wa_monitor.core import images
    from wa_monitor.monitor.photo_fetch import MediaRow, fetch_photo
    from wa_monitor.sources.bridge_media import BridgeMediaClient
    from wa_monitor.store.media import FolderMediaStore

    work = Path(tempfile.mkdtemp(prefix="wa-bench-fetch-"))
    count = int(spec.get("photos", 200))
    posted_at = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    try:
        origin = work / "origin"
        drawn = draw_origin(origin, count)
        rows = [MediaRow(p.message_id, CHAT, p.filename, p.sha256, p.size) for p in drawn]
        result: dict[str, Any] = {
            "photos": count,
            "mean_bytes": statistics.mean(p.size for p in drawn),
        }
        for mode, analyse, threads in (
            ("fetch_1", False, 1),
            ("fetch_2", False, 2),
            ("full_1", True, 1),
            ("full_2", True, 2),
        ):
            store, media_dir = work / f"store-{mode}", work / f"media-{mode}"
            store.mkdir()
            media = FolderMediaStore(media_dir)
            names = {p.message_id: p.filename for p in drawn}
            # Unique filenames here: the burst-collision bug is a fault test, not a figure.
            names = {k: f"{k}-{v}" for k, v in names.items()}
            with bridge_process(origin, store, names) as url:
                client = BridgeMediaClient(url, store)

                def one(row: MediaRow, analyse: bool = analyse) -> str:
                    outcome = fetch_photo(row, client, media)  # noqa: B023 - this mode's
                    if outcome.status != "fetched" or not analyse or outcome.sha256 is None:
                        return outcome.status
                    with media.open(outcome.sha256) as stored:  # noqa: B023
                        data = io.BytesIO(stored.read())
                    thumb = images.thumbnail(data, "image/jpeg")
                    data.seek(0)
                    images.perceptual_hash(data, "image/jpeg")
                    data.seek(0)
                    images.barcodes(data, "image/jpeg")
                    data.seek(0)
                    images.hints(data, posted_at, "image/jpeg")
                    key = hashlib.sha256(thumb).hexdigest()
                    media.put(key, io.BytesIO(thumb), max_bytes=len(thumb))  # noqa: B023
                    return outcome.status

                one(rows[0])  # warm-up: connections, imports
                started = time.perf_counter()
                cpu0 = time.process_time()
                with ThreadPoolExecutor(threads) as pool:
                    statuses = list(pool.map(one, rows[1:]))
                seconds = time.perf_counter() - started
                cpu = time.process_time() - cpu0
            result[mode] = {
                "seconds": seconds,
                "per_s": (count - 1) / seconds,
                "fetched": statuses.count("fetched"),
                "cpu_s": cpu,
            }
        result["peak_rss_mb"] = peak_rss_mb()
        return result
    finally:
        shutil.rmtree(work, ignore_errors=True)


def pipeline(spec: dict[str, Any]) -> dict[str, Any]:
    """The media worker end to end: pending rows in the review database, `round()` until
    none is left; each photo claimed, fetched from the test bridge, verified, stored,
    analysed in the worker's analysis process, checked for re-use and serials, recorded."""
    import sqlalchemy as sa

    from wa_monitor.core.settings import settings_from
    from wa_monitor.monitor.media_worker import MediaWorker
    from wa_monitor.store import media_queue
    from wa_monitor.store.review_store import ReviewStore
    from wa_monitor.store.schema import group_messages

    work = Path(tempfile.mkdtemp(prefix="wa-bench-pipeline-"))
    count, workers = int(spec.get("photos", 200)), int(spec.get("workers", 2))
    try:
        origin, bridge_store = work / "origin", work / "bridge-store"
        bridge_store.mkdir()
        drawn = draw_origin(origin, count)
        store = ReviewStore(spec["url"])
        posted = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
        with store.begin() as conn:
            conn.execute(
                sa.insert(group_messages),
                [
                    {
                        "chat_jid": CHAT,
                        "message_id": p.message_id,
                        "project": "P00",
                        "sender": "27821234567",
                        "posted_at": posted,
                        "media_type": "image",
                        "filename": p.filename,
                        "file_sha256": p.sha256.hex(),
                        "file_length": p.size,
                        "drop_number": f"DR{n // 12:08d}",
                        "status": "pending",
                        "next_attempt_at": posted,
                    }
                    for n, p in enumerate(drawn)
                ],
            )
        names = {p.message_id: f"{p.message_id}-{p.filename}" for p in drawn}
        with bridge_process(origin, bridge_store, names) as url:
            settings = settings_from(
                {
                    "DATABASE_URL": spec["url"],
                    "WHATSAPP_DB_PATH": str(bridge_store / "messages.db"),
                    "BRIDGE_URL": url,
                    "MEDIA_DIR": str(work / "media"),
                    "MEDIA_WORKERS": str(workers),
                }
            )
            worker = MediaWorker(store, settings)
            started = time.perf_counter()
            cpu0 = time.process_time()
            deadline = time.monotonic() + 1200
            while media_queue.backlog(store).count("pending") and time.monotonic() < deadline:
                worker.round()
            seconds = time.perf_counter() - started
            cpu = time.process_time() - cpu0
            # The analysis process's own peak, read before the worker ends it.
            pool = getattr(worker, "_pool", None)
            analysis_pids = list(getattr(pool, "_processes", {}) or {})
            analysis_peak = max((peak_rss_mb(pid) for pid in analysis_pids), default=0.0)
            worker.close()
        backlog = media_queue.backlog(store)
        store.dispose()
        return {
            "photos": count,
            "workers": workers,
            "seconds": seconds,
            "per_s": count / seconds,
            "available": backlog.count("available"),
            "failed": backlog.count("failed"),
            "pending": backlog.count("pending"),
            "cpu_s": cpu,
            "outcomes": dict(worker.outcomes),
            "peak_rss_mb": peak_rss_mb(),
            "analysis_peak_rss_mb": analysis_peak,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- the table rows --------------------------------------------------------------------------


def run_photos(work: Path, worker: Callable[..., dict[str, Any]], quick: bool) -> list[Row]:
    rows: list[Row] = []
    mem = worker("photos", {"case": "memory", "mb": 200})
    peak = mem["peak_rss_mb"]
    rows.append(
        (
            "Worker memory while streaming a 200 MB video (fetch_photo from the test bridge "
            "into the media folder, a fresh process)",
            f"peak RSS {peak:.0f} MB (before the fetch {mem['peak_before_mb']:.0f} MB; "
            f"largest child by getrusage {mem['children_maxrss_mb']:.0f} MB); {mem['status']}, "
            f"{(mem['stored_bytes'] or 0) / MB:.0f} MB stored in {mem['seconds']:.1f} s",
            "≤ 150 MB",
            _verdict(peak <= 150 and mem["status"] == "fetched", f"{150 - peak:+.0f} MB headroom"),
        )
    )
    spec = {"case": "analysis"} | ({"n_large": 3, "n_small": 10} if quick else {})
    an = worker("photos", spec)
    for label, what in (("12mp", "12 MP (4000×3000)"), ("1280", "1280×960")):
        r = an[label]
        rows.append(
            (
                f"Analysis per photo, {what} drawn JPEG ({r['mean_bytes'] / MB:.1f} MB; median "
                f"of {r['photos']}; core.images, each step opens the file)",
                f"{r['total_ms']:.0f} ms: thumbnail {r['thumbnail_ms']:.0f}, pHash "
                f"{r['perceptual_hash_ms']:.0f}, barcodes {r['barcodes_ms']:.0f}, hints "
                f"{r['hints_ms']:.0f} ms (slowest {r['total_max_ms']:.0f} ms); "
                f"{r['barcodes_read']}/{r['barcodes_drawn']} ONT stickers read; peak RSS of "
                f"the process analysing both sizes {an['peak_rss_mb']:.0f} MB",
                "—",
                "measured",
            )
        )
    tp = worker("photos", {"case": "throughput", "photos": 50 if quick else 200})
    for mode, what in (
        ("fetch_1", "download + verify + store, one at a time"),
        ("fetch_2", "download + verify + store, two at a time"),
        ("full_1", "+ thumbnail, pHash, barcodes, hints, thumbnail stored; one at a time"),
        ("full_2", "+ analysis as above; two at a time (MEDIA_WORKERS=2, threads)"),
    ):
        r = tp[mode]
        rows.append(
            (
                f"Photo fetch throughput, test bridge in its own process, {tp['photos'] - 1} "
                f"photos of 1280×960 ({tp['mean_bytes'] / 1024:.0f} kB): {what}",
                f"{r['per_s']:.1f} photos/s ({r['fetched']} fetched in {r['seconds']:.2f} s, "
                f"CPU {r['cpu_s']:.2f} s)",
                "—",
                "measured",
            )
        )
    with fresh_database("postgresql", work) as name:
        r = worker(
            "photos", {"case": "pipeline", "url": pg_url(name), "photos": 50 if quick else 300}
        )
    rows.append(
        (
            f"Media worker end to end, PostgreSQL, {r['photos']} pending photos of 1280×960 "
            f"(claim, fetch, verify, store, analysis process, re-use and serial checks, "
            f"record; MEDIA_WORKERS={r['workers']})",
            f"{r['per_s']:.1f} photos/s ({r['available']} available, {r['failed']} failed in "
            f"{r['seconds']:.1f} s; worker CPU {r['cpu_s']:.1f} s; peak RSS {r['peak_rss_mb']:.0f} "
            f"MB, analysis process {r['analysis_peak_rss_mb']:.0f} MB)",
            "—",
            "measured",
        )
    )
    d = worker("photo_demo", {}, 1800)
    o = d["open_drop"]
    counts = d["photos_per_drop"]
    rows.append(
        (
            f"Opening a drop on the demo data (`wa-monitor demo`'s 2,000 messages, "
            f"{d['statuses']['available']} photos fetched by the media worker, SQLite, `serve`): "
            f"gallery data, then all thumbnails six at a time, for the {o['drops']} drops of "
            f"{min(counts)}–{max(counts)} photos",
            f"median {o['p50_ms']:.0f} ms, slowest {o['max_ms']:.0f} ms",
            "≤ 300 ms",
            _verdict(o["max_ms"] <= 300, f"slowest {o['max_ms'] / 300:.0%} of the bound"),
        )
    )
    live = {}
    for backlog in (0, 400 if quick else 2000):
        with fresh_database("postgresql", work) as name:
            spec = {"url": pg_url(name), "backlog": backlog, "real": 150 if quick else 600}
            live[backlog] = worker("photo_live", spec, 1800)
    idle, busy = live[0], live[max(live)]
    change = busy["p99_ms"] / idle["p99_ms"] - 1
    rows.append(
        (
            f"Live latency, `wa-monitor run` defaults, while the media worker fetches a backlog "
            f"of {busy['backlog']:,} photos ({busy['real']} with files, the rest expired; "
            f"{busy['settled_in_window']} settled, {busy['fetched_in_window']} fetched during "
            f"the {busy['window_s']:.0f} s of writes)",
            f"p50 {busy['p50_ms']:.0f} ms, p99 {busy['p99_ms']:.0f} ms ({busy['recorded']}/"
            f"{busy['messages']}) vs p50 {idle['p50_ms']:.0f} ms, p99 {idle['p99_ms']:.0f} ms "
            f"with no backlog; RSS {busy['rss_mb']:.0f} vs {idle['rss_mb']:.0f} MB",
            "p50 ≤ 250 ms, p99 ≤ 1 s, as without photos",
            _verdict(
                busy["p50_ms"] <= 250
                and busy["p99_ms"] <= 1000
                and busy["recorded"] == busy["messages"],
                f"p99 {change:+.0%} against no backlog",
            ),
        )
    )
    return rows


CASES: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "memory": memory,
    "memory_fetch": memory_fetch,
    "analysis": analysis,
    "draw": draw,
    "throughput": throughput,
    "pipeline": pipeline,
}


if __name__ == "__main__":
    given = json.loads(sys.argv[1])
    if given["case"] == "bridge":
        serve_bridge(given)
    else:
        print(json.dumps(CASES[given["case"]](given)), flush=True)
