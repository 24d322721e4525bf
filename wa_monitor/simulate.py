"""Deterministic WhatsApp-bridge stores with known truth, for the demo, tests and benchmarks.

Writes `messages.db` exactly as the `whatsapp-bridge` of lharries/whatsapp-mcp does
(schema, `INSERT OR REPLACE`, go-sqlite3 timestamp text, user-part or full-JID senders,
random hex message ids, media rows with empty content) and the whatsmeow tables of
`whatsapp.db` that name the senders (`whatsmeow_lid_map`, `whatsmeow_contacts`).

`generate_store` writes a whole store in bulk and returns a `SimTruth` of every drop
posted; `LiveSimulator` writes one event at a time for the demo and for live tests.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import re
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from types import MappingProxyType, TracebackType
from typing import Final, Literal, NamedTuple, TypeVar
from zoneinfo import ZoneInfo

_T = TypeVar("_T")

__all__ = [
    "ALL_DROP_FORMATS",
    "DEFAULT_DROP_FORMATS",
    "DEFAULT_DROP_PATTERN",
    "DEFAULT_START",
    "DEFAULT_TZ",
    "DEMO_GROUPS",
    "OUR_JID",
    "OUR_PHONE",
    "VARIANT_DROP_PATTERN",
    "DropFormat",
    "DropTruth",
    "EventKind",
    "LiveSimulator",
    "Member",
    "MessageRow",
    "SimEvent",
    "SimGroup",
    "SimTruth",
    "SteppingClock",
    "StoreWriter",
    "bench_groups",
    "create_bridge_store",
    "format_bridge_timestamp",
    "generate_store",
    "normalise_drop",
    "parse_bridge_timestamp",
]

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
DEFAULT_TZ: Final = "Africa/Johannesburg"
DEFAULT_START: Final = datetime(2025, 11, 3, 6, 0, tzinfo=ZoneInfo(DEFAULT_TZ))
# The bridge's own account (the QA team's phone): whatsmeow stores the device JID.
OUR_PHONE: Final = "27711230000"
OUR_JID: Final = f"{OUR_PHONE}:12@s.whatsapp.net"

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


# -- timestamps -----------------------------------------------------------------------


def format_bridge_timestamp(when: datetime, zone: tzinfo, nanos: int | None = None) -> str:
    """`when` as go-sqlite3 writes a Go time in `zone`: `2025-11-09 19:15:30+02:00`.

    Go's layout `2006-01-02 15:04:05.999999999-07:00` drops trailing zeros of the
    fraction and the fraction itself when it is zero. `nanos` overrides the fraction
    (0..999999999); by default `when`'s microseconds are used.
    """
    local = when.astimezone(zone)
    fraction = local.microsecond * 1000 if nanos is None else nanos
    base = local.replace(microsecond=0).isoformat(" ")
    return base[:19] + _fraction_text(fraction) + _offset_text(local.utcoffset())


def _fraction_text(nanos: int) -> str:
    return "." + f"{nanos:09d}".rstrip("0") if nanos else ""


def _offset_text(offset: timedelta | None) -> str:
    minutes = int((offset or timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


def parse_bridge_timestamp(text: str) -> datetime:
    """Parse the bridge's timestamp text (fractions beyond 6 digits are truncated)."""
    if len(text) > 20 and text[19] == ".":
        end = 20
        while end < len(text) and text[end].isdigit():
            end += 1
        text = text[:19] + "." + text[20:end][:6].ljust(6, "0") + text[end:]
    return datetime.fromisoformat(text)


class _Clock:
    """Fast epoch-seconds → bridge text in one zone (the hot path of bulk generation)."""

    __slots__ = ("_minute", "_prefix", "_suffix", "zone")

    def __init__(self, zone: tzinfo) -> None:
        self.zone = zone
        self._minute = -1
        self._prefix = ""
        self._suffix = ""

    def text(self, epoch: int, nanos: int = 0) -> str:
        # Offsets are whole minutes, so the text up to the seconds is the same all minute.
        minute, second = divmod(epoch, 60)
        if minute != self._minute:
            local = datetime.fromtimestamp(minute * 60, self.zone)
            self._minute = minute
            self._prefix = local.strftime("%Y-%m-%d %H:%M:")
            self._suffix = _offset_text(local.utcoffset())
        frac = _fraction_text(nanos) if nanos else ""
        return f"{self._prefix}{second:02d}{frac}{self._suffix}"

    def aware(self, epoch: int, nanos: int = 0) -> datetime:
        """The datetime a reader gets from the text (fraction truncated to microseconds)."""
        return datetime.fromtimestamp(epoch, self.zone).replace(microsecond=nanos // 1000)

    def offset_seconds(self, epoch: int) -> int:
        offset = datetime.fromtimestamp(epoch, self.zone).utcoffset()
        return int((offset or timedelta()).total_seconds())


# -- values ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SimGroup:
    """A WhatsApp group: its JID (`…@g.us`) and subject."""

    jid: str
    name: str


DEMO_GROUPS: Final[tuple[SimGroup, ...]] = (
    SimGroup("120363418298130331@g.us", "Lawley Activation 3 group"),
    SimGroup("120363421664266245@g.us", "Velo Test group"),
    SimGroup("120363421532174586@g.us", "Mohadin Activations group"),
    SimGroup("120363408849234743@g.us", "Mamelodi POP1 Activations group"),
)


@dataclass(frozen=True)
class Member:
    """A group member as whatsmeow knows them: phone, optional LID, contact names."""

    phone: str
    lid: str | None = None
    full_name: str | None = None
    push_name: str | None = None
    first_name: str | None = None
    business_name: str | None = None

    @property
    def display_name(self) -> str:
        """full_name, else push_name, else first_name, else the phone number."""
        return self.full_name or self.push_name or self.first_name or self.phone

    @property
    def jid(self) -> str:
        return f"{self.phone}@s.whatsapp.net"

    def sender(self, *, history: bool = False) -> str:
        """The `sender` text the bridge writes: user part live, full JID from history sync."""
        if self.lid is not None:
            return f"{self.lid}@lid" if history else self.lid
        return self.jid if history else self.phone


class MessageRow(NamedTuple):
    """One row of `messages`, in column order (so it binds straight to the INSERT)."""

    id: str
    chat_jid: str
    sender: str
    content: str | None
    timestamp: str
    is_from_me: bool
    media_type: str
    filename: str
    url: str
    media_key: bytes | None
    file_sha256: bytes | None
    file_enc_sha256: bytes | None
    file_length: int


DropFormat = Literal["DR8", "DR7", "DR6", "spaced", "lower"]
DEFAULT_DROP_FORMATS: Final[tuple[DropFormat, ...]] = ("DR8",)
# FIELD_NOTES bug 9: 7- and 6-digit numbers, "DR 1752169", "dr12345678".
ALL_DROP_FORMATS: Final[tuple[DropFormat, ...]] = ("DR8", "DR7", "DR6", "spaced", "lower")
DEFAULT_DROP_PATTERN: Final = r"\bDR\d{8}\b"
# Finds every format of ALL_DROP_FORMATS; normalise matches with normalise_drop.
VARIANT_DROP_PATTERN: Final = r"(?i)\bDR ?\d{6,8}\b"

_SPACES = re.compile(r"\s+")


def normalise_drop(text: str) -> str:
    """A drop number as the monitor stores it: upper case, no whitespace."""
    return _SPACES.sub("", text).upper()


@dataclass(frozen=True)
class DropTruth:
    """What was posted for one drop number in one group."""

    group_jid: str
    drop_number: str
    posts: int
    """Distinct messages (ids) that named the drop; re-deliveries are not posts."""
    first_posted: datetime
    last_posted: datetime
    last_phone: str
    """Phone number of the latest post's sender (LIDs resolved)."""
    last_name: str
    """full_name, else push_name, else first_name, else phone, of that sender."""

    @property
    def resubmitted(self) -> bool:
        return self.posts > 1


@dataclass(frozen=True)
class SimTruth:
    """Exactly what a simulation wrote; a correct monitor's output can be checked against it.

    `drops` is keyed by (group JID, normalised drop number). "Latest" means the latest
    WhatsApp timestamp (ties, possible only in live simulation, go to the later write).
    """

    drops: Mapping[tuple[str, str], DropTruth]
    messages: int
    """Distinct messages written (the row count, when the store started empty)."""
    media_rows: int
    redeliveries: int
    """Writes of an already stored message (INSERT OR REPLACE → new rowid)."""
    history_synced: int
    """Messages that first arrived late, through history sync (old timestamp, new rowid)."""
    drop_posts: int
    """Distinct messages that named at least one drop."""
    first_time: datetime | None
    last_time: datetime | None
    members: tuple[Member, ...]

    def for_group(self, group_jid: str) -> dict[str, DropTruth]:
        """The drops of one group, keyed by normalised drop number."""
        return {drop: t for (jid, drop), t in self.drops.items() if jid == group_jid}


class _DropEntry:
    __slots__ = ("first", "last", "name", "phone", "posts")

    def __init__(self, when: tuple[int, int, int], phone: str, name: str) -> None:
        self.posts = 1
        self.first = when
        self.last = when
        self.phone = phone
        self.name = name


class _TruthBuilder:
    """Accumulates drop posts; only drops are kept, so memory stays small for big stores."""

    def __init__(self, clock: _Clock) -> None:
        self._clock = clock
        self._drops: dict[tuple[str, str], _DropEntry] = {}
        self._seq = 0
        self.drop_posts = 0

    def record(
        self, chat_jid: str, drops: Sequence[str], epoch: int, nanos: int, member: Member
    ) -> None:
        self._seq += 1
        self.drop_posts += 1
        when = (epoch, nanos, self._seq)
        for drop in dict.fromkeys(drops):
            entry = self._drops.get((chat_jid, drop))
            if entry is None:
                self._drops[(chat_jid, drop)] = _DropEntry(when, member.phone, member.display_name)
                continue
            entry.posts += 1
            entry.first = min(entry.first, when)
            if when > entry.last:
                entry.last = when
                entry.phone = member.phone
                entry.name = member.display_name

    def build(
        self,
        *,
        messages: int,
        media_rows: int,
        redeliveries: int,
        history_synced: int,
        first_time: datetime | None,
        last_time: datetime | None,
        members: tuple[Member, ...],
    ) -> SimTruth:
        aware = self._clock.aware
        drops = {
            key: DropTruth(
                group_jid=key[0],
                drop_number=key[1],
                posts=e.posts,
                first_posted=aware(e.first[0], e.first[1]),
                last_posted=aware(e.last[0], e.last[1]),
                last_phone=e.phone,
                last_name=e.name,
            )
            for key, e in self._drops.items()
        }
        return SimTruth(
            drops=MappingProxyType(drops),
            messages=messages,
            media_rows=media_rows,
            redeliveries=redeliveries,
            history_synced=history_synced,
            drop_posts=self.drop_posts,
            first_time=first_time,
            last_time=last_time,
            members=members,
        )


# -- the writer -----------------------------------------------------------------------


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


# -- vocabulary -----------------------------------------------------------------------

_FIRST_NAMES: Final = (
    "Thabo", "Sipho", "Lerato", "Nomvula", "Johan", "Pieter", "Anele", "Zanele", "Themba",
    "Bongani", "Karabo", "Mpho", "Lindiwe", "Sibusiso", "Ayanda", "Nkosinathi", "Kagiso",
    "Tshepo", "Refilwe", "Mandla", "Jaco", "Riaan", "Chantelle", "Marius", "Naledi", "Palesa",
    "Dumisani", "Vusi", "Hendrik", "Ruan", "Lebo", "Busisiwe", "Precious", "Gift", "Blessing",
    "Kabelo", "Tumelo", "Lwazi", "Sizwe", "Xolani", "Andile", "Nonhlanhla", "Zoë", "Thandiwe",
    "Mpumelelo", "Keabetswe", "Ané", "Siyabonga", "Rethabile", "Moses",
)  # fmt: skip
_LAST_NAMES: Final = (
    "Mokoena", "Nkosi", "Dlamini", "Ndlovu", "van der Merwe", "Botha", "Khumalo", "Mahlangu",
    "Molefe", "Sithole", "Zulu", "Naidoo", "Pillay", "Pretorius", "Mabaso", "Maseko", "Nel",
    "Venter", "Mthembu", "Radebe", "Shabalala", "Baloyi", "Mathebula", "Coetzee", "Fourie",
    "Steyn", "le Roux", "Ngcobo", "Tshabalala", "Mofokeng", "Modise", "du Plessis",
)  # fmt: skip
_NICKNAMES: Final = (
    "Bongz", "T-Man", "Mr Fibre", "Lebza", "Sbu", "Mpho_Velo", "Fibre King 👑", "JJ", "Ta Vusi",
    "Skhumba", "Oom Piet", "Bra Themba", "Ntate K", "~Zanele~", "Sisi Lindi", "Kb 🔧",
)  # fmt: skip
_NAME_SUFFIXES: Final = (" Velo", " (Installer)", " Lawley", " QA", " Splicer", " Team Lead")
_BUSINESS: Final = ("Velo Fibre Installs", "KB Telecoms (Pty) Ltd", "Sizwe Civils", "Fibretech SA")
_PHONE_PREFIXES: Final = (
    "60", "61", "62", "63", "64", "65", "66", "67", "68", "71", "72", "73", "74", "76", "78",
    "79", "81", "82", "83", "84",
)  # fmt: skip
_EMOJI: Final = (
    "👍", "🙏", "✅", "💪", "🔥", "😂", "👷🏾‍♂️", "⚡", "🚧", "📸", "🙌🏽", "😅", "☀️", "🌧️", "🇿🇦",
    "👌🏿", "🤝", "😤", "🥶", "💯",
)  # fmt: skip
_GREETINGS: Final = (
    "Morning team", "Goeie môre span", "Sawubona bafana", "Howzit guys", "Good morning all",
    "Molo team", "Dumelang", "Hi all", "Môre manne", "Good afternoon team",
)  # fmt: skip
_ACKS: Final = (
    "Ok", "Noted 👍", "Sharp sharp", "Yebo", "Dankie", "Ngiyabonga", "Shot boss", "Will do",
    "👍", "🙏🏾", "Ja", "Lekker", "Sure", "Copy", "On it", "Baie dankie", "Ke a leboga", "👍🏽👍🏽",
    "Ok noted", "Thanks", "Haibo", "Eish", "Ja nee", "100%",
)  # fmt: skip
_TOOLS: Final = (
    "splicing kit", "OTDR", "fusion splicer", "ladder", "drill", "cleaver", "power meter",
    "VFL", "bakkie keys", "tool bag", "crimping tool", "hammer drill", "cable locator",
)  # fmt: skip
_MATERIALS: Final = (
    "drop cable", "ONTs", "patch cords", "cable ties", "wall boxes", "UPS units", "P-clips",
    "conduit", "splice trays", "pigtails", "anchors", "fibre boxes",
)  # fmt: skip
_STREETS: Final = (
    "Mthembu Street", "Protea Avenue", "Jacaranda Crescent", "Main Road", "Steenbok Street",
    "Oak Avenue", "Mandela Street", "Tambo Road", "Sisulu Avenue", "Kudu Street",
    "Marula Close", "Impala Road", "Mbeki Street", "Church Street", "Kerk Straat",
)  # fmt: skip
_PLACES: Final = (
    "Lawley Ext 1", "Lawley Ext 3", "Mohadin", "Mamelodi East", "Mamelodi West", "the POP",
    "the cabinet", "FDH 12", "the yard", "Stinkwater", "Extension 5", "the chamber on Main",
    "Block C", "the school", "the clinic",
)  # fmt: skip
_EXCUSES: Final = (
    "traffic on the N1", "bakkie won't start", "taxi strike", "picking up stock at the yard",
    "load shedding at home", "flat tyre", "waiting for the supervisor",
)  # fmt: skip
_WHEN: Final = ("tomorrow", "after lunch", "this afternoon", "on Monday", "later", "on Friday")
_TIMES: Final = ("14:00", "after lunch", "7am", "09:30", "end of day", "12h00", "before 4")
_FIXES: Final = (
    "fixed the ONT barcode", "added the power meter reading", "retook the house photo",
    "UPS serial now clear", "customer signature added", "cable entry photos retaken",
    "green lights photo added", "new photo of the wall box", "power meter now -17.5 dBm",
)  # fmt: skip
_DOCS: Final = ("timesheets", "stock sheet", "as-built", "daily report", "safety file")
_AFRIKAANS_ZULU: Final = (
    "Eish", "Haibo", "Lekker man", "Ag shame", "Yoh", "Sho", "Sharp", "Aweh", "Hayibo",
    "Ja-nee", "Siyabonga", "Kwaai", "Jislaaik",
)  # fmt: skip

_CHATTER: Final = (
    "Pole {n} done, moving to next",
    "Pole {n} done {emoji}",
    "Who has the {tool}?",
    "Who has the {tool}? Need it at {place}",
    "{greet} {emoji}",
    "{greet}, where is everyone working today?",
    "Running late, {excuse}",
    "Customer not home at {n} {street}, will come back {when}",
    "Splicing done at {place} {emoji}",
    "Need more {material}, only {small} left",
    "{name} where are you? Need the {tool} at {place}",
    "Trenching on {street} finished",
    "ONT online at {n} {street}, reading -{dbm} dBm",
    "Team at {place} is done for today {emoji}",
    "Any update on the {material} delivery?",
    "Bakkie has a flat at {place} 😩 {afr}",
    "{afr} the rain {emoji} we stop for now",
    "Who is going to {place} {when}?",
    "Meeting at the yard {time}",
    "Please send the {doc} before {time}",
    "{afr}, {place} has no power again",
    "Customer at {n} {street} wants the router in the lounge, is that ok?",
    "Fibre is broken between pole {n} and pole {n2}, need a splicer",
    "Reading too low at {n} {street}: -{dbm} dBm, re-cleaning the connector",
    "{name} please check the {material} in the bakkie",
    "Kan iemand my help by {place}? Ek sukkel met die {tool}",
    "Ngicela ukusiza e-{place}, the {tool} is not working",
    "Lunch 🍗 back in 30",
    "{small} installs done today {emoji}{emoji2}",
    "Waiting for the landlord at {n} {street}",
    "Dog at {n} {street} 🐕 not going in there {afr}",
    "Who took the {tool} from the yard??",
    "Reminder: PPE on site, no hard hat no work ⛑️",
    "Wayleave for {street} approved ✅",
    "Can we get 2 more guys at {place} {when}?",
    "Customer asking about the Wi-Fi password, what do we tell them?",
    "“{place}” route is blocked, police on site 🚓",
    "Stock count {time} please",
    "{ack}",
    "{ack} {emoji}",
)
_LONG_PARTS: Final = (
    "Pole {n} done.",
    "Splicing at {place} finished, all ports tested.",
    "We still need {small} {material} for tomorrow.",
    "Customer at {n} {street} was not home, rescheduled for {when}.",
    "The {tool} battery is almost flat, please charge it tonight.",
    "Readings were between -{dbm} and -{dbm2} dBm on all the ONTs.",
    "Reminder to everyone: photos must show the ONT barcode and the green lights clearly.",
    "Please don't leave cable offcuts on the pavement, the municipality complained.",
    "Safety first — ladders must be footed at all times ⛑️",
    "{afr}, it was a long day but the team did well {emoji}",
    "Trenching crew will start on {street} {when}.",
    "All timesheets to {name} by Friday.",
)
_DROP_POSTS: Final = (
    "{d} done",
    "{d}\nAll photos attached",
    "{d} completed ✅",
    "{d}",
    "{d}",
    "Drop {d} installed, photos to follow",
    "Good day team, {d} done at {n} {street}",
    "{d} - {n} {street}",
    "{d} done. ONT online, -{dbm} dBm {emoji}",
    "{d}\n{n} {street}\nONT SN: {sn}\nAll 12 photos attached",
    "Installation complete {d} 📸",
    "{d} ✅✅",
    "{d} done 👷🏾‍♂️",
    "{d} klaar {emoji}",
    "Done: {d}",
)
_DOUBLE_DROP_POSTS: Final = (
    "{d} and {d2} done",
    "{d}\n{d2}\nBoth done, photos attached",
    "{d}, {d2} completed {emoji}",
)
_RESUBMISSIONS: Final = (
    "Resubmitting {d} {fix}",
    "{d} resubmitted, {fix}",
    "{d} redone 🔄 {fix}",
    "Re-sent photos for {d}",
    "{d} corrected — {fix}",
    "{d}\nResubmission: {fix}",
    "{d} again, {fix} {emoji}",
)


def _pick(rng: random.Random, items: Sequence[_T]) -> _T:
    """rng.choice, three times faster (the bulk generator picks millions of words)."""
    return items[int(rng.random() * len(items))]


def _hex(rng: random.Random, digits: int) -> str:
    return f"{rng.getrandbits(digits * 4):0{digits}X}"


_SLOT_MAKERS: Final[dict[str, Callable[[random.Random], str]]] = {
    "n": lambda r: str(r.randint(1, 240)),
    "n2": lambda r: str(r.randint(1, 240)),
    "small": lambda r: str(r.randint(0, 6)),
    "dbm": lambda r: f"{r.uniform(14.5, 24.9):.1f}",
    "dbm2": lambda r: f"{r.uniform(14.5, 24.9):.1f}",
    "tool": lambda r: _pick(r, _TOOLS),
    "material": lambda r: _pick(r, _MATERIALS),
    "street": lambda r: _pick(r, _STREETS),
    "place": lambda r: _pick(r, _PLACES),
    "excuse": lambda r: _pick(r, _EXCUSES),
    "when": lambda r: _pick(r, _WHEN),
    "time": lambda r: _pick(r, _TIMES),
    "ack": lambda r: _pick(r, _ACKS),
    "afr": lambda r: _pick(r, _AFRIKAANS_ZULU),
    "emoji": lambda r: _pick(r, _EMOJI),
    "emoji2": lambda r: _pick(r, _EMOJI),
    "greet": lambda r: _pick(r, _GREETINGS),
    "name": lambda r: _pick(r, _FIRST_NAMES),
    "fix": lambda r: _pick(r, _FIXES),
    "doc": lambda r: _pick(r, _DOCS),
    "sn": lambda r: _pick(r, ("ZTEG", "HWTC", "ALCL")) + _hex(r, 8),
}


class _Slots(dict[str, str]):
    """Template values made on first use, so a template only pays for its own slots."""

    __slots__ = ("_rng",)

    def __init__(self, rng: random.Random, **fixed: str) -> None:
        super().__init__(fixed)
        self._rng = rng

    def __missing__(self, key: str) -> str:
        value = _SLOT_MAKERS[key](self._rng)
        self[key] = value
        return value


def _chatter_text(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.02:
        chosen = rng.sample(_LONG_PARTS, rng.randint(4, len(_LONG_PARTS)))
        parts = [part.format_map(_Slots(rng)) for part in chosen]
        head = _pick(rng, ("", "Daily report:\n", "Update from {place}:\n", "Team,\n"))
        if rng.random() < 0.4:
            return head.format_map(_Slots(rng)) + "".join(f"• {part}\n" for part in parts)
        return head.format_map(_Slots(rng)) + _pick(rng, (" ", "\n")).join(parts)
    if r < 0.18:
        return _pick(rng, _ACKS)
    return _pick(rng, _CHATTER).format_map(_Slots(rng))


def _message_id(rng: random.Random) -> str:
    # Web/whatsmeow "3EB0…", iPhone "3A…", Android 32-hex: random, never ordered in time.
    r = rng.random()
    if r < 0.45:
        return f"3EB0{rng.getrandbits(64):016X}"
    if r < 0.70:
        return f"3A{rng.getrandbits(72):018X}"
    if r < 0.80:
        return f"{rng.getrandbits(80):020X}"
    return f"{rng.getrandbits(128):032X}"


_MEDIA_PATHS: Final = {
    "image": ("t62.7118-24", ".jpg", 40_000, 450_000),
    "video": ("t62.7161-24", ".mp4", 300_000, 16_000_000),
    "audio": ("t62.7117-24", ".ogg", 5_000, 200_000),
    "document": ("t62.7119-24", ".pdf", 20_000, 5_000_000),
}
_DOCUMENT_NAMES: Final = (
    "As-built {place}.pdf", "Stock sheet.xlsx", "Daily report.docx", "Safety file.pdf",
    "Timesheet week {n}.xlsx", "Wayleave {street}.pdf",
)  # fmt: skip


def _media_row(
    rng: random.Random,
    chat_jid: str,
    sender: str,
    timestamp: str,
    media_type: str,
    *,
    is_from_me: bool = False,
) -> MessageRow:
    segment, ext, low, high = _MEDIA_PATHS[media_type]
    if media_type == "document":
        filename = _pick(rng, _DOCUMENT_NAMES).format_map(_Slots(rng))
    else:
        # The bridge names media by the time it stored them (here: the message time).
        ts = timestamp
        stamp = f"{ts[0:4]}{ts[5:7]}{ts[8:10]}_{ts[11:13]}{ts[14:16]}{ts[17:19]}"
        filename = f"{media_type}_{stamp}{ext}"
    url = (
        f"https://mmg.whatsapp.net/v/{segment}/{rng.randrange(10**7, 10**8)}_"
        f"{rng.randrange(10**15, 10**16)}_{rng.randrange(10**15, 10**16)}_n.enc"
        f"?ccb=11-4&oh=01_Q5Aa{_hex(rng, 36)}&oe={_hex(rng, 8)}&_nc_sid=5e03e0&mms3=true"
    )
    # Upstream drops captions (content ''); a few foreign-made stores hold NULL.
    content = None if rng.random() < 0.02 else ""
    return MessageRow(
        _message_id(rng),
        chat_jid,
        sender,
        content,
        timestamp,
        is_from_me,
        media_type,
        filename,
        url,
        rng.randbytes(32),
        rng.randbytes(32),
        rng.randbytes(32),
        rng.randint(low, high),
    )


def _text_row(
    rng: random.Random,
    chat_jid: str,
    sender: str,
    content: str,
    timestamp: str,
    *,
    is_from_me: bool = False,
) -> MessageRow:
    # go-sqlite3 binds the bridge's empty strings as '' and nil byte slices as NULL.
    return MessageRow(
        _message_id(rng), chat_jid, sender, content, timestamp, is_from_me, "", "", "", None,
        None, None, 0,
    )  # fmt: skip


# -- people and drops -----------------------------------------------------------------


class _Population:
    """Everyone in the simulated groups; index 0 is the bridge's own account."""

    def __init__(self, rng: random.Random, n_groups: int, lid_share: float) -> None:
        self.members: list[Member] = [Member(phone=OUR_PHONE)]
        self.live: list[str] = [OUR_PHONE]
        self.history: list[str] = [OUR_PHONE]
        self._rng = rng
        self._lid_share = lid_share
        self._phones: set[str] = {OUR_PHONE}
        self._lids: set[str] = set()
        supervisors = [self._new_person() for _ in range(3)]
        # Per group: (everyone, cumulative weights) and (installers, cumulative weights).
        self.talkers: list[tuple[list[int], list[float]]] = []
        self.posters: list[tuple[list[int], list[float]]] = []
        installers_seen: list[int] = []
        for _ in range(n_groups):
            installers: list[int] = []
            for _ in range(rng.randint(5, 26)):
                if installers_seen and rng.random() < 0.1:
                    person = _pick(rng, installers_seen)
                    if person in installers:
                        continue
                else:
                    person = self._new_person()
                    installers_seen.append(person)
                installers.append(person)
            weights = [min(20.0, rng.paretovariate(1.6)) for _ in installers]
            self.posters.append((installers, list(itertools.accumulate(weights))))
            everyone = [*supervisors, 0, *installers]
            all_weights = [1.5, 1.0, 0.8, 0.6, *weights]
            self.talkers.append((everyone, list(itertools.accumulate(all_weights))))

    def _new_person(self) -> int:
        rng = self._rng
        phone = OUR_PHONE
        while phone in self._phones:
            phone = "27" + _pick(rng, _PHONE_PREFIXES) + f"{rng.randrange(10**7):07d}"
        self._phones.add(phone)
        lid: str | None = None
        if rng.random() < self._lid_share:
            while lid is None or lid in self._lids:
                lid = str(rng.randrange(10**14, 3 * 10**14))
            self._lids.add(lid)
        first = _pick(rng, _FIRST_NAMES)
        last = _pick(rng, _LAST_NAMES)
        full = f"{first} {last}" + (_pick(rng, _NAME_SUFFIXES) if rng.random() < 0.2 else "")
        r = rng.random()
        if r < 0.45:  # saved in the address book, with a push name
            member = Member(phone, lid, full, self._push_name(first, last), first)
        elif r < 0.55:  # saved, never sent a push name
            member = Member(phone, lid, full, None, first)
        elif r < 0.83:  # only the name they chose
            business = _pick(rng, _BUSINESS) if rng.random() < 0.1 else None
            member = Member(phone, lid, None, self._push_name(first, last), None, business)
        elif r < 0.90:  # a first name only
            member = Member(phone, lid, None, None, first)
        else:  # unknown: shown as the phone number
            member = Member(phone, lid)
        self.members.append(member)
        self.live.append(member.sender())
        self.history.append(member.sender(history=True))
        return len(self.members) - 1

    def _push_name(self, first: str, last: str) -> str:
        rng = self._rng
        r = rng.random()
        if r < 0.35:
            return first
        if r < 0.55:
            return f"{first} {last[0].upper()}"
        if r < 0.70:
            return f"{first} {_pick(rng, _EMOJI)}"
        if r < 0.85:
            return _pick(rng, _NICKNAMES)
        return f"{first} {last}"


_DIGITS: Final = {"DR8": 8, "DR7": 7, "DR6": 6}
_DIGIT_WEIGHTS: Final = {"DR8": 0.6, "DR7": 0.25, "DR6": 0.15}


class _Drops:
    """Issues unique drop numbers and renders them in the enabled formats."""

    def __init__(self, rng: random.Random, formats: Sequence[DropFormat]) -> None:
        unknown = [f for f in formats if f not in ALL_DROP_FORMATS]
        if unknown:
            raise ValueError(f"unknown drop format(s) {unknown}; choose from {ALL_DROP_FORMATS}")
        self._lengths = [_DIGITS[f] for f in ALL_DROP_FORMATS if f in _DIGITS and f in formats]
        if not self._lengths:
            raise ValueError("drop_formats needs at least one of 'DR8', 'DR7', 'DR6'")
        weights = [_DIGIT_WEIGHTS[f] for f in ALL_DROP_FORMATS if f in _DIGITS and f in formats]
        self._cum = list(itertools.accumulate(weights))
        self._spaced = "spaced" in formats
        self._lower = "lower" in formats
        self._rng = rng
        self._issued: set[str] = set()

    def new(self) -> str:
        rng = self._rng
        length = self._lengths[bisect.bisect(self._cum, rng.random() * self._cum[-1])]
        number = ""
        while not number or number in self._issued:
            number = f"DR{rng.randrange(10 ** (length - 1), 10**length)}"
        self._issued.add(number)
        return number

    def render(self, number: str) -> str:
        if self._spaced or self._lower:
            r = self._rng.random()
            if self._spaced and r < 0.12:
                return "DR " + number[2:]
            if self._lower and r > 0.88:
                return number.lower()
        return number


class _Composer:
    """Makes the messages of a simulation: who says what, where, with which id."""

    def __init__(
        self,
        rng: random.Random,
        groups: Sequence[SimGroup],
        *,
        lid_share: float,
        drop_formats: Sequence[DropFormat],
        resubmit_share: float,
    ) -> None:
        if not groups:
            raise ValueError("at least one group is needed")
        if len({g.jid for g in groups}) != len(groups):
            raise ValueError("group JIDs must be distinct")
        self.rng = rng
        self.groups = list(groups)
        self.people = _Population(rng, len(groups), lid_share)
        self.drops = _Drops(rng, drop_formats)
        self.resubmit_share = resubmit_share
        # Busy and quiet groups: weights fall off with a shuffled rank.
        ranks = list(range(len(groups)))
        rng.shuffle(ranks)
        self._group_cum = list(itertools.accumulate(1.0 / (rank + 1) ** 0.9 for rank in ranks))
        self._posted: list[deque[tuple[str, int]]] = [deque(maxlen=300) for _ in groups]
        self._numbers: list[set[str]] = [set() for _ in groups]
        self._recent_all: deque[str] = deque(maxlen=300)

    def pick_group(self) -> int:
        cum = self._group_cum
        return bisect.bisect(cum, self.rng.random() * cum[-1])

    def pick_talker(self, group: int) -> int:
        people, cum = self.people.talkers[group]
        return people[bisect.bisect(cum, self.rng.random() * cum[-1])]

    def pick_poster(self, group: int) -> int:
        people, cum = self.people.posters[group]
        return people[bisect.bisect(cum, self.rng.random() * cum[-1])]

    def drop_post(self, group: int) -> tuple[int, str, tuple[str, ...], bool]:
        """(poster, text, normalised drops, is a resubmission) of a drop post in `group`."""
        rng = self.rng
        posted = self._posted[group]
        drops = self.drops
        if posted and rng.random() < self.resubmit_share:
            number, original = posted[rng.randrange(len(posted))]
            # Usually the installer fixes their own drop; sometimes a colleague does.
            poster = original if rng.random() < 0.7 else self.pick_poster(group)
            text = _pick(rng, _RESUBMISSIONS).format_map(_Slots(rng, d=drops.render(number)))
            posted.append((number, poster))
            return poster, text, (number,), True
        poster = self.pick_poster(group)
        numbers = [self._new_number(group)]
        if rng.random() < 0.05:
            numbers.append(self._new_number(group))
            template = _pick(rng, _DOUBLE_DROP_POSTS)
            slots = _Slots(rng, d=drops.render(numbers[0]), d2=drops.render(numbers[1]))
        else:
            template = _pick(rng, _DROP_POSTS)
            slots = _Slots(rng, d=drops.render(numbers[0]))
        for number in numbers:
            posted.append((number, poster))
            self._numbers[group].add(number)
            self._recent_all.append(number)
        return poster, template.format_map(slots), tuple(numbers), False

    def _new_number(self, group: int) -> str:
        # The same drop is sometimes posted in two project groups (FIELD_NOTES bug 6).
        recent = self._recent_all
        if recent and self.rng.random() < 0.02:
            number = recent[self.rng.randrange(len(recent))]
            if number not in self._numbers[group]:
                return number
        return self.drops.new()


# Media outside photo bursts: site photos, voice notes, videos, documents.
_STRAY_MEDIA: Final = ("image", "audio", "video", "document")
_STRAY_MEDIA_CUM: Final = (0.65, 0.80, 0.90)


def _burst_size(rng: random.Random, mean: float) -> int:
    if mean >= 3:
        return rng.randint(3, max(3, round(2 * mean - 3)))
    if mean >= 1:
        return rng.randint(1, max(1, round(2 * mean - 1)))
    return 1 if rng.random() < mean else 0


def _check_rate(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be between 0 and 1, got {value}")


# -- bulk generation ------------------------------------------------------------------


def _plan_outages(rng: random.Random, n: int, share: float) -> list[tuple[int, int]]:
    """Windows [start, end) of message indices the bridge missed, about `share` of `n`."""
    target = min(round(n * share), n - 1)
    if target <= 0:
        return []
    k = max(1, math.ceil(target / 1500))
    cuts = sorted(rng.sample(range(1, target), k - 1)) if k > 1 else []
    lengths = [b - a for a, b in zip([0, *cuts], [*cuts, target], strict=True)]
    gaps = sorted(rng.randrange(n - target + 1) for _ in range(k))
    windows: list[tuple[int, int]] = []
    consumed = 0
    for gap, length in zip(gaps, lengths, strict=True):
        windows.append((gap + consumed, gap + consumed + length))
        consumed += length
    return windows


def generate_store(
    messages_db: Path,
    whatsapp_db: Path | None,
    *,
    groups: Sequence[SimGroup] = DEMO_GROUPS,
    n_messages: int,
    seed: int = 0,
    drop_rate: float = 0.01,
    resubmit_share: float = 0.2,
    media_rate: float = 0.10,
    redelivery_rate: float = 0.002,
    lid_share: float = 0.3,
    history_sync_share: float = 0.05,
    start: datetime = DEFAULT_START,
    tz: str = DEFAULT_TZ,
    drop_formats: Sequence[DropFormat] = DEFAULT_DROP_FORMATS,
    fraction_rate: float = 0.03,
    from_me_rate: float = 0.01,
    mean_gap_s: float | None = None,
    with_lid_map: bool = True,
    chunk_size: int = 50_000,
) -> SimTruth:
    """Write a realistic bridge store of `n_messages` distinct messages; return its truth.

    Deterministic: the same arguments give the same rows (ids, senders, contents,
    timestamps) in the same rowid order. Appends to an existing store; the truth covers
    what this call wrote.

    Args:
        messages_db: the bridge's messages.db (created if missing).
        whatsapp_db: whatsmeow's whatsapp.db for contacts and LIDs, or None.
        groups: the groups to post in; weights make some busy and some quiet.
        n_messages: distinct messages to write (media rows included).
        seed: the random seed.
        drop_rate: share of messages that are drop posts (resubmissions included).
        resubmit_share: share of drop posts that repeat an earlier drop of the same group.
        media_rate: share of messages that are media rows (photo bursts after drop posts,
            plus stray photos, videos, voice notes and documents).
        redelivery_rate: chance per live message that a recent message is stored again.
        lid_share: share of members addressed by LID (0 when `with_lid_map` is False).
        history_sync_share: share of messages missed during outages and written later by
            history sync, with full-JID senders and old timestamps.
        start: aware time of the first message.
        tz: the bridge host's zone, used for the timestamp text.
        drop_formats: drop number formats to post (ALL_DROP_FORMATS for FIELD_NOTES bug 9).
        fraction_rate: share of timestamps written with fractional seconds.
        from_me_rate: share of chatter sent by the bridge's own account (is_from_me).
        mean_gap_s: mean seconds between messages in working hours (default from the
            number of groups); nights and Sundays are quieter. Gaps are at least 1 s, so
            timestamps never repeat.
        with_lid_map: create whatsmeow_lid_map (an older bridge has none, and no LIDs).
        chunk_size: rows per write transaction.

    Returns:
        The SimTruth of everything posted.
    """
    for name, value in (
        ("drop_rate", drop_rate),
        ("resubmit_share", resubmit_share),
        ("media_rate", media_rate),
        ("redelivery_rate", redelivery_rate),
        ("lid_share", lid_share),
        ("history_sync_share", history_sync_share),
        ("fraction_rate", fraction_rate),
        ("from_me_rate", from_me_rate),
    ):
        _check_rate(name, value)
    if n_messages < 0:
        raise ValueError(f"n_messages must be >= 0, got {n_messages}")
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be an aware datetime")
    if drop_rate + media_rate > 1.0:
        raise ValueError("drop_rate + media_rate must not exceed 1")
    run = _BulkRun(
        groups=groups,
        seed=seed,
        drop_rate=drop_rate,
        resubmit_share=resubmit_share,
        media_rate=media_rate,
        redelivery_rate=redelivery_rate,
        lid_share=lid_share if with_lid_map else 0.0,
        history_sync_share=history_sync_share,
        start=start,
        zone=ZoneInfo(tz),
        drop_formats=drop_formats,
        fraction_rate=fraction_rate,
        from_me_rate=from_me_rate,
        mean_gap_s=mean_gap_s if mean_gap_s is not None else min(60.0, 160.0 / len(groups)),
    )
    with StoreWriter(
        messages_db, whatsapp_db, tz=tz, with_lid_map=with_lid_map, bulk=True
    ) as writer:
        for group in groups:
            writer.add_chat(group.jid, group.name)
        writer.add_members(run.composer.people.members[1:])
        return run.run(writer, n_messages, chunk_size)


class _BulkRun:
    def __init__(
        self,
        *,
        groups: Sequence[SimGroup],
        seed: int,
        drop_rate: float,
        resubmit_share: float,
        media_rate: float,
        redelivery_rate: float,
        lid_share: float,
        history_sync_share: float,
        start: datetime,
        zone: ZoneInfo,
        drop_formats: Sequence[DropFormat],
        fraction_rate: float,
        from_me_rate: float,
        mean_gap_s: float,
    ) -> None:
        self.rng = random.Random(seed)
        self.composer = _Composer(
            self.rng,
            groups,
            lid_share=lid_share,
            drop_formats=drop_formats,
            resubmit_share=resubmit_share,
        )
        self.clock = _Clock(zone)
        self.truth = _TruthBuilder(self.clock)
        self.drop_rate = drop_rate
        self.media_rate = media_rate
        self.redelivery_rate = redelivery_rate
        self.history_sync_share = history_sync_share
        self.start = start
        self.fraction_rate = fraction_rate
        self.from_me_rate = from_me_rate
        self.mean_gap_s = max(0.0, mean_gap_s - 1.0)

    def run(self, writer: StoreWriter, n: int, chunk_size: int) -> SimTruth:
        # SQLite releases the GIL while it inserts, so one chunk is written while the
        # next is composed; rows still reach the table in order, one chunk at a time.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="simulate-writer") as pool:
            return self._generate(writer, n, chunk_size, pool)

    def _generate(
        self, writer: StoreWriter, n: int, chunk_size: int, pool: ThreadPoolExecutor
    ) -> SimTruth:
        rng = self.rng
        composer = self.composer
        people = composer.people
        clock = self.clock
        text_of = clock.text
        truth = self.truth
        jids = [g.jid for g in composer.groups]

        # Photo bursts follow drop posts in the next slots; the drawn slots make up the rest.
        drop_rate, media_rate = self.drop_rate, self.media_rate
        burst_mean = min(7.5, media_rate / drop_rate) if drop_rate > 0 else 0.0
        drawn = max(1e-9, 1.0 - drop_rate * burst_mean)
        p_drop = drop_rate / drawn
        p_media = p_drop + max(0.0, media_rate - drop_rate * burst_mean) / drawn

        outages = deque(_plan_outages(rng, n, self.history_sync_share))
        outage_end: int | None = None
        flush_at: int | None = None
        missed: list[tuple[MessageRow, str]] = []  # (row, history sender)
        overlap: list[tuple[MessageRow, str]] = []

        pending: list[MessageRow] = []
        writing: Future[int] | None = None
        recent: deque[tuple[MessageRow, str]] = deque(maxlen=64)
        recent_drops: deque[tuple[MessageRow, str]] = deque(maxlen=16)
        burst_group, burst_person, burst_left = 0, 0, 0
        media_rows = redeliveries = history_synced = 0

        epoch = int(self.start.timestamp())
        first_epoch = epoch
        offset = clock.offset_seconds(epoch)
        mean_gap = self.mean_gap_s
        fraction_rate, from_me_rate, redelivery_rate = (
            self.fraction_rate,
            self.from_me_rate,
            self.redelivery_rate,
        )

        def flush_history() -> None:
            nonlocal missed, overlap, flush_at, redeliveries, history_synced
            # History sync comes conversation by conversation, newest message first.
            by_chat: dict[str, list[MessageRow]] = {}
            for row, sender in itertools.chain(overlap, missed):
                by_chat.setdefault(row.chat_jid, []).append(row._replace(sender=sender))
            for rows in by_chat.values():
                pending.extend(reversed(rows))
            redeliveries += len(overlap)
            history_synced += len(missed)
            missed, overlap, flush_at = [], [], None

        for i in range(n):
            if outages and outages[0][0] == i:
                if flush_at is not None:
                    flush_history()
                outage_end = outages.popleft()[1]
                # The sync also re-sends a few messages stored just before the outage.
                resent = rng.randint(0, 5)
                overlap = list(recent)[len(recent) - resent :] if resent else []
            if outage_end is not None and i == outage_end:
                outage_end = None
                flush_at = i + rng.randint(5, 80)
            if flush_at is not None and i >= flush_at:
                flush_history()

            if burst_left:
                burst_left -= 1
                epoch += rng.randint(1, 4)
                g, person = burst_group, burst_person
                kind = 3
            else:
                hour = (epoch + offset) // 3600
                factor = 1.0 if 6 <= hour % 24 < 18 else (3.0 if 18 <= hour % 24 < 22 else 12.0)
                if (hour // 24 + 3) % 7 == 6:  # Sunday
                    factor *= 3.0
                epoch += 1 + int(rng.expovariate(1.0 / (mean_gap * factor))) if mean_gap else 1
                g = composer.pick_group()
                r = rng.random()
                kind = 1 if r < p_drop else (2 if r < p_media else 0)
                person = 0
            nanos = rng.randrange(1, 10**9) if rng.random() < fraction_rate else 0
            ts = text_of(epoch, nanos)
            if i == 0:
                first_epoch = epoch
            jid = jids[g]

            drops: tuple[str, ...] = ()
            if kind == 0:
                from_me = rng.random() < from_me_rate
                person = 0 if from_me else composer.pick_talker(g)
                sender = people.live[person]
                row = _text_row(rng, jid, sender, _chatter_text(rng), ts, is_from_me=from_me)
            elif kind == 1:
                person, text, drops, _resub = composer.drop_post(g)
                row = _text_row(rng, jid, people.live[person], text, ts)
                truth.record(jid, drops, epoch, nanos, people.members[person])
                burst_group, burst_person = g, person
                burst_left = _burst_size(rng, burst_mean)
            else:
                if kind == 2:
                    person = composer.pick_talker(g)
                    media = _STRAY_MEDIA[bisect.bisect(_STRAY_MEDIA_CUM, rng.random())]
                else:
                    media = "image" if rng.random() < 0.95 else "video"
                row = _media_row(rng, jid, people.live[person], ts, media, is_from_me=person == 0)
                media_rows += 1

            if outage_end is not None:
                missed.append((row, people.history[person]))
            else:
                pending.append(row)
                entry = (row, people.history[person])
                recent.append(entry)
                if drops:
                    recent_drops.append(entry)
                if rng.random() < redelivery_rate:
                    source = recent_drops if recent_drops and rng.random() < 0.4 else recent
                    pending.append(source[rng.randrange(len(source))][0])
                    redeliveries += 1
            if len(pending) >= chunk_size:
                if writing is not None:
                    writing.result()
                writing = pool.submit(writer.write_many, pending, chunk_size=chunk_size)
                pending = []

        if missed or overlap:
            flush_history()
        if writing is not None:
            writing.result()
        writer.write_many(pending, chunk_size=chunk_size)
        return truth.build(
            messages=n,
            media_rows=media_rows,
            redeliveries=redeliveries,
            history_synced=history_synced,
            first_time=clock.aware(first_epoch) if n else None,
            last_time=clock.aware(epoch) if n else None,
            members=tuple(people.members),
        )


# -- live simulation ------------------------------------------------------------------

EventKind = Literal["chatter", "drop", "resubmission", "photo", "redelivery", "history_sync"]


@dataclass(frozen=True)
class SimEvent:
    """One message a LiveSimulator step wrote."""

    kind: EventKind
    group: SimGroup
    message_id: str
    rowid: int
    sender: str
    """The `sender` text as written (user part live, full JID from history sync)."""
    member: Member
    content: str | None
    timestamp: datetime
    drop_numbers: tuple[str, ...]
    """Normalised drop numbers the message names (for a re-delivery: the original's)."""
    media_type: str

    @property
    def lid_sender(self) -> bool:
        """The sender is addressed by LID, not by phone number."""
        return self.member.lid is not None and self.sender.split("@", 1)[0] == self.member.lid


class SteppingClock:
    """A deterministic clock: `start`, then `step` later on every call."""

    def __init__(self, start: datetime, step: timedelta = timedelta(seconds=20)) -> None:
        if start.tzinfo is None:
            raise ValueError("start must be an aware datetime")
        self._now = start
        self._step = step

    def __call__(self) -> datetime:
        now = self._now
        self._now += self._step
        return now


class LiveSimulator:
    """Writes one realistic bridge event per `step()`, for the demo and live tests.

    A drop post is followed by a few photos of the same sender and group on the next
    steps; a resubmission repeats a drop posted earlier in the same group; re-deliveries
    store a recent message again; history-sync events store an old message late.
    Content is decided by the seeded RNG; timestamps come from `clock` (default: now).
    """

    def __init__(
        self,
        writer: StoreWriter,
        groups: Sequence[SimGroup] = DEMO_GROUPS,
        *,
        seed: int = 0,
        clock: Callable[[], datetime] | None = None,
        drop_rate: float = 0.15,
        resubmit_share: float = 0.2,
        redelivery_rate: float = 0.03,
        history_sync_rate: float = 0.02,
        lid_share: float = 0.3,
        drop_formats: Sequence[DropFormat] = DEFAULT_DROP_FORMATS,
        photos_per_drop: tuple[int, int] = (2, 5),
        media_rate: float = 0.05,
    ) -> None:
        for name, value in (
            ("drop_rate", drop_rate),
            ("resubmit_share", resubmit_share),
            ("redelivery_rate", redelivery_rate),
            ("history_sync_rate", history_sync_rate),
            ("lid_share", lid_share),
            ("media_rate", media_rate),
        ):
            _check_rate(name, value)
        if redelivery_rate + history_sync_rate + drop_rate + media_rate > 1.0:
            raise ValueError("the event rates must add up to at most 1")
        self.writer = writer
        self._rng = random.Random(seed)
        self._composer = _Composer(
            self._rng,
            groups,
            lid_share=lid_share,
            drop_formats=drop_formats,
            resubmit_share=resubmit_share,
        )
        self._clock_fn = clock or (lambda: datetime.now(UTC))
        self._clock = _Clock(writer.zone)
        self._truth = _TruthBuilder(self._clock)
        self._rates = (redelivery_rate, history_sync_rate, drop_rate, media_rate)
        self._photos = photos_per_drop
        self._burst: tuple[int, int, int] | None = None  # (group, person, photos left)
        self._recent: deque[tuple[MessageRow, int, int, tuple[str, ...]]] = deque(maxlen=50)
        self._last_epoch = 0
        self._messages = self._media = self._redeliveries = self._history = 0
        self._first: datetime | None = None
        self._latest: datetime | None = None
        for group in groups:
            writer.add_chat(group.jid, group.name)
        writer.add_members(self._composer.people.members[1:])

    @property
    def members(self) -> tuple[Member, ...]:
        """Everyone who may post; the first is the bridge's own account."""
        return tuple(self._composer.people.members)

    def run(self, steps: int) -> list[SimEvent]:
        return [self.step() for _ in range(steps)]

    def truth(self) -> SimTruth:
        """The truth of everything written so far."""
        return self._truth.build(
            messages=self._messages,
            media_rows=self._media,
            redeliveries=self._redeliveries,
            history_synced=self._history,
            first_time=self._first,
            last_time=self._latest,
            members=self.members,
        )

    def step(self) -> SimEvent:
        """Write one event and describe it."""
        rng = self._rng
        composer = self._composer
        now = self._clock_fn()
        epoch = max(int(now.timestamp()), self._last_epoch)
        self._last_epoch = epoch
        nanos = rng.randrange(1, 10**9) if rng.random() < 0.03 else 0

        if self._burst is not None:
            g, person, left = self._burst
            self._burst = (g, person, left - 1) if left > 1 else None
            return self._media_event(g, person, epoch, nanos)

        redelivery, history, drop, media = self._rates
        r = rng.random()
        if r < redelivery and self._recent:
            return self._redeliver()
        r -= redelivery
        if r < history:
            age = rng.randint(600, 6 * 3600)
            return self._message_event(composer.pick_group(), epoch - age, nanos, history=True)
        r -= history
        if r < drop:
            return self._message_event(composer.pick_group(), epoch, nanos, drop=True)
        r -= drop
        if r < media:
            g = composer.pick_group()
            return self._media_event(g, composer.pick_talker(g), epoch, nanos)
        return self._message_event(composer.pick_group(), epoch, nanos)

    def _message_event(
        self, g: int, epoch: int, nanos: int, *, drop: bool = False, history: bool = False
    ) -> SimEvent:
        rng = self._rng
        composer = self._composer
        people = composer.people
        group = composer.groups[g]
        kind: EventKind = "chatter"
        drops: tuple[str, ...] = ()
        if drop or (history and rng.random() < 0.3):
            person, text, drops, resub = composer.drop_post(g)
            kind = "resubmission" if resub else "drop"
            if not history:
                low, high = self._photos
                photos = rng.randint(low, high)
                self._burst = (g, person, photos) if photos > 0 else None
        else:
            person = composer.pick_talker(g)
            text = _chatter_text(rng)
        sender = people.history[person] if history else people.live[person]
        row = _text_row(
            rng, group.jid, sender, text, self._clock.text(epoch, nanos), is_from_me=person == 0
        )
        rowid = self.writer.write(row)
        if drops:
            self._truth.record(group.jid, drops, epoch, nanos, people.members[person])
        if history:
            self._history += 1
            kind = "history_sync"
        return self._record(kind, row, rowid, g, person, epoch, nanos, drops)

    def _media_event(self, g: int, person: int, epoch: int, nanos: int) -> SimEvent:
        rng = self._rng
        composer = self._composer
        group = composer.groups[g]
        media = "image" if rng.random() < 0.9 else _pick(rng, ("video", "document", "audio"))
        row = _media_row(
            rng,
            group.jid,
            composer.people.live[person],
            self._clock.text(epoch, nanos),
            media,
            is_from_me=person == 0,
        )
        rowid = self.writer.write(row)
        self._media += 1
        return self._record("photo", row, rowid, g, person, epoch, nanos, ())

    def _redeliver(self) -> SimEvent:
        recent = self._recent
        row, g, person, drops = recent[self._rng.randrange(len(recent))]
        rowid = self.writer.redeliver(row.chat_jid, row.id)
        self._redeliveries += 1
        return SimEvent(
            kind="redelivery",
            group=self._composer.groups[g],
            message_id=row.id,
            rowid=rowid,
            sender=row.sender,
            member=self._composer.people.members[person],
            content=row.content,
            timestamp=parse_bridge_timestamp(row.timestamp),
            drop_numbers=drops,
            media_type=row.media_type,
        )

    def _record(
        self,
        kind: EventKind,
        row: MessageRow,
        rowid: int,
        g: int,
        person: int,
        epoch: int,
        nanos: int,
        drops: tuple[str, ...],
    ) -> SimEvent:
        self._messages += 1
        self._recent.append((row, g, person, drops))
        when = self._clock.aware(epoch, nanos)
        if self._first is None or when < self._first:
            self._first = when
        if self._latest is None or when > self._latest:
            self._latest = when
        return SimEvent(
            kind=kind,
            group=self._composer.groups[g],
            message_id=row.id,
            rowid=rowid,
            sender=row.sender,
            member=self._composer.people.members[person],
            content=row.content,
            timestamp=when,
            drop_numbers=drops,
            media_type=row.media_type,
        )


# -- benchmark groups -----------------------------------------------------------------

_BENCH_PLACES: Final = (
    "Soweto", "Tembisa", "Kagiso", "Diepsloot", "Soshanguve", "Atteridgeville", "Mabopane",
    "Orange Farm", "Ivory Park", "Alexandra", "Katlehong", "Vosloorus", "Daveyton", "Etwatwa",
    "Mamelodi", "Lawley", "Mohadin", "Ga-Rankuwa", "Winterveldt", "Hammanskraal",
    "Olievenhoutbosch",
    "Cosmo City", "Protea Glen", "Sebokeng", "Evaton",
)  # fmt: skip
_BENCH_KINDS: Final = (
    "Activations", "FTTH Installs", "Drops QA", "Install Team", "POP{n} Activations",
    "Phase {n}", "Ext {n} Activations",
)  # fmt: skip


def bench_groups(n: int, *, seed: int = 0) -> list[SimGroup]:
    """`n` plausible groups (`1203634` + 11 digits + `@g.us`, distinct names), deterministic."""
    rng = random.Random(f"bench-groups-{seed}")
    taken = {g.jid for g in DEMO_GROUPS}
    names: set[str] = set()
    groups: list[SimGroup] = []
    while len(groups) < n:
        jid = f"1203634{rng.randrange(10**11):011d}@g.us"
        kind = _pick(rng, _BENCH_KINDS).format(n=rng.randint(1, 9))
        name = f"{_pick(rng, _BENCH_PLACES)} {kind}"
        if name in names:
            name = f"{name} {len(groups) + 1}"
        if jid in taken or name in names:
            continue
        taken.add(jid)
        names.add(name)
        groups.append(SimGroup(jid, name))
    return groups
