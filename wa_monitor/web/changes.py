"""Answers kept in memory until PostgreSQL says they are stale (LISTEN wa_monitor_changes).

Migration 0005 has PostgreSQL send a notification naming the table whenever a
committed statement changed one the dashboard reads (reviews, feedback outbox, users,
API tokens), whoever wrote it. `ChangeFeed` listens on a connection of its own and
counts the notifications per table; `AnswerCache` keeps an answer with the counts it
was read under and serves it while they are unchanged.

A request reads the counts *before* it reads the database, so a change that commits
during the read makes the stored answer stale at once. Another process's change shows
as soon as its notification arrives (milliseconds); this process's own writes make
every kept answer stale before their response leaves (`StaleAfterWrites`), so a
reviewer's next read always shows their edit. While the feed is not listening
(starting, or its connection lost) it reports no counts and nothing is cached; once it
listens again every count moves on, so nothing from before is served.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

import psycopg
from psycopg.sql import SQL, Identifier
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from wa_monitor.core.settings import mask_url

log = logging.getLogger("wa_monitor.web")
CHANNEL = "wa_monitor_changes"
APPLICATION_NAME = "wa-monitor change feed"
REVIEWS = ("qa_photo_reviews", "feedback_outbox")
ACCOUNTS = ("users", "api_tokens")
Version = tuple[int, ...]
_FLIGHT_WAIT = 30.0  # seconds a request waits for another's reading of the same answer
T = TypeVar("T")


def feed_for(engine: Engine) -> ChangeFeed | None:
    """The change feed of a review database: PostgreSQL has one; SQLite cannot notify, so
    there the dashboard reads on every request."""
    return ChangeFeed(engine) if engine.dialect.name == "postgresql" else None


class FeedDeaf(Exception):
    """The feed's own probe notification did not come back."""


class ChangeFeed:
    """Counts PostgreSQL's change notifications per table, in a thread of its own.

    The feed trusts its connection only while it hears itself: on connecting and then
    every `probe_every` seconds it notifies its own channel and waits for the echo. A
    connection pooler in transaction mode (which cannot deliver notifications) or a
    connection that died without a word fails the probe, and answers are read from the
    database until a new connection hears its probe.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        retry_seconds: float = 1.0,
        probe_every: float = 30.0,
        probe_timeout: float = 5.0,
    ) -> None:
        self._engine = engine
        self._retry = retry_seconds
        self._probe_every = probe_every
        self._probe_timeout = probe_timeout
        self._listen_to = CHANNEL
        self._counts: dict[str, int] = {}
        self._epoch = 0  # moves on whenever the feed starts listening again
        self._live = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listening = threading.Event()  # set while notifications are being received

    def version(self, tables: tuple[str, ...]) -> Version | None:
        """The counts of `tables` now, or None when the feed is not listening."""
        with self._lock:
            if not self._live:
                return None
            return (self._epoch, *(self._counts.get(t, 0) for t in tables))

    def touch(self) -> None:
        """This process wrote: every answer read before now is stale.

        Its own notification is on the way, but the writer's next request may come first.
        """
        with self._lock:
            self._epoch += 1

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="change-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self._probe_timeout + 10)

    def _connect(self) -> psycopg.Connection[Any]:
        cargs, cparams = self._engine.dialect.create_connect_args(self._engine.url)
        conn: psycopg.Connection[Any] = psycopg.connect(
            *cargs,
            **{
                **cparams,
                "autocommit": True,
                "connect_timeout": 10,
                "application_name": APPLICATION_NAME,  # as pg_stat_activity shows it
            },
        )
        return conn

    def _count(self, table: str) -> None:
        with self._lock:
            self._counts[table] = self._counts.get(table, 0) + 1

    def _probe(self, conn: psycopg.Connection[Any]) -> None:
        """Notify our own channel and wait for the echo (counting what else arrives)."""
        token = f"probe:{secrets.token_hex(8)}"
        conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, token))
        deadline = time.monotonic() + self._probe_timeout
        while (left := deadline - time.monotonic()) > 0:
            for note in conn.notifies(timeout=left):
                if note.payload == token:
                    return
                self._count(note.payload)
        raise FeedDeaf(
            f"its probe did not come back within {self._probe_timeout:g} s; a connection "
            "pooler in transaction mode cannot deliver notifications: give `serve` a "
            "direct DATABASE_URL"
        )

    def _run(self) -> None:
        failing = False
        while not self._stop.is_set():
            wait = self._retry
            try:
                with self._connect() as conn:
                    # A channel is an identifier, not a value: quoted, never formatted.
                    conn.execute(SQL("LISTEN {}").format(Identifier(self._listen_to)))
                    self._probe(conn)
                    with self._lock:
                        self._epoch += 1  # whatever happened while deaf is stale now
                        self._live = True
                    self.listening.set()
                    if failing:
                        log.info("🔔 dashboard change feed listening again")
                    failing = False
                    next_probe = time.monotonic() + self._probe_every
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            self._count(note.payload)
                        if time.monotonic() >= next_probe:
                            self._probe(conn)
                            next_probe = time.monotonic() + self._probe_every
            except (psycopg.Error, FeedDeaf) as exc:
                if isinstance(exc, FeedDeaf):
                    wait = max(self._retry, self._probe_every)
                if not failing:
                    text = str(exc).strip()
                    reason = text.splitlines()[0] if text else type(exc).__name__
                    log.warning(
                        "⚠️ dashboard change feed lost (%s); answers are read from the "
                        "database until it is back",
                        mask_url(reason),
                    )
                failing = True
            finally:
                with self._lock:
                    self._live = False
                self.listening.clear()
            self._stop.wait(wait)


class StaleAfterWrites:
    """ASGI middleware: a request that may write (not GET/HEAD/OPTIONS) touches the feed
    before its response starts, so the client's next read never meets an older answer."""

    def __init__(self, app: ASGIApp, feed: ChangeFeed) -> None:
        self.app = app
        self.feed = feed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return

        async def send_after_touch(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.feed.touch()
            await send(message)

        try:
            await self.app(scope, receive, send_after_touch)
        finally:
            self.feed.touch()  # also when it failed before answering


class _Flight(Generic[T]):
    """One computation of an answer that requests for the same key wait for."""

    def __init__(self, version: Version) -> None:
        self.version = version
        self.done = threading.Event()
        self.answer: T | None = None
        self.ok = False


class AnswerCache(Generic[T]):
    """Answers by key, each valid while the feed's counts of its tables are unchanged.

    At most `max_entries` answers (the least recently used go first), none older than
    `max_age` seconds. None is never kept (an unknown token must not take a place).
    When a change makes an answer stale, the requests that arrive while it is read
    again wait for that one reading instead of each reading it too.
    """

    def __init__(
        self,
        feed: ChangeFeed | None,
        tables: tuple[str, ...],
        *,
        max_entries: int = 512,
        max_age: float = 3600.0,
    ) -> None:
        self.feed = feed
        self.tables = tables
        self.max_entries = max_entries
        self.max_age = max_age
        self._entries: OrderedDict[Hashable, tuple[Version, float, T]] = OrderedDict()
        self._flights: dict[Hashable, _Flight[T]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The answer for `key`: from memory if still valid, else `compute()`d (and kept)."""
        version = self.feed.version(self.tables) if self.feed is not None else None
        if version is None:
            return compute()
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == version and now - entry[1] < self.max_age:
                self._entries.move_to_end(key)
                return entry[2]
            flight = self._flights.get(key)
            leading = flight is None or flight.version != version
            if leading:
                flight = self._flights[key] = _Flight(version)
        assert flight is not None
        if not leading:
            if flight.done.wait(_FLIGHT_WAIT) and flight.ok:
                return cast(T, flight.answer)  # set by the leader
            return compute()  # the leader failed or is stuck: read for ourselves
        try:
            answer = compute()
            flight.answer, flight.ok = answer, True
        finally:
            flight.done.set()
            with self._lock:
                if self._flights.get(key) is flight:
                    del self._flights[key]
        if answer is None:
            return answer
        with self._lock:
            self._entries[key] = (version, now, answer)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return answer
