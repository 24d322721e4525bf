"""The bridge's /send request: plain for the bridge of FIELD_NOTES, with a mention and a
quote for a gateway that takes replies."""

from __future__ import annotations

from wa_monitor.feedback.outbox import BridgeClient, ReplyTo, bridge_payload, person_jid

GROUP = "120363418298130331@g.us"
TEXT = "DR12345678\nAll items complete! ✅"
REPLY = ReplyTo("27821234567@s.whatsapp.net", "3EB0C767D71D3AB3C9A1")


def test_the_bridge_gets_the_recipient_and_the_text_only() -> None:
    assert bridge_payload(GROUP, TEXT, REPLY) == {"recipient": GROUP, "message": TEXT}
    assert bridge_payload(GROUP, TEXT) == {"recipient": GROUP, "message": TEXT}
    assert BridgeClient("http://bridge:8080/api").replies is False


def test_a_gateway_taking_replies_gets_the_mention_and_the_quoted_post() -> None:
    assert bridge_payload(GROUP, TEXT, REPLY, replies=True) == {
        "recipient": GROUP,
        "message": TEXT,  # the text the reviewer confirmed, untouched
        "mentions": ["27821234567@s.whatsapp.net"],
        "reply_to": "3EB0C767D71D3AB3C9A1",
        "reply_to_sender": "27821234567@s.whatsapp.net",
    }


def test_what_is_not_known_is_left_out() -> None:
    unquoted = ReplyTo("27821234567@s.whatsapp.net", None)
    assert bridge_payload(GROUP, TEXT, unquoted, replies=True) == {
        "recipient": GROUP,
        "message": TEXT,
        "mentions": ["27821234567@s.whatsapp.net"],
    }
    assert bridge_payload(GROUP, TEXT, None, replies=True) == {"recipient": GROUP, "message": TEXT}


def test_a_stored_sender_becomes_a_persons_jid() -> None:
    assert person_jid("27821234567") == "27821234567@s.whatsapp.net"
    assert person_jid("112233445566778@lid") == "112233445566778@lid"
