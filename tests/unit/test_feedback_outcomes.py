"""What a feedback attempt says about the message: sent, certainly not sent, or unknown.

The bridge returns no message id, so only its own answer settles an attempt. Everything
else that can come back (every error httpx raises, every status and body) is classified
here, and only what certainly did not reach the bridge may be sent again automatically.
"""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from wa_monitor.feedback.outbox import Outcome, classify_error, interpret

URL = "http://bridge.invalid:8080/api/send"

# Raised before a byte of the request reached the bridge (the TCP connection was never
# made, the pool never gave one, the request was invalid before it was written).
BEFORE_SENDING = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.ProxyError,
    httpx.LocalProtocolError,
)
# Settings that can never work: refused, not retried.
UNUSABLE_URL = (httpx.UnsupportedProtocol, httpx.InvalidURL)


def _every_error(base: type[Exception]) -> list[type[Exception]]:
    found: list[type[Exception]] = []
    for sub in base.__subclasses__():
        found += [sub, *_every_error(sub)]
    return found


# Every error httpx can raise from a request, now and after an upgrade adds one.
ERRORS = [c for c in _every_error(httpx.HTTPError) if c is not httpx.HTTPStatusError] + [
    httpx.InvalidURL
]


@pytest.mark.parametrize("error", ERRORS, ids=lambda c: c.__name__)
def test_only_an_error_before_sending_is_safe_to_send_again(error: type[Exception]) -> None:
    result = classify_error(error("boom"), URL, 10.0)
    if issubclass(error, UNUSABLE_URL):
        assert result.outcome is Outcome.REFUSED
    elif issubclass(error, BEFORE_SENDING):
        assert result.outcome is Outcome.NOT_SENT
        assert "cannot reach the bridge" in result.reason
    else:
        # A read timeout, a reset, a broken answer: the message may be in the group.
        assert result.outcome is Outcome.UNKNOWN, error
    assert result.reason


def test_a_timeout_after_the_request_went_out_says_so() -> None:
    result = classify_error(httpx.ReadTimeout("timed out"), URL, 10.0)
    assert result.outcome is Outcome.UNKNOWN
    assert result.reason == "the bridge did not answer within 10s after the message went out"
    connect = classify_error(httpx.ConnectTimeout("timed out"), URL, 10.0)
    assert connect.outcome is Outcome.NOT_SENT and "no connection within 10s" in connect.reason


def _bridge(success: bool, message: str) -> str:
    return json.dumps({"success": success, "message": message})


# The bridge's own answers (whatsapp-bridge's /api/send) and what they mean.
@pytest.mark.parametrize(
    ("status", "body", "outcome"),
    [
        (200, _bridge(True, "Message sent to 120363418298130331@g.us"), Outcome.SENT),
        (500, _bridge(False, "Not connected to WhatsApp"), Outcome.NOT_SENT),
        (500, _bridge(False, "Error parsing JID: bad"), Outcome.NOT_SENT),
        (200, _bridge(False, "Failed to send"), Outcome.NOT_SENT),
        # whatsmeow sent the message node but WhatsApp never acknowledged it.
        (
            500,
            _bridge(False, "Error sending message: timed out waiting for message send response"),
            Outcome.UNKNOWN,
        ),
        (400, "Invalid request format\n", Outcome.REFUSED),
        (405, "Method not allowed\n", Outcome.REFUSED),
        (404, "404 page not found\n", Outcome.REFUSED),
        (401, '{"error": "unauthorized"}', Outcome.REFUSED),
        # A proxy in front of the bridge.
        (502, "<html><h1>502 Bad Gateway</h1></html>", Outcome.UNKNOWN),
        (503, "<html>Service Unavailable</html>", Outcome.UNKNOWN),
        (504, "<html>504 Gateway Time-out</html>", Outcome.UNKNOWN),
        (500, "Internal Server Error", Outcome.UNKNOWN),
        (200, "<html>captive portal</html>", Outcome.UNKNOWN),
        (200, "", Outcome.UNKNOWN),
        (408, "Request Timeout", Outcome.NOT_SENT),
        (429, "Too Many Requests", Outcome.NOT_SENT),
        (301, "", Outcome.REFUSED),
    ],
)
def test_the_bridges_answers(status: int, body: str, outcome: Outcome) -> None:
    result = interpret(status, body)
    assert result.outcome is outcome, result
    assert result.reason


bodies = st.one_of(
    st.builds(
        lambda ok, message: json.dumps({"success": ok, "message": message}),
        st.booleans(),
        st.one_of(st.none(), st.text(max_size=80)),
    ),
    st.builds(json.dumps, st.one_of(st.none(), st.integers(), st.lists(st.booleans()))),
    st.builds(json.dumps, st.dictionaries(st.text(max_size=8), st.text(max_size=8))),
    st.text(max_size=2000),
)


@given(status=st.integers(100, 599), body=bodies)
@example(status=200, body='{"success": "true"}')
@example(status=201, body='{"success": true}')
@example(status=500, body='{"success": true, "message": "sent"}')
def test_no_answer_is_taken_as_sent_unless_the_bridge_says_so(status: int, body: str) -> None:
    result = interpret(status, body)
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    bridge_said = isinstance(parsed, dict) and isinstance(parsed.get("success"), bool)
    assert result.reason and len(result.reason) <= 520
    if result.outcome is Outcome.SENT:
        assert status == 200 and bridge_said and parsed["success"] is True
    if result.outcome is Outcome.NOT_SENT:
        # Retried automatically: only the bridge saying it did not send, or a status
        # meaning the request was not passed on.
        assert (bridge_said and parsed["success"] is False) or status in (408, 429)
    if status >= 500 and not bridge_said:
        assert result.outcome is Outcome.UNKNOWN
