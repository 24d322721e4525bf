"""Fault 1: `kill -9` of `wa-monitor run` at random moments during a large backfill."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tests.faults.conftest import Backfill, References, backend_of, make_site
from tests.faults.support import (
    State,
    check_against_truth,
    cursor_floor,
    figure,
    store_max_rowid,
    wait_until,
)
from wa_monitor.monitor.scan import DEFAULT_CHUNK

# The backfill store and its reference runs are built once per worker: their users share one.
pytestmark = pytest.mark.xdist_group("backfill")

KILLS = 20


class TransactionProbe:
    """Tells whether a monitor connection of a PostgreSQL database is inside a transaction."""

    def __init__(self, db_url: str) -> None:
        url = sa.make_url(db_url)
        self.database = url.database
        admin = url.set(drivername="postgresql", database="postgres")
        self.conn = psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True)

    def __call__(self) -> bool:
        row = self.conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL",
            (self.database,),
        ).fetchone()
        return bool(row and row[0])

    def close(self) -> None:
        self.conn.close()


def test_kill_9_at_random_moments_then_a_clean_restart(
    tmp_path: Path, db_url: str, backfill: Backfill, references: References
) -> None:
    backend = backend_of(db_url)
    reference = references.get(backend)
    site = make_site(tmp_path, db_url, backfill.spread, backfill.whatsapp)
    end = store_max_rowid(site.messages_db)
    seed = int(os.environ.get("WA_MONITOR_FAULT_SEED", random.randrange(1_000_000)))
    rng = random.Random(seed)
    store = site.store()
    probe = TransactionProbe(db_url) if backend == "postgresql" else None
    kills = during = in_txn = at_start = 0
    progress: list[int] = []
    process = None
    try:
        while kills < KILLS:
            before = cursor_floor(store)
            # At a lower priority, so that a loaded machine delays the monitor, not its killer.
            process = site.start(nice=10)
            if before >= end or rng.random() < 0.25:
                # Anywhere in start-up: settings, schema check, first heartbeat, first read.
                at_start += 1
                moment = process.started + rng.uniform(0.2, reference.first_commit)
                while time.monotonic() < moment and not process.exited():
                    time.sleep(0.002)  # the random kill moment
            else:
                # Mid-scan: once this life has committed a batch, within its next one or two.
                wait_until(
                    lambda before=before: cursor_floor(store) > before,
                    60,
                    "a committed batch",
                    process=process,
                    every=0.001,
                )
                time.sleep(rng.uniform(0, 1.5 * reference.per_batch))  # the random kill moment
            assert not process.exited(), process.log()
            if probe is not None and probe():
                in_txn += 1
            process.kill9()
            kills += 1
            after = cursor_floor(store)
            progress.append(after - before)
            if after < end:
                during += 1
        restart = site.start("clean-restart")
        try:
            restart.wait_log("Drop monitor started")
            wait_until(
                lambda: cursor_floor(store) >= end,
                120,
                "the clean restart to catch up",
                process=restart,
            )
            assert restart.stop() == 0, restart.log()
        finally:
            restart.ensure_dead()
        state = State.of(store)
    finally:
        if process is not None:
            process.ensure_dead()
        store.dispose()
        if probe is not None:
            probe.close()
    comparison = state.compare(reference.state)
    truth = check_against_truth(state, backfill.truth)
    figure(
        f"fault 1 kill -9 ({backend}): {kills}/{KILLS} kill -9 of `wa-monitor run` at random "
        f"moments (seed {seed}; {at_start} during start-up, {kills - at_start} mid-scan), "
        f"{during} while the {backfill.batches}-batch backfill was unfinished"
        + (f", {in_txn} inside an open review transaction" if probe is not None else "")
        + f"; batches committed per life {[p // DEFAULT_CHUNK for p in progress]}; "
        f"then a clean restart: {comparison.text()} against the uninterrupted run; "
        f"{'matches' if not truth else 'DIFFERS from'} the simulator's truth"
    )
    assert comparison.equal, comparison.examples
    assert not truth, truth
    assert during >= KILLS * 3 // 4, f"only {during} kills fell during the backfill: {progress}"
