"""The webhook gateways' calls: WAHA, Evolution API and the Go bridge fork, into the inbox.

`POST /webhooks/waha`, `/webhooks/evolution`, `/webhooks/bridge`. They sit outside the
dashboard's sign-in: each gateway proves itself with its own credential (WAHA: its
X-Api-Key and, when WAHA_HMAC_KEY is set, its HMAC signature; Evolution API: its apikey;
the Go fork: WEBHOOK_TOKEN). A gateway without a configured credential is refused (503),
never open by default.

A call is answered 200 only after what it delivered is committed to the inbox
(`wa_monitor.store.inbox`): a gateway that gets anything else, or no answer at all,
delivers again, and the inbox stores each (chat, message) once. Only the messages of the
groups of projects that take this gateway are kept; the rest are acknowledged and counted
as ignored. This is the hot path: the raw body is parsed by the gateway's reader, with no
model per request, and every request waiting joins the same commit.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from wa_monitor.core import gateway_events as events
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import ReviewDatabaseError
from wa_monitor.core.gateways import BRIDGE_WEBHOOK, EVOLUTION, WAHA, gateway_of
from wa_monitor.core.settings import Settings
from wa_monitor.store.inbox import InboxClosed, InboxRejected, InboxWriter, checked
from wa_monitor.web.envelope import ApiError, error_response

log = logging.getLogger("wa_monitor.web")

# Plain Starlette routes: no FastAPI dependency solving (and its Response) per call.
router = APIRouter(include_in_schema=False)

# Refused calls are logged once per gateway, then again only after a success or this long.
REFUSALS_LOGGED_EVERY = 300.0

Reader = Callable[[bytes], list[events.Event]]


@dataclass
class WebhookState:
    """What the routes keep between calls: the writer, the groups, refusals, counters."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    writer: InboxWriter | None = None
    groups_of: tuple[object, dict[str, frozenset[str]]] | None = None
    refused_logged: dict[str, float] = field(default_factory=dict)
    store_error: str = ""  # the inbox's last failure, logged once
    stored: Counter[str] = field(default_factory=Counter)
    ignored: Counter[str] = field(default_factory=Counter)


def state_of(app: FastAPI) -> WebhookState:
    state: WebhookState | None = getattr(app.state, "webhooks", None)
    if state is None:
        state = WebhookState()
        app.state.webhooks = state
    return state


def inbox_writer(app: FastAPI) -> InboxWriter:
    """The app's inbox writer, made at the first webhook (its thread starts with work)."""
    state = state_of(app)
    with state.lock:
        if state.writer is None:
            state.writer = InboxWriter(app.state.store)
        return state.writer


def close_inbox(app: FastAPI) -> None:
    """Commit what the webhooks submitted and stop the writer; safe twice, and without one."""
    state = state_of(app)
    with state.lock:
        writer = state.writer
    if writer is not None:
        writer.close()


# -- the routes -------------------------------------------------------------------------


async def waha(request: Request) -> Response:
    """WAHA's webhook (events message, message.any, message.edited, message.revoked,
    session.status)."""
    settings: Settings = request.app.state.settings
    if not settings.waha_api_key and not settings.waha_hmac_key:
        return _not_configured(WAHA, "WAHA_API_KEY (WAHA's X-Api-Key) or WAHA_HMAC_KEY")
    body = await request.body()
    try:
        # WAHA sends its X-Api-Key only when the operator adds it to the webhook's custom
        # headers: with a signature to check, the key is checked only when it is sent.
        given = request.headers.get("x-api-key")
        if settings.waha_api_key and (given is not None or not settings.waha_hmac_key):
            _same_key(given, settings.waha_api_key, "X-Api-Key")
        if settings.waha_hmac_key:
            events.verify_waha(
                body,
                request.headers,
                hmac_key=settings.waha_hmac_key,
                now=time.time(),
                window=settings.webhook_window,
            )
    except events.SignatureError as exc:
        return _refused(request, WAHA, str(exc), replay=isinstance(exc, events.ReplayError))
    return await _deliver(request, WAHA, body, _received_now(events.parse_waha))


async def evolution(request: Request) -> Response:
    """Evolution API's webhook (messages.upsert, messages.update, messages.delete,
    connection.update)."""
    settings: Settings = request.app.state.settings
    if not settings.evolution_api_key and not settings.webhook_token:
        return _not_configured(EVOLUTION, "EVOLUTION_API_KEY (the instance's apikey)")
    body = await request.body()
    try:
        events.verify_evolution(
            body,
            request.headers,
            request.query_params.get("token"),
            api_key=settings.evolution_api_key,
            token=settings.webhook_token,
        )
    except events.SignatureError as exc:
        return _refused(request, EVOLUTION, str(exc))
    return await _deliver(request, EVOLUTION, body, _received_now(events.parse_evolution))


async def bridge(request: Request) -> Response:
    """The maintained Go bridge fork's webhook: one stored message per call."""
    settings: Settings = request.app.state.settings
    if not settings.webhook_token:
        return _not_configured(
            BRIDGE_WEBHOOK, "WEBHOOK_TOKEN (and ?token=<it> in the fork's WEBHOOK_URL)"
        )
    body = await request.body()
    try:
        events.verify_bridge_webhook(
            request.headers, request.query_params.get("token"), token=settings.webhook_token
        )
    except events.SignatureError as exc:
        return _refused(request, BRIDGE_WEBHOOK, str(exc))
    return await _deliver(request, BRIDGE_WEBHOOK, body, events.parse_bridge_webhook)


for _path, _endpoint in (
    ("/webhooks/waha", waha),
    ("/webhooks/evolution", evolution),
    ("/webhooks/bridge", bridge),
):
    router.add_route(_path, _endpoint, methods=["POST"], include_in_schema=False)


# -- one call ---------------------------------------------------------------------------


def _received_now(parse: Callable[..., list[events.Event]]) -> Reader:
    return lambda body: parse(body, received_at=time.time())


async def _deliver(request: Request, gateway: str, body: bytes, parse: Reader) -> Response:
    """Read, keep the monitored groups' events, store them, answer once committed."""
    app = request.app
    state = state_of(app)
    _accepted(state, gateway)
    try:
        found = parse(body)
    except events.PayloadError as exc:
        return error_response(ApiError(400, f"Not a {_label(gateway)} webhook body: {exc}"))
    groups = _groups(state, app.state.config, app.state.settings, gateway)
    kept = [e for e in found if isinstance(e, events.SessionStatus) or e.chat_jid in groups]
    ignored = len(found) - len(kept)
    if ignored:
        state.ignored[gateway] += ignored
    if kept:
        try:
            kept = checked(kept)
        except InboxRejected as exc:
            return error_response(ApiError(400, f"Not stored: {exc}"))
        try:
            await inbox_writer(app).commit(kept)
        except InboxClosed:
            return error_response(ApiError(503, "The server is stopping; deliver again"))
        except ReviewDatabaseError as exc:
            if str(exc) != state.store_error:  # once per distinct fault, not per call
                state.store_error = str(exc)
                log.error(
                    "❌ %s webhook calls not stored (answered 500: the gateway delivers them "
                    "again): %s",
                    gateway,
                    exc,
                )
            return error_response(
                ApiError(500, "The inbox could not store the call; deliver it again")
            )
        if state.store_error:
            state.store_error = ""
            log.info("✅ webhook calls are stored again")
        state.stored[gateway] += len(kept)
    return Response(
        f'{{"success":true,"stored":{len(kept)},"ignored":{ignored}}}',
        media_type="application/json",
    )


def _groups(
    state: WebhookState, config: ProjectsConfig, settings: Settings, gateway: str
) -> frozenset[str]:
    """The group JIDs of the projects (enabled or not) whose gateway is `gateway`."""
    cached = state.groups_of
    if cached is None or cached[0] is not config:
        by_gateway: dict[str, set[str]] = {}
        for project in config.projects:
            name = gateway_of(project.gateway, settings.gateway)
            by_gateway.setdefault(name, set()).add(project.group_jid)
        cached = (config, {name: frozenset(jids) for name, jids in by_gateway.items()})
        state.groups_of = cached
    return cached[1].get(gateway, frozenset())


# -- credentials ------------------------------------------------------------------------


def _same_key(given: str | None, expected: str, header: str) -> None:
    if not given:
        raise events.SignatureError(f"no {header} header: add it to the webhook's headers")
    if not hmac.compare_digest(given.strip().encode(), expected.encode()):
        raise events.SignatureError(f"the {header} is wrong")


def _not_configured(gateway: str, setting: str) -> Response:
    return error_response(ApiError(503, f"{_label(gateway)} webhook not configured: set {setting}"))


def _refused(request: Request, gateway: str, reason: str, *, replay: bool = False) -> Response:
    """401, logged once per gateway until a call succeeds or some minutes have passed."""
    state = state_of(request.app)
    now = time.monotonic()
    last = state.refused_logged.get(gateway)
    if last is None or now - last >= REFUSALS_LOGGED_EVERY:
        state.refused_logged[gateway] = now
        client = request.client.host if request.client else "?"
        log.warning(
            "🔒 %s webhook call from %s refused: %s (further refusals are not logged for "
            "%d minutes, or until a call is accepted)",
            gateway,
            client,
            reason,
            REFUSALS_LOGGED_EVERY // 60,
        )
    message = f"Replayed or clock skew: {reason}" if replay else reason
    return error_response(ApiError(401, message))


def _accepted(state: WebhookState, gateway: str) -> None:
    if state.refused_logged.pop(gateway, None) is not None:
        log.info("✅ %s webhook calls are accepted again", gateway)


_LABELS: Mapping[str, str] = {
    WAHA: "WAHA",
    EVOLUTION: "Evolution API",
    BRIDGE_WEBHOOK: "Go bridge",
}


def _label(gateway: str) -> str:
    return _LABELS.get(gateway, gateway)
