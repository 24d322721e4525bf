"""`wa-monitor bridge`'s messages.db: neonize's real event protobufs through the handler,
read back by the monitor's own reader (BridgeStore), as the monitor will read it."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

import wa_monitor.bridge  # noqa: F401  # first: it imports neonize without its stray warning

# isort: split
from neonize.proto import Neonize_pb2 as ev
from neonize.proto.waCommon.WACommon_pb2 import MessageKey
from neonize.proto.waE2E.WAWebProtobufsE2E_pb2 import (
    DocumentMessage,
    ExtendedTextMessage,
    FutureProofMessage,
    ImageMessage,
    Message,
    ProtocolMessage,
    ReactionMessage,
    VideoMessage,
)
from neonize.proto.waHistorySync.WAWebProtobufsHistorySync_pb2 import (
    Conversation,
    HistorySync,
    HistorySyncMsg,
)
from neonize.proto.waWeb.WAWebProtobufsWeb_pb2 import WebMessageInfo

from wa_monitor.bridge.handler import Handler
from wa_monitor.bridge.store import MessageStore
from wa_monitor.sources.bridge import BridgeStore, parse_timestamp
from wa_monitor.sources.protocol import Prefilter

GROUP = "120363418298130331@g.us"
OTHER_GROUP = "120363000000000001@g.us"
PHONE = "27821234567"
PHONE_JID = f"{PHONE}@s.whatsapp.net"
LID = "112233445566778"
ME = "27820000000"
SAST = timezone(timedelta(hours=2))
# 2025-11-09 19:15:30 in Johannesburg; neonize gives live message times in milliseconds.
WHEN = datetime(2025, 11, 9, 19, 15, 30, tzinfo=SAST)
WHEN_MS = int(WHEN.timestamp() * 1000)


def live(
    message_id: str,
    message: Message,
    *,
    chat: str = GROUP,
    sender: str = PHONE,
    server: str = "s.whatsapp.net",
    at_ms: int = WHEN_MS,
    from_me: bool = False,
) -> ev.Message:
    """A live message event as neonize hands it over (MessageEv)."""
    user, _, chat_server = chat.partition("@")
    return ev.Message(
        Info=ev.MessageInfo(
            ID=message_id,
            Timestamp=at_ms,
            Pushname="Sipho",
            MessageSource=ev.MessageSource(
                Chat=ev.JID(User=user, Server=chat_server),
                Sender=ev.JID(User=sender, Server=server, Device=12),
                IsGroup=chat_server == "g.us",
                IsFromMe=from_me,
            ),
        ),
        Message=message,
    )


def photo(caption: str = "", data: bytes = b"jpeg bytes") -> Message:
    return Message(
        imageMessage=ImageMessage(
            caption=caption,
            mimetype="image/jpeg",
            URL="https://mmg.whatsapp.net/v/t62/abc?oh=secret",
            directPath="/v/t62/abc",
            mediaKey=b"k" * 32,
            fileSHA256=hashlib.sha256(data).digest(),
            fileEncSHA256=b"e" * 32,
            fileLength=len(data),
            JPEGThumbnail=b"t" * 2000,
        )
    )


@pytest.fixture
def store(tmp_path: Path) -> MessageStore:
    return MessageStore(tmp_path / "messages.db", zone=SAST)


@pytest.fixture
def handler(store: MessageStore) -> Handler:
    return Handler(store, me=lambda: ME, group_name=lambda jid: {GROUP: "Lawley QA"}.get(jid))


def reader(store: MessageStore) -> BridgeStore:
    bridge = BridgeStore(store.path)
    bridge.open()
    return bridge


def rows(store: MessageStore) -> list[tuple[object, ...]]:
    with sqlite3.connect(store.path) as conn:
        return conn.execute(
            "SELECT rowid, id, chat_jid, sender, content, timestamp, is_from_me, media_type, "
            "filename FROM messages ORDER BY rowid"
        ).fetchall()


def test_schema_is_the_upstream_bridges_plus_deletions(store: MessageStore) -> None:
    with sqlite3.connect(store.path) as conn:
        columns = {
            table: [(r[1], r[2], r[5]) for r in conn.execute(f"PRAGMA table_info({table})")]
            for table in ("chats", "messages", "deleted_messages")
        }
        journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert columns["chats"] == [
        ("jid", "TEXT", 1),
        ("name", "TEXT", 0),
        ("last_message_time", "TIMESTAMP", 0),
    ]
    assert columns["messages"] == [
        ("id", "TEXT", 1),
        ("chat_jid", "TEXT", 2),
        ("sender", "TEXT", 0),
        ("content", "TEXT", 0),
        ("timestamp", "TIMESTAMP", 0),
        ("is_from_me", "BOOLEAN", 0),
        ("media_type", "TEXT", 0),
        ("filename", "TEXT", 0),
        ("url", "TEXT", 0),
        ("media_key", "BLOB", 0),
        ("file_sha256", "BLOB", 0),
        ("file_enc_sha256", "BLOB", 0),
        ("file_length", "INTEGER", 0),
    ]
    assert columns["deleted_messages"] == [
        ("id", "TEXT", 1),
        ("chat_jid", "TEXT", 2),
        ("deleted_at", "TIMESTAMP", 0),
    ]
    assert journal == "delete"  # the default rollback journal, as upstream: readers assume it


def test_live_text_and_captions_are_read_by_the_monitor(
    store: MessageStore, handler: Handler
) -> None:
    assert handler.message(live("3EB0AAA1", Message(conversation="DR12345678 installed"))) == (
        "stored"
    )
    extended = Message(extendedTextMessage=ExtendedTextMessage(text="dr 1752169 redo"))
    assert handler.message(live("3EB0AAA2", extended)) == "stored"
    assert handler.message(live("3EB0AAA3", photo("DR7654321 step 1"))) == "stored"
    video = Message(videoMessage=VideoMessage(caption="DR2222333", mimetype="video/mp4"))
    assert handler.message(live("3EB0AAA4", video)) == "stored"
    document = Message(
        documentWithCaptionMessage=FutureProofMessage(
            message=Message(
                documentMessage=DocumentMessage(
                    caption="DR3333444 signature", fileName="sig.pdf", mimetype="application/pdf"
                )
            )
        )
    )
    assert handler.message(live("3EB0AAA5", document)) == "stored"

    bridge = reader(store)
    found = bridge.read_range(0, bridge.max_rowid(), {Prefilter("DR"): [GROUP]})
    assert [(r.id, r.content, r.sender, r.media) for r in found.rows] == [
        ("3EB0AAA1", "DR12345678 installed", PHONE, False),
        ("3EB0AAA2", "dr 1752169 redo", PHONE, False),
        ("3EB0AAA3", "DR7654321 step 1", PHONE, True),
        ("3EB0AAA4", "DR2222333", PHONE, True),
        ("3EB0AAA5", "DR3333444 signature", PHONE, True),
    ]
    assert found.counts == {GROUP: 5}
    assert parse_timestamp(found.rows[0].timestamp) == WHEN
    assert found.rows[0].timestamp == "2025-11-09 19:15:30+02:00"  # go-sqlite3's text

    media = bridge.read_messages(0, bridge.max_rowid(), [GROUP])
    image = next(m for m in media if m.id == "3EB0AAA3")
    assert image.media_type == "image"
    assert image.file_sha256 == hashlib.sha256(b"jpeg bytes").digest()
    assert image.file_length == len(b"jpeg bytes")
    assert image.filename is not None and image.filename.startswith("image_2025110")
    assert image.filename.endswith("_3EB0AAA3.jpg")
    assert next(m for m in media if m.id == "3EB0AAA5").filename == "sig.pdf"
    groups = {g.jid: g for g in bridge.groups()}
    assert groups[GROUP].name == "Lawley QA"
    assert groups[GROUP].last_message == WHEN
    bridge.close()


def test_photos_of_one_burst_get_names_that_cannot_collide(
    store: MessageStore, handler: Handler
) -> None:
    for n in range(3):
        handler.message(live(f"3EB0BURST{n}", photo(data=bytes([n]))))
    names = [r[8] for r in rows(store)]
    assert len(set(names)) == 3
    assert all(str(name).startswith("image_") for name in names)


def test_lid_sender_stored_as_upstream_live_rows_and_resolved_by_the_reader(
    store: MessageStore, handler: Handler, tmp_path: Path
) -> None:
    handler.message(live("3EB0LID1", Message(conversation="DR12345678"), sender=LID, server="lid"))
    whatsapp_db = tmp_path / "whatsapp.db"
    with sqlite3.connect(whatsapp_db) as conn:
        conn.executescript(
            "CREATE TABLE whatsmeow_lid_map (lid TEXT PRIMARY KEY, pn TEXT UNIQUE NOT NULL);"
            "CREATE TABLE whatsmeow_contacts (our_jid TEXT, their_jid TEXT, first_name TEXT, "
            "full_name TEXT, push_name TEXT, business_name TEXT);"
        )
        conn.execute("INSERT INTO whatsmeow_lid_map VALUES (?, ?)", (LID, PHONE))
    assert rows(store)[0][3] == LID  # the user part, not the device (":12") nor "@lid"
    bridge = BridgeStore(store.path, whatsapp_db)
    bridge.open()
    assert bridge.resolve_senders([LID])[LID].phone == PHONE
    bridge.close()


def test_direct_chats_and_our_own_messages(store: MessageStore, handler: Handler) -> None:
    direct = f"{PHONE}@s.whatsapp.net"
    handler.message(live("3EB0DM01", Message(conversation="hello"), chat=direct))
    handler.message(
        live("3EB0ME01", Message(conversation="noted"), sender=ME, from_me=True, chat=GROUP)
    )
    stored = {r[1]: r for r in rows(store)}
    assert stored["3EB0DM01"][2] == direct
    assert stored["3EB0ME01"][6] == 1
    assert stored["3EB0ME01"][3] == ME
    with sqlite3.connect(store.path) as conn:
        names = dict(conn.execute("SELECT jid, name FROM chats").fetchall())
    assert names[direct] == "Sipho"  # a person's chat is named by their push name
    assert names[GROUP] == "Lawley QA"


def edit(target: str, text: str) -> Message:
    return Message(
        editedMessage=FutureProofMessage(
            message=Message(
                protocolMessage=ProtocolMessage(
                    type=ProtocolMessage.MESSAGE_EDIT,
                    key=MessageKey(remoteJID=GROUP, ID=target),
                    editedMessage=Message(conversation=text),
                )
            )
        )
    )


def test_an_edit_replaces_the_text_under_a_new_rowid(store: MessageStore, handler: Handler) -> None:
    handler.message(live("3EB0ED01", Message(conversation="drop done")))
    handler.message(live("3EB0ED02", Message(conversation="another")))
    bridge = reader(store)
    cursor = bridge.max_rowid()
    later = WHEN_MS + 60_000
    assert handler.message(live("3EB0ED03", edit("3EB0ED01", "DR12345678 done"), at_ms=later)) == (
        "edited"
    )
    after = bridge.read_range(cursor, bridge.max_rowid(), {Prefilter("DR"): [GROUP]})
    assert [(r.id, r.content) for r in after.rows] == [("3EB0ED01", "DR12345678 done")]
    assert parse_timestamp(after.rows[0].timestamp) == WHEN  # the post's time, not the edit's
    assert len(rows(store)) == 2
    bridge.close()


def test_an_edit_of_a_message_never_seen_is_stored(store: MessageStore, handler: Handler) -> None:
    assert handler.message(live("3EB0ED09", edit("3EB0GONE", "DR87654321"))) == "edited"
    assert [(r[1], r[4]) for r in rows(store)] == [("3EB0GONE", "DR87654321")]


def revoke(target: str) -> Message:
    return Message(
        protocolMessage=ProtocolMessage(
            type=ProtocolMessage.REVOKE, key=MessageKey(remoteJID=GROUP, ID=target, fromMe=False)
        )
    )


def test_a_deletion_keeps_the_row_and_is_read_with_its_new_rowid(
    store: MessageStore, handler: Handler
) -> None:
    handler.message(live("3EB0DEL1", photo("DR12345678")))
    handler.message(live("3EB0KEEP", Message(conversation="DR11111111")))
    bridge = reader(store)
    before = bridge.max_rowid()
    deleted_at_ms = WHEN_MS + 120_000
    assert handler.message(live("3EB0REV1", revoke("3EB0DEL1"), at_ms=deleted_at_ms)) == "deleted"
    stored = rows(store)
    assert [r[1] for r in stored] == ["3EB0KEEP", "3EB0DEL1"]
    assert stored[1][0] > before  # stored again: its rowid rose
    assert stored[1][4] == "DR12345678"  # the original content is kept
    deletions = bridge.read_deletions(before, bridge.max_rowid(), [GROUP])
    assert [(d.chat_jid, d.id) for d in deletions] == [(GROUP, "3EB0DEL1")]
    assert parse_timestamp(deletions[0].deleted_at) == WHEN + timedelta(minutes=2)
    assert bridge.read_deletions(before, bridge.max_rowid(), [OTHER_GROUP]) == []
    bridge.close()


def test_a_deletion_of_a_message_never_seen_is_only_recorded(
    store: MessageStore, handler: Handler
) -> None:
    assert handler.message(live("3EB0REV2", revoke("3EB0NEVER"))) == "deleted"
    assert rows(store) == []
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT id, chat_jid FROM deleted_messages").fetchall() == [
            ("3EB0NEVER", GROUP)
        ]


def history_message(
    message_id: str, text: str | None, seconds: int, participant: str = "", from_me: bool = False
) -> HistorySyncMsg:
    info = WebMessageInfo(
        key=MessageKey(remoteJID=GROUP, fromMe=from_me, ID=message_id, participant=participant),
        messageTimestamp=seconds,
    )
    if text is not None:
        info.message.CopyFrom(Message(conversation=text))
    return HistorySyncMsg(message=info)


def test_history_sync_stores_old_messages_with_full_jid_senders(
    store: MessageStore, handler: Handler
) -> None:
    handler.message(live("3EB0NEW1", Message(conversation="today")))
    bridge = reader(store)
    cursor = bridge.max_rowid()
    old = int((WHEN - timedelta(days=3)).timestamp())
    sync = ev.HistorySync(
        Data=HistorySync(
            syncType=HistorySync.RECENT,
            conversations=[
                Conversation(
                    ID=GROUP,
                    name="Lawley QA",
                    messages=[
                        history_message("3EB0OLD1", "DR55556666", old, f"{LID}@lid"),
                        history_message(
                            "3EB0OLD2", "DR55557777", old + 60, f"{PHONE}@s.whatsapp.net"
                        ),
                        history_message("3EB0OLD3", "mine", old + 90, from_me=True),
                        history_message("3EB0OLD4", None, old + 120, PHONE_JID),
                    ],
                )
            ],
        )
    )
    assert handler.history(sync) == 3
    after = bridge.read_range(cursor, bridge.max_rowid(), {None: [GROUP]})
    assert [(r.id, r.sender) for r in after.rows] == [
        ("3EB0OLD1", f"{LID}@lid"),
        ("3EB0OLD2", PHONE_JID),
        ("3EB0OLD3", ME),
    ]
    assert parse_timestamp(after.rows[0].timestamp) == WHEN - timedelta(days=3)
    # Old messages do not move the chat's last message time back.
    assert {g.jid: g.last_message for g in bridge.groups()}[GROUP] == WHEN
    bridge.close()


def test_history_records_messages_deleted_before_the_sync(
    store: MessageStore, handler: Handler
) -> None:
    old = int((WHEN - timedelta(days=1)).timestamp())
    revoked = WebMessageInfo(
        key=MessageKey(remoteJID=GROUP, ID="3EB0OLDX"),
        messageTimestamp=old,
        messageStubType=WebMessageInfo.REVOKE,
        revokeMessageTimestamp=old + 30,
    )
    sync = ev.HistorySync(
        Data=HistorySync(
            conversations=[Conversation(ID=GROUP, messages=[HistorySyncMsg(message=revoked)])]
        )
    )
    assert handler.history(sync) == 0
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT id FROM deleted_messages").fetchall() == [("3EB0OLDX",)]


def test_malformed_and_unknown_messages_are_logged_once_and_skipped(
    store: MessageStore, handler: Handler, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "wa_monitor.bridge")
    no_chat = ev.Message(Info=ev.MessageInfo(ID="3EB0BAD1"), Message=Message(conversation="x"))
    reaction = Message(reactionMessage=ReactionMessage(text="👍", key=MessageKey(ID="3EB0AAA1")))
    outcomes = [
        handler.message(no_chat),
        handler.message(no_chat),
        handler.message(live("3EB0RX01", reaction)),
        handler.message(live("3EB0RX02", reaction)),
        handler.message(ev.Message()),
    ]
    assert outcomes == ["skipped", "skipped", "ignored", "ignored", "skipped"]
    handler.message(live("3EB0OK01", Message(conversation="DR12345678")))
    assert [r[1] for r in rows(store)] == ["3EB0OK01"]
    warnings = [r.getMessage() for r in caplog.records]
    assert sum("without a chat or an id" in w for w in warnings) == 1
    assert sum("reactionMessage" in w for w in warnings) == 1


def test_a_handler_error_is_contained(
    store: MessageStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken_lookup(_jid: str) -> str:
        raise RuntimeError("not connected")

    handler = Handler(store, group_name=broken_lookup)
    assert handler.message(live("3EB0GN01", Message(conversation="DR12345678"))) == "stored"
    assert rows(store)[0][1] == "3EB0GN01"  # stored without a name
    assert any("group names cannot be looked up" in r.getMessage() for r in caplog.records)


def test_a_message_stored_twice_moves_up_and_stays_one_row(
    store: MessageStore, handler: Handler
) -> None:
    event = live("3EB0TWICE", Message(conversation="DR12345678"))
    handler.message(event)
    handler.message(live("3EB0AFTER", Message(conversation="x")))
    handler.message(event)  # re-delivered
    assert [r[1] for r in rows(store)] == ["3EB0AFTER", "3EB0TWICE"]


def test_timestamps_are_written_in_the_host_zone_by_default(tmp_path: Path) -> None:
    store = MessageStore(tmp_path / "messages.db")
    Handler(store).message(live("3EB0TZ01", Message(conversation="DR12345678")))
    text = str(rows(store)[0][5])
    host = datetime.fromtimestamp(WHEN.timestamp()).astimezone()
    assert text == host.isoformat(sep=" ")  # e.g. 2025-11-09 17:15:30+00:00 on a UTC host
    assert parse_timestamp(text) == WHEN.astimezone(UTC)


def test_a_history_message_that_cannot_be_read_costs_only_itself(
    store: MessageStore, caplog: pytest.LogCaptureFixture
) -> None:
    def no_account() -> str:
        raise RuntimeError("not connected yet")

    handler = Handler(store, me=no_account)
    old = int((WHEN - timedelta(days=1)).timestamp())
    sync = ev.HistorySync(
        Data=HistorySync(
            conversations=[
                Conversation(
                    ID=GROUP,
                    messages=[
                        history_message("3EB0H1", "ours", old, from_me=True),
                        history_message("3EB0H2", "DR12345678", old + 5, PHONE_JID),
                    ],
                )
            ]
        )
    )
    assert handler.history(sync) == 1
    assert [r[1] for r in rows(store)] == ["3EB0H2"]
    assert any("history message could not be read" in r.getMessage() for r in caplog.records)
