"""`wa-monitor bridge run`'s wiring (lock, store, API, neonize's events, stop) with a client
that plays WhatsApp's part: everything but the network."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

import wa_monitor.bridge  # noqa: F401  # first: it imports neonize without its stray warning

# isort: split
from neonize.events import (
    ConnectedEv,
    DisconnectedEv,
    LoggedOutEv,
    MessageEv,
)
from neonize.events import event as neonize_stop
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import Message

from wa_monitor.bridge.run import Runner
from wa_monitor.bridge.session import LOGGED_OUT, SessionBusy, SessionEnded, SessionLock
from wa_monitor.core.settings import load_settings

TOKEN = "t0ken"
GROUP_USER = "120363418298130331"
GROUP = f"{GROUP_USER}@g.us"
ME = "27820000000"


class FakeEvents:
    """neonize's `client.event`: `event(Type)(handler)` and `event.qr(handler)`."""

    def __init__(self) -> None:
        self.handlers: dict[type, Callable[[Any, Any], None]] = {}
        self.qr_handler: Callable[[Any, bytes], None] | None = None

    def __call__(self, kind: type) -> Callable[[Callable[[Any, Any], None]], None]:
        def register(handler: Callable[[Any, Any], None]) -> None:
            self.handlers[kind] = handler

        return register

    def qr(self, handler: Callable[[Any, bytes], None]) -> None:
        self.qr_handler = handler


class FakeClient:
    """Connects, delivers a message, waits for the test, is logged out, like WhatsApp."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.event = FakeEvents()
        self.ready = threading.Event()
        self.proceed = threading.Event()
        self.sent: list[tuple[Any, Any]] = []

    def emit(self, kind: type, payload: Any) -> None:
        self.event.handlers[kind](self, payload)

    def connect(self) -> None:
        self.emit(ConnectedEv, ev.Connected(status=True))
        self.emit(
            MessageEv,
            ev.Message(
                Info=ev.MessageInfo(
                    ID="3EB0LIVE1",
                    Timestamp=1762708530000,
                    MessageSource=ev.MessageSource(
                        Chat=ev.JID(User=GROUP_USER, Server="g.us"),
                        Sender=ev.JID(User="112233445566778", Server="lid"),
                        IsGroup=True,
                    ),
                ),
                Message=Message(conversation="DR12345678 done"),
            ),
        )
        self.ready.set()
        assert self.proceed.wait(30)
        self.emit(DisconnectedEv, ev.Disconnected(status=True))
        self.emit(LoggedOutEv, ev.LoggedOut(OnConnect=False))
        assert neonize_stop.wait(30)  # as neonize's connect(): returns once told to stop

    def get_me(self) -> Any:
        return ev.Device(JID=ev.JID(User=ME, Server="s.whatsapp.net"))

    def get_group_info(self, jid: Any) -> Any:
        return ev.GroupInfo(GroupName=ev.GroupName(Name="Lawley QA"))

    def send_message(self, to: Any, message: Any) -> Any:
        self.sent.append((to, message))
        return ev.SendResponse(ID="3EB0SENT1", Timestamp=1762708600)


def paired_store(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(folder / "whatsapp.db") as conn:
        conn.execute("CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO whatsmeow_device VALUES ('27820000000:5@s.whatsapp.net')")
    conn.close()


def test_run_stores_serves_and_stops_when_logged_out(tmp_path: Path) -> None:
    folder = tmp_path / "bridge"
    paired_store(folder)
    settings = load_settings(
        {"BRIDGE_STORE": str(folder), "BRIDGE_TOKEN": TOKEN, "BRIDGE_LISTEN": "127.0.0.1:0"}
    )
    clients: list[FakeClient] = []
    created = threading.Event()

    def factory(path: str) -> FakeClient:
        clients.append(FakeClient(path))
        created.set()
        return clients[-1]

    runner = Runner(settings, client_factory=factory)
    outcome: list[BaseException | int] = []

    def run() -> None:
        try:
            outcome.append(runner.start())
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert created.wait(30)
        client = clients[0]
        assert client.ready.wait(30)
        assert client.path == str(folder / "whatsapp.db")  # neonize's own store: whatsapp.db
        # While it runs, its session is taken.
        with pytest.raises(SessionBusy):
            SessionLock(folder).acquire()
        status = json.loads((folder / "bridge-status.json").read_text())
        assert (status["state"], status["account"]) == ("connected", ME)
        assert runner.server is not None
        headers = {"Authorization": f"Bearer {TOKEN}"}
        answer = httpx.post(
            f"{runner.server.url}/send",
            json={"recipient": GROUP, "message": "DR12345678\nAll items complete! ✅"},
            headers=headers,
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["message_id"] == "3EB0SENT1"
        to, message = client.sent[0]
        assert (to.User, to.Server) == (GROUP_USER, "g.us")
        assert message.conversation.startswith("DR12345678")
    finally:
        for c in clients:
            c.proceed.set()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], SessionEnded)
    assert str(outcome[0]).startswith(LOGGED_OUT)
    assert outcome[0].exit_code == 3
    status = json.loads((folder / "bridge-status.json").read_text())
    assert status["state"] == "logged_out"
    with sqlite3.connect(folder / "messages.db") as conn:
        stored = conn.execute(
            "SELECT id, sender, content, is_from_me FROM messages ORDER BY rowid"
        ).fetchall()
        name = conn.execute("SELECT name FROM chats WHERE jid = ?", (GROUP,)).fetchone()
    conn.close()
    assert stored == [
        ("3EB0LIVE1", "112233445566778", "DR12345678 done", 0),
        ("3EB0SENT1", ME, "DR12345678\nAll items complete! ✅", 1),
    ]
    assert name == ("Lawley QA",)
    SessionLock(folder).acquire().release()  # free again once it stopped
