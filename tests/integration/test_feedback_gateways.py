"""Feedback through each project's gateway, against real HTTP servers playing WAHA,
Evolution API and the bridges (both backends).

Each test gateway records every request (path, headers, JSON) and answers as the real one
does: WAHA's sendText a WAMessage with its id, Evolution API's sendText the message with
`key.id`, `wa-monitor bridge` `{success, message, message_id}`, the upstream bridge
`{success, message}`; and their failures (a refused key, a session not connected, an
engine's error, a proxy's 502, no answer in time).
"""

from __future__ import annotations

import gc
import json
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_api_support import (
    LAWLEY_JID,
    MOHADIN_JID,
    People,
    TestClient,
    add_people,
    minutes_ago,
    now,
    post,
    record,
    review,
)
from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.feedback import outbox as fb
from wa_monitor.feedback.gateways import GatewayClients
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.app import create_app

with warnings.catch_warnings():
    # neonize's import leaves `uname -a` pipes behind (see wa_monitor/bridge/__init__.py);
    # they say nothing about feedback.
    warnings.simplefilter("ignore", ResourceWarning)
    from wa_monitor.bridge.api import ApiServer, BridgeApi, Sent
    from wa_monitor.bridge.store import MessageStore

    gc.collect()

MESSAGE = "DR80000001\nNEEDS CORRECTION\n\nMissing items:\n• 3. Cable entry outside"
INSTALLER = "27821234567"  # as the monitor stores a live sender
WAHA_KEY = "waha-key-for-tests"
EVOLUTION_KEY = "evolution-key-for-tests"
BRIDGE_TOKEN = "bridge-token-for-tests"
# The installer's post as each gateway's webhook names it.
WAHA_POST = f"false_{LAWLEY_JID}_3EB0C767D71D3AB3C9A1_{INSTALLER}@c.us"
EVOLUTION_POST = "3EB0C767D71D3AB3C9A2"
BRIDGE_POST = "3EB0C767D71D3AB3C9A3"


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # JSON, or a str sent as text/html
    hold: bool = False  # answer only once the test gateway stops (no answer in time)


@dataclass(frozen=True)
class Seen:
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any


class FakeGateway:
    """A real HTTP server on 127.0.0.1 answering POSTs with scripted replies (the
    default when the script is empty) and recording every request."""

    def __init__(self, default: Reply) -> None:
        self.default = default
        self.script: list[Reply] = []
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with gateway._lock:
                    reply = gateway.script.pop(0) if gateway.script else gateway.default
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    gateway.seen.append(Seen(self.path, headers, json.loads(raw)))
                if reply.hold:
                    gateway._stopping.wait(30)
                text = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
                kind = "text/html" if isinstance(reply.body, str) else "application/json"
                data = text.encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, *replies: Reply) -> None:
        with self._lock:
            self.script.extend(replies)

    def stop(self) -> None:
        self._stopping.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def waha_sent(chat: str, serial: str = "3EB0A0B1C2D3E4F5A6B7") -> Reply:
    """WAHA's WAMessage for a text it sent (201)."""
    message_id = f"true_{chat}_{serial}"
    return Reply(201, {"id": message_id, "timestamp": 1762708530, "fromMe": True, "to": chat})


def evolution_sent(chat: str, key_id: str = "BAE5F5A632EAE722") -> Reply:
    """Evolution API's answer to sendText (201): the message, its id in key.id."""
    return Reply(
        201,
        {
            "key": {"remoteJid": chat, "fromMe": True, "id": key_id},
            "status": "PENDING",
            "message": {"conversation": MESSAGE},
            "messageType": "conversation",
            "messageTimestamp": 1762708530,
        },
    )


BRIDGE_SENT = Reply(
    200,
    {
        "success": True,
        "message": f"Message sent to {LAWLEY_JID}",
        "message_id": "3EB0F00DFEEDBEEF0001",
        "timestamp": "2025-11-09T19:15:30+02:00",
    },
)
UPSTREAM_SENT = Reply(200, {"success": True, "message": f"Message sent to {LAWLEY_JID}"})
WAHA_UNAUTHORIZED = Reply(401, {"message": "Unauthorized", "statusCode": 401})
WAHA_NOT_WORKING = Reply(
    422,
    {
        "error": "Session status is not as expected. Try again later or restart the session",
        "session": "field",
        "status": "STARTING",
        "expected": ["WORKING"],
    },
)
WAHA_ENGINE_ERROR = Reply(
    500,
    {
        "statusCode": 500,
        "timestamp": "2025-11-09T17:15:30.000Z",
        "exception": {"message": "Evaluation failed: TypeError: undefined", "name": "Error"},
    },
)
EVOLUTION_UNAUTHORIZED = Reply(
    401, {"status": 401, "error": "Unauthorized", "response": {"message": "Unauthorized"}}
)
EVOLUTION_CLOSED = Reply(
    400,
    {"status": 400, "error": "Bad Request", "response": {"message": ["Error: Connection Closed"]}},
)
BRIDGE_NOT_CONNECTED = Reply(500, {"success": False, "message": "Not connected to WhatsApp"})
BRIDGE_UNAUTHORIZED = Reply(
    401, {"success": False, "message": "Unauthorized: send Authorization: Bearer <BRIDGE_TOKEN>"}
)
PROXY_BAD_GATEWAY = Reply(502, "<html><body><h1>502 Bad Gateway</h1>nginx</body></html>")


def projects(lawley: str | None = None, mohadin: str | None = None) -> ProjectsConfig:
    """Lawley and Mohadin, each on the named gateway (None: the GATEWAY setting's)."""

    def gateway(name: str | None) -> str:
        return f"\n    gateway: {name}" if name else ""

    text = f"""
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "{LAWLEY_JID}"
    description: Lawley Activation 3 group{gateway(lawley)}
  - name: Mohadin
    group_jid: "{MOHADIN_JID}"
    description: Mohadin Activations group{gateway(mohadin)}
"""
    return parse_config(text, Path("projects.yaml"))


@dataclass
class Gateways:
    waha: FakeGateway
    evolution: FakeGateway
    bridge: FakeGateway

    def settings(self, db_url: str, **env: str) -> Settings:
        return settings_from(
            {
                "DATABASE_URL": db_url,
                "SECRET_KEY": "test-secret-key-0123456789",
                "BRIDGE_URL": f"{self.bridge.url}/api",
                "WAHA_URL": self.waha.url,
                "WAHA_API_KEY": WAHA_KEY,
                "WAHA_SESSION": "field",
                "EVOLUTION_URL": self.evolution.url,
                "EVOLUTION_API_KEY": EVOLUTION_KEY,
                "EVOLUTION_INSTANCE": "Field Office",
                **env,
            }
        )

    def requests(self) -> int:
        return len(self.waha.seen) + len(self.evolution.seen) + len(self.bridge.seen)


@pytest.fixture
def gateways() -> Iterator[Gateways]:
    made = Gateways(
        FakeGateway(waha_sent(LAWLEY_JID)),
        FakeGateway(evolution_sent(MOHADIN_JID)),
        FakeGateway(UPSTREAM_SENT),
    )
    yield made
    for gateway in (made.waha, made.evolution, made.bridge):
        gateway.stop()


@dataclass
class Dashboard:
    client: TestClient
    people: People
    store: ReviewStore

    def send(self, drop: str, project: str = "Lawley", key: str | None = None) -> Any:
        headers = self.people.bearer("reviewer")
        if key:
            headers["Idempotency-Key"] = key
        body = {
            "dropId": str(review(self.store, drop, project)["id"]),
            "dropNumber": drop,
            "message": MESSAGE,
        }
        return self.client.post("/api/wa-monitor-send-feedback", json=body, headers=headers)


@contextmanager
def dashboard(
    store: ReviewStore, settings: Settings, config: ProjectsConfig
) -> Iterator[Dashboard]:
    """The real app, its clients built from the settings (no `bridge=`), sender off."""
    people = add_people(store)
    app = create_app(settings, config, store, run_sender=False)
    with TestClient(app) as client:
        yield Dashboard(client, people, store)


def installer_posted(
    store: ReviewStore, drop: str, message_id: str, project: str = "Lawley"
) -> None:
    record(store, post(drop, minutes_ago(10), project=project, message_id=message_id))


def only_entry(store: ReviewStore, drop: str, project: str = "Lawley") -> fb.OutboxEntry:
    entries = fb.entries_for(store, review(store, drop, project)["id"])
    assert len(entries) == 1, entries
    return entries[0]


# -- through the dashboard --------------------------------------------------------------


def test_a_waha_projects_feedback_goes_to_wahas_send_text_and_keeps_its_message_id(
    store: ReviewStore, gateways: Gateways
) -> None:
    installer_posted(store, "DR80000001", WAHA_POST)
    settings = gateways.settings(store.url)
    with dashboard(store, settings, projects(lawley="waha")) as dash:
        response = dash.send("DR80000001", key="key-waha-1")
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert data["status"] == "sent" and data["gateway"] == "waha"
    assert data["messageId"] == f"true_{LAWLEY_JID}_3EB0A0B1C2D3E4F5A6B7"
    [seen] = gateways.waha.seen
    assert seen.path == "/api/sendText"
    assert seen.headers["x-api-key"] == WAHA_KEY and "authorization" not in seen.headers
    assert seen.json == {
        "session": "field",
        "chatId": LAWLEY_JID,
        "text": MESSAGE,
        "mentions": [f"{INSTALLER}@c.us"],
        "reply_to": WAHA_POST,
    }
    entry = only_entry(store, "DR80000001")
    assert entry.status == fb.SENT and entry.gateway == "waha"
    assert entry.gateway_message_id == f"true_{LAWLEY_JID}_3EB0A0B1C2D3E4F5A6B7"
    assert review(store, "DR80000001")["feedback_sent"] is not None
    assert gateways.bridge.seen == [] and gateways.evolution.seen == []


def test_an_evolution_projects_feedback_goes_to_its_instances_send_text_with_the_key_id(
    store: ReviewStore, gateways: Gateways
) -> None:
    installer_posted(store, "DR80000001", EVOLUTION_POST, project="Mohadin")
    settings = gateways.settings(store.url)
    with dashboard(store, settings, projects(lawley="waha", mohadin="evolution")) as dash:
        response = dash.send("DR80000001", project="Mohadin")
    assert response.status_code == 200, response.text
    [seen] = gateways.evolution.seen
    assert seen.path == "/message/sendText/Field%20Office"
    assert seen.headers["apikey"] == EVOLUTION_KEY and "x-api-key" not in seen.headers
    assert seen.json == {
        "number": MOHADIN_JID,
        "text": MESSAGE,
        "mentioned": [f"{INSTALLER}@s.whatsapp.net"],
        "quoted": {"key": {"id": EVOLUTION_POST}},
    }
    entry = only_entry(store, "DR80000001", "Mohadin")
    assert (entry.status, entry.gateway, entry.gateway_message_id) == (
        fb.SENT,
        "evolution",
        "BAE5F5A632EAE722",
    )
    assert gateways.waha.seen == [] and gateways.bridge.seen == []


def test_the_python_bridge_gets_the_token_the_mention_and_the_quote_and_its_id_is_kept(
    store: ReviewStore, gateways: Gateways
) -> None:
    gateways.bridge.default = BRIDGE_SENT
    installer_posted(store, "DR80000001", BRIDGE_POST)
    settings = gateways.settings(store.url, BRIDGE_TOKEN=BRIDGE_TOKEN)
    with dashboard(store, settings, projects(mohadin="waha")) as dash:
        response = dash.send("DR80000001")
    assert response.status_code == 200, response.text
    [seen] = gateways.bridge.seen
    assert seen.path == "/api/send"
    assert seen.headers["authorization"] == f"Bearer {BRIDGE_TOKEN}"
    assert seen.json == {
        "recipient": LAWLEY_JID,
        "message": MESSAGE,
        "mentions": [f"{INSTALLER}@s.whatsapp.net"],
        "reply_to": BRIDGE_POST,
        "reply_to_sender": f"{INSTALLER}@s.whatsapp.net",
    }
    entry = only_entry(store, "DR80000001")
    assert (entry.gateway, entry.gateway_message_id) == ("bridge", "3EB0F00DFEEDBEEF0001")


@pytest.mark.parametrize("gateway", ["bridge", "bridge-webhook"])
def test_a_project_on_the_upstream_bridge_gets_the_plain_request_as_before(
    store: ReviewStore, gateways: Gateways, gateway: str
) -> None:
    installer_posted(store, "DR80000001", BRIDGE_POST)
    settings = gateways.settings(store.url, GATEWAY=gateway)
    with dashboard(store, settings, projects(mohadin="waha")) as dash:
        response = dash.send("DR80000001")
    assert response.status_code == 200, response.text
    [seen] = gateways.bridge.seen
    assert seen.path == "/api/send" and "authorization" not in seen.headers
    assert seen.json == {"recipient": LAWLEY_JID, "message": MESSAGE}
    entry = only_entry(store, "DR80000001")
    assert (entry.status, entry.gateway, entry.gateway_message_id) == (fb.SENT, gateway, None)
    assert review(store, "DR80000001")["feedback_count"] == 1


def test_a_gateway_without_its_url_fails_the_feedback_visibly_and_sends_nothing(
    store: ReviewStore, gateways: Gateways
) -> None:
    installer_posted(store, "DR80000001", WAHA_POST)
    settings = gateways.settings(store.url, GATEWAY="waha", WAHA_URL="")
    with dashboard(store, settings, projects()) as dash:
        response = dash.send("DR80000001")
    assert response.status_code == 502, response.text
    message = response.json()["error"]["message"]
    assert message.startswith("The WAHA gateway refused the feedback: WAHA_URL is not set")
    entry = only_entry(store, "DR80000001")
    assert (entry.status, entry.gateway) == (fb.FAILED, "waha")
    assert entry.last_error and "WAHA_URL is not set" in entry.last_error
    assert review(store, "DR80000001")["feedback_sent"] is None
    assert gateways.requests() == 0


def test_a_project_moved_to_another_gateway_sends_its_next_feedback_there(
    store: ReviewStore, gateways: Gateways
) -> None:
    installer_posted(store, "DR80000001", WAHA_POST)
    installer_posted(store, "DR80000002", WAHA_POST.replace("A1_", "A4_"))
    settings = gateways.settings(store.url)
    with dashboard(store, settings, projects()) as dash:
        assert dash.send("DR80000001").status_code == 200
        # projects.yaml now says `gateway: waha` for Lawley (the dashboard follows the file).
        dash.client.app.state.config = projects(lawley="waha")  # type: ignore[attr-defined]
        assert dash.send("DR80000002").status_code == 200
    assert [seen.json["recipient"] for seen in gateways.bridge.seen] == [LAWLEY_JID]
    assert [seen.json["chatId"] for seen in gateways.waha.seen] == [LAWLEY_JID]
    assert only_entry(store, "DR80000001").gateway == "bridge"
    assert only_entry(store, "DR80000002").gateway == "waha"


# -- retried only when certainly not sent -----------------------------------------------


@dataclass(frozen=True)
class Case:
    what: str
    gateway: str  # Lawley's
    reply: Reply
    status: str  # the entry after the first attempt


CASES = [
    Case("WAHA: the session is starting", "waha", WAHA_NOT_WORKING, fb.PENDING),
    Case("Evolution: Baileys' connection closed", "evolution", EVOLUTION_CLOSED, fb.PENDING),
    Case("WAHA refused the key", "waha", WAHA_UNAUTHORIZED, fb.FAILED),
    Case("Evolution refused the key", "evolution", EVOLUTION_UNAUTHORIZED, fb.FAILED),
    Case("WAHA's engine failed mid-send", "waha", WAHA_ENGINE_ERROR, fb.UNCONFIRMED),
    Case("a proxy's 502 in front of WAHA", "waha", PROXY_BAD_GATEWAY, fb.UNCONFIRMED),
    Case("a proxy's 502 in front of Evolution", "evolution", PROXY_BAD_GATEWAY, fb.UNCONFIRMED),
    Case("WAHA did not answer in time", "waha", Reply(201, {}, hold=True), fb.UNCONFIRMED),
    Case(
        "Evolution did not answer in time", "evolution", Reply(201, {}, hold=True), fb.UNCONFIRMED
    ),
    Case("wa-monitor bridge: not connected", "bridge", BRIDGE_NOT_CONNECTED, fb.PENDING),
    Case("wa-monitor bridge refused the token", "bridge", BRIDGE_UNAUTHORIZED, fb.FAILED),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.what)
def test_only_a_send_that_certainly_did_not_go_out_is_sent_again(
    store: ReviewStore, gateways: Gateways, case: Case
) -> None:
    installer_posted(store, "DR80000001", WAHA_POST)
    config = projects(lawley=case.gateway)
    settings = gateways.settings(store.url, BRIDGE_TOKEN=BRIDGE_TOKEN)
    clients = GatewayClients(settings, lambda: config, timeout=0.5)
    sender = fb.FeedbackSender(store, clients, backoff=(0,))
    gateways.bridge.default = BRIDGE_SENT
    target = {"waha": gateways.waha, "evolution": gateways.evolution}.get(
        case.gateway, gateways.bridge
    )
    target.answer(case.reply)
    entry, _created = fb.enqueue(
        store,
        review_id=review(store, "DR80000001")["id"],
        drop_number="DR80000001",
        project="Lawley",
        recipient=LAWLEY_JID,
        message=MESSAGE,
        request_key=f"key-{case.gateway}-{case.reply.status}",
        requested_by="reviewer",
    )
    try:
        first = sender.deliver(entry.id)
        assert first is not None and first.status == case.status, (case.what, first)
        assert first.gateway == case.gateway and first.gateway_message_id is None
        assert first.last_error
        assert all(key not in first.last_error for key in (WAHA_KEY, EVOLUTION_KEY, BRIDGE_TOKEN))
        # The sender's next pass, and one a day later.
        sender.deliver_due(now())
        sender.deliver_due(now() + timedelta(days=1))
    finally:
        sender.close()
    after = fb.get_entry(store, entry_id=entry.id)
    assert after is not None
    if case.status == fb.PENDING:
        assert len(target.seen) == 2, case.what  # retried once, then taken
        assert after.status == fb.SENT and after.gateway_message_id
        assert review(store, "DR80000001")["feedback_count"] == 1
    else:
        assert len(target.seen) == 1, case.what  # never sent again by itself
        assert after.status == case.status
        assert review(store, "DR80000001")["feedback_sent"] is None
    others = {"waha", "evolution", "bridge"} - {case.gateway}
    assert all(getattr(gateways, other).seen == [] for other in others)


# -- against `wa-monitor bridge`'s own API ----------------------------------------------


class Phone:
    """WhatsApp behind `wa-monitor bridge`'s API: records each message, answers an id."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []

    def connected(self) -> bool:
        return True

    def me(self) -> str:
        return "27820000000"

    def send(self, chat_jid: str, message: Any) -> Sent:
        self.sent.append((chat_jid, message))
        return Sent("3EB0FEEDC0FFEE000001", datetime.now(UTC))

    def upload(self, data: bytes, media_type: str) -> Any:
        raise AssertionError("a feedback uploads nothing")

    def download(self, media: bytes) -> bytes:
        raise AssertionError("a feedback downloads nothing")


def test_wa_monitor_bridge_sends_the_mention_and_quote_and_its_id_confirms_the_feedback(
    store: ReviewStore, gateways: Gateways, tmp_path: Path
) -> None:
    installer_posted(store, "DR80000001", BRIDGE_POST)
    phone = Phone()
    messages = MessageStore(tmp_path / "store" / "messages.db")
    api = BridgeApi(messages, tmp_path / "store", phone, BRIDGE_TOKEN)
    server = ApiServer(api.app(), "127.0.0.1", 0).start()
    try:
        settings = gateways.settings(store.url, BRIDGE_URL=server.url, BRIDGE_TOKEN=BRIDGE_TOKEN)
        with dashboard(store, settings, projects()) as dash:
            response = dash.send("DR80000001")
    finally:
        server.stop()
        messages.close()
    assert response.status_code == 200, response.text
    [(chat, message)] = phone.sent
    assert chat == LAWLEY_JID
    assert message.extendedTextMessage.text == MESSAGE
    context = message.extendedTextMessage.contextInfo
    assert list(context.mentionedJID) == [f"{INSTALLER}@s.whatsapp.net"]
    assert context.stanzaID == BRIDGE_POST
    entry = only_entry(store, "DR80000001")
    assert (entry.status, entry.gateway, entry.gateway_message_id) == (
        fb.SENT,
        "bridge",
        "3EB0FEEDC0FFEE000001",
    )
