"""Worker: the cost of scanning 100 new messages on top of a store of N messages.

Backfills a copy of the N-message store (untimed), then, several times, appends 100
realistic messages (the generator, a new seed) and times a `scan --once`-style scan:
a fresh Monitor, cursors loaded from the review database.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.data import config, fixture
from bench.measure import median, peak_rss_mb
from wa_monitor.bridge import BridgeStore
from wa_monitor.monitor import Monitor
from wa_monitor.simulate import generate_store
from wa_monitor.store import ReviewStore


def main(spec: dict[str, Any]) -> dict[str, Any]:
    fx = fixture(int(spec["n"]), int(spec.get("seed", 1)))
    work = Path(tempfile.mkdtemp(prefix="wa-bench-inc-"))
    fx = fx.copy_to(work / "store")
    cfg = config(work, fx)
    store = ReviewStore(str(spec["url"]))
    bridge = BridgeStore(fx.messages_db, fx.whatsapp_db)
    bridge.open()
    Monitor(cfg, bridge, store).scan()
    times: list[float] = []
    messages: list[int] = []
    for round_ in range(int(spec.get("rounds", 7))):
        generate_store(
            fx.messages_db,
            fx.whatsapp_db,
            groups=fx.groups,
            n_messages=int(spec.get("new", 100)),
            seed=1000 + round_,
            drop_rate=0.05,
        )
        monitor = Monitor(cfg, bridge, store)
        started = time.perf_counter()
        summary = monitor.scan()
        times.append(time.perf_counter() - started)
        messages.append(summary.messages)
    bridge.close()
    store.dispose()
    return {
        "store_messages": fx.n_messages,
        "median_ms": median(times) * 1000,
        "times_ms": [round(t * 1000, 2) for t in times],
        "monitored_new_messages": messages,
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
