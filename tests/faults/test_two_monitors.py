"""Fault 5: two monitors against the same review database (two hosts, or a restart
while the old process drains)."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.faults.conftest import Backfill, References, backend_of, make_site
from tests.faults.support import (
    PROJECT_NAMES,
    State,
    cursor_floor,
    figure,
    store_max_rowid,
    wait_until,
)
from wa_monitor.sim import MessageRow, StoreWriter
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore

# The backfill store and its reference runs are built once per worker: their users share one.
pytestmark = pytest.mark.xdist_group("backfill")

LIVE_DROPS = 60  # posted twice each while both monitors run


def test_two_monitors_record_each_drop_once(
    tmp_path: Path, db_url: str, backfill: Backfill, references: References
) -> None:
    backend = backend_of(db_url)
    reference = references.get(backend)
    site = make_site(tmp_path, db_url, backfill.spread, backfill.whatsapp)
    store = site.store()
    # Same host, same environment: the same heartbeat instance, as during a restart.
    first, second = site.start("first"), site.start("second")
    jids = list(PROJECT_NAMES)
    try:
        end = store_max_rowid(site.messages_db)
        wait_until(
            lambda: cursor_floor(store) >= end, 120, "the backfill", process=first, every=0.02
        )
        wait_until(lambda: "Drop monitor started" in second.log(), 60, "the second monitor")
        backfilled = State.of(store).compare(reference.state)
        # Live traffic scanned by both at once: each drop posted, then posted again.
        base = datetime(2025, 12, 1, 8, 0, tzinfo=UTC)
        with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
            for n in range(2 * LIVE_DROPS):
                drop = f"DR{90_000_000 + n % LIVE_DROPS:08d}"
                when = base + timedelta(seconds=n)
                writer.write(
                    MessageRow(
                        uuid.uuid4().hex[:20].upper(),
                        jids[n % len(jids)],
                        "27820000001",
                        f"{drop} {'resubmitted' if n >= LIVE_DROPS else 'done'}",
                        writer.timestamp(when),
                        False,
                        "",
                        "",
                        "",
                        None,
                        None,
                        None,
                        0,
                    )
                )
        end = store_max_rowid(site.messages_db)
        wait_until(lambda: cursor_floor(store) >= end, 60, "the live posts", process=first)
        assert not second.exited(), second.log()
        exits = (first.stop(), second.stop())
        logs = first.log() + second.log()
        state = State.of(store)
    finally:
        first.ensure_dead()
        second.ensure_dead()
        store.dispose()
    posted = {f"DR{90_000_000 + n:08d}" for n in range(LIVE_DROPS)}
    live = {k: r for k, r in state.reviews.items() if k[1] in posted}
    per_review = Counter((s["project"], s["drop_number"]) for s in state.submissions.values())
    doubled_lines = [
        k for k, r in live.items() if str(r["comment"] or "").count("Resubmitted") != 1
    ]
    conflicts = logs.count("another monitor keeps recording")
    figure(
        f"fault 5 two monitors ({backend}): two `wa-monitor run` over one review database: "
        f"backfill {backfilled.text()} against one monitor's run; then {2 * LIVE_DROPS} live "
        f"posts of {LIVE_DROPS} drops: {len(live)} reviews, "
        f"{sum(per_review[k] for k in live)} submissions, {len(doubled_lines)} reviews with a "
        f"doubled resubmission line; {conflicts} give-up line(s); exits {exits}"
    )
    assert backfilled.equal, backfilled.examples
    assert len(live) == LIVE_DROPS
    assert all(per_review[k] == 2 for k in live)
    assert all(r["resubmitted"] for r in live.values())
    assert not doubled_lines, doubled_lines[:3]
    assert "Traceback" not in logs
    assert exits == (0, 0)


def test_simultaneous_first_heartbeats_of_one_instance(db_url: str) -> None:
    """Two monitors of the same instance beating for the first time at the same moment."""
    backend = backend_of(db_url)
    store = ReviewStore(db_url)
    failures: list[BaseException] = []
    rounds = 30
    try:
        for n in range(rounds):
            instance = f"prod@host-{n}"
            barrier = threading.Barrier(2)

            def beat(instance: str = instance, barrier: threading.Barrier = barrier) -> None:
                barrier.wait()
                try:
                    record_heartbeat(
                        store,
                        instance,
                        started_at=datetime.now(UTC),
                        counters={},
                        status={},
                    )
                except BaseException as exc:
                    failures.append(exc)

            threads = [threading.Thread(target=beat) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    finally:
        store.dispose()
    figure(
        f"fault 5 heartbeat race ({backend}): {rounds} rounds of two first heartbeats of one "
        f"instance at the same moment: {len(failures)} failed"
        + (
            f" ({type(failures[0]).__name__}: {str(failures[0]).splitlines()[0]})"
            if failures
            else ""
        )
    )
    assert not failures
