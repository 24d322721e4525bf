"""What the fault-injection tests share: a site, `wa-monitor run` processes, state, figures."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from tests.helpers import review_state, submissions
from wa_monitor.sim import DEMO_GROUPS, SimTruth
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import scan_cursors

WA_MONITOR = [sys.executable, "-m", "wa_monitor"]

# The four groups of the simulated store, all monitored.
PROJECT_NAMES = {
    DEMO_GROUPS[0].jid: "Lawley",
    DEMO_GROUPS[1].jid: "Velo Test",
    DEMO_GROUPS[2].jid: "Mohadin",
    DEMO_GROUPS[3].jid: "Mamelodi",
}
PROJECTS_YAML = "timezone: Africa/Johannesburg\nprojects:\n" + "".join(
    f'  - name: {name}\n    enabled: true\n    group_jid: "{jid}"\n'
    f'    description: "{name} group"\n'
    for jid, name in PROJECT_NAMES.items()
)

# Figures the tests report; printed at the end of the session (see conftest.py).
FIGURES: list[str] = []


def wait_until(
    condition: Callable[[], Any],
    timeout: float,
    what: str,
    *,
    process: MonitorProcess | None = None,
    every: float = 0.02,
) -> Any:
    """Poll `condition` until it is truthy (returning it); fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # e.g. the schema or the file is not there yet
            value = None
        if value:
            return value
        if process is not None and process.exited():
            raise AssertionError(
                f"{what}: the monitor exited ({process.returncode})\n{process.log()}"
            )
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(every)  # polling an outcome, not standing in for synchronisation


@dataclass
class Site:
    """A monitor installation: projects file, bridge store, review database, logs."""

    root: Path
    messages_db: Path
    whatsapp_db: Path
    db_url: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "projects.yaml"

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "NEON_", "WHATSAPP_", "WA_MONITOR_", "LOG_"))
        }
        env.update(
            DATABASE_URL=self.db_url,
            WHATSAPP_DB_PATH=str(self.messages_db),
            WHATSAPP_STORE_PATH=str(self.whatsapp_db),
            WA_MONITOR_CONFIG=str(self.config),
            SCAN_INTERVAL="2",
            HEARTBEAT_INTERVAL="1",
            WORKING_HOURS="never",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update(extra)
        return env

    def start(self, name: str = "monitor", *, nice: int = 0, **extra: str) -> MonitorProcess:
        return MonitorProcess.start(self, name, self.env(**extra), nice=nice)

    def store(self) -> ReviewStore:
        return ReviewStore(self.db_url)


class MonitorProcess:
    """A `wa-monitor run` process whose stderr (the log) goes to a file."""

    def __init__(self, popen: subprocess.Popen[bytes], log_path: Path) -> None:
        self.popen = popen
        self.log_path = log_path
        self.started = time.monotonic()

    @classmethod
    def start(cls, site: Site, name: str, env: dict[str, str], *, nice: int = 0) -> MonitorProcess:
        """Start `run`; a positive `nice` lets the test act on time on a loaded machine."""
        n = len(list(site.root.glob(f"{name}-*.log")))
        log_path = site.root / f"{name}-{n:03d}.log"
        with log_path.open("wb") as err:
            popen = subprocess.Popen(
                [*(["nice", "-n", str(nice)] if nice else []), *WA_MONITOR, "run"],
                cwd=site.root,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=subprocess.STDOUT,
            )
        return cls(popen, log_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_log(self, text: str, timeout: float = 30) -> None:
        wait_until(lambda: text in self.log(), timeout, f"{text!r} in the log", process=self)

    def kill9(self) -> None:
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait; returns the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise

    def ensure_dead(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()


# -- the review database ------------------------------------------------------------------


def cursor_floor(store: ReviewStore) -> int:
    """How far every monitored group has been read and committed (0 before any batch)."""
    with store.engine.connect() as conn:
        rows = conn.execute(sa.select(scan_cursors.c.chat_jid, scan_cursors.c.last_rowid)).all()
    got = {jid: int(rowid) for jid, rowid in rows}
    return min(got.get(jid, 0) for jid in PROJECT_NAMES)


@dataclass
class State:
    """The review table and the submissions log, minus ids and write times."""

    reviews: dict[tuple[str, str], dict[str, object]]
    submissions: dict[tuple[str, str, str], dict[str, object]]
    submission_rows: int

    @classmethod
    def of(cls, store: ReviewStore) -> State:
        rows = submissions(store)
        skip = {"id", "recorded_at"}
        subs = {
            (r["chat_jid"], r["message_id"], r["drop_number"]): {
                k: v for k, v in r.items() if k not in skip
            }
            for r in rows
        }
        return cls(review_state(store), subs, len(rows))

    def compare(self, expected: State) -> Comparison:
        lost = [k for k in expected.reviews if k not in self.reviews]
        extra = [k for k in self.reviews if k not in expected.reviews]
        changed = [
            k
            for k in expected.reviews
            if k in self.reviews and self.reviews[k] != expected.reviews[k]
        ]
        lost_subs = [k for k in expected.submissions if k not in self.submissions]
        extra_subs = [k for k in self.submissions if k not in expected.submissions]
        changed_subs = [
            k
            for k in expected.submissions
            if k in self.submissions and self.submissions[k] != expected.submissions[k]
        ]
        return Comparison(
            reviews=len(self.reviews),
            submissions=self.submission_rows,
            lost=len(lost) + len(lost_subs),
            doubled=len(extra) + len(extra_subs) + self.submission_rows - len(self.submissions),
            changed=len(changed) + len(changed_subs),
            examples=[*lost[:3], *extra[:3], *changed[:3], *changed_subs[:3]],
        )


@dataclass
class Comparison:
    reviews: int
    submissions: int
    lost: int
    doubled: int
    changed: int
    examples: list[Any]

    @property
    def equal(self) -> bool:
        return self.lost == self.doubled == self.changed == 0

    def text(self) -> str:
        return (
            f"{self.reviews} reviews, {self.submissions} submissions: {self.lost} lost, "
            f"{self.doubled} duplicated, {self.changed} differing"
        )


def check_against_truth(state: State, truth: SimTruth) -> list[str]:
    """Differences between the recorded reviews and what the simulator posted."""
    problems = []
    expected = {(PROJECT_NAMES[jid], drop): t for (jid, drop), t in truth.drops.items()}
    if set(state.reviews) != set(expected):
        missing = set(expected) - set(state.reviews)
        extra = set(state.reviews) - set(expected)
        problems.append(f"reviews: {len(missing)} missing, {len(extra)} not posted")
    for key, t in expected.items():
        row = state.reviews.get(key)
        if row is not None and row["resubmitted"] != t.resubmitted:
            problems.append(f"{key}: resubmitted {row['resubmitted']}, posted {t.posts} times")
    posts = sum(t.posts for t in truth.drops.values())
    if len(state.submissions) != posts:
        problems.append(f"{len(state.submissions)} submissions logged, {posts} posted")
    return problems


# -- the bridge store ---------------------------------------------------------------------


def store_max_rowid(messages_db: Path) -> int:
    conn = sqlite3.connect(f"file:{messages_db}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT coalesce(max(rowid), 0) FROM messages").fetchone()[0])
    finally:
        conn.close()


def figure(text: str) -> None:
    """Record a figure for the session summary and print it (visible with -s)."""
    FIGURES.append(text)
    print(text)
