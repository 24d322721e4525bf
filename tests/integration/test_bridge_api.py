"""`wa-monitor bridge`'s HTTP API over real HTTP (uvicorn on 127.0.0.1, a free port), with
WhatsApp replaced by a fake transport that records what would be sent."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import wa_monitor.bridge  # noqa: F401  # first: it imports neonize without its stray warning

# isort: split
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import ImageMessage, Message

from wa_monitor.bridge.api import ApiServer, BridgeApi, NotConnected, Sent, Uploaded
from wa_monitor.bridge.handler import Handler
from wa_monitor.bridge.store import MessageStore
from wa_monitor.sources.bridge_media import BridgeMediaClient

TOKEN = "s3cret-token"
GROUP = "120363418298130331@g.us"
ME = "27820000000"
PHOTO = b"\xff\xd8 a photo of the ONT barcode"
SENT_AT = datetime(2025, 11, 9, 17, 20, tzinfo=UTC)


@dataclass
class FakeWhatsApp:
    """Records what would go to WhatsApp; answers like neonize's client."""

    is_connected: bool = True
    sent: list[tuple[str, Any]] = field(default_factory=list)
    uploads: list[tuple[bytes, str]] = field(default_factory=list)
    files: dict[bytes, bytes] = field(default_factory=dict)  # media key → decrypted bytes
    fail_download: str | None = None

    def connected(self) -> bool:
        return self.is_connected

    def me(self) -> str:
        return ME

    def send(self, chat_jid: str, message: Any) -> Sent:
        if not self.is_connected:
            raise NotConnected
        self.sent.append((chat_jid, message))
        return Sent(f"3EB0SENT{len(self.sent):04d}", SENT_AT)

    def upload(self, data: bytes, media_type: str) -> Uploaded:
        self.uploads.append((data, media_type))
        return Uploaded(
            url="https://mmg.whatsapp.net/up?oh=token",
            direct_path="/v/up",
            media_key=b"m" * 32,
            file_enc_sha256=b"e" * 32,
            file_sha256=hashlib.sha256(data).digest(),
            file_length=len(data),
        )

    def download(self, media: bytes) -> bytes:
        if self.fail_download:
            raise RuntimeError(self.fail_download)
        message = Message.FromString(media)
        return self.files[bytes(message.imageMessage.mediaKey)]


@dataclass
class Bridge:
    store: MessageStore
    folder: Path
    whatsapp: FakeWhatsApp
    url: str

    def post(self, path: str, body: object, token: str | None = TOKEN) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.post(f"{self.url}{path}", json=body, headers=headers, timeout=10)

    def photo(self, message_id: str, data: bytes = PHOTO, key: bytes = b"k" * 32) -> None:
        """A photo posted in the group, as the handler stores it."""
        self.whatsapp.files[key] = data
        event = ev.Message(
            Info=ev.MessageInfo(
                ID=message_id,
                Timestamp=1762708530000,
                MessageSource=ev.MessageSource(
                    Chat=ev.JID(User=GROUP.split("@")[0], Server="g.us"),
                    Sender=ev.JID(User="27821234567", Server="s.whatsapp.net"),
                    IsGroup=True,
                ),
            ),
            Message=Message(
                imageMessage=ImageMessage(
                    caption="DR12345678",
                    mimetype="image/jpeg",
                    mediaKey=key,
                    fileSHA256=hashlib.sha256(data).digest(),
                    fileLength=len(data),
                )
            ),
        )
        assert Handler(self.store).message(event) == "stored"


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[Bridge]:
    folder = tmp_path / "store"
    store = MessageStore(folder / "messages.db")
    whatsapp = FakeWhatsApp()
    server = ApiServer(BridgeApi(store, folder, whatsapp, TOKEN).app(), "127.0.0.1", 0).start()
    try:
        yield Bridge(store, folder, whatsapp, server.url)
    finally:
        server.stop()
        store.close()


def stored(bridge: Bridge, message_id: str) -> tuple[object, ...] | None:
    with sqlite3.connect(bridge.store.path) as conn:
        row: tuple[object, ...] | None = conn.execute(
            "SELECT chat_jid, sender, content, is_from_me, media_type FROM messages WHERE id = ?",
            (message_id,),
        ).fetchone()
    return row


# -- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize("token", [None, "wrong", TOKEN + "x"])
def test_every_request_needs_the_bearer_token(bridge: Bridge, token: str | None) -> None:
    for path, body in (
        ("/send", {"recipient": GROUP, "message": "hi"}),
        ("/download", {"message_id": "x", "chat_jid": GROUP}),
    ):
        answer = bridge.post(path, body, token=token)
        assert answer.status_code == 401
        assert answer.json()["success"] is False
        assert TOKEN not in answer.text
    health = httpx.get(f"{bridge.url}/health", timeout=10)
    assert health.status_code == 401
    assert bridge.whatsapp.sent == []


def test_the_token_refuses_to_be_empty(tmp_path: Path) -> None:
    from wa_monitor.core.errors import ConfigError

    store = MessageStore(tmp_path / "messages.db")
    with pytest.raises(ConfigError, match="BRIDGE_TOKEN"):
        BridgeApi(store, tmp_path, FakeWhatsApp(), "")
    store.close()


# -- send --------------------------------------------------------------------------------


def test_send_answers_whatsapps_message_id_and_stores_the_message(bridge: Bridge) -> None:
    answer = bridge.post(
        "/send", {"recipient": GROUP, "message": "DR12345678\nAll items complete!"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["success"] is True
    assert body["message_id"] == "3EB0SENT0001"
    assert datetime.fromisoformat(body["timestamp"]) == SENT_AT
    chat, message = bridge.whatsapp.sent[0]
    assert chat == GROUP
    assert message.conversation == "DR12345678\nAll items complete!"
    # Unlike upstream, what the bridge sends is in messages.db, as ours (is_from_me = 1).
    assert stored(bridge, "3EB0SENT0001") == (
        GROUP,
        ME,
        "DR12345678\nAll items complete!",
        1,
        "",
    )


def test_a_phone_number_recipient_becomes_its_jid(bridge: Bridge) -> None:
    assert (
        bridge.post("/send", {"recipient": "+27 82 123 4567", "message": "hi"}).status_code == 200
    )
    assert bridge.whatsapp.sent[0][0] == "27821234567@s.whatsapp.net"


def test_mentions_and_a_reply_quote_the_stored_message(bridge: Bridge) -> None:
    bridge.photo("3EB0PHOTO1")
    installer = "27821234567@s.whatsapp.net"
    answer = bridge.post(
        "/send",
        {
            "recipient": GROUP,
            "message": "@27821234567 step 3 is missing",
            "mentions": [installer],
            "reply_to": "3EB0PHOTO1",
        },
    )
    assert answer.status_code == 200, answer.text
    message = bridge.whatsapp.sent[0][1]
    assert message.extendedTextMessage.text == "@27821234567 step 3 is missing"
    context = message.extendedTextMessage.contextInfo
    assert list(context.mentionedJID) == [installer]
    assert context.stanzaID == "3EB0PHOTO1"
    assert context.participant == installer  # the stored sender, as a JID
    assert context.quotedMessage.conversation == "DR12345678"  # the stored caption


def test_a_reply_to_a_message_not_stored_names_the_given_sender(bridge: Bridge) -> None:
    lid = "112233445566778@lid"
    body = {"recipient": GROUP, "message": "ok", "reply_to": "3EB0UNSEEN", "reply_to_sender": lid}
    assert bridge.post("/send", body).status_code == 200
    context = bridge.whatsapp.sent[0][1].extendedTextMessage.contextInfo
    assert (context.stanzaID, context.participant) == ("3EB0UNSEEN", lid)
    assert not context.HasField("quotedMessage")


def test_media_path_is_uploaded_and_sent_with_its_caption(bridge: Bridge, tmp_path: Path) -> None:
    picture = tmp_path / "report.png"
    picture.write_bytes(b"\x89PNG report")
    body = {"recipient": GROUP, "message": "today's report", "media_path": str(picture)}
    answer = bridge.post("/send", body)
    assert answer.status_code == 200, answer.text
    assert bridge.whatsapp.uploads == [(b"\x89PNG report", "image")]
    image = bridge.whatsapp.sent[0][1].imageMessage
    assert (image.caption, image.mimetype, image.directPath) == (
        "today's report",
        "image/png",
        "/v/up",
    )
    assert image.fileSHA256 == hashlib.sha256(b"\x89PNG report").digest()
    assert stored(bridge, answer.json()["message_id"]) == (GROUP, ME, "today's report", 1, "image")


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"message": "hi"}, "Recipient is required"),
        ({"recipient": GROUP}, "Message or media path is required"),
        ({"recipient": "not a number", "message": "hi"}, "Invalid recipient"),
        ({"recipient": GROUP, "message": "hi", "mentions": "27821234567"}, "mentions"),
        ([1, 2], "Invalid request format"),
    ],
)
def test_a_bad_send_is_a_plain_400(bridge: Bridge, body: object, text: str) -> None:
    answer = bridge.post("/send", body)
    assert answer.status_code == 400
    assert answer.headers["content-type"].startswith("text/plain")
    assert text in answer.text
    assert bridge.whatsapp.sent == []


def test_a_body_that_is_not_json_is_a_400(bridge: Bridge) -> None:
    answer = httpx.post(
        f"{bridge.url}/send",
        content=b"recipient=x",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert (answer.status_code, answer.text) == (400, "Invalid request format")


def test_not_connected_is_a_500_as_upstream(bridge: Bridge) -> None:
    bridge.whatsapp.is_connected = False
    answer = bridge.post("/send", {"recipient": GROUP, "message": "hi"})
    assert answer.status_code == 500
    assert answer.json() == {"success": False, "message": "Not connected to WhatsApp"}
    health = httpx.get(f"{bridge.url}/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert health.json() == {"success": True, "connected": False}


# -- download ----------------------------------------------------------------------------


def test_download_writes_the_verified_file_inside_the_store(bridge: Bridge) -> None:
    bridge.photo("3EB0PHOTO2")
    answer = bridge.post("/download", {"message_id": "3EB0PHOTO2", "chat_jid": GROUP})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["success"] is True
    assert body["message"] == "Successfully downloaded image media"
    path = Path(body["path"])
    assert path.read_bytes() == PHOTO
    assert path.parent == (bridge.folder / GROUP).resolve()
    assert body["filename"] == path.name and "3EB0PHOTO2" in path.name
    # The monitor's own download client (with BRIDGE_TOKEN) accepts the answer and opens
    # the file.
    client = BridgeMediaClient(bridge.url, bridge.folder, token=TOKEN)
    try:
        got = client.download("3EB0PHOTO2", GROUP)
        assert got.status == "ready" and got.path is not None
        with client.open(got.path) as handle:
            assert handle.read() == PHOTO
    finally:
        client.close()


def test_the_monitors_download_without_bridge_token_is_told_to_set_it(bridge: Bridge) -> None:
    bridge.photo("3EB0PHOTO3")
    client = BridgeMediaClient(bridge.url, bridge.folder)
    try:
        got = client.download("3EB0PHOTO3", GROUP)
    finally:
        client.close()
    assert got.status == "retry"
    assert "HTTP 401" in got.reason and "set BRIDGE_TOKEN" in got.reason
    assert not (bridge.folder / GROUP).exists()


def test_photos_of_one_burst_download_to_their_own_files(bridge: Bridge) -> None:
    bridge.photo("3EB0BURST1", b"first photo", b"1" * 32)
    bridge.photo("3EB0BURST2", b"second photo", b"2" * 32)
    paths = [
        Path(bridge.post("/download", {"message_id": m, "chat_jid": GROUP}).json()["path"])
        for m in ("3EB0BURST1", "3EB0BURST2")
    ]
    assert [p.read_bytes() for p in paths] == [b"first photo", b"second photo"]


def test_a_file_not_matching_the_message_sha256_is_refused_and_not_kept(bridge: Bridge) -> None:
    bridge.photo("3EB0PHOTO3")
    bridge.whatsapp.files[b"k" * 32] = b"some other photo"
    answer = bridge.post("/download", {"message_id": "3EB0PHOTO3", "chat_jid": GROUP})
    assert answer.status_code == 500
    assert answer.json()["success"] is False
    assert "SHA-256" in answer.json()["message"]
    folder = bridge.folder / GROUP
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_download_error_is_passed_on_without_the_media_url(bridge: Bridge) -> None:
    bridge.photo("3EB0PHOTO4")
    bridge.whatsapp.fail_download = (
        "download failed with status code 404 for https://mmg.whatsapp.net/v?oh=SECRET&oe=1"
    )
    answer = bridge.post("/download", {"message_id": "3EB0PHOTO4", "chat_jid": GROUP})
    assert answer.status_code == 500
    message = answer.json()["message"]
    assert "404" in message  # the monitor's client reads it as media gone from WhatsApp
    assert "SECRET" not in message


@pytest.mark.parametrize(
    "chat_jid",
    ["../../etc", "..", "/etc/passwd", "120363418298130331@g.us/../..", "a/b@g.us"],
)
def test_paths_never_leave_the_store_folder(bridge: Bridge, chat_jid: str) -> None:
    answer = bridge.post("/download", {"message_id": "3EB0PHOTO5", "chat_jid": chat_jid})
    assert answer.status_code in (400, 500)
    assert answer.json()["success"] is False
    assert [p.name for p in bridge.folder.iterdir()] == ["messages.db"]


def test_a_message_id_cannot_name_a_path_either(bridge: Bridge) -> None:
    bridge.photo("../../../escape")
    answer = bridge.post("/download", {"message_id": "../../../escape", "chat_jid": GROUP})
    assert answer.status_code == 200, answer.text
    path = Path(answer.json()["path"])
    assert path.parent == (bridge.folder / GROUP).resolve()
    assert "/" not in answer.json()["filename"]


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"message_id": "3EB0NONE", "chat_jid": GROUP}, 500, "failed to find message"),
        ({"message_id": "", "chat_jid": GROUP}, 400, "Message ID and Chat JID are required"),
        ({"chat_jid": GROUP}, 400, "Message ID and Chat JID are required"),
    ],
)
def test_download_errors_as_upstream(bridge: Bridge, body: object, status: int, text: str) -> None:
    answer = bridge.post("/download", body)
    assert answer.status_code == status
    assert text in answer.text


def test_a_text_message_is_not_media(bridge: Bridge) -> None:
    bridge.post("/send", {"recipient": GROUP, "message": "hello"})
    answer = bridge.post("/download", {"message_id": "3EB0SENT0001", "chat_jid": GROUP})
    assert answer.status_code == 500
    assert "not a media message" in answer.json()["message"]
