"""The drop monitor: source rows → drop posts → review database, batch by batch.

The monitor reads through a `wa_monitor.sources.protocol.Source` (the bridge's store in
production) and tells its caller how scans went through hooks (`on_error`,
`on_scanned`), not subclasses. Turning rows into posts is pure: `find_drops` then
`drop_posts`, with the senders of the matched rows resolved in between.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Generic, TypeVar

from wa_monitor.core.config import Project, ProjectsConfig
from wa_monitor.core.detect import DropPattern
from wa_monitor.core.errors import BridgeStoreError, ReviewDatabaseError, WaMonitorError
from wa_monitor.core.reviews import Plan, Post
from wa_monitor.sources.bridge import parse_timestamp
from wa_monitor.sources.protocol import (
    MAX_ROWID,
    Deletion,
    Filters,
    Prefilter,
    RawMessage,
    ScanRange,
    Sender,
    Source,
)
from wa_monitor.store.review_store import Cursor, DeletedPost, ReviewStore

log = logging.getLogger("wa_monitor")

# Rowids per batch: a short read of messages.db, then one review transaction.
DEFAULT_CHUNK = 100_000
# Longest message id kept as is; longer (foreign-made) ids are stored as their hash.
_MAX_ID = 100


@dataclass
class ScanSummary:
    """What one scan did."""

    messages: int = 0
    candidates: int = 0
    new: Counter[str] = field(default_factory=Counter)
    resubmitted: Counter[str] = field(default_factory=Counter)
    messages_by_group: Counter[str] = field(default_factory=Counter)
    rescanned: list[str] = field(default_factory=list)
    # Rows of monitored groups not used, by reason; drops recorded at the time first read.
    skipped: Counter[str] = field(default_factory=Counter)
    unreadable_times: int = 0
    deletions: int = 0  # messages of the groups read as deleted in WhatsApp

    @property
    def drops(self) -> int:
        return sum(self.new.values()) + sum(self.resubmitted.values())

    def add(self, plan: Plan) -> None:
        for event in plan.events:
            target = self.new if event.kind == "new" else self.resubmitted
            target[event.post.project] += 1


ProgressFn = Callable[[int, int], None]
ErrorHook = Callable[[WaMonitorError], None]
ScannedHook = Callable[[float], None]
S = TypeVar("S", bound=Source)


@dataclass(frozen=True)
class _Read:
    """What a batch read from the source: its end, its groups, its rows, its anchor."""

    high: int
    active: dict[str, Project]
    scanned: ScanRange
    anchor: str | None
    read_at: datetime
    deletions: list[Deletion] = field(default_factory=list)


@dataclass(frozen=True)
class _Recorded:
    """What recording a batch did: candidate rows, the plan, odd rows, deletions marked."""

    candidates: int
    plan: Plan
    odd: list[OddRow]
    deletions: int


@dataclass(frozen=True, slots=True)
class OddRow:
    """A row of a monitored group that could not be read as written, and what was done."""

    rowid: int
    chat_jid: str
    project: str
    problem: str  # what is wrong with it, for the log
    reason: str = ""  # why it was skipped (a counter label); "" when its drops were kept
    drops: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Match:
    """A row whose text names drops, with its project."""

    row: RawMessage
    project: Project
    drops: list[str]


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
    return Prefilter(pattern.literal, case_sensitive=not pattern.ignore_case)


def message_key(message_id: str) -> str:
    cleaned = clean_text(message_id, _MAX_ID)
    if cleaned == message_id:
        return message_id
    return "sha256:" + hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()


class Monitor(Generic[S]):
    """Scans the enabled projects' groups of a source and records what they post.

    `on_error` is told every error of a scan and of polling the source (which is then
    raised, or retried by `run`); `on_scanned` the seconds each completed scan took.
    """

    def __init__(
        self,
        config: ProjectsConfig,
        source: S,
        store: ReviewStore,
        *,
        chunk: int = DEFAULT_CHUNK,
        on_error: ErrorHook | None = None,
        on_scanned: ScannedHook | None = None,
        anchor_tag: str = "",
    ) -> None:
        self.config = config
        self.source = source
        self.store = store
        self.chunk = chunk
        # Names the source in the cursors' anchors ("" for a bridge's messages.db, as
        # ever), so that a group moved to another gateway is read again from the start.
        self.anchor_tag = anchor_tag
        self.on_error = on_error
        self.on_scanned = on_scanned
        self._cursors: dict[str, Cursor] | None = None
        self._rowids_exhausted = False
        # The polling loop's state (`poll_once`).
        self._last_version: int | None = None
        self._last_scan = float("-inf")
        self._failures = 0
        self._last_error = ""
        self._retry_at = float("-inf")

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
        """Read every enabled group up to the source's current end; record what it names."""
        started = time.monotonic()
        try:
            summary = self._scan(stop, progress)
        except WaMonitorError as exc:
            self._failed(exc)
            raise
        if self.on_scanned is not None:
            self.on_scanned(time.monotonic() - started)
        return summary

    def _failed(self, exc: WaMonitorError) -> None:
        if self.on_error is not None:
            self.on_error(exc)

    def _scan(self, stop: threading.Event | None, progress: ProgressFn | None) -> ScanSummary:
        summary = ScanSummary()
        projects = self.config.by_group()
        if not projects:
            return summary
        high = self.source.max_rowid()
        self._check_rowids(high)
        cursors = self._checked_cursors(projects, high, summary)
        low = min(cursors[jid].last_rowid for jid in projects)
        start = low
        # A backlog: read the next range from messages.db (SQLite works without the GIL)
        # while this one is recorded. The groups a range reads depend only on the
        # cursors the scan started from, so reading ahead reads exactly the same rows.
        reader = ThreadPoolExecutor(1, "wa-monitor-read") if high - low > self.chunk else None
        ahead: Future[_Read | None] | None = None
        try:
            read = self._read(projects, dict(cursors), low, high)
            while read is not None:
                if stop is not None and stop.is_set():
                    break
                if reader is not None and read.high < high:
                    ahead = reader.submit(self._read, projects, dict(cursors), read.high, high)
                self._summarise(read.scanned, self._record_range(cursors, read), summary)
                if progress is not None:
                    progress(read.high - start, high - start)
                if stop is not None and stop.is_set():
                    break
                if ahead is not None:
                    read, ahead = ahead.result(), None
                elif read.high < high:
                    read = self._read(projects, dict(cursors), read.high, high)
                else:
                    read = None
        finally:
            if reader is not None:
                reader.shutdown(wait=True, cancel_futures=True)
        return summary

    def _check_rowids(self, high: int) -> None:
        """Say once when messages.db has used up its rowids (and when that is over)."""
        exhausted = high >= MAX_ROWID
        if exhausted and not self._rowids_exhausted:
            log.error(
                "❌ messages.db holds a row at the largest rowid (%d): SQLite now stores new "
                "messages at random rowids, below what was read, so new drops are not seen; "
                "rebuild messages.db with its rows renumbered, or re-pair the bridge",
                high,
            )
        elif self._rowids_exhausted and not exhausted:
            log.info("✅ messages.db no longer holds the largest rowid; scanning as usual")
        self._rowids_exhausted = exhausted

    def _checked_cursors(
        self, projects: dict[str, Project], high: int, summary: ScanSummary
    ) -> dict[str, Cursor]:
        known = self.cursors()
        cursors = {jid: known.get(jid, Cursor(0, None)) for jid in projects}
        moved: dict[str, bool] = {}
        for jid, cursor in cursors.items():
            if not owns_anchor(cursor, self.anchor_tag):
                log.warning(
                    "⚠️ %s (%s) was read from another gateway until now; reading it from the "
                    "start of %s, drops already recorded are not recorded again",
                    projects[jid].name,
                    jid,
                    self.anchor_tag or "the bridge's messages.db",
                )
                cursors[jid] = Cursor(0, None)
                summary.rescanned.append(jid)
                continue
            reason = recreated(self.source, cursor, high, moved, self.anchor_tag)
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
        self, projects: dict[str, Project], cursors: dict[str, Cursor], low: int, limit: int
    ) -> _Read | None:
        """Read the next range above `low` of the source (its only access in a batch).

        A range that would hold no row starts at the next row present instead, so a gap
        in the rowids (a row written at rowid 10^12) costs one seek, not a walk over
        empty ranges. None: no row is left up to `limit`.
        """
        following = self.source.next_rowid(low)
        if following is None or following > limit:
            return None
        if following > low + self.chunk:
            low = following - 1
        high = min(low + self.chunk, limit)
        active = {jid: p for jid, p in projects.items() if cursors[jid].last_rowid < high}
        read_at = datetime.now(UTC)
        scanned = self.source.read_range(low, high, filters_of(active))
        deletions = self.source.read_deletions(low, high, list(active))
        anchor = tagged_anchor(self.source.anchor(high), self.anchor_tag)
        return _Read(high, active, scanned, anchor, read_at, deletions)

    def _record_range(self, cursors: dict[str, Cursor], read: _Read) -> _Recorded:
        """Record a range's posts and advance its groups' cursors (one transaction)."""
        active, scanned = read.active, read.scanned
        rows = [
            r
            for r in scanned.rows
            if r.chat_jid in active and r.rowid > cursors[r.chat_jid].last_rowid
        ]
        posts, odd = read_posts(self.source, rows, active, self.config.zone, read.read_at)
        advanced = {jid: Cursor(read.high, read.anchor) for jid in active}
        auto_reply = {p.name for p in active.values() if p.auto_reply_invalid}
        deleted = deleted_posts(
            (
                d
                for d in read.deletions
                if d.chat_jid in active and d.rowid > cursors[d.chat_jid].last_rowid
            ),
            self.config.zone,
            read.read_at,
        )
        plan = self.store.record_batch(
            posts, advanced, self.config.zone, auto_reply=auto_reply, deletions=deleted
        )
        cursors.update(advanced)
        self.cursors().update(advanced)
        return _Recorded(len(rows), plan, odd, len(deleted))

    def _summarise(self, scanned: ScanRange, recorded: _Recorded, summary: ScanSummary) -> None:
        plan, odd = recorded.plan, recorded.odd
        summary.messages += sum(scanned.counts.values())
        summary.messages_by_group.update(scanned.counts)
        summary.candidates += recorded.candidates
        summary.deletions += recorded.deletions
        summary.add(plan)
        self._log_plan(plan)
        # Told once the batch is committed: a retried batch does not repeat them.
        for row in odd:
            if row.reason:
                summary.skipped[row.reason] += 1
                log.warning(
                    "⚠️ row %d of %s (%s) skipped: %s",
                    row.rowid,
                    row.chat_jid,
                    row.project,
                    row.problem,
                )
            else:
                summary.unreadable_times += 1
                log.warning(
                    "⚠️ row %d of %s (%s): %s; %s recorded with the time it was first read",
                    row.rowid,
                    row.chat_jid,
                    row.project,
                    row.problem,
                    ", ".join(row.drops),
                )

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
        """Scan whenever the source changes, and at least every `interval` seconds.

        Waking is cheap: between scans it only asks the source's `data_version` (for
        the bridge's store, a PRAGMA and a stat of the file), every `poll` seconds.
        """
        while not stop.is_set():
            try:
                if before_poll is not None:
                    before_poll()
            except (BridgeStoreError, ReviewDatabaseError) as exc:
                self.note_failure(exc, interval, poll)
            else:
                self.poll_once(stop, interval, poll=poll, on_scan=on_scan)
            stop.wait(self.wait_time(poll))

    def poll_once(
        self,
        stop: threading.Event,
        interval: float,
        *,
        poll: float = 0.1,
        on_scan: Callable[[ScanSummary], None] | None = None,
    ) -> None:
        """One step of `run`: scan when the source changed or `interval` has passed.

        A source or database fault is logged (once per distinct fault) and retried after a
        back-off (up to `interval`); until then this returns at once. A caller polling
        several monitors calls this for each, then waits `wait_time`.
        """
        if time.monotonic() < self._retry_at:
            return
        try:
            try:
                if self.source.replaced():
                    self.source.open()
                    self._last_version = None
                version = self.source.data_version()
            except BridgeStoreError as exc:
                self._failed(exc)
                raise
            if version != self._last_version or time.monotonic() - self._last_scan >= interval:
                summary = self.scan(stop)
                self._last_version, self._last_scan = version, time.monotonic()
                if on_scan is not None:
                    on_scan(summary)
            if self._failures:
                log.info("✅ scanning again after %d failed attempt(s)", self._failures)
            self._failures, self._last_error = 0, ""
        except (BridgeStoreError, ReviewDatabaseError) as exc:
            self.note_failure(exc, interval, poll)

    def note_failure(self, exc: WaMonitorError, interval: float, poll: float) -> None:
        """A failed poll or scan: reload the cursors, log once, back off before the next."""
        self._failures += 1
        self.forget_cursors()
        if str(exc) != self._last_error:
            log.error("❌ %s", exc)
            self._last_error = str(exc)
        # Back off up to the scan interval; a fault never becomes a busy loop.
        self._retry_at = time.monotonic() + min(interval, poll * 2 ** min(self._failures, 10))

    def wait_time(self, poll: float) -> float:
        """Seconds until this monitor wants polling again (`poll`, or the back-off left)."""
        return max(poll, self._retry_at - time.monotonic())


def deleted_posts(
    deletions: Iterable[Deletion], zone: tzinfo, read_at: datetime
) -> list[DeletedPost]:
    """The deletions as the review database keys posts; an unreadable time is `read_at`."""
    return [
        DeletedPost(d.chat_jid, message_key(d.id), parse_timestamp(d.deleted_at, zone) or read_at)
        for d in deletions
    ]


def filters_of(projects: dict[str, Project]) -> Filters:
    """The groups to read, by the text their drop pattern requires (the source's pre-filter)."""
    filters: dict[str | Prefilter | None, list[str]] = {}
    for jid, project in projects.items():
        filters.setdefault(prefilter(project.pattern), []).append(jid)
    return filters


_TAGGED = re.compile(r"[a-z][a-z-]*:")


def tagged_anchor(anchor: str | None, tag: str) -> str | None:
    """A source's anchor as a cursor keeps it: prefixed "tag:" for a tagged source.

    A tagged source's cursor always has an anchor (maybe just "tag:"), so a cursor without
    one is a bridge's. An anchor that would pass the column's 250 characters keeps only the
    tag (the store's re-creation then goes unseen for that cursor, never a drop).
    """
    if not tag:
        return anchor
    text = f"{tag}:{anchor or ''}"
    return text if len(text) <= 250 else f"{tag}:"


def owns_anchor(cursor: Cursor, tag: str) -> bool:
    """True when the cursor was written by a source of this tag (any for a fresh cursor)."""
    if cursor.last_rowid == 0:
        return True
    anchor = cursor.anchor
    if tag:
        return anchor is not None and anchor.startswith(f"{tag}:")
    return anchor is None or _TAGGED.match(anchor) is None


def recreated(
    source: Source, cursor: Cursor, high: int, moved: dict[str, bool], tag: str = ""
) -> str | None:
    """Why a cursor shows its store was re-created (rowids from 1 again), None if it does not.

    `high` is the store's highest rowid; `moved` keeps the source's answer per anchor, so
    groups sharing an anchor ask once; `tag` is the source's (see `tagged_anchor`).
    """
    if cursor.last_rowid == 0:
        return None
    if cursor.last_rowid > high:
        return f"its highest rowid {high} is below the cursor {cursor.last_rowid}"
    anchor = cursor.anchor
    if anchor and tag and anchor.startswith(f"{tag}:"):
        anchor = anchor[len(tag) + 1 :]
    if anchor:
        if anchor not in moved:
            moved[anchor] = source.anchor_moved_back(anchor)
        if moved[anchor]:
            return "the last message read is gone from it"
    return None


def find_drops(
    rows: Iterable[RawMessage], projects: dict[str, Project]
) -> tuple[list[Match], list[OddRow]]:
    """The rows naming drops, and the rows whose text could not be matched.

    Whatever a row holds, it costs at most itself: one that cannot be used is
    skipped and reported, never allowed to fail the batch, which would stop the
    cursor at it for good.
    """
    matched: list[Match] = []
    odd: list[OddRow] = []
    for row in rows:
        project = projects[row.chat_jid]
        try:
            drops = project.pattern.find(row.content)
        except Exception as exc:  # a row must never stop the scan
            odd.append(_unusable(row, project, exc))
            continue
        if drops:
            matched.append(Match(row, project, drops))
    return matched, odd


def drop_posts(
    matches: Iterable[Match], senders: Mapping[str, Sender], zone: tzinfo, read_at: datetime
) -> tuple[list[Post], list[OddRow]]:
    """The posts of matched rows (`senders`: theirs, resolved), and the rows that are odd.

    A row without a readable time gets `read_at`; a row that fails is skipped and
    reported, like in `find_drops`.
    """
    posts: list[Post] = []
    odd: list[OddRow] = []
    for match in matches:
        row, project = match.row, match.project
        try:
            row_posts, note = _row_posts(row, project, match.drops, senders, zone, read_at)
        except Exception as exc:  # a row must never stop the scan
            odd.append(_unusable(row, project, exc))
            continue
        posts.extend(row_posts)
        if note is not None:
            odd.append(note)
    return posts, odd


def read_posts(
    source: Source,
    rows: Iterable[RawMessage],
    projects: dict[str, Project],
    zone: tzinfo,
    read_at: datetime,
) -> tuple[list[Post], list[OddRow]]:
    """The drop posts of `rows`, and the rows that could not be read as written.

    Only the senders of the rows that name a drop are asked of the source.
    """
    matched, odd = find_drops(rows, projects)
    if not matched:
        return [], odd
    senders = source.resolve_senders(m.row.sender for m in matched)
    posts, more = drop_posts(matched, senders, zone, read_at)
    return posts, odd + more


def _row_posts(
    row: RawMessage,
    project: Project,
    drops: list[str],
    senders: Mapping[str, Sender],
    zone: tzinfo,
    read_at: datetime,
) -> tuple[list[Post], OddRow | None]:
    """The posts of one message naming `drops`, and a note when its time was unreadable."""
    note = None
    when = parse_timestamp(row.timestamp, zone)
    if when is None:
        when = read_at
        shown = row.timestamp if isinstance(row.timestamp, str) else repr(row.timestamp)
        note = OddRow(
            row.rowid,
            row.chat_jid,
            project.name,
            f"unreadable timestamp {clean_text(str(shown), 40)!r}",
            drops=tuple(drops),
        )
    if project.since is not None and when < project.since:
        return [], None
    sender = senders[row.sender]
    phone = clean_text(sender.phone, 50) or "unknown"
    name = clean_text(sender.name, 100) or phone
    key = message_key(row.id)
    posts = [
        Post(row.chat_jid, key, drop, project.name, phone, name, when, row.media) for drop in drops
    ]
    return posts, note


def _unusable(row: RawMessage, project: Project, exc: Exception) -> OddRow:
    reason = type(exc).__name__
    return OddRow(
        row.rowid, row.chat_jid, project.name, f"{reason}: {clean_text(str(exc), 120)}", reason
    )
