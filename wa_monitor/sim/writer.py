"""A bridge-format store writer: the bridge's schema, transactions and `INSERT OR REPLACE`."""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Final
from zoneinfo import ZoneInfo

from wa_monitor.sim.timestamps import format_bridge_timestamp, parse_bridge_timestamp
from wa_monitor.sim.values import DEFAULT_TZ, OUR_JID, Member, MessageRow

# -- schema ---------------------------------------------------------------------------

# Verbatim from the bridge (FIELD_NOTES §1): no extra index, no WAL.
MESSAGES_SCHEMA: Final = """
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
"""

LID_MAP_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS whatsmeow_lid_map (
    lid TEXT PRIMARY KEY,
    pn TEXT UNIQUE NOT NULL
);
"""

CONTACTS_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS whatsmeow_contacts (
    our_jid TEXT,
    their_jid TEXT,
    first_name TEXT,
    full_name TEXT,
    push_name TEXT,
    business_name TEXT,
    PRIMARY KEY (our_jid, their_jid)
);
"""

BUSY_TIMEOUT_S: Final = 5.0


_INSERT_MESSAGE: Final = (
    "INSERT OR REPLACE INTO messages (id, chat_jid, sender, content, timestamp, is_from_me, "
    "media_type, filename, url, media_key, file_sha256, file_enc_sha256, file_length) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_UPSERT_CHAT: Final = "INSERT OR REPLACE INTO chats (jid, name, last_message_time) VALUES (?, ?, ?)"


def create_bridge_store(
    messages_db: Path, whatsapp_db: Path | None = None, *, with_lid_map: bool = True
) -> None:
    """Create the bridge's tables in `messages_db` (and whatsmeow's in `whatsapp_db`) if missing.

    Args:
        messages_db: the bridge's `store/messages.db`; parent directories are created.
        whatsapp_db: the bridge's `store/whatsapp.db`, or None to skip it.
        with_lid_map: create `whatsmeow_lid_map` (older bridges lack it).
    """
    _run_script(messages_db, MESSAGES_SCHEMA)
    if whatsapp_db is not None:
        _run_script(whatsapp_db, CONTACTS_SCHEMA + (LID_MAP_SCHEMA if with_lid_map else ""))


def _run_script(path: Path, script: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
    try:
        conn.executescript(script)
    finally:
        conn.close()


class StoreWriter:
    """Writes a bridge store the way the bridge does: short transactions, INSERT OR REPLACE.

    The connection has a 5-second busy timeout, as the bridge's does. `bulk=True` trades
    crash safety for speed on this connection only (synchronous=OFF, journal kept in
    memory, a larger page cache): the file keeps the default rollback journal (never
    WAL) and locks exactly as before, so readers may run alongside.
    """

    def __init__(
        self,
        messages_db: Path,
        whatsapp_db: Path | None = None,
        *,
        tz: str = DEFAULT_TZ,
        with_lid_map: bool = True,
        bulk: bool = False,
        busy_timeout: float = BUSY_TIMEOUT_S,
    ) -> None:
        create_bridge_store(messages_db, whatsapp_db, with_lid_map=with_lid_map)
        self.messages_db = messages_db
        self.whatsapp_db = whatsapp_db
        self.zone = ZoneInfo(tz)
        # One thread at a time, but not always the creating one (the bulk generator writes
        # from a helper thread while it composes the next chunk).
        self._conn = sqlite3.connect(
            messages_db, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        self._conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        if bulk:
            self._conn.execute("PRAGMA synchronous = OFF")
            self._conn.execute("PRAGMA journal_mode = MEMORY")
            self._conn.execute("PRAGMA cache_size = -131072")
        self._busy_timeout = busy_timeout
        self._names: dict[str, str | None] = {}
        self._last: dict[str, str] = {}
        for jid, name, last in self._conn.execute("SELECT jid, name, last_message_time FROM chats"):
            self._names[jid] = name
            if isinstance(last, str):
                self._last[jid] = last
        self._closed = False

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._conn.close()

    def timestamp(self, when: datetime, nanos: int | None = None) -> str:
        """`when` as the bridge's timestamp text in this writer's zone."""
        return format_bridge_timestamp(when, self.zone, nanos)

    def add_chat(self, jid: str, name: str | None) -> None:
        """Remember a chat's name; its `chats` row is written with its first message."""
        self._names[jid] = name

    def write(self, row: MessageRow) -> int:
        """Store one message (one transaction, like the bridge); returns its rowid."""
        with self._transaction():
            self._upsert_chats([row])
            cursor = self._conn.execute(_INSERT_MESSAGE, row)
        return int(cursor.lastrowid or 0)

    def write_many(self, rows: Iterable[MessageRow], *, chunk_size: int = 20_000) -> int:
        """Store many messages in order, one transaction per chunk; returns rows written."""
        written = 0
        iterator = iter(rows)
        while chunk := list(itertools.islice(iterator, chunk_size)):
            with self._transaction():
                self._upsert_chats(chunk)
                self._conn.executemany(_INSERT_MESSAGE, chunk)
            written += len(chunk)
        return written

    def history_sync(self, rows: Iterable[MessageRow]) -> int:
        """Store messages that arrive late from a history sync (old timestamps, new rowids).

        The rows' senders should be full JIDs (`Member.sender(history=True)`), as the
        bridge writes them from history sync.
        """
        return self.write_many(rows)

    def redeliver(self, chat_jid: str, message_id: str, *, sender: str | None = None) -> int:
        """Store an existing message again (same content and timestamp); returns its new rowid.

        Raises KeyError when the message is not in the store.
        """
        found = self._conn.execute(
            "SELECT id, chat_jid, sender, content, timestamp, is_from_me, media_type, filename, "
            "url, media_key, file_sha256, file_enc_sha256, file_length "
            "FROM messages WHERE id = ? AND chat_jid = ?",
            (message_id, chat_jid),
        ).fetchone()
        if found is None:
            raise KeyError(f"message {message_id} of {chat_jid} is not in {self.messages_db}")
        row = MessageRow(*found)
        if sender is not None:
            row = row._replace(sender=sender)
        return self.write(row)

    def add_members(self, members: Iterable[Member], our_jid: str = OUR_JID) -> None:
        """Write members' names to whatsmeow_contacts and their LIDs to whatsmeow_lid_map.

        Members without any name get no contacts row; LIDs are skipped when the store
        has no lid map (an older bridge). Does nothing without a whatsapp.db.
        """
        if self.whatsapp_db is None:
            return
        conn = sqlite3.connect(self.whatsapp_db, timeout=self._busy_timeout, isolation_level=None)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            listed = list(members)
            contacts = [
                (our_jid, m.jid, m.first_name, m.full_name, m.push_name, m.business_name)
                for m in listed
                if m.full_name or m.push_name or m.first_name
            ]
            lids = [(m.lid, m.phone) for m in listed if m.lid is not None]
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO whatsmeow_contacts (our_jid, their_jid, first_name, "
                    "full_name, push_name, business_name) VALUES (?, ?, ?, ?, ?, ?)",
                    contacts,
                )
                if "whatsmeow_lid_map" in tables:
                    conn.executemany(
                        "INSERT OR REPLACE INTO whatsmeow_lid_map (lid, pn) VALUES (?, ?)", lids
                    )
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _upsert_chats(self, rows: Sequence[MessageRow]) -> None:
        # The bridge upserts the chat per message; per chunk, the latest time is the same end.
        changed: dict[str, str] = {}
        last = self._last
        for row in rows:
            jid = row.chat_jid
            current = changed.get(jid) or last.get(jid)
            if current is None or _later(row.timestamp, current):
                changed[jid] = row.timestamp
        for jid, text in changed.items():
            last[jid] = text
            name = self._names.get(jid, f"Group {jid.split('@', 1)[0]}")
            self._conn.execute(_UPSERT_CHAT, (jid, name, text))

    def _transaction(self) -> _Transaction:
        return _Transaction(self._conn)


def _later(text: str, than: str) -> bool:
    """Whether bridge timestamp `text` is later than `than`."""
    if text[-6:] == than[-6:]:
        # Same offset: the text sorts in time order ('+' sorts before a '.' fraction).
        return text > than
    return parse_bridge_timestamp(text) > parse_bridge_timestamp(than)


class _Transaction:
    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        self._conn.execute("BEGIN IMMEDIATE")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._conn.execute("ROLLBACK" if exc_type is not None else "COMMIT")
