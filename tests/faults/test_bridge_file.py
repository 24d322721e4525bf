"""Fault 4: messages.db missing at start, deleted and re-created while running (re-pairing),
truncated, corrupt."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from tests.faults.bridgeio import message, post
from tests.faults.conftest import make_site
from tests.faults.support import PROJECT_NAMES, Site, figure, wait_until
from tests.helpers import submissions
from wa_monitor.sim import StoreWriter
from wa_monitor.store.heartbeats import read_heartbeats

VELO = list(PROJECT_NAMES)[1]
OBSERVE_S = 3.0  # how long each broken state is left in place

postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _lines(log: str, since: int) -> list[str]:
    return log.splitlines()[since:]


def _remove(site: Site) -> None:
    for suffix in ("", "-journal"):
        path = Path(f"{site.messages_db}{suffix}")
        if path.exists():
            path.unlink()


@postgresql_only
def test_missing_recreated_truncated_and_corrupt_store(tmp_path: Path, db_url: str) -> None:
    site = make_site(tmp_path, db_url, None, None)
    store = site.store()
    figures: list[str] = []

    def observe(what: str, before: int | None = None) -> list[str]:
        """Leave the broken state for OBSERVE_S and return the log lines it caused."""
        if before is None:
            before = len(process.log().splitlines())
        started = time.monotonic()
        while time.monotonic() - started < OBSERVE_S:
            assert not process.exited(), f"{what}: the monitor exited\n{process.log()}"
            time.sleep(0.1)  # the injected state lasts OBSERVE_S
        caused = _lines(process.log(), before)
        errors = [line for line in caused if " - ERROR - " in line]
        figures.append(
            f"{what}: {len(caused)} log line(s) in {OBSERVE_S:g} s ({len(errors)} ERROR)"
        )
        for line in errors[:2]:
            print("   ", line)
        return caused

    def drops() -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in submissions(store):
            counts[s["drop_number"]] = counts.get(s["drop_number"], 0) + 1
        return counts

    # 1. No messages.db at start (the bridge not paired yet).
    process = site.start()
    try:
        process.wait_log("messages.db not found")
        banner = len([line for line in process.log().splitlines() if " - INFO - " in line])
        caused = observe("missing at start (start-up banner included)", 0)
        assert len([line for line in caused if "ERROR" in line]) == 1
        assert len(caused) <= banner + 2, caused
        beat = wait_until(
            lambda: next(
                (b for b in read_heartbeats(store) if not b["status"]["bridge"]["readable"]), None
            ),
            10,
            "a heartbeat that reports the unreadable store",
        )
        figures.append(f"heartbeat says: {beat['status']['bridge']['error'][-60:]!r}")
        with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
            first = message(writer, VELO, "DR20000001 first drop", 0)
            writer.write(first)
        appeared = time.monotonic()
        wait_until(lambda: "DR20000001" in drops(), 30, "the store to be read", process=process)
        figures.append(f"the file appeared: read after {time.monotonic() - appeared:.2f} s")
        post(site.messages_db, site.whatsapp_db, VELO, "DR20000002 second drop")
        wait_until(lambda: "DR20000002" in drops(), 30, "the second drop", process=process)

        # 2. Re-pairing: messages.db deleted, then re-created; history sync brings the old
        #    message back (same id) with a new drop.
        _remove(site)
        process.wait_log("messages.db not found")
        observe("deleted while running")
        with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
            writer.write(first)
            writer.write(message(writer, VELO, "DR20000003 after re-pairing", 5))
        wait_until(lambda: "DR20000003" in drops(), 30, "the re-created store", process=process)
        assert "messages.db was re-created" in process.log()

        # 3. Truncated in place to half its size.
        good = tmp_path / "good.db"
        shutil.copy(site.messages_db, good)
        size = site.messages_db.stat().st_size
        os.truncate(site.messages_db, size // 2)
        post_truncate = observe("truncated to half")
        shutil.copy(good, tmp_path / "next.db")
        post(tmp_path / "next.db", site.whatsapp_db, VELO, "DR20000004 after the truncation")
        os.replace(tmp_path / "next.db", site.messages_db)
        wait_until(lambda: "DR20000004" in drops(), 30, "recovery from truncation", process=process)

        # 4. Corrupt: the header overwritten with garbage.
        shutil.copy(site.messages_db, good)
        with site.messages_db.open("r+b") as f:
            f.write(b"\xde\xad\xbe\xef" * 256)
        post_corrupt = observe("header overwritten")
        shutil.copy(good, tmp_path / "next.db")
        post(tmp_path / "next.db", site.whatsapp_db, VELO, "DR20000005 after the corruption")
        os.replace(tmp_path / "next.db", site.messages_db)
        wait_until(lambda: "DR20000005" in drops(), 30, "recovery from corruption", process=process)

        assert process.stop() == 0
        log = process.log()
        final = drops()
    finally:
        process.ensure_dead()
        store.dispose()
    figure(
        "fault 4 bridge file: one `wa-monitor run`, 0 restarts; "
        + "; ".join(figures)
        + f"; submissions per drop after it all {dict(sorted(final.items()))}"
    )
    assert "Traceback" not in log
    assert final == {f"DR2000000{n}": 1 for n in range(1, 6)}, final
    for caused in (post_truncate, post_corrupt):
        assert len([line for line in caused if " - ERROR - " in line]) <= 2, caused
        assert len(caused) <= 6, caused
