"""`wa-monitor demo`: a simulated bridge, the monitor and an SQLite review database."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wa_monitor.bridge import BridgeStore
from wa_monitor.config import load_config
from wa_monitor.monitor import Monitor
from wa_monitor.simulate import (
    DEMO_GROUPS,
    VARIANT_DROP_PATTERN,
    LiveSimulator,
    StoreWriter,
    generate_store,
)
from wa_monitor.store import ReviewStore

log = logging.getLogger("wa_monitor")

DEMO_TIMEZONE = "Africa/Johannesburg"


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config" / "projects.yaml"

    @property
    def messages_db(self) -> Path:
        return self.root / "store" / "messages.db"

    @property
    def whatsapp_db(self) -> Path:
        return self.root / "store" / "whatsapp.db"

    @property
    def reviews_db(self) -> Path:
        return self.root / "reviews.db"

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.reviews_db.resolve()}"


def projects_yaml() -> str:
    lines = [
        "# WA Monitor demo projects: the four groups of the architecture document",
        f"timezone: {DEMO_TIMEZONE}",
        "# Field drop numbers come with 6-8 digits, a space or in lower case.",
        f"drop_pattern: '{VARIANT_DROP_PATTERN}'",
        "",
        "projects:",
    ]
    for group in DEMO_GROUPS:
        # The chat names are "Lawley Activation 3 group" etc.; the project is "Lawley".
        name = "Velo Test" if group.name.startswith("Velo") else group.name.split()[0]
        lines += [
            f"  - name: {name}",
            "    enabled: true",
            f'    group_jid: "{group.jid}"',
            f'    description: "{group.name} (simulated)"',
            "",
        ]
    return "\n".join(lines)


def prepare(paths: DemoPaths, *, history: int, seed: int) -> None:
    """Write the demo's config, .env and a bridge store with some history (once)."""
    paths.config.parent.mkdir(parents=True, exist_ok=True)
    if not paths.config.exists():
        paths.config.write_text(projects_yaml(), encoding="utf-8")
    paths.env_file.write_text(
        "# Settings of the WA Monitor demo: use with --env-file\n"
        f"DATABASE_URL={paths.database_url}\n"
        f"WHATSAPP_DB_PATH={paths.messages_db.resolve()}\n"
        f"WA_MONITOR_CONFIG={paths.config.resolve()}\n"
        "SCAN_INTERVAL=15\n",
        encoding="utf-8",
    )
    if not paths.messages_db.exists() and history > 0:
        start = datetime.now(UTC) - timedelta(days=3)
        generate_store(
            paths.messages_db,
            paths.whatsapp_db,
            groups=DEMO_GROUPS,
            n_messages=history,
            seed=seed,
            drop_rate=0.03,
            start=start,
            mean_gap_s=40.0,
            tz=DEMO_TIMEZONE,
        )
    store = ReviewStore(paths.database_url)
    try:
        store.upgrade()
    finally:
        store.dispose()


def simulate_live(
    paths: DemoPaths, stop: threading.Event, *, seed: int, every: float
) -> threading.Thread:
    """A thread that writes one bridge event every `every` seconds until `stop`."""

    def loop() -> None:
        with StoreWriter(paths.messages_db, paths.whatsapp_db, tz=DEMO_TIMEZONE) as writer:
            simulator = LiveSimulator(writer, DEMO_GROUPS, seed=seed + 1)
            while not stop.wait(every):
                simulator.step()

    thread = threading.Thread(target=loop, name="simulated-bridge", daemon=True)
    thread.start()
    return thread


def run_demo(
    root: Path,
    *,
    seed: int = 1,
    history: int = 2000,
    every: float = 1.0,
    duration: float | None = None,
    stop: threading.Event | None = None,
    announce: Callable[[DemoPaths], None] | None = None,
) -> Monitor:
    """Run the simulated bridge and the monitor until `stop` is set or `duration` passes."""
    paths = DemoPaths(root)
    prepare(paths, history=history, seed=seed)
    stop = stop or threading.Event()
    config = load_config(paths.config)
    bridge = BridgeStore(paths.messages_db, paths.whatsapp_db)
    bridge.open()
    store = ReviewStore(paths.database_url)
    monitor = Monitor(config, bridge, store)
    if announce is not None:
        announce(paths)
    simulator = simulate_live(paths, stop, seed=seed, every=every)
    timer = None
    if duration is not None:
        timer = threading.Timer(duration, stop.set)
        timer.daemon = True
        timer.start()
    log.info("🎯 MONITORING %d PROJECTS:", len(config.enabled))
    for p in config.enabled:
        log.info("   • %s: %s", p.name, p.group_jid)
    log.info("✅ Drop monitor started (demo: a new bridge event every %gs)", every)
    try:
        monitor.run(stop, 15.0)
    finally:
        stop.set()
        if timer is not None:
            timer.cancel()
        simulator.join(timeout=5)
        bridge.close()
        store.dispose()
    return monitor
