"""Worker: one backfill (Monitor.scan, as `wa-monitor scan --once` does) in this process.

    python -m bench.backfill '{"n": 1000000, "seed": 1, "url": "...", "mode": "ours"}'

Prints one JSON line: seconds, messages, drops, correctness against SimTruth, statements
and round trips per batch, peak RSS. The review database must be fresh (schema head).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.baseline import run_baseline
from bench.data import Fixture, config, fixture
from bench.measure import StatementCounter, peak_rss_mb
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.review_store import ReviewStore


def check(store: ReviewStore, fx: Fixture, names: dict[str, str]) -> dict[str, Any]:
    """Every monitored drop present once, `resubmitted` right, nothing extra."""
    truth = {(names[jid], drop): t for (jid, drop), t in fx.monitored_drops().items()}
    got = {(r["project"], r["drop_number"]): r for r in store.reviews()}
    missing = [k for k in truth if k not in got]
    extra = [k for k in got if k not in truth]
    wrong_flag = [
        k for k, t in truth.items() if k in got and got[k]["resubmitted"] != t.resubmitted
    ]
    return {
        "expected": len(truth),
        "reviews": len(got),
        "missing": len(missing),
        "extra": len(extra),
        "wrong_resubmitted": len(wrong_flag),
        "correct": not (missing or extra or wrong_flag),
    }


def main(spec: dict[str, Any]) -> dict[str, Any]:
    fx = fixture(int(spec["n"]), int(spec.get("seed", 1)))
    work = Path(tempfile.mkdtemp(prefix="wa-bench-"))
    cfg = config(work, fx)
    names = {p.group_jid: p.name for p in cfg.enabled}
    url = str(spec["url"])
    result: dict[str, Any] = {}
    if spec.get("mode", "ours") == "baseline":
        base = run_baseline(fx.messages_db, url, cfg, max_rowid=spec.get("max_rowid"))
        result.update(
            seconds=base.seconds,
            messages=base.messages,
            drop_posts=base.drop_posts,
            last_rowid=base.last_rowid,
        )
    else:
        bridge = BridgeStore(fx.messages_db, fx.whatsapp_db)
        bridge.open()
        store = ReviewStore(url, pre_ping=False)  # as `scan --once` and `run` open it
        counter = StatementCounter(store.engine)
        per_batch: list[tuple[int, int]] = []
        record = store.record_batch

        def counted(*args: Any, **kwargs: Any) -> Any:
            before = counter.snapshot()
            plan = record(*args, **kwargs)
            after = counter.snapshot()
            per_batch.append((after[0] - before[0], len(plan.submissions)))
            return plan

        store.record_batch = counted  # type: ignore[method-assign]
        monitor = Monitor(cfg, bridge, store)
        started, cpu = time.perf_counter(), time.process_time()
        summary = monitor.scan()
        seconds = time.perf_counter() - started
        result["cpu_seconds"] = time.process_time() - cpu
        store.record_batch = record  # type: ignore[method-assign]
        result.update(
            seconds=seconds,
            messages=fx.n_messages,
            monitored_messages=summary.messages,
            candidates=summary.candidates,
            drops=summary.drops,
            batches=len(per_batch),
            statements_per_batch=sorted({s for s, _ in per_batch}),
            posts_per_batch=[p for _, p in per_batch],
        )
        if spec.get("check", True):
            result.update(check(store, fx, names))
        bridge.close()
        store.dispose()
    result["peak_rss_mb"] = peak_rss_mb()
    return result


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
