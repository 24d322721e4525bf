"""Where the monitor reads messages from: the `Source` protocol and the values it hands over.

The monitor knows a source only through `Source`. The bridge's SQLite store
(`wa_monitor.sources.bridge.BridgeStore`) is the real one;
`wa_monitor.sources.memory.InMemorySource` is a fake for tests. Another source (a
webhook inbox kept in the review database, another bridge) is another class with these
methods; nothing else changes.

What a source must guarantee, because the monitor's cursors rely on it:

- Every message has a rowid, an integer > 0. A message stored later gets a higher rowid
  than every message present when it is stored, whatever its timestamp (history sync
  stores old messages late: the cursor is the rowid, never the time).
- A message stored again (re-delivery) gets a new, higher rowid and replaces the old
  row: the monitor sees it a second time, and the review database ignores the repeat.
- Rowids may have gaps of any size; `next_rowid` finds the next one in one step.
- A source that starts over (re-paired, re-created) may reuse rowids from 1. It must then
  either answer `replaced()` with True until `open()` is called, or make
  `anchor_moved_back` true for the anchors it gave before: the monitor rescans from
  the start then, and records nothing twice.
- `read_range` may return rows that name no drop (the monitor matches every row
  itself), but never leaves out one of the asked groups' rows with content. Rows come
  in rowid order. Any value is data: a source never fails on what a message holds.
- `read_messages` returns every row of the asked groups in the range, whatever it holds
  (texts and media, rows without content too), in rowid order.
- A deletion is recorded by storing the message's row again (so its new rowid comes up
  in a later range) and `read_deletions` naming it there.
- Reading never writes: a scan leaves the source as it found it. Errors are raised as
  `wa_monitor.core.errors.BridgeStoreError` (or a subclass), which the monitor retries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

# The largest rowid there is (SQLite's): a store holding it can no longer promise that
# later messages get higher rowids.
MAX_ROWID = 2**63 - 1


@dataclass(frozen=True, slots=True)
class RawMessage:
    """A stored message that may name a drop."""

    rowid: int
    chat_jid: str
    id: str
    sender: str
    content: str | None
    timestamp: str | float | None  # text as written; a number is an epoch time
    media: bool = False  # a photo, video, document or voice note (its caption is `content`)


@dataclass(frozen=True, slots=True)
class GroupMessage:
    """Any stored message of a group (a text or a media row), with its media columns.

    Values are as stored, made the types named here (a BLOB text decoded, a number
    written out); `file_sha256` is None unless the row holds bytes there. What a value
    means (a usable time, a sane hash) is for the reader to decide.
    """

    rowid: int
    chat_jid: str
    id: str
    sender: str  # raw, as stored (resolve with Source.resolve_senders)
    content: str | None
    timestamp: str | float | None
    media_type: str | None  # None or '' for a text
    filename: str | None
    file_sha256: bytes | None  # 32 raw bytes when sane
    file_length: int | None


@dataclass(frozen=True, slots=True)
class Deletion:
    """A message deleted in WhatsApp ("delete for everyone"), as its source recorded it.

    `rowid` is that of the message's row as stored when the deletion was recorded (a
    source stores the row again then, so the deletion comes up in a later range).
    """

    rowid: int
    chat_jid: str
    id: str
    deleted_at: str | float | None  # text as written; a number is an epoch time


@dataclass(frozen=True, slots=True)
class Sender:
    phone: str
    name: str


@dataclass(frozen=True, slots=True)
class Prefilter:
    """Text every message naming a drop must contain, for a source to filter rows on.

    Case-sensitive text is matched exactly; otherwise without regard to ASCII case, as
    for a plain `str` key of `Source.read_range`.
    """

    text: str
    case_sensitive: bool = False


@dataclass(frozen=True)
class ScanRange:
    """Candidate rows of a rowid range, and how many messages of each group it held."""

    rows: list[RawMessage]
    counts: dict[str, int]


# What `read_range` filters on: a literal (or None: no pre-filter) → the group JIDs it is for.
Filters = Mapping[str | Prefilter | None, Sequence[str]]


class Source(Protocol):
    """Messages by rowid, their senders, and whether anything changed."""

    def open(self) -> None:
        """(Re-)open the source, after `replaced()` said so."""

    def replaced(self) -> bool:
        """True when the source must be opened (again) before it is read."""

    def data_version(self) -> int:
        """A number that changes whenever messages may have been stored (cheap to poll)."""

    def max_rowid(self) -> int:
        """The highest rowid present; 0 when there is no message."""

    def next_rowid(self, after: int) -> int | None:
        """The first rowid above `after`, None when there is none."""

    def read_range(self, low: int, high: int, filters: Filters) -> ScanRange:
        """The rows with low < rowid <= high of the groups in `filters` that may name a drop,
        and how many messages each of those groups has in the range."""

    def read_messages(self, low: int, high: int, chats: Sequence[str]) -> list[GroupMessage]:
        """Every row of `chats` with low < rowid <= high, in rowid order (texts and media)."""

    def anchor(self, high: int) -> str | None:
        """Text identifying the last message at or below `high` (at most 250 characters)."""

    def anchor_moved_back(self, anchor: str) -> bool:
        """True when the anchored message is gone or has a lower rowid than recorded."""

    def resolve_senders(self, senders: Iterable[str]) -> dict[str, Sender]:
        """Each raw sender value's phone number and display name."""

    def read_deletions(self, low: int, high: int, chats: Sequence[str]) -> list[Deletion]:
        """The messages of `chats` with low < rowid <= high that were deleted in WhatsApp.

        A source that cannot know of deletions (the upstream bridge stores none) returns [].
        """
