"""Hostile bridge rows: odd values in any column, rowid gaps, an unusable whatsapp.db.

`wa-monitor scan --once` and `wa-monitor run` run as processes on real files. SQLite
lets any column hold NULL, INTEGER, REAL, TEXT or BLOB whoever wrote the file (a fork,
a repair tool); a row at rowid 10^12 or 2^63-1 leaves a gap; whatsmeow's whatsapp.db
may be missing, corrupt, of another schema or locked. None of it may stop monitoring,
lose a drop or slow a scan.
"""

from __future__ import annotations

import itertools
import os
import resource
import shutil
import socket
import sqlite3
import subprocess
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.faults.bridgeio import message
from tests.faults.conftest import backend_of, make_site
from tests.faults.support import (
    PROJECT_NAMES,
    WA_MONITOR,
    MonitorProcess,
    Site,
    figure,
    wait_until,
)
from tests.helpers import Bridge, make_monitor, submissions
from wa_monitor.monitor import scan as monitor_module
from wa_monitor.monitor.metrics import DatabaseCollector, MonitorMetrics
from wa_monitor.sim import Member, StoreWriter
from wa_monitor.store.heartbeats import read_heartbeats, record_heartbeat
from wa_monitor.store.review_store import ReviewStore

# Checks wall-clock bounds: run alone, not beside the parallel part of the suite.
pytestmark = pytest.mark.timing

VELO = list(PROJECT_NAMES)[1]
VELO_NAME = PROJECT_NAMES[VELO]
OTHER = "120363400000000001@g.us"  # a group nobody monitors
MAX_ROWID = 2**63 - 1
# Room enough for a scan, little enough that a scan whose memory grows with the rowid
# distance fails at once instead of taking the machine's memory with it.
ADDRESS_SPACE = 2 * 1024**3
_IDS = itertools.count(1)

postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)


def _insert(path: Path, rows: Sequence[Mapping[str, object]]) -> list[int]:
    """Store raw rows, one transaction each as the bridge does; values keep their storage
    class (bytes: BLOB, int: INTEGER, float: REAL). Returns their rowids."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=5)
    rowids = []
    try:
        for row in rows:
            columns = ", ".join(row)
            marks = ", ".join("?" * len(row))
            sql = f"INSERT INTO messages ({columns}) VALUES ({marks})"  # noqa: S608 (test's own names)
            rowids.append(int(conn.execute(sql, tuple(row.values())).lastrowid or 0))
    finally:
        conn.close()
    return rowids


def _row(drop: str | None = None, **values: object) -> dict[str, object]:
    """A message of the monitored group naming `drop`, with some columns made odd."""
    row: dict[str, object] = {
        "id": f"ODD{next(_IDS):04d}",
        "chat_jid": VELO,
        "sender": "27820000001",
        "content": f"Pole done {drop}" if drop else "hello",
        "timestamp": "2025-12-01 10:00:00+02:00",
        "media_type": "",
    }
    row.update(values)
    return row


def _command(site: Site, *args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run a wa-monitor command to its end; returns it and its peak RSS in MB."""
    out, err = site.root / "command.out", site.root / "command.err"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen(
            [*WA_MONITOR, *args],
            cwd=site.root,
            env=site.env(COLUMNS="400", **env),  # rich wraps at 80 columns otherwise
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE,) * 2),
        )
    timer = threading.Timer(120, process.kill)
    timer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)  # this child's own peak memory
    finally:
        timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode != -9, f"`wa-monitor {' '.join(args)}` still running after 120 s"
    done = subprocess.CompletedProcess(
        process.args, process.returncode, out.read_text(), err.read_text()
    )
    return done, usage.ru_maxrss / 1024


def _drops(store: ReviewStore) -> dict[str, dict[str, Any]]:
    return {r["drop_number"]: r for r in store.reviews()}


def _submissions(store: ReviewStore) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for s in submissions(store):
        found.setdefault(s["drop_number"], []).append(s)
    return found


# -- odd values in any column -------------------------------------------------------------

# (what is odd, its drop, the row, the instant its drop must be recorded at: None for "the
# time the monitor first read it", which a warning must say)
T_ROW = datetime(2025, 12, 1, 8, 0, tzinfo=UTC)  # the text timestamp of _row()
ODD_ROWS: list[tuple[str, str, dict[str, object], datetime | None]] = [
    ("BLOB sender", "DR30000001", _row("DR30000001", sender=b"27820000011"), T_ROW),
    ("BLOB id", "DR30000002", _row("DR30000002", id=b"3EB0BLOB0002"), T_ROW),
    ("BLOB content", "DR30000003", _row(content=b"Pole done DR30000003"), T_ROW),
    ("content not UTF-8", "DR30000004", _row(content=b"\xff\xfe DR30000004 \x80"), T_ROW),
    ("epoch seconds", "DR30000005", _row("DR30000005", timestamp=1764576000), T_ROW),
    (
        "epoch milliseconds",
        "DR30000006",
        _row("DR30000006", timestamp=1764576060000),
        datetime(2025, 12, 1, 8, 1, tzinfo=UTC),
    ),
    (
        "negative epoch",
        "DR30000007",
        _row("DR30000007", timestamp=-5),
        datetime(1969, 12, 31, 23, 59, 55, tzinfo=UTC),
    ),
    ("REAL inf", "DR30000008", _row("DR30000008", timestamp=float("inf")), None),
    (
        "BLOB timestamp",
        "DR30000009",
        _row("DR30000009", timestamp=b"2025-12-01 10:02:00+02:00"),
        datetime(2025, 12, 1, 8, 2, tzinfo=UTC),
    ),
    ("year 9999", "DR30000010", _row("DR30000010", timestamp="9999-12-31 23:59:59+00:00"), None),
    ("year 1 + 5 h", "DR30000011", _row("DR30000011", timestamp="0001-01-01 00:00:00+05:00"), None),
    ("BLOB chat", "DR30000012", _row("DR30000012", chat_jid=VELO.encode()), T_ROW),
]
UNTIMED = {what for what, _, _, when in ODD_ROWS if when is None}
# Rows of a group nobody monitors, last in the store, so one of them is the row a cursor's
# anchor would name: they must neither make the store look re-created at every scan nor
# be refused by the review database (an id of 300 characters, a NUL).
FOREIGN_TAIL = [
    _row("DR39999991", chat_jid=b"\x00\xff not a jid"),
    _row("DR39999992", chat_jid=OTHER, id="X" * 300),
    _row("DR39999993", chat_jid=OTHER, id="A\x00B"),
    _row("DR39999994", chat_jid=None),
]


def test_odd_rows_are_read_or_told_and_never_stop_monitoring(tmp_path: Path, db_url: str) -> None:
    site = make_site(tmp_path, db_url, None, None)
    with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
        writer.write(message(writer, VELO, "DR30000000 before the odd rows", 0))
    rowids = _insert(site.messages_db, [row for _, _, row, _ in ODD_ROWS])
    rowid_of = {what: rowid for (what, _, _, _), rowid in zip(ODD_ROWS, rowids, strict=True)}
    with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
        writer.write(message(writer, VELO, "DR30000020 after the odd rows", 1))
    _insert(site.messages_db, FOREIGN_TAIL)
    store = site.store()
    try:
        before = datetime.now(UTC)
        scan, _ = _command(site, "scan", "--once", "--no-progress")
        after = datetime.now(UTC)
        again, _ = _command(site, "scan", "--once", "--no-progress")
        groups, _ = _command(site, "groups")
        drops, subs = _drops(store), _submissions(store)
    finally:
        store.dispose()
    assert scan.returncode == 0, scan.stderr[-3000:]
    assert "Traceback" not in scan.stderr + again.stderr + groups.stderr
    expected = {"DR30000000", "DR30000020", *(drop for _, drop, _, _ in ODD_ROWS)}
    assert set(drops) == expected, (set(drops) ^ expected, scan.stderr)
    assert all(len(subs[d]) == 1 for d in expected), {d: len(subs[d]) for d in expected}
    for what, drop, _, when in ODD_ROWS:
        recorded = drops[drop]["whatsapp_message_date"]
        if when is None:
            assert before <= recorded <= after, (what, recorded)
        else:
            assert recorded == when, (what, recorded)
    assert subs["DR30000001"][0]["sender"] == "27820000011"  # the BLOB sender, decoded
    warned = [line for line in scan.stderr.splitlines() if "unreadable timestamp" in line]
    assert len(warned) == len(UNTIMED), scan.stderr
    for what in UNTIMED:
        lines = [ln for ln in warned if f"row {rowid_of[what]} of {VELO}" in ln]
        assert len(lines) == 1 and "first read" in lines[0], (what, warned)
    # The second scan finds nothing new: the cursor moved past every odd row, and the
    # foreign tail did not make the store look re-created.
    assert again.returncode == 0, again.stderr
    assert "row " not in again.stderr and "re-created" not in again.stderr, again.stderr
    assert groups.returncode == 0, groups.stderr

    # The service: odd rows written while it runs, counted in the heartbeat and /metrics.
    port = _free_port()
    process = site.start(METRICS_PORT=str(port))
    store = site.store()
    try:
        wait_until(lambda: read_heartbeats(store), 30, "a first heartbeat", process=process)
        late = _insert(
            site.messages_db,
            [
                _row("DR31000001", timestamp=float("-inf"), sender=b"27820000012"),
                _row("DR31000002", timestamp=b"\xff\xfe", id=b"\x80"),
            ],
        )
        with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
            writer.write(message(writer, VELO, "DR31000003 after them", 2))
        wait_until(lambda: "DR31000003" in _drops(store), 30, "the drop after", process=process)
        beat = wait_until(
            lambda: next(
                (
                    b
                    for b in read_heartbeats(store)
                    if b["counters"].get("rows_unreadable_time") == 2
                ),
                None,
            ),
            30,
            "a heartbeat counting the two odd rows",
            process=process,
        )
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            metrics = r.read().decode()
        status, _ = _command(site, "status")
        assert process.stop() == 0
        log = process.log()
        final = _drops(store)
    finally:
        process.ensure_dead()
        store.dispose()
    assert {"DR31000001", "DR31000002", "DR31000003"} <= set(final)
    assert "Traceback" not in log
    assert "wa_monitor_rows_unreadable_time_total 2.0" in metrics, metrics[-2000:]
    for rowid in late:
        assert len([ln for ln in log.splitlines() if f"row {rowid} of {VELO}" in ln]) == 1, log
    assert "odd bridge rows: 0 skipped, 2 with an unreadable timestamp" in status.stdout, (
        status.stdout + status.stderr
    )
    figure(
        f"odd rows ({backend_of(db_url)}): {len(ODD_ROWS)} rows of a monitored group with a "
        f"BLOB sender, id, content, chat or timestamp, content not UTF-8, epoch s/ms/negative "
        f"timestamps, inf, years 9999 and 1, then {len(FOREIGN_TAIL)} foreign rows last "
        f"(BLOB and NULL chat, a 300-character id, a NUL): `scan --once` exit {scan.returncode}, "
        f"{len(expected)}/{len(expected)} drops recorded once, {len(warned)} WARNING lines "
        "(one per unreadable time), epoch times exact; a second scan: nothing new, no rescan; "
        f"`run`: 2 more odd rows counted in heartbeat, /metrics and `status`"
        f" ({beat['counters']['rows_unreadable_time']} unreadable times), the drop after them "
        "recorded"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_row_that_cannot_be_used_is_skipped_told_once_and_counted(
    tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Injected: a failure nobody foresaw while reading one row (every value is made
    readable, so only an unknown fault can make a row unusable)."""
    bridge = Bridge(tmp_path / "bridge")
    rowids = [bridge.post(VELO, f"Pole DR3200000{n}")[1] for n in range(1, 4)]
    poisoned = rowids[1]
    row_posts = monitor_module._row_posts

    def failing(row: Any, *args: Any) -> Any:
        if row.rowid == poisoned:
            raise RuntimeError("injected: this row cannot be used")
        return row_posts(row, *args)

    monkeypatch.setattr(monitor_module, "_row_posts", failing)
    monitor = make_monitor(bridge, db_url)
    with caplog.at_level("WARNING", logger="wa_monitor"):
        first = monitor.scan()
        bridge.post(VELO, "Pole DR32000004")
        second = monitor.scan()
    drops = sorted(r["drop_number"] for r in monitor.store.reviews())
    assert drops == ["DR32000001", "DR32000003", "DR32000004"]
    assert first.skipped == {"RuntimeError": 1} and not second.skipped
    told = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(told) == 1, told
    assert f"row {poisoned} of {VELO} ({VELO_NAME}) skipped" in told[0], told
    assert "injected" in told[0]
    assert monitor.store.load_cursors()[VELO].last_rowid == max(rowids) + 1

    # Counted where operators look: the monitor's /metrics and the dashboard's.
    metrics = MonitorMetrics()
    metrics.observe_scan(first, 0.01, {VELO: VELO_NAME}, datetime.now(UTC))
    own = metrics.registry.get_sample_value(
        "wa_monitor_rows_skipped_total", {"reason": "RuntimeError"}
    )
    counters = {"rows_skipped": dict(first.skipped), "rows_unreadable_time": 0}
    record_heartbeat(
        monitor.store, "hostile", started_at=datetime.now(UTC), counters=counters, status={}
    )
    dashboard = {
        (s.name, s.labels.get("reason")): s.value
        for family in DatabaseCollector(monitor.store).collect()
        for s in family.samples
    }
    assert own == 1.0
    assert dashboard[("wa_monitor_rows_skipped_total", "RuntimeError")] == 1.0
    figure(
        f"unusable row ({backend_of(db_url)}): injected a failure reading row {poisoned} of 3: "
        f"skipped with {len(told)} WARNING line naming chat, rowid and reason, counted "
        f"(wa_monitor_rows_skipped_total{{reason=RuntimeError}} {own:g} on the monitor and the "
        "dashboard), the drops before and after it recorded, the cursor past it, no repeat "
        "on the next scan"
    )


# -- rowid gaps ---------------------------------------------------------------------------


def test_rowid_gaps_cost_what_the_rows_cost(tmp_path: Path, db_url: str) -> None:
    site = make_site(tmp_path, db_url, None, None)
    with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
        writer.write(message(writer, VELO, "DR33000001 at rowid 1", 0))
    at = [10**12, 10**12 + 1, 2**62, MAX_ROWID]
    _insert(
        site.messages_db,
        [dict(_row(f"DR3300001{n}"), rowid=rowid) for n, rowid in enumerate(at)],
    )
    store = site.store()
    try:
        started = time.monotonic()
        scan, peak_mb = _command(site, "scan", "--once", "--no-progress")
        took = time.monotonic() - started
        drops = _drops(store)
    finally:
        store.dispose()
    assert scan.returncode == 0, scan.stderr[-3000:]
    assert set(drops) == {"DR33000001", *(f"DR3300001{n}" for n in range(len(at)))}
    assert took < 30 and peak_mb < 300, (took, peak_mb)
    exhausted = [ln for ln in scan.stderr.splitlines() if "largest rowid" in ln]
    assert len(exhausted) == 1, scan.stderr

    # The service: a row written at rowid 10^12 and one right after it, then 2^63-1.
    site = make_site(tmp_path / "run", db_url, None, None)
    with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
        writer.write(message(writer, VELO, "DR34000001 first", 0))
    store = site.store()
    process = site.start()
    try:
        wait_until(lambda: "DR34000001" in _drops(store), 60, "the first drop", process=process)
        written = time.monotonic()
        _insert(site.messages_db, [dict(_row("DR34000002"), rowid=10**12)])
        with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
            writer.write(message(writer, VELO, "DR34000003 after the gap", 1))
        wait_until(lambda: "DR34000003" in _drops(store), 30, "past the gap", process=process)
        over_gap = time.monotonic() - written
        _insert(site.messages_db, [dict(_row("DR34000004"), rowid=MAX_ROWID)])
        wait_until(lambda: "DR34000004" in _drops(store), 30, "at 2^63-1", process=process)
        scans = read_heartbeats(store)[0]["counters"]["scans"]
        wait_until(
            lambda: read_heartbeats(store)[0]["counters"]["scans"] >= scans + 2,
            30,
            "two more scans",
            process=process,
        )
        assert process.stop() == 0
        log = process.log()
    finally:
        process.ensure_dead()
        store.dispose()
    assert "Traceback" not in log
    told = [ln for ln in log.splitlines() if "largest rowid" in ln]
    assert len(told) == 1, told
    assert over_gap < 10, over_gap
    figure(
        f"rowid gaps ({backend_of(db_url)}): drops at rowids 1, 10^12, 10^12+1, 2^62 and "
        f"2^63-1: `scan --once` exit 0 in {took:.1f} s, peak RSS {peak_mb:.0f} MB, all 5 "
        f"recorded; `run`: a drop written at 10^12 and one after it recorded "
        f"{over_gap:.2f} s after the writes; the row at 2^63-1 recorded and told once "
        "(ERROR: new rows get random rowids), not at every scan"
    )


# -- whatsapp.db --------------------------------------------------------------------------


class Contacts:
    """Members whose LIDs only whatsapp.db turns into phone numbers, one per drop."""

    def __init__(self, site: Site, process: MonitorProcess, store: ReviewStore) -> None:
        self.site, self.process, self.store = site, process, store
        self.n = 0
        self.latencies: list[float] = []

    def add(self, count: int) -> None:
        with StoreWriter(self.site.messages_db, self.site.whatsapp_db) as writer:
            writer.add_members(
                [
                    Member(phone=f"2782100{n:04d}", lid=f"9988776600{n:04d}", full_name=f"M{n}")
                    for n in range(count)
                ]
            )

    def post(self) -> dict[str, Any]:
        """A drop from the next member (a LID not seen yet); its submission once recorded."""
        n, self.n = self.n, self.n + 1
        drop = f"DR35{n:06d}"
        with StoreWriter(self.site.messages_db, None) as writer:
            row = message(writer, VELO, f"{drop} done", n, sender=f"9988776600{n:04d}")
            written = time.monotonic()
            writer.write(row)
        found = wait_until(
            lambda: _submissions(self.store).get(drop), 30, drop, process=self.process, every=0.01
        )
        self.latencies.append(time.monotonic() - written)
        return dict(found[0])

    def resolved(self, submission: Mapping[str, Any]) -> bool:
        return str(submission["sender"]).startswith("2782100")

    def until_told(self, text: str, times: int = 1) -> list[dict[str, Any]]:
        """Post drops until the monitor's log says `text` (`times` times in all; a file that
        failed is tried again only every few seconds); the submissions posted meanwhile."""
        posted = []
        deadline = time.monotonic() + 30
        while self.process.log().count(text) < times:
            assert time.monotonic() < deadline, f"{text!r} never logged\n{self.process.log()}"
            posted.append(self.post())
        return [*posted, self.post()]


@postgresql_only
def test_whatsapp_db_missing_corrupt_foreign_or_locked(tmp_path: Path, db_url: str) -> None:
    site = make_site(tmp_path, db_url, None, None)
    store = site.store()
    with StoreWriter(site.messages_db, site.whatsapp_db) as writer:
        writer.write(message(writer, VELO, "hello", 0))
    good = tmp_path / "whatsapp-good.db"
    process = site.start()
    contacts = Contacts(site, process, store)
    contacts.add(200)
    shutil.copy(site.whatsapp_db, good)
    states: dict[str, list[dict[str, Any]]] = {}
    locked_latencies: list[float] = []
    try:
        wait_until(lambda: read_heartbeats(store), 30, "a first heartbeat", process=process)
        states["readable"] = [contacts.post()]
        normal = contacts.latencies[-1]

        os.replace(site.whatsapp_db, tmp_path / "aside.db")
        states["missing"] = contacts.until_told("not found")
        beat = wait_until(
            lambda: next(
                (b for b in read_heartbeats(store) if b["status"]["bridge"]["contacts_error"]),
                None,
            ),
            30,
            "a heartbeat telling the contacts problem",
            process=process,
        )

        site.whatsapp_db.write_bytes(b"\xde\xad\xbe\xef" * 1024)
        states["corrupt"] = contacts.until_told("not a readable SQLite database")

        site.whatsapp_db.unlink()
        sqlite3.connect(site.whatsapp_db).execute("CREATE TABLE foo (x)").connection.close()
        states["another schema"] = contacts.until_told("no whatsmeow_contacts table")

        shutil.copy(good, tmp_path / "next.db")
        os.replace(tmp_path / "next.db", site.whatsapp_db)
        states["restored"] = contacts.until_told("readable again")

        lock = sqlite3.connect(site.whatsapp_db, isolation_level=None, timeout=5)
        try:
            lock.execute("BEGIN EXCLUSIVE")
            before = len(contacts.latencies)
            states["locked"] = contacts.until_told("locked by the bridge")
            states["locked"] += [contacts.post() for _ in range(3)]
            locked_latencies = contacts.latencies[before:]
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        states["released"] = contacts.until_told("readable again", times=2)
        assert process.stop() == 0
        log = process.log()
    finally:
        process.ensure_dead()
        store.dispose()
    assert "Traceback" not in log
    warnings = [ln for ln in log.splitlines() if "WARNING" in ln and "whatsapp.db" in ln]
    assert len(warnings) == 4, warnings  # missing, corrupt, another schema, locked: once each
    for state in ("readable", "restored", "released"):
        assert contacts.resolved(states[state][-1]), (state, states[state][-1])
    for state in ("missing", "corrupt", "another schema", "locked"):
        assert not any(contacts.resolved(s) for s in states[state]), state
    slowest = max(locked_latencies)
    assert slowest < 3.0, locked_latencies
    figure(
        "whatsapp.db missing, corrupt, another schema, locked (then restored and released): "
        f"{sum(len(v) for v in states.values())} drops all recorded, LID senders kept as "
        f"their number while it was unreadable and resolved again after, {len(warnings)} "
        f"WARNING lines (one per state, not per scan), heartbeat: "
        f"{beat['status']['bridge']['contacts_error'][:40]!r}; drop recorded in "
        f"{normal:.2f} s normally, at most {slowest:.2f} s while whatsapp.db was locked"
    )
