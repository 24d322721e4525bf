"""Fetching one photo from the bridge into the media store, verified against `file_sha256`.

The download client lives in `sources` (it speaks only to the bridge and its folder); this
step sits in `monitor` because it also writes to the media store, which `sources` may not
import. Every per-photo problem becomes a `FetchOutcome` status, never an exception:
`fetched`, `retry` (try again later), `unavailable` (gone from WhatsApp) or `failed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wa_monitor.core.errors import MediaRejected, MediaStoreError
from wa_monitor.sources.bridge_media import BridgeMediaClient
from wa_monitor.store.media import MediaStore

__all__ = ["DEFAULT_MAX_BYTES", "FetchOutcome", "FetchStatus", "MediaRow", "fetch_photo"]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # larger than any phone photo; far below a long video

FetchStatus = Literal["fetched", "retry", "unavailable", "failed"]


@dataclass(frozen=True)
class MediaRow:
    """A media message as messages.db identifies it (`file_sha256` as the raw 32 bytes)."""

    message_id: str
    chat_jid: str
    filename: str
    file_sha256: bytes | None
    file_length: int | None


@dataclass(frozen=True)
class FetchOutcome:
    """What became of one photo; `sha256` and `size` are set when it was `fetched`."""

    status: FetchStatus
    reason: str
    sha256: str | None = None
    size: int | None = None


def fetch_photo(
    row: MediaRow,
    client: BridgeMediaClient,
    store: MediaStore,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
) -> FetchOutcome:
    """Download `row` through the bridge and store it under its SHA-256; never raises for it."""
    where = f"photo {row.filename!r} (message {row.message_id} in {row.chat_jid})"
    if not isinstance(row.file_sha256, bytes) or len(row.file_sha256) != 32:
        return FetchOutcome(
            "failed", f"{where}: the row has no file_sha256, so no download could be verified"
        )
    expected = row.file_sha256.hex()
    if row.file_length is not None and row.file_length > max_bytes:
        return FetchOutcome(
            "failed", f"{where}: {row.file_length} bytes, over the limit of {max_bytes}"
        )
    download = client.download(row.message_id, row.chat_jid)
    if download.status != "ready" or download.path is None:
        status: FetchStatus = "failed" if download.status == "ready" else download.status
        return FetchOutcome(status, download.reason)
    try:
        source = client.open(download.path)
    except OSError as exc:
        return FetchOutcome(
            "failed", f"{where}: {download.path} cannot be read ({exc.strerror or exc})"
        )
    try:
        with source:
            stored = store.put(expected, source, max_bytes=max_bytes)
    except MediaRejected as exc:
        if exc.reason == "mismatch":
            # The bridge names files by the second, so photos of one burst overwrite each
            # other and a download can return a sibling: asking again later usually helps.
            return FetchOutcome(
                "retry",
                f"{where}: the file the bridge wrote does not hash to file_sha256 (another "
                f"photo of the same burst, a known bridge bug); nothing stored: {exc}",
            )
        return FetchOutcome("failed", f"{where}: {exc}")
    except MediaStoreError as exc:
        return FetchOutcome("retry", f"{where}: the media store failed: {exc}")
    except OSError as exc:
        return FetchOutcome("failed", f"{where}: reading {download.path} failed ({exc})")
    return FetchOutcome("fetched", f"{where}: stored", stored.sha256, stored.size)
