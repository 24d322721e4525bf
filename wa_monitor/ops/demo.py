"""`wa-monitor demo`: a simulated bridge, the monitor and an SQLite review database.

The simulated bridge posts photos with its drops (real files, kept as the phones would
have them in `media-origin/`, outside the bridge store) and answers the bridge's API on
127.0.0.1: `/api/send` (feedback, logged) and `/api/download` (the photo copied into the
store folder, as the bridge does, burst collisions and expired media included). The
monitor's media worker fetches them into the demo's `media/` folder.

With a webhook gateway (`--gateway waha|evolution|bridge-webhook`) the monitor reads no
bridge store: the simulated phones' messages are posted to the demo's own `serve` as that
gateway's webhooks (`demo_relay`), and the same local server plays the gateway's API
(WAHA's sendText, sessions and files; Evolution API's sendText, connection state and
media; the Go fork's /api/send and /api/download).
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import secrets
import socket
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wa_monitor.core.config import ProjectsConfig, load_config
from wa_monitor.core.errors import WaMonitorError
from wa_monitor.core.gateways import BRIDGE, BRIDGE_WEBHOOK, EVOLUTION, GATEWAYS, WAHA
from wa_monitor.core.settings import settings_from
from wa_monitor.sim import (
    DEMO_GROUPS,
    VARIANT_DROP_PATTERN,
    LiveSimulator,
    MediaMaker,
    StoreWriter,
    generate_store,
)
from wa_monitor.sim.bridge_api import BridgeMedia, BridgeServer, DownloadHandler
from wa_monitor.sim.media import origin_path
from wa_monitor.store.review_store import ReviewStore

log = logging.getLogger("wa_monitor")

DEMO_TIMEZONE = "Africa/Johannesburg"
# The demo's Evolution API instance (WAHA's session is WAHA_SESSION's default).
DEMO_INSTANCE = "demo"
# What the demo's sources are called in its summary.
SOURCE_NAMES = {
    BRIDGE: "bridge store",
    WAHA: "WAHA webhooks",
    EVOLUTION: "Evolution API webhooks",
    BRIDGE_WEBHOOK: "Go bridge fork webhooks",
}


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
    def media_origin(self) -> Path:
        """The photos as the installers' phones have them (outside the bridge store)."""
        return self.root / "media-origin"

    @property
    def media_dir(self) -> Path:
        """The monitor's media store (photos fetched, content-addressed)."""
        return self.root / "media"

    @property
    def reviews_db(self) -> Path:
        return self.root / "reviews.db"

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.reviews_db.resolve()}"

    @property
    def gateway_key(self) -> Path:
        """The webhook gateways' credential of this demo, made once."""
        return self.root / "gateway-key"


def gateway_key(paths: DemoPaths) -> str:
    """The demo gateway's key (WAHA's API key, Evolution's apikey, the fork's token)."""
    try:
        key = paths.gateway_key.read_text(encoding="ascii").strip()
    except OSError:
        key = ""
    if not key:
        key = secrets.token_urlsafe(24)
        paths.root.mkdir(parents=True, exist_ok=True)
        paths.gateway_key.write_text(key + "\n", encoding="ascii")
        paths.gateway_key.chmod(0o600)
    return key


def check_gateway(gateway: str, dashboard: bool) -> None:
    """A gateway the demo can play; the webhook ones post to the dashboard's serve."""
    if gateway not in GATEWAYS:
        raise WaMonitorError(f"the demo's gateway is one of {', '.join(GATEWAYS)}, not {gateway}")
    if gateway != BRIDGE and not dashboard:
        raise WaMonitorError(
            f"--gateway {gateway} posts the messages to the dashboard's webhook route: run "
            "the demo without --no-dashboard (or with --gateway bridge)"
        )


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
            # The queue badges a drop that waited two hours for a reviewer.
            "    review_target: 2h",
            "",
        ]
    return "\n".join(lines)


def demo_settings(
    paths: DemoPaths, bridge_url: str | None, gateway: str = BRIDGE
) -> dict[str, str]:
    """The settings the demo's monitor, media worker and dashboard run with.

    With a webhook gateway the monitor gets no WHATSAPP_DB_PATH (it reads the inbox); the
    Go fork's photos still come through the demo bridge's /api/download, into its folder.
    """
    values = {
        # An instance of its own: `status` and the heartbeat name it (demo@host).
        "WA_MONITOR_ENV": "demo",
        "DATABASE_URL": paths.database_url,
        "WA_MONITOR_CONFIG": str(paths.config.resolve()),
        "MEDIA_DIR": str(paths.media_dir.resolve()),
        "SCAN_INTERVAL": "15",
        "GATEWAY": gateway,
    }
    if gateway in (BRIDGE, BRIDGE_WEBHOOK):
        values["WHATSAPP_DB_PATH"] = str(paths.messages_db.resolve())
        values["WHATSAPP_STORE_PATH"] = str(paths.whatsapp_db.resolve())
    if bridge_url is not None:
        values["BRIDGE_URL"] = bridge_url
        base = bridge_url.removesuffix("/api")
        if gateway == WAHA:
            values.update(WAHA_URL=base, WAHA_API_KEY=gateway_key(paths))
        elif gateway == EVOLUTION:
            values.update(
                EVOLUTION_URL=base,
                EVOLUTION_API_KEY=gateway_key(paths),
                EVOLUTION_INSTANCE=DEMO_INSTANCE,
            )
    if gateway == BRIDGE_WEBHOOK:
        values["WEBHOOK_TOKEN"] = gateway_key(paths)
    return values


def prepare(
    paths: DemoPaths,
    *,
    history: int,
    seed: int,
    bridge_url: str | None = None,
    photos: bool = True,
    gateway: str = BRIDGE,
) -> None:
    """Write the demo's config, .env and a bridge store with some history (once).

    With `photos`, the history's media rows get real photo files (a burst of a drop's
    steps after most drop posts); `bridge_url` (the running demo bridge) goes into .env.
    """
    paths.config.parent.mkdir(parents=True, exist_ok=True)
    if not paths.config.exists():
        paths.config.write_text(projects_yaml(), encoding="utf-8")
    settings = demo_settings(paths, bridge_url, gateway)
    lines = [f"{name}={value}\n" for name, value in settings.items()]
    paths.env_file.write_text(
        "# Settings of the WA Monitor demo: use with --env-file\n" + "".join(lines),
        encoding="utf-8",
    )
    paths.env_file.chmod(0o600)  # the gateway's key
    if not paths.messages_db.exists() and history > 0:
        if photos:
            log.info("🖼️ Drawing the photos of the demo's history (once, about 20 s)")
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
            # Photos: bursts of 3-10 after the drop posts, as files the bridge can serve.
            media_rate=0.2 if photos else 0.10,
            media_origin=paths.media_origin if photos else None,
            # WhatsApp has dropped the oldest photos: they show as no longer available.
            media_expired_before=start + timedelta(hours=6),
        )
    store = ReviewStore(paths.database_url)
    try:
        store.upgrade()
    finally:
        store.dispose()


def simulate_live(
    paths: DemoPaths, stop: threading.Event, *, seed: int, every: float, photos: bool = True
) -> threading.Thread:
    """A thread that writes one bridge event every `every` seconds until `stop`."""

    def loop() -> None:
        with StoreWriter(paths.messages_db, paths.whatsapp_db, tz=DEMO_TIMEZONE) as writer:
            media = (
                MediaMaker(paths.media_origin, seed=seed + 1, zone=writer.zone) if photos else None
            )
            simulator = LiveSimulator(writer, DEMO_GROUPS, seed=seed + 1, media=media)
            while not stop.wait(every):
                simulator.step()

    thread = threading.Thread(target=loop, name="simulated-bridge", daemon=True)
    thread.start()
    return thread


class _SendHandler(DownloadHandler):
    """The bridge's API, answered locally: /api/send is logged (the demo has no WhatsApp),
    /api/download copies the photo from the phones' folder into the bridge store. For the
    webhook gateways it plays their API too: WAHA's sendText, sessions and files, Evolution
    API's sendText, connection state, settings and media."""

    def do_POST(self) -> None:
        sends = {
            "/api/send": ("recipient", "message"),
            "/api/sendText": ("chatId", "text"),
            f"/message/sendText/{DEMO_INSTANCE}": ("number", "text"),
        }
        if self.path == f"/chat/getBase64FromMediaMessage/{DEMO_INSTANCE}":
            self._evolution_media()
            return
        if self.path not in sends:
            super().do_POST()
            return
        length = int(self.headers.get("Content-Length") or 0)
        to, text = sends[self.path]
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            recipient, message = str(body[to]), str(body[text])
        except (ValueError, KeyError, TypeError):
            self._answer(400, b"invalid request", "text/plain")
            return
        first = message.splitlines()[0] if message else ""
        log.info("📤 Feedback to %s: %s", recipient, first)
        sent = secrets.token_hex(10).upper()
        answer: dict[str, object] = {
            "success": True,
            "message": f"Message sent to {recipient}",
            "message_id": sent,
        }
        if self.path != "/api/send":  # WAHA's and Evolution's answers: the message's key
            answer = {"id": {"_serialized": f"true_{recipient}_{sent}"}, "key": {"id": sent}}
        self._answer(
            200 if self.path == "/api/send" else 201,
            json.dumps(answer).encode(),
            "application/json",
        )

    def do_GET(self) -> None:
        parts = self.path.split("/")
        states = {
            "/api/sessions/default": {"name": "default", "status": "WORKING"},
            f"/instance/connectionState/{DEMO_INSTANCE}": {
                "instance": {"instanceName": DEMO_INSTANCE, "state": "open"}
            },
            f"/settings/find/{DEMO_INSTANCE}": {"groupsIgnore": False},
        }
        if self.path in states:
            self._answer(200, json.dumps(states[self.path]).encode(), "application/json")
        elif len(parts) == 5 and parts[:3] == ["", "api", "files"]:
            data = self._origin(parts[3], parts[4])
            if data is None:
                self._answer(404, b"file not found", "text/plain")
            else:
                self._answer(200, data, "application/octet-stream")
        else:
            super().do_GET()

    def _origin(self, chat_jid: str, message_id: str) -> bytes | None:
        """A message's file as the phone has it (None: expired, or never a file)."""
        media = getattr(self.server, "media", None)
        if not isinstance(media, BridgeMedia) or "/" in chat_jid + message_id:
            return None
        try:
            return origin_path(media.origin_root, chat_jid, message_id).read_bytes()
        except OSError:
            return None

    def _evolution_media(self) -> None:
        media = getattr(self.server, "media", None)
        length = int(self.headers.get("Content-Length") or 0)
        try:
            message_id = str(json.loads(self.rfile.read(length))["message"]["key"]["id"])
        except (ValueError, KeyError, TypeError):
            self._answer(400, b"invalid request", "text/plain")
            return
        data = None
        if isinstance(media, BridgeMedia):
            conn = sqlite3.connect(f"file:{media.messages_db}?mode=ro", uri=True, timeout=5.0)
            try:
                row = conn.execute(
                    "SELECT chat_jid FROM messages WHERE id = ?", (message_id,)
                ).fetchone()
            finally:
                conn.close()
            data = self._origin(str(row[0]), message_id) if row else None
        if data is None:
            self._answer(
                400, b'{"status": 400, "response": {"message": ["not found"]}}', "application/json"
            )
            return
        answer = {"base64": base64.b64encode(data).decode(), "mimetype": "image/jpeg"}
        self._answer(201, json.dumps(answer).encode(), "application/json")

    def _answer(self, status: int, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def start_bridge(paths: DemoPaths) -> BridgeServer:
    """The demo bridge's HTTP API on 127.0.0.1 (a free port), serving in a thread."""
    media = BridgeMedia(paths.messages_db, paths.media_origin)
    bridge = BridgeServer(("127.0.0.1", 0), _SendHandler, media)
    threading.Thread(target=bridge.serve_forever, name="demo-bridge", daemon=True).start()
    return bridge


def bridge_url(bridge: BridgeServer) -> str:
    return f"http://127.0.0.1:{bridge.server_address[1]}/api"


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
    bridge: str | None = None,
    gateway: str = BRIDGE,
) -> Dashboard:
    """The dashboard on `host:port` and a demo reviewer; `bridge` is the bridge's API URL."""
    import uvicorn

    from wa_monitor.store.users import UserError, add_user, set_password
    from wa_monitor.web.app import create_app

    server_of_bridge = None
    if bridge is None:  # a stand-in of its own (the dashboard started alone)
        server_of_bridge = start_bridge(paths)
        bridge = bridge_url(server_of_bridge)
    settings = settings_from(
        {**demo_settings(paths, bridge, gateway), "SECRET_KEY": secrets.token_urlsafe(32)}
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
        if server_of_bridge is not None:
            server_of_bridge.shutdown()
            server_of_bridge.server_close()

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
    photos: bool = True,
    gateway: str = BRIDGE,
) -> DemoPaths:
    """Run the simulated bridge and the monitor until `stop` is set or `duration` passes.

    The monitor is `wa-monitor run`'s service (heartbeat, media worker, reloads), so
    `status`, `doctor` and /readyz judge the demo as they judge a real installation.
    With `photos`, the simulated installers post photos with their drops and the
    media worker fetches them through the demo bridge's /api/download. With a webhook
    `gateway`, the messages reach the monitor through the dashboard's webhook route.
    """
    from wa_monitor.monitor.service import Service
    from wa_monitor.ops.demo_relay import WEBHOOK_PATHS, WebhookRelay

    check_gateway(gateway, dashboard_port is not None)
    stop = stop or threading.Event()
    paths = DemoPaths(root)
    with contextlib.ExitStack() as cleanup:  # undone in reverse, however the demo ends
        # The port is taken before anything else: a busy port stops the demo at once.
        sock = bind_dashboard(host, dashboard_port) if dashboard_port is not None else None
        if sock is not None:
            cleanup.callback(sock.close)
        api = start_bridge(paths)
        cleanup.callback(api.server_close)
        cleanup.callback(api.shutdown)
        prepare(
            paths,
            history=history,
            seed=seed,
            bridge_url=bridge_url(api),
            photos=photos,
            gateway=gateway,
        )
        values = demo_settings(paths, bridge_url(api), gateway)
        settings = settings_from(values)
        # No systemd here, even when the demo is started from a unit: no READY, no watchdog.
        service = Service(settings, paths.config, environ={})
        service.open()
        cleanup.callback(service.close)  # run() closes it too; a second close does nothing
        dashboard = None
        if sock is not None:
            dashboard_store = ReviewStore(paths.database_url)
            cleanup.callback(dashboard_store.dispose)
            dashboard = start_dashboard(
                paths,
                load_config(paths.config),
                dashboard_store,
                host=host,
                port=int(sock.getsockname()[1]),
                sock=sock,
                bridge=bridge_url(api),
                gateway=gateway,
            )
            cleanup.callback(dashboard.stop)
        if announce is not None:
            announce(paths, dashboard)
        simulator = simulate_live(paths, stop, seed=seed, every=every, photos=photos)
        cleanup.callback(simulator.join, timeout=5)
        if gateway != BRIDGE and dashboard is not None:
            key = gateway_key(paths)
            headers = {
                WAHA: {"X-Api-Key": key},
                EVOLUTION: {"apikey": key},
                BRIDGE_WEBHOOK: {"Authorization": f"Bearer {key}"},
            }[gateway]
            relay = WebhookRelay(
                paths.messages_db,
                paths.whatsapp_db,
                gateway,
                f"{dashboard.url.removesuffix('/wa-monitor')}/webhooks/{WEBHOOK_PATHS[gateway]}",
                headers=headers,
                media_base=bridge_url(api).removesuffix("/api"),
                session=DEMO_INSTANCE if gateway == EVOLUTION else settings.waha_session,
            )
            relaying = threading.Thread(
                target=relay.run, args=(stop,), name="demo-gateway", daemon=True
            )
            relaying.start()
            cleanup.callback(relaying.join, timeout=15)
        cleanup.callback(stop.set)
        if duration is not None:
            timer = threading.Timer(duration, stop.set)
            timer.daemon = True
            timer.start()
            cleanup.callback(timer.cancel)
        log.info("🎭 Demo: a new simulated bridge event every %gs", every)
        service.run(stop)
    return paths
