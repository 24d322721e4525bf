"""`POST /api/download`'s work: a stored media message fetched, decrypted, verified, kept.

The file goes to `<store>/<chat_jid, ':' as '_'>/<name>`, named by the message id as
well as the second (photos of one burst never share a name), written atomically, and
only once its SHA-256 is the one the message announced. Names and folders come from
WhatsApp's data, so each is reduced to safe characters and the result must resolve
inside the store folder. The downloader (neonize's `download_any` in production) is a
parameter: the tests give one without a network.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from wa_monitor.bridge.handler import safe_name
from wa_monitor.bridge.store import MessageStore

log = logging.getLogger("wa_monitor.bridge")

# Takes a media message (waE2E, serialised) and answers the decrypted file's bytes.
Downloader = Callable[[bytes], bytes]

_URL: Final = re.compile(r"https?://\S+")
_CHAT: Final = re.compile(r"[0-9A-Za-z._:-]+@[0-9A-Za-z._-]+")
_UNSAFE_FOLDER: Final = re.compile(r"[^0-9A-Za-z@._-]")


@dataclass(frozen=True)
class DownloadAnswer:
    """The JSON answer of `/api/download` and its HTTP status, as upstream's."""

    status: int
    success: bool
    message: str
    filename: str = ""
    path: str = ""

    def body(self) -> dict[str, object]:
        body: dict[str, object] = {"success": self.success, "message": self.message}
        if self.success:
            body.update(filename=self.filename, path=self.path)
        return body


def chat_folder(chat_jid: str) -> str:
    """The folder of a chat's files: the JID with `:` as `_`, as upstream names it; any
    other character but letters, digits, `@`, `.`, `_` and `-` as `_` too."""
    return _UNSAFE_FOLDER.sub("_", chat_jid)[:200].lstrip(".") or "chat"


def disk_name(message_id: str, filename: str) -> str:
    """A file name that cannot collide with another message's: the id is always in it."""
    name = safe_name(filename or "media", 200)
    ident = safe_name(message_id, 64)
    return name if ident in name else f"{ident}_{name}"


def _failed(message: str, status: int = 500) -> DownloadAnswer:
    return DownloadAnswer(status, False, f"Failed to download media: {message}")


def _without_urls(text: str) -> str:
    """An error's text without media URLs: their query strings are access tokens."""
    return _URL.sub("<url>", text)[:300]


def download(
    store: MessageStore, root: Path, message_id: str, chat_jid: str, downloader: Downloader
) -> DownloadAnswer:
    """Download one stored message's media into `root`; the answer says what happened."""
    if not _CHAT.fullmatch(chat_jid):
        return _failed(f"{chat_jid!r} is not a chat JID", 400)
    row = store.message(chat_jid, message_id)
    if row is None:
        return _failed("failed to find message: no such message in messages.db")
    media = store.media(chat_jid, message_id)
    if not row.media_type or media is None:
        return _failed("not a media message")
    try:
        base = root.resolve(strict=True)
    except OSError as exc:
        return _failed(f"the store folder cannot be read ({exc.strerror})")
    folder = base / chat_folder(chat_jid)
    target = folder / disk_name(message_id, row.filename or "")
    if not target.resolve().is_relative_to(base):
        return _failed("the file's path would leave the store folder; refused", 400)
    expected = bytes(row.file_sha256 or b"")
    kind = row.media_type
    if target.is_file() and expected and _sha256(target) == expected:
        return DownloadAnswer(
            200, True, f"Successfully downloaded {kind} media", target.name, str(target)
        )
    try:
        data = downloader(media)
    except Exception as exc:  # neonize's DownloadError, a lost connection…
        log.warning(
            "bridge: media of %s in %s not downloaded: %s",
            message_id,
            chat_jid,
            _without_urls(str(exc)),
        )
        return _failed(f"failed to download media: {_without_urls(str(exc))}")
    if expected and hashlib.sha256(data).digest() != expected:
        return _failed(
            "the downloaded file's SHA-256 is not the message's (file_sha256); nothing kept"
        )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        _write(target, data)
    except OSError as exc:
        return _failed(f"cannot write {target.name} in the store folder ({exc.strerror})")
    log.info("bridge: %s media of %s in %s downloaded to %s", kind, message_id, chat_jid, target)
    return DownloadAnswer(
        200, True, f"Successfully downloaded {kind} media", target.name, str(target)
    )


def _sha256(path: Path) -> bytes:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.digest()


def _write(target: Path, data: bytes) -> None:
    """Write `data` to `target` whole or not at all: a temporary file renamed over it."""
    fd, temporary = tempfile.mkstemp(prefix=".incoming-", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o640)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
