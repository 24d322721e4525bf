"""Run every benchmark and write the table: `.venv/bin/python -m bench` (from the repo root).

Options: --quick (100k-message stores, fewer runs: a smoke test, not the figures),
--only NAME[,NAME] (backfill, proxy, incremental, live, api, feedback, photos,
gallery, webhooks).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.data import fixture
from bench.dbs import fresh_database, url_for
from bench.measure import median

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
Row = tuple[str, str, str, str]  # what, measured, target, verdict


def worker(module: str, spec: dict[str, Any], timeout: float = 600) -> dict[str, Any]:
    """Run `python -m bench.<module> SPEC` in a fresh process; its last line is JSON."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", f"bench.{module}", json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env=env,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bench.{module} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def verdict(ok: bool, how: str) -> str:
    return f"{'✅ pass' if ok else '❌ miss'} ({how})"


class Bench:
    def __init__(self, n: int, runs: int) -> None:
        self.n = n
        self.runs = runs
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.raw: dict[str, Any] = {}
        self.work = Path(tempfile.mkdtemp(prefix="wa-bench-"))
        self.load = os.getloadavg()

    def add(self, what: str, measured: str, target: str, result: str) -> None:
        self.rows.append((what, measured, target, result))
        print(f"  {what}: {measured}  [{target}]  {result}", flush=True)

    def backfill_runs(
        self, backend: str, runs: int, port: int | None = None, **extra: Any
    ) -> list[dict[str, Any]]:
        results = []
        for _ in range(runs):
            with fresh_database(backend, self.work) as handle:
                spec = {"n": self.n, "url": url_for(backend, handle, port), **extra}
                results.append(worker("backfill", spec))
        return results

    # -- 1, 2, 5: backfill --------------------------------------------------------------

    def backfill(self) -> None:
        for backend in ("postgresql", "sqlite"):
            results = self.backfill_runs(backend, self.runs)
            self.raw[f"backfill_{backend}"] = results
            secs = median([r["seconds"] for r in results])
            cpu = median([r.get("cpu_seconds", float("nan")) for r in results])
            rate = self.n / secs
            correct = all(r["correct"] for r in results)
            r0 = results[0]
            self.add(
                f"Backfill {self.n:,} messages, {backend} (Monitor.scan, median of {self.runs})",
                f"{secs:.2f} s = {rate:,.0f} msg/s (CPU {cpu:.2f} s, both threads)",
                "≥ 500,000 msg/s",
                verdict(rate >= 500_000, f"{rate / 500_000:.2f}× the target"),
            )
            self.add(
                f"Backfill correctness vs SimTruth, {backend}",
                f"{r0['reviews']:,}/{r0['expected']:,} reviews, {r0['missing']} missing, "
                f"{r0['extra']} extra, {r0['wrong_resubmitted']} wrong `resubmitted`",
                "all present, flags right",
                verdict(correct, f"{len(results)} runs"),
            )
            peak = max(r["peak_rss_mb"] for r in results)
            self.add(
                f"Peak RSS during the backfill, {backend}",
                f"{peak:.0f} MB",
                "≤ 150 MB",
                verdict(peak <= 150, f"{150 - peak:+.0f} MB headroom"),
            )
            stmts = sorted({s for r in results for s in r["statements_per_batch"]})
            posts = [p for p in r0["posts_per_batch"] if p]
            self.add(
                f"Statements per batch, {backend} (BEGIN/COMMIT not counted)",
                f"{'/'.join(map(str, stmts))} for batches of {min(posts, default=0)}–"
                f"{max(posts, default=0)} drop posts ({r0['batches']} batches)",
                "≤ 5, constant",
                verdict(
                    max(stmts) <= 5 + (backend == "sqlite"),
                    "+1 on SQLite: BEGIN IMMEDIATE is a statement"
                    if backend == "sqlite"
                    else "constant",
                ),
            )

    # -- 2: round trips through a 10 ms proxy -------------------------------------------

    def proxy(self) -> None:
        from bench.proxy_ctl import Proxy

        with Proxy(delay=0.010) as proxy:
            ours = []
            requests = []
            for _ in range(self.runs):
                with fresh_database("postgresql", self.work) as handle:
                    spec = {"n": self.n, "url": url_for("postgresql", handle, proxy.port)}
                    before = proxy.stats()[0]
                    r = worker("backfill", spec)
                    requests.append((proxy.stats()[0] - before, r["batches"]))
                    ours.append(r)
            ours_s = median([r["seconds"] for r in ours])
            req, batches = requests[0]
            # On the wire: the extra round trips of a scan with more batches.
            with fresh_database("postgresql", self.work) as handle:
                spec = {"n": self.n // 10, "url": url_for("postgresql", handle, proxy.port)}
                before = proxy.stats()[0]
                small = worker("backfill", {**spec, "check": False})
                small_req = proxy.stats()[0] - before
            per_batch = (req - small_req) / max(1, batches - small["batches"])
            self.add(
                f"Backfill {self.n:,} through a 10 ms-each-way proxy, ours (median of {self.runs})",
                f"{ours_s:.2f} s = {self.n / ours_s:,.0f} msg/s; {req} round trips for "
                f"{batches} batches (incl. connect, schema check, cursors, checks)",
                "—",
                "measured",
            )
            self.add(
                "Round trips per batch on the wire (counted by the proxy: extra round trips "
                f"per extra batch, {batches} vs {small['batches']} batches)",
                f"{per_batch:.1f} (BEGIN, select, one write statement, COMMIT = 4 expected; "
                "5 for a batch with a re-delivered message)",
                "≤ 5",
                verdict(per_batch <= 5, f"{per_batch:.1f} per batch"),
            )
            # The baseline: measured on the first rowids, extrapolated on its drop posts.
            sample = max(5_000, self.n // 40)
            base = []
            for _ in range(max(1, self.runs - 1)):
                with fresh_database("postgresql", self.work) as handle:
                    spec = {
                        "n": self.n,
                        "url": url_for("postgresql", handle, proxy.port),
                        "mode": "baseline",
                        "max_rowid": sample,
                    }
                    base.append(worker("baseline_worker", spec))
            b_s = median([r["seconds"] for r in base])
            b_posts = base[0]["drop_posts"]
        total_posts = self.raw.get("baseline_direct_posts")
        if total_posts is None:
            total_posts = self.baseline_direct()
        per_post = b_s / max(1, b_posts)
        extrapolated = per_post * total_posts
        self.add(
            "Seed-style baseline through the same proxy (EXTRAPOLATED)",
            f"{b_s:.1f} s for the first {sample:,} rowids ({b_posts} drop posts) → "
            f"{per_post * 1000:.0f} ms per drop post × {total_posts:,} posts ≈ "
            f"{extrapolated / 60:.0f} min",
            "—",
            "measured on a sample, extrapolated linearly in drop posts",
        )
        ratio = extrapolated / ours_s
        self.add(
            "Speed-up over the baseline, 10 ms away",
            f"{ratio:,.0f}×",
            "≥ 20×",
            verdict(ratio >= 20, f"{ratio / 20:.0f}× the target"),
        )

    def baseline_direct(self) -> int:
        with fresh_database("postgresql", self.work) as handle:
            spec = {"n": self.n, "url": url_for("postgresql", handle), "mode": "baseline"}
            r = worker("baseline_worker", spec)
        ours = median([x["seconds"] for x in self.raw.get("backfill_postgresql", [])] or [0])
        self.add(
            f"Seed-style baseline, {self.n:,} messages, PostgreSQL on localhost (1 run)",
            f"{r['seconds']:.1f} s = {self.n / r['seconds']:,.0f} msg/s "
            f"({r['drop_posts']:,} drop posts, 2 statements + 1 commit each)",
            "—",
            f"ours is {r['seconds'] / ours:.0f}× faster" if ours else "measured",
        )
        self.raw["baseline_direct_posts"] = r["drop_posts"]
        return int(r["drop_posts"])

    # -- 3: incremental -----------------------------------------------------------------

    def incremental(self) -> None:
        sizes = (self.n // 10, self.n)
        with (
            fresh_database("postgresql", self.work) as small,
            fresh_database("postgresql", self.work) as big,
        ):
            urls = [url_for("postgresql", small), url_for("postgresql", big)]
            r = worker("incremental", {"sizes": list(sizes), "urls": urls, "rounds": 15})
        self.raw["incremental"] = r
        low, high = (r["median_ms"][str(size)] for size in sizes)
        cpu_low, cpu_high = (r["cpu_median_ms"][str(size)] for size in sizes)
        change = (high - low) / low
        self.add(
            "Incremental scan of 100 new messages, PostgreSQL (median of 15, sizes alternating)",
            f"{low:.1f} ms on {sizes[0]:,} vs {high:.1f} ms on {sizes[1]:,} ({change:+.0%}); "
            f"CPU {cpu_low:.1f} vs {cpu_high:.1f} ms",
            "±25 %",
            verdict(abs(change) <= 0.25, f"{change:+.0%}"),
        )

    # -- 4, 5: live ---------------------------------------------------------------------

    def live(self) -> None:
        with fresh_database("postgresql", self.work) as handle:
            r = worker("live", {"n": 100_000, "url": url_for("postgresql", handle)})
        self.raw["live"] = r
        self.add(
            f"Live latency, `wa-monitor run` defaults, bridge write → committed row "
            f"({r['recorded']}/{r['messages']} messages)",
            f"p50 {r['p50_ms']:.0f} ms, p99 {r['p99_ms']:.0f} ms",
            "p50 ≤ 250 ms, p99 ≤ 1 s",
            verdict(
                r["p50_ms"] <= 250 and r["p99_ms"] <= 1000, f"p99 {r['p99_ms'] / 1000:.0%} of 1 s"
            ),
        )
        self.add(
            f"Idle CPU of `run` ({r['idle_window_s']:.0f} s window, /proc/<pid>/stat)",
            f"{r['idle_cpu_percent']:.2f} % of a core",
            "< 1 %",
            verdict(r["idle_cpu_percent"] < 1, f"{r['idle_cpu_percent']:.2f} %"),
        )
        self.add(
            "Idle RSS of `run` (after backfilling 100,000 messages)",
            f"{r['idle_rss_mb']:.0f} MB",
            "≤ 80 MB",
            verdict(r["idle_rss_mb"] <= 80, f"{80 - r['idle_rss_mb']:+.0f} MB headroom"),
        )

    # -- 6, 7: dashboard and feedback (built by others; measured when present) ----------

    def api(self) -> None:
        from bench.api import run_api

        for row in run_api(self.work, worker):
            self.add(*row)

    def feedback(self) -> None:
        from bench.feedback_bench import run_feedback

        for row in run_feedback(self.work, worker):
            self.add(*row)

    def webhooks(self) -> None:
        from bench.webhooks import run_webhooks

        for row in run_webhooks(self.work, worker):
            self.add(*row)

    # -- photos: worker memory, analysis, fetch throughput; the gallery on PostgreSQL --------

    def photos(self) -> None:
        from bench.photos import run_photos

        for row in run_photos(self.work, worker, quick=self.n < 1_000_000):
            self.add(*row)

    def gallery(self) -> None:
        from bench.photo_gallery import run_gallery

        for row in run_gallery(self.work, worker, quick=self.n < 1_000_000):
            self.add(*row)

    # -- output -------------------------------------------------------------------------

    def table(self, elapsed: float) -> str:
        head = [
            "# WA Monitor benchmarks",
            "",
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, "
            f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
            f"{self.n:,}-message store (50 groups, 20 monitored), took {elapsed:.0f} s; "
            f"load average {self.load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end "
            "(other work on the machine slows every figure).",
            "",
            "| Benchmark | Measured | Target | Result |",
            "|---|---|---|---|",
        ]
        body = [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in self.rows]
        notes = ["", *[f"- {n}" for n in self.notes]] if self.notes else []
        return "\n".join(head + body + notes) + "\n"


STEPS: dict[str, Callable[[Bench], None]] = {
    "backfill": Bench.backfill,
    "proxy": Bench.proxy,
    "incremental": Bench.incremental,
    "live": Bench.live,
    "api": Bench.api,
    "feedback": Bench.feedback,
    "photos": Bench.photos,
    "gallery": Bench.gallery,
    "webhooks": Bench.webhooks,
}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default=",".join(STEPS))
    args = parser.parse_args()
    n, runs = (100_000, 1) if args.quick else (1_000_000, 3)
    started = time.monotonic()
    print(f"preparing the {n:,} and {n // 10:,}-message stores (cached in bench/.data/)")
    fixture(n)
    fixture(n // 10)
    bench = Bench(n, runs)
    for name in args.only.split(","):
        print(f"== {name}", flush=True)
        try:
            STEPS[name](bench)
        except Exception as exc:  # one failed benchmark must not lose the others' figures
            bench.add(name, "not measured", "—", f"⚠️ {type(exc).__name__}: {exc}"[:300])
    text = bench.table(time.monotonic() - started)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(text)
    (RESULTS / "latest.json").write_text(json.dumps(bench.raw, indent=1, default=str))
    print()
    print(text)
    print(f"written to {RESULTS / 'latest.md'}")


if __name__ == "__main__":
    main()
