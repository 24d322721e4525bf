"""Fault 8: SIGTERM in the middle of a scan."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

from tests.faults.conftest import (
    Backfill,
    References,
    Scratch,
    backend_of,
    expected_up_to,
    make_site,
)
from tests.faults.support import State, cursor_floor, figure, store_max_rowid, wait_until

SIGTERMS = 3


def test_sigterm_mid_scan_commits_or_rolls_back_the_batch_whole_and_exits_0(
    tmp_path: Path, db_url: str, backfill: Backfill, references: References, scratch: Scratch
) -> None:
    backend = backend_of(db_url)
    reference = references.get(backend)
    site = make_site(tmp_path, db_url, backfill.spread, backfill.whatsapp)
    end = store_max_rowid(site.messages_db)
    rng = random.Random(8)
    store = site.store()
    exits: list[int | None] = []
    latencies: list[float] = []
    checked: list[int] = []
    try:
        for n in range(SIGTERMS):
            before = cursor_floor(store)
            process = site.start()
            # The backfill keeps both CPUs busy; at the lowest priority the monitor cannot
            # starve this test's watch for its first batch (and run past the end meanwhile).
            os.setpriority(os.PRIO_PROCESS, process.pid, 19)
            wait_until(
                lambda before=before: cursor_floor(store) > before,
                60,
                "a committed batch",
                process=process,
                every=0.001,
            )
            time.sleep(rng.uniform(0, 2 * reference.per_batch))  # a random moment mid-scan
            signalled = time.monotonic()
            exits.append(process.stop())
            latencies.append(time.monotonic() - signalled)
            log = process.log()
            assert "SIGTERM received: finishing the batch in hand" in log
            assert "Traceback" not in log
            floor = cursor_floor(store)
            assert floor < end, "the scan finished before the signal: nothing was in hand"
            # Every row up to the cursor recorded, and nothing beyond it.
            expected = expected_up_to(backfill, floor, scratch.url(backend), tmp_path / f"x{n}")
            comparison = State.of(store).compare(expected)
            assert comparison.equal, (floor, comparison.text(), comparison.examples)
            checked.append(floor)
        restart = site.start("clean-restart")
        try:
            restart.wait_log("Drop monitor started")
            wait_until(lambda: cursor_floor(store) >= end, 120, "the rest", process=restart)
            exits.append(restart.stop())
        finally:
            restart.ensure_dead()
        final = State.of(store).compare(reference.state)
    finally:
        store.dispose()
    figure(
        f"fault 8 SIGTERM ({backend}): {SIGTERMS} SIGTERMs at random moments mid-scan; exit "
        f"statuses {exits}, stopped {max(latencies) * 1000:.0f} ms after the signal at most; "
        f"after each, the database held exactly the rows up to the committed cursor "
        f"(rowids {', '.join(f'{c:,}' for c in checked)}: no half batch); after a restart, "
        f"{final.text()} against the uninterrupted run"
    )
    assert exits == [0] * (SIGTERMS + 1)
    assert final.equal, final.examples
