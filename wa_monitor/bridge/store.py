"""The bridge's messages.db, written as the upstream Go bridge writes it, plus what it loses.

The `chats` and `messages` tables are exactly the upstream bridge's (readers of either
store need no change): rows are written with `INSERT OR REPLACE`, so a message stored
again gets a new, higher rowid; `timestamp` is go-sqlite3's text in the host's zone
(`2025-11-09 19:15:30+02:00`); the default rollback journal, a 5 s busy timeout and one
short transaction per event. Added beside them:

- `deleted_messages` (id, chat_jid, deleted_at): messages deleted for everyone. The
  deleted message's row is stored again in the same transaction, so its rowid rises and
  a rowid cursor sees the deletion together with the row.
- `media_info` (id, chat_jid, message): the media part of each media message, serialised,
  enough to download and decrypt it again later.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Final

from wa_monitor.core.errors import WaMonitorError

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS chats (
    jid TEXT PRIMARY KEY,
    name TEXT,
    last_message_time TIMESTAMP
);
CREATE TABLE IF NOT EXISTS messages (
    id TEXT,
    chat_jid TEXT,
    sender TEXT,
    content TEXT,
    timestamp TIMESTAMP,
    is_from_me BOOLEAN,
    media_type TEXT,
    filename TEXT,
    url TEXT,
    media_key BLOB,
    file_sha256 BLOB,
    file_enc_sha256 BLOB,
    file_length INTEGER,
    PRIMARY KEY (id, chat_jid),
    FOREIGN KEY (chat_jid) REFERENCES chats(jid)
);
CREATE TABLE IF NOT EXISTS deleted_messages (
    id TEXT,
    chat_jid TEXT,
    deleted_at TIMESTAMP,
    PRIMARY KEY (id, chat_jid)
);
CREATE TABLE IF NOT EXISTS media_info (
    id TEXT,
    chat_jid TEXT,
    message BLOB,
    PRIMARY KEY (id, chat_jid)
);
"""

BUSY_TIMEOUT: Final = 5.0
_FRACTION: Final = re.compile(r"(\.\d{6})\d+")
_INSERT_MESSAGE: Final = (
    "INSERT OR REPLACE INTO messages (id, chat_jid, sender, content, timestamp, is_from_me, "
    "media_type, filename, url, media_key, file_sha256, file_enc_sha256, file_length) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_MESSAGE: Final = (
    "SELECT id, chat_jid, sender, content, timestamp, is_from_me, media_type, filename, url, "
    "media_key, file_sha256, file_enc_sha256, file_length FROM messages "
    "WHERE id = ? AND chat_jid = ?"
)


class BridgeStoreWriteError(WaMonitorError):
    """messages.db cannot be created or written (the reason and the file are in the message)."""


@dataclass(frozen=True)
class MessageRow:
    """One row of `messages`; `timestamp` is aware (written in the host's zone)."""

    id: str
    chat_jid: str
    sender: str
    content: str
    timestamp: datetime
    is_from_me: bool = False
    media_type: str = ""
    filename: str = ""
    url: str = ""
    media_key: bytes = b""
    file_sha256: bytes = b""
    file_enc_sha256: bytes = b""
    file_length: int = 0


@dataclass(frozen=True)
class StoredMessage:
    """A row read back: its values, as stored (timestamp as the text written)."""

    id: str
    chat_jid: str
    sender: str
    content: str | None
    timestamp: str
    is_from_me: bool
    media_type: str | None
    filename: str | None
    url: str | None
    media_key: bytes | None
    file_sha256: bytes | None
    file_enc_sha256: bytes | None
    file_length: int | None


def go_time(when: datetime, zone: tzinfo | None = None) -> str:
    """`when` as go-sqlite3 writes a time.Time: `2025-11-09 19:15:30+02:00`, in `zone`.

    `zone` None: the host's local zone (what the Go bridge uses). Fractions of a second
    appear only when there are some, without trailing zeros, as Go's `.999999999` does.
    """
    local = when.astimezone(zone)
    text = local.strftime("%Y-%m-%d %H:%M:%S")
    if local.microsecond:
        text += f".{local.microsecond:06d}".rstrip("0")
    offset = local.strftime("%z")  # +0200
    return f"{text}{offset[:3]}:{offset[3:]}"


class MessageStore:
    """messages.db of one bridge: every write one short transaction, safe across threads.

    neonize calls its event handlers on its own threads and the HTTP API runs on
    another: one connection, one lock.
    """

    def __init__(self, path: Path, *, zone: tzinfo | None = None) -> None:
        self.path = path
        self.zone = zone
        self._lock = threading.Lock()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(
                path, timeout=BUSY_TIMEOUT, isolation_level=None, check_same_thread=False
            )
            self._conn.executescript(SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise BridgeStoreWriteError(
                f"{path}: cannot create or open messages.db ({exc}); check that BRIDGE_STORE "
                "is a folder this user can write"
            ) from None

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise BridgeStoreWriteError(
                    f"{self.path}: cannot write messages.db ({exc})"
                ) from None
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    # -- writing ----------------------------------------------------------------------

    def store(
        self, row: MessageRow, *, chat_name: str | None = None, media: bytes | None = None
    ) -> None:
        """Store one message (again: INSERT OR REPLACE) and its chat; `media`: its media part."""
        with self._transaction() as conn:
            self._chat(conn, row.chat_jid, chat_name, row.timestamp)
            conn.execute(_INSERT_MESSAGE, self._values(row))
            if media is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO media_info (id, chat_jid, message) VALUES (?, ?, ?)",
                    (row.id, row.chat_jid, media),
                )

    def store_many(
        self, rows: list[tuple[MessageRow, bytes | None]], chat_name: str | None
    ) -> None:
        """Store a chat's batch of messages (a history sync) in one transaction."""
        if not rows:
            return
        with self._transaction() as conn:
            newest = max(row.timestamp for row, _ in rows)
            self._chat(conn, rows[0][0].chat_jid, chat_name, newest)
            for row, media in rows:
                conn.execute(_INSERT_MESSAGE, self._values(row))
                if media is not None:
                    conn.execute(
                        "INSERT OR REPLACE INTO media_info (id, chat_jid, message) "
                        "VALUES (?, ?, ?)",
                        (row.id, row.chat_jid, media),
                    )

    def edit(self, chat_jid: str, message_id: str, content: str, unseen: MessageRow) -> bool:
        """Replace a message's text with its edit (a new rowid); True if the message was known.

        A message never seen is stored as `unseen` (with the edited text), so a drop
        number an edit adds is still found.
        """
        with self._transaction() as conn:
            found = conn.execute(_SELECT_MESSAGE, (message_id, chat_jid)).fetchone()
            if found is None:
                self._chat(conn, chat_jid, None, unseen.timestamp)
                conn.execute(_INSERT_MESSAGE, self._values(replace(unseen, content=content)))
                return False
            values = list(found)
            values[3] = content
            conn.execute(_INSERT_MESSAGE, values)
            return True

    def delete(self, chat_jid: str, message_id: str, deleted_at: datetime) -> bool:
        """Record a deletion for everyone; True if the message was known (then stored again)."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO deleted_messages (id, chat_jid, deleted_at) "
                "VALUES (?, ?, ?)",
                (message_id, chat_jid, go_time(deleted_at, self.zone)),
            )
            found = conn.execute(_SELECT_MESSAGE, (message_id, chat_jid)).fetchone()
            if found is None:
                return False
            conn.execute(_INSERT_MESSAGE, tuple(found))
            return True

    def name_chat(self, chat_jid: str, name: str) -> None:
        """Record a chat's (group's) name, keeping its last message time."""
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO chats (jid, name) VALUES (?, ?) "
                "ON CONFLICT (jid) DO UPDATE SET name = excluded.name",
                (chat_jid, name),
            )

    def _chat(self, conn: sqlite3.Connection, jid: str, name: str | None, when: datetime) -> None:
        """Create or update the chat: a name given wins; the last message time only rises."""
        row = conn.execute(
            "SELECT name, last_message_time FROM chats WHERE jid = ?", (jid,)
        ).fetchone()
        stamp = go_time(when, self.zone)
        if row is None:
            conn.execute(
                "INSERT OR REPLACE INTO chats (jid, name, last_message_time) VALUES (?, ?, ?)",
                (jid, name, stamp),
            )
            return
        old_name, old_time = row
        last = _parsed(old_time)
        newer = last is None or when > last
        conn.execute(
            "INSERT OR REPLACE INTO chats (jid, name, last_message_time) VALUES (?, ?, ?)",
            (jid, name or old_name, stamp if newer else old_time),
        )

    def _values(self, row: MessageRow) -> tuple[object, ...]:
        return (
            row.id,
            row.chat_jid,
            row.sender,
            row.content,
            go_time(row.timestamp, self.zone),
            row.is_from_me,
            row.media_type,
            row.filename,
            row.url,
            row.media_key,
            row.file_sha256,
            row.file_enc_sha256,
            row.file_length,
        )

    # -- reading ----------------------------------------------------------------------

    def message(self, chat_jid: str, message_id: str) -> StoredMessage | None:
        """One stored message, or None."""
        with self._lock:
            found = self._conn.execute(_SELECT_MESSAGE, (message_id, chat_jid)).fetchone()
        if found is None:
            return None
        return StoredMessage(
            id=found[0],
            chat_jid=found[1],
            sender=found[2],
            content=found[3],
            timestamp=found[4],
            is_from_me=bool(found[5]),
            media_type=found[6],
            filename=found[7],
            url=found[8],
            media_key=found[9],
            file_sha256=found[10],
            file_enc_sha256=found[11],
            file_length=found[12],
        )

    def media(self, chat_jid: str, message_id: str) -> bytes | None:
        """The serialised media part of a stored media message, or None."""
        with self._lock:
            found = self._conn.execute(
                "SELECT message FROM media_info WHERE id = ? AND chat_jid = ?",
                (message_id, chat_jid),
            ).fetchone()
        return None if found is None or not isinstance(found[0], bytes) else found[0]

    def chat_name(self, chat_jid: str) -> str | None:
        with self._lock:
            found = self._conn.execute(
                "SELECT name FROM chats WHERE jid = ?", (chat_jid,)
            ).fetchone()
        return None if found is None or not found[0] else str(found[0])


def _parsed(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(_FRACTION.sub(r"\1", value.strip()))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None
