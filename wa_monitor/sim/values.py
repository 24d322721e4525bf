"""The values a simulation is made of and the truth it reports: groups, members, rows, drops."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final, Literal, NamedTuple
from zoneinfo import ZoneInfo

DEFAULT_TZ: Final = "Africa/Johannesburg"
DEFAULT_START: Final = datetime(2025, 11, 3, 6, 0, tzinfo=ZoneInfo(DEFAULT_TZ))
# The bridge's own account (the QA team's phone): whatsmeow stores the device JID.
OUR_PHONE: Final = "27711230000"
OUR_JID: Final = f"{OUR_PHONE}:12@s.whatsapp.net"


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
class PhotoTruth:
    """One media file the simulation posted, and everything about it a test may check."""

    message_id: str
    chat_jid: str
    sender_phone: str
    posted_at: datetime
    media_type: str
    """image, video, document or audio (the row's media_type)."""
    filename: str
    sha256: str
    """SHA-256 of the file, 64 hex digits (the row's file_sha256, hex)."""
    size: int
    content_type: str
    caption: str | None
    """The row's content when the installer wrote a caption (None: '' or NULL)."""
    drop_number: str | None
    """The drop the installer posted it for (normalised); None for a file of no drop."""
    round: int | None
    """0 for the drop's first post, 1 for its first resubmission, ..."""
    step: str | None
    """The step column the photo shows (None: a video, a document, or a stray file)."""
    serial: str | None
    """The barcode text on it (the ONT serial on step 8, the UPS serial on step 9)."""
    blurred: bool = False
    dark: bool = False
    taken_early: bool = False
    """Its EXIF DateTimeOriginal is days before it was posted."""
    reused_from: str | None = None
    """Message id of the earlier photo, of another drop, whose picture this one repeats."""
    reencoded: bool = False
    """A re-use that is a resized, re-encoded copy (other bytes, the same picture)."""
    expired: bool = False
    """WhatsApp no longer has it: no origin file, and /api/download fails with 404."""
    origin: Path | None = None
    """The decrypted file (None when expired)."""


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
    photos: tuple[PhotoTruth, ...] = ()
    """Every media file written (when the simulation wrote files), in posting order."""

    def for_group(self, group_jid: str) -> dict[str, DropTruth]:
        """The drops of one group, keyed by normalised drop number."""
        return {drop: t for (jid, drop), t in self.drops.items() if jid == group_jid}

    def photos_for(self, group_jid: str, drop_number: str) -> list[PhotoTruth]:
        """The media files posted for one drop of one group (all rounds), in posting order."""
        return [p for p in self.photos if (p.chat_jid, p.drop_number) == (group_jid, drop_number)]
