"""The drop monitor: bridge rows → drop posts → review database, batch by batch."""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

from wa_monitor.bridge import BridgeStore, Prefilter, RawMessage, ScanRange, parse_timestamp
from wa_monitor.config import Project, ProjectsConfig
from wa_monitor.detect import DropPattern
from wa_monitor.errors import BridgeStoreError, ReviewDatabaseError
from wa_monitor.reviews import Plan, Post
from wa_monitor.store import Cursor, ReviewStore

log = logging.getLogger("wa_monitor")

# Rowids per batch: a short read of messages.db, then one review transaction.
DEFAULT_CHUNK = 100_000
# Longest message id kept as is; longer (foreign-made) ids are stored as their hash.
_MAX_ID = 100
# An inline flag group that turns on IGNORECASE somewhere: "(?i)", "(?ai:…)".
_INLINE_IGNORECASE = re.compile(r"\(\?[-aiLmsux]*i[-aiLmsux]*[:)]")


@dataclass
class ScanSummary:
    """What one scan did."""

    messages: int = 0
    candidates: int = 0
    new: Counter[str] = field(default_factory=Counter)
    resubmitted: Counter[str] = field(default_factory=Counter)
    messages_by_group: Counter[str] = field(default_factory=Counter)
    rescanned: list[str] = field(default_factory=list)

    @property
    def drops(self) -> int:
        return sum(self.new.values()) + sum(self.resubmitted.values())

    def add(self, plan: Plan) -> None:
        for event in plan.events:
            target = self.new if event.kind == "new" else self.resubmitted
            target[event.post.project] += 1


ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class _Read:
    """What a batch read from messages.db: its end, its groups, its rows, its anchor."""

    high: int
    active: dict[str, Project]
    scanned: ScanRange
    anchor: str | None


def clean_text(value: str, limit: int) -> str:
    """Text safe for any database column: no NUL or control characters, at most `limit`."""
    if value.isprintable() and len(value) <= limit:
        return value
    kept = "".join(ch if ch.isprintable() else " " for ch in value).strip()
    return kept[:limit]


def prefilter(pattern: DropPattern) -> Prefilter | None:
    """The SQLite pre-filter for a drop pattern: its required literal, and whether case counts."""
    if pattern.literal is None:
        return None
    exact = not pattern.regex.flags & re.IGNORECASE and not _INLINE_IGNORECASE.search(
        pattern.source
    )
    return Prefilter(pattern.literal, case_sensitive=exact)


def message_key(message_id: str) -> str:
    cleaned = clean_text(message_id, _MAX_ID)
    if cleaned == message_id:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()


class Monitor:
    """Scans the enabled projects' groups and records what they post."""

    def __init__(
        self,
        config: ProjectsConfig,
        bridge: BridgeStore,
        store: ReviewStore,
        *,
        chunk: int = DEFAULT_CHUNK,
    ) -> None:
        self.config = config
        self.bridge = bridge
        self.store = store
        self.chunk = chunk
        self._cursors: dict[str, Cursor] | None = None

    def set_config(self, config: ProjectsConfig) -> None:
        """Use a new projects file from the next scan on (new groups start from rowid 0)."""
        self.config = config

    def cursors(self) -> dict[str, Cursor]:
        if self._cursors is None:
            self._cursors = self.store.load_cursors()
        return self._cursors

    def forget_cursors(self) -> None:
        """Reload cursors from the database on the next scan (after a failed batch)."""
        self._cursors = None

    # -- one scan ---------------------------------------------------------------------

    def scan(
        self, stop: threading.Event | None = None, progress: ProgressFn | None = None
    ) -> ScanSummary:
        """Read every enabled group up to the store's current end; record what it names."""
        summary = ScanSummary()
        projects = self.config.by_group()
        if not projects:
            return summary
        high = self.bridge.max_rowid()
        cursors = self._checked_cursors(projects, high, summary)
        low = min(cursors[jid].last_rowid for jid in projects)
        start = low
        ranges = [(b, min(b + self.chunk, high)) for b in range(low, high, self.chunk)]
        # A backlog: read the next range from messages.db (SQLite works without the GIL)
        # while this one is recorded. The groups a range reads depend only on the
        # cursors the scan started from, so reading ahead reads exactly the same rows.
        reader = ThreadPoolExecutor(1, "wa-monitor-read") if len(ranges) > 1 else None
        ahead: Future[_Read] | None = None
        try:
            for index, (first, upper) in enumerate(ranges):
                if stop is not None and stop.is_set():
                    break
                if ahead is not None:
                    read = ahead.result()
                else:
                    read = self._read(projects, dict(cursors), first, upper)
                ahead = None
                if reader is not None and index + 1 < len(ranges):
                    following = ranges[index + 1]
                    ahead = reader.submit(self._read, projects, dict(cursors), *following)
                candidates, plan = self._record_range(cursors, read)
                self._summarise(read.scanned, candidates, plan, summary)
                if progress is not None:
                    progress(upper - start, high - start)
        finally:
            if reader is not None:
                reader.shutdown(wait=True, cancel_futures=True)
        return summary

    def _checked_cursors(
        self, projects: dict[str, Project], high: int, summary: ScanSummary
    ) -> dict[str, Cursor]:
        known = self.cursors()
        cursors = {jid: known.get(jid, Cursor(0, None)) for jid in projects}
        moved: dict[str, bool] = {}
        for jid, cursor in cursors.items():
            if cursor.last_rowid == 0:
                continue
            reason = None
            if cursor.last_rowid > high:
                reason = f"its highest rowid {high} is below the cursor {cursor.last_rowid}"
            elif cursor.anchor:
                if cursor.anchor not in moved:
                    moved[cursor.anchor] = self.bridge.anchor_moved_back(cursor.anchor)
                if moved[cursor.anchor]:
                    reason = "the last message read is gone from it"
            if reason:
                log.warning(
                    "⚠️ messages.db was re-created (%s); rescanning %s (%s) from the start, "
                    "drops already recorded are not recorded again",
                    reason,
                    projects[jid].name,
                    jid,
                )
                cursors[jid] = Cursor(0, None)
                summary.rescanned.append(jid)
        return cursors

    def _read(
        self, projects: dict[str, Project], cursors: dict[str, Cursor], low: int, high: int
    ) -> _Read:
        """Read a range of messages.db (the only bridge access of a batch)."""
        active = {jid: p for jid, p in projects.items() if cursors[jid].last_rowid < high}
        filters: dict[str | Prefilter | None, list[str]] = {}
        for jid, project in active.items():
            filters.setdefault(prefilter(project.pattern), []).append(jid)
        scanned = self.bridge.read_range(low, high, filters)
        return _Read(high, active, scanned, self.bridge.anchor(high))

    def _record_range(self, cursors: dict[str, Cursor], read: _Read) -> tuple[int, Plan]:
        """Record a range's posts and advance its groups' cursors (one transaction)."""
        active, scanned = read.active, read.scanned
        rows = [r for r in scanned.rows if r.rowid > cursors[r.chat_jid].last_rowid]
        posts = self._posts(rows, active)
        advanced = {jid: Cursor(read.high, read.anchor) for jid in active}
        plan = self.store.record_batch(posts, advanced, self.config.zone)
        cursors.update(advanced)
        self.cursors().update(advanced)
        return len(rows), plan

    def _summarise(
        self, scanned: ScanRange, candidates: int, plan: Plan, summary: ScanSummary
    ) -> None:
        summary.messages += sum(scanned.counts.values())
        summary.messages_by_group.update(scanned.counts)
        summary.candidates += candidates
        summary.add(plan)
        self._log_plan(plan)

    def _posts(self, rows: Iterable[RawMessage], projects: dict[str, Project]) -> list[Post]:
        matched: list[tuple[RawMessage, Project, list[str]]] = []
        for row in rows:
            project = projects[row.chat_jid]
            drops = project.pattern.find(row.content)
            if drops:
                matched.append((row, project, drops))
        if not matched:
            return []
        senders = self.bridge.resolve_senders(r.sender for r, _, _ in matched)
        zone = self.config.zone
        posts: list[Post] = []
        for row, project, drops in matched:
            when = parse_timestamp(row.timestamp, zone)
            if when is None:
                when = datetime.now(UTC)
                log.warning(
                    "⚠️ message %s in %s has an unreadable timestamp %r; using the scan time",
                    row.id,
                    project.name,
                    (row.timestamp or "")[:40],
                )
            if project.since is not None and when < project.since:
                continue
            sender = senders[row.sender]
            phone = clean_text(sender.phone, 50) or "unknown"
            name = clean_text(sender.name, 100) or phone
            key = message_key(row.id)
            for drop in drops:
                posts.append(Post(row.chat_jid, key, drop, project.name, phone, name, when))
        return posts

    def _log_plan(self, plan: Plan) -> None:
        for event in plan.events:
            post = event.post
            log.info("📱 Found drop: %s in %s", post.drop_number, post.project)
            if event.kind == "new":
                log.info("✅ Created QA review for %s", post.drop_number)
            else:
                log.info(
                    "🔄 Resubmission of %s in %s by %s",
                    post.drop_number,
                    post.project,
                    post.sender_name,
                )

    # -- the service loop -------------------------------------------------------------

    def run(
        self,
        stop: threading.Event,
        interval: float,
        *,
        poll: float = 0.1,
        on_scan: Callable[[ScanSummary], None] | None = None,
        before_poll: Callable[[], None] | None = None,
    ) -> None:
        """Scan whenever messages.db changes, and at least every `interval` seconds.

        Waking is cheap: between scans it only reads `PRAGMA data_version` (which
        changes when the bridge commits) and stats the file, every `poll` seconds.
        """
        last_version: int | None = None
        last_scan = float("-inf")
        failures = 0
        last_error = ""
        while not stop.is_set():
            try:
                if before_poll is not None:
                    before_poll()
                if self.bridge.replaced():
                    self.bridge.open()
                    last_version = None
                version = self.bridge.data_version()
                if version != last_version or time.monotonic() - last_scan >= interval:
                    summary = self.scan(stop)
                    last_version, last_scan = version, time.monotonic()
                    if on_scan is not None:
                        on_scan(summary)
                if failures:
                    log.info("✅ scanning again after %d failed attempt(s)", failures)
                failures, last_error = 0, ""
                stop.wait(poll)
            except (BridgeStoreError, ReviewDatabaseError) as exc:
                failures += 1
                self.forget_cursors()
                if str(exc) != last_error:
                    log.error("❌ %s", exc)
                    last_error = str(exc)
                # Back off up to the scan interval; a fault never becomes a busy loop.
                stop.wait(min(interval, poll * 2 ** min(failures, 10)))
