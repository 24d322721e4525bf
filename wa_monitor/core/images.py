"""Image analysis over one photo: safe opening, thumbnail, perceptual hash, barcodes, quality hints.

CPU work over a file or a binary stream only: no database, no network. Every failure to
read a photo is an `ImageError` whose `status` names the reason, so a caller can record a
clear status per photo and carry on with the next one.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import BinaryIO, Final

import imagehash
import numpy as np
import pillow_heif
import zxingcpp
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError

from wa_monitor.core.errors import WaMonitorError

# A phone photo is 12 to 50 megapixels; 64 MP leaves room for the largest sensors while
# keeping one decoded RGB image under 200 MB. Pillow's own bomb limit is checked after we
# read the header, so a larger image is refused before any pixel is decoded.
MAX_PIXELS: Final = 64_000_000

# No phone photo comes near 40 MB (a 50 MP JPEG is about 15 MB, HEIC less); a larger file
# is a video or something else posing as an image and is refused unread.
MAX_FILE_BYTES: Final = 40 * 1024 * 1024

# Longest side of a thumbnail: a dashboard tile of 12 photos on a laptop screen.
THUMBNAIL_SIDE: Final = 320
THUMBNAIL_QUALITY: Final = 80

# pHash is 64 bits; re-encoded or resized copies of one photo stay within a few bits, and
# unrelated photos are about 32 bits apart. 10 is the value imagehash's authors and most
# duplicate finders use: it catches re-compressed, resized and lightly cropped copies.
PHASH_MAX_DISTANCE: Final = 10

# Barcodes are decoded on an image no larger than this (JPEG decodes straight at a reduced
# scale): a label that fills a tenth of a 12 MP photo still has bars several pixels wide.
BARCODE_MAX_SIDE: Final = 3000

# Blur and darkness are measured on a grey copy of this longest side, so the figures do
# not depend on the camera's resolution and the work stays a few milliseconds.
ANALYSIS_SIDE: Final = 512

# Variance of the Laplacian (Pech-Pacheco et al., 2000) on the 512 px grey copy, its
# contrast stretched first so that a dark but sharp photo is judged dark, not blurred. 100 is
# the threshold commonly used for this measure; on our test scenes a sharp photo measures
# 900 to 1600 and one blurred by a 2 px Gaussian about 60. It wants re-tuning on real drop
# photos once reviewers have marked some as blurred.
BLUR_THRESHOLD: Final = 100.0

# Mean luminance (0-255, ITU-R 601 grey). Under 40 the fibre, labels and splices are not
# readable on a laptop screen; an ordinary indoor photo measures 80 to 140.
DARK_THRESHOLD: Final = 40.0

# EXIF times are the camera's local time, usually without a zone; read as UTC they are off
# by at most 14 hours. 24 hours is beyond any such error, so only a photo taken on an
# earlier day than the installation (a re-used photo) is flagged.
TAKEN_EARLY_HOURS: Final = 24.0

# What a photo's name or media type may claim, and the Pillow format that must match it.
_CLAIMED_FORMATS: Final[dict[str, str]] = {
    "jpg": "JPEG",
    "jpeg": "JPEG",
    "image/jpeg": "JPEG",
    "png": "PNG",
    "image/png": "PNG",
    "webp": "WEBP",
    "image/webp": "WEBP",
    "heic": "HEIF",
    "heif": "HEIF",
    "image/heic": "HEIF",
    "image/heif": "HEIF",
    "gif": "GIF",
    "image/gif": "GIF",
}
# Pillow tries only these decoders: nothing exotic is parsed from an untrusted file.
_ALLOWED_FORMATS: Final = ("JPEG", "PNG", "WEBP", "HEIF", "GIF")

_EXIF_DATETIME_ORIGINAL: Final = 0x9003
_EXIF_OFFSET_TIME_ORIGINAL: Final = 0x9011

pillow_heif.register_heif_opener()

Source = Path | str | BinaryIO


class ImageError(WaMonitorError):
    """A photo could not be read; `status` names why (missing, too_large, not_an_image, ...)."""

    def __init__(self, status: str, message: str) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Barcode:
    """One barcode or QR code read from a photo."""

    format: str
    text: str


@dataclass(frozen=True)
class Hint:
    """A quality concern about a photo, with the value measured and the threshold crossed."""

    kind: str  # "blurred", "dark" or "taken_early"
    value: float
    threshold: float


def _label(source: Source) -> str:
    if isinstance(source, str | Path):
        return str(source)
    return str(getattr(source, "name", "stream"))


def _claimed_format(source: Source, claimed: str | None) -> str | None:
    if claimed is None and isinstance(source, str | Path):
        claimed = Path(source).suffix
    if not claimed:
        return None
    return _CLAIMED_FORMATS.get(claimed.lower().lstrip("."))


def _check_size(source: Source, label: str) -> None:
    if isinstance(source, str | Path):
        try:
            size = os.stat(source).st_size
        except FileNotFoundError:
            raise ImageError(
                "missing", f"{label}: no such file; download the photo again"
            ) from None
        except OSError as exc:
            raise ImageError("unreadable", f"{label}: cannot be read ({exc.strerror})") from None
    else:
        try:
            here = source.tell()
            size = source.seek(0, io.SEEK_END) - here
            source.seek(here)
        except (OSError, ValueError):
            return  # not seekable: the pixel limit still bounds the decoded image
    if size > MAX_FILE_BYTES:
        raise ImageError(
            "too_large",
            f"{label}: {size} bytes is more than a photo ({MAX_FILE_BYTES} at most); "
            "it is probably a video or a document",
        )
    if size == 0:
        raise ImageError("not_an_image", f"{label}: the file is empty; download the photo again")


@contextmanager
def _opened(
    source: Source, claimed: str | None = None, draft: int | None = None
) -> Iterator[Image.Image]:
    """The photo, decoded and checked; `draft` lets JPEG decode at a reduced scale."""
    label = _label(source)
    _check_size(source, label)
    expected = _claimed_format(source, claimed)
    try:
        # Pillow only warns between its limit and twice it: a warning is a refusal here.
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(source, formats=_ALLOWED_FORMATS)
    except FileNotFoundError:
        raise ImageError("missing", f"{label}: no such file; download the photo again") from None
    except UnidentifiedImageError:
        raise ImageError(
            "not_an_image", f"{label}: not a JPEG, PNG, WebP, HEIC or GIF image"
        ) from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageError("too_large", f"{label}: more than {MAX_PIXELS} pixels") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageError("corrupt", f"{label}: unreadable image header ({exc})") from None
    with image:
        if expected is not None and image.format != expected:
            raise ImageError(
                "type_mismatch",
                f"{label}: claims to be {expected} but is {image.format}; "
                "the bridge may have stored another file under this name",
            )
        width, height = image.size
        if width * height > MAX_PIXELS:
            raise ImageError(
                "too_large", f"{label}: {width}x{height} is more than {MAX_PIXELS} pixels"
            )
        if draft is not None and image.format == "JPEG":
            image.draft("RGB", (draft, draft))
        try:
            image.load()
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            status = "truncated" if "truncated" in str(exc) else "corrupt"
            raise ImageError(
                status, f"{label}: the image data is damaged ({exc}); download the photo again"
            ) from None
        yield image


def _upright(image: Image.Image, mode: str) -> Image.Image:
    """The image as the camera held it (EXIF orientation applied), in `mode`."""
    turned = ImageOps.exif_transpose(image)
    return turned.convert(mode) if turned.mode != mode else turned


def open_image(source: Source, claimed: str | None = None) -> Image.Image:
    """Decode a photo safely.

    Args:
        source: a path, or a binary stream positioned at the start of the file.
        claimed: the type the photo claims (an extension such as ``jpg`` or a media type such
            as ``image/jpeg``); by default the path's extension. A photo whose content is of
            another format is refused.

    Returns:
        The decoded image, upright, in RGB.

    Raises:
        ImageError: missing, too large, not an image, of another type than claimed,
            truncated or corrupt; `status` says which.
    """
    with _opened(source, claimed) as image:
        return _upright(image, "RGB")


def thumbnail(source: Source, claimed: str | None = None) -> bytes:
    """A JPEG of at most THUMBNAIL_SIDE pixels on its longest side, upright, without EXIF."""
    with _opened(source, claimed, draft=2 * THUMBNAIL_SIDE) as image:
        small = _upright(image, "RGB")
    small.thumbnail((THUMBNAIL_SIDE, THUMBNAIL_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=THUMBNAIL_QUALITY, optimize=True)
    return out.getvalue()


def perceptual_hash(source: Source, claimed: str | None = None) -> str:
    """The photo's pHash as 16 hex digits: equal or close for copies of one photo."""
    with _opened(source, claimed, draft=ANALYSIS_SIDE) as image:
        upright = _upright(image, "L")
    return str(imagehash.phash(upright))


def hash_distance(a: str, b: str) -> int:
    """How many of the 64 bits differ between two perceptual hashes."""
    return int(imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b))


def similar(a: str, b: str, max_distance: int = PHASH_MAX_DISTANCE) -> bool:
    """Whether two perceptual hashes are close enough to be copies of one photo."""
    return hash_distance(a, b) <= max_distance


def barcodes(source: Source, claimed: str | None = None) -> list[Barcode]:
    """Every barcode and QR code readable in the photo, in the order zxing-cpp finds them."""
    with _opened(source, claimed, draft=BARCODE_MAX_SIDE) as image:
        grey = _upright(image, "L")
    if max(grey.size) > BARCODE_MAX_SIDE:
        grey.thumbnail((BARCODE_MAX_SIDE, BARCODE_MAX_SIDE), Image.Resampling.BILINEAR)
    found = zxingcpp.read_barcodes(grey)
    return [Barcode(format=str(code.format), text=code.text) for code in found if code.valid]


def _laplacian_variance(grey: np.ndarray) -> float:
    centre = grey[1:-1, 1:-1]
    laplacian = grey[:-2, 1:-1] + grey[2:, 1:-1] + grey[1:-1, :-2] + grey[1:-1, 2:] - 4.0 * centre
    return float(laplacian.var())


def _taken_at(image: Image.Image) -> datetime | None:
    exif = image.getexif().get_ifd(ExifTags.IFD.Exif)
    raw = exif.get(_EXIF_DATETIME_ORIGINAL)
    if not isinstance(raw, str):
        return None
    try:
        taken = datetime.strptime(raw.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # a camera with no clock set writes zeros or blanks
    zone: tzinfo = UTC
    offset = exif.get(_EXIF_OFFSET_TIME_ORIGINAL)
    if isinstance(offset, str):
        with suppress(ValueError):
            zone = datetime.strptime(offset.strip("\x00 "), "%z").tzinfo or UTC
    return taken.replace(tzinfo=zone)


def hints(source: Source, posted_at: datetime, claimed: str | None = None) -> list[Hint]:
    """Quality concerns about a photo posted at `posted_at` (aware), each with its measure.

    Args:
        source: a path, or a binary stream positioned at the start of the file.
        posted_at: when the photo was posted in the group, timezone-aware.
        claimed: the type the photo claims, as for `open_image`.

    Returns:
        ``blurred`` when the variance of the Laplacian is under BLUR_THRESHOLD, ``dark`` when
        the mean luminance is under DARK_THRESHOLD, ``taken_early`` when the EXIF time is
        more than TAKEN_EARLY_HOURS before posting (value in hours); none for a good photo.

    Raises:
        ImageError: the photo cannot be read, as for `open_image`.
        ValueError: `posted_at` has no timezone.
    """
    if posted_at.tzinfo is None:
        raise ValueError("posted_at must carry its timezone (the bridge's times are UTC)")
    with _opened(source, claimed, draft=ANALYSIS_SIDE) as image:
        taken_at = _taken_at(image)
        grey = _upright(image, "L")
    grey.thumbnail((ANALYSIS_SIDE, ANALYSIS_SIDE), Image.Resampling.BILINEAR)
    pixels = np.asarray(grey, dtype=np.float32)
    found: list[Hint] = []
    stretched = ImageOps.autocontrast(grey, cutoff=1)
    sharpness = _laplacian_variance(np.asarray(stretched, dtype=np.float32))
    if sharpness < BLUR_THRESHOLD:
        found.append(Hint("blurred", round(sharpness, 1), BLUR_THRESHOLD))
    brightness = float(pixels.mean())
    if brightness < DARK_THRESHOLD:
        found.append(Hint("dark", round(brightness, 1), DARK_THRESHOLD))
    if taken_at is not None:
        early = (posted_at - taken_at) / timedelta(hours=1)
        if early > TAKEN_EARLY_HOURS:
            found.append(Hint("taken_early", round(early, 1), TAKEN_EARLY_HOURS))
    return found
