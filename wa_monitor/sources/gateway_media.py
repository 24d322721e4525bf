"""Downloading a photo from a webhook gateway (WAHA, Evolution API), bounded and hashed.

- WAHA: the webhook's `media.url` (kept in the inbox), fetched with `X-Api-Key`. The key
  goes only to WAHA_URL: a URL of another origin is fetched from WAHA_URL when it is one
  of WAHA's file paths (`/api/files/…`, WAHA's public base URL may differ from the one the
  monitor reaches it at), else refused.
- Evolution API: `POST {EVOLUTION_URL}/chat/getBase64FromMediaMessage/{instance}` with
  `{"message": {"key": {"id": …}}, "convertToMp4": false}` and the `apikey` header; it
  answers `{"base64", "mimetype", …}`.

Nothing here raises for one photo's problem: the answer is a `GatewayDownload` with a
status (as the bridge's: `ready`, `retry`, `unavailable`, `failed`) and, when `ready`, the
bytes in a temporary file (at its start), their size and SHA-256. Never more than
`max_bytes` is read.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import tempfile
from dataclasses import dataclass
from typing import IO, Protocol
from urllib.parse import quote, urlsplit

import httpx

from wa_monitor.sources.bridge_media import DownloadStatus

__all__ = [
    "EvolutionMediaClient",
    "GatewayDownload",
    "GatewayMediaClient",
    "GatewayMediaRef",
    "WahaMediaClient",
]

# Kept in memory up to this size, then spilled to a temporary file.
_SPOOL = 4 * 1024 * 1024
_CHUNK = 256 * 1024


@dataclass(frozen=True)
class GatewayMediaRef:
    """A media message as the inbox knows it."""

    chat_jid: str
    message_id: str
    media_url: str | None = None  # WAHA's media.url; Evolution asks by the message's id


@dataclass(frozen=True)
class GatewayDownload:
    """A gateway's answer: `ready` with the bytes (a file at its start), or why not."""

    status: DownloadStatus
    reason: str
    file: IO[bytes] | None = None
    size: int = 0
    sha256: str | None = None  # of the bytes, 64 lowercase hex digits


class GatewayMediaClient(Protocol):
    def download(self, ref: GatewayMediaRef, *, max_bytes: int) -> GatewayDownload: ...
    def close(self) -> None: ...


def _where(ref: GatewayMediaRef) -> str:
    return f"message {ref.message_id} in {ref.chat_jid}"


def _http_problem(
    gateway: str, where: str, status: int, settings_hint: str
) -> GatewayDownload | None:
    """The download's status for an HTTP error answer (None for a 200)."""
    if status == 200:
        return None
    if status in (404, 410):
        return GatewayDownload(
            "unavailable",
            f"{where}: {gateway} no longer has this media (HTTP {status}); only the phone "
            "that took it can send it again",
        )
    if status in (401, 403):
        return GatewayDownload(
            "retry",
            f"{where}: {gateway} refused the API key (HTTP {status}); check {settings_hint}",
        )
    return GatewayDownload("retry", f"{where}: {gateway} answered HTTP {status}")


class _Sink:
    """Bytes into a spooled temporary file, hashed and counted, refused past a bound."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.file: IO[bytes] = tempfile.SpooledTemporaryFile(_SPOOL)  # noqa: SIM115
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> bool:
        """False (nothing more taken) once the bound would be passed."""
        self.size += len(data)
        if self.size > self.max_bytes:
            return False
        self.hash.update(data)
        self.file.write(data)
        return True

    def ready(self, where: str) -> GatewayDownload:
        self.file.seek(0)
        return GatewayDownload(
            "ready", f"{where}: downloaded", self.file, self.size, self.hash.hexdigest()
        )

    def too_large(self, where: str) -> GatewayDownload:
        self.file.close()
        return GatewayDownload(
            "failed", f"{where}: more than {self.max_bytes} bytes, over the limit; not kept"
        )


class WahaMediaClient:
    """Fetches WAHA's media URLs with its API key; only from WAHA_URL's origin."""

    def __init__(self, base_url: str, api_key: str | None, *, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        headers = {"X-Api-Key": api_key} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def _url(self, media_url: str) -> str | None:
        """The URL to fetch: at WAHA_URL's origin, or None when it cannot be."""
        ours, theirs = urlsplit(self.base_url), urlsplit(media_url)
        if (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc):
            return media_url
        if theirs.path.startswith("/api/files/"):
            query = f"?{theirs.query}" if theirs.query else ""
            return f"{ours.scheme}://{ours.netloc}{theirs.path}{query}"
        return None

    def download(self, ref: GatewayMediaRef, *, max_bytes: int) -> GatewayDownload:
        where = _where(ref)
        if not ref.media_url:
            return GatewayDownload(
                "failed",
                f"{where}: WAHA's webhook gave no media URL (turn on WAHA's media download, "
                "WHATSAPP_DOWNLOAD_MEDIA, for new photos)",
            )
        url = self._url(ref.media_url)
        if url is None:
            return GatewayDownload(
                "failed",
                f"{where}: the media URL is neither at WAHA_URL nor one of WAHA's files; refused",
            )
        sink = _Sink(max_bytes)
        try:
            with self._http.stream("GET", url) as response:
                problem = _http_problem("WAHA", where, response.status_code, "WAHA_API_KEY")
                if problem is not None:
                    sink.file.close()
                    return problem
                for chunk in response.iter_bytes(_CHUNK):
                    if not sink.write(chunk):
                        return sink.too_large(where)
        except httpx.TimeoutException:
            sink.file.close()
            return GatewayDownload(
                "retry", f"{where}: WAHA did not answer within {self.timeout:g} s"
            )
        except httpx.HTTPError as exc:
            sink.file.close()
            return GatewayDownload(
                "retry", f"{where}: WAHA at {self.base_url} is unreachable ({exc})"
            )
        return sink.ready(where)


class EvolutionMediaClient:
    """Asks Evolution API for a media message's bytes (base64) by the message's id."""

    def __init__(
        self, base_url: str, api_key: str | None, instance: str, *, timeout: float = 30.0
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.instance = instance
        self.timeout = timeout
        headers = {"apikey": api_key} if api_key else {}
        self._http = httpx.Client(timeout=timeout, headers=headers)

    def close(self) -> None:
        self._http.close()

    def download(self, ref: GatewayMediaRef, *, max_bytes: int) -> GatewayDownload:
        where = _where(ref)
        url = f"{self.base_url}/chat/getBase64FromMediaMessage/{quote(self.instance, safe='')}"
        body = {"message": {"key": {"id": ref.message_id}}, "convertToMp4": False}
        # base64 is 4 characters per 3 bytes; the JSON around it is small.
        limit = max_bytes * 4 // 3 + 64 * 1024
        try:
            with self._http.stream("POST", url, json=body) as response:
                problem = _http_problem(
                    "Evolution API", where, response.status_code, "EVOLUTION_API_KEY"
                )
                if problem is not None:
                    return problem
                parts: list[bytes] = []
                held = 0
                for chunk in response.iter_bytes(_CHUNK):
                    held += len(chunk)
                    if held > limit:
                        return GatewayDownload(
                            "failed",
                            f"{where}: more than {max_bytes} bytes, over the limit; not kept",
                        )
                    parts.append(chunk)
        except httpx.TimeoutException:
            return GatewayDownload(
                "retry", f"{where}: Evolution API did not answer within {self.timeout:g} s"
            )
        except httpx.HTTPError as exc:
            return GatewayDownload(
                "retry", f"{where}: Evolution API at {self.base_url} is unreachable ({exc})"
            )
        return self._decoded(where, b"".join(parts), max_bytes)

    def _decoded(self, where: str, raw: bytes, max_bytes: int) -> GatewayDownload:
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = None
        encoded = answer.get("base64") if isinstance(answer, dict) else None
        if not isinstance(encoded, str) or not encoded:
            return GatewayDownload("retry", f"{where}: Evolution API's answer holds no base64")
        if encoded.startswith("data:") and "," in encoded:
            encoded = encoded.split(",", 1)[1]  # a data: URL
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            return GatewayDownload("failed", f"{where}: Evolution API's base64 is not valid")
        sink = _Sink(max_bytes)
        if not sink.write(data):
            return sink.too_large(where)
        return sink.ready(where)
