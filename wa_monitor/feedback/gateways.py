"""Feedback through each project's gateway: a client per gateway and the router between them.

- bridge, bridge-webhook: `POST {BRIDGE_URL}/send` (outbox.BridgeClient), with
  `Authorization: Bearer BRIDGE_TOKEN` when set.
- waha: `POST {WAHA_URL}/api/sendText` with `X-Api-Key` (WahaClient).
- evolution: `POST {EVOLUTION_URL}/message/sendText/{EVOLUTION_INSTANCE}` with `apikey`
  (EvolutionClient).

WAHA and Evolution API answer the message they sent, with its WhatsApp id: that answer
confirms the send. Their failures are read for what they say about the message: refused
(a bad key, no such session or instance, a request they reject), certainly not sent (the
session is not connected to WhatsApp), or unknown (anything after the message may have
gone out). `GatewayClients` sends each feedback through the gateway of the project whose
group it goes to, and refuses, naming the setting, when that gateway is not configured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.gateways import BRIDGE, BRIDGE_WEBHOOK, EVOLUTION, WAHA, gateway_of
from wa_monitor.core.settings import Settings
from wa_monitor.feedback.outbox import (
    BridgeClient,
    GatewayClient,
    Outcome,
    ReplyTo,
    SendResult,
    message_id_of,
)

DEFAULT_TIMEOUT = 10.0

# Baileys (WAHA's NOWEB engine, Evolution API) raises "Connection Closed" when its socket
# is not open, before the message is written; WAHA's GOWS engine (whatsmeow) says "not
# connected". Either way the message did not go out.
_NOT_CONNECTED = re.compile(
    r"connection (closed|lost|failure|terminated)|not connected|not logged in", re.IGNORECASE
)
# A timeout inside the gateway: the message may be out, unacknowledged.
_TIMED_OUT = re.compile(r"time[sd]?[ -]?out", re.IGNORECASE)


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _words(value: Any, limit: int = 300) -> str:
    """An answer's message as one line of text (lists, objects and all)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return " ".join(text.split())[:limit]


def _not_theirs(status: int, text: str, who: str) -> SendResult:
    """An answer that is not the gateway's own (a proxy's page, a captive portal)."""
    words = " ".join(text.split())[:300] or "no message"
    if status in (408, 429):  # whatever is in front of the gateway did not pass it on
        return SendResult(Outcome.NOT_SENT, f"HTTP {status}: {words}")
    if 300 <= status < 500:
        return SendResult(Outcome.REFUSED, f"HTTP {status}: {words}")
    # A 5xx from a proxy after the request went through it: the message may be out.
    return SendResult(Outcome.UNKNOWN, f"HTTP {status}, not {who}'s own answer: {words}")


# -- WAHA -------------------------------------------------------------------------------


def waha_jid(jid: str) -> str:
    """A person's JID as WAHA names it: `…@c.us` for a phone (a LID stays `…@lid`)."""
    user, _, server = jid.partition("@")
    return f"{user}@c.us" if server in ("", "s.whatsapp.net") else jid


def waha_payload(
    session: str, recipient: str, message: str, reply: ReplyTo | None = None
) -> dict[str, Any]:
    """The JSON of WAHA's `POST /api/sendText`: the installer mentioned, their post quoted.

    `reply_to` is the post's id as stored, i.e. as WAHA's webhook gave it (WEBJS wants
    its serialized `false_<chat>_<id>_<author>`; NOWEB takes that or the bare id).
    """
    payload: dict[str, Any] = {"session": session, "chatId": recipient, "text": message}
    if reply is not None:
        if reply.mention:
            payload["mentions"] = [waha_jid(reply.mention)]
        if reply.message_id:
            payload["reply_to"] = reply.message_id
    return payload


def waha_message_id(body: Any) -> str | None:
    """The id in WAHA's answer to sendText, whichever engine wrote it.

    The documented WAMessage has `id` as text (`true_<chat>_<id>`); WEBJS passes
    whatsapp-web.js's `id: {_serialized, id, …}`; NOWEB passes Baileys' `key: {id, …}`.
    """
    if not isinstance(body, dict):
        return None
    found = body.get("id")
    if isinstance(found, dict):
        found = found.get("_serialized") or found.get("id")
    if found is None and isinstance(body.get("key"), dict):
        found = body["key"].get("id")
    return message_id_of(found)


def interpret_waha(status: int, text: str) -> SendResult:
    """What WAHA's answer to sendText says about the message.

    WAHA (devlikeapro/waha, src/api/chatting.controller.ts, src/core/abc/manager.abc.ts,
    src/nestjs/AllExceptionsFilter.ts): 201 with the message sent; 401/403 a wrong or
    missing key; 404 no such session; 422 the session is not WORKING (STARTING,
    SCAN_QR_CODE, FAILED…): nothing sent, try later; 400 a request it rejects; 500 the
    engine's error `{statusCode, exception: {message}, …}`, which may come after the
    message went out unless it says the session was not connected.
    """
    body = _json(text)
    if 200 <= status < 300:
        found = waha_message_id(body)
        if found:
            return SendResult(Outcome.SENT, f"HTTP {status}: sent as {found}", found)
        if isinstance(body, dict):
            return SendResult(
                Outcome.UNKNOWN, f"HTTP {status}, WAHA answered no message id: {_words(body)}"
            )
        return _not_theirs(status, text, "WAHA")
    if not isinstance(body, dict):
        return _not_theirs(status, text, "WAHA")
    exception = body.get("exception")
    said = body.get("message") or body.get("error")
    if isinstance(exception, dict) and exception.get("message"):
        said = exception["message"]
    words = _words(said if said is not None else body)
    reason = f"HTTP {status}: {words}"
    if status in (401, 403):
        return SendResult(Outcome.REFUSED, f"{reason} (WAHA refused the key: check WAHA_API_KEY)")
    if status == 404:
        return SendResult(Outcome.REFUSED, f"{reason} (check WAHA_SESSION and WAHA_URL)")
    if status == 422:
        return SendResult(Outcome.NOT_SENT, reason)
    if status in (408, 429):
        return SendResult(Outcome.NOT_SENT, reason)
    if 400 <= status < 500:
        return SendResult(Outcome.REFUSED, reason)
    if _NOT_CONNECTED.search(words) and not _TIMED_OUT.search(words):
        return SendResult(Outcome.NOT_SENT, reason)
    return SendResult(Outcome.UNKNOWN, reason)


class WahaClient(GatewayClient):
    """WAHA's `POST {WAHA_URL}/api/sendText` for one session, with `X-Api-Key`."""

    who = "WAHA"
    setting = "WAHA_URL"

    def __init__(
        self,
        base_url: str,
        *,
        session: str = "default",
        api_key: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        headers = {"X-Api-Key": api_key} if api_key else {}
        super().__init__(timeout=timeout, headers=headers, replies=True)
        self.base_url = base_url.rstrip("/")
        self.session = session

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/api/sendText"

    def payload(self, recipient: str, message: str, reply: ReplyTo | None) -> dict[str, Any]:
        return waha_payload(self.session, recipient, message, reply)

    def interpret(self, status: int, text: str) -> SendResult:
        return interpret_waha(status, text)


# -- Evolution API ----------------------------------------------------------------------


def evolution_payload(recipient: str, message: str, reply: ReplyTo | None = None) -> dict[str, Any]:
    """The JSON of Evolution API v2's `POST /message/sendText/{instance}`.

    EvolutionAPI/evolution-api, src/api/dto/sendMessage.dto.ts and
    src/validate/message.schema.ts: `number`, `text`, `mentioned` (JIDs or numbers),
    `quoted: {key: {id}}` (looked up by id in the instance's own store; a post it never
    stored is sent unquoted).
    """
    payload: dict[str, Any] = {"number": recipient, "text": message}
    if reply is not None:
        if reply.mention:
            payload["mentioned"] = [reply.mention]
        if reply.message_id:
            payload["quoted"] = {"key": {"id": reply.message_id}}
    return payload


def interpret_evolution(status: int, text: str) -> SendResult:
    """What Evolution API's answer to sendText says about the message.

    Evolution (src/api/routes/sendMessage.router.ts, src/main.ts, the Baileys channel's
    sendMessageWithTyping): 201 with the message sent, its id in `key.id`; errors as
    `{status, error, response: {message}}`: 401 a wrong or missing apikey, 403, 404 no
    such instance, 400 everything the send itself raised (the group not found, the
    connection closed, a timeout). A closed connection means nothing went out; a
    timeout may come after the message did; other 400s are refused. A 500 may come
    after the send (its answer could not be written): unknown.
    """
    body = _json(text)
    if 200 <= status < 300:
        key = body.get("key") if isinstance(body, dict) else None
        found = message_id_of(key.get("id")) if isinstance(key, dict) else None
        if found:
            return SendResult(Outcome.SENT, f"HTTP {status}: sent as {found}", found)
        if isinstance(body, dict):
            return SendResult(
                Outcome.UNKNOWN,
                f"HTTP {status}, Evolution API answered no message id: {_words(body)}",
            )
        return _not_theirs(status, text, "Evolution API")
    response = body.get("response") if isinstance(body, dict) else None
    if not isinstance(response, dict):
        return _not_theirs(status, text, "Evolution API")
    words = _words(response.get("message", body.get("error")))
    reason = f"HTTP {status}: {words}"
    if status in (401, 403):
        return SendResult(
            Outcome.REFUSED, f"{reason} (Evolution API refused the key: check EVOLUTION_API_KEY)"
        )
    if status == 404:
        return SendResult(Outcome.REFUSED, f"{reason} (check EVOLUTION_INSTANCE and EVOLUTION_URL)")
    if status in (408, 429):
        return SendResult(Outcome.NOT_SENT, reason)
    if 400 <= status < 500:
        if _TIMED_OUT.search(words):
            return SendResult(Outcome.UNKNOWN, reason)
        if _NOT_CONNECTED.search(words):
            return SendResult(Outcome.NOT_SENT, reason)
        return SendResult(Outcome.REFUSED, reason)
    return SendResult(Outcome.UNKNOWN, reason)


class EvolutionClient(GatewayClient):
    """Evolution API's `POST {EVOLUTION_URL}/message/sendText/{instance}`, with `apikey`."""

    who = "Evolution API"
    setting = "EVOLUTION_URL"

    def __init__(
        self, base_url: str, *, instance: str, api_key: str, timeout: float = DEFAULT_TIMEOUT
    ) -> None:
        super().__init__(timeout=timeout, headers={"apikey": api_key}, replies=True)
        self.base_url = base_url.rstrip("/")
        self.instance = instance

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/message/sendText/{quote(self.instance, safe='')}"

    def payload(self, recipient: str, message: str, reply: ReplyTo | None) -> dict[str, Any]:
        return evolution_payload(recipient, message, reply)

    def interpret(self, status: int, text: str) -> SendResult:
        return interpret_evolution(status, text)


# -- the router -------------------------------------------------------------------------


def clients_from(
    settings: Settings, *, timeout: float = DEFAULT_TIMEOUT, bridge: BridgeClient | None = None
) -> tuple[dict[str, GatewayClient], dict[str, str]]:
    """Each configured gateway's client, and for the others why not (the missing setting)."""
    clients: dict[str, GatewayClient] = {}
    missing: dict[str, str] = {}
    bridge = bridge or BridgeClient(
        settings.bridge_url, timeout=timeout, token=settings.bridge_token
    )
    clients[BRIDGE] = clients[BRIDGE_WEBHOOK] = bridge
    if settings.waha_url:
        clients[WAHA] = WahaClient(
            settings.waha_url,
            session=settings.waha_session,
            api_key=settings.waha_api_key,
            timeout=timeout,
        )
    else:
        missing[WAHA] = "WAHA_URL is not set"
    url, instance, key = (
        settings.evolution_url,
        settings.evolution_instance,
        settings.evolution_api_key,
    )
    if url and instance and key:
        clients[EVOLUTION] = EvolutionClient(url, instance=instance, api_key=key, timeout=timeout)
    else:
        absent = [
            name
            for name, value in (
                ("EVOLUTION_URL", url),
                ("EVOLUTION_INSTANCE", instance),
                ("EVOLUTION_API_KEY", key),
            )
            if not value
        ]
        verb = "is" if len(absent) == 1 else "are"
        missing[EVOLUTION] = f"{' and '.join(absent)} {verb} not set"
    return clients, missing


class GatewayClients:
    """Sends each feedback through the gateway of the project whose group it goes to
    (its `gateway:`, else the GATEWAY setting's; a group of no project: the setting's).

    One pooled client per gateway. A gateway that is not configured refuses, naming the
    setting to set, so the entry fails where reviewers see it rather than going out
    another way. `bridge`: the bridge's client (default: BRIDGE_URL and BRIDGE_TOKEN).
    """

    def __init__(
        self,
        settings: Settings,
        config: Callable[[], ProjectsConfig],
        *,
        timeout: float = DEFAULT_TIMEOUT,
        bridge: BridgeClient | None = None,
    ) -> None:
        self.settings = settings
        self._config = config
        self._clients, self._missing = clients_from(settings, timeout=timeout, bridge=bridge)

    @property
    def timeout(self) -> float:
        """The longest a send may take, over the configured gateways."""
        return max(c.timeout for c in self._clients.values())

    def gateway_for(self, recipient: str) -> str:
        """The gateway a feedback to group `recipient` goes through."""
        project = next((p for p in self._config().projects if p.group_jid == recipient), None)
        return gateway_of(project.gateway if project else None, self.settings.gateway)

    def client_for(self, recipient: str) -> tuple[str, GatewayClient | None]:
        gateway = self.gateway_for(recipient)
        return gateway, self._clients.get(gateway)

    def takes_replies(self, recipient: str) -> bool:
        _gateway, client = self.client_for(recipient)
        return client is not None and client.takes_replies(recipient)

    def _refusal(self, gateway: str, recipient: str) -> SendResult:
        why = self._missing.get(gateway, f"no client for gateway {gateway}")
        return SendResult(
            Outcome.REFUSED,
            f"{why}: feedback to {recipient} goes through {gateway}; set it, or choose "
            "another gateway (the project's `gateway:` in projects.yaml, or GATEWAY)",
            gateway=gateway,
        )

    def send(self, recipient: str, message: str, reply: ReplyTo | None = None) -> SendResult:
        gateway, client = self.client_for(recipient)
        if client is None:
            return self._refusal(gateway, recipient)
        return replace(client.send(recipient, message, reply), gateway=gateway)

    async def send_async(
        self, recipient: str, message: str, reply: ReplyTo | None = None
    ) -> SendResult:
        gateway, client = self.client_for(recipient)
        if client is None:
            return self._refusal(gateway, recipient)
        return replace(await client.send_async(recipient, message, reply), gateway=gateway)

    def _distinct(self) -> list[GatewayClient]:
        seen: dict[int, GatewayClient] = {id(c): c for c in self._clients.values()}
        return list(seen.values())

    def close(self) -> None:
        """Close every gateway's HTTP client; a later send opens a new one."""
        for client in self._distinct():
            client.close()

    async def aclose(self) -> None:
        """Close every gateway's event-loop HTTP client."""
        for client in self._distinct():
            await client.aclose()
