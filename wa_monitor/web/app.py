"""The dashboard application: `create_app(settings, config, store)` → a FastAPI app."""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

import wa_monitor.web.health
import wa_monitor.web.projects
from wa_monitor import __version__
from wa_monitor.core.config import ProjectsConfig
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.settings import Settings
from wa_monitor.feedback.gateways import GatewayClients
from wa_monitor.feedback.outbox import BridgeClient, FeedbackSender
from wa_monitor.store.media import MediaStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.users import LAST_USED_RESOLUTION
from wa_monitor.web import (
    api,
    dr_validation,
    droplists,
    exports,
    fe_health,
    health_page,
    media,
    pages,
    photos,
    queue_api,
    reports_api,
    reviewing,
    stats_api,
    team,
    users,
    webhooks,
)
from wa_monitor.web.auth import LoginThrottle, Sessions
from wa_monitor.web.changes import ACCOUNTS, REVIEWS, AnswerCache, ChangeFeed, StaleAfterWrites
from wa_monitor.web.config_follow import ProjectsFollower
from wa_monitor.web.envelope import install_handlers, internal_error
from wa_monitor.web.inputs import InputGuard
from wa_monitor.web.queries import SummaryCache

log = logging.getLogger("wa_monitor.web")
GROUP_MESSAGES = "group_messages"
STATIC = Path(__file__).parent / "static"
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# Handlers run in threads that share one interpreter lock: past a few, more threads only
# add switching (daily drops, 32 clients, 2 CPUs: 8 threads answered ~20 % more requests
# than anyio's default of 40, at a fifth of its p99). Each holds at most one connection.
WEB_THREADS = 8
_SECURITY_HEADERS = (
    ("Content-Security-Policy", _CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)


def create_app(
    settings: Settings,
    config: ProjectsConfig,
    store: ReviewStore,
    *,
    dev: bool = False,
    bridge: BridgeClient | None = None,
    run_sender: bool = True,
    sender_interval: float = 2.0,
    run_scheduler: bool = False,
    backoff: tuple[float, ...] | None = None,
    throttle: LoginThrottle | None = None,
    poll_seconds: float = 5.0,
    changes: ChangeFeed | None = None,
    threads: int = WEB_THREADS,
    summary_seconds: float = 0.0,
    follow_seconds: float = 0.5,
    media_store: MediaStore | None = None,
) -> FastAPI:
    """The dashboard and API over `store`.

    Args:
        settings: SECRET_KEY signs sessions (required unless `dev`); BRIDGE_URL is the bridge.
        config: the projects (group JIDs for feedback, step labels, business time zone).
        store: the review database, already at the schema head.
        dev: allow a missing SECRET_KEY (a random one: sessions end with the process).
        bridge: the bridge's client (default: BRIDGE_URL and BRIDGE_TOKEN, a 10 s timeout);
            projects on WAHA or Evolution API send through their own (GatewayClients).
        run_sender: deliver queued feedback in a background thread while the app runs.
        sender_interval: seconds between the sender's passes over the outbox.
        run_scheduler: deliver the scheduled reports and tell the alerts of the projects
            file in a background thread (`serve` does; reports_api.scheduler_for).
        backoff: delays between attempts of a failing feedback (default: feedback's).
        throttle: the failed sign-in limiter (default: 5 failures per 15 minutes).
        poll_seconds: how often the page asks for new drops.
        changes: PostgreSQL's change feed, started and stopped with the app: answers are
            kept in memory until it says they are stale (None: every request reads).
        threads: how many handlers run at once (the rest wait for a thread).
        summary_seconds: keep the drop list's summary cards per filter set until `changes`
            says the reviews changed, or this long without it (0: computed per request).
        follow_seconds: how often the projects file (`config.path`) is checked for changes
            made elsewhere, as `wa-monitor run` does (0: never).
        media_store: where /media serves the photos from (default: the one the settings
            name, MEDIA_URL or MEDIA_DIR, opened at the first request for a file).
    """
    secret = settings.secret_key
    if not secret:
        if not dev:
            raise ConfigError(
                [
                    "SECRET_KEY is not set; the dashboard signs its sessions with it. Set it "
                    'to a long random value (python -c "import secrets; '
                    'print(secrets.token_urlsafe(32))"), or use --dev on a trusted machine'
                ]
            )
        secret = secrets.token_urlsafe(32)
    # Each project's feedback through its gateway; `bridge` stands in for the bridge's.
    client = GatewayClients(settings, lambda: app.state.config, bridge=bridge)
    sender = (
        FeedbackSender(store, client, backoff=backoff)
        if backoff is not None
        else FeedbackSender(store, client)
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = threads
        stop = threading.Event()
        workers: list[threading.Thread] = []
        # A send claimed by a dashboard that stopped before the bridge answered may be in
        # the group: it becomes unconfirmed, never pending again.
        await anyio.to_thread.run_sync(partial(sender.recover, every_claim=True))
        if changes is not None:
            changes.start()
        if run_sender:
            workers.append(
                threading.Thread(
                    target=sender.run,
                    args=(stop, sender_interval),
                    name="feedback-sender",
                    daemon=True,
                )
            )
        if run_scheduler:
            scheduler = reports_api.scheduler_for(store, settings, lambda: app.state.config)
            workers.append(
                threading.Thread(
                    target=scheduler.run, args=(stop,), name="report-scheduler", daemon=True
                )
            )
        if follow_seconds > 0:
            follower = ProjectsFollower(
                config.path,
                config,
                partial(setattr, app.state, "config"),
                interval=follow_seconds,
            )
            workers.append(
                threading.Thread(
                    target=follower.run, args=(stop,), name="projects-file", daemon=True
                )
            )
        for thread in workers:
            thread.start()
        try:
            yield
        finally:
            stop.set()
            if changes is not None:
                changes.stop()
            for thread in workers:
                thread.join(timeout=30)
            # What the webhooks handed over is committed before the process goes.
            await anyio.to_thread.run_sync(webhooks.close_inbox, app)
            await client.aclose()

    app = FastAPI(
        title="WA Monitor",
        version=__version__,
        description="QA review of fibre drops posted in WhatsApp project groups.",
        lifespan=lifespan,
        docs_url=None,  # Swagger UI would load from a CDN; the document itself is served
        redoc_url=None,
        openapi_url="/api/openapi.json",
    )
    app.state.settings = settings
    app.state.config = config
    app.state.store = store
    app.state.sender = sender
    app.state.sessions = Sessions(secret)
    app.state.throttle = throttle or LoginThrottle()
    app.state.dev = dev
    app.state.poll_ms = int(poll_seconds * 1000)
    app.state.accounts = AnswerCache[Any](changes, ACCOUNTS, max_age=LAST_USED_RESOLUTION)
    app.state.answers = AnswerCache[Any](changes, REVIEWS)
    # The drop list carries photo figures: stale too when the photos' links change.
    app.state.drop_answers = AnswerCache[Any](changes, (*REVIEWS, GROUP_MESSAGES))
    app.state.media_store = media_store
    if summary_seconds > 0:
        app.state.summary_cache = SummaryCache(summary_seconds, feed=changes)
    install_handlers(app)

    # The gateways' calls first: the hot path of a busy group, matched before the ~50
    # dashboard routes rather than after them.
    app.include_router(webhooks.router)
    app.include_router(api.router)
    app.include_router(stats_api.router)
    app.include_router(fe_health.router)
    app.include_router(health_page.router)
    app.include_router(dr_validation.router)
    app.include_router(reports_api.router)
    app.include_router(photos.router)
    app.include_router(queue_api.router)
    app.include_router(droplists.router)
    app.include_router(team.router)
    app.include_router(exports.router)
    app.include_router(reviewing.router)
    app.include_router(users.router)
    app.include_router(media.router)
    app.include_router(pages.router)
    app.include_router(wa_monitor.web.health.router)
    app.include_router(wa_monitor.web.projects.router)
    app.mount("/static", Static(directory=STATIC), name="static")
    # The last added runs first: headers on every answer, a 500 in the envelope for any
    # unexpected error, HEAD as GET, then the input checks before any route.
    if changes is not None:
        app.add_middleware(StaleAfterWrites, feed=changes)
    app.add_middleware(InputGuard)
    app.add_middleware(HeadAsGet)
    app.add_middleware(InternalErrors)
    app.add_middleware(SecurityHeaders)
    return app


class Static(StaticFiles):
    """The page's files; a name the file system cannot even look up is simply not there."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except (OSError, ValueError):  # NUL in the name, a name too long, …
            raise HTTPException(404) from None


class HeadAsGet:
    """HEAD is answered as GET without the body, on every route that answers GET."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                message = {**message, "body": b""}
            await send(message)

        head = {**scope, "method": "GET", media.HEAD_REQUEST: True}
        await self.app(head, receive, send_headers_only)


class InternalErrors:
    """An unexpected error is logged once and answered with the envelope's 500.

    Starlette's own handler for it sits outside every middleware (no security headers)
    and raises the error on to the server, which closes the connection.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception:
            log.exception("unexpected error on %s %s", scope["method"], scope["path"])
            if started:
                raise  # part of the answer is on its way: only closing can tell the client
            await internal_error()(scope, receive, send)


class SecurityHeaders:
    """Everything is served by the app itself: no CDN, no inline script, no framing.

    A plain ASGI middleware: it adds the headers to the response's start message
    (Starlette's BaseHTTPMiddleware would cost a task and a stream per request).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _SECURITY_HEADERS:
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)
