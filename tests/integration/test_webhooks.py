"""The webhook routes on both backends: each gateway's credentials, bad bodies, the group
filter, the replay window, and a 2xx answer only once the call's rows are committed."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests import gateways as gw
from tests.integration.test_api_support import TestClient
from tests.integration.test_inbox import break_commits
from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import gateway_inbox, gateway_sessions
from wa_monitor.web.app import create_app
from wa_monitor.web.webhooks import close_inbox, state_of

WAHA_GROUP = "120363418298130331@g.us"
EVOLUTION_GROUP = "120363421664266245@g.us"
FORK_GROUP = "120363421532174586@g.us"
BRIDGE_GROUP = "120363400000000001@g.us"  # read from messages.db: not the inbox's
UNKNOWN_GROUP = "120363499999999999@g.us"

PROJECTS = f"""
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    description: WAHA group
    group_jid: "{WAHA_GROUP}"
  - name: Velo
    description: Evolution API group
    group_jid: "{EVOLUTION_GROUP}"
    gateway: evolution
  - name: Mohadin
    description: Go fork group
    group_jid: "{FORK_GROUP}"
    gateway: bridge-webhook
    enabled: false
  - name: Other
    description: bridge group
    group_jid: "{BRIDGE_GROUP}"
    gateway: bridge
"""

API_KEY = "waha-key-0123456789"
HMAC_KEY = "waha-hmac-0123456789"
EVOLUTION_KEY = "evolution-key-0123456789"
TOKEN = "fork-token-0123456789"


def settings(db_url: str, **extra: str) -> Settings:
    return settings_from(
        {
            "DATABASE_URL": db_url,
            "SECRET_KEY": "test-secret-key-0123456789",
            "GATEWAY": "waha",
            **extra,
        }
    )


def config() -> ProjectsConfig:
    return parse_config(PROJECTS, Path("projects.yaml"))


@dataclass
class Gateway:
    client: TestClient
    store: ReviewStore
    app: Any

    def post(self, path: str, doc: dict[str, Any] | bytes, **headers: str) -> Any:
        body = doc if isinstance(doc, bytes) else gw.encode(doc)
        sent = {"Content-Type": "application/json", **headers}
        return self.client.post(path, content=body, headers=sent)

    def rows(self) -> list[dict[str, Any]]:
        with self.store.begin() as conn:
            query = sa.select(gateway_inbox).order_by(gateway_inbox.c.seq)
            return [dict(r) for r in conn.execute(query).mappings()]


@pytest.fixture
def make_gateway(store: ReviewStore) -> Iterator[Any]:
    opened: list[tuple[Any, Any]] = []

    def make(**extra: str) -> Gateway:
        app = create_app(settings(store.url, **extra), config(), store, run_sender=False)
        client = TestClient(app)
        client.__enter__()
        opened.append((client, app))
        return Gateway(client, store, app)

    yield make
    for client, app in opened:
        client.__exit__(None, None, None)
        close_inbox(app)


def answered(response: Any, stored: int, ignored: int = 0) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "stored": stored, "ignored": ignored}


def refused(response: Any, status: int, words: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False
    assert words in body["error"]["message"], body
    return str(body["error"]["message"])


# -- WAHA ----------------------------------------------------------------------------------


def test_waha_with_its_api_key_stores_the_groups_messages(make_gateway: Any) -> None:
    gateway = make_gateway(WAHA_API_KEY=API_KEY)
    doc = gw.waha_message(WAHA_GROUP, "27821234567", "DR12345678 done", lid=True, name="Thabo")

    answered(gateway.post("/webhooks/waha", doc, **{"X-Api-Key": API_KEY}), 1)

    [row] = gateway.rows()
    assert (row["gateway"], row["chat_jid"], row["content"], row["sender_name"]) == (
        "waha",
        WAHA_GROUP,
        "DR12345678 done",
        "Thabo",
    )
    assert row["sender_pn"] == "27821234567"
    # Delivered again (WAHA retries): acknowledged, stored once.
    answered(gateway.post("/webhooks/waha", doc, **{"X-Api-Key": API_KEY}), 1)
    assert len(gateway.rows()) == 1


def test_waha_without_the_right_api_key_is_refused_and_logged_once(
    make_gateway: Any, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway(WAHA_API_KEY=API_KEY)
    doc = gw.waha_message(WAHA_GROUP, "27821234567", "DR12345678")
    caplog.set_level(logging.INFO, logger="wa_monitor.web")

    refused(gateway.post("/webhooks/waha", doc), 401, "no X-Api-Key")
    for _ in range(3):
        refused(gateway.post("/webhooks/waha", doc, **{"X-Api-Key": "wrong"}), 401, "wrong")

    assert gateway.rows() == []
    warnings = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(warnings) == 1  # not one line per call
    assert API_KEY not in caplog.text and "wrong" not in warnings[0].getMessage()
    answered(gateway.post("/webhooks/waha", doc, **{"X-Api-Key": API_KEY}), 1)
    assert "accepted again" in caplog.text
    refused(gateway.post("/webhooks/waha", doc), 401, "X-Api-Key")
    assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 2


def test_waha_signed_calls_are_verified(make_gateway: Any) -> None:
    gateway = make_gateway(WAHA_HMAC_KEY=HMAC_KEY)
    body = gw.encode(gw.waha_message(WAHA_GROUP, "27821234567", "DR12345678"))

    answered(gateway.post("/webhooks/waha", body, **gw.sign_waha(body, HMAC_KEY)), 1)

    refused(gateway.post("/webhooks/waha", body), 401, "X-Webhook-Hmac")
    forged = gw.sign_waha(body, "not-the-key")
    refused(gateway.post("/webhooks/waha", body, **forged), 401, "does not match")
    tampered = body.replace(b"DR12345678", b"DR87654321")
    signed = gw.sign_waha(body, HMAC_KEY)
    refused(gateway.post("/webhooks/waha", tampered, **signed), 401, "does not match")
    assert len(gateway.rows()) == 1


def test_waha_calls_signed_outside_the_window_are_replays(make_gateway: Any) -> None:
    gateway = make_gateway(WAHA_HMAC_KEY=HMAC_KEY, WEBHOOK_WINDOW="60")
    old = time.time() - 3600
    body = gw.encode(gw.waha_message(WAHA_GROUP, "27821234567", "DR12345678", timestamp=old))

    message = refused(
        gateway.post("/webhooks/waha", body, **gw.sign_waha(body, HMAC_KEY, old)),
        401,
        "Replayed or clock skew",
    )
    assert "60 s" in message
    assert gateway.rows() == []


def test_waha_with_both_credentials_trusts_the_signature_and_checks_a_key_sent(
    make_gateway: Any,
) -> None:
    # WAHA_API_KEY is set for calling WAHA; WAHA sends no X-Api-Key on its webhook unless
    # the operator adds it as a custom header.
    gateway = make_gateway(WAHA_API_KEY=API_KEY, WAHA_HMAC_KEY=HMAC_KEY)
    body = gw.encode(gw.waha_message(WAHA_GROUP, "27821234567", "DR12345678"))
    signed = gw.sign_waha(body, HMAC_KEY)

    refused(gateway.post("/webhooks/waha", body, **{"X-Api-Key": API_KEY}), 401, "Hmac")
    refused(gateway.post("/webhooks/waha", body, **signed, **{"X-Api-Key": "old"}), 401, "wrong")
    answered(gateway.post("/webhooks/waha", body, **signed), 1)
    answered(gateway.post("/webhooks/waha", body, **signed, **{"X-Api-Key": API_KEY}), 1)
    assert len(gateway.rows()) == 1  # the repeat is the same message, stored once


def test_waha_edits_deletions_and_session_states(make_gateway: Any) -> None:
    gateway = make_gateway(WAHA_API_KEY=API_KEY)
    key = {"X-Api-Key": API_KEY}
    post = gw.waha_message(WAHA_GROUP, "27821234567", "DR1234567 done")
    message_id = post["payload"]["_data"]["key"]["id"]
    answered(gateway.post("/webhooks/waha", post, **key), 1)
    edit = gw.waha_edited(WAHA_GROUP, "27821234567", "DR12345678 done", edited_id=message_id)
    answered(gateway.post("/webhooks/waha", edit, **key), 1)
    answered(gateway.post("/webhooks/waha", gw.waha_revoked(WAHA_GROUP, message_id), **key), 1)
    answered(gateway.post("/webhooks/waha", gw.waha_session_status("WORKING"), **key), 1)

    [row] = gateway.rows()
    assert row["content"] == "DR12345678 done"
    assert row["edited_at"] is not None and row["deleted_at"] is not None
    assert row["seq"] == 3  # a new seq for the edit, another for the deletion
    with gateway.store.begin() as conn:
        states = conn.execute(sa.select(gateway_sessions.c.status)).scalars().all()
    assert states == ["WORKING"]


# -- Evolution API and the Go fork -----------------------------------------------------------


def test_evolution_takes_its_apikey_in_a_header_or_the_body(make_gateway: Any) -> None:
    gateway = make_gateway(EVOLUTION_API_KEY=EVOLUTION_KEY)
    in_body = gw.evolution_upsert(EVOLUTION_GROUP, "27821234567", "DR1", apikey=EVOLUTION_KEY)
    in_header = gw.evolution_upsert(EVOLUTION_GROUP, "27821234567", "DR2")

    answered(gateway.post("/webhooks/evolution", in_body), 1)
    answered(gateway.post("/webhooks/evolution", in_header, apikey=EVOLUTION_KEY), 1)
    refused(gateway.post("/webhooks/evolution", in_header), 401, "apikey")
    wrong = gw.evolution_upsert(EVOLUTION_GROUP, "27821234567", "DR3", apikey="wrong-key")
    refused(gateway.post("/webhooks/evolution", wrong), 401, "wrong")

    assert [r["content"] for r in gateway.rows()] == ["DR1", "DR2"]


def test_the_go_fork_needs_its_token(make_gateway: Any) -> None:
    gateway = make_gateway(WEBHOOK_TOKEN=TOKEN)
    doc = gw.bridge_webhook_message(FORK_GROUP, "27821234567", "DR12345678")

    refused(gateway.post("/webhooks/bridge", doc), 401, "token")
    refused(gateway.post("/webhooks/bridge", doc, Authorization="Bearer nope"), 401, "wrong")
    answered(gateway.post("/webhooks/bridge", doc, Authorization=f"Bearer {TOKEN}"), 1)
    answered(gateway.post(f"/webhooks/bridge?token={TOKEN}", doc), 1)  # the fork's own way

    [row] = gateway.rows()  # a disabled project's group is kept: enabled later, it is read
    assert (row["gateway"], row["chat_jid"]) == ("bridge-webhook", FORK_GROUP)


@pytest.mark.parametrize(
    ("path", "setting"),
    [
        ("/webhooks/waha", "WAHA_API_KEY"),
        ("/webhooks/evolution", "EVOLUTION_API_KEY"),
        ("/webhooks/bridge", "WEBHOOK_TOKEN"),
    ],
)
def test_a_gateway_without_a_credential_is_not_open(
    make_gateway: Any, path: str, setting: str
) -> None:
    gateway = make_gateway()
    doc = gw.waha_message(WAHA_GROUP, "27821234567", "DR12345678")

    refused(gateway.post(path, doc), 503, f"webhook not configured: set {setting}")
    assert gateway.rows() == []


# -- what is kept ------------------------------------------------------------------------------


def test_only_the_groups_of_the_gateways_projects_are_stored(make_gateway: Any) -> None:
    gateway = make_gateway(WAHA_API_KEY=API_KEY, EVOLUTION_API_KEY=EVOLUTION_KEY)
    key = {"X-Api-Key": API_KEY}
    for group in (UNKNOWN_GROUP, BRIDGE_GROUP, EVOLUTION_GROUP):
        doc = gw.waha_message(group, "27821234567", "DR12345678")
        answered(gateway.post("/webhooks/waha", doc, **key), 0, 1)
    direct = gw.waha_message("27829999999@c.us", "27829999999", "DR12345678")
    answered(gateway.post("/webhooks/waha", direct, **key), 0, 1)
    ours = gw.evolution_upsert(EVOLUTION_GROUP, "27821234567", "DR1", apikey=EVOLUTION_KEY)
    answered(gateway.post("/webhooks/evolution", ours), 1)
    # Events the monitor has no use for are acknowledged too (else the gateway retries).
    status = gw.evolution_update(EVOLUTION_GROUP, "3EB0AAAA")
    answered(gateway.post("/webhooks/evolution", status, apikey=EVOLUTION_KEY), 0)

    assert [(r["gateway"], r["chat_jid"]) for r in gateway.rows()] == [
        ("evolution", EVOLUTION_GROUP)
    ]
    assert state_of(gateway.app).ignored == {"waha": 4}


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "Not a WAHA webhook body"),
        (b'{"event": "message"}', "payload"),
        (b'{"event": "message", "payload": {"id": 5}}', "payload"),
        (b"[1, 2]", "Not a WAHA webhook body"),
    ],
)
def test_a_malformed_body_is_400_with_the_readers_reason(
    make_gateway: Any, body: bytes, reason: str
) -> None:
    gateway = make_gateway(WAHA_API_KEY=API_KEY)
    refused(gateway.post("/webhooks/waha", body, **{"X-Api-Key": API_KEY}), 400, reason)
    assert gateway.rows() == []


def test_an_identifier_too_long_to_store_is_400(make_gateway: Any) -> None:
    gateway = make_gateway(WEBHOOK_TOKEN=TOKEN)
    doc = gw.bridge_webhook_message(FORK_GROUP, "27821234567", "DR1", id="A" * 150)
    response = gateway.post(f"/webhooks/bridge?token={TOKEN}", doc)
    refused(response, 400, "message_id is longer than 100")


# -- answered only after COMMIT ---------------------------------------------------------------


def test_a_commit_that_fails_is_500_and_stores_nothing_then_the_retry_is_stored(
    make_gateway: Any, store: ReviewStore, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = make_gateway(WAHA_API_KEY=API_KEY)
    key = {"X-Api-Key": API_KEY}
    doc = gw.waha_message(WAHA_GROUP, "27821234567", "DR12345678")
    repair = break_commits(store)
    caplog.set_level(logging.INFO, logger="wa_monitor.web")

    for _ in range(3):  # WAHA delivers again
        refused(gateway.post("/webhooks/waha", doc, **key), 500, "deliver it again")
    assert gateway.rows() == []
    assert len([r for r in caplog.records if "not stored" in r.getMessage()]) == 1

    repair()
    answered(gateway.post("/webhooks/waha", doc, **key), 1)
    assert len(gateway.rows()) == 1
    assert "stored again" in caplog.text


def test_concurrent_calls_share_commits_and_each_is_answered_after_its_own(
    make_gateway: Any,
) -> None:
    import concurrent.futures

    gateway = make_gateway(WAHA_API_KEY=API_KEY)
    key = {"X-Api-Key": API_KEY}
    docs = [gw.waha_message(WAHA_GROUP, "27821234567", f"DR{n:08d}") for n in range(60)]

    def deliver(doc: dict[str, Any]) -> tuple[int, int]:
        response = gateway.post("/webhooks/waha", doc, **key)
        # Answered 200 only when the row can be read by anyone.
        with gateway.store.begin() as conn:
            present = conn.execute(
                sa.select(sa.func.count()).where(gateway_inbox.c.content == doc["payload"]["body"])
            ).scalar_one()
        return response.status_code, present

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(deliver, docs))

    assert results == [(200, 1)] * len(docs)
    writer = state_of(gateway.app).writer
    assert writer is not None
    assert writer.stats.events == len(docs)


def test_after_the_inbox_is_closed_calls_are_refused_for_a_later_delivery(
    make_gateway: Any,
) -> None:
    gateway = make_gateway(WAHA_API_KEY=API_KEY)
    key = {"X-Api-Key": API_KEY}
    first = gw.waha_message(WAHA_GROUP, "27821234567", "DR12345678")
    answered(gateway.post("/webhooks/waha", first, **key), 1)

    close_inbox(gateway.app)
    close_inbox(gateway.app)  # safe twice
    later = gw.waha_message(WAHA_GROUP, "27821234567", "DR87654321")

    refused(gateway.post("/webhooks/waha", later, **key), 503, "deliver again")
    assert [r["content"] for r in gateway.rows()] == ["DR12345678"]


def test_a_webhook_carrying_a_photo_as_base64_is_not_too_large(make_gateway: Any) -> None:
    # Evolution API's webhook_base64 puts the photo in the call: far above the API's 256 KiB.
    gateway = make_gateway(EVOLUTION_API_KEY=EVOLUTION_KEY)
    doc = gw.evolution_upsert(
        EVOLUTION_GROUP,
        "27821234567",
        "DR12345678",
        media=gw.evolution_image(),
        apikey=EVOLUTION_KEY,
    )
    doc["data"]["message"]["base64"] = "QUJD" * 500_000  # 2 MB

    answered(gateway.post("/webhooks/evolution", doc), 1)
    [row] = gateway.rows()
    assert (row["content"], row["media_type"]) == ("DR12345678", "image")
