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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any, NoReturn

from wa_monitor.core import logs
from wa_monitor.core.config import ProjectsConfig, parse_config, read_config_text
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
from wa_monitor.store.database import open_review_store
from wa_monitor.store.heartbeats import outbox_depth, record_heartbeat
from wa_monitor.store.media_queue import backlog
from wa_monitor.store.review_store import ReviewStore

log = logging.getLogger("wa_monitor")


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


class GatedMonitor(Monitor[BridgeStore]):
    """The monitor, telling the media worker when a scan runs (`idle` clear meanwhile).

    The worker holds its next write until the scan is over: drops come first, and on
    SQLite (one writer) a scan never queues behind a long run of photo writes.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.idle = threading.Event()
        self.idle.set()

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
        }


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
        self.monitor: GatedMonitor | None = None
        self.watcher: ConfigWatcher | None = None
        self.store: ReviewStore | None = None
        self.media_worker: MediaWorker | None = None
        self._media_stop = threading.Event()
        self._media_thread: threading.Thread | None = None
        self._media_source: BridgeStore | None = None
        self._backlog_read = float("-inf")

    # -- setup --------------------------------------------------------------------------

    def open(self) -> None:
        """Load and check everything; raises a clear error when the service cannot start."""
        text = read_config_text(self.config_path)
        config = parse_config(text, self.config_path)
        logs.use_zone(config.zone)
        store = open_review_store(self.settings, pre_ping=False)
        try:
            bridge = BridgeStore(self.settings.require_bridge(), self.settings.whatsapp_store_path)
            try:
                bridge.open()
            except BridgeStoreError as exc:
                # Not there yet (bridge not paired, being re-paired) or unreadable: Monitor.run
                # logs it once and opens the file when a valid one appears, instead of the
                # service exiting into a restart loop.
                self.scan_failed(exc)
        except BaseException:
            store.dispose()
            raise
        self.store = store
        self.watcher = ConfigWatcher(self.config_path, config, self.hup, text=text)
        self.monitor = GatedMonitor(
            config, bridge, store, on_error=self.scan_failed, on_scanned=self._scanned
        )
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
        assert self.store is not None and self.monitor is not None
        source = BridgeStore(self.settings.require_bridge(), self.settings.whatsapp_store_path)
        self._media_source = source
        linker = PhotoLinker(self.store, source, lambda: self.config)
        self.media_worker = MediaWorker(
            self.store,
            self.settings,
            linker=linker,
            on_round=self._media_round,
            scan_idle=self.monitor.idle,
        )
        self._media_thread = threading.Thread(
            target=self.media_worker.run,
            args=(self._media_stop,),
            name="wa-monitor media worker",
            daemon=True,
        )
        self._media_thread.start()

    def stop_media_worker(self, timeout: float = 5.0) -> None:
        """Stop the worker: a fetch in hand is left to its lease if it takes longer."""
        self._media_stop.set()
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
        if self._media_source is not None:
            self._media_source.close()
            self._media_source = None

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
        if self.monitor is not None:
            self.monitor.source.close()
        if self.store is not None:
            self.store.dispose()

    @property
    def config(self) -> ProjectsConfig:
        assert self.monitor is not None
        return self.monitor.config

    # -- the loop -----------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Open (unless opened), serve until `stop` is set, close. Start errors are raised."""
        if self.monitor is None and not self._open_unless_stopped(stop):
            log.info("👋 Drop monitor stopped during start-up, before its first scan")
            return
        assert self.monitor is not None
        try:
            self._log_startup()
            self.tick(force=True)
            sd_notify("READY=1\nSTATUS=scanning", self.environ)
            self._ready = True
            self.monitor.run(
                stop,
                self.settings.scan_interval,
                poll=self.poll,
                on_scan=self.after_scan,
                before_poll=self.tick,
            )
        finally:
            sd_notify("STOPPING=1", self.environ)
            self._beat(stopping=True)
            self.close()
        log.info("👋 Drop monitor stopped")

    def _log_startup(self) -> None:
        assert self.monitor is not None
        config = self.monitor.config
        log.info(
            "📂 %s: bridge store %s, review database %s, projects file %s",
            self.settings.env_name or "default",
            self.monitor.source.messages_db,
            self.monitor.store.masked_url,
            self.config_path,
        )
        log.info("🎯 MONITORING %d PROJECTS:", len(config.enabled))
        for p in config.enabled:
            log.info("   • %s: %s", p.name, p.group_jid)
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
        self.last_scan_at = now
        self.last_scan_ok = time.monotonic()
        self.last_error = ""
        self.bridge_error = ""
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
        self.counters.errors[kind] += 1
        self.metrics.errors.labels(kind).inc()
        self.last_error = str(exc)
        if kind.startswith("bridge"):
            self.bridge_error = str(exc)

    def tick(self, force: bool = False) -> None:
        """Between scans: reload, heartbeat and staleness (when due), watchdog."""
        if self.reload() and self.monitor is not None:
            if self._ready:  # `systemctl status` shows the new project count at once
                sd_notify(f"STATUS={self._status()}", self.environ)
            # A new project is read at once, not after up to SCAN_INTERVAL seconds.
            self.after_scan(self.monitor.scan())
        now = time.monotonic()
        if force or now - self._last_beat >= self.settings.heartbeat_interval:
            self._last_beat = now
            self.check_staleness()
            self._beat()
        self._feed_watchdog(now)

    def reload(self) -> bool:
        """Apply a changed projects file; True when a new config took effect."""
        assert self.watcher is not None and self.monitor is not None
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
        before = {p.name for p in self.monitor.config.enabled}
        after = {p.name for p in config.enabled}
        self.monitor.set_config(config)
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
        assert self.monitor is not None
        config = self.monitor.config
        now = datetime.now(UTC)
        path = self.monitor.source.messages_db
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
        names = {p.group_jid: p.name for p in config.enabled}
        try:
            newest = self.monitor.source.newest_messages(names)
        except BridgeStoreError as exc:
            self.scan_failed(exc)
            return
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
        for jid, when in newest.items():
            if when is not None:
                self.metrics.newest_message_age.labels(names[jid], jid).set(
                    (now - when).total_seconds()
                )
            self.group_status.append(
                {
                    "jid": jid,
                    "project": names[jid],
                    "newest_at": when.isoformat() if when else None,
                    "stale": jid in stale_now,
                }
            )

    def is_healthy(self) -> bool:
        """Scans succeed (recently) and the bridge store is not stale."""
        limit = max(4 * self.settings.scan_interval, 60.0)
        return time.monotonic() - self.last_scan_ok <= limit and not self.bridge_stale

    def status(self) -> dict[str, Any]:
        assert self.monitor is not None
        return {
            "env": self.settings.env_name,
            # A heartbeat written under ALLOW_SHARED_DATABASE claims no database (the guard).
            "shared_database": self.settings.allow_shared_database,
            "config": str(self.config_path),
            "projects": [p.name for p in self.monitor.config.enabled],
            "last_scan_at": self.last_scan_at.isoformat() if self.last_scan_at else None,
            "last_scan_seconds": round(self.last_scan_duration, 4),
            "last_error": self.last_error,
            "healthy": self.healthy,
            "bridge": {
                "path": str(self.monitor.source.messages_db),
                "changed_at": self.bridge_changed_at.isoformat()
                if self.bridge_changed_at
                else None,
                "stale": self.bridge_stale,
                "readable": not self.bridge_error,
                "error": self.bridge_error,
                "contacts_error": self.monitor.source.contacts_problem,
            },
            "groups": self.group_status,
            "outbox_pending": self._outbox(),
            "media": self.media_worker.status() if self.media_worker is not None else None,
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
        if self.store is None or self.monitor is None:
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
