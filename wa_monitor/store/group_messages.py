"""The groups' messages in the review database: rows, media cursors, links and decisions.

SQLAlchemy Core over `group_messages`, `media_cursors`, `worker_marks` and
`photo_decisions`. Functions that take a `Connection` run inside the caller's
transaction (`ReviewStore.begin()`), so the linker saves rows, cursors, links and its
marks atomically: a crash between two steps loses nothing and repeats nothing.

Every statement takes its rows or keys in one go, as one JSON parameter (the text and
plan of a statement are the same for 1 row or 5,000; nothing is rendered per row), so a
step over 5,000 rows is a handful of statements, not one per row. The statements that
read by JSON (windows, upserts, link updates) are written per dialect below.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Connection

from wa_monitor.core.errors import PhotoDecisionError, UnknownPhoto
from wa_monitor.core.photo_links import Decision, Detached, DropPost, Moved, Photo
from wa_monitor.store.review_store import Cursor, ReviewStore
from wa_monitor.store.schema import (
    drop_submissions,
    group_messages,
    media_cursors,
    photo_decisions,
    qa_photo_reviews,
    worker_marks,
)

# The highest drop_submissions.id the linker has re-linked photos for.
LINKED_SUBMISSIONS = "linked_submissions"
# Clauses per statement when selecting by many (chat, sender, window) sets.
_CLAUSES = 100
# Rows per INSERT or UPDATE statement (one JSON parameter).
_ROWS = 5000
# Advisory lock id: one re-link of photos at a time (the linker, a reviewer's decision).
_PG_LINK_LOCK = 7_301_116
# What a fetch learnt from a file: forgotten when the row names another file.
_FETCHED = (
    "fetched_at", "sha256", "size", "content_type", "width", "height", "thumb_sha256",
    "phash", "phash_b0", "phash_b1", "phash_b2", "phash_b3", "duplicate_of", "barcodes",
    "hints", "last_error",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Window:
    """The messages of one sender in one group between two instants (both included)."""

    chat: str
    sender: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class LinkedRow:
    """A group_messages row as the linker sees it: the photo and where it is linked now."""

    id: int
    project: str | None
    photo: Photo
    drop_number: str | None
    round: int | None
    post_message_id: str | None
    link_reason: str
    review_id: uuid.UUID | None
    step: str | None


@dataclass(frozen=True, slots=True)
class Submission:
    """A drop_submissions row: one drop named by one post."""

    id: int
    project: str
    post: DropPost


def _insert(conn: Connection, table: sa.Table) -> Any:
    if conn.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def lock_links(conn: Connection) -> None:
    """Serialise re-links: the linker's step and a reviewer's decision never interleave.

    On SQLite the write transaction (BEGIN IMMEDIATE) already does it.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_LINK_LOCK})


# -- cursors and marks ------------------------------------------------------------------


def load_media_cursors(store: ReviewStore) -> dict[str, Cursor]:
    """The media reader's cursor of each group (apart from the scan's)."""
    t = media_cursors
    with store.read() as conn:
        rows = conn.execute(sa.select(t.c.chat_jid, t.c.last_rowid, t.c.anchor)).all()
    return {jid: Cursor(int(rowid), anchor) for jid, rowid, anchor in rows}


def save_media_cursors(conn: Connection, cursors: Mapping[str, Cursor], now: datetime) -> None:
    if not cursors:
        return
    rows = [
        {"chat_jid": jid, "last_rowid": c.last_rowid, "anchor": c.anchor, "updated_at": now}
        for jid, c in cursors.items()
    ]
    stmt = _insert(conn, media_cursors)
    stmt = stmt.on_conflict_do_update(
        index_elements=["chat_jid"],
        set_={
            "last_rowid": stmt.excluded.last_rowid,
            "anchor": stmt.excluded.anchor,
            "updated_at": stmt.excluded.updated_at,
        },
    )
    conn.execute(stmt, rows)


def get_mark(conn: Connection, name: str) -> int:
    """A worker mark's value; 0 when it was never set."""
    value = conn.execute(
        sa.select(worker_marks.c.value).where(worker_marks.c.name == name)
    ).scalar()
    return int(value or 0)


def get_marks(conn: Connection, names: Iterable[str]) -> dict[str, int]:
    """The values of these worker marks that are set (one statement)."""
    t = worker_marks
    query = sa.select(t.c.name, t.c.value).where(_one_of(conn, t.c.name, names))
    return {name: int(value) for name, value in conn.execute(query)}


def set_mark(conn: Connection, name: str, value: int, now: datetime) -> None:
    set_marks(conn, {name: value}, now)


def set_marks(conn: Connection, values: Mapping[str, int], now: datetime) -> None:
    """Set worker marks (one statement)."""
    if not values:
        return
    rows = [{"name": n, "value": v, "updated_at": now} for n, v in sorted(values.items())]
    stmt = _insert(conn, worker_marks)
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
    )
    conn.execute(stmt, rows)


# -- rows -------------------------------------------------------------------------------


# Rows travel as one JSON parameter per statement: its text (and plan) is the same for 1
# row or 5,000, nothing is compiled per row, and PostgreSQL's change-notification
# trigger fires once (it is per statement). The columns a new row is given:
_NEW_COLUMNS = (
    "chat_jid", "message_id", "project", "sender", "sender_name", "posted_at", "content",
    "media_type", "filename", "file_sha256", "file_length", "status", "next_attempt_at",
    "drop_number", "round", "post_message_id", "link_reason", "review_id",
)  # fmt: skip
_PG_TYPES = {
    "posted_at": "timestamptz",
    "next_attempt_at": "timestamptz",
    "file_length": "bigint",
    "round": "integer",
    "review_id": "uuid",
}
_NEW_DEFAULTS = {"link_reason": "none"}
# A row already there changes only when it names another file: back to the fetch queue,
# and what was learnt from the old file is forgotten.
_ON_NEW_FILE = (
    "file_sha256 = excluded.file_sha256, file_length = excluded.file_length, "
    "filename = excluded.filename, status = excluded.status, "
    "next_attempt_at = excluded.next_attempt_at, attempts = 0, updated_at = :now, "
    + ", ".join(f"{c} = NULL" for c in _FETCHED)
)
_COLUMN_LIST = ", ".join(_NEW_COLUMNS)
_PG_UPSERT = sa.text(
    f"INSERT INTO group_messages ({_COLUMN_LIST}, created_at, updated_at) "  # noqa: S608
    f"SELECT {', '.join(f'r.{c}' for c in _NEW_COLUMNS)}, :now, :now "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS r("
    + ", ".join(f"{c} {_PG_TYPES.get(c, 'text')}" for c in _NEW_COLUMNS)
    + ") ON CONFLICT (chat_jid, message_id) DO UPDATE SET "
    + _ON_NEW_FILE
    + " WHERE group_messages.file_sha256 IS DISTINCT FROM excluded.file_sha256"
)
_SQLITE_UPSERT = sa.text(
    f"INSERT INTO group_messages ({_COLUMN_LIST}, created_at, updated_at) "  # noqa: S608
    + "SELECT "
    + ", ".join(f"json_extract(value, '$.{c}')" for c in _NEW_COLUMNS)
    # WHERE true: SQLite's parser needs it between a SELECT and ON CONFLICT.
    + ", :now, :now FROM json_each(:rows) WHERE true "
    + "ON CONFLICT (chat_jid, message_id) DO UPDATE SET "
    + _ON_NEW_FILE
    + " WHERE group_messages.file_sha256 IS NOT excluded.file_sha256"
)
_PG_LINKS = sa.text(
    "UPDATE group_messages AS g SET drop_number = v.drop_number, round = v.round, "
    "post_message_id = v.post_message_id, link_reason = v.link_reason, "
    "review_id = v.review_id, updated_at = :now "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v(id bigint, drop_number text, "
    "round integer, post_message_id text, link_reason text, review_id uuid) "
    "WHERE g.id = v.id"
)
_SQLITE_LINKS = sa.text(
    "UPDATE group_messages SET drop_number = json_extract(v.value, '$.drop_number'), "
    "round = json_extract(v.value, '$.round'), "
    "post_message_id = json_extract(v.value, '$.post_message_id'), "
    "link_reason = json_extract(v.value, '$.link_reason'), "
    "review_id = json_extract(v.value, '$.review_id'), updated_at = :now "
    "FROM json_each(:rows) AS v WHERE group_messages.id = json_extract(v.value, '$.id')"
)


def _json_value(on_pg: bool) -> Any:
    def encode(value: Any) -> Any:
        # As SQLAlchemy's types store them on each backend (UTCDateTime, Uuid), so rows
        # written either way compare and sort the same.
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise ValueError("naive datetime given for an instant column")
            if on_pg:
                return value.isoformat()
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        if isinstance(value, uuid.UUID):
            return str(value) if on_pg else value.hex
        raise TypeError(f"cannot send {type(value).__name__} as JSON")

    return encode


def _rows_json(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> str:
    on_pg = conn.dialect.name == "postgresql"
    return json.dumps(list(rows), default=_json_value(on_pg), ensure_ascii=False)


def _now(conn: Connection, now: datetime) -> Any:
    return now if conn.dialect.name == "postgresql" else _json_value(False)(now)


def upsert_messages(conn: Connection, rows: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Insert new rows; a row already there is left as it is (its link, step and fetch
    state included) unless it names another file (file_sha256): then it goes back to
    the fetch queue, and what was learnt from the old file is forgotten.

    Each row: chat_jid, message_id, project, sender, sender_name, posted_at, content,
    media_type, filename, file_sha256, file_length, status, next_attempt_at, and the
    link a new row is stored with (drop_number, round, post_message_id, link_reason,
    review_id; unlinked when left out). No two rows may share a (chat_jid, message_id).
    """
    if not rows:
        return
    stmt = _PG_UPSERT if conn.dialect.name == "postgresql" else _SQLITE_UPSERT
    for chunk in _chunks(list(rows), _ROWS):
        values = [{c: row.get(c, _NEW_DEFAULTS.get(c)) for c in _NEW_COLUMNS} for row in chunk]
        conn.execute(stmt, {"rows": _rows_json(conn, values), "now": _now(conn, now)})


def _linked(row: Any) -> LinkedRow:
    return LinkedRow(
        id=int(row.id),
        project=row.project,
        photo=Photo(
            chat=row.chat_jid,
            key=row.message_id,
            sender=row.sender,
            posted=row.posted_at,
            caption=row.content,
            media_type=row.media_type,
        ),
        drop_number=row.drop_number,
        round=row.round,
        post_message_id=row.post_message_id,
        link_reason=row.link_reason,
        review_id=row.review_id,
        step=row.step,
    )


_LINKED_COLUMNS = (
    group_messages.c.id,
    group_messages.c.project,
    group_messages.c.chat_jid,
    group_messages.c.message_id,
    group_messages.c.sender,
    group_messages.c.posted_at,
    group_messages.c.content,
    group_messages.c.media_type,
    group_messages.c.drop_number,
    group_messages.c.round,
    group_messages.c.post_message_id,
    group_messages.c.link_reason,
    group_messages.c.review_id,
    group_messages.c.step,
)


def _one_of(conn: Connection, column: Any, values: Iterable[str]) -> Any:
    """`column IN (values)`, the values as one JSON parameter: the statement's text is the
    same for 1 value or 10,000 (no list of parameters to render, no limit on them)."""
    data = sa.literal(json.dumps(sorted(set(values)), ensure_ascii=False))
    if conn.dialect.name == "postgresql":
        table = sa.func.jsonb_array_elements_text(sa.cast(data, JSONB)).table_valued("value")
    else:
        table = sa.func.json_each(data).table_valued("value")
    return column.in_(sa.select(table.c.value))


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _windows_query(table: sa.Table, time_column: str, columns: Sequence[Any], on_pg: bool) -> Any:
    """Rows of `table` in any of the windows given as one JSON parameter (:w), joined
    window first so each window is one range of the (chat_jid, sender, time) index."""
    names = ", ".join(f"t.{c.name}" for c in columns)
    if on_pg:
        text = (
            f"SELECT {names} FROM jsonb_to_recordset(CAST(:w AS jsonb)) "  # noqa: S608
            "AS w(chat text, sender text, start timestamptz, stop timestamptz) "
            f"JOIN {table.name} AS t ON t.chat_jid = w.chat AND t.sender = w.sender "
            f"AND t.{time_column} >= w.start AND t.{time_column} <= w.stop"
        )
    else:
        # CROSS JOIN: SQLite keeps that order, so each window is one index range.
        text = (
            f"SELECT {names} FROM json_each(:w) AS w CROSS JOIN {table.name} AS t "  # noqa: S608
            "ON t.chat_jid = json_extract(w.value, '$.chat') "
            "AND t.sender = json_extract(w.value, '$.sender') "
            f"AND t.{time_column} >= json_extract(w.value, '$.start') "
            f"AND t.{time_column} <= json_extract(w.value, '$.stop')"
        )
    return sa.text(text).columns(*columns)


def _windows_json(conn: Connection, windows: Sequence[Window]) -> str:
    return _rows_json(
        conn,
        [{"chat": w.chat, "sender": w.sender, "start": w.start, "stop": w.end} for w in windows],
    )


def rows_in_windows(conn: Connection, windows: Sequence[Window]) -> list[LinkedRow]:
    """The rows of each window's sender and group in its time span (the sender index).

    Windows of one sender and group must not overlap (a row would come twice).
    """
    if not windows:
        return []
    on_pg = conn.dialect.name == "postgresql"
    query = _windows_query(group_messages, "posted_at", _LINKED_COLUMNS, on_pg)
    found: list[LinkedRow] = []
    for chunk in _chunks(windows, _ROWS):
        found.extend(_linked(r) for r in conn.execute(query, {"w": _windows_json(conn, chunk)}))
    return found


def rows_with_text(
    conn: Connection,
    senders: Iterable[tuple[str, str]],
    literal: Mapping[str, str | None],
    before: Mapping[str, datetime] | None = None,
) -> list[LinkedRow]:
    """The rows of (group, sender) with content that may name a drop (posted before
    `before[group]` when given; any time otherwise).

    `literal`: per group, the text every drop-naming message contains (its pattern's
    required literal), None when the pattern requires none.
    """
    t = group_messages
    pairs = sorted(set(senders))
    found: list[LinkedRow] = []
    for chunk in _chunks(pairs, _CLAUSES):
        clauses = []
        for chat, sender in chunk:
            text = literal.get(chat)
            has_text = (
                t.c.content.ilike(f"%{_like_escape(text)}%", escape="\\")
                if text
                else (sa.func.length(t.c.content) > 0)
            )
            clause = sa.and_(t.c.chat_jid == chat, t.c.sender == sender, has_text)
            if before is not None and chat in before:
                clause = sa.and_(clause, t.c.posted_at < before[chat])
            clauses.append(clause)
        found.extend(
            _linked(r) for r in conn.execute(sa.select(*_LINKED_COLUMNS).where(sa.or_(*clauses)))
        )
    return found


def rows_by_key(conn: Connection, keys: Iterable[tuple[str, str]]) -> list[LinkedRow]:
    """The rows of these (chat_jid, message_id) keys that are present."""
    t = group_messages
    found: list[LinkedRow] = []
    for chat, ids in _by_chat(keys):
        query = sa.select(*_LINKED_COLUMNS).where(
            t.c.chat_jid == chat, _one_of(conn, t.c.message_id, ids)
        )
        found.extend(_linked(r) for r in conn.execute(query))
    return found


def _by_chat(keys: Iterable[tuple[str, str]]) -> Iterable[tuple[str, Sequence[str]]]:
    """(chat, its message ids) for (chat_jid, message_id) keys: the unique index's order."""
    ids: dict[str, set[str]] = defaultdict(set)
    for chat, message_id in keys:
        ids[chat].add(message_id)
    for chat, wanted in sorted(ids.items()):
        yield chat, sorted(wanted)


def rows_of_group(conn: Connection, chat: str, after_id: int, limit: int) -> list[LinkedRow]:
    """A group's rows with id > `after_id`, by id, at most `limit` (a re-link pass)."""
    t = group_messages
    query = (
        sa.select(*_LINKED_COLUMNS)
        .where(t.c.chat_jid == chat, t.c.id > after_id)
        .order_by(t.c.id)
        .limit(limit)
    )
    return [_linked(r) for r in conn.execute(query)]


def row_by_id(conn: Connection, photo_id: int) -> LinkedRow | None:
    row = conn.execute(sa.select(*_LINKED_COLUMNS).where(group_messages.c.id == photo_id)).first()
    return None if row is None else _linked(row)


def write_links(conn: Connection, changes: Sequence[Mapping[str, Any]], now: datetime) -> None:
    """Write changed links (each: id, drop_number, round, post_message_id, link_reason,
    review_id); the caller passes only rows whose link changed."""
    if not changes:
        return
    stmt = _PG_LINKS if conn.dialect.name == "postgresql" else _SQLITE_LINKS
    keys = ("id", "drop_number", "round", "post_message_id", "link_reason", "review_id")
    for chunk in _chunks(list(changes), _ROWS):
        values = [{k: c[k] for k in keys} for c in chunk]
        conn.execute(stmt, {"rows": _rows_json(conn, values), "now": _now(conn, now)})


def set_step(conn: Connection, photo_id: int, step: str | None, now: datetime) -> None:
    conn.execute(
        sa.update(group_messages)
        .where(group_messages.c.id == photo_id)
        .values(step=step, updated_at=now)
    )


# -- drop posts -------------------------------------------------------------------------


def _submission(row: Any) -> Submission:
    return Submission(
        id=int(row.id),
        project=row.project,
        post=DropPost(row.chat_jid, row.message_id, row.sender, row.message_time, row.drop_number),
    )


_SUBMISSION_COLUMNS = (
    drop_submissions.c.id,
    drop_submissions.c.project,
    drop_submissions.c.chat_jid,
    drop_submissions.c.message_id,
    drop_submissions.c.sender,
    drop_submissions.c.message_time,
    drop_submissions.c.drop_number,
)


def submissions_after(conn: Connection, after: int, limit: int) -> list[Submission]:
    """The drop_submissions rows with id > `after`, oldest first, at most `limit`."""
    t = drop_submissions
    query = sa.select(*_SUBMISSION_COLUMNS).where(t.c.id > after).order_by(t.c.id).limit(limit)
    return [_submission(r) for r in conn.execute(query)]


def posts_in_windows(conn: Connection, windows: Sequence[Window]) -> list[Submission]:
    """The drop posts of each window's sender and group in its time span.

    drop_submissions has no (chat, sender, time) index: one pass over each group's
    posts between the earliest and latest window (its unique index's chat_jid prefix),
    then the windows are applied here, rather than one pass per window.
    """
    t = drop_submissions
    by_chat: dict[str, list[Window]] = defaultdict(list)
    for w in windows:
        by_chat[w.chat].append(w)
    found: list[Submission] = []
    for chat, owned in sorted(by_chat.items()):
        spans: dict[str, list[Window]] = defaultdict(list)
        for w in owned:
            spans[w.sender].append(w)
        query = sa.select(*_SUBMISSION_COLUMNS).where(
            t.c.chat_jid == chat,
            _one_of(conn, t.c.sender, spans),
            t.c.message_time >= min(w.start for w in owned),
            t.c.message_time <= max(w.end for w in owned),
        )
        for row in conn.execute(query):
            posted = row.message_time
            if any(w.start <= posted <= w.end for w in spans[row.sender]):
                found.append(_submission(row))
    return found


def posts_of_drops(conn: Connection, drops: Iterable[tuple[str, str, str]]) -> list[Submission]:
    """Every post of each (project, chat_jid, drop_number), whoever posted it (its rounds)."""
    t = drop_submissions
    by_group: dict[tuple[str, str], set[str]] = {}
    for project, chat, drop in drops:
        by_group.setdefault((project, chat), set()).add(drop)
    found: list[Submission] = []
    for (project, chat), numbers in sorted(by_group.items()):
        query = sa.select(*_SUBMISSION_COLUMNS).where(
            t.c.project == project, _one_of(conn, t.c.drop_number, numbers), t.c.chat_jid == chat
        )
        found.extend(_submission(r) for r in conn.execute(query))
    return found


def drop_known(conn: Connection, chat: str, drop_number: str) -> bool:
    t = drop_submissions
    query = sa.select(t.c.id).where(t.c.chat_jid == chat, t.c.drop_number == drop_number)
    return conn.execute(query.limit(1)).first() is not None


def review_ids(
    conn: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], uuid.UUID]:
    """qa_photo_reviews.id of each (project, drop_number) that has a review."""
    t = qa_photo_reviews
    by_project: dict[str, set[str]] = {}
    for project, drop in keys:
        by_project.setdefault(project, set()).add(drop)
    found: dict[tuple[str, str], uuid.UUID] = {}
    for project, drops in sorted(by_project.items()):
        query = sa.select(t.c.project, t.c.drop_number, t.c.id).where(
            t.c.project == project, _one_of(conn, t.c.drop_number, drops)
        )
        for p, d, rid in conn.execute(query):
            found[(p, d)] = rid
    return found


# -- decisions --------------------------------------------------------------------------


def decisions_for(conn: Connection, keys: Iterable[tuple[str, str]]) -> list[Decision]:
    """Reviewers' moves and detaches of these photos, as the linking rules take them."""
    t = photo_decisions
    found: list[Decision] = []
    for chat, ids in _by_chat(keys):
        query = sa.select(t).where(
            t.c.chat_jid == chat,
            _one_of(conn, t.c.message_id, ids),
            t.c.action.in_(("moved", "detached")),
        )
        for r in conn.execute(query):
            if r.action == "moved":
                found.append(
                    Moved(r.chat_jid, r.message_id, r.at, r.drop_number, r.round, int(r.id))
                )
            else:
                found.append(Detached(r.chat_jid, r.message_id, r.at, int(r.id)))
    return found


def moved_to(conn: Connection, drops: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """The photos a reviewer ever moved to one of these (chat_jid, drop_number)."""
    t = photo_decisions
    found: set[tuple[str, str]] = set()
    for chat, numbers in _by_chat(drops):
        query = sa.select(t.c.chat_jid, t.c.message_id).where(
            t.c.chat_jid == chat, t.c.action == "moved", _one_of(conn, t.c.drop_number, numbers)
        )
        found.update((c, m) for c, m in conn.execute(query))
    return found


def add_decision(
    conn: Connection,
    *,
    chat_jid: str,
    message_id: str,
    action: str,
    actor: str,
    at: datetime,
    drop_number: str | None = None,
    round: int | None = None,
    step: str | None = None,
) -> int:
    """Record a reviewer's decision on a photo; returns its id (its order among equals)."""
    result = conn.execute(
        sa.insert(photo_decisions)
        .values(
            chat_jid=chat_jid,
            message_id=message_id,
            action=action,
            drop_number=drop_number,
            round=round,
            step=step,
            actor=actor,
            at=at,
        )
        .returning(photo_decisions.c.id)
    )
    return int(result.scalar_one())


# A hint decision's audit row: action "hint-confirmed", "hint-dismissed" or "hint-cleared"
# (action is String(20), too short for the kind as well), the hint's kind in `step`.
HINT_ACTIONS = {"confirmed": "hint-confirmed", "dismissed": "hint-dismissed", None: "hint-cleared"}


def set_hint_state(
    conn: Connection, photo_id: int, kind: str, state: str | None, actor: str, now: datetime
) -> None:
    """Record a reviewer's verdict on the photo's `kind` hint, for every reviewer.

    Kept in the hint entry itself (`state`, `by`, `at`; None takes them away), so it
    lives and dies with the hints: the media worker rewrites them only when the row
    names another file (the old verdicts were about the old file). Audited in
    photo_decisions. The row is locked while read and rewritten, so two verdicts on
    two hints of one photo never undo each other. Raises UnknownPhoto for no such
    media row, PhotoDecisionError (naming the kinds it has) for a kind it has no hint of.
    """
    if state not in HINT_ACTIONS:
        raise PhotoDecisionError(f"{state!r} is not a hint state: confirmed, dismissed or null")
    t = group_messages
    query = sa.select(t.c.chat_jid, t.c.message_id, t.c.hints).where(
        t.c.id == photo_id, t.c.media_type != "text"
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).first()
    if row is None:
        raise UnknownPhoto(f"no photo {photo_id}")
    hints = [dict(h) if isinstance(h, dict) else h for h in _list(row.hints)]
    found = [h for h in hints if isinstance(h, dict) and h.get("kind") == kind]
    if not found:
        raise PhotoDecisionError(no_hint_message(photo_id, kind, hint_kinds(hints)))
    for h in found:
        if state is None:
            for key in ("state", "by", "at"):
                h.pop(key, None)
        else:
            h.update(state=state, by=actor, at=now.astimezone(UTC).isoformat())
    conn.execute(sa.update(t).where(t.c.id == photo_id).values(hints=hints, updated_at=now))
    add_decision(
        conn,
        chat_jid=row.chat_jid,
        message_id=row.message_id,
        action=HINT_ACTIONS[state],
        actor=actor,
        at=now,
        step=kind,
    )


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def hint_kinds(hints: Any) -> list[str]:
    """The kinds of the hints of a hints column, in order, each once."""
    kinds = (h.get("kind") for h in _list(hints) if isinstance(h, dict))
    return list(dict.fromkeys(k for k in kinds if isinstance(k, str)))


def no_hint_message(photo_id: int, kind: str, kinds: Sequence[str]) -> str:
    has = f"its hints are {', '.join(kinds)}" if kinds else "it has no hints"
    return f"photo {photo_id} has no {kind!r:.60} hint; {has}"


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def utcnow() -> datetime:
    return datetime.now(UTC)


def barcodes_of(conn: Connection, photo_id: int) -> list[Any]:
    """The barcodes the media worker read from a photo (none until it was fetched)."""
    found = conn.execute(
        sa.select(group_messages.c.barcodes).where(group_messages.c.id == photo_id)
    ).scalar()
    return list(found) if isinstance(found, list) else []
