"""Fault 2: the review database's connections cut in the middle of a scan."""

from __future__ import annotations

import itertools
import random
import re
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from tests.faults.conftest import Backfill, References, make_site
from tests.faults.proxy import Proxy
from tests.faults.support import (
    State,
    check_against_truth,
    cursor_floor,
    figure,
    store_max_rowid,
    wait_until,
)

# The backfill store and its reference runs are built once per worker: their users share one.
pytestmark = pytest.mark.xdist_group("backfill")

CUTS = 5
OUTAGE_S = 4.0

postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _error_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " - ERROR - " in line]


def _warning_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if " - WARNING - " in line]


@postgresql_only
def test_backends_terminated_mid_scan(
    tmp_path: Path, db_url: str, backfill: Backfill, references: References
) -> None:
    reference = references.get("postgresql")
    site = make_site(tmp_path, db_url, backfill.spread, backfill.whatsapp)
    end = store_max_rowid(site.messages_db)
    url = sa.make_url(db_url)
    admin = psycopg.connect(
        url.set(database="postgres").render_as_string(hide_password=False), autocommit=True
    )
    rng = random.Random(2)
    store = site.store()
    process = site.start()
    terminated = 0
    cuts = 0
    try:
        floor = 0
        while cuts < CUTS:
            floor = wait_until(
                lambda floor=floor: (f := cursor_floor(store)) > floor and f,
                60,
                "a committed batch",
                process=process,
                every=0.002,
            )
            if floor >= end:
                break
            time.sleep(rng.uniform(0, reference.per_batch))  # a random moment in the scan
            row = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid() AND application_name = ''",
                (url.database,),
            ).fetchone()
            terminated += int(row[0]) if row else 0
            cuts += 1
        wait_until(lambda: cursor_floor(store) >= end, 120, "the scan to finish", process=process)
        assert process.stop() == 0, process.log()
        log = process.log()
        state = State.of(store)
    finally:
        process.ensure_dead()
        store.dispose()
        admin.close()
    comparison = state.compare(reference.state)
    errors = _error_lines(log)
    resumed = log.count("scanning again after")
    figure(
        f"fault 2 connection cut (postgresql): pg_terminate_backend at {cuts} random moments "
        f"of the backfill ({terminated} server connections of the monitor terminated): "
        f"{len(errors)} ERROR line(s), {resumed} 'scanning again' line(s), monitor alive "
        f"throughout, exit 0 on SIGTERM; {comparison.text()}"
    )
    for line in errors:
        print("   ", line)
    assert comparison.equal, comparison.examples
    assert not check_against_truth(state, backfill.truth)
    assert len(errors) <= cuts, errors
    assert all("terminating connection" in e or "connection" in e for e in errors), errors
    assert "Traceback" not in log


@postgresql_only
def test_database_outage_is_logged_once_retried_with_backoff_and_resumed(
    tmp_path: Path, db_url: str, backfill: Backfill, references: References
) -> None:
    reference = references.get("postgresql")
    url = sa.make_url(db_url)
    proxy = Proxy((url.host or "127.0.0.1", url.port or 5432))
    proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
    site = make_site(tmp_path, proxied, backfill.spread, backfill.whatsapp)
    end = store_max_rowid(site.messages_db)
    store = site.store()  # through the proxy as well: only used when it is up
    direct = make_site(tmp_path / "direct", db_url, None, None).store()
    process = site.start()
    try:
        wait_until(
            lambda: cursor_floor(direct) >= end // 5,
            60,
            "a fifth of the backfill",
            process=process,
            every=0.002,
        )
        at_cut = cursor_floor(direct)
        cut_at = time.monotonic()
        dropped = proxy.cut()
        while time.monotonic() - cut_at < OUTAGE_S:
            time.sleep(0.05)  # the outage itself lasts OUTAGE_S
            assert not process.exited(), process.log()
        during = cursor_floor(direct)
        proxy.restore()
        restored_at = time.monotonic()
        wait_until(lambda: cursor_floor(direct) > during, 30, "the scan to resume", process=process)
        resumed_after = time.monotonic() - restored_at
        wait_until(lambda: cursor_floor(direct) >= end, 120, "the scan to finish", process=process)
        assert process.stop() == 0, process.log()
        log = process.log()
        state = State.of(direct)
    finally:
        process.ensure_dead()
        store.dispose()
        direct.dispose()
        proxy.close()
    comparison = state.compare(reference.state)
    errors = _error_lines(log)
    warnings = _warning_lines(log)
    attempts = [t - cut_at for t in proxy.refused]
    gaps = [round(b - a, 1) for a, b in itertools.pairwise(attempts)]
    figure(
        f"fault 2 outage (postgresql): a TCP proxy between monitor and PostgreSQL cut "
        f"{dropped} connection(s) at rowid {at_cut:,} of {end:,} and refused connections for "
        f"{OUTAGE_S:g} s: {len(proxy.refused)} reconnection attempts (gaps {gaps} s), "
        f"{len(errors)} ERROR and {len(warnings)} WARNING line(s), scan resumed "
        f"{resumed_after:.1f} s after the database came back; {comparison.text()}"
    )
    for line in errors + warnings:
        print("   ", line)
    assert comparison.equal, comparison.examples
    assert "Traceback" not in log
    assert 1 <= len(errors) <= 2, errors
    assert len(warnings) <= 2, warnings  # the heartbeat's fault once, not every beat
    assert re.search(r"scanning again after \d+ failed attempt", log)
    # Backed off: far fewer attempts than a busy loop, but it kept trying.
    assert 2 <= len(proxy.refused) <= 20
