"""A `Source` held in memory: the monitor without a bridge, for tests and experiments.

It keeps the promises `wa_monitor.sources.protocol` lists the way SQLite and the bridge keep
them: a message stored again replaces the old row under a new, higher rowid (INSERT OR
REPLACE), timestamps are whatever was written (history sync stores old ones late),
rowids may be chosen to leave gaps, and `recreate()` starts over at rowid 1, as
re-pairing the bridge does.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

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


@dataclass(frozen=True, slots=True)
class Media:
    """A message's media columns, as the bridge stores them for a photo, video, etc."""

    media_type: str | None = None
    filename: str | None = None
    file_sha256: bytes | None = None
    file_length: int | None = None


_NO_MEDIA = Media()


class InMemorySource:
    """Messages, contacts and LIDs in dicts; every `Source` method answers from them."""

    def __init__(self) -> None:
        self._rows: dict[int, RawMessage] = {}
        self._media: dict[int, Media] = {}
        self._rowids: list[int] = []  # sorted
        self._by_key: dict[tuple[str, str], int] = {}
        self._names: dict[str, str] = {}  # phone → contact name
        self._lids: dict[str, str] = {}  # LID → phone
        self._deleted: dict[tuple[str, str], str | float | None] = {}  # (chat, id) → when
        self._version = 0
        self._generation = 0
        self._opened: int | None = None

    # -- writing, as the bridge does ----------------------------------------------------

    def store(
        self,
        chat_jid: str,
        message_id: str,
        sender: str,
        content: str | None,
        timestamp: str | float | datetime | None,
        *,
        rowid: int | None = None,
        media: Media | None = None,
    ) -> int:
        """Store a message (replacing one with the same chat and id); returns its rowid.

        `media`: its media columns (a photo's type, file name, SHA-256 and length).
        """
        if rowid is None:
            rowid = (self._rowids[-1] if self._rowids else 0) + 1
        old = self._by_key.pop((chat_jid, message_id), None)
        if old is not None:
            del self._rows[old]
            self._media.pop(old, None)
            self._rowids.remove(old)
        if rowid in self._rows:
            raise ValueError(f"rowid {rowid} is taken")
        if isinstance(timestamp, datetime):
            timestamp = timestamp.isoformat(sep=" ")
        is_media = media is not None and media != _NO_MEDIA and bool(media.media_type)
        self._rows[rowid] = RawMessage(
            rowid, chat_jid, message_id, sender, content, timestamp, is_media
        )
        if media is not None and media != _NO_MEDIA:
            self._media[rowid] = media
        bisect.insort(self._rowids, rowid)
        self._by_key[(chat_jid, message_id)] = rowid
        self._version += 1
        return rowid

    def redeliver(self, chat_jid: str, message_id: str) -> int:
        """Store a message again, unchanged: it moves to a new rowid."""
        rowid = self._by_key[(chat_jid, message_id)]
        row, media = self._rows[rowid], self._media.get(rowid)
        return self.store(row.chat_jid, row.id, row.sender, row.content, row.timestamp, media=media)

    def delete(
        self, chat_jid: str, message_id: str, deleted_at: str | float | datetime | None = None
    ) -> int:
        """Record a "delete for everyone" as a bridge that keeps deletions does: the message's
        row is stored again (its rowid rises) and named deleted. Returns the new rowid."""
        if isinstance(deleted_at, datetime):
            deleted_at = deleted_at.isoformat(sep=" ")
        self._deleted[(chat_jid, message_id)] = deleted_at
        return self.redeliver(chat_jid, message_id)

    def member(self, phone: str, *, lid: str | None = None, name: str | None = None) -> None:
        if name is not None:
            self._names[phone] = name
        if lid is not None:
            self._lids[lid] = phone

    def recreate(self) -> None:
        """Start over, empty, at rowid 1 (the contacts stay, as whatsapp.db's would)."""
        self._rows.clear()
        self._media.clear()
        self._rowids.clear()
        self._by_key.clear()
        self._deleted.clear()
        self._generation += 1
        self._version += 1

    # -- the Source protocol --------------------------------------------------------------

    def open(self) -> None:
        self._opened = self._generation

    def close(self) -> None:
        self._opened = None

    def replaced(self) -> bool:
        return self._opened != self._generation

    def data_version(self) -> int:
        return self._version

    def max_rowid(self) -> int:
        return self._rowids[-1] if self._rowids else 0

    def next_rowid(self, after: int) -> int | None:
        at = bisect.bisect_right(self._rowids, after)
        return self._rowids[at] if at < len(self._rowids) else None

    def read_range(self, low: int, high: int, filters: Filters) -> ScanRange:
        wanted: dict[str, str | Prefilter | None] = {
            jid: literal for literal, jids in filters.items() for jid in jids
        }
        rows: list[RawMessage] = []
        counts: dict[str, int] = {}
        start = bisect.bisect_right(self._rowids, low)
        end = bisect.bisect_right(self._rowids, high)
        for rowid in self._rowids[start:end]:
            row = self._rows[rowid]
            if row.chat_jid not in wanted:
                continue
            counts[row.chat_jid] = counts.get(row.chat_jid, 0) + 1
            if row.content is not None and _may_match(row.content, wanted[row.chat_jid]):
                rows.append(row)
        return ScanRange(rows, counts)

    def read_messages(self, low: int, high: int, chats: Sequence[str]) -> list[GroupMessage]:
        wanted = set(chats)
        found: list[GroupMessage] = []
        start = bisect.bisect_right(self._rowids, low)
        end = bisect.bisect_right(self._rowids, high)
        for rowid in self._rowids[start:end]:
            row = self._rows[rowid]
            if row.chat_jid not in wanted:
                continue
            media = self._media.get(rowid, _NO_MEDIA)
            found.append(
                GroupMessage(
                    rowid,
                    row.chat_jid,
                    row.id,
                    row.sender,
                    row.content,
                    row.timestamp,
                    media.media_type,
                    media.filename,
                    media.file_sha256,
                    media.file_length,
                )
            )
        return found

    def anchor(self, high: int) -> str | None:
        at = bisect.bisect_right(self._rowids, high)
        for rowid in reversed(self._rowids[max(0, at - 100) : at]):
            row = self._rows[rowid]
            anchor = f"{row.rowid} {row.chat_jid} {row.id}"
            # As the bridge's: only an anchor that can be split again and stored.
            if len(anchor) <= 250 and " " not in row.chat_jid and anchor.isprintable():
                return anchor
        return None

    def anchor_moved_back(self, anchor: str) -> bool:
        try:
            rowid_text, chat_jid, message_id = anchor.split(" ", 2)
            rowid = int(rowid_text)
        except ValueError:
            return False
        found = self._by_key.get((chat_jid, message_id))
        return found is None or found < rowid

    def read_deletions(self, low: int, high: int, chats: Sequence[str]) -> list[Deletion]:
        wanted = set(chats)
        found: list[Deletion] = []
        start = bisect.bisect_right(self._rowids, low)
        end = bisect.bisect_right(self._rowids, high)
        for rowid in self._rowids[start:end]:
            row = self._rows[rowid]
            key = (row.chat_jid, row.id)
            if row.chat_jid in wanted and key in self._deleted:
                found.append(Deletion(rowid, row.chat_jid, row.id, self._deleted[key]))
        return found

    def resolve_senders(self, senders: Iterable[str]) -> dict[str, Sender]:
        result = {}
        for raw in set(senders):
            user = sender_user(raw)
            phone = self._lids.get(user, user)
            result[raw] = Sender(phone=phone, name=self._names.get(phone) or phone)
        return result


def _may_match(content: str, literal: str | Prefilter | None) -> bool:
    """The pre-filter, never stricter than SQLite's LIKE and GLOB (a superset is allowed)."""
    if literal is None:
        return True
    if isinstance(literal, Prefilter) and literal.case_sensitive:
        return literal.text in content
    text = literal.text if isinstance(literal, Prefilter) else literal
    return text.lower() in content.lower()
