"""`wa-monitor demo`: a simulated bridge, the monitor and an SQLite review database."""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from wa_monitor.core.config import ProjectsConfig, load_config
from wa_monitor.core.errors import WaMonitorError
from wa_monitor.core.settings import settings_from
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sim import (
    DEMO_GROUPS,
    VARIANT_DROP_PATTERN,
    LiveSimulator,
    StoreWriter,
    generate_store,
)
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.review_store import ReviewStore

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


class _SendHandler(BaseHTTPRequestHandler):
    """The bridge's POST /api/send, answered locally: the demo has no WhatsApp."""

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            recipient, message = str(body["recipient"]), str(body["message"])
        except (ValueError, KeyError, TypeError):
            self._answer(400, b"invalid request", "text/plain")
            return
        first = message.splitlines()[0] if message else ""
        log.info("📤 Feedback to %s: %s", recipient, first)
        answer = {"success": True, "message": f"Message sent to {recipient}"}
        self._answer(200, json.dumps(answer).encode(), "application/json")

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@dataclass
class Dashboard:
    url: str
    username: str
    password: str
    stop: Callable[[], None]


def bind_dashboard(host: str, port: int) -> socket.socket:
    """The dashboard's listening socket, or a WaMonitorError when the port is taken."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise WaMonitorError(
            f"the demo dashboard cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "is another server using it? Pick another port with `wa-monitor demo --port 8001` "
            "or run without the dashboard (--no-dashboard)"
        ) from None
    return sock


def start_dashboard(
    paths: DemoPaths,
    config: ProjectsConfig,
    store: ReviewStore,
    *,
    host: str,
    port: int,
    sock: socket.socket | None = None,
) -> Dashboard:
    """The dashboard on `host:port`, a demo reviewer, and a local stand-in for the bridge."""
    import uvicorn

    from wa_monitor.store.users import UserError, add_user, set_password
    from wa_monitor.web.app import create_app

    bridge = ThreadingHTTPServer(("127.0.0.1", 0), _SendHandler)
    threading.Thread(target=bridge.serve_forever, name="demo-bridge", daemon=True).start()
    settings = settings_from(
        {
            "DATABASE_URL": paths.database_url,
            "WHATSAPP_DB_PATH": str(paths.messages_db),
            "BRIDGE_URL": f"http://127.0.0.1:{bridge.server_address[1]}/api",
            "SECRET_KEY": secrets.token_urlsafe(32),
        }
    )
    username, password = "reviewer", secrets.token_urlsafe(9)
    try:
        add_user(store, username, password, "reviewer")
    except UserError:
        set_password(store, username, password)
    app = create_app(settings, config, store, dev=True)
    sock = sock if sock is not None else bind_dashboard(host, port)
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="dashboard", daemon=True
    )
    thread.start()

    def stop() -> None:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
        bridge.shutdown()
        bridge.server_close()

    return Dashboard(f"http://{host}:{port}/wa-monitor", username, password, stop)


def run_demo(
    root: Path,
    *,
    seed: int = 1,
    history: int = 2000,
    every: float = 1.0,
    duration: float | None = None,
    stop: threading.Event | None = None,
    announce: Callable[[DemoPaths, Dashboard | None], None] | None = None,
    dashboard_port: int | None = 8000,
    host: str = "127.0.0.1",
) -> Monitor[BridgeStore]:
    """Run the simulated bridge and the monitor until `stop` is set or `duration` passes."""
    # The port is taken before anything else: a busy port stops the demo at once.
    sock = bind_dashboard(host, dashboard_port) if dashboard_port is not None else None
    paths = DemoPaths(root)
    try:
        prepare(paths, history=history, seed=seed)
    except BaseException:
        if sock is not None:
            sock.close()
        raise
    stop = stop or threading.Event()
    config = load_config(paths.config)
    bridge = BridgeStore(paths.messages_db, paths.whatsapp_db)
    bridge.open()
    store = ReviewStore(paths.database_url)
    monitor = Monitor(config, bridge, store)
    dashboard = None
    if dashboard_port is not None:
        dashboard = start_dashboard(paths, config, store, host=host, port=dashboard_port, sock=sock)
    if announce is not None:
        announce(paths, dashboard)
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
        if dashboard is not None:
            dashboard.stop()
        bridge.close()
        store.dispose()
    return monitor
