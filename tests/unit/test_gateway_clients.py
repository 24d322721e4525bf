"""Feedback through WAHA, Evolution API and the bridges: the requests each gets, what
each answer says about the message, and which gateway a project's feedback goes through.

The answers are the gateways' own shapes (WAHA: devlikeapro/waha src/api/chatting.controller.ts,
src/nestjs/AllExceptionsFilter.ts, src/core/abc/manager.abc.ts; Evolution API:
EvolutionAPI/evolution-api src/api/routes/sendMessage.router.ts, src/main.ts,
src/validate/message.schema.ts); only a message id, or the bridge's own `success: true`,
confirms a send, and only an answer meaning "not passed on" is retried.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from wa_monitor.core.config import parse_config
from wa_monitor.core.settings import settings_from
from wa_monitor.feedback.gateways import (
    GatewayClients,
    evolution_payload,
    interpret_evolution,
    interpret_waha,
    waha_payload,
)
from wa_monitor.feedback.outbox import BridgeClient, Outcome, ReplyTo, interpret

GROUP = "120363418298130331@g.us"
OTHER = "120363421532174586@g.us"
NOWHERE = "120363400000000001@g.us"
TEXT = "DR12345678\nAll items complete! ✅"
INSTALLER = "27821234567@s.whatsapp.net"
POST_ID = "false_120363418298130331@g.us_3EB0C767D71D3AB3C9A1_27821234567@c.us"
REPLY = ReplyTo(INSTALLER, POST_ID)
SENT_ID = "true_120363418298130331@g.us_3EB0A0B1C2D3E4F5A6B7"


def _j(value: Any) -> str:
    return json.dumps(value)


# -- the requests -----------------------------------------------------------------------


def test_waha_gets_the_session_the_group_the_text_the_mention_and_the_quoted_post() -> None:
    assert waha_payload("field", GROUP, TEXT, REPLY) == {
        "session": "field",
        "chatId": GROUP,
        "text": TEXT,  # the text the reviewer confirmed, untouched
        "mentions": ["27821234567@c.us"],  # WAHA names phones …@c.us
        "reply_to": POST_ID,  # as WAHA's webhook gave it
    }
    lid = ReplyTo("112233445566778@lid", None)
    assert waha_payload("field", GROUP, TEXT, lid) == {
        "session": "field",
        "chatId": GROUP,
        "text": TEXT,
        "mentions": ["112233445566778@lid"],
    }
    assert waha_payload("field", GROUP, TEXT) == {"session": "field", "chatId": GROUP, "text": TEXT}


def test_evolution_gets_the_number_the_text_the_mention_and_the_quoted_key() -> None:
    assert evolution_payload(GROUP, TEXT, ReplyTo(INSTALLER, "3EB0C767D71D3AB3C9A1")) == {
        "number": GROUP,
        "text": TEXT,
        "mentioned": [INSTALLER],
        "quoted": {"key": {"id": "3EB0C767D71D3AB3C9A1"}},
    }
    assert evolution_payload(GROUP, TEXT, ReplyTo(None, None)) == {"number": GROUP, "text": TEXT}


def test_a_bridge_with_a_token_takes_replies_and_the_upstream_bridge_does_not() -> None:
    assert BridgeClient("http://bridge:8080/api").takes_replies(GROUP) is False
    ours = BridgeClient("http://bridge:8080/api", token="t0ken-for-tests")
    assert ours.takes_replies(GROUP) is True
    assert ours.payload(GROUP, TEXT, REPLY)["mentions"] == [INSTALLER]


# -- the answers ------------------------------------------------------------------------


def test_the_python_bridges_message_id_confirms_the_send() -> None:
    answer = {"success": True, "message": "Message sent", "message_id": "3EB0AB12", "timestamp": 1}
    assert interpret(200, _j(answer)).message_id == "3EB0AB12"
    upstream = interpret(200, _j({"success": True, "message": "Message sent to x"}))
    assert upstream.outcome is Outcome.SENT and upstream.message_id is None
    too_long = interpret(200, _j({**answer, "message_id": "9" * 101}))
    assert too_long.outcome is Outcome.SENT and too_long.message_id is None


@pytest.mark.parametrize(
    ("token", "hint"),
    [(None, "set BRIDGE_TOKEN"), ("t0ken-for-tests", "refused BRIDGE_TOKEN")],
)
def test_a_bridge_refusing_the_token_says_which_setting_to_fix(
    token: str | None, hint: str
) -> None:
    result = BridgeClient("http://bridge:8080/api", token=token).interpret(401, "Unauthorized\n")
    assert result.outcome is Outcome.REFUSED and hint in result.reason
    assert "t0ken-for-tests" not in result.reason


WAHA_500 = {"statusCode": 500, "timestamp": "2025-11-09T17:15:30.000Z", "version": "2024.10.8"}

# WAHA's answers to sendText and what they mean.
WAHA_ANSWERS: list[tuple[int, Any, Outcome, str | None]] = [
    (
        201,
        {"id": SENT_ID, "timestamp": 1762708530, "fromMe": True, "body": TEXT},
        Outcome.SENT,
        SENT_ID,
    ),
    # WEBJS passes whatsapp-web.js's message, NOWEB Baileys' message.
    (201, {"id": {"fromMe": True, "id": "3EB0AA", "_serialized": SENT_ID}}, Outcome.SENT, SENT_ID),
    (201, {"key": {"remoteJid": GROUP, "fromMe": True, "id": "3EB0AA"}}, Outcome.SENT, "3EB0AA"),
    (201, {"timestamp": 1762708530}, Outcome.UNKNOWN, None),
    (200, "<html>captive portal</html>", Outcome.UNKNOWN, None),
    (401, {"message": "Unauthorized", "statusCode": 401}, Outcome.REFUSED, None),
    (404, {"message": "Session 'field' not found", "statusCode": 404}, Outcome.REFUSED, None),
    (
        400,
        {"statusCode": 400, "message": ["chatId must be a string"], "error": "Bad Request"},
        Outcome.REFUSED,
        None,
    ),
    # The session is not WORKING (scanning a QR code, starting, failed): nothing went out.
    (
        422,
        {
            "error": "Session status is not as expected. Try again later or restart the session",
            "session": "field",
            "status": "SCAN_QR_CODE",
            "expected": ["WORKING"],
        },
        Outcome.NOT_SENT,
        None,
    ),
    (500, {**WAHA_500, "exception": {"message": "Connection Closed"}}, Outcome.NOT_SENT, None),
    (500, {**WAHA_500, "exception": {"message": "Timed Out"}}, Outcome.UNKNOWN, None),
    (
        500,
        {**WAHA_500, "exception": {"message": "Evaluation failed: TypeError"}},
        Outcome.UNKNOWN,
        None,
    ),
    (502, "<html><h1>502 Bad Gateway</h1>nginx</html>", Outcome.UNKNOWN, None),
    (429, "Too Many Requests", Outcome.NOT_SENT, None),
]


@pytest.mark.parametrize(("status", "body", "outcome", "message_id"), WAHA_ANSWERS)
def test_wahas_answers(status: int, body: Any, outcome: Outcome, message_id: str | None) -> None:
    result = interpret_waha(status, body if isinstance(body, str) else _j(body))
    assert (result.outcome, result.message_id) == (outcome, message_id), result
    assert result.reason


def test_wahas_refusals_name_the_setting_to_fix() -> None:
    assert "WAHA_API_KEY" in interpret_waha(401, _j({"message": "Unauthorized"})).reason
    assert "WAHA_SESSION" in interpret_waha(404, _j({"message": "not found"})).reason
    not_working = interpret_waha(422, _j({"error": "Session status is not as expected"}))
    assert "Session status is not as expected" in not_working.reason


EVOLUTION_SENT = {
    "key": {"remoteJid": GROUP, "fromMe": True, "id": "BAE5F5A632EAE722"},
    "pushName": "",
    "status": "PENDING",
    "message": {"conversation": TEXT},
    "messageType": "conversation",
    "messageTimestamp": 1762708530,
}


def _evolution_error(status: int, error: str, message: Any) -> dict[str, Any]:
    return {"status": status, "error": error, "response": {"message": message}}


EVOLUTION_ANSWERS: list[tuple[int, Any, Outcome, str | None]] = [
    (201, EVOLUTION_SENT, Outcome.SENT, "BAE5F5A632EAE722"),
    (201, {"key": {}}, Outcome.UNKNOWN, None),
    (401, _evolution_error(401, "Unauthorized", "Unauthorized"), Outcome.REFUSED, None),
    (
        404,
        _evolution_error(404, "Not Found", ['The "field" instance does not exist']),
        Outcome.REFUSED,
        None,
    ),
    # The number is not on WhatsApp, the request is malformed: the same request fails again.
    (
        400,
        _evolution_error(400, "Bad Request", [{"exists": False, "jid": GROUP, "number": GROUP}]),
        Outcome.REFUSED,
        None,
    ),
    # Baileys' socket was closed: nothing was written.
    (
        400,
        _evolution_error(400, "Bad Request", ["Error: Connection Closed"]),
        Outcome.NOT_SENT,
        None,
    ),
    (400, _evolution_error(400, "Bad Request", ["Error: Timed Out"]), Outcome.UNKNOWN, None),
    (
        500,
        _evolution_error(500, "Internal Server Error", "Internal Server Error"),
        Outcome.UNKNOWN,
        None,
    ),
    (502, "<html><h1>502 Bad Gateway</h1></html>", Outcome.UNKNOWN, None),
    (408, "Request Timeout", Outcome.NOT_SENT, None),
]


@pytest.mark.parametrize(("status", "body", "outcome", "message_id"), EVOLUTION_ANSWERS)
def test_evolutions_answers(
    status: int, body: Any, outcome: Outcome, message_id: str | None
) -> None:
    result = interpret_evolution(status, body if isinstance(body, str) else _j(body))
    assert (result.outcome, result.message_id) == (outcome, message_id), result
    assert result.reason


def test_evolutions_refusals_name_the_setting_to_fix() -> None:
    unauthorized = _j(_evolution_error(401, "Unauthorized", "Unauthorized"))
    assert "EVOLUTION_API_KEY" in interpret_evolution(401, unauthorized).reason
    missing = _j(_evolution_error(404, "Not Found", ["no instance"]))
    assert "EVOLUTION_INSTANCE" in interpret_evolution(404, missing).reason


answers = st.one_of(
    st.builds(
        _j,
        st.dictionaries(
            st.sampled_from(["id", "key", "message", "exception"]),
            st.one_of(
                st.none(),
                st.text(max_size=12),
                st.dictionaries(
                    st.sampled_from(["id", "_serialized", "message"]), st.text(max_size=12)
                ),
            ),
        ),
    ),
    st.builds(_j, st.one_of(st.none(), st.integers(), st.lists(st.text(max_size=5)))),
    st.text(max_size=200),
)


# The property is about outcomes, not speed: the suite shares a small machine.
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(status=st.integers(100, 599), body=answers)
@example(status=201, body=_j({"id": ""}))
@example(status=500, body=_j({"id": SENT_ID}))
def test_no_gateway_answer_is_taken_as_sent_without_a_message_id(status: int, body: str) -> None:
    for read in (interpret_waha, interpret_evolution):
        result = read(status, body)
        assert result.reason
        if result.outcome is Outcome.SENT:
            assert 200 <= status < 300 and result.message_id
        else:
            assert result.message_id is None
        if status >= 500 and result.outcome is Outcome.NOT_SENT:
            # Retried automatically only when the gateway itself said it was not connected.
            assert "onnection" in result.reason or "not connected" in result.reason


# -- the router -------------------------------------------------------------------------

PROJECTS = f"""
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "{GROUP}"
    description: Lawley Activation 3 group
    gateway: waha
  - name: Mohadin
    group_jid: "{OTHER}"
    description: Mohadin Activations group
"""


def _router(**env: str) -> GatewayClients:
    configured = settings_from(
        {"DATABASE_URL": "sqlite:///unused.db", "BRIDGE_URL": "http://127.0.0.1:9/api", **env}
    )
    config = parse_config(PROJECTS, Path("projects.yaml"))
    return GatewayClients(configured, lambda: config)


def test_each_group_goes_through_its_projects_gateway_else_the_setting() -> None:
    router = _router(GATEWAY="evolution")
    assert router.gateway_for(GROUP) == "waha"  # Lawley's own `gateway:`
    assert router.gateway_for(OTHER) == "evolution"  # Mohadin: the GATEWAY setting
    assert router.gateway_for(NOWHERE) == "evolution"  # a group of no project
    assert _router().gateway_for(OTHER) == "bridge"


@pytest.mark.parametrize(
    ("env", "recipient", "words"),
    [
        ({}, GROUP, "WAHA_URL is not set: feedback to"),
        (
            {"GATEWAY": "evolution", "EVOLUTION_URL": "http://127.0.0.1:9"},
            OTHER,
            "EVOLUTION_INSTANCE and EVOLUTION_API_KEY are not set: feedback to",
        ),
        (
            {"GATEWAY": "evolution", "EVOLUTION_INSTANCE": "field", "EVOLUTION_API_KEY": "k3y"},
            OTHER,
            "EVOLUTION_URL is not set: feedback to",
        ),
    ],
)
def test_a_gateway_that_is_not_configured_refuses_instead_of_sending_elsewhere(
    env: dict[str, str], recipient: str, words: str
) -> None:
    router = _router(**env)
    result = router.send(recipient, TEXT, REPLY)
    assert result.outcome is Outcome.REFUSED and result.reason.startswith(words), result
    assert "projects.yaml" in result.reason and result.gateway == router.gateway_for(recipient)
    assert router.takes_replies(recipient) is False


def test_replies_follow_the_gateway_of_the_group() -> None:
    router = _router(WAHA_URL="http://127.0.0.1:9")
    assert router.takes_replies(GROUP) is True  # WAHA
    assert router.takes_replies(OTHER) is False  # the upstream bridge: no token
    assert _router(BRIDGE_TOKEN="t0ken-for-tests").takes_replies(OTHER) is True
