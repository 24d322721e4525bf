"""Fault 8: SIGTERM in the middle of a scan, and at any moment of start-up."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.faults.bridgeio import post
from tests.faults.conftest import (
    Backfill,
    References,
    Scratch,
    backend_of,
    expected_up_to,
    make_site,
)
from tests.faults.support import (
    PROJECT_NAMES,
    MonitorProcess,
    Site,
    State,
    cursor_floor,
    figure,
    store_max_rowid,
    wait_until,
)

# The backfill store and its reference runs are built once per worker: their users share one.
pytestmark = pytest.mark.xdist_group("backfill")

SIGTERMS = 3
VELO = list(PROJECT_NAMES)[1]


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


# -- SIGTERM during start-up ---------------------------------------------------------------

# The monitor as `python -m wa_monitor run`, with an audit hook that stops the process at
# one chosen moment of its start-up (the first import of a module, the first open of a
# file, the first SQLite connection to a file) and says so on stderr, until the test
# writes to a pipe. The signal is sent while the process is held there.
HOLD_BOOT = r"""
import os, runpy, sys
event, match, fd = os.environ["HOLD_EVENT"], os.environ["HOLD_MATCH"], int(os.environ["HOLD_FD"])
exact = event == "import"
held = []
def hook(name, args):
    if held or name != event or not args:
        return
    arg = str(args[0])
    if (arg != match) if exact else (match not in arg):
        return
    held.append(arg)
    os.write(2, f"HELD at {name} {arg}\n".encode())
    os.read(fd, 1)
sys.addaudithook(hook)
sys.argv = ["wa_monitor", "run"]
runpy.run_module("wa_monitor", run_name="__main__", alter_sys=True)
"""
HELD_FOR = 5.0  # seconds the start-up stays held after the signal, unless the process exits


class HungServer:
    """A TCP listener that accepts connections and never answers: a database that hangs."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted = threading.Event()
        self._clients: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self._clients.append(client)
            self.accepted.set()

    def close(self) -> None:
        self.listener.close()
        for client in self._clients:
            client.close()
        self._thread.join(timeout=5)


def start_held(site: Site, name: str, event: str, match: str, **extra: str) -> StartUp:
    read, write = os.pipe()
    n = len(list(site.root.glob(f"{name}-*.log")))
    log_path = site.root / f"{name}-{n:03d}.log"
    env = site.env(HOLD_EVENT=event, HOLD_MATCH=match, HOLD_FD=str(read), **extra)
    with log_path.open("wb") as err:
        popen = subprocess.Popen(
            [sys.executable, "-c", HOLD_BOOT],
            cwd=site.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=err,
            stderr=subprocess.STDOUT,
            pass_fds=(read,),
        )
    os.close(read)
    return StartUp(MonitorProcess(popen, log_path), write)


@dataclass
class StartUp:
    """A monitor held at a moment of its start-up, and the pipe that lets it go on."""

    process: MonitorProcess
    release_fd: int | None = None

    def release(self) -> None:
        if self.release_fd is None:
            return
        with contextlib.suppress(OSError):  # the process may be gone: the pipe is broken
            os.write(self.release_fd, b"x")
        os.close(self.release_fd)
        self.release_fd = None


def signal_at(startup: StartUp, signum: signal.Signals, held: bool) -> tuple[int, float, bool]:
    """Send `signum` now; returns (exit status, seconds to exit, exited while still held).

    When the held moment is in the main thread, nothing can happen before it goes on, so
    it is released at once; otherwise the process must exit while start-up stays held.
    """
    process = startup.process
    sent = time.monotonic()
    process.popen.send_signal(signum)
    exited_held = False
    if held:
        try:
            process.popen.wait(timeout=HELD_FOR)
            exited_held = True
        except subprocess.TimeoutExpired:
            pass
    startup.release()
    status = process.popen.wait(timeout=30)
    return status, time.monotonic() - sent, exited_held


# (what, audit event, what it matches, the signal, whether start-up waits in a thread of
# its own there, so the process can exit while that moment still holds it)
MAIN_THREAD_MOMENTS = [
    ("importing the command (sqlalchemy)", "import", "sqlalchemy", signal.SIGTERM, False),
    ("importing the command, SIGINT", "import", "sqlalchemy", signal.SIGINT, False),
    ("importing the service module", "import", "wa_monitor.monitor.service", signal.SIGTERM, False),
    ("reading the projects file", "open", "projects.yaml", signal.SIGTERM, True),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(
    ("what", "event", "match", "signum", "held"),
    MAIN_THREAD_MOMENTS,
    ids=[m[0] for m in MAIN_THREAD_MOMENTS],
)
def test_a_signal_while_run_imports_or_reads_its_config_ends_it_with_exit_0(
    tmp_path: Path,
    db_url: str,
    what: str,
    event: str,
    match: str,
    signum: signal.Signals,
    held: bool,
) -> None:
    site = make_site(tmp_path, db_url, None, None)
    post(site.messages_db, site.whatsapp_db, VELO, "DR31000000 a drop")
    startup = start_held(site, "held", event, match)
    try:
        startup.process.wait_log("HELD at", timeout=60)
        status, took, exited_held = signal_at(startup, signum, held)
        log = startup.process.log()
    finally:
        startup.release()
        startup.process.ensure_dead()
    figure(
        f"fault 8b {signum.name} during start-up ({what}): exit status {status}, "
        f"{took:.2f} s after the signal"
        + (f", {'while' if exited_held else 'NOT while'} start-up was held" if held else "")
    )
    assert status == 0, log
    assert f"{signum.name} received during start-up: stopping" in log, log
    assert "Traceback" not in log, log
    assert "Drop monitor started" not in log  # it stopped before monitoring
    if held:
        assert exited_held, f"the process waited for its start-up to go on\n{log}"


@pytest.fixture
def hung_database(db_url: str) -> Iterator[tuple[str, HungServer | None]]:
    """The review database as start-up finds it when it hangs: on PostgreSQL a server that
    accepts the connection and never answers; on SQLite the connection held (by the hook)."""
    if backend_of(db_url) == "sqlite":
        yield db_url, None
        return
    server = HungServer()
    try:
        yield (
            sa.make_url(db_url)
            .set(host="127.0.0.1", port=server.port)
            .render_as_string(hide_password=False),
            server,
        )
    finally:
        server.close()


def test_a_sigterm_while_start_up_waits_for_the_database_or_the_bridge_ends_it_with_exit_0(
    tmp_path: Path, db_url: str, hung_database: tuple[str, HungServer | None]
) -> None:
    backend = backend_of(db_url)
    hung_url, server = hung_database
    results: list[str] = []
    statuses: list[int] = []
    moments = [
        ("connecting to the review database", "database"),
        ("opening the bridge store", "bridge"),
        ("the moment it logs its start", "started"),
    ]
    for what, moment in moments:
        site = make_site(tmp_path / moment, db_url, None, None)
        post(site.messages_db, site.whatsapp_db, VELO, "DR32000000 a drop")
        if moment == "database" and server is not None:
            startup = StartUp(site.start("hung", DATABASE_URL=hung_url))
            wait_until(server.accepted.is_set, 60, "the connection", process=startup.process)
            held = True
        elif moment == "database":
            database = sa.make_url(db_url).database or ""
            startup = start_held(site, "held", "sqlite3.connect", Path(database).name)
            startup.process.wait_log("HELD at", timeout=60)
            held = True
        elif moment == "bridge":
            startup = start_held(site, "held", "sqlite3.connect", "messages.db")
            startup.process.wait_log("HELD at", timeout=60)
            held = True
        else:
            startup = StartUp(site.start("started"))
            startup.process.wait_log("Drop monitor started", timeout=60)
            held = False
        try:
            status, took, exited_held = signal_at(startup, signal.SIGTERM, held)
            log = startup.process.log()
        finally:
            startup.release()
            startup.process.ensure_dead()
        statuses.append(status)
        results.append(
            f"{what}: exit {status} after {took:.2f} s"
            + (f" ({'while' if exited_held else 'NOT while'} start-up waited)" if held else "")
        )
        assert status == 0, log
        assert "Traceback" not in log, log
        assert "SIGTERM received" in log, log
        if held:
            assert exited_held, f"{what}: the process waited for its start-up\n{log}"
            assert "SIGTERM received during start-up: stopping" in log, log
    figure(f"fault 8c SIGTERM during start-up ({backend}): " + "; ".join(results))
    assert statuses == [0] * len(moments)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_sighup_during_start_up_is_a_reload_not_the_end(tmp_path: Path, db_url: str) -> None:
    site = make_site(tmp_path, db_url, None, None)
    post(site.messages_db, site.whatsapp_db, VELO, "DR33000000 a drop")
    startup = start_held(site, "held", "import", "sqlalchemy")
    try:
        startup.process.wait_log("HELD at", timeout=60)
        startup.process.popen.send_signal(signal.SIGHUP)
        startup.release()
        startup.process.wait_log("SIGHUP: ", timeout=60)
        status = startup.process.stop()
        log = startup.process.log()
    finally:
        startup.release()
        startup.process.ensure_dead()
    figure(
        "fault 8d SIGHUP during start-up (importing the command): the projects file re-read "
        f"once monitoring began, the process kept running; SIGTERM later: exit {status}"
    )
    assert status == 0, log
    assert "Traceback" not in log
