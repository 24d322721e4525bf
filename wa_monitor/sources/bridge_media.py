"""Asking the WhatsApp bridge for a media file, and opening what it wrote, read-only.

`POST {BRIDGE_URL}/download {"message_id", "chat_jid"}` makes the bridge fetch and decrypt
the file into its store folder and answer `{"success", "message", "filename", "path"}`. The
path comes from another program, so it is trusted only once it resolves (symbolic links
followed) inside the configured store folder. Nothing here raises for one photo's problem:
the answer is a `BridgeDownload` whose status says what to do with it.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

import httpx

__all__ = ["BridgeDownload", "BridgeMediaClient", "DownloadStatus"]

DownloadStatus = Literal["ready", "retry", "unavailable", "failed"]

# WhatsApp's servers answer 404/410 for media they dropped (after some weeks); the bridge
# passes that on in its message. Anything else (not connected, a busy phone) may pass.
_GONE = re.compile(r"\b(404|410)\b|expired|no longer available", re.IGNORECASE)


@dataclass(frozen=True)
class BridgeDownload:
    """The bridge's answer: `ready` with the file's path inside the store, or why not."""

    status: DownloadStatus
    reason: str
    path: Path | None = None


class BridgeMediaClient:
    """Downloads through the bridge at `base_url`; files are read only under `store_root`."""

    def __init__(
        self,
        base_url: str,
        store_root: Path,
        *,
        timeout: float = 60.0,
        token: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.store_root = Path(store_root)
        self.timeout = timeout
        # `wa-monitor bridge` and the maintained fork want BRIDGE_TOKEN on every call; the
        # upstream bridge takes none.
        headers = {"Authorization": f"Bearer {token}"} if token else None
        # One client for every download: its connections (and TLS context) are reused
        # instead of made per photo. httpx's Client is safe to share between threads.
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def download(self, message_id: str, chat_jid: str) -> BridgeDownload:
        """Ask the bridge to download one message's media; never raises for that message."""
        where = f"message {message_id} in {chat_jid}"
        try:
            response = self._http.post(
                f"{self.base_url}/download",
                json={"message_id": message_id, "chat_jid": chat_jid},
            )
        except httpx.TimeoutException:
            return BridgeDownload(
                "retry", f"{where}: the bridge did not answer within {self.timeout:g} s"
            )
        except httpx.HTTPError as exc:
            return BridgeDownload(
                "retry", f"{where}: the bridge at {self.base_url} is unreachable ({exc})"
            )
        if response.status_code in (401, 403):
            return BridgeDownload(
                "retry",
                f"{where}: the bridge refused the download (HTTP {response.status_code}): "
                + (
                    "check BRIDGE_TOKEN"
                    if "Authorization" in self._http.headers
                    else "it wants a token: set BRIDGE_TOKEN"
                ),
            )
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if not isinstance(answer, dict):
            return BridgeDownload(
                "retry", f"{where}: the bridge answered HTTP {response.status_code} without JSON"
            )
        message = str(answer.get("message") or "")[:200]
        if answer.get("success") is not True:
            if _GONE.search(message):
                return BridgeDownload(
                    "unavailable",
                    f"{where}: WhatsApp no longer has this media ({message}); only the "
                    "phone that took it can send it again",
                )
            return BridgeDownload(
                "retry",
                f"{where}: the bridge could not download it (HTTP {response.status_code}: "
                f"{message or 'no reason given'})",
            )
        raw_path = answer.get("path")
        if not isinstance(raw_path, str) or not raw_path or "\0" in raw_path:
            return BridgeDownload("failed", f"{where}: the bridge answered success but no path")
        return self._inside_store(where, raw_path)

    def _inside_store(self, where: str, raw_path: str) -> BridgeDownload:
        try:
            root = self.store_root.resolve(strict=True)
        except OSError as exc:
            return BridgeDownload(
                "failed",
                f"{where}: the bridge's store folder {self.store_root} cannot be read "
                f"({exc.strerror}); check its setting",
            )
        # A relative path is the bridge's own, relative to its store folder.
        candidate = Path(raw_path) if os.path.isabs(raw_path) else root / raw_path
        try:
            real = candidate.resolve(strict=True)
        except FileNotFoundError:
            return BridgeDownload(
                "failed", f"{where}: the bridge said it wrote {raw_path}, but there is no such file"
            )
        except (OSError, RuntimeError) as exc:
            return BridgeDownload("failed", f"{where}: {raw_path} cannot be resolved ({exc})")
        if not real.is_relative_to(root):
            return BridgeDownload(
                "failed",
                f"{where}: the bridge's path {raw_path} leads outside its store folder "
                f"{root}; refused",
            )
        return BridgeDownload("ready", f"{where}: downloaded", real)

    def open(self, path: Path) -> IO[bytes]:
        """Open a `ready` download's file read-only; OSError if it is gone or not a file."""
        real = path.resolve(strict=True)
        if not real.is_relative_to(self.store_root.resolve(strict=True)):
            raise PermissionError(f"{path} is outside the bridge's store folder")
        # O_NOFOLLOW: a symbolic link swapped in since the check is not followed out.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise IsADirectoryError(f"{path} is not a regular file")
            return os.fdopen(fd, "rb")
        except BaseException:
            os.close(fd)
            raise
