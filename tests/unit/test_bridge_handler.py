"""`wa-monitor bridge`'s pure parts: what a neonize message means, times, names, what is
sent, and the connection's states as an operator sees them."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import wa_monitor.bridge  # noqa: F401  # first: it imports neonize without its stray warning

# isort: split
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    AudioMessage,
    DeviceSentMessage,
    FutureProofMessage,
    ImageMessage,
    Message,
    StickerMessage,
)

from wa_monitor.bridge.api import (
    BadRequest,
    SendRequest,
    Uploaded,
    compose,
    listen_address,
    recipient_jid,
    send_request,
)
from wa_monitor.bridge.handler import from_epoch, jid_text, kind_of, parse, safe_name, unwrap
from wa_monitor.bridge.media import chat_folder, disk_name
from wa_monitor.bridge.run import paired, require_token, store_folder, to_jid
from wa_monitor.bridge.session import LOGGED_OUT, OUTDATED, Session, read_status
from wa_monitor.bridge.store import go_time
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.settings import load_settings

WHEN = datetime(2025, 11, 9, 17, 15, 30, tzinfo=UTC)


def test_go_time_is_go_sqlite3s_text() -> None:
    sast = timezone(timedelta(hours=2))
    assert go_time(WHEN, sast) == "2025-11-09 19:15:30+02:00"
    assert go_time(WHEN.replace(microsecond=123000), sast) == "2025-11-09 19:15:30.123+02:00"
    assert go_time(WHEN, UTC) == "2025-11-09 17:15:30+00:00"  # never "Z"


def test_event_times_in_milliseconds_or_seconds() -> None:
    assert from_epoch(int(WHEN.timestamp() * 1000)) == WHEN  # live messages (neonize: ms)
    assert from_epoch(int(WHEN.timestamp())) == WHEN  # history sync (seconds)
    fallback = datetime(2020, 1, 1, tzinfo=UTC)
    assert from_epoch(0, default=fallback) == fallback


def test_jids_lose_their_device() -> None:
    assert jid_text(ev.JID(User="112233445566778", Server="lid", Device=12)) == (
        "112233445566778@lid"
    )
    assert jid_text(ev.JID(User="120363418298130331", Server="g.us")) == "120363418298130331@g.us"
    assert jid_text(ev.JID()) == ""


def test_wrappers_are_opened() -> None:
    inner = Message(conversation="DR12345678")
    wrapped = Message(
        deviceSentMessage=DeviceSentMessage(
            message=Message(ephemeralMessage=FutureProofMessage(message=inner))
        )
    )
    assert unwrap(wrapped) == inner
    parsed = parse(unwrap(wrapped), "3EB0", WHEN)
    assert parsed is not None and parsed.content == "DR12345678"


def test_media_keeps_what_a_download_needs_and_drops_the_thumbnail() -> None:
    image = ImageMessage(
        caption="DR1", mimetype="image/png", mediaKey=b"k", directPath="/v/x", JPEGThumbnail=b"t"
    )
    parsed = parse(Message(imageMessage=image), "3EB0IMG", WHEN)
    assert parsed is not None
    assert (parsed.content, parsed.media_type, parsed.filename[-4:]) == ("DR1", "image", ".png")
    assert parsed.media is not None
    kept = Message.FromString(parsed.media).imageMessage
    assert (kept.mediaKey, kept.directPath, kept.JPEGThumbnail) == (b"k", "/v/x", b"")


def test_voice_notes_have_no_caption_and_stickers_are_not_stored() -> None:
    voice = parse(Message(audioMessage=AudioMessage(mimetype="audio/ogg; codecs=opus")), "A", WHEN)
    assert voice is not None and (voice.content, voice.media_type) == ("", "audio")
    assert voice.filename.endswith(".ogg")
    sticker = Message(stickerMessage=StickerMessage())
    assert parse(sticker, "S", WHEN) is None
    assert kind_of(sticker) == "stickerMessage"


@pytest.mark.parametrize("text", ["../../etc/passwd", "..", "a/b\\c", "", "\x00x"])
def test_file_names_from_whatsapp_are_safe(text: str) -> None:
    name = safe_name(text)
    assert "/" not in name and "\\" not in name and name not in ("", ".", "..")
    assert not name.startswith(".")
    assert "/" not in disk_name(text, text)
    assert "/" not in chat_folder(text) and chat_folder(text) not in ("", ".", "..")


def test_disk_names_always_carry_the_message_id() -> None:
    assert disk_name("3EB0A", "image_20251109_171530_3EB0A.jpg") == (
        "image_20251109_171530_3EB0A.jpg"
    )
    assert disk_name("3EB0A", "report.pdf") == "3EB0A_report.pdf"


@pytest.mark.parametrize(
    ("given", "jid"),
    [
        ("27821234567", "27821234567@s.whatsapp.net"),
        ("+27 82 123-4567", "27821234567@s.whatsapp.net"),
        ("120363418298130331@g.us", "120363418298130331@g.us"),
        ("112233445566778@lid", "112233445566778@lid"),
    ],
)
def test_recipients(given: str, jid: str) -> None:
    assert recipient_jid(given) == jid


@pytest.mark.parametrize("given", ["abc", "12@evil.example", "", "2782123456789012345678901"])
def test_bad_recipients_are_refused(given: str) -> None:
    with pytest.raises(BadRequest):
        recipient_jid(given)


def test_send_request_types_are_checked() -> None:
    with pytest.raises(BadRequest, match="reply_to"):
        send_request({"recipient": "27821234567", "message": "x", "reply_to": 5})
    parsed = send_request({"recipient": "27821234567", "message": "x", "mentions": None})
    assert parsed.mentions == ()


def test_compose_plain_text_mentions_and_media() -> None:
    plain = compose(SendRequest("1@g.us", "hello"))
    assert plain.conversation == "hello"
    mention = compose(
        SendRequest("1@g.us", "@27821234567 hi", mentions=("27821234567@s.whatsapp.net",))
    )
    assert list(mention.extendedTextMessage.contextInfo.mentionedJID) == [
        "27821234567@s.whatsapp.net"
    ]
    upload = Uploaded("https://u", "/v/u", b"m", b"e", b"s", 3)
    document = compose(
        SendRequest("1@g.us", "the list"),
        upload=upload,
        media_type="document",
        mimetype="text/csv",
        file_name="drops.csv",
    )
    assert document.documentMessage.fileName == "drops.csv"
    assert document.documentMessage.caption == "the list"
    assert document.documentMessage.fileLength == 3


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("[::1]:9000", ("::1", 9000)),
        (":81", ("127.0.0.1", 81)),
    ],
)
def test_listen_addresses(text: str, address: tuple[str, int]) -> None:
    assert listen_address(text) == address


@pytest.mark.parametrize("text", ["8080", "localhost", "host:99999", "host:x"])
def test_bad_listen_addresses_say_what_to_give(text: str) -> None:
    with pytest.raises(ConfigError, match="BRIDGE_LISTEN"):
        listen_address(text)


# -- the connection's states -------------------------------------------------------------


def status_of(folder: Path) -> dict[str, object]:
    data: dict[str, object] = json.loads((folder / "bridge-status.json").read_text())
    return data


def test_states_are_written_for_the_monitor_to_read(tmp_path: Path) -> None:
    session = Session(tmp_path)
    assert status_of(tmp_path)["state"] == "starting"
    session.on_connected("27820000000")
    assert session.connected
    found = read_status(tmp_path)
    assert found is not None
    assert (found.state, found.account, found.detail) == ("connected", "27820000000", "")
    session.on_disconnected("keepalive timeout")
    assert status_of(tmp_path)["state"] == "disconnected"
    assert not session.stopped.is_set()  # neonize reconnects by itself
    session.close()
    assert status_of(tmp_path)["state"] == "stopped"


def test_logged_out_stops_with_the_way_to_pair_again(tmp_path: Path) -> None:
    session = Session(tmp_path)
    session.on_logged_out()
    assert session.stopped.is_set()
    assert session.fatal == LOGGED_OUT
    assert "wa-monitor bridge pair" in LOGGED_OUT
    session.on_disconnected()  # the disconnection that follows does not hide why
    session.close()
    assert status_of(tmp_path)["state"] == "logged_out"


def test_a_refused_client_version_says_to_upgrade(tmp_path: Path) -> None:
    session = Session(tmp_path)
    session.on_outdated()
    assert session.fatal == OUTDATED
    assert "405" in OUTDATED and "upgrade" in OUTDATED
    assert status_of(tmp_path)["state"] == "outdated"


def test_failed_pairings_are_counted_across_runs_and_warned_of(tmp_path: Path) -> None:
    first = Session(tmp_path)
    assert "1 failed attempt" in first.on_pair_failed("bad code")
    first.close()
    second = Session(tmp_path)  # a new `pair` run: the count goes on
    second.on_pair_failed("bad code")
    message = second.on_pair_failed("timeout")
    assert "3 failed attempt" in message
    assert "locks pairing" in message and "5" in message
    assert status_of(tmp_path)["pairing_failures"] == 3
    second.on_paired("27820000000")
    assert status_of(tmp_path)["pairing_failures"] == 0


def test_an_unreadable_status_file_is_no_status(tmp_path: Path) -> None:
    (tmp_path / "bridge-status.json").write_text("{not json")
    assert read_status(tmp_path) is None
    (tmp_path / "bridge-status.json").write_text(json.dumps({"state": "dancing"}))
    assert read_status(tmp_path) is None


# -- the runner's checks -----------------------------------------------------------------


def test_recipients_become_neonize_jids() -> None:
    group = to_jid("120363418298130331@g.us")
    assert (group.User, group.Server, group.Device) == ("120363418298130331", "g.us", 0)
    device = to_jid("27821234567:12@s.whatsapp.net")
    assert (device.User, device.Device) == ("27821234567", 12)
    assert to_jid("27821234567").Server == "s.whatsapp.net"


def test_paired_means_whatsmeow_holds_a_device(tmp_path: Path) -> None:
    db = tmp_path / "whatsapp.db"
    assert not paired(db)
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY)")
    conn.close()
    assert not paired(db)  # logged out: whatsmeow deleted its device
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO whatsmeow_device VALUES ('27820000000:5@s.whatsapp.net')")
    conn.close()
    assert paired(db)
    db.write_bytes(b"not a database")
    assert not paired(db)


def test_the_store_folder_and_the_token_come_from_the_settings(tmp_path: Path) -> None:
    beside = load_settings({"WHATSAPP_DB_PATH": str(tmp_path / "store" / "messages.db")})
    assert store_folder(beside) == tmp_path / "store"
    with pytest.raises(ConfigError, match="BRIDGE_STORE is not set"):
        store_folder(load_settings({}))
    with pytest.raises(ConfigError, match="BRIDGE_TOKEN is not set"):
        require_token(load_settings({"BRIDGE_TOKEN": "   "}))
    assert require_token(load_settings({"BRIDGE_TOKEN": "abc"})) == "abc"
