"""Reading the WhatsApp bridge's store: messages.db (and whatsapp.db), read-only."""

from __future__ import annotations

import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import quote

from wa_monitor.core.errors import BridgeBusyError, BridgeStoreError
from wa_monitor.sources.protocol import (
    Deletion,
    Filters,
    GroupMessage,
    Prefilter,
    RawMessage,
    ScanRange,
    Sender,
)

log = logging.getLogger("wa_monitor")

# The columns WA Monitor reads; a file without them is not a bridge store.
REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "messages": ("id", "chat_jid", "sender", "content", "timestamp", "media_type"),
    "chats": ("jid", "name", "last_message_time"),
}

# LIKE and GLOB stop at a NUL character, so text after one would never match: such
# (rare) rows always go to Python's regex. instr() compares the whole value.
_HAS_NUL = "instr(content, char(0)) > 0"
# LIKE, GLOB and IN never match a BLOB, which a fork or a repair tool may have written.
# A BLOB sorts above every number and text, so `>= x''` is true exactly for BLOBs, and
# costs less than typeof(): such rows go to Python, which decodes them.
_BLOB_CONTENT = "content >= x''"
_BLOB_CHAT = "chat_jid >= x''"
_FRACTION = re.compile(r"(\.\d{6})\d+")
_EPOCH = re.compile(r"[+-]?[0-9]+(?:\.[0-9]*)?")
# Magnitude limits of epoch seconds, milliseconds, microseconds and nanoseconds: a
# millisecond count passes 1e11 in 1973, while seconds reach it only in the year 5138.
_EPOCH_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6), (1e20, 1e9))
# Instants whose local time is a valid datetime in every zone (offsets are under 24 h):
# beyond them, converting to the business zone or to UTC for storage would overflow.
_EARLIEST = datetime(1, 1, 2, tzinfo=UTC)
_LATEST = datetime(9999, 12, 30, 23, 59, 59, tzinfo=UTC)
# The cursor's anchor column is varchar(250); rows looked at, at most, to find an anchor.
_ANCHOR_MAX = 250
_ANCHOR_TRIES = 100
# Lookups by a set of keys take the keys as one JSON array: one text whatever their number.
_NEWEST_IN_CHATS = (
    "SELECT jid, last_message_time FROM chats WHERE jid IN (SELECT value FROM json_each(?))"
)
_PHONES_OF_LIDS = (
    "SELECT lid, pn FROM whatsmeow_lid_map WHERE lid IN (SELECT value FROM json_each(?))"
)
_CONTACT_NAMES = (
    "SELECT their_jid, full_name, push_name, first_name FROM whatsmeow_contacts "
    "WHERE their_jid IN (SELECT value FROM json_each(?))"
)
_COLUMNS_OF = "SELECT name FROM pragma_table_info(?)"
# The range's deleted messages of some chats (`deleted_messages` of `wa-monitor bridge`).
_DELETIONS = (
    "SELECT m.rowid, m.chat_jid, m.id, d.deleted_at FROM messages AS m "
    "JOIN deleted_messages AS d ON d.id = m.id AND d.chat_jid = m.chat_jid "
    "WHERE m.rowid > ? AND m.rowid <= ? AND m.chat_jid IN (SELECT value FROM json_each(?)) "
    "ORDER BY m.rowid"
)
# The media columns `read_messages` hands over; a bridge without one of them gives NULL.
MEDIA_COLUMNS = ("filename", "file_sha256", "file_length")
# Rows per statement of `read_messages`: each is its own short read transaction.
_MESSAGES_PER_READ = 1000


@dataclass(frozen=True)
class GroupInfo:
    jid: str
    name: str | None
    messages: int
    last_message: datetime | None


def as_text(value: object) -> str | None:
    """Any SQLite value as text: a BLOB decoded as UTF-8 (with replacement), a number written out.

    SQLite lets any column hold any storage class, whatever the bridge's schema says.
    """
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def parse_timestamp(value: object, default_zone: tzinfo = UTC) -> datetime | None:
    """A bridge timestamp as an aware datetime; None when it is not a usable time.

    go-sqlite3 writes `2025-11-09 19:15:30+02:00`, sometimes with nanoseconds; a value
    without an offset is read in `default_zone`. A number (or numeric text) is an epoch
    time in seconds, milliseconds, microseconds or nanoseconds. Times too near the ends
    of the calendar to convert to any zone are None as well.
    """
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _in_range(_from_epoch(float(value)))
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    cleaned = _FRACTION.sub(r"\1", text.replace("Z", "+00:00"))
    # go-sqlite3 may append " +0200 SAST"-style zone names; keep the part fromisoformat reads.
    if " " in cleaned[11:]:
        cleaned = cleaned[:11] + cleaned[11:].split(" ", 1)[0]
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        # Numeric text (SQLite keeps "1731172530" as text in a TEXT column): epoch time.
        return _in_range(_from_epoch(float(text))) if _EPOCH.fullmatch(text) else None
    return _in_range(parsed if parsed.tzinfo else parsed.replace(tzinfo=default_zone))


def _from_epoch(number: float) -> datetime | None:
    if not math.isfinite(number):
        return None
    for limit, per_second in _EPOCH_UNITS:
        if abs(number) < limit:
            try:
                return datetime.fromtimestamp(number / per_second, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def _in_range(when: datetime | None) -> datetime | None:
    if when is None:
        return None
    try:
        instant = when.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return when if _EARLIEST <= instant <= _LATEST else None


def sender_user(sender: str | None) -> str:
    """`27821234567@s.whatsapp.net`, `27821234567:12@s.whatsapp.net` → `27821234567`."""
    if not sender:
        return ""
    return sender.split("@", 1)[0].split(":", 1)[0].strip()


def _ro_uri(path: Path) -> str:
    return f"file:{quote(str(path.resolve()))}?mode=ro"


class BridgeStore:
    """A read-only view of the bridge's store; never writes, keeps read transactions short.

    The monitor's first `wa_monitor.sources.protocol.Source`: SQLite's rowids are the cursor.
    """

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
        self._messages_sql: str | None = None
        self._deletions_table = False
        self.contacts = ContactBook(whatsapp_db)
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
        self._messages_sql = None
        self._deletions_table = False
        # A new store (re-pairing) comes with a new whatsapp.db: forget what it told us.
        self._lid_cache.clear()
        self._name_cache.clear()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self.contacts.close()

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

    def next_rowid(self, after: int) -> int | None:
        """The first rowid above `after` (one seek, whatever the gap)."""
        row = self._query_one_or_none(
            "SELECT rowid FROM messages WHERE rowid > ? ORDER BY rowid LIMIT 1", (after,)
        )
        return None if row is None else int(row[0])

    def anchor(self, high: int) -> str | None:
        """Identify the last row at or below `high`: "rowid chat_jid id".

        Only a row that can be found again by its text and stored as a cursor qualifies
        (text chat and id, valid UTF-8, no space in the chat, printable, 250 characters
        at most): a foreign-made row must not make the store look re-created at every
        scan, nor stop the cursor from being saved.
        """
        try:
            rows = self.conn.execute(
                "SELECT rowid, chat_jid, id FROM messages WHERE rowid <= ? "
                "AND typeof(chat_jid) = 'text' AND typeof(id) = 'text' "
                "ORDER BY rowid DESC LIMIT ?",
                (high, _ANCHOR_TRIES),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.messages_db) from None
        for rowid, chat_jid, message_id in rows:
            anchor = f"{rowid} {chat_jid} {message_id}"
            if (
                len(anchor) <= _ANCHOR_MAX
                and " " not in chat_jid
                and "\ufffd" not in anchor
                and anchor.isprintable()
            ):
                return anchor
        return None

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

    def read_range(self, low: int, high: int, filters: Filters) -> ScanRange:
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
                clauses.append(
                    f"(chat_jid IN ({marks}) AND (content GLOB ? OR {_HAS_NUL} OR {_BLOB_CONTENT}))"
                )
                params.append(f"*{_glob_escape(literal.text)}*")
            else:
                text = literal.text if isinstance(literal, Prefilter) else literal
                clauses.append(
                    f"(chat_jid IN ({marks}) AND (content LIKE ? OR {_HAS_NUL} OR {_BLOB_CONTENT}))"
                )
                params.append(f"%{text}%")
        # Only "?" placeholders are formatted in; values are always parameters.
        columns = (
            "SELECT rowid, chat_jid, id, sender, content, timestamp, "
            "coalesce(length(media_type), 0) > 0 FROM messages "
        )
        rows_sql = (
            f"{columns}WHERE rowid > ? AND rowid <= ? AND ({' OR '.join(clauses)}) ORDER BY rowid"
        )
        marks = ",".join("?" * len(groups))
        # Rows whose chat is a BLOB are counted under their bytes: that tells, for free,
        # whether a third statement must fetch those of a monitored group.
        count_sql = (
            "SELECT chat_jid, count(*) FROM messages "  # noqa: S608
            f"WHERE rowid > ? AND rowid <= ? AND (chat_jid IN ({marks}) OR {_BLOB_CHAT}) "
            "GROUP BY chat_jid"
        )
        wanted = set(groups)
        conn = self.conn
        # Separate statements, each its own read transaction: the bridge's writes wait for
        # one of them at most, never for all (the counts need no consistent snapshot).
        try:
            rows = [_raw(r) for r in conn.execute(rows_sql, params)]
            counts: dict[str, int] = {}
            blob_chats = False
            for jid, count in conn.execute(count_sql, [low, high, *groups]):
                key = as_text(jid) or ""
                if key in wanted:
                    counts[key] = counts.get(key, 0) + int(count)
                    blob_chats = blob_chats or isinstance(jid, bytes)
            if blob_chats:
                blob_sql = (
                    f"{columns}WHERE rowid > ? AND rowid <= ? AND {_BLOB_CHAT} "
                    f"AND CAST(chat_jid AS TEXT) IN ({marks}) ORDER BY rowid"
                )
                extra = [_raw(r) for r in conn.execute(blob_sql, [low, high, *groups])]
                rows = sorted(rows + extra, key=lambda r: r.rowid)
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.messages_db) from None
        finally:
            _end(conn)
        return ScanRange(rows, counts)

    def read_messages(self, low: int, high: int, chats: Sequence[str]) -> list[GroupMessage]:
        """Every row of `chats` with low < rowid <= high, in rowid order, media columns included.

        Read by rowid range (there is no index on chat_jid), in statements of at most
        1,000 rows, each its own read transaction, so the bridge's writes wait for one
        short statement at most. Any value is data: a BLOB is decoded, a missing media
        column (an older bridge) reads as NULL.
        """
        wanted = sorted(set(chats))
        if not wanted or high <= low:
            return []
        conn = self.conn
        sql = self._messages_sql or self._messages_query(conn)
        chats_json = json.dumps(wanted)
        found: list[GroupMessage] = []
        after = low
        try:
            while after < high:
                rows = conn.execute(sql, (after, high, chats_json, _MESSAGES_PER_READ)).fetchall()
                _end(conn)
                for row in rows:
                    message = _group_message(row)
                    if message.chat_jid in wanted:
                        found.append(message)
                if len(rows) < _MESSAGES_PER_READ:
                    break
                after = int(rows[-1][0])
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.messages_db) from None
        finally:
            _end(conn)
        return found

    def _messages_query(self, conn: sqlite3.Connection) -> str:
        try:
            present = {as_text(r[0]) for r in conn.execute(_COLUMNS_OF, ("messages",))}
        finally:
            _end(conn)
        media = ", ".join(c if c in present else "NULL" for c in MEDIA_COLUMNS)
        # A chat stored as a BLOB is matched in Python, after decoding (see _BLOB_CHAT).
        sql = (
            "SELECT rowid, chat_jid, id, sender, content, timestamp, media_type, "  # noqa: S608
            f"{media} FROM messages WHERE rowid > ? AND rowid <= ? AND "
            f"(chat_jid IN (SELECT value FROM json_each(?)) OR {_BLOB_CHAT}) "
            "ORDER BY rowid LIMIT ?"
        )
        self._messages_sql = sql
        return sql

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
        # Any column may hold any storage class: keys and names are made text first.
        names = {as_text(jid) or "": as_text(name) for jid, name, _ in chats}
        last = {as_text(jid) or "": parse_timestamp(t) for jid, _, t in chats}
        total: dict[str, int] = {}
        for jid, count in counts.items():
            total[as_text(jid) or ""] = total.get(as_text(jid) or "", 0) + int(count)
        newest = {as_text(jid) or "": parse_timestamp(t) for jid, t in latest.items()}
        result = []
        for jid in sorted(set(names) | set(total)):
            when = last.get(jid) or newest.get(jid)
            result.append(GroupInfo(jid, names.get(jid), total.get(jid, 0), when))
        return result

    def newest_messages(self, jids: Iterable[str]) -> dict[str, datetime | None]:
        """The newest message time of each group (the chats table, else its latest row)."""
        wanted = sorted(set(jids))
        if not wanted:
            return {}
        conn = self.conn
        found: dict[str, datetime | None] = dict.fromkeys(wanted)
        try:
            conn.execute("BEGIN")
            for jid, when in conn.execute(_NEWEST_IN_CHATS, (json.dumps(wanted),)):
                found[jid] = parse_timestamp(when)
            for jid in [j for j, when in found.items() if when is None]:
                row = conn.execute(
                    "SELECT max(timestamp) FROM (SELECT timestamp FROM messages "
                    "WHERE chat_jid = ? ORDER BY rowid DESC LIMIT 50)",
                    (jid,),
                ).fetchone()
                found[jid] = parse_timestamp(row[0]) if row else None
        except sqlite3.DatabaseError as exc:
            raise BridgeStoreError(f"{self.messages_db}: cannot read messages.db: {exc}") from None
        finally:
            # A damaged file fails the COMMIT too: _end keeps that from escaping raw.
            _end(conn)
        return found

    # -- senders ----------------------------------------------------------------------

    @property
    def contacts_problem(self) -> str:
        """Why whatsapp.db cannot be read now ("" when it can, or when none is configured)."""
        return self.contacts.problem

    def read_deletions(self, low: int, high: int, chats: Sequence[str]) -> list[Deletion]:
        """The range's rows of `chats` named in `deleted_messages` (`wa-monitor bridge`'s).

        The upstream bridge keeps no deletions (no such table): []. A bridge that records
        one stores the message's row again, so its rowid comes up in a later range.
        """
        if not chats or high <= low or not self._has_deletions():
            return []
        try:
            rows = self.conn.execute(_DELETIONS, (low, high, json.dumps(list(chats)))).fetchall()
        except sqlite3.DatabaseError as exc:
            raise _translate(exc, self.messages_db) from None
        finally:
            _end(self.conn)
        return [
            Deletion(
                int(rowid),
                as_text(chat) or "",
                as_text(message_id) or "",
                when if isinstance(when, int | float) else as_text(when),
            )
            for rowid, chat, message_id, when in rows
        ]

    def _has_deletions(self) -> bool:
        """Whether messages.db has `deleted_messages` (asked until it has: a bridge may add it)."""
        if self._deletions_table:
            return True
        row = self._query_one_or_none(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'deleted_messages'"
        )
        self._deletions_table = row is not None
        return self._deletions_table

    def resolve_senders(self, senders: Iterable[str]) -> dict[str, Sender]:
        """Map raw sender values to phone number and display name, using whatsapp.db."""
        users = {raw: sender_user(raw) for raw in set(senders)}
        unknown = {u for u in users.values() if u and u not in self._lid_cache}
        if unknown:
            self._lid_cache.update(self.contacts.lids(unknown))
        phones = {u: self._lid_cache.get(u, u) for u in users.values()}
        unnamed = {p for p in phones.values() if p and p not in self._name_cache}
        if unnamed:
            self._name_cache.update(self.contacts.names(unnamed, phones))
        result = {}
        for raw, user in users.items():
            phone = phones.get(user, user)
            result[raw] = Sender(phone=phone, name=self._name_cache.get(phone) or phone)
        return result

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


class ContactBook:
    """whatsapp.db, read-only: LIDs to phone numbers, and contact names.

    Missing, unreadable, of another schema or locked, it costs no drop and no time:
    senders keep their phone number (a LID sender its LID) and have no name, one
    WARNING tells each change of state, and a file that failed is tried again only
    every RETRY seconds, with a busy timeout far below a scan interval.
    """

    BUSY_TIMEOUT = 0.1
    RETRY = 2.0

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.problem = ""
        self._conn: sqlite3.Connection | None = None
        self._inode: tuple[int, int] | None = None
        self._tables: set[str] = set()
        self._retry_at = float("-inf")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        self._conn = None
        self._inode = None

    def lids(self, users: set[str]) -> dict[str, str]:
        """Phone number (user part) of each LID user part found in whatsmeow_lid_map."""
        found: dict[str, str] = {}
        for chunk in _chunks(sorted(users), 500):
            rows = self._query("whatsmeow_lid_map", _PHONES_OF_LIDS, chunk)
            if rows is None:
                break
            for lid, pn in rows:
                phone = sender_user(as_text(pn))
                if phone:
                    found[sender_user(as_text(lid))] = phone
        return found

    def names(self, phones: set[str], by_user: Mapping[str, str]) -> dict[str, str]:
        """Contact name of each phone number, stored under its phone JID or its LID JID."""
        jids: dict[str, str] = {f"{p}@s.whatsapp.net": p for p in phones}
        for user, phone in by_user.items():
            if phone in phones and user != phone:
                jids[f"{user}@lid"] = phone
        names: dict[str, str] = {}
        for chunk in _chunks(sorted(jids), 500):
            rows = self._query("whatsmeow_contacts", _CONTACT_NAMES, chunk)
            if rows is None:
                break
            for jid, *candidates in rows:
                texts = (as_text(n) for n in candidates)
                name = next((n.strip() for n in texts if n and n.strip()), None)
                owner = jids.get(as_text(jid) or "")
                if name and owner is not None and owner not in names:
                    names[owner] = name
        return names

    def _query(self, table: str, sql: str, keys: Sequence[str]) -> list[tuple[Any, ...]] | None:
        """Rows of `sql` for `keys`; [] without `table` (older bridges), None when unreadable."""
        conn = self._connection()
        if conn is None:
            return None
        if table not in self._tables:
            return []
        try:
            rows = conn.execute(sql, (json.dumps(list(keys)),)).fetchall()
        except sqlite3.DatabaseError as exc:
            if not _is_busy(exc):
                self.close()
            self._failed(_describe(exc))
            return None
        self._readable()
        return rows

    def _connection(self) -> sqlite3.Connection | None:
        if self.path is None or (self.problem and time.monotonic() < self._retry_at):
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            self.close()
            self._failed("not found")
            return None
        except OSError as exc:
            self.close()
            self._failed(f"cannot read it ({exc.strerror})")
            return None
        if self._conn is not None and (st.st_dev, st.st_ino) == self._inode:
            return self._conn
        self.close()  # not opened yet, or replaced (re-pairing writes a new one)
        if not os.access(self.path, os.R_OK):
            self._failed("not readable by this user")
            return None
        conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(
                _ro_uri(self.path),
                uri=True,
                timeout=self.BUSY_TIMEOUT,
                isolation_level=None,
                check_same_thread=False,
            )
            conn.text_factory = _text
            tables = {
                as_text(r[0]) or ""
                for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()
            self._failed(_describe(exc))
            return None
        if "whatsmeow_contacts" not in tables:
            conn.close()
            self._failed("not the bridge's whatsapp.db (it has no whatsmeow_contacts table)")
            return None
        self._conn, self._inode, self._tables = conn, (st.st_dev, st.st_ino), tables
        return conn

    def _failed(self, problem: str) -> None:
        if _told(self.path, problem):
            log.warning(
                "⚠️ whatsapp.db %s: %s; senders are recorded by phone number (LID senders by "
                "their LID) and without names until it can be read",
                self.path,
                problem,
            )
        self.problem = problem
        self._retry_at = time.monotonic() + self.RETRY

    def _readable(self) -> None:
        if _told(self.path, ""):
            log.info(
                "✅ whatsapp.db %s readable again: senders' numbers and names resolved", self.path
            )
        self.problem = ""


# What was last told of each whatsapp.db in this process: the scan's source and the photo
# linker's each have a ContactBook of the same file, and one change is one log line.
_TOLD: dict[Path | None, str] = {}
_TOLD_LOCK = threading.Lock()


def _told(path: Path | None, problem: str) -> bool:
    """Record `problem` ("" for readable) as the file's state; True when it changed."""
    with _TOLD_LOCK:
        changed = _TOLD.get(path, "") != problem
        _TOLD[path] = problem
    return changed


def _check_schema(conn: sqlite3.Connection, path: Path) -> None:
    for table, needed in REQUIRED_COLUMNS.items():
        columns = {r[0] for r in conn.execute(_COLUMNS_OF, (table,))}
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
    if _is_busy(exc):
        return BridgeBusyError(f"{path}: the bridge holds a lock on messages.db; will retry")
    return BridgeStoreError(f"{path}: cannot read messages.db: {text}")


def _raw(row: tuple[Any, ...]) -> RawMessage:
    """A messages row, whatever storage class each column holds."""
    rowid, chat_jid, message_id, sender, content, timestamp, media = row
    if (
        str
        is type(chat_jid)
        is type(message_id)
        is type(sender)
        is type(content)
        is type(timestamp)
    ):
        return RawMessage(rowid, chat_jid, message_id, sender, content, timestamp, media == 1)
    return RawMessage(
        rowid,
        as_text(chat_jid) or "",
        as_text(message_id) or "",
        as_text(sender) or "",
        as_text(content),
        timestamp if isinstance(timestamp, int | float) else as_text(timestamp),
        media == 1,
    )


def _group_message(row: tuple[Any, ...]) -> GroupMessage:
    """A messages row with its media columns, whatever storage class each column holds."""
    rowid, chat_jid, message_id, sender, content, timestamp, media_type = row[:7]
    filename, file_sha256, file_length = row[7:]
    return GroupMessage(
        rowid=int(rowid),
        chat_jid=as_text(chat_jid) or "",
        id=as_text(message_id) or "",
        sender=as_text(sender) or "",
        content=as_text(content),
        timestamp=timestamp if isinstance(timestamp, int | float) else as_text(timestamp),
        media_type=as_text(media_type),
        filename=as_text(filename),
        file_sha256=file_sha256 if isinstance(file_sha256, bytes) else None,
        file_length=(
            file_length
            if isinstance(file_length, int) and not isinstance(file_length, bool)
            else None
        ),
    )


def _is_busy(exc: sqlite3.DatabaseError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text


def _describe(exc: sqlite3.DatabaseError) -> str:
    if _is_busy(exc):
        return "locked by the bridge (still busy after the short wait)"
    return f"not a readable SQLite database ({exc})"


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
