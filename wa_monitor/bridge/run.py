"""`wa-monitor bridge run` and `pair`: neonize's client, the handler and the API wired up.

The order matters: the settings are checked (BRIDGE_TOKEN), the session lock is taken
(a second process on the same store stops here, before touching WhatsApp), then the
store, the API and last the connection. SIGTERM and SIGINT stop it cleanly; so do a
logout and a refused client version, with the message that says what to do.

This is the one part the test suite does not run: it needs WhatsApp on the network.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sqlite3
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Final

from wa_monitor.bridge.api import ApiServer, BridgeApi, NotConnected, Sent, Uploaded, listen_address
from wa_monitor.bridge.handler import Handler, from_epoch, jid_text
from wa_monitor.bridge.session import BridgeError, Session, SessionEnded, SessionLock
from wa_monitor.bridge.store import MessageStore
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.settings import Settings

log = logging.getLogger("wa_monitor.bridge")

MESSAGES_DB: Final = "messages.db"
WHATSAPP_DB: Final = "whatsapp.db"


def store_folder(settings: Settings) -> Path:
    """BRIDGE_STORE, else the folder of WHATSAPP_DB_PATH; ConfigError without either."""
    if settings.bridge_store is not None:
        return Path(settings.bridge_store)
    if settings.whatsapp_db_path is not None:
        return Path(settings.whatsapp_db_path).parent
    raise ConfigError(
        [
            "BRIDGE_STORE is not set: give the folder where the bridge keeps messages.db, "
            "whatsapp.db and downloaded media (e.g. BRIDGE_STORE=/opt/wa-monitor/prod/bridge)"
        ]
    )


def require_token(settings: Settings) -> str:
    token = (settings.bridge_token or "").strip()
    if not token:
        raise ConfigError(
            [
                "BRIDGE_TOKEN is not set: `wa-monitor bridge run` serves its API only behind a "
                "bearer token. Set one (e.g. `BRIDGE_TOKEN=$(openssl rand -hex 32)` in the .env "
                "file) and give the monitor the same BRIDGE_TOKEN"
            ]
        )
    return token


def paired(whatsapp_db: Path) -> bool:
    """True when whatsapp.db holds a device (a paired session), read without writing."""
    if not whatsapp_db.is_file():
        return False
    try:
        conn = sqlite3.connect(f"file:{whatsapp_db}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error:
        return False
    try:
        return int(conn.execute("SELECT count(*) FROM whatsmeow_device").fetchone()[0]) > 0
    except sqlite3.Error:
        return False
    finally:
        conn.close()


def to_jid(text: str) -> Any:
    """`user@server` (or a bare phone number) as neonize's JID protobuf."""
    from neonize.proto.Neonize_pb2 import JID  # type: ignore[import-untyped, unused-ignore]

    user, _, server = text.rpartition("@")
    if not server or not user:
        user, server = text, "s.whatsapp.net"
    device = 0
    if ":" in user:
        user, _, number = user.partition(":")
        device = int(number) if number.isdigit() else 0
    return JID(User=user, Server=server, Device=device, RawAgent=0, Integrator=0, IsEmpty=False)


class NeonizeTransport:
    """The API's `Transport` on neonize's client."""

    def __init__(self, client: Any, session: Session) -> None:
        self.client = client
        self.session = session
        self.account = session.account

    def connected(self) -> bool:
        return self.session.connected

    def me(self) -> str:
        return self.account

    def send(self, chat_jid: str, message: Any) -> Sent:
        if not self.session.connected:
            raise NotConnected
        response = self.client.send_message(to_jid(chat_jid), message)
        return Sent(str(response.ID), from_epoch(int(response.Timestamp)))

    def upload(self, data: bytes, media_type: str) -> Uploaded:
        from neonize.utils.enum import MediaType  # type: ignore[import-untyped, unused-ignore]

        if not self.session.connected:
            raise NotConnected
        kind = {
            "image": MediaType.MediaImage,
            "video": MediaType.MediaVideo,
            "audio": MediaType.MediaAudio,
        }.get(media_type, MediaType.MediaDocument)
        response = self.client.upload(data, kind)
        return Uploaded(
            url=str(response.url),
            direct_path=str(response.DirectPath),
            media_key=bytes(response.MediaKey),
            file_enc_sha256=bytes(response.FileEncSHA256),
            file_sha256=bytes(response.FileSHA256),
            file_length=int(response.FileLength),
        )

    def download(self, media: bytes) -> bytes:
        from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (  # type: ignore[import-untyped, unused-ignore]
            Message,
        )

        if not self.session.connected:
            raise NotConnected("Not connected to WhatsApp")
        return bytes(self.client.download_any(Message.FromString(media)))

    def group_name(self, chat_jid: str) -> str | None:
        """The group's name from WhatsApp (a network round trip; the store keeps it)."""
        if not self.session.connected:
            return None
        info = self.client.get_group_info(to_jid(chat_jid))
        return str(info.GroupName.Name) or None


@dataclass
class Runner:
    """One bridge process: its store, session, lock and (when running) API."""

    settings: Settings
    pairing: bool = False
    phone: str | None = None
    show_qr: Callable[[str], None] | None = None
    # neonize's NewClient by default; the tests give a client that plays WhatsApp's part.
    client_factory: Callable[[str], Any] | None = None

    def __post_init__(self) -> None:
        self.folder = store_folder(self.settings)
        self.whatsapp_db = self.folder / WHATSAPP_DB
        self.failure: str | None = None
        self.server: ApiServer | None = None

    def start(self) -> int:
        """Run until stopped; the exit status (0: stopped, else a BridgeError is raised)."""
        token = "" if self.pairing else require_token(self.settings)
        host, port = listen_address(self.settings.bridge_listen)
        lock = SessionLock(self.folder).acquire()
        try:
            if self.pairing and paired(self.whatsapp_db):
                raise BridgeError(
                    f"{self.whatsapp_db}: this bridge is already paired; start it with "
                    "`wa-monitor bridge run` (to pair another number, use another BRIDGE_STORE)"
                )
            if not self.pairing and not paired(self.whatsapp_db):
                raise BridgeError(
                    f"{self.whatsapp_db}: this bridge is not paired with WhatsApp yet: run "
                    "`wa-monitor bridge pair` (QR code) or `wa-monitor bridge pair --phone "
                    "NUMBER` (pairing code) first"
                )
            return self._connect(token, host, port)
        finally:
            lock.release()

    def _connect(self, token: str, host: str, port: int) -> int:
        import neonize.events  # type: ignore[import-untyped, unused-ignore]
        from neonize.client import NewClient  # type: ignore[import-untyped, unused-ignore]

        session = Session(self.folder)
        store = MessageStore(self.folder / MESSAGES_DB)
        neonize.events.event.clear()  # neonize's stop event, once set, stays set
        client = (self.client_factory or NewClient)(str(self.whatsapp_db))
        transport = NeonizeTransport(client, session)
        handler = Handler(store, me=transport.me, group_name=transport.group_name)
        self._subscribe(client, session, handler, transport)
        server: ApiServer | None = None
        restore: dict[int, Any] = {}
        try:
            if not self.pairing:
                server = ApiServer(
                    BridgeApi(store, self.folder, transport, token).app(), host, port
                )
                server.start()
                self.server = server
                log.info("bridge: API listening on %s:%d", host, server.port)
            restore = self._stop_on_signals(session)
            worker = threading.Thread(
                target=self._connection, args=(client, session), name="neonize", daemon=True
            )
            worker.start()
            session.stopped.wait()
            linked = session.connected
            # neonize's connect() returns once its stop event is set: it cancels the Go side.
            neonize.events.event.set()
            worker.join(timeout=15)
        finally:
            for signum, previous in restore.items():
                signal.signal(signum, previous)
            if server is not None:
                server.stop()
            session.close()
            store.close()
        if session.fatal is not None:
            raise SessionEnded(session.fatal)
        if self.failure is not None:
            raise BridgeError(self.failure)
        if self.pairing and not linked:
            failures = session.pairing_failures
            raise BridgeError(
                "pairing stopped before WhatsApp confirmed the link"
                + (f" ({failures} failed attempt(s) so far)" if failures else "")
                + "; run `wa-monitor bridge pair` again"
            )
        return 0

    def _connection(self, client: Any, session: Session) -> None:
        """neonize's connect(), which returns only when stopped: an end of its own stops us
        (with exit status 1, so that systemd starts the bridge again)."""
        try:
            client.connect()
        except Exception as exc:
            self.failure = f"the WhatsApp client stopped: {exc}"
        session.request_stop()

    def _subscribe(
        self, client: Any, session: Session, handler: Handler, transport: NeonizeTransport
    ) -> None:
        from neonize.events import (  # type: ignore[import-untyped, unused-ignore]
            ClientOutdatedEv,
            ConnectedEv,
            ConnectFailureEv,
            DisconnectedEv,
            GroupInfoEv,
            HistorySyncEv,
            JoinedGroupEv,
            LoggedOutEv,
            MessageEv,
            PairStatusEv,
            StreamReplacedEv,
            TemporaryBanEv,
        )
        from neonize.proto.Neonize_pb2 import (  # type: ignore[import-untyped, unused-ignore]
            ConnectFailureReason,
            PairStatus,
        )

        pairing_started = threading.Event()

        def on_qr(_client: Any, data: bytes) -> None:
            if not self.pairing:
                session.on_logged_out("WhatsApp asked for a new pairing")
                return
            if self.phone:
                if not pairing_started.is_set():
                    pairing_started.set()
                    threading.Thread(target=pair_code, name="pair-code", daemon=True).start()
                return
            session.on_pairing("QR code shown")
            if self.show_qr is not None:
                self.show_qr(data.decode("utf-8", "replace"))

        def pair_code() -> None:
            try:
                code = client.PairPhone(self.phone, True)
            except Exception as exc:
                session.on_pair_failed(str(exc))
                return
            session.on_pairing("pairing code shown")
            if self.show_qr is not None:
                self.show_qr(f"code:{code}")

        client.event.qr(on_qr)

        def connected(_client: Any, _event: Any) -> None:
            with contextlib.suppress(Exception):  # the account is only shown
                transport.account = str(client.get_me().JID.User)
            session.on_connected(transport.account)
            if self.pairing:
                session.request_stop()

        def pair_status(_client: Any, event: Any) -> None:
            if event.Status == PairStatus.SUCCESS:
                session.on_paired(str(event.ID.User))
            else:
                session.on_pair_failed(str(event.Error))

        def connect_failure(_client: Any, event: Any) -> None:
            if event.Reason == ConnectFailureReason.CLIENT_OUTDATED:
                session.on_outdated()
            elif event.Reason in (
                ConnectFailureReason.LOGGED_OUT,
                ConnectFailureReason.MAIN_DEVICE_GONE,
                ConnectFailureReason.UNKNOWN_LOGOUT,
            ):
                session.on_logged_out(str(event.Message))
            elif event.Reason == ConnectFailureReason.TEMP_BANNED:
                session.on_banned(str(event.Message))
            else:
                session.on_disconnected(f"connect failure {event.Reason}: {event.Message}")

        def replaced(_client: Any, _event: Any) -> None:
            session.stop_with(
                "disconnected",
                "another client took over this WhatsApp session (stream replaced): make sure "
                "only one bridge uses this number",
            )

        client.event(MessageEv)(lambda _c, e: handler.message(e))
        client.event(HistorySyncEv)(lambda _c, e: handler.history(e))
        client.event(GroupInfoEv)(
            lambda _c, e: handler.group_info(jid_text(e.JID), str(e.Name.Name))
        )
        client.event(JoinedGroupEv)(
            lambda _c, e: handler.group_info(
                jid_text(e.GroupInfo.JID), str(e.GroupInfo.GroupName.Name)
            )
        )
        client.event(ConnectedEv)(connected)
        client.event(DisconnectedEv)(lambda _c, _e: session.on_disconnected())
        client.event(LoggedOutEv)(lambda _c, e: session.on_logged_out(f"reason {e.Reason}"))
        client.event(ClientOutdatedEv)(lambda _c, _e: session.on_outdated())
        client.event(ConnectFailureEv)(connect_failure)
        client.event(TemporaryBanEv)(
            lambda _c, e: session.on_banned(f"code {e.Code}, {e.Expire} s")
        )
        client.event(PairStatusEv)(pair_status)
        client.event(StreamReplacedEv)(replaced)

    def _stop_on_signals(self, session: Session) -> dict[int, Any]:
        """SIGTERM and SIGINT stop the bridge cleanly; returns the handlers they replace."""

        def stop(signum: int, _frame: FrameType | None) -> None:
            log.info("bridge: %s received, stopping", signal.Signals(signum).name)
            session.request_stop()

        if threading.current_thread() is not threading.main_thread():
            return {}
        return {signum: signal.signal(signum, stop) for signum in (signal.SIGTERM, signal.SIGINT)}


def print_qr(data: str) -> None:
    """A QR code (or a pairing code) in the terminal, with what to do with it."""
    if data.startswith("code:"):
        code = data.removeprefix("code:")
        print(
            f"Pairing code: {code}\nOn the phone: WhatsApp → Linked devices → Link a device → "
            "Link with phone number instead, and type this code.",
            flush=True,
        )
        return
    import segno

    print("Scan with the phone: WhatsApp → Linked devices → Link a device.", flush=True)
    segno.make_qr(data).terminal(out=sys.stdout, compact=True)
    sys.stdout.flush()
