"""Worker: the cost of scanning 100 new messages on top of stores of different sizes.

Backfills a copy of each store (untimed, each into its own review database), then, round
after round, appends 100 realistic messages (the generator, a new seed) to each and times
a `scan --once`-style scan: a fresh Monitor, cursors loaded from the review database.
The sizes alternate within each round, so the machine's load hits them alike.
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
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sim import SimGroup, generate_store
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.review_store import ReviewStore

Setup = tuple[BridgeStore, ReviewStore, ProjectsConfig, Path, Path, list[SimGroup]]


def main(spec: dict[str, Any]) -> dict[str, Any]:
    setups: dict[int, Setup] = {}
    for size, url in zip(spec["sizes"], spec["urls"], strict=True):
        work = Path(tempfile.mkdtemp(prefix="wa-bench-inc-"))
        fx = fixture(int(size), int(spec.get("seed", 1))).copy_to(work / "store")
        cfg = config(work, fx)
        store = ReviewStore(str(url))
        bridge = BridgeStore(fx.messages_db, fx.whatsapp_db)
        bridge.open()
        Monitor(cfg, bridge, store).scan()
        setups[int(size)] = (bridge, store, cfg, fx.messages_db, fx.whatsapp_db, fx.groups)
    times: dict[int, list[float]] = {size: [] for size in setups}
    cpu: dict[int, list[float]] = {size: [] for size in setups}
    for round_ in range(int(spec.get("rounds", 15))):
        for size, (bridge, store, cfg, messages_db, whatsapp_db, groups) in setups.items():
            generate_store(
                messages_db,
                whatsapp_db,
                groups=groups,
                n_messages=int(spec.get("new", 100)),
                seed=1000 + round_,
                drop_rate=0.05,
            )
            monitor = Monitor(cfg, bridge, store)
            started, cpu_started = time.perf_counter(), time.process_time()
            monitor.scan()
            times[size].append(time.perf_counter() - started)
            cpu[size].append(time.process_time() - cpu_started)
    for bridge, store, *_ in setups.values():
        bridge.close()
        store.dispose()
    return {
        "median_ms": {str(s): median(t) * 1000 for s, t in times.items()},
        "cpu_median_ms": {str(s): median(t) * 1000 for s, t in cpu.items()},
        "times_ms": {str(s): [round(x * 1000, 2) for x in t] for s, t in times.items()},
        "peak_rss_mb": peak_rss_mb(),
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))), flush=True)
