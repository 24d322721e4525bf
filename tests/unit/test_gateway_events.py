"""Reading the webhook gateways' bodies: WAHA, Evolution API and the Go bridge fork.

The sample bodies (tests/fixtures/gateways) follow each gateway's published shape; the
readers must turn them into the inbox's events, refuse what is malformed with a reason
that names the field, acknowledge what the monitor has no use for, and check WAHA's
signature and the tokens in constant time without echoing a secret.
"""

from __future__ import annotations

import base64
import contextlib
import copy
import hashlib
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import gateways as gw
from wa_monitor.core.gateway_events import (
    Event,
    InboxDeletion,
    InboxMessage,
    MediaRef,
    PayloadError,
    SessionStatus,
    SignatureError,
    normalise_jid,
    parse_bridge_webhook,
    parse_evolution,
    parse_waha,
    verify_bridge_webhook,
    verify_evolution,
    verify_token,
    verify_waha,
    waha_signature,
)

GROUP = "120363418298130331@g.us"
SHA = hashlib.sha256(b"photo-bytes").digest()
Reader = Callable[[bytes], list[Event]]
READERS: dict[str, Reader] = {
    "waha": parse_waha,
    "evolution": parse_evolution,
    "bridge": parse_bridge_webhook,
}


def _lower(headers: dict[str, str]) -> dict[str, str]:
    return {name.lower(): value for name, value in headers.items()}


def _read(name: str) -> list[Event]:
    return READERS[name.split("_", 1)[0]](gw.fixture(name))


# --- The sample bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        (
            "waha_message_group_lid",
            InboxMessage(
                gateway="waha",
                chat_jid=GROUP,
                message_id="3EB0C767D71D3AB3C9A1",
                sender="112233445566778@lid",
                sender_pn="27821234567",
                sender_name="Thabo",
                content="DR1234567 done",
                sent_at=1762708530.0,
            ),
        ),
        (
            "waha_message_image_webjs",
            InboxMessage(
                gateway="waha",
                chat_jid=GROUP,
                message_id="ABCDEF0123456789ABCDEF0123456789",
                sender="27821234567@s.whatsapp.net",
                sender_pn=None,
                sender_name="Thabo",
                content="DR1234567 step 3",
                sent_at=1762708545.0,
                media_type="image",
                media=MediaRef(
                    url="http://127.0.0.1:3000/api/files/default/false_120363418298130331@g.us"
                    "_ABCDEF0123456789ABCDEF0123456789_27821234567@c.us.jpeg",
                    mimetype="image/jpeg",
                ),
            ),
        ),
        (
            "waha_message_any_gows",
            InboxMessage(
                gateway="waha",
                chat_jid=GROUP,
                message_id="3A5F9C0B7E2D4A1B8C6D",
                sender="998877665544332@lid",
                sender_pn="27829876543",
                sender_name="Lerato",
                content="",
                sent_at=1762708560.0,
                media_type="image",
                media=MediaRef(
                    url="http://127.0.0.1:3000/api/files/default/3A5F9C0B7E2D4A1B8C6D.jpeg",
                    mimetype="image/jpeg",
                    sha256=SHA,
                    length=204811,
                ),
            ),
        ),
        (
            "waha_message_edited",
            InboxMessage(
                gateway="waha",
                chat_jid=GROUP,
                message_id="3EB0C767D71D3AB3C9A1",
                sender="112233445566778@lid",
                sender_pn="27821234567",
                sender_name=None,
                content="DR7654321 done",
                sent_at=1762708600.0,
                edited=True,
            ),
        ),
        (
            "waha_message_revoked",
            InboxDeletion(
                gateway="waha",
                chat_jid=GROUP,
                message_id="3EB0C767D71D3AB3C9A1",
                deleted_at=1762708700.0,
            ),
        ),
        (
            "waha_session_status",
            SessionStatus(gateway="waha", session="default", status="WORKING", at=1762708003.0),
        ),
        (
            "evolution_messages_upsert_lid",
            InboxMessage(
                gateway="evolution",
                chat_jid=GROUP,
                message_id="3EB0C767D71D3AB3C9A1",
                sender="112233445566778@lid",
                sender_pn="27821234567",
                sender_name="Thabo",
                content="DR1234567 done",
                sent_at=1762708530.0,
            ),
        ),
        (
            "evolution_messages_upsert_image",
            InboxMessage(
                gateway="evolution",
                chat_jid=GROUP,
                message_id="3A5F9C0B7E2D4A1B8C6D",
                sender="27829876543@s.whatsapp.net",
                sender_pn=None,
                sender_name="Lerato",
                content="DR1234567 step 8",
                sent_at=1762708545.0,
                media_type="image",
                media=MediaRef(mimetype="image/jpeg", sha256=SHA, length=204811),
            ),
        ),
        (
            "evolution_messages_edited",
            InboxMessage(
                gateway="evolution",
                chat_jid=GROUP,
                message_id="3EB0C767D71D3AB3C9A1",
                sender="112233445566778@lid",
                sender_pn=None,
                sender_name=None,
                content="DR7654321 done",
                sent_at=1762708600.25,
                edited=True,
            ),
        ),
        (
            "evolution_messages_delete",
            InboxDeletion(
                gateway="evolution",
                chat_jid=GROUP,
                message_id="3EB0C767D71D3AB3C9A1",
                deleted_at=datetime(2025, 11, 9, 17, 15, 30, 512000, UTC).timestamp(),
            ),
        ),
        (
            "evolution_connection_update",
            SessionStatus(
                gateway="evolution",
                session="wa-monitor",
                status="open",
                at=datetime(2025, 11, 9, 17, 15, 30, 512000, UTC).timestamp(),
            ),
        ),
        (
            "bridge_webhook_message",
            InboxMessage(
                gateway="bridge-webhook",
                chat_jid=GROUP,
                message_id="3EB0C767D71D3AB3C9A1",
                sender="27821234567",
                sender_pn=None,
                sender_name=None,
                content="DR1234567 done",
                sent_at=datetime(2025, 11, 9, 17, 15, 30, 123456, UTC).timestamp(),
            ),
        ),
        (
            "bridge_webhook_image",
            InboxMessage(
                gateway="bridge-webhook",
                chat_jid=GROUP,
                message_id="3A5F9C0B7E2D4A1B8C6D",
                sender="112233445566778",
                sender_pn=None,
                sender_name=None,
                content="DR1234567 step 8",
                sent_at=datetime(2025, 11, 9, 17, 15, 45, tzinfo=UTC).timestamp(),
                media_type="image",
                media=MediaRef(filename="image_20251109_191545.jpg"),
            ),
        ),
        (
            "bridge_webhook_edited",
            InboxMessage(
                gateway="bridge-webhook",
                chat_jid=GROUP,
                message_id="3EB0C767D71D3AB3C9A1",
                sender="27821234567",
                sender_pn=None,
                sender_name=None,
                content="DR7654321 done",
                sent_at=datetime(2025, 11, 9, 17, 16, 40, tzinfo=UTC).timestamp(),
                edited=True,
            ),
        ),
    ],
)
def test_sample_bodies_read_as_the_inbox_events(name: str, expected: Event) -> None:
    assert _read(name) == [expected]


@pytest.mark.parametrize(
    "name",
    ["waha_message_reaction", "evolution_messages_update_status", "evolution_presence_update"],
)
def test_events_of_no_use_are_acknowledged_with_nothing_stored(name: str) -> None:
    assert _read(name) == []


@pytest.mark.parametrize(
    ("reader", "event"),
    [
        (parse_waha, "message.ack"),
        (parse_waha, "presence.update"),
        (parse_waha, "group.v2.join"),
        (parse_evolution, "chats.upsert"),
        (parse_evolution, "send.message"),
        (parse_evolution, "QRCODE_UPDATED"),
    ],
)
def test_unknown_events_read_as_nothing_even_with_odd_payloads(reader: Reader, event: str) -> None:
    assert reader(json.dumps({"event": event, "payload": 3, "data": "x"}).encode()) == []


# --- WAHA ---------------------------------------------------------------------------


def test_waha_message_any_and_message_name_the_same_post() -> None:
    doc = gw.waha_message(GROUP, "27821234567", "DR1234567", id="3EB0AAAA", timestamp=1.7e9)
    any_doc = copy.deepcopy(doc) | {"event": "message.any"}
    assert parse_waha(gw.encode(doc)) == parse_waha(gw.encode(any_doc))
    (message,) = parse_waha(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert (message.chat_jid, message.message_id) == (GROUP, "3EB0AAAA")
    assert message.sender == "27821234567@s.whatsapp.net"  # @c.us, normalised


def test_waha_phone_jids_lose_c_us_and_device_suffixes() -> None:
    doc = gw.waha_message(GROUP, "27821234567:12@c.us", "hi")
    (message,) = parse_waha(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.sender == "27821234567@s.whatsapp.net"
    assert normalise_jid("112233445566778:3@lid") == "112233445566778@lid"
    assert normalise_jid(GROUP) == GROUP


def test_waha_lid_author_without_a_phone_beside_it_has_no_sender_pn() -> None:
    doc = gw.waha_message(GROUP, "27821234567", "DR1234567", lid=True)
    del doc["payload"]["_data"]["key"]["participantAlt"]
    (message,) = parse_waha(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.sender.endswith("@lid") and message.sender_pn is None


def test_waha_phone_author_gives_no_sender_pn_even_when_data_has_one() -> None:
    doc = gw.waha_message(GROUP, "27821234567", "DR1234567")
    doc["payload"]["_data"]["key"]["participantAlt"] = "112233445566778@lid"
    (message,) = parse_waha(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.sender_pn is None


def test_waha_direct_chat_and_own_messages() -> None:
    dm = gw.waha_message("27821234567@c.us", "27821234567", "hello")
    (message,) = parse_waha(gw.encode(dm))
    assert isinstance(message, InboxMessage)
    assert message.chat_jid == "27821234567@s.whatsapp.net"
    own = gw.waha_message(GROUP, "27820000000", "feedback", from_me=True, event="message.any")
    (mine,) = parse_waha(gw.encode(own))
    assert isinstance(mine, InboxMessage) and mine.from_me and mine.chat_jid == GROUP


def test_waha_media_not_downloaded_is_typed_from_the_engine_data() -> None:
    doc = gw.waha_message(GROUP, "27821234567", "", engine="NOWEB")
    doc["payload"]["hasMedia"] = True
    doc["payload"]["_data"]["message"] = {
        "imageMessage": {"mimetype": "image/jpeg", "fileSha256": base64.b64encode(SHA).decode()}
    }
    (message,) = parse_waha(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.media_type == "image"
    assert message.media == MediaRef(mimetype="image/jpeg", sha256=SHA)


@pytest.mark.parametrize(
    ("mimetype", "media_type"),
    [
        ("image/jpeg", "image"),
        ("video/mp4", "video"),
        ("audio/ogg; codecs=opus", "audio"),
        ("application/pdf", "document"),
        (None, "document"),
    ],
)
def test_waha_media_type_follows_the_mimetype(mimetype: str | None, media_type: str) -> None:
    media = {"url": "http://127.0.0.1:3000/f", "mimetype": mimetype, "filename": "f"}
    doc = gw.waha_message(GROUP, "27821234567", "caption", media=media)
    (message,) = parse_waha(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.media_type == media_type
    assert message.content == "caption"
    assert message.media is not None and message.media.filename == "f"


def test_waha_revoke_without_revoked_message_id_uses_before() -> None:
    doc = gw.waha_revoked(GROUP, "IGNORED", timestamp=1.7e9)
    payload = doc["payload"]
    del payload["revokedMessageId"]
    payload["before"] = {"id": f"false_{GROUP}_3EB0BEFORE_27821234567@c.us", "from": GROUP}
    assert parse_waha(gw.encode(doc)) == [
        InboxDeletion(gateway="waha", chat_jid=GROUP, message_id="3EB0BEFORE", deleted_at=1.7e9)
    ]


def test_waha_status_without_a_time_needs_the_receipt_time() -> None:
    body = json.dumps(
        {"event": "session.status", "session": "default", "payload": {"status": "SCAN_QR_CODE"}}
    ).encode()
    with pytest.raises(PayloadError, match="timestamp"):
        parse_waha(body)
    assert parse_waha(body, received_at=1.7e9) == [
        SessionStatus(gateway="waha", session="default", status="SCAN_QR_CODE", at=1.7e9)
    ]


def test_waha_status_is_dated_by_its_own_entry_in_statuses() -> None:
    doc = gw.waha_session_status("WORKING", timestamp=1.7e9 + 50)
    doc["payload"]["statuses"] = [
        {"status": "WORKING", "timestamp": 1_700_000_030_000},
        {"status": "STARTING", "timestamp": 1_700_000_020_000},
        {"status": "WORKING", "timestamp": 1_700_000_010_000},
    ]
    (status,) = parse_waha(gw.encode(doc))
    assert status == SessionStatus(
        gateway="waha", session="default", status="WORKING", at=1.7e9 + 30
    )


def test_waha_timestamps_in_milliseconds_read_as_seconds() -> None:
    doc = gw.waha_message(GROUP, "27821234567", "x")
    doc["payload"]["timestamp"] = 1762708530123
    (message,) = parse_waha(gw.encode(doc))
    assert isinstance(message, InboxMessage) and message.sent_at == pytest.approx(1762708530.123)


# --- Evolution API ------------------------------------------------------------------


def test_evolution_data_as_a_list_and_upper_case_event_names() -> None:
    doc = gw.evolution_upsert(GROUP, "27821234567", "DR1234567", id="3EB0LIST", as_list=True)
    doc["event"] = "MESSAGES_UPSERT"
    doc["data"].append(
        copy.deepcopy(doc["data"][0]) | {"key": {**doc["data"][0]["key"], "id": "3EB0TWO"}}
    )
    events = parse_evolution(gw.encode(doc))
    assert [e.message_id for e in events if isinstance(e, InboxMessage)] == ["3EB0LIST", "3EB0TWO"]


def test_evolution_history_sync_reads_as_messages() -> None:
    doc = gw.evolution_upsert(GROUP, "27821234567", "DR1234567", id="3EB0OLD", as_list=True)
    doc["event"] = "messages.set"
    (message,) = parse_evolution(gw.encode(doc))
    assert isinstance(message, InboxMessage) and message.message_id == "3EB0OLD"


@pytest.mark.parametrize(
    "sha256",
    [
        base64.b64encode(SHA).decode(),
        {"type": "Buffer", "data": list(SHA)},
        {str(i): b for i, b in enumerate(SHA)},
        list(SHA),
    ],
    ids=["base64", "node-buffer", "index-map", "list"],
)
def test_evolution_media_sha256_in_every_json_form(sha256: object) -> None:
    image = gw.evolution_image()
    image["imageMessage"]["fileSha256"] = sha256
    image["imageMessage"]["fileLength"] = "204811"
    doc = gw.evolution_upsert(GROUP, "27821234567", "DR1234567", media=image)
    (message,) = parse_evolution(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.media == MediaRef(mimetype="image/jpeg", sha256=SHA, length=204811)
    assert message.content == "DR1234567"


def test_evolution_text_in_extended_and_wrapped_messages() -> None:
    doc = gw.evolution_upsert(GROUP, "27821234567", None)
    doc["data"]["message"] = {
        "ephemeralMessage": {"message": {"extendedTextMessage": {"text": "DR1234567 done"}}}
    }
    (message,) = parse_evolution(gw.encode(doc))
    assert isinstance(message, InboxMessage) and message.content == "DR1234567 done"


def test_evolution_own_group_post_without_participant_is_ours() -> None:
    doc = gw.evolution_upsert(GROUP, "27820000000", "feedback", from_me=True)
    del doc["data"]["key"]["participant"]
    (message,) = parse_evolution(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.from_me and message.sender == "27820000000@s.whatsapp.net"


def test_evolution_reactions_and_stubs_are_not_posts() -> None:
    reaction = gw.evolution_upsert(GROUP, "27821234567", None)
    reaction["data"]["message"] = {"reactionMessage": {"text": "👍", "key": {"id": "3EB0"}}}
    stub = gw.evolution_upsert(GROUP, "27821234567", None)
    stub["data"]["message"] = None
    assert parse_evolution(gw.encode(reaction)) == []
    assert parse_evolution(gw.encode(stub)) == []


def test_evolution_status_update_is_not_an_edit_but_a_carried_message_is() -> None:
    assert parse_evolution(gw.encode(gw.evolution_update(GROUP, "3EB0A", status="READ"))) == []
    doc = gw.evolution_update(GROUP, "3EB0A")
    doc["data"] |= {"key": {"remoteJid": GROUP, "id": "3EB0A"}, "message": {"conversation": "DR1"}}
    (edit,) = parse_evolution(gw.encode(doc), received_at=1.7e9)
    assert isinstance(edit, InboxMessage)
    assert (edit.message_id, edit.content, edit.edited, edit.sent_at) == (
        "3EB0A",
        "DR1",
        True,
        1.7e9,
    )


def test_evolution_edit_inside_an_upsert_names_the_edited_message() -> None:
    doc = gw.evolution_upsert(GROUP, "27821234567", None, id="3EB0EDITACTION", timestamp=1.7e9)
    doc["data"]["message"] = {
        "editedMessage": {
            "message": {
                "protocolMessage": {
                    "key": {"remoteJid": GROUP, "fromMe": True, "id": "3EB0ORIGINAL"},
                    "type": 14,
                    "editedMessage": {"imageMessage": {"caption": "DR7654321 step 1"}},
                }
            }
        }
    }
    (edit,) = parse_evolution(gw.encode(doc))
    assert isinstance(edit, InboxMessage)
    assert (edit.message_id, edit.content, edit.edited) == (
        "3EB0ORIGINAL",
        "DR7654321 step 1",
        True,
    )
    assert edit.from_me is False  # the outer key is ours; the protocol key is the editor's
    assert edit.sender == "27821234567@s.whatsapp.net"


def test_evolution_revoke_protocol_message_is_a_deletion() -> None:
    doc = gw.evolution_edited(GROUP, "3EB0GONE", "", timestamp=1.7e9)
    doc["data"]["type"] = "REVOKE"
    del doc["data"]["editedMessage"]
    assert parse_evolution(gw.encode(doc)) == [
        InboxDeletion(gateway="evolution", chat_jid=GROUP, message_id="3EB0GONE", deleted_at=1.7e9)
    ]


def test_evolution_delete_of_a_stored_row_uses_its_whatsapp_key() -> None:
    doc = gw.evolution_delete(GROUP, "IGNORED")
    doc["data"] = {
        "id": "cm3a1b2c3d4e5f6g7h8i9j0k",
        "key": {"remoteJid": GROUP, "fromMe": True, "id": "3EB0STORED"},
        "status": "DELETED",
    }
    (deletion,) = parse_evolution(gw.encode(doc), received_at=1.7e9)
    assert deletion == InboxDeletion(
        gateway="evolution", chat_jid=GROUP, message_id="3EB0STORED", deleted_at=1.7e9
    )


def test_evolution_connection_prefers_the_receipt_time() -> None:
    doc = gw.evolution_connection("close", instance="site-a")
    assert parse_evolution(gw.encode(doc), received_at=1.7e9) == [
        SessionStatus(gateway="evolution", session="site-a", status="close", at=1.7e9)
    ]


# --- The Go bridge fork -------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamp",
    [
        "2025-11-09T19:15:30.123456789+02:00",
        "2025-11-09 19:15:30.123456789+02:00",
        "2025-11-09 19:15:30.123456789 +0200 SAST",
        "2025-11-09T17:15:30.123456Z",
        1762708530.123456,
        "1762708530123.456",
    ],
)
def test_bridge_webhook_timestamps(timestamp: object) -> None:
    doc = gw.bridge_webhook_message(GROUP, "27821234567", "DR1234567")
    doc["timestamp"] = timestamp
    (message,) = parse_bridge_webhook(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.sent_at == pytest.approx(1762708530.123456, abs=1e-3)


def test_bridge_webhook_media_columns() -> None:
    doc = gw.bridge_webhook_message(
        GROUP, "27821234567", "", media_type="image", filename="image_1.jpg", url="https://x/y"
    )
    doc |= {"file_sha256": base64.b64encode(SHA).decode(), "file_length": 1234}
    (message,) = parse_bridge_webhook(gw.encode(doc))
    assert isinstance(message, InboxMessage)
    assert message.media_type == "image"
    assert message.media == MediaRef(filename="image_1.jpg", sha256=SHA, length=1234)


# --- Malformed bodies ---------------------------------------------------------------


def _waha_with(**payload: Any) -> bytes:
    doc = gw.waha_message(GROUP, "27821234567", "x")
    for key, value in payload.items():
        if value is ...:
            del doc["payload"][key]
        else:
            doc["payload"][key] = value
    return gw.encode(doc)


@pytest.mark.parametrize(
    ("reader", "body", "reason"),
    [
        (parse_waha, b"not json", "not JSON"),
        (parse_waha, b"\xff\xfe", "not UTF-8"),
        (parse_waha, b"[1, 2]", "array, not an object"),
        (parse_waha, b"[" * 100_000, "nested too deeply"),
        (parse_waha, b'{"event": NaN}', "NaN"),
        (parse_waha, b'{"payload": {}}', "body.event is missing"),
        (parse_waha, b'{"event": 7}', "body.event must be a string"),
        (parse_waha, b'{"event": "message", "payload": []}', "body.payload must be an object"),
        (parse_waha, _waha_with(id=...), "payload.id is missing"),
        (parse_waha, _waha_with(**{"from": 12}), "payload.from must be a string"),
        (parse_waha, _waha_with(timestamp="soon"), "payload.timestamp must be epoch seconds"),
        (parse_waha, _waha_with(timestamp=-5), "payload.timestamp is negative"),
        (parse_waha, _waha_with(fromMe="yes"), "payload.fromMe must be true or false"),
        (parse_waha, _waha_with(media="x"), "payload.media must be an object"),
        (
            parse_evolution,
            b'{"event": "messages.upsert", "data": 3}',
            "body.data must be an object",
        ),
        (
            parse_evolution,
            b'{"event": "messages.upsert", "data": {"key": {"id": "A"}}}',
            "body.data.key.remoteJid is missing",
        ),
        (
            parse_evolution,
            b'{"event": "messages.upsert", "data": [{"key": {"remoteJid": "1@g.us", "id": "A"},'
            b' "message": {"conversation": "x"}, "messageTimestamp": 1}]}',
            r"body.data\[0\].key.participant is missing",
        ),
        (
            parse_evolution,
            b'{"event": "connection.update", "data": {"state": "open"}, "date_time": "x"}',
            "body.instance is missing",
        ),
        (
            parse_bridge_webhook,
            b'{"id": "A", "sender": "1", "timestamp": 1}',
            "body.chat_jid is missing",
        ),
        (
            parse_bridge_webhook,
            b'{"id": "A", "chat_jid": "1@g.us", "sender": "1", "timestamp": "yesterday"}',
            "body.timestamp is not a time",
        ),
    ],
    # Named by reader and reason: the bodies hold generated ids, which differ between
    # the parallel workers that must agree on the tests' names.
    ids=lambda v: v.__name__ if callable(v) else v if isinstance(v, str) else "body",
)
def test_malformed_bodies_are_refused_with_the_field_named(
    reader: Reader, body: bytes, reason: str
) -> None:
    with pytest.raises(PayloadError, match=reason):
        reader(body)


# --- Signatures and tokens ----------------------------------------------------------


def test_waha_signature_matches_the_documented_example() -> None:
    # waha-docs, events/index.md "HMAC authentication": body, key and the expected value.
    body = b'{"event":"message","session":"default","engine":"WEBJS"}'
    expected = (
        "208f8a55dde9e05519e898b10b89bf0d0b3b0fdf11fdbf09b6b90476301b98d8"
        "097c462b2b17a6ce93b6b47a136cf2e78a33a63f6752c2c1631777076153fa89"
    )
    assert waha_signature(body, "my-secret-key") == expected
    headers = {"x-webhook-hmac": expected.upper(), "x-webhook-hmac-algorithm": "sha512"}
    verify_waha(body, headers, hmac_key="my-secret-key", now=0.0, window=300)


def test_waha_signed_call_is_accepted() -> None:
    now = 1.7e9
    body = gw.encode(gw.waha_message(GROUP, "27821234567", "DR1234567", timestamp=now - 20))
    verify_waha(body, _lower(gw.sign_waha(body, "k3y", now)), hmac_key="k3y", now=now, window=300)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda b, h: (b, {k: v for k, v in h.items() if k != "x-webhook-hmac"}),
            "no X-Webhook-Hmac",
        ),
        (lambda b, h: (b, h | {"x-webhook-hmac-algorithm": "sha256"}), "is not sha512"),
        (lambda b, h: (b.replace(b"DR1234567", b"DR7654321"), h), "does not match the body"),
        (lambda b, h: (b, h | {"x-webhook-hmac": "00" * 64}), "does not match the body"),
    ],
    ids=["unsigned", "algorithm", "tampered-body", "wrong-signature"],
)
def test_waha_bad_signatures_are_refused_without_the_key(
    change: Callable[[bytes, dict[str, str]], tuple[bytes, dict[str, str]]], reason: str
) -> None:
    now = 1.7e9
    body = gw.encode(gw.waha_message(GROUP, "27821234567", "DR1234567", timestamp=now))
    sent, headers = change(body, _lower(gw.sign_waha(body, "s3cret-key", now)))
    with pytest.raises(SignatureError, match=reason) as caught:
        verify_waha(sent, headers, hmac_key="s3cret-key", now=now, window=300)
    assert "s3cret-key" not in str(caught.value)


def test_waha_replay_outside_the_window_is_refused_by_the_signed_timestamp() -> None:
    now = 1.7e9
    body = gw.encode(gw.waha_message(GROUP, "27821234567", "DR1", timestamp=now - 412))
    # A fresh header does not help: the body's signed timestamp counts.
    headers = _lower(gw.sign_waha(body, "k", now))
    with pytest.raises(SignatureError, match="signed 412 s ago, outside the 300 s window"):
        verify_waha(body, headers, hmac_key="k", now=now, window=300)
    with pytest.raises(SignatureError, match="ahead, outside the 300 s window"):
        verify_waha(body, headers, hmac_key="k", now=now - 1000, window=300)


def test_waha_body_without_a_timestamp_is_bounded_by_the_header() -> None:
    now = 1.7e9
    body = b'{"event":"session.status","session":"default","payload":{"status":"WORKING"}}'
    verify_waha(body, _lower(gw.sign_waha(body, "k", now - 10)), hmac_key="k", now=now, window=300)
    with pytest.raises(SignatureError, match="signed 900 s ago"):
        verify_waha(
            body, _lower(gw.sign_waha(body, "k", now - 900)), hmac_key="k", now=now, window=300
        )


def test_tokens_by_bearer_header_or_query() -> None:
    verify_token({"authorization": "Bearer t0ken"}, None, token="t0ken")
    verify_bridge_webhook({}, "t0ken", token="t0ken")
    with pytest.raises(SignatureError, match=r"no token: add \?token="):
        verify_bridge_webhook({}, None, token="t0ken")
    with pytest.raises(SignatureError, match="token is wrong") as caught:
        verify_token({"authorization": "Bearer guess"}, None, token="t0ken")
    assert "t0ken" not in str(caught.value) and "guess" not in str(caught.value)


def test_evolution_calls_by_body_apikey_header_or_token() -> None:
    body = gw.encode(gw.evolution_upsert(GROUP, "27821234567", "x", apikey="INSTANCE-KEY"))
    verify_evolution(body, {}, api_key="INSTANCE-KEY")
    verify_evolution(b"{}", {"apikey": "INSTANCE-KEY"}, api_key="INSTANCE-KEY")
    verify_evolution(b"{}", {"authorization": "Bearer tok"}, api_key="OTHER", token="tok")
    with pytest.raises(SignatureError, match="apikey is wrong"):
        verify_evolution(body, {}, api_key="OTHER-KEY")
    no_key = gw.encode(gw.evolution_upsert(GROUP, "27821234567", "x", apikey=None))
    with pytest.raises(SignatureError, match="EXPOSE_IN_FETCH_INSTANCES"):
        verify_evolution(no_key, {}, api_key="INSTANCE-KEY")
    with pytest.raises(SignatureError, match="token is wrong"):
        verify_evolution(body, {}, "nope", api_key="INSTANCE-KEY", token="tok")


# --- No input makes a reader fail otherwise -----------------------------------------

# Field names the readers look at, so that generated objects reach deep into them.
KEYS = [
    "event", "payload", "data", "key", "id", "from", "to", "participant", "timestamp",
    "message", "_data", "media", "hasMedia", "body", "remoteJid", "messageTimestamp",
    "protocolMessage", "editedMessage", "type", "imageMessage", "fileSha256", "fileLength",
    "status", "state", "instance", "chat_jid", "sender", "is_edited", "before", "after",
    "revokedMessageId", "editedMessageId", "low", "high", "statuses", "Info", "Message",
]  # fmt: skip
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["", "1@g.us", "x@lid", "27821234567@c.us", "1762708530", "REVOKE"]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12) | st.sampled_from(KEYS), children, max_size=6),
    max_leaves=30,
)
EVENTS = st.sampled_from(
    [
        "message",
        "message.any",
        "message.edited",
        "message.revoked",
        "session.status",
        "messages.upsert",
        "messages.set",
        "messages.update",
        "messages.edited",
        "messages.delete",
        "connection.update",
    ]
)
SAMPLES = [p.stem for p in sorted(gw.FIXTURES.glob("*.json"))]


def _mutate(doc: Any, path: list[int], value: Any) -> Any:
    """`doc` with the node `path` picks (indices modulo each level's size) set to `value`."""
    if not path or not isinstance(doc, dict | list) or not doc:
        return value
    keys = list(doc) if isinstance(doc, dict) else list(range(len(doc)))
    key = keys[path[0] % len(keys)]
    copied = copy.copy(doc)
    copied[key] = _mutate(doc[key], path[1:], value)
    return copied


def _only_payload_errors(reader: Reader, body: bytes) -> None:
    try:
        events = reader(body)
    except PayloadError:
        return
    assert all(isinstance(e, InboxMessage | InboxDeletion | SessionStatus) for e in events)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(reader=st.sampled_from(list(READERS.values())), body=st.binary(max_size=200))
def test_no_bytes_make_a_reader_fail_but_with_payload_error(reader: Reader, body: bytes) -> None:
    _only_payload_errors(reader, body)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(reader=st.sampled_from(list(READERS.values())), event=EVENTS, rest=JSON)
def test_no_json_makes_a_reader_fail_but_with_payload_error(
    reader: Reader, event: str, rest: Any
) -> None:
    doc = rest if isinstance(rest, dict) else {"payload": rest, "data": rest}
    _only_payload_errors(reader, json.dumps({"event": event, **doc}).encode())
    _only_payload_errors(reader, json.dumps(rest).encode())


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(
    name=st.sampled_from(SAMPLES),
    path=st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=6),
    value=JSON,
)
def test_no_change_to_a_sample_makes_a_reader_fail_but_with_payload_error(
    name: str, path: list[int], value: Any
) -> None:
    doc = _mutate(json.loads(gw.fixture(name)), path, value)
    _only_payload_errors(READERS[name.split("_", 1)[0]], json.dumps(doc).encode())


@settings(max_examples=200)
@given(
    body=st.binary(max_size=100),
    headers=st.dictionaries(
        st.sampled_from(
            ["x-webhook-hmac", "x-webhook-hmac-algorithm", "x-webhook-timestamp", "authorization"]
        ),
        st.text(max_size=40),
    ),
    now=st.floats(min_value=0, max_value=4e9),
)
def test_no_call_makes_a_check_fail_but_with_signature_error(
    body: bytes, headers: dict[str, str], now: float
) -> None:
    with contextlib.suppress(SignatureError):
        verify_waha(body, headers, hmac_key="k", now=now, window=300)
    with contextlib.suppress(SignatureError):
        verify_token(headers, None, token="t")
    with contextlib.suppress(SignatureError):
        verify_evolution(body, headers, api_key="k")


# --- The test gateways' delivery ----------------------------------------------------


class _Answers(http.server.BaseHTTPRequestHandler):
    """Answers each POST with the next status of the server's `answers`."""

    def do_POST(self) -> None:
        server: Any = self.server
        server.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        status = server.answers.pop(0)
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def answering() -> Iterator[Callable[[list[int]], tuple[str, list[bytes]]]]:
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(answers: list[int]) -> tuple[str, list[bytes]]:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
        server.answers = list(answers)  # type: ignore[attr-defined]
        server.bodies = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/", server.bodies  # type: ignore[attr-defined]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_delivery_retries_until_acknowledged_like_waha(
    answering: Callable[[list[int]], tuple[str, list[bytes]]],
) -> None:
    url, seen = answering([500, 401, 200])
    body = gw.encode(gw.waha_message(GROUP, "27821234567", "DR1234567"))
    delivery = gw.post_until_acknowledged(url, body, gw.sign_waha(body, "k"), attempts=5)
    assert (delivery.acknowledged, delivery.status, delivery.attempts) == (True, 200, 3)
    assert seen == [body] * 3


def test_delivery_gives_up_on_evolutions_final_answers(
    answering: Callable[[list[int]], tuple[str, list[bytes]]],
) -> None:
    url, _ = answering([400])
    body = gw.encode(gw.evolution_upsert(GROUP, "27821234567", "DR1234567"))
    delivery = gw.post_until_acknowledged(url, body, attempts=5, final=gw.EVOLUTION_FINAL)
    assert (delivery.acknowledged, delivery.status, delivery.attempts) == (False, 400, 1)


def test_delivery_to_nothing_listening_counts_every_attempt() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    delivery = gw.post_until_acknowledged(f"http://127.0.0.1:{port}/", b"{}", attempts=2, timeout=2)
    assert (delivery.acknowledged, delivery.status, delivery.attempts) == (False, None, 2)
