"""Reading the WhatsApp bridge's store: messages.db (and whatsapp.db), read-only."""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wa_monitor.errors import BridgeBusyError, BridgeStoreError

# The columns WA Monitor reads; a file without them is not a bridge store.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("id", "chat_jid", "sender", "content", "timestamp", "media_type"),
    "chats": ("jid", "name", "last_message_time"),
}

# LIKE and GLOB stop at a NUL character, so text after one would never match: such
# (rare) rows always go to Python's regex. instr() compares the whole value.
_HAS_NUL = "instr(content, char(0)) > 0"
_FRACTION = re.compile(r"(\.\d{6})\d+")


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A row of the bridge's messages table that may name a drop."""

    rowid: int
    chat_jid: str
    id: str
    sender: str
    content: str | None
    timestamp: str | None


@dataclass(frozen=True, slots=True)
class Sender:
    phone: str
    name: str


@dataclass(frozen=True)
class GroupInfo:
    jid: str
    name: str | None
    messages: int
    last_message: datetime | None


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Text every message naming a drop must contain, for SQLite to filter rows on.

    Case-sensitive text is matched with GLOB, which is exact and cheaper than LIKE;
    otherwise LIKE (ASCII case-insensitive), as for a plain `str` key of `read_range`.
    """

    text: str
    case_sensitive: bool = False


@dataclass(frozen=True)
class ScanRange:
    """Candidate rows of a rowid range, and how many messages of each group it held."""

    rows: list[RawMessage]
    counts: dict[str, int]


def parse_timestamp(text: str | None, default_zone: tzinfo = UTC) -> datetime | None:
    """The bridge's timestamp text as an aware datetime, None when it is not a timestamp.

    go-sqlite3 writes `2025-11-09 19:15:30+02:00`, sometimes with nanoseconds; a value
    without an offset is read in `default_zone`.
    """
    if not text:
        return None
    cleaned = _FRACTION.sub(r"\1", text.strip().replace("Z", "+00:00"))
    # go-sqlite3 may append " +0200 SAST"-style zone names; keep the part fromisoformat reads.
    if " " in cleaned[11:]:
        cleaned = cleaned[:11] + cleaned[11:].split(" ", 1)[0]
    try:
        value = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return value if value.tzinfo else value.replace(tzinfo=default_zone)


def sender_user(sender: str | None) -> str:
    """`27821234567@s.whatsapp.net`, `27821234567:12@s.whatsapp.net` → `27821234567`."""
    if not sender:
        return ""
    return sender.split("@", 1)[0].split(":", 1)[0].strip()


def _ro_uri(path: Path) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro"


class BridgeStore:
    """A read-only view of the bridge's store; never writes, keeps read transactions short."""

    def __init__(
        self,
        messages_db: Path,
        whatsapp_db: Path | None = None,
        *,
        busy_timeout: float = 5.0,
    ) -> None:
        self.messages_db = messages_db
        self.whatsapp_db = whatsapp_db
        self.busy_timeout = busy_timeout
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._contacts: sqlite3.Connection | None = None
        self._lid_cache: dict[str, str] = {}
        self._name_cache: dict[str, str] = {}

    # -- connection -------------------------------------------------------------------

    def open(self) -> None:
        """Open (or re-open after a re-create) messages.db and check it is a bridge store."""
        self.close()
        path = self.messages_db
        try:
            st = path.stat()
        except FileNotFoundError:
            raise BridgeStoreError(
                f"{path}: messages.db not found; check WHATSAPP_DB_PATH and that the "
                "bridge is running (it creates store/messages.db)"
            ) from None
        except OSError as exc:
            raise BridgeStoreError(f"{path}: cannot read messages.db: {exc.strerror}") from None
        if not os.access(path, os.R_OK):
            raise BridgeStoreError(
                f"{path}: messages.db is not readable by this user; grant read access"
            )
        try:
            conn = sqlite3.connect(
                _ro_uri(path),
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.execute("PRAGMA query_only = ON")
            conn.text_factory = _text
            _check_schema(conn, path)
        except sqlite3.DatabaseError as exc:
            raise BridgeStoreError(
                f"{path}: not a readable SQLite bridge store ({exc}); "
                "is WHATSAPP_DB_PATH the bridge's store/messages.db?"
            ) from None
        self._conn = conn
        self._inode = (st.st_dev, st.st_ino)
        # A new store (re-pairing) comes with a new whatsapp.db: forget what it told us.
        self._lid_cache.clear()
        self._name_cache.clear()

    def close(self) -> None:
        for conn in (self._conn, self._contacts):
            if conn is not None:
                conn.close()
        self._conn = None
        self._contacts = None

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self.open()
        assert self._conn is not None
        return self._conn

    def replaced(self) -> bool:
        """True when messages.db at the configured path is not the file we have open."""
        if self._conn is None:
            return True
        try:
            st = self.messages_db.stat()
        except OSError:
            return True
        return (st.st_dev, st.st_ino) != self._inode

    def data_version(self) -> int:
        """Changes whenever another connection commits to messages.db (cheap to poll)."""
        return int(self._query_one("PRAGMA data_version")[0])

    # -- reading ----------------------------------------------------------------------

    def max_rowid(self) -> int:
        return int(self._query_one("SELECT coalesce(max(rowid), 0) FROM messages")[0] or 0)

    def anchor(self, high: int) -> str | None:
        """Identify the last row at or below `high`: "rowid chat_jid id"."""
        row = self._query_one_or_none(
            "SELECT rowid, chat_jid, id FROM messages WHERE rowid <= ? ORDER BY rowid DESC LIMIT 1",
            (high,),
        )
        return None if row is None else f"{row[0]} {row[1]} {row[2]}"

    def anchor_moved_back(self, anchor: str) -> bool:
        """True when the anchored message is gone or sits at a LOWER rowid than recorded.

        In one store a message only ever moves up (INSERT OR REPLACE gives it a new,
        higher rowid), so either means messages.db was re-created.
        """
        try:
            rowid_text, chat_jid, message_id = anchor.split(" ", 2)
            rowid = int(rowid_text)
        except ValueError:
            return False
        row = self._query_one_or_none(
            "SELECT rowid FROM messages WHERE chat_jid = ? AND id = ?", (chat_jid, message_id)
        )
        return row is None or int(row[0]) < rowid

    def read_range(
        self, low: int, high: int, filters: Mapping[str | Prefilter | None, Sequence[str]]
    ) -> ScanRange:
        """Rows with low < rowid <= high of the given groups that may name a drop.

        `filters` maps a literal every drop must contain (a `str` is matched without
        regard to ASCII case; None: no pre-filter) to the group JIDs it applies to;
        SQLite does the filtering, so only candidates reach Python. Also counts the
        messages of each of those groups in the range.
        """
        groups = [jid for jids in filters.values() for jid in jids]
        if not groups or high <= low:
            return ScanRange([], {})
        clauses: list[str] = []
        params: list[object] = [low, high]
        for literal, jids in filters.items():
            marks = ",".join("?" * len(jids))
            params.extend(jids)
            if literal is None:
                clauses.append(f"(chat_jid IN ({marks}) AND content IS NOT NULL)")
            elif isinstance(literal, Prefilter) and literal.case_sensitive:
                clauses.append(f"(chat_jid IN ({marks}) AND (content GLOB ? OR {_HAS_NUL}))")
                params.append(f"*{_glob_escape(literal.text)}*")
            else:
                text = literal.text if isinstance(literal, Prefilter) else literal
                clauses.append(f"(chat_jid IN ({marks}) AND (content LIKE ? OR {_HAS_NUL}))")
                params.append(f"%{text}%")
        # Only "?" placeholders are formatted in; values are always parameters.
        rows_sql = (
            "SELECT rowid, chat_jid, id, sender, content, timestamp FROM messages "  # noqa: S608
            f"WHERE rowid > ? AND rowid <= ? AND ({' OR '.join(clauses)}) ORDER BY rowid"
        )
        marks = ",".join("?" * len(groups))
        count_sql = (
            "SELECT chat_jid, count(*) FROM messages "  # noqa: S608
            f"WHERE rowid > ? AND rowid <= ? AND chat_jid IN ({marks}) GROUP BY chat_jid"
        )
        conn = self.conn
        # Two statements, each its own read transaction: the bridge's writes wait for
        # one of them at most, never for both (the counts need no consistent snapshot).
        try:
            rows = [
                RawMessage(r[0], r[1], r[2] or "", r[3] or "", r[4], r[5])
                for r in conn.execute(rows_sql, params)
            ]
            counts = dict(conn.execute(count_sql, [low, high, *groups]).fetchall())
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.messages_db) from None
        finally:
            _end(conn)
        return ScanRange(rows, counts)

    def groups(self) -> list[GroupInfo]:
        """Every group chat in the store with its message count and last message time."""
        conn = self.conn
        try:
            conn.execute("BEGIN")
            counts = dict(
                conn.execute(
                    "SELECT chat_jid, count(*) FROM messages "
                    "WHERE chat_jid LIKE '%@g.us' GROUP BY chat_jid"
                ).fetchall()
            )
            latest = dict(
                conn.execute(
                    "SELECT chat_jid, max(timestamp) FROM messages "
                    "WHERE chat_jid LIKE '%@g.us' GROUP BY chat_jid"
                ).fetchall()
            )
            chats = conn.execute(
                "SELECT jid, name, last_message_time FROM chats WHERE jid LIKE '%@g.us'"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.messages_db) from None
        finally:
            _end(conn)
        names = {jid: name for jid, name, _ in chats}
        last = {jid: parse_timestamp(t) for jid, _, t in chats}
        result = []
        for jid in sorted(set(names) | set(counts)):
            when = last.get(jid) or parse_timestamp(latest.get(jid))
            result.append(GroupInfo(jid, names.get(jid), int(counts.get(jid, 0)), when))
        return result

    # -- senders ----------------------------------------------------------------------

    def resolve_senders(self, senders: Iterable[str]) -> dict[str, Sender]:
        """Map raw sender values to phone number and display name, using whatsapp.db."""
        users = {raw: sender_user(raw) for raw in set(senders)}
        unknown = {u for u in users.values() if u and u not in self._lid_cache}
        if unknown:
            self._lid_cache.update(self._lookup_lids(unknown))
        phones = {u: self._lid_cache.get(u, u) for u in users.values()}
        unnamed = {p for p in phones.values() if p and p not in self._name_cache}
        if unnamed:
            self._name_cache.update(self._lookup_names(unnamed, phones))
        result = {}
        for raw, user in users.items():
            phone = phones.get(user, user)
            result[raw] = Sender(phone=phone, name=self._name_cache.get(phone) or phone)
        return result

    def _contacts_conn(self) -> sqlite3.Connection | None:
        if self._contacts is not None:
            return self._contacts
        if self.whatsapp_db is None or not self.whatsapp_db.is_file():
            return None
        try:
            conn = sqlite3.connect(
                _ro_uri(self.whatsapp_db),
                uri=True,
                timeout=self.busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.text_factory = _text
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        except sqlite3.DatabaseError:
            return None
        self._contacts = conn
        self._contact_tables = tables
        return conn

    def _lookup_lids(self, users: set[str]) -> dict[str, str]:
        conn = self._contacts_conn()
        if conn is None or "whatsmeow_lid_map" not in self._contact_tables:
            return {}
        found: dict[str, str] = {}
        for chunk in _chunks(sorted(users), 500):
            marks = ",".join("?" * len(chunk))
            sql = f"SELECT lid, pn FROM whatsmeow_lid_map WHERE lid IN ({marks})"  # noqa: S608
            try:
                for lid, pn in conn.execute(sql, chunk):
                    found[sender_user(lid)] = sender_user(pn)
            except sqlite3.DatabaseError:
                return found
        return found

    def _lookup_names(self, phones: set[str], by_user: Mapping[str, str]) -> dict[str, str]:
        conn = self._contacts_conn()
        if conn is None or "whatsmeow_contacts" not in self._contact_tables:
            return {}
        # A contact may be stored under the phone JID or under the LID JID.
        jids: dict[str, str] = {f"{p}@s.whatsapp.net": p for p in phones}
        for user, phone in by_user.items():
            if phone in phones and user != phone:
                jids[f"{user}@lid"] = phone
        names: dict[str, str] = {}
        for chunk in _chunks(sorted(jids), 500):
            marks = ",".join("?" * len(chunk))
            sql = (
                "SELECT their_jid, full_name, push_name, first_name "  # noqa: S608
                f"FROM whatsmeow_contacts WHERE their_jid IN ({marks})"
            )
            try:
                for jid, full, push, first in conn.execute(sql, chunk):
                    name = next((n.strip() for n in (full, push, first) if n and n.strip()), None)
                    if name and jids[jid] not in names:
                        names[jids[jid]] = name
            except sqlite3.DatabaseError:
                return names
        return names

    def _query_one(self, sql: str) -> tuple[Any, ...]:
        row = self._query_one_or_none(sql)
        if row is None:
            raise BridgeStoreError(f"{self.messages_db}: no answer to {sql!r}")
        return row

    def _query_one_or_none(self, sql: str, params: Sequence[object] = ()) -> tuple[Any, ...] | None:
        try:
            row = self.conn.execute(sql, params).fetchone()
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.messages_db) from None
        return None if row is None else tuple(row)


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    for table, needed in REQUIRED_COLUMNS.items():
        columns = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
        if not columns:
            raise BridgeStoreError(
                f"{path}: not a bridge store: table `{table}` is missing; "
                "is WHATSAPP_DB_PATH the bridge's store/messages.db?"
            )
        missing = [c for c in needed if c not in columns]
        if missing:
            raise BridgeStoreError(
                f"{path}: not a bridge store: table `{table}` has no column "
                f"{', '.join(f'`{c}`' for c in missing)}"
            )


def _translate(exc: sqlite3.DatabaseError, path: Path) -> BridgeStoreError:
    text = str(exc)
    if "locked" in text or "busy" in text:
        return BridgeBusyError(f"{path}: the bridge holds a lock on messages.db; will retry")
    return BridgeStoreError(f"{path}: cannot read messages.db: {text}")


def _text(value: bytes) -> str:
    """Text columns as str, invalid UTF-8 replaced: one bad row must not stop every scan."""
    return value.decode("utf-8", "replace")


def _glob_escape(text: str) -> str:
    """`text` as a GLOB pattern matching itself: wildcards go in brackets."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in text)


def _end(conn: sqlite3.Connection) -> None:
    """Close the read transaction at once, so the bridge's writes are never held up."""
    try:
        if conn.in_transaction:
            conn.execute("COMMIT")
    except sqlite3.Error:
        conn.rollback()


def _chunks(items: Sequence[str], size: int) -> Iterable[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
