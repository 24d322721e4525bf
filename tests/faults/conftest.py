"""Fixtures of the fault-injection suite, and the per-fault summary it prints at the end."""

from __future__ import annotations

import math
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import _pg_admin, _pg_url
from tests.faults.support import (
    PROJECTS_YAML,
    Site,
    State,
    cursor_floor,
    figure,
    store_max_rowid,
    wait_until,
)
from wa_monitor.monitor.scan import DEFAULT_CHUNK
from wa_monitor.sim import SimTruth, create_bridge_store, generate_store
from wa_monitor.store.review_store import ReviewStore

BACKFILL_MESSAGES = 200_000
# Rowids of the backfill store are spread out like those of a store that history sync
# re-wrote many times (INSERT OR REPLACE leaves gaps): a 100k-rowid batch then holds
# ~2,000 messages, so a backfill is ~100 commits for the kills to fall between.
ROWID_SPREAD = 50


@dataclass(frozen=True)
class Backfill:
    """A large simulated bridge store and the truth of what it holds."""

    dense: Path
    spread: Path
    whatsapp: Path
    truth: SimTruth

    @property
    def batches(self) -> int:
        return math.ceil(store_max_rowid(self.spread) / DEFAULT_CHUNK)


@pytest.fixture(scope="session")
def backfill(tmp_path_factory: pytest.TempPathFactory) -> Backfill:
    root = tmp_path_factory.mktemp("backfill")
    dense, whatsapp, spread = root / "dense.db", root / "whatsapp.db", root / "spread.db"
    truth = generate_store(dense, whatsapp, n_messages=BACKFILL_MESSAGES, seed=26)
    create_bridge_store(spread)
    conn = sqlite3.connect(spread, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("ATTACH ? AS src", (str(dense),))
        conn.execute("BEGIN")
        conn.execute("INSERT INTO chats SELECT * FROM src.chats")
        conn.execute(
            "INSERT INTO messages (rowid, id, chat_jid, sender, content, timestamp, is_from_me, "
            "media_type, filename, url, media_key, file_sha256, file_enc_sha256, file_length) "
            "SELECT rowid * ?, id, chat_jid, sender, content, timestamp, is_from_me, media_type, "
            "filename, url, media_key, file_sha256, file_enc_sha256, file_length "
            "FROM src.messages ORDER BY rowid",
            (ROWID_SPREAD,),
        )
        conn.execute("COMMIT")
        conn.execute("DETACH src")
        conn.execute("PRAGMA journal_mode = DELETE")
    finally:
        conn.close()
    return Backfill(dense, spread, whatsapp, truth)


def make_site(root: Path, db_url: str, messages: Path | None, whatsapp: Path | None) -> Site:
    """A site in `root` with copies of the given bridge files (None: no store yet)."""
    store = root / "store"
    store.mkdir(parents=True, exist_ok=True)
    site = Site(root, store / "messages.db", store / "whatsapp.db", db_url)
    site.config.write_text(PROJECTS_YAML)
    if messages is not None:
        shutil.copy(messages, site.messages_db)
    if whatsapp is not None:
        shutil.copy(whatsapp, site.whatsapp_db)
    return site


def backend_of(db_url: str) -> str:
    return "sqlite" if db_url.startswith("sqlite") else "postgresql"


@dataclass
class Reference:
    """An uninterrupted `wa-monitor run` over the backfill: its result and its pace."""

    state: State
    first_commit: float  # seconds from the start of the process to its first batch
    per_batch: float  # seconds per batch after that
    total: float


class References:
    def __init__(self, request: pytest.FixtureRequest, root: Path, backfill: Backfill) -> None:
        self.request = request
        self.root = root
        self.backfill = backfill
        self.done: dict[str, Reference] = {}
        self.databases: list[str] = []

    def get(self, backend: str) -> Reference:
        if backend not in self.done:
            self.done[backend] = self._run(backend)
        return self.done[backend]

    def _url(self, backend: str) -> str:
        if backend == "sqlite":
            path = self.root / "reference.db"
            shutil.copy(self.request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}"
        template = self.request.getfixturevalue("pg_template")
        name = f"wa_monitor_ref_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.databases.append(name)
        return _pg_url(name)

    def _run(self, backend: str) -> Reference:
        site = make_site(
            self.root / backend, self._url(backend), self.backfill.spread, self.backfill.whatsapp
        )
        high = store_max_rowid(site.messages_db)
        store = site.store()
        process = site.start("reference")
        first = None
        try:
            while True:
                floor = wait_until(lambda: cursor_floor(store) or -1, 120, "a first batch")
                if floor > 0 and first is None:
                    first = time.monotonic() - process.started
                if floor >= high:
                    break
                assert time.monotonic() - process.started < 120, "reference run too slow"
                time.sleep(0.005)  # sampling the pace of the run
            total = time.monotonic() - process.started
            assert process.stop() == 0, process.log()
            state = State.of(store)
        finally:
            process.ensure_dead()
            store.dispose()
        assert first is not None
        per_batch = (total - first) / max(1, self.backfill.batches - 1)
        figure(
            f"reference ({backend}): an uninterrupted `wa-monitor run` read "
            f"{BACKFILL_MESSAGES:,} messages in {self.backfill.batches} batches in "
            f"{total:.1f} s (first batch after {first:.1f} s, then {per_batch * 1000:.0f} ms "
            f"per batch): {len(state.reviews)} reviews, {state.submission_rows} submissions"
        )
        return Reference(state, first, per_batch, total)

    def close(self) -> None:
        for name in self.databases:
            with _pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def references(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, backfill: Backfill
) -> Iterator[References]:
    refs = References(request, tmp_path_factory.mktemp("reference"), backfill)
    yield refs
    refs.close()


class Scratch:
    """Extra empty review databases (at the schema head) for a test, dropped after it."""

    def __init__(self, request: pytest.FixtureRequest, root: Path) -> None:
        self.request = request
        self.root = root
        self.databases: list[str] = []

    def url(self, backend: str) -> str:
        if backend == "sqlite":
            path = self.root / f"scratch-{uuid.uuid4().hex[:8]}.db"
            shutil.copy(self.request.getfixturevalue("sqlite_template"), path)
            return f"sqlite:///{path}"
        template = self.request.getfixturevalue("pg_template")
        name = f"wa_monitor_s_{uuid.uuid4().hex[:12]}"
        with _pg_admin() as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        self.databases.append(name)
        return _pg_url(name)

    def close(self) -> None:
        for name in self.databases:
            with _pg_admin() as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def scratch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Scratch]:
    s = Scratch(request, tmp_path)
    yield s
    s.close()


def expected_up_to(backfill: Backfill, rowid: int, url: str, root: Path) -> State:
    """The state an uninterrupted monitor reaches having read the backfill up to `rowid`."""
    from wa_monitor.core.config import load_config
    from wa_monitor.monitor.scan import Monitor
    from wa_monitor.sources.bridge import BridgeStore

    root.mkdir(parents=True, exist_ok=True)
    part = root / f"upto-{rowid}.db"
    create_bridge_store(part)
    conn = sqlite3.connect(part, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = OFF")
        conn.execute("PRAGMA synchronous = OFF")
        conn.execute("ATTACH ? AS src", (str(backfill.spread),))
        conn.execute("INSERT INTO chats SELECT * FROM src.chats")
        conn.execute(
            "INSERT INTO messages (rowid, id, chat_jid, sender, content, timestamp, is_from_me, "
            "media_type, filename, url, media_key, file_sha256, file_enc_sha256, file_length) "
            "SELECT rowid, id, chat_jid, sender, content, timestamp, is_from_me, media_type, "
            "filename, url, media_key, file_sha256, file_enc_sha256, file_length "
            "FROM src.messages WHERE rowid <= ? ORDER BY rowid",
            (rowid,),
        )
        conn.execute("DETACH src")
    finally:
        conn.close()
    config_path = root / "projects.yaml"
    config_path.write_text(PROJECTS_YAML)
    bridge = BridgeStore(part, backfill.whatsapp)
    bridge.open()
    store = ReviewStore(url)
    try:
        Monitor(load_config(config_path), bridge, store).scan()
        return State.of(store)
    finally:
        bridge.close()
        store.dispose()
