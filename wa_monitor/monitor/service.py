"""The long-running service around Monitor.run.

Between scans (Monitor.run's `before_poll`) it reloads the projects file when it
changed or on SIGHUP, writes the heartbeat, judges staleness and feeds the systemd
watchdog; after each scan (`on_scan`) it updates the metrics. A reload happens
between scans only, so a scan in hand always finishes with the config it began with.

Beside the scan, in a thread of its own, the media worker links the groups' messages to
the drops and fetches their photos; a scan that read rows wakes it, and it stops with
the service (a SIGTERM does not wait on a slow bridge).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, Final, NoReturn, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from wa_monitor.core import gateways, logs
from wa_monitor.core.config import Project, ProjectsConfig, parse_config, read_config_text
from wa_monitor.core.early_signals import take_early_signals
from wa_monitor.core.errors import (
    BridgeBusyError,
    BridgeStoreError,
    ConfigError,
    ReviewDatabaseError,
    SchemaVersionError,
    WaMonitorError,
)
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.settings import Settings
from wa_monitor.core.times import shown
from wa_monitor.monitor.health import group_staleness, store_changed_at
from wa_monitor.monitor.media_worker import MediaWorker
from wa_monitor.monitor.metrics import MonitorMetrics
from wa_monitor.monitor.photo_linker import PhotoLinker
from wa_monitor.monitor.projects_edit import already_audited, file_owner, make_diff, record_audit
from wa_monitor.monitor.scan import Monitor, ScanSummary
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.sources.protocol import Source
from wa_monitor.sources.waha_lids import WahaLidClient
from wa_monitor.store.database import open_review_store
from wa_monitor.store.heartbeats import outbox_depth, record_heartbeat
from wa_monitor.store.inbox_source import InboxReadError, InboxSource
from wa_monitor.store.media_queue import backlog
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import gateway_inbox, gateway_lids, gateway_sessions

log = logging.getLogger("wa_monitor")

S = TypeVar("S", bound=Source)

# The sources the service scans: the bridge's messages.db, and the webhook inbox in the
# review database (every inbox gateway's groups). The inbox's cursors carry its tag.
BRIDGE_FEED: Final = "bridge"
INBOX_FEED: Final = "inbox"
INBOX_TAG: Final = "inbox"


# -- systemd notification -----------------------------------------------------------------


_NOTIFY_PROBLEMS: set[str] = set()  # each told once, not at every watchdog ping


def sd_notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send `message` to systemd's $NOTIFY_SOCKET (a datagram); False when not under systemd."""
    env = os.environ if environ is None else environ
    address = env.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(address)
            # Never block the monitor: a listener that stopped reading drops the ping.
            sock.send(message.encode("utf-8"), socket.MSG_DONTWAIT)
    except OSError as exc:
        problem = f"{env.get('NOTIFY_SOCKET')}: {exc.strerror or exc}"
        if problem not in _NOTIFY_PROBLEMS:
            _NOTIFY_PROBLEMS.add(problem)
            log.warning("⚠️ cannot notify systemd at %s", problem)
        return False
    return True


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Half of systemd's WatchdogSec, when the watchdog is on for this process."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000


# -- the projects file --------------------------------------------------------------------


def error_kind(exc: BaseException) -> str:
    if isinstance(exc, InboxReadError):
        return "inbox"
    if isinstance(exc, BridgeBusyError):
        return "bridge_busy"
    if isinstance(exc, BridgeStoreError):
        return "bridge"
    if isinstance(exc, SchemaVersionError):
        return "schema"
    if isinstance(exc, ReviewDatabaseError):
        return "database"
    if isinstance(exc, ConfigError):
        return "config"
    return "other"


class ConfigWatcher:
    """Notices a changed projects file (or SIGHUP) and validates it before it is used."""

    SETTLE = 0.25  # seconds a changed file must stay unchanged before it is read
    SHOWN = 3  # problems quoted in the log line; `wa-monitor check-config` lists them all

    def __init__(
        self,
        path: Path,
        config: ProjectsConfig,
        hup: threading.Event | None = None,
        *,
        text: str | None = None,
    ) -> None:
        self.path = path
        self.config = config
        self.hup = hup or threading.Event()
        self._stamp = self._stat()
        if text is None:
            try:
                text = read_config_text(path)
            except ConfigError:
                text = ""
        self._good_text = text
        # What was last rejected (the text, or why it could not be read): told once.
        self._bad: tuple[str, str] | None = None
        self._pending: tuple[int, int, int] | None = self._stamp
        self._pending_since = 0.0

    def _settled(self, stamp: tuple[int, int, int] | None) -> bool:
        """True once the file has stayed the same for SETTLE seconds."""
        now = time.monotonic()
        if stamp != self._pending:
            self._pending, self._pending_since = stamp, now
            return False
        return now - self._pending_since >= self.SETTLE

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def poll(self) -> tuple[ProjectsConfig, str, str] | None:
        """(new config, old text, new text) when a valid new file appeared; else None.

        An invalid or unreadable file is logged once, with the reason, and raises
        ConfigError; the last good config stays.
        """
        forced = self.hup.is_set()
        self.hup.clear()
        stamp = self._stat()
        if not forced and stamp == self._stamp:
            return None
        if not forced and not self._settled(stamp):
            return None  # still being written (an editor truncates, then writes)
        self._stamp = stamp
        try:
            text = read_config_text(self.path)
        except ConfigError as exc:
            if stamp is None:
                self._reject(
                    ("gone", ""),
                    ConfigError([f"{self.path}: projects file is gone or unreadable"]),
                    "❌ projects file %s is gone or unreadable; still monitoring %d project(s) "
                    "of the last good file",
                )
            self._reject(("unreadable", str(exc)), exc)
        if text == self._good_text:
            if forced:
                log.info("🔁 SIGHUP: %s unchanged", self.path)
            self._bad = None
            return None
        if self._bad == ("text", text):
            return None
        try:
            config = parse_config(text, self.path)
        except ConfigError as exc:
            self._reject(("text", text), exc)
        old = self._good_text
        self._good_text, self._bad, self.config = text, None, config
        logs.use_zone(config.zone)
        return config, old, text

    def _reject(self, what: tuple[str, str], exc: ConfigError, message: str = "") -> NoReturn:
        """Log why the file is refused (once per distinct problem), then raise."""
        if what != self._bad:
            self._bad = what
            if message:
                log.error(message, self.path, len(self.config.enabled))
            else:
                problems = exc.problems
                shown = "; ".join(problems[: self.SHOWN])
                if len(problems) > self.SHOWN:
                    shown += (
                        f"; and {len(problems) - self.SHOWN} more "
                        "(`wa-monitor check-config` lists them all)"
                    )
                log.error(
                    "❌ projects file %s rejected, still monitoring %d project(s) of the last "
                    "good file: %s",
                    self.path,
                    len(self.config.enabled),
                    shown,
                )
        raise exc


# -- the service --------------------------------------------------------------------------


class GatedMonitor(Monitor[S]):
    """The monitor, telling the media worker when a scan runs (`idle` clear meanwhile).

    The worker holds its next write until the scan is over: drops come first, and on
    SQLite (one writer) a scan never queues behind a long run of photo writes. The
    monitors of one service share one `idle` (they scan in turn, in one thread).
    """

    def __init__(self, *args: Any, idle: threading.Event | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if idle is None:
            idle = threading.Event()
            idle.set()
        self.idle = idle

    def scan(
        self,
        stop: threading.Event | None = None,
        progress: Callable[[int, int], None] | None = None,
    ) -> ScanSummary:
        self.idle.clear()
        try:
            return super().scan(stop, progress)
        finally:
            self.idle.set()


@dataclass
class Counters:
    """What the service did since it started; written into every heartbeat."""

    scans: int = 0
    messages: int = 0
    new: Counter[str] = field(default_factory=Counter)
    resubmitted: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    reloads: int = 0
    rejected_reloads: int = 0
    rows_skipped: Counter[str] = field(default_factory=Counter)
    rows_unreadable_time: int = 0
    media_fetches: Counter[str] = field(default_factory=Counter)
    deletions: int = 0  # messages read as deleted in WhatsApp (their posts marked)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scans": self.scans,
            "messages": self.messages,
            "new": dict(self.new),
            "resubmitted": dict(self.resubmitted),
            "errors": dict(self.errors),
            "reloads": self.reloads,
            "rejected_reloads": self.rejected_reloads,
            "rows_skipped": dict(self.rows_skipped),
            "rows_unreadable_time": self.rows_unreadable_time,
            "media_fetches": dict(self.media_fetches),
            "deletions": self.deletions,
        }


def feed_of(project: Project, default_gateway: str) -> str:
    """The source a project's group is scanned from: the bridge's store, or the inbox."""
    gateway = gateways.gateway_of(project.gateway, default_gateway)
    return BRIDGE_FEED if gateway == gateways.BRIDGE else INBOX_FEED


def split_config(config: ProjectsConfig, default_gateway: str) -> dict[str, ProjectsConfig]:
    """The projects file restricted to each source's projects (both keys, maybe empty)."""
    return {
        feed: replace(
            config,
            projects=tuple(p for p in config.projects if feed_of(p, default_gateway) == feed),
        )
        for feed in (BRIDGE_FEED, INBOX_FEED)
    }


def feeds_needed(config: ProjectsConfig, default_gateway: str) -> set[str]:
    """The sources the enabled projects use (none enabled: the GATEWAY setting's)."""
    used = {feed_of(p, default_gateway) for p in config.enabled}
    if not used:
        used.add(BRIDGE_FEED if default_gateway == gateways.BRIDGE else INBOX_FEED)
    return used


@dataclass(frozen=True)
class InboxFreshness:
    """How lively the webhook inbox is: what came last, per group, and the sessions."""

    received_at: datetime | None  # the newest row's arrival (any group, any gateway)
    newest: dict[str, datetime | None]  # each group's newest message (WhatsApp's time)
    sessions: list[dict[str, Any]]  # each gateway session's last reported state


def inbox_freshness(store: ReviewStore, jids: Sequence[str]) -> InboxFreshness:
    """Read the inbox's freshness: three short reads, outside any scan batch."""
    t, g = gateway_inbox, gateway_sessions
    wanted = sorted(set(jids))
    newest: dict[str, datetime | None] = dict.fromkeys(wanted)
    with store.read() as conn:
        received = conn.execute(sa.select(sa.func.max(t.c.received_at))).scalar()
        if wanted:
            query = (
                sa.select(t.c.chat_jid, sa.func.max(t.c.sent_at))
                .where(t.c.chat_jid.in_(wanted))
                .group_by(t.c.chat_jid)
            )
            for jid, sent_at in conn.execute(query):
                if sent_at is not None:
                    newest[jid] = datetime.fromtimestamp(float(sent_at), UTC)
        sessions = [
            {
                "gateway": r.gateway,
                "session": r.session,
                "status": r.status,
                "changed_at": r.changed_at.isoformat() if r.changed_at else None,
            }
            for r in conn.execute(sa.select(g).order_by(g.c.gateway, g.c.session))
        ]
    return InboxFreshness(received, newest, sessions)


class LidLookups:
    """Looks up, at WAHA, the phone numbers of the LID senders the inbox holds without one.

    It runs in a small thread of its own, never inside a scan batch: each round reads the
    new inbox rows' LID senders, asks WAHA (a short timeout each) for those not known
    yet, and stores what it learns in `gateway_lids`, where the inbox source finds it for
    the posts read after. A LID WAHA does not know is asked again an hour later; one
    whose lookup failed, after a back-off. Until then the LID is the post's sender.
    """

    PER_ROUND = 20  # lookups per round at most: a burst of new senders waits its turn
    ROWS_PER_READ = 500
    AGAIN_UNKNOWN = 3600.0  # seconds before a LID WAHA did not know is asked again
    RETRY_FIRST = 5.0  # seconds before a failed lookup is tried again (doubling to 10 min)

    def __init__(self, store: ReviewStore, client: WahaLidClient, *, every: float = 2.0) -> None:
        self.store = store
        self.client = client
        self.every = every
        self.after = 0  # the highest inbox seq read for senders
        self.pending: dict[str, tuple[float, int]] = {}  # LID → (next try, failures)
        self.found = 0
        self.last_error = ""
        self.rounded = threading.Event()  # set after each round (tests wait on it)
        self._wake = threading.Event()

    def wake(self) -> None:
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        try:
            while not stop.is_set():
                self._wake.clear()
                try:
                    self.round()
                except WaMonitorError as exc:
                    if str(exc) != self.last_error:
                        log.warning("⚠️ LID lookups: %s; trying again", exc)
                    self.last_error = str(exc)
                self.rounded.set()
                self._wake.wait(self.every)
        finally:
            self.client.close()

    def round(self) -> None:
        """Read new LID senders, drop those known, look up those due."""
        self._read_senders()
        if not self.pending:
            return
        self._forget_known()
        now = time.monotonic()
        due = [lid for lid, (at, _) in self.pending.items() if at <= now][: self.PER_ROUND]
        for lid in due:
            answer = self.client.phone_of(lid)
            failures = self.pending[lid][1]
            if answer.status == "found" and answer.phone:
                self._store(lid, answer.phone)
                del self.pending[lid]
                self.found += 1
            elif answer.status == "unknown":
                self.pending[lid] = (now + self.AGAIN_UNKNOWN, 0)
            else:
                wait = min(600.0, self.RETRY_FIRST * 2**failures)
                self.pending[lid] = (now + wait, failures + 1)
                if answer.reason != self.last_error:
                    log.warning(
                        "⚠️ LID %s not looked up: %s; the post shows the LID until it is",
                        lid,
                        answer.reason,
                    )
                self.last_error = answer.reason
                break  # WAHA is away: the others wait for the next round

    def _read_senders(self) -> None:
        t = gateway_inbox
        while True:
            query = (
                sa.select(t.c.seq, t.c.sender)
                .where(
                    t.c.seq > self.after,
                    t.c.gateway == gateways.WAHA,
                    t.c.sender.like("%@lid"),
                    t.c.sender_pn.is_(None),
                )
                .order_by(t.c.seq)
                .limit(self.ROWS_PER_READ)
            )
            with self.store.read() as conn:
                rows = conn.execute(query).all()
            for seq, sender in rows:
                self.after = max(self.after, int(seq))
                self.pending.setdefault(sender, (0.0, 0))
            if len(rows) < self.ROWS_PER_READ:
                return

    def _forget_known(self) -> None:
        g = gateway_lids
        lids = sorted(self.pending)
        for start in range(0, len(lids), 400):
            chunk = lids[start : start + 400]
            with self.store.read() as conn:
                known = conn.execute(
                    sa.select(g.c.lid).where(g.c.lid.in_(chunk), g.c.phone.is_not(None))
                ).scalars()
                for lid in known:
                    self.pending.pop(lid, None)

    def _store(self, lid: str, phone: str) -> None:
        g = gateway_lids
        insert = postgresql.insert if self.store.dialect == "postgresql" else sqlite.insert
        stmt = insert(g).values(
            lid=lid, phone=phone, gateway=gateways.WAHA, looked_up_at=datetime.now(UTC)
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=["lid"],
            set_={"phone": stmt.excluded.phone, "looked_up_at": stmt.excluded.looked_up_at},
        )
        with self.store.begin() as conn:
            conn.execute(stmt)

    def status(self) -> dict[str, Any]:
        return {"pending": len(self.pending), "found": self.found, "last_error": self.last_error}


class Linkers:
    """The photo linkers of the service's sources, stepped in turn (the media worker's)."""

    def __init__(self) -> None:
        self.linkers: dict[str, PhotoLinker] = {}

    def step(self, max_rows: int = 5000) -> bool:
        more = False
        for linker in list(self.linkers.values()):
            more = linker.step(max_rows) or more
        return more


class Service:
    """Monitor.run plus reload, heartbeat, staleness, metrics and the systemd watchdog."""

    BACKLOG_EVERY = 15.0  # seconds between two reads of the photo queue's counts

    def __init__(
        self,
        settings: Settings,
        config_path: Path,
        *,
        poll: float = 0.1,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        self.settings = settings
        self.config_path = config_path
        self.poll = poll
        self.environ = os.environ if environ is None else environ
        self.metrics = MonitorMetrics()
        self.counters = Counters()
        self.hours = WorkingHours.parse(settings.working_hours)
        self.started_at = datetime.now(UTC)
        self.last_scan_at: datetime | None = None
        self.last_scan_ok = time.monotonic()
        self.last_scan_duration = 0.0
        self.last_error = ""
        self.healthy = True
        self.stale_groups: set[str] = set()
        self.bridge_stale = False
        self.group_status: list[dict[str, Any]] = []
        self.bridge_changed_at: datetime | None = None
        self.hup = threading.Event()  # SIGHUP: re-read the projects file
        self.bridge_error = ""
        self.scanned = threading.Event()  # set after each scan (tests wait on it)
        self.beaten = threading.Event()  # set after each heartbeat
        self._last_beat = float("-inf")
        self._last_watchdog = float("-inf")
        self._watchdog = watchdog_interval(self.environ)
        self._ready = False  # READY=1 sent: only then may the watchdog be fed
        self._beat_error = ""
        self._metrics_server: Any = None
        # One monitor per source in use (BRIDGE_FEED, INBOX_FEED), each with the projects
        # file restricted to its projects; they scan in turn, in the service's thread.
        self.monitors: dict[str, GatedMonitor[Any]] = {}
        self._config: ProjectsConfig | None = None
        self._split: dict[str, ProjectsConfig] = {}
        self.scan_idle = threading.Event()  # clear while any of the monitors scans
        self.scan_idle.set()
        self.watcher: ConfigWatcher | None = None
        self.store: ReviewStore | None = None
        self.media_worker: MediaWorker | None = None
        self._media_stop = threading.Event()
        self._media_thread: threading.Thread | None = None
        self._media_sources: dict[str, BridgeStore | InboxSource] = {}
        self.linkers = Linkers()
        self._backlog_read = float("-inf")
        # The webhook inbox's freshness, as check_staleness last found it.
        self.inbox_received_at: datetime | None = None
        self.inbox_stale = False
        self.inbox_error = ""
        self.inbox_sessions: list[dict[str, Any]] = []
        self._session_states: dict[tuple[str, str], str] = {}
        self.lid_lookups: LidLookups | None = None
        self._lid_thread: threading.Thread | None = None
        self._unscanned_told = ""

    # -- setup --------------------------------------------------------------------------

    def open(self) -> None:
        """Load and check everything; raises a clear error when the service cannot start.

        WHATSAPP_DB_PATH is required only when a project's gateway is `bridge`.
        """
        text = read_config_text(self.config_path)
        config = parse_config(text, self.config_path)
        logs.use_zone(config.zone)
        store = open_review_store(self.settings, pre_ping=False)
        default = self.settings.gateway
        try:
            needed = feeds_needed(config, default)
            if BRIDGE_FEED in needed:
                self.settings.require_bridge()
            self.store = store
            self._config, self._split = config, split_config(config, default)
            for feed in sorted(needed):
                self._add_feed(feed)
        except BaseException:
            for monitor in self.monitors.values():
                monitor.source.close()
            self.monitors.clear()
            self.store = None
            store.dispose()
            raise
        self.watcher = ConfigWatcher(self.config_path, config, self.hup, text=text)
        if self.settings.metrics_port:
            from prometheus_client import start_http_server

            try:
                self._metrics_server, _ = start_http_server(
                    self.settings.metrics_port,
                    addr=self.settings.metrics_addr,
                    registry=self.metrics.registry,
                )
            except OSError as exc:
                log.warning(
                    "⚠️ cannot serve metrics on %s:%s (%s); running without",
                    self.settings.metrics_addr,
                    self.settings.metrics_port,
                    exc.strerror,
                )

    def _add_feed(self, feed: str) -> None:
        """Start scanning one source (its monitor, and its photo linker once photos run)."""
        assert self.store is not None
        source: BridgeStore | InboxSource
        if feed == BRIDGE_FEED:
            source = BridgeStore(self.settings.require_bridge(), self.settings.whatsapp_store_path)
            try:
                source.open()
            except BridgeStoreError as exc:
                # Not there yet (bridge not paired, being re-paired) or unreadable: the
                # monitor logs it once and opens the file when a valid one appears, instead
                # of the service exiting into a restart loop.
                self.scan_failed(exc)
        else:
            source = InboxSource(self.store)
        self.monitors[feed] = GatedMonitor(
            self._split[feed],
            source,
            self.store,
            on_error=self.scan_failed,
            on_scanned=self._scanned,
            anchor_tag=INBOX_TAG if feed == INBOX_FEED else "",
            idle=self.scan_idle,
        )
        if self.media_worker is not None:
            self._add_linker(feed)

    def _add_linker(self, feed: str) -> None:
        """The photo linker of a source, with a connection (a source object) of its own."""
        assert self.store is not None
        source: BridgeStore | InboxSource
        if feed == BRIDGE_FEED:
            source = BridgeStore(self.settings.require_bridge(), self.settings.whatsapp_store_path)
        else:
            source = InboxSource(self.store)
        self._media_sources[feed] = source
        self.linkers.linkers[feed] = PhotoLinker(
            self.store,
            source,
            lambda: self._split[feed],
            anchor_tag=INBOX_TAG if feed == INBOX_FEED else "",
        )

    @property
    def monitor(self) -> GatedMonitor[Any] | None:
        """The bridge's monitor when there is one, else the inbox's (None before `open`)."""
        return self.monitors.get(BRIDGE_FEED) or self.monitors.get(INBOX_FEED)

    def gateway_of_chat(self, chat_jid: str) -> str | None:
        """The gateway a monitored group's messages (and photos) come through."""
        project = self.config.by_group().get(chat_jid)
        if project is None:
            return None
        return gateways.gateway_of(project.gateway, self.settings.gateway)

    def _open_unless_stopped(self, stop: threading.Event) -> bool:
        """open(), unless `stop` is set first; False when it was.

        open() runs in a thread of its own, so that a SIGTERM is obeyed at once even while
        start-up waits: for a database that does not answer (up to its connect timeout),
        for a bridge that holds its store locked (the busy timeout). open() only reads,
        so a start-up left behind costs nothing when the process exits.
        """
        if stop.is_set():
            return False
        done = threading.Event()
        failed: list[BaseException] = []

        def start() -> None:
            try:
                self.open()
            except BaseException as exc:  # handed to the waiting thread, raised there
                failed.append(exc)
            finally:
                done.set()

        threading.Thread(target=start, name="wa-monitor start-up", daemon=True).start()
        while not done.wait(self.poll):
            if stop.is_set():
                return False
        if failed:
            raise failed[0]
        return True

    def start_media_worker(self) -> None:
        """The media worker in its own thread, with a bridge connection of its own.

        Started after the first scan, so that it never delays the drops a restart catches
        up on; from then on it waits while a scan runs (GatedMonitor.idle).
        """
        assert self.store is not None and self.monitors
        for feed in self.monitors:
            self._add_linker(feed)
        self.media_worker = MediaWorker(
            self.store,
            self.settings,
            linker=self.linkers,
            on_round=self._media_round,
            scan_idle=self.scan_idle,
            gateway_of=self.gateway_of_chat,
        )
        self._media_thread = threading.Thread(
            target=self.media_worker.run,
            args=(self._media_stop,),
            name="wa-monitor media worker",
            daemon=True,
        )
        self._media_thread.start()

    def start_lid_lookups(self) -> None:
        """WAHA's LID lookups in a small thread, when a project uses WAHA and WAHA_URL is set."""
        assert self.store is not None
        uses_waha = any(
            gateways.gateway_of(p.gateway, self.settings.gateway) == gateways.WAHA
            for p in self.config.enabled
        )
        if not uses_waha or not self.settings.waha_url:
            return
        client = WahaLidClient(
            self.settings.waha_url, self.settings.waha_api_key, self.settings.waha_session
        )
        self.lid_lookups = LidLookups(self.store, client)
        self._lid_thread = threading.Thread(
            target=self.lid_lookups.run,
            args=(self._media_stop,),
            name="wa-monitor LID lookups",
            daemon=True,
        )
        self._lid_thread.start()

    def stop_media_worker(self, timeout: float = 5.0) -> None:
        """Stop the worker: a fetch in hand is left to its lease if it takes longer."""
        self._media_stop.set()
        if self.lid_lookups is not None:
            self.lid_lookups.wake()
            if self._lid_thread is not None:
                self._lid_thread.join(timeout)
        if self.media_worker is not None:
            self.media_worker.wake()
        if self._media_thread is not None:
            self._media_thread.join(timeout)
            if self._media_thread.is_alive():
                # Its connections are left to the process's exit: closing them under it
                # would turn a clean stop into an error.
                log.info(
                    "⏳ media worker still busy; what it held is taken up again after the "
                    "lease by the next start"
                )
                return
            self._media_thread = None
        for source in self._media_sources.values():
            source.close()
        self._media_sources.clear()
        self.linkers.linkers.clear()

    def _media_round(self, worker: MediaWorker) -> None:
        """After each round of the worker: its counts into the metrics and the heartbeat.

        The queue's counts are read at most every BACKLOG_EVERY seconds: on millions of
        rows a count takes a moment, and rounds can follow each other quickly.
        """
        now = time.monotonic()
        if self.store is not None and now - self._backlog_read >= self.BACKLOG_EVERY:
            self._backlog_read = now
            with contextlib.suppress(WaMonitorError):
                self.metrics.observe_media(backlog(self.store))
        status = worker.status()
        fetches = Counter(status["fetches"])
        self.metrics.observe_fetches(fetches - self.counters.media_fetches)
        self.counters.media_fetches = fetches

    def close(self) -> None:
        self.stop_media_worker()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
            self._metrics_server.server_close()
            self._metrics_server = None
        for monitor in self.monitors.values():
            monitor.source.close()
        if self.store is not None:
            self.store.dispose()

    @property
    def config(self) -> ProjectsConfig:
        """The whole projects file in use (each monitor has its own projects of it)."""
        assert self._config is not None
        return self._config

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Open (unless opened), serve until `stop` is set, close. Start errors are raised."""
        if not self.monitors and not self._open_unless_stopped(stop):
            log.info("👋 Drop monitor stopped during start-up, before its first scan")
            return
        assert self.monitors
        try:
            self._log_startup()
            self.tick(force=True)
            sd_notify("READY=1\nSTATUS=scanning", self.environ)
            self._ready = True
            self._serve(stop)
        finally:
            sd_notify("STOPPING=1", self.environ)
            self._beat(stopping=True)
            self.close()
        log.info("👋 Drop monitor stopped")

    def _serve(self, stop: threading.Event) -> None:
        """Poll every monitor in turn (each scans when its source changed), until `stop`.

        Between rounds: reload, heartbeat, staleness and watchdog (`tick`). A source that
        fails backs off on its own; the others keep their pace.
        """
        interval = self.settings.scan_interval
        while not stop.is_set():
            self.tick()
            for monitor in list(self.monitors.values()):
                if stop.is_set():
                    break
                monitor.poll_once(stop, interval, poll=self.poll, on_scan=self.after_scan)
            waits = [m.wait_time(self.poll) for m in self.monitors.values()]
            stop.wait(min(waits, default=self.poll))

    def _log_startup(self) -> None:
        assert self.store is not None
        config = self.config
        sources = []
        bridge = self.monitors.get(BRIDGE_FEED)
        if isinstance(bridge, GatedMonitor) and isinstance(bridge.source, BridgeStore):
            sources.append(f"bridge store {bridge.source.messages_db}")
        if INBOX_FEED in self.monitors:
            sources.append("webhook inbox")
        log.info(
            "📂 %s: %s, review database %s, projects file %s",
            self.settings.env_name or "default",
            ", ".join(sources),
            self.store.masked_url,
            self.config_path,
        )
        log.info("🎯 MONITORING %d PROJECTS:", len(config.enabled))
        for p in config.enabled:
            gateway = gateways.gateway_of(p.gateway, self.settings.gateway)
            via = "" if gateway == gateways.BRIDGE else f" (through {gateway})"
            log.info("   • %s: %s%s", p.name, p.group_jid, via)
        log.info("✅ Drop monitor started (scan interval: %gs)", self.settings.scan_interval)

    def after_scan(self, summary: ScanSummary) -> None:
        now = datetime.now(UTC)
        names = {p.group_jid: p.name for p in self.config.projects}
        self.metrics.observe_scan(summary, self.last_scan_duration, names, now)
        c = self.counters
        c.scans += 1
        c.messages += summary.messages
        c.new.update(summary.new)
        c.resubmitted.update(summary.resubmitted)
        c.rows_skipped.update(summary.skipped)
        c.rows_unreadable_time += summary.unreadable_times
        c.deletions += summary.deletions
        self.last_scan_at = now
        self.last_scan_ok = time.monotonic()
        self.last_error = ""
        self.bridge_error = ""
        if self.lid_lookups is None and not self._media_stop.is_set():
            self.start_lid_lookups()
        elif summary.messages and self.lid_lookups is not None:
            self.lid_lookups.wake()
        if self.media_worker is None and not self._media_stop.is_set():
            # After the first scan: the catch-up of a restart goes before any photo.
            self.start_media_worker()
        elif summary.messages and self.media_worker is not None:
            self.media_worker.wake()  # new rows: photos to link and fetch
        self.scanned.set()

    def _scanned(self, seconds: float) -> None:
        self.last_scan_duration = seconds

    def scan_failed(self, exc: WaMonitorError) -> None:
        kind = error_kind(exc)
        if isinstance(exc, InboxReadError):
            self.inbox_error = str(exc)
        self.counters.errors[kind] += 1
        self.metrics.errors.labels(kind).inc()
        self.last_error = str(exc)
        if kind.startswith("bridge"):
            self.bridge_error = str(exc)

    def tick(self, force: bool = False) -> None:
        """Between scans: reload, heartbeat and staleness (when due), watchdog."""
        if self.reload():
            if self._ready:  # `systemctl status` shows the new project count at once
                sd_notify(f"STATUS={self._status()}", self.environ)
            # A new project is read at once, not after up to SCAN_INTERVAL seconds.
            for monitor in list(self.monitors.values()):
                try:
                    self.after_scan(monitor.scan())
                except (BridgeStoreError, ReviewDatabaseError) as exc:
                    monitor.note_failure(exc, self.settings.scan_interval, self.poll)
        now = time.monotonic()
        if force or now - self._last_beat >= self.settings.heartbeat_interval:
            self._last_beat = now
            self.check_staleness()
            self._beat()
        self._feed_watchdog(now)

    def reload(self) -> bool:
        """Apply a changed projects file; True when a new config took effect."""
        assert self.watcher is not None and self.monitors
        try:
            changed = self.watcher.poll()
        except ConfigError:
            self.counters.rejected_reloads += 1
            self.counters.errors["config"] += 1
            self.metrics.reloads.labels("rejected").inc()
            self.metrics.errors.labels("config").inc()
            return False
        if changed is None:
            return False
        config, old, new = changed
        before = {p.name for p in self.config.enabled}
        after = {p.name for p in config.enabled}
        self._apply(config)
        self.counters.reloads += 1
        self.metrics.reloads.labels("applied").inc()
        log.info(
            "🔁 projects file reloaded: %d project(s) monitored%s%s",
            len(config.enabled),
            f", added {', '.join(sorted(after - before))}" if after - before else "",
            f", stopped {', '.join(sorted(before - after))}" if before - after else "",
        )
        self._audit_reload(old, new)
        return True

    def _apply(self, config: ProjectsConfig) -> None:
        """Hand each monitor its projects of a new file; start a source newly in use.

        A project moved to another gateway is read by the other monitor from the next
        scan on: its cursor names the source it was read from, so the new one reads it
        from its start (the review database ignores what it recorded already).
        """
        default = self.settings.gateway
        old = self.config
        self._config, self._split = config, split_config(config, default)
        for project in config.enabled:
            was = old.by_name(project.name)
            if (
                was is not None
                and was.enabled
                and feed_of(was, default) != feed_of(project, default)
            ):
                log.info(
                    "🔀 %s now comes through %s (was %s)",
                    project.name,
                    gateways.gateway_of(project.gateway, default),
                    gateways.gateway_of(was.gateway, default),
                )
        for feed in sorted(feeds_needed(config, default) - set(self.monitors)):
            if feed == BRIDGE_FEED and self.settings.whatsapp_db_path is None:
                names = ", ".join(p.name for p in self._split[feed].enabled)
                if names != self._unscanned_told:
                    log.error(
                        "❌ %s use(s) the bridge, but WHATSAPP_DB_PATH is not set: not scanned "
                        "until it is (point it at the bridge's store/messages.db, restart)",
                        names,
                    )
                    self._unscanned_told = names
                continue
            self._add_feed(feed)
        for feed, monitor in self.monitors.items():
            monitor.set_config(self._split[feed])
            # Cursors as the database has them: a group moved here was advanced by the other.
            monitor.forget_cursors()
        if self.media_worker is not None:
            self.media_worker.wake()

    def _audit_reload(self, old: str, new: str) -> None:
        """Record a change made outside `wa-monitor projects` (an editor, a deploy)."""
        assert self.store is not None
        try:
            if already_audited(self.store, self.config_path, new):
                return
            record_audit(
                self.store,
                actor=file_owner(self.config_path),
                source="file",
                path=self.config_path,
                diff=make_diff(old, new, self.config_path),
            )
        except WaMonitorError as exc:
            log.warning("⚠️ projects file change not audited: %s", exc)

    def check_staleness(self) -> None:
        config = self.config
        now = datetime.now(UTC)
        default = self.settings.gateway
        names = {p.group_jid: p.name for p in config.enabled}
        newest: dict[str, datetime | None] = {}
        # A source no project uses any more (all moved away) is not judged.
        bridge = self.monitors.get(BRIDGE_FEED)
        if (
            bridge is not None
            and isinstance(bridge.source, BridgeStore)
            and self._split[BRIDGE_FEED].enabled
        ):
            found = self._check_bridge(bridge.source, config, now)
            if found is not None:
                newest.update(found)
        else:
            self.bridge_stale = False
        if INBOX_FEED in self.monitors and self._split[INBOX_FEED].enabled:
            found = self._check_inbox(config, now)
            if found is not None:
                newest.update(found)
        else:
            self.inbox_stale = False
        checks = group_staleness(
            newest, names, self.settings.stale_after, self.hours, config.zone, now=now
        )
        stale_now = {c.detail.split(":", 1)[0] for c in checks if c.status == "warn"}
        for jid in sorted(stale_now - self.stale_groups):
            check = next(c for c in checks if c.detail.startswith(jid))
            log.warning("⚠️ %s is stale: %s", names[jid], check.detail)
        for jid in sorted(self.stale_groups - stale_now):
            if jid in names:
                log.info("✅ %s has new messages again", names[jid])
        self.stale_groups = stale_now
        self.metrics.stale_groups.set(len(stale_now))
        self.metrics.newest_message_age.clear()
        self.group_status = []
        projects = config.by_group()
        for jid, when in newest.items():
            if when is not None:
                self.metrics.newest_message_age.labels(names[jid], jid).set(
                    (now - when).total_seconds()
                )
            self.group_status.append(
                {
                    "jid": jid,
                    "project": names[jid],
                    "gateway": gateways.gateway_of(projects[jid].gateway, default),
                    "newest_at": when.isoformat() if when else None,
                    "stale": jid in stale_now,
                }
            )

    def _check_bridge(
        self, source: BridgeStore, config: ProjectsConfig, now: datetime
    ) -> dict[str, datetime | None] | None:
        """The bridge store's freshness; its groups' newest messages (None: unreadable)."""
        path = source.messages_db
        changed = store_changed_at(path)
        self.bridge_changed_at = changed
        if changed is not None:
            age = (now - changed).total_seconds()
            self.metrics.bridge_age.set(age)
            stale = age > self.settings.bridge_stale_after and self.hours.contains(now, config.zone)
            if stale and not self.bridge_stale:
                log.warning(
                    "⚠️ the bridge store %s has not changed for %d min: is the bridge running "
                    "and connected?",
                    path,
                    age // 60,
                )
            elif self.bridge_stale and not stale:
                log.info("✅ the bridge store %s is changing again", path)
            self.bridge_stale = stale
        names = {p.group_jid: p.name for p in self._split[BRIDGE_FEED].enabled}
        try:
            return source.newest_messages(names)
        except BridgeStoreError as exc:
            self.scan_failed(exc)
            return None

    def _check_inbox(
        self, config: ProjectsConfig, now: datetime
    ) -> dict[str, datetime | None] | None:
        """The inbox's freshness (its newest received_at, the gateways' session states);
        its groups' newest messages (None: the database cannot be read now)."""
        assert self.store is not None
        jids = [p.group_jid for p in self._split[INBOX_FEED].enabled]
        try:
            freshness = inbox_freshness(self.store, jids)
        except WaMonitorError as exc:
            self.inbox_error = str(exc)
            return None
        self.inbox_error = ""
        self.inbox_received_at = freshness.received_at
        self.inbox_sessions = freshness.sessions
        for session in freshness.sessions:
            key = (session["gateway"], session["session"])
            was = self._session_states.get(key)
            if was is not None and was != session["status"]:
                log.info("📶 %s session %s: %s → %s", key[0], key[1], was, session["status"])
            self._session_states[key] = session["status"]
        stale = False
        if freshness.received_at is not None:
            age = (now - freshness.received_at).total_seconds()
            stale = age > self.settings.bridge_stale_after and self.hours.contains(now, config.zone)
            if stale and not self.inbox_stale:
                log.warning(
                    "⚠️ the webhook inbox has received nothing for %d min: is the gateway "
                    "running, connected, and its webhook pointed at the dashboard?",
                    age // 60,
                )
            elif self.inbox_stale and not stale:
                log.info("✅ the webhook inbox is receiving messages again")
        self.inbox_stale = stale
        return freshness.newest

    def is_healthy(self) -> bool:
        """Scans succeed (recently) and the bridge store is not stale."""
        limit = max(4 * self.settings.scan_interval, 60.0)
        return (
            time.monotonic() - self.last_scan_ok <= limit
            and not self.bridge_stale
            and not self.inbox_stale
        )

    def status(self) -> dict[str, Any]:
        assert self.monitors
        bridge = self.monitors.get(BRIDGE_FEED)
        return {
            "env": self.settings.env_name,
            # A heartbeat written under ALLOW_SHARED_DATABASE claims no database (the guard).
            "shared_database": self.settings.allow_shared_database,
            "config": str(self.config_path),
            "projects": [p.name for p in self.config.enabled],
            "gateways": sorted(
                {gateways.gateway_of(p.gateway, self.settings.gateway) for p in self.config.enabled}
            ),
            "last_scan_at": self.last_scan_at.isoformat() if self.last_scan_at else None,
            "last_scan_seconds": round(self.last_scan_duration, 4),
            "last_error": self.last_error,
            "healthy": self.healthy,
            "bridge": self._bridge_status(bridge.source) if bridge is not None else None,
            "inbox": self._inbox_status() if INBOX_FEED in self.monitors else None,
            "groups": self.group_status,
            "outbox_pending": self._outbox(),
            "media": self.media_worker.status() if self.media_worker is not None else None,
        }

    def _bridge_status(self, source: Source) -> dict[str, Any] | None:
        if not isinstance(source, BridgeStore):
            return None
        return {
            "path": str(source.messages_db),
            "changed_at": self.bridge_changed_at.isoformat() if self.bridge_changed_at else None,
            "stale": self.bridge_stale,
            "readable": not self.bridge_error,
            "error": self.bridge_error,
            "contacts_error": source.contacts_problem,
        }

    def _inbox_status(self) -> dict[str, Any]:
        """The webhook inbox as the heartbeat shows it (`wa-monitor status`, the health page)."""
        received = self.inbox_received_at
        return {
            "gateways": sorted(
                {
                    gateways.gateway_of(p.gateway, self.settings.gateway)
                    for p in self._split[INBOX_FEED].enabled
                }
            ),
            "received_at": received.isoformat() if received else None,
            "stale": self.inbox_stale,
            "readable": not self.inbox_error,
            "error": self.inbox_error,
            "sessions": self.inbox_sessions,
            "lid_lookups": self.lid_lookups.status() if self.lid_lookups is not None else None,
        }

    def _outbox(self) -> int | None:
        assert self.store is not None
        try:
            depth = outbox_depth(self.store)
        except WaMonitorError:
            return None
        self.metrics.outbox.set(depth)
        return depth

    def _beat(self, *, stopping: bool = False) -> None:
        if self.store is None or not self.monitors:
            return
        self.healthy = self.is_healthy() and not stopping
        self.metrics.healthy.set(1 if self.healthy else 0)
        status = self.status()
        if stopping:
            status["stopped_at"] = datetime.now(UTC).isoformat()
        try:
            record_heartbeat(
                self.store,
                self.settings.instance,
                started_at=self.started_at,
                counters=self.counters.as_dict(),
                status=status,
            )
        except WaMonitorError as exc:
            self.scan_failed(exc)
            if str(exc) != self._beat_error:  # once per distinct fault, not every beat
                log.warning("⚠️ heartbeat not recorded: %s", exc)
            self._beat_error = str(exc)
            return
        self._beat_error = ""
        self.beaten.set()

    def _feed_watchdog(self, now: float) -> None:
        if not self._ready or self._watchdog is None:
            return
        if now - self._last_watchdog < self._watchdog:
            return
        if not self.is_healthy():
            return  # systemd restarts a monitor that stays unhealthy past WatchdogSec
        self._last_watchdog = now
        sd_notify(f"WATCHDOG=1\nSTATUS={self._status()}", self.environ)

    def _status(self) -> str:
        """The one-line status systemd shows in `systemctl status`."""
        last = shown(self.last_scan_at, self.config.zone, seconds=True, empty="none yet")
        return (
            f"{len(self.config.enabled)} project(s); last scan {last}; "
            f"{sum(self.counters.new.values())} new drop(s) since start"
        )


def install_signal_handlers(
    stop: threading.Event,
    hup: threading.Event,
    *,
    starting: Callable[[], bool] | None = None,
) -> None:
    """SIGTERM/SIGINT finish the batch in hand and stop; SIGHUP re-reads the projects file.

    A signal caught before, while the command was being imported (wa_monitor.cli.launch),
    is acted on now. `starting` tells whether the service is still starting up.
    """

    def on_stop(signum: int, _frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if starting is not None and starting():
            log.info("🛑 %s received during start-up: stopping", name)
        else:
            log.info("🛑 %s received: finishing the batch in hand", name)
        stop.set()

    def on_hup(_signum: int, _frame: FrameType | None) -> None:
        hup.set()

    signal.signal(signal.SIGTERM, on_stop)
    signal.signal(signal.SIGINT, on_stop)
    with contextlib.suppress(AttributeError, ValueError):
        signal.signal(signal.SIGHUP, on_hup)
    for signum in take_early_signals():
        (on_hup if signum == getattr(signal, "SIGHUP", None) else on_stop)(signum, None)


def run_service(settings: Settings, config_path: Path) -> None:
    """`wa-monitor run`: serve until SIGTERM; SIGHUP re-reads the projects file."""
    stop = threading.Event()
    service = Service(settings, config_path)
    install_signal_handlers(stop, service.hup, starting=lambda: not service._ready)
    service.run(stop)
