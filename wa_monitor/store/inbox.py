"""The webhook inbox's writes: gateway events stored in group commits, rows sequenced in order.

A webhook is answered only once what it delivered is committed, so a gateway that gets no
answer retries and nothing is lost. One writer thread commits the events of every request
waiting at that moment in one transaction (a group commit): at 2,000 messages a second
that is a few hundred commits, not 2,000.

`seq`, the inbox's rowid for `wa_monitor.store.inbox_source.InboxSource`, is given in the
writing transaction, under a lock held until COMMIT (PostgreSQL: an advisory lock; SQLite:
its write transaction, exclusive already): max(seq) + 1, + 2, … So rows become visible in
`seq` order, and a reader's cursor never passes a row that is not committed yet (a plain
sequence would let seq 12 commit before 11, and a cursor at 12 would skip 11 for good).

What each event does to the row of its (chat, message):

- a message: inserted; stored again unchanged, nothing changes (no new seq); stored
  again with something new (a caption, media details, the row a deletion left), updated
  under a new seq. An edited row keeps its edit when the original is delivered again.
- an edit (`edited`): the content replaced, `edited_at` set (the edit's own time), a new
  seq; an edit older than the stored one changes nothing.
- a deletion: `deleted_at` set (row and content kept), a new seq; a deletion of a message
  never delivered stores a row with what is known (no sender, no content).
- a session's state: `gateway_sessions` upserted, unless a later state is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import psycopg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import PoolProxiedConnection

from wa_monitor.core.errors import ReviewDatabaseError, ReviewDataError
from wa_monitor.core.gateway_events import Event, InboxDeletion, InboxMessage, SessionStatus
from wa_monitor.store.review_store import ReviewStore, translate, wrap_exceptions
from wa_monitor.store.schema import gateway_inbox, gateway_sessions

log = logging.getLogger("wa_monitor")

# Advisory lock id: the inbox's sequencer (one writing transaction at a time, to COMMIT).
PG_SEQ_LOCK = 7_301_116
# Events per transaction at most: a burst is split into commits of this size.
MAX_BATCH = 1000
# A writer thread with nothing to write for this long ends (the next event starts one).
IDLE_SECONDS = 30.0
# …and gives its connection back to the pool after this long without work.
_KEEP_CONNECTION = 1.0

# Column widths of gateway_inbox and gateway_sessions (schema.py): an identifier longer
# than its column is refused (400), a name or file name is shortened.
_ID_WIDTHS = {"chat_jid": 100, "message_id": 100, "sender": 100, "gateway": 30}
_CUT_WIDTHS = {"sender_pn": 50, "sender_name": 100, "media_type": 20}
_SESSION_WIDTHS = {"gateway": 30, "session": 100, "status": 50}
_MAX_LENGTH = 2**63 - 1
_TEXT_FIXES = str.maketrans({"\x00": "\ufffd"})


class InboxRejected(ValueError):
    """An event the inbox cannot store as it is: the reason, for a 400 answer."""


class InboxClosed(ReviewDatabaseError):
    """The writer was closed: nothing more is stored through it."""


# -- checking events before they join a batch ---------------------------------------------


def checked(events: Sequence[Event]) -> list[Event]:
    """`events` as the inbox stores them, or InboxRejected naming the first bad value.

    Checked before a request joins a batch, so that one bad request never fails the
    requests committed with it. Identifiers must fit their columns; display values (a
    push name, a file name) are shortened; NUL and lone surrogates, which PostgreSQL's
    text refuses, become U+FFFD in a message's text.
    """
    return [_checked(event) for event in events]


def _checked(event: Event) -> Event:
    if isinstance(event, SessionStatus):
        for name, width in _SESSION_WIDTHS.items():
            _identifier(name, getattr(event, name), width)
        _instant("at", event.at)
        return event
    for name, width in _ID_WIDTHS.items():
        if hasattr(event, name):
            _identifier(name, getattr(event, name), width)
    if not event.chat_jid or not event.message_id:
        raise InboxRejected("a message needs its chat and its id")
    if isinstance(event, InboxDeletion):
        _instant("deleted_at", event.deleted_at)
        return event
    _instant("sent_at", event.sent_at)
    changes: dict[str, Any] = {}
    for name, width in _CUT_WIDTHS.items():
        value = getattr(event, name)
        if value is not None:
            fixed = _text(value)[:width]
            if fixed != value:
                changes[name] = fixed
    if event.content is not None:
        fixed = _text(event.content)
        if fixed != event.content:
            changes["content"] = fixed
    media = event.media
    if media is not None:
        media_changes: dict[str, Any] = {}
        for name, width in (("mimetype", 100), ("filename", 255)):
            value = getattr(media, name)
            if value is not None and _text(value)[:width] != value:
                media_changes[name] = _text(value)[:width]
        if media.url is not None and _text(media.url) != media.url:
            media_changes["url"] = _text(media.url)
        if media.length is not None and not 0 <= media.length <= _MAX_LENGTH:
            media_changes["length"] = None
        if media.sha256 is not None and len(media.sha256) != 32:
            media_changes["sha256"] = None
        if media_changes:
            changes["media"] = replace(media, **media_changes)
    return replace(event, **changes) if changes else event


def _identifier(name: str, value: str, width: int) -> None:
    if len(value) > width:
        raise InboxRejected(f"{name} is longer than {width} characters")
    if _text(value) != value:
        raise InboxRejected(f"{name} holds a NUL character or a lone surrogate")


def _instant(name: str, value: float) -> None:
    if not math.isfinite(value) or abs(value) > 1e13:
        raise InboxRejected(f"{name} is not a time (epoch seconds)")


def _text(value: str) -> str:
    """Text any database keeps and answers: NUL and lone surrogates as U+FFFD."""
    fixed = value.translate(_TEXT_FIXES)
    try:
        fixed.encode("utf-8")
    except UnicodeEncodeError:
        fixed = fixed.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return fixed


# -- the statements -----------------------------------------------------------------------

_MESSAGE_COLUMNS = (
    "gateway", "chat_jid", "message_id", "sender", "sender_pn", "sender_name", "content",
    "sent_at", "from_me", "media_type", "media_url", "media_mimetype", "filename",
    "file_sha256", "file_length",
)  # fmt: skip
# Details a later delivery may add but must not erase when it lacks them.
_KEPT_WHEN_MISSING = (
    "sender_pn", "sender_name", "media_type", "media_url", "media_mimetype", "filename",
    "file_sha256", "file_length",
)  # fmt: skip


_MESSAGE_ROW = ("seq", *_MESSAGE_COLUMNS, "edited_at")
_DELETION_ROW = (
    "seq", "gateway", "chat_jid", "message_id", "sender", "content", "sent_at", "deleted_at",
)  # fmt: skip
_SESSION_ROW = ("gateway", "session", "status", "changed_at", "updated_at")


@dataclass(frozen=True)
class _Statements:
    message: _Prepared
    edit: _Prepared
    deletion: _Prepared
    session: _Prepared


def _pg_rows(table: sa.Table, columns: Sequence[str]) -> Any:
    """PostgreSQL: an INSERT of every row of a JSON array (`:rows`), one statement per run.

    Without prepared statements (the engine's), one statement for the run is parsed and
    planned once, where executemany would have the server plan each row's.
    """
    types: list[sa.ColumnClause[Any]] = []
    for name in columns:
        kind = table.c[name].type
        if isinstance(kind, sa.LargeBinary):
            kind = sa.Text()  # hex, decoded below
        elif name.endswith("_at") and name not in ("sent_at",):
            kind = postgresql.TIMESTAMP(timezone=True)
        types.append(sa.column(name, kind))
    rows = (
        sa.func.json_to_recordset(
            sa.cast(sa.bindparam("rows", None, type_=sa.Text, required=False), postgresql.JSON)
        )
        .table_valued(*types)
        .render_derived(name="r", with_types=True)
    )
    # A row's seq is its place in the run above the highest seq when the statement starts
    # (after the sequencer's lock was taken): one round trip less than asking first.
    base = sa.select(sa.func.coalesce(sa.func.max(gateway_inbox.c.seq), 0)).scalar_subquery()
    picked = []
    for name in columns:
        if name == "seq":
            picked.append(base + rows.c.seq)
        elif isinstance(table.c[name].type, sa.LargeBinary):
            picked.append(sa.func.decode(rows.c[name], "hex"))
        else:
            picked.append(rows.c[name])
    return postgresql.insert(table).from_select(list(columns), sa.select(*picked))


def _statements(dialect: str) -> _Statements:
    def insert(table: sa.Table, columns: Sequence[str]) -> Any:
        if dialect == "postgresql":
            return _pg_rows(table, columns)
        return sqlite.insert(table).values(
            {c: sa.bindparam(c, None, type_=table.c[c].type, required=False) for c in columns}
        )

    t = gateway_inbox
    key = [t.c.chat_jid, t.c.message_id]
    placeholder = t.c.sender == ""  # the row a deletion of an unknown message left

    def message_upsert(edit: bool) -> Any:
        stmt = insert(t, _MESSAGE_ROW)
        new = stmt.excluded
        values: dict[str, Any] = {
            name: sa.func.coalesce(new[name], t.c[name]) for name in _KEPT_WHEN_MISSING
        }
        values["seq"] = new.seq
        values["from_me"] = sa.case((placeholder, new.from_me), else_=t.c.from_me)
        values["sender"] = sa.case((placeholder, new.sender), else_=t.c.sender)
        values["sent_at"] = sa.case((placeholder, new.sent_at), else_=t.c.sent_at)
        if edit:
            values["content"] = new.content
            values["edited_at"] = new.edited_at
            # An edit older than the one stored (delivered again, late) changes nothing.
            changed = sa.or_(
                placeholder,
                t.c.edited_at.is_(None),
                sa.and_(t.c.edited_at <= new.edited_at, t.c.content.is_distinct_from(new.content)),
            )
        else:
            # The original delivered after its edit fills in the row, not the text.
            values["content"] = sa.case((t.c.edited_at.is_(None), new.content), else_=t.c.content)
            # Something new: what a re-delivery carries beyond the stored row.
            changed = sa.or_(
                placeholder,
                sa.and_(
                    t.c.edited_at.is_(None),
                    sa.or_(
                        t.c.content.is_distinct_from(new.content),
                        *(
                            sa.and_(new[name].is_not(None), t.c[name].is_distinct_from(new[name]))
                            for name in _KEPT_WHEN_MISSING
                        ),
                    ),
                ),
            )
        return stmt.on_conflict_do_update(index_elements=key, set_=values, where=changed)

    deletion = insert(t, _DELETION_ROW)
    deletion = deletion.on_conflict_do_update(
        index_elements=key,
        set_={"deleted_at": deletion.excluded.deleted_at, "seq": deletion.excluded.seq},
        where=t.c.deleted_at.is_(None),
    )
    s = gateway_sessions
    session = insert(s, _SESSION_ROW)
    session = session.on_conflict_do_update(
        index_elements=[s.c.gateway, s.c.session],
        set_={
            "status": session.excluded.status,
            "changed_at": session.excluded.changed_at,
            "updated_at": session.excluded.updated_at,
        },
        where=s.c.changed_at <= session.excluded.changed_at,
    )
    return _Statements(
        *(
            _Prepared.of(stmt, dialect)
            for stmt in (message_upsert(False), message_upsert(True), deletion, session)
        )
    )


@dataclass(frozen=True)
class _Prepared:
    """A statement compiled once, run as the driver's SQL.

    SQLAlchemy caches no compiled form of an upsert (ON CONFLICT), and compiling one
    costs more than running it; these are the package's own constant statements.
    """

    sql: str
    constants: dict[str, Any]  # the values compiled into it (a literal '' …)
    order: tuple[str, ...] | None  # SQLite's positional parameters, by name

    @classmethod
    def of(cls, stmt: Any, dialect: str) -> _Prepared:
        # The drivers' own dialects: their placeholders (pyformat for psycopg, qmark).
        engine_dialect: sa.Dialect = (
            postgresql.psycopg.dialect()  # type: ignore[no-untyped-call]
            if dialect == "postgresql"
            else sqlite.dialect()
        )
        compiled = stmt.compile(dialect=engine_dialect)
        constants = {k: v for k, v in compiled.construct_params().items() if v is not None}
        order = tuple(compiled.positiontup) if compiled.positiontup is not None else None
        return cls(compiled.string, constants, order)

    def params(self, rows: list[dict[str, Any]]) -> Any:
        """The driver's parameters for `rows`: one JSON array (PostgreSQL), or a tuple per row."""
        if self.order is None:
            text = json.dumps(rows, default=_json_value, ensure_ascii=False, allow_nan=False)
            return {**self.constants, "rows": text}
        return [
            tuple(_sqlite_value(row[n]) if n in row else self.constants[n] for n in self.order)
            for row in rows
        ]


def _sqlite_value(value: Any) -> Any:
    # As SQLAlchemy stores an instant on SQLite (schema.UTCDateTime): naive UTC text.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


_STATEMENTS = {name: _statements(name) for name in ("postgresql", "sqlite")}
_PG_LOCK = "SELECT pg_advisory_xact_lock(%s)"
_SQLITE_MAX_SEQ = "SELECT coalesce(max(seq), 0) FROM gateway_inbox"


def _message_row(event: InboxMessage, seq: int) -> dict[str, Any]:
    media = event.media
    return {
        "seq": seq,
        "gateway": event.gateway,
        "chat_jid": event.chat_jid,
        "message_id": event.message_id,
        "sender": event.sender,
        "sender_pn": event.sender_pn,
        "sender_name": event.sender_name,
        "content": event.content,
        "sent_at": event.sent_at,
        "from_me": event.from_me,
        "media_type": event.media_type or None,
        "media_url": media.url if media else None,
        "media_mimetype": media.mimetype if media else None,
        "filename": media.filename if media else None,
        "file_sha256": media.sha256 if media else None,
        "file_length": media.length if media else None,
        # When it was edited: the edit's own time (WhatsApp's), which orders edits.
        "edited_at": datetime.fromtimestamp(event.sent_at, UTC) if event.edited else None,
    }


def _deletion_row(event: InboxDeletion, seq: int) -> dict[str, Any]:
    return {
        "seq": seq,
        "gateway": event.gateway,
        "chat_jid": event.chat_jid,
        "message_id": event.message_id,
        "sender": "",
        "content": None,
        "sent_at": event.deleted_at,
        "deleted_at": datetime.fromtimestamp(event.deleted_at, UTC),
    }


def write_events(conn: Connection, events: Sequence[Event]) -> None:
    """Store `events` in the transaction `conn` is in, sequencing their rows in order.

    Takes the sequencer's lock (released by the caller's COMMIT or ROLLBACK) first.
    """
    if not events:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.exec_driver_sql(_PG_LOCK, (PG_SEQ_LOCK,))
        base = 0  # each statement adds its rows' places to the highest seq it sees
    else:
        base = int(conn.exec_driver_sql(_SQLITE_MAX_SEQ).scalar_one())
    for stmt, rows in _runs(dialect, events, base):
        conn.exec_driver_sql(stmt.sql, stmt.params(rows))


def _runs(
    dialect: str, events: Sequence[Event], seq: int
) -> list[tuple[_Prepared, list[dict[str, Any]]]]:
    """The statements storing `events`, each with its rows; rows numbered from `seq` + 1
    (on PostgreSQL, from 1 in each statement)."""
    statements = _STATEMENTS[dialect]
    now = datetime.now(UTC)
    # Consecutive events of one kind go in one statement; a key seen twice in a run
    # starts the next run, so every event is applied after the ones before it.
    runs: list[tuple[_Prepared, list[dict[str, Any]]]] = []
    keys: set[tuple[str, str]] = set()
    for event in events:
        if isinstance(event, SessionStatus):
            stmt = statements.session
            row: dict[str, Any] = {
                "gateway": event.gateway,
                "session": event.session,
                "status": event.status,
                "changed_at": datetime.fromtimestamp(event.at, UTC),
                "updated_at": now,
            }
            key = ("\x00session", f"{event.gateway}\x00{event.session}")
        else:
            seq += 1
            if isinstance(event, InboxDeletion):
                stmt, row = statements.deletion, _deletion_row(event, seq)
            else:
                stmt = statements.edit if event.edited else statements.message
                row = _message_row(event, seq)
            key = (event.chat_jid, event.message_id)
        if not runs or runs[-1][0] is not stmt or key in keys:
            runs.append((stmt, []))
            keys = set()
            if dialect == "postgresql" and not isinstance(event, SessionStatus):
                seq = 1  # places within the run
                row["seq"] = seq
        runs[-1][1].append(row)
        keys.add(key)
    return runs


# -- the writer ---------------------------------------------------------------------------


@dataclass
class _Request:
    """Events to commit together, and who waits: a thread's future or an event loop's."""

    events: list[Event]
    future: Future[None] | None = None
    waiter: asyncio.Future[None] | None = None

    def settle(self, error: BaseException | None) -> None:
        """Tell a thread's future (an event loop's is told by `_settle`, in its loop)."""
        if self.future is not None:
            if error is None:
                self.future.set_result(None)
            else:
                self.future.set_exception(error)


def _settle(outcomes: list[tuple[asyncio.Future[None], BaseException | None]]) -> None:
    """In the event loop: each waiter's outcome (one wake-up of the loop per batch)."""
    for waiter, error in outcomes:
        if waiter.done():  # the request was given up (the client went away)
            continue
        if error is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(error)


_STOP = object()


@dataclass
class WriterStats:
    """What a writer did since it was made (for logs and the benchmark)."""

    batches: int = 0
    events: int = 0
    failed_batches: int = 0
    largest_batch: int = 0


class InboxWriter:
    """Stores events in group commits: `submit` returns a future resolved after COMMIT.

    One thread (started by the first `submit`, ended after `idle` seconds without work)
    takes every request waiting, up to `max_batch` events, and commits them in one
    transaction. A failed transaction fails every request in it, and none of its rows is
    kept; when the database refused a value, each request is tried again alone, so only
    the one holding it fails. `close()` stores what was submitted, then stops; safe twice.
    """

    def __init__(
        self,
        store: ReviewStore,
        *,
        max_batch: int = MAX_BATCH,
        idle: float = IDLE_SECONDS,
        durable: bool = True,
    ) -> None:
        """`durable`: on SQLite, sync the write-ahead log at each commit (survives a power
        cut, not only a crash of the process)."""
        self.store = store
        self.max_batch = max_batch
        self.idle = idle
        self.durable = durable
        self.stats = WriterStats()
        self._queue: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pending = 0  # requests submitted and not yet taken by the thread
        self._closed = False
        self._conn: Connection | None = None
        self._raw: PoolProxiedConnection | None = None

    def submit(self, events: Sequence[Event]) -> Future[None]:
        """Queue `events` (already `checked`) for the next commit; the future says how it went."""
        future: Future[None] = Future()
        self._put(_Request(list(events), future=future))
        return future

    async def commit(self, events: Sequence[Event]) -> None:
        """`submit` for a coroutine: returns once the events are committed (or raises)."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._put(_Request(list(events), waiter=waiter))
        await waiter

    def _put(self, request: _Request) -> None:
        with self._lock:
            if self._closed:
                raise InboxClosed("the webhook inbox's writer is closed")
            self._pending += 1
            self._queue.put(request)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="inbox-writer", daemon=True)
                self._thread.start()

    def write(self, events: Sequence[Event], timeout: float | None = None) -> None:
        """Store `events` and return once they are committed (raises what the commit raised)."""
        self.submit(events).result(timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Commit what was submitted, then stop the thread; safe to call twice."""
        with self._lock:
            self._closed = True
            thread = self._thread
            if thread is not None:
                self._queue.put(_STOP)
        if thread is not None:
            thread.join(timeout)

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        idle_since = time.monotonic()
        try:
            while True:
                try:
                    first = self._queue.get(timeout=min(self.idle, _KEEP_CONNECTION))
                except queue.Empty:
                    # Quiet: the connection goes back to the pool, the thread ends later.
                    self._release()
                    with self._lock:
                        if self._pending == 0 and time.monotonic() - idle_since >= self.idle:
                            self._thread = None
                            return
                    continue
                if first is _STOP:
                    return
                batch = self._take(first)
                if batch:
                    self._commit(batch)
                idle_since = time.monotonic()
        finally:
            self._release()

    def _take(self, first: object) -> list[_Request]:
        """The first request and every one waiting behind it, up to `max_batch` events."""
        assert isinstance(first, _Request)
        batch = [first]
        size = len(first.events)
        stop = False
        while size < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                stop = True
                break
            assert isinstance(item, _Request)
            batch.append(item)
            size += len(item.events)
        with self._lock:
            self._pending -= len(batch)
        if stop:
            self._queue.put(_STOP)  # after this batch: the loop meets it next
        return batch

    def _commit(self, batch: list[_Request]) -> None:
        events = [event for request in batch for event in request.events]
        outcomes: list[tuple[_Request, BaseException | None]]
        fatal: BaseException | None = None
        try:
            self._transaction(events)
        except ReviewDataError as exc:
            self.stats.failed_batches += 1
            if len(batch) == 1:
                outcomes = [(batch[0], exc)]
            else:
                outcomes = [(request, self._alone(request)) for request in batch]
        except BaseException as exc:
            self.stats.failed_batches += 1
            failure = exc if isinstance(exc, ReviewDatabaseError) else _unexpected(exc)
            outcomes = [(request, failure) for request in batch]
            if not isinstance(exc, Exception):
                fatal = exc
        else:
            self.stats.batches += 1
            self.stats.events += len(events)
            self.stats.largest_batch = max(self.stats.largest_batch, len(events))
            outcomes = [(request, None) for request in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[Any]] = {}
        for request, error in outcomes:
            request.settle(error)
            if request.waiter is not None:
                by_loop.setdefault(request.waiter.get_loop(), []).append((request.waiter, error))
        for loop, settled in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                loop.call_soon_threadsafe(_settle, settled)
        if fatal is not None:
            raise fatal

    def _alone(self, request: _Request) -> BaseException | None:
        """A request of a batch the database refused, tried in its own transaction."""
        try:
            self._transaction(request.events)
        except ReviewDatabaseError as exc:
            return exc
        return None

    def _transaction(self, events: Sequence[Event]) -> None:
        try:
            if self.store.dialect == "postgresql":
                self._pg_transaction(events)
                return
            conn = self._connection()
            with wrap_exceptions(self.store.url), conn.begin():
                write_events(conn, events)
        except BaseException:
            self._release()  # a connection that failed is not trusted again
            raise

    def _pg_transaction(self, events: Sequence[Event]) -> None:
        """BEGIN, the lock, the statements and COMMIT sent at once (psycopg's pipeline): one
        round trip, where each would wait for its answer (and this thread for the GIL)."""
        if self._raw is None:
            with wrap_exceptions(self.store.url):
                self._raw = self.store.engine.raw_connection()
        pg: Any = self._raw.driver_connection
        try:
            with pg.pipeline(), pg.cursor() as cursor:
                cursor.execute(_PG_LOCK, (PG_SEQ_LOCK,))
                for stmt, rows in _runs("postgresql", events, 0):
                    cursor.execute(stmt.sql, stmt.params(rows))
                pg.commit()
        except psycopg.Error as exc:
            # As SQLAlchemy would have wrapped it, then as every database error is told.
            error = DBAPIError.instance(None, None, exc, psycopg.Error)
            if isinstance(error, DBAPIError):
                raise translate(error, self.store.url) from exc
            raise ReviewDatabaseError(f"review database {self.store.masked_url}: {exc}") from exc

    def _connection(self) -> Connection:
        if self._conn is None:
            with wrap_exceptions(self.store.url):
                conn = self.store.engine.connect()
                if conn.dialect.name == "sqlite":
                    _set_synchronous(conn, "FULL" if self.durable else "NORMAL")
            self._conn = conn
        return self._conn

    def _release(self) -> None:
        raw, self._raw = self._raw, None
        if raw is not None:
            raw.close()  # back to the pool, rolled back (or discarded when broken)
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.dialect.name == "sqlite" and not conn.invalidated:
                _set_synchronous(conn, "NORMAL")  # the pool's default
        except Exception:  # the connection is being given up anyway
            pass
        finally:
            conn.close()


def _set_synchronous(conn: Connection, mode: str) -> None:
    # On the driver's connection, outside any transaction (it runs in autocommit).
    dbapi = conn.connection.dbapi_connection
    assert dbapi is not None
    cursor = dbapi.cursor()
    try:
        cursor.execute(f"PRAGMA synchronous={mode}")
    finally:
        cursor.close()


def _unexpected(exc: BaseException) -> ReviewDatabaseError:
    log.error("❌ webhook inbox: unexpected error while storing a batch: %r", exc)
    return ReviewDatabaseError(f"the webhook inbox could not store a batch ({type(exc).__name__})")
