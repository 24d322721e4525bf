"""Worker: the seed-style baseline in its own process (see bench/baseline.py)."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.backfill import check
from bench.baseline import run_baseline
from bench.data import config, fixture
from bench.measure import peak_rss_mb
from wa_monitor.store.review_store import ReviewStore


def main(spec: dict[str, Any]) -> dict[str, Any]:
    fx = fixture(int(spec["n"]), int(spec.get("seed", 1)))
    cfg = config(Path(tempfile.mkdtemp(prefix="wa-bench-base-")), fx)
    url = str(spec["url"])
    result = run_baseline(fx.messages_db, url, cfg, max_rowid=spec.get("max_rowid"))
    out: dict[str, Any] = {
        "seconds": result.seconds,
        "messages": result.messages,
        "drop_posts": result.drop_posts,
        "last_rowid": result.last_rowid,
    }
    if spec.get("max_rowid") is None:
        store = ReviewStore(url)
        names = {p.group_jid: p.name for p in cfg.enabled}
        out.update(check(store, fx, names))
        store.dispose()
    out["peak_rss_mb"] = peak_rss_mb()
    return out


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
