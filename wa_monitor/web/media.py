"""The photos' files: GET /media/{sha256} and its thumbnail, streamed from the media store.

A file is served only when a group_messages row says it was fetched and verified against
the bridge's SHA-256 (status available): a hash nothing points at is 404, whatever the
store holds. Files are immutable (named by their content), so browsers may keep them a
year; they are private (signed-in users only). Images are shown inline; anything else
(a PDF, a video, an SVG that could carry script) is offered as a download, sandboxed.
Nothing is loaded whole: the store's reader is streamed chunk by chunk, and it verifies
the bytes at their end (a file damaged in the store breaks the download off, it is never
passed on complete).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import Response, StreamingResponse

from wa_monitor.core.errors import ConfigError, MediaNotFound, MediaStoreError
from wa_monitor.store.media import CHUNK, MediaStore, VerifiedReader, open_media_store
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web import queries as q
from wa_monitor.web.auth import Viewer
from wa_monitor.web.envelope import ApiError, ErrorEnvelope

log = logging.getLogger("wa_monitor.web")

CACHE_CONTROL = "private, max-age=31536000, immutable"
# Raster images a browser shows as they are; every other type is a download.
INLINE_TYPES = frozenset(
    {"image/jpeg", "image/png", "image/gif", "image/webp", "image/avif", "image/bmp"}
)
# A served file runs nothing and loads nothing, even if opened as a page.
# Set in the scope by app.HeadAsGet: a HEAD answered as GET, so no file is read for it.
HEAD_REQUEST = "wa_monitor.head"

MEDIA_CSP = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/gif": ".gif",
    "image/webp": ".webp",
    "image/heic": ".heic",
    "video/mp4": ".mp4",
    "video/quicktime": ".mov",
    "application/pdf": ".pdf",
    "audio/ogg": ".ogg",
    "audio/mpeg": ".mp3",
}

_binary = {"schema": {"type": "string", "format": "binary"}}
router = APIRouter(
    tags=["media"],
    responses={
        200: {
            "content": {"image/jpeg": _binary, "application/octet-stream": _binary},
            "description": "The file (its type as its bytes show it), streamed",
        },
        304: {"description": "If-None-Match names this file's ETag (its SHA-256)"},
        400: {"model": ErrorEnvelope, "description": "Not a SHA-256 (64 hex digits)"},
        401: {"model": ErrorEnvelope, "description": "Not signed in, or a bad API token"},
        404: {"model": ErrorEnvelope, "description": "No verified file with that SHA-256"},
        422: {"model": ErrorEnvelope, "description": "Invalid input"},
        500: {"model": ErrorEnvelope, "description": "Internal or database error"},
        503: {"model": ErrorEnvelope, "description": "The media store cannot be read now"},
    },
)
IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match", max_length=2000)]


def _review_store(request: Request) -> ReviewStore:
    store: ReviewStore = request.app.state.store
    return store


def _media_store(request: Request) -> MediaStore:
    """The app's media store, opened from the settings at first use."""
    media: MediaStore | None = request.app.state.media_store
    if media is None:
        try:
            media = open_media_store(request.app.state.settings)
        except ConfigError as exc:
            log.error("media store not configured: %s", exc)
            raise _unavailable("it is not configured (MEDIA_DIR or MEDIA_URL)") from None
        request.app.state.media_store = media
    return media


def _unavailable(why: str) -> ApiError:
    return ApiError(
        503,
        f"The media store cannot be read right now ({why}); the file is kept, try again "
        "in a minute. The server's log has the details",
        code="MEDIA_STORE_UNAVAILABLE",
        headers={"Retry-After": "30"},
    )


@router.get("/media/{sha256}", response_class=Response)
def media_file(
    request: Request, _caller: Viewer, sha256: str, if_none_match: IfNoneMatch = None
) -> Response:
    """A verified photo, video or document by its SHA-256: images inline, others as a download."""
    return _serve(request, sha256, if_none_match, thumb=False)


@router.get("/media/{sha256}/thumb", response_class=Response)
def media_thumb(
    request: Request, _caller: Viewer, sha256: str, if_none_match: IfNoneMatch = None
) -> Response:
    """The thumbnail (JPEG, about 320 px) of the verified photo with this SHA-256."""
    return _serve(request, sha256, if_none_match, thumb=True)


def _serve(request: Request, sha256: str, if_none_match: str | None, *, thumb: bool) -> Response:
    if not _SHA256.fullmatch(sha256):
        raise ApiError(
            400,
            "A media name is the file's SHA-256: 64 hexadecimal digits",
            details=[{"field": "path.sha256"}],
        )
    key = sha256.lower()
    row = q.available_media(_review_store(request), key)
    if row is None:
        raise ApiError(404, f"No fetched and verified file has the SHA-256 {key}")
    if thumb:
        if not row["thumb_sha256"]:
            raise ApiError(404, f"The file {key} has no thumbnail (not an image, or not yet made)")
        served, content_type, size = str(row["thumb_sha256"]), "image/jpeg", None
        disposition = f'inline; filename="{key[:16]}-thumb.jpg"'
    else:
        served = key
        content_type = str(row["content_type"] or "application/octet-stream")
        size = row["size"]
        name = safe_filename(row["filename"], key, content_type)
        kind = "inline" if content_type in INLINE_TYPES else "attachment"
        disposition = f'{kind}; filename="{name}"'
    headers = {
        "ETag": f'"{served}"',
        "Cache-Control": CACHE_CONTROL,
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": MEDIA_CSP,
    }
    if _matches(if_none_match, served):
        return Response(status_code=304, headers=headers)
    context, reader = _open(_media_store(request), served)
    headers["Content-Disposition"] = disposition
    if size is not None:
        headers["Content-Length"] = str(int(size))
    if request.scope.get(HEAD_REQUEST):
        # The store answered (an outage is still a 503); the file itself is not read.
        context.__exit__(None, None, None)
        return Response(status_code=200, media_type=content_type, headers=headers)
    return StreamingResponse(
        _chunks(context, reader), media_type=content_type, headers=headers, status_code=200
    )


def _open(
    media: MediaStore, sha256: str
) -> tuple[AbstractContextManager[VerifiedReader], VerifiedReader]:
    """The store's reader, opened before the answer starts (so an outage is a 503)."""
    context: AbstractContextManager[VerifiedReader] = media.open(sha256)
    try:
        reader = context.__enter__()
    except MediaNotFound:
        log.warning("media %s: verified in the review database but not in %r", sha256, media)
        raise ApiError(
            404, f"The file {sha256} is missing from the media store; it will be fetched again"
        ) from None
    except MediaStoreError as exc:
        log.error("media %s cannot be served: %s", sha256, exc)
        raise _unavailable("it did not answer") from None
    return context, reader


def _chunks(context: AbstractContextManager[Any], reader: VerifiedReader) -> Iterator[bytes]:
    """The file chunk by chunk, each sent once the next was read: the reader verifies the
    file when it reaches the end, so a damaged file's last chunk is never sent and the
    answer breaks off short of its length instead of passing the damage on complete."""
    try:
        held = reader.read(CHUNK)
        while held:
            following = reader.read(CHUNK)
            yield held
            held = following
    except MediaStoreError as exc:
        log.error("media %s: serving broke off: %s", reader.sha256, exc)
        raise
    finally:
        context.__exit__(None, None, None)


def _matches(if_none_match: str | None, sha256: str) -> bool:
    """Whether If-None-Match names this file (weak or strong, or `*`)."""
    if not if_none_match:
        return False
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/").strip('"').lower()
        if tag == sha256:
            return True
    return False


def safe_filename(filename: str | None, sha256: str, content_type: str) -> str:
    """The bridge's filename as a header can carry it: plain ASCII letters, digits, `._-`.

    Quotes, slashes, control characters and the like become `_`; a name left empty (or
    only dots) becomes the hash's start with the type's extension.
    """
    name = _UNSAFE_NAME.sub("_", (filename or "").rsplit("/", 1)[-1]).strip("._")[:120]
    if not name.strip("_"):
        name = sha256[:16] + _EXTENSIONS.get(content_type, "")
    return name
