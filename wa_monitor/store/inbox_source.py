"""The webhook inbox as a `Source`: the monitor reads `gateway_inbox` as it reads messages.db.

`seq` is the rowid. The writer (`wa_monitor.store.inbox`) gives it in commit order, and
again (higher) when a message is edited or deleted, so every promise of
`wa_monitor.sources.protocol` holds: a row stored later has a higher rowid, a changed
row comes up again in a later range, and a range read up to `max_rowid()` never misses
a row committed later. Reading never writes. Database errors are raised as
`InboxReadError`, a `BridgeStoreError`, which the monitor retries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from wa_monitor.core.errors import BridgeStoreError, ReviewDatabaseError
from wa_monitor.sources.bridge import sender_user
from wa_monitor.sources.protocol import (
    Deletion,
    Filters,
    GroupMessage,
    Prefilter,
    RawMessage,
    ScanRange,
    Sender,
)
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import gateway_inbox, gateway_lids

# The cursor's anchor column is varchar(250); rows looked at, at most, to find an anchor.
_ANCHOR_MAX = 250
_ANCHOR_TRIES = 100
# Senders whose phone and name are kept from the rows read (the monitor resolves the
# senders of the rows it just read); past this many, the memory starts over.
_SENDERS_KEPT = 20_000
# Rows per statement of `read_messages`.
_MESSAGES_PER_READ = 1000

t = gateway_inbox


class InboxReadError(BridgeStoreError):
    """The webhook inbox (in the review database) cannot be read now; the monitor retries."""


class InboxSource:
    """`gateway_inbox` of the review database, read as a `Source` (`seq` is the rowid)."""

    def __init__(self, store: ReviewStore) -> None:
        self.store = store
        # raw sender → (phone beside a LID, push name), from the rows read.
        self._senders: dict[str, tuple[str | None, str | None]] = {}
        self._lids: dict[str, tuple[str, str | None]] = {}  # LID user → (phone, name)

    # -- opening: nothing to open ----------------------------------------------------------

    def open(self) -> None:
        """Nothing to open: the review database is the store's."""

    def close(self) -> None:
        """Nothing to close (the store's engine is its owner's)."""

    def replaced(self) -> bool:
        return False

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.store.read() as conn:
                yield conn
        except ReviewDatabaseError as exc:
            raise InboxReadError(f"the webhook inbox: {exc}") from exc

    # -- rowids -----------------------------------------------------------------------------

    def data_version(self) -> int:
        """The highest seq: every write gives a row a new, higher one."""
        return self.max_rowid()

    def max_rowid(self) -> int:
        with self._read() as conn:
            value = conn.execute(sa.select(sa.func.max(t.c.seq))).scalar()
        return int(value or 0)

    def next_rowid(self, after: int) -> int | None:
        with self._read() as conn:
            value = conn.execute(sa.select(sa.func.min(t.c.seq)).where(t.c.seq > after)).scalar()
        return None if value is None else int(value)

    def anchor(self, high: int) -> str | None:
        """ "seq chat_jid message_id" of the last row at or below `high` that can be one."""
        query = (
            sa.select(t.c.seq, t.c.chat_jid, t.c.message_id)
            .where(t.c.seq <= high)
            .order_by(t.c.seq.desc())
            .limit(_ANCHOR_TRIES)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        for seq, chat_jid, message_id in rows:
            anchor = f"{seq} {chat_jid} {message_id}"
            if len(anchor) <= _ANCHOR_MAX and " " not in chat_jid and anchor.isprintable():
                return anchor
        return None

    def anchor_moved_back(self, anchor: str) -> bool:
        """True when the anchored row is gone (the inbox was emptied) or has a lower seq."""
        try:
            seq_text, chat_jid, message_id = anchor.split(" ", 2)
            seq = int(seq_text)
        except ValueError:
            return False
        with self._read() as conn:
            found = conn.execute(
                sa.select(t.c.seq).where(t.c.chat_jid == chat_jid, t.c.message_id == message_id)
            ).scalar()
        return found is None or int(found) < seq

    # -- rows -------------------------------------------------------------------------------

    def read_range(self, low: int, high: int, filters: Filters) -> ScanRange:
        """Rows with low < seq <= high of the groups in `filters` that may name a drop, and
        each group's count of rows in the range.

        A literal pre-filters in the database: a case-sensitive `Prefilter` with LIKE
        (exact on PostgreSQL; on SQLite ASCII case is ignored: more rows, never fewer),
        any other without regard to case.
        """
        groups = [jid for jids in filters.values() for jid in jids]
        if not groups or high <= low:
            return ScanRange([], {})
        clauses: list[sa.ColumnElement[bool]] = []
        for literal, jids in filters.items():
            if not jids:
                continue
            clause: sa.ColumnElement[bool] = t.c.chat_jid.in_(list(jids))
            if literal is None:
                clause = sa.and_(clause, t.c.content.is_not(None))
            elif isinstance(literal, Prefilter) and literal.case_sensitive:
                clause = sa.and_(clause, t.c.content.contains(literal.text, autoescape=True))
            else:
                text = literal.text if isinstance(literal, Prefilter) else literal
                clause = sa.and_(clause, t.c.content.icontains(text, autoescape=True))
            clauses.append(clause)
        in_range = sa.and_(t.c.seq > low, t.c.seq <= high)
        rows_query = (
            sa.select(
                t.c.seq,
                t.c.chat_jid,
                t.c.message_id,
                t.c.sender,
                t.c.content,
                t.c.sent_at,
                t.c.media_type,
                t.c.sender_pn,
                t.c.sender_name,
            )
            .where(in_range, sa.or_(*clauses))
            .order_by(t.c.seq)
        )
        counts_query = (
            sa.select(t.c.chat_jid, sa.func.count())
            .where(in_range, t.c.chat_jid.in_(groups))
            .group_by(t.c.chat_jid)
        )
        with self._read() as conn:
            found = conn.execute(rows_query).all()
            counts = {str(jid): int(n) for jid, n in conn.execute(counts_query)}
        rows = []
        for seq, chat_jid, message_id, sender, content, sent_at, media_type, pn, name in found:
            self._remember(sender, pn, name)
            rows.append(
                RawMessage(
                    int(seq), chat_jid, message_id, sender, content, sent_at, bool(media_type)
                )
            )
        return ScanRange(rows, counts)

    def read_messages(self, low: int, high: int, chats: Sequence[str]) -> list[GroupMessage]:
        """Every row of `chats` with low < seq <= high, in seq order, media columns included."""
        wanted = sorted(set(chats))
        if not wanted or high <= low:
            return []
        found: list[GroupMessage] = []
        after = low
        while after < high:
            query = (
                sa.select(
                    t.c.seq,
                    t.c.chat_jid,
                    t.c.message_id,
                    t.c.sender,
                    t.c.content,
                    t.c.sent_at,
                    t.c.media_type,
                    t.c.filename,
                    t.c.file_sha256,
                    t.c.file_length,
                    t.c.sender_pn,
                    t.c.sender_name,
                )
                .where(t.c.seq > after, t.c.seq <= high, t.c.chat_jid.in_(wanted))
                .order_by(t.c.seq)
                .limit(_MESSAGES_PER_READ)
            )
            with self._read() as conn:
                rows = conn.execute(query).all()
            for row in rows:
                found.append(_group_message(row))
                self._remember(row.sender, row.sender_pn, row.sender_name)
            if len(rows) < _MESSAGES_PER_READ:
                break
            after = int(rows[-1].seq)
        return found

    def read_deletions(self, low: int, high: int, chats: Sequence[str]) -> list[Deletion]:
        """The rows of `chats` with low < seq <= high whose message was deleted for everyone."""
        wanted = sorted(set(chats))
        if not wanted or high <= low:
            return []
        query = (
            sa.select(t.c.seq, t.c.chat_jid, t.c.message_id, t.c.deleted_at)
            .where(
                t.c.seq > low,
                t.c.seq <= high,
                t.c.chat_jid.in_(wanted),
                t.c.deleted_at.is_not(None),
            )
            .order_by(t.c.seq)
        )
        with self._read() as conn:
            rows = conn.execute(query).all()
        return [
            Deletion(int(seq), chat_jid, message_id, _epoch(deleted_at))
            for seq, chat_jid, message_id, deleted_at in rows
        ]

    # -- senders ----------------------------------------------------------------------------

    def resolve_senders(self, senders: Iterable[str]) -> dict[str, Sender]:
        """Each sender's phone and name: the phone the gateway gave beside a LID, else the
        one looked up for the LID (gateway_lids), else the sender's own number; the push
        name, else the looked-up name, else the phone."""
        raws = set(senders)
        unknown = [raw for raw in raws if raw not in self._senders]
        if unknown:
            self._fetch_senders(unknown)
        lid_users = {
            sender_user(raw)
            for raw in raws
            if not (self._senders.get(raw) or (None, None))[0] and sender_user(raw)
        }
        missing = [u for u in lid_users if u not in self._lids]
        if missing:
            self._fetch_lids(missing)
        result: dict[str, Sender] = {}
        for raw in raws:
            pn, name = self._senders.get(raw) or (None, None)
            user = sender_user(raw)
            looked_up = self._lids.get(user)
            if pn:
                phone = sender_user(pn)
            elif looked_up is not None:
                phone = looked_up[0]
            else:
                phone = user
            name = name or (looked_up[1] if looked_up else None) or phone
            result[raw] = Sender(phone=phone, name=name)
        return result

    def _remember(self, sender: str, pn: str | None, name: str | None) -> None:
        if len(self._senders) >= _SENDERS_KEPT:
            self._senders.clear()
        if pn or name or sender not in self._senders:
            self._senders[sender] = (pn, name)

    def _fetch_senders(self, senders: Sequence[str]) -> None:
        """The phone and name stored with each sender's latest row (rarely needed: the rows
        the monitor resolves were just read)."""
        query = (
            sa.select(t.c.sender, t.c.sender_pn, t.c.sender_name)
            .where(
                t.c.sender.in_(list(senders)),
                sa.or_(t.c.sender_pn.is_not(None), t.c.sender_name.is_not(None)),
            )
            .order_by(t.c.seq)
        )
        with self._read() as conn:
            for sender, pn, name in conn.execute(query):
                self._remember(sender, pn, name)
        for sender in senders:
            self._senders.setdefault(sender, (None, None))

    def _fetch_lids(self, users: Sequence[str]) -> None:
        # A LID may be recorded bare or as its JID.
        keys = {f"{u}@lid": u for u in users} | {u: u for u in users}
        query = sa.select(gateway_lids.c.lid, gateway_lids.c.phone, gateway_lids.c.name).where(
            gateway_lids.c.lid.in_(list(keys)), gateway_lids.c.phone.is_not(None)
        )
        with self._read() as conn:
            for lid, phone, name in conn.execute(query):
                # Only hits are kept: a LID looked up later is found then.
                self._lids[keys[lid]] = (sender_user(phone), name)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _group_message(row: Any) -> GroupMessage:
    sha = row.file_sha256
    return GroupMessage(
        rowid=int(row.seq),
        chat_jid=row.chat_jid,
        id=row.message_id,
        sender=row.sender,
        content=row.content,
        timestamp=row.sent_at,
        media_type=row.media_type,
        filename=row.filename,
        file_sha256=bytes(sha) if sha is not None else None,
        file_length=None if row.file_length is None else int(row.file_length),
    )
