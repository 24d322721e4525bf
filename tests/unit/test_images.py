"""Image analysis: photos are opened safely, and each measure says what a reviewer would see."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pillow_heif
import pytest
import zxingcpp
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from wa_monitor.core import images
from wa_monitor.core.images import Barcode, ImageError

POSTED_AT = datetime(2025, 11, 9, 17, 15, tzinfo=UTC)


def scene(seed: int = 0, size: tuple[int, int] = (800, 600)) -> Image.Image:
    """A photo-like scene: shapes and text on a light background, laid out by `seed`."""
    image = Image.new("RGB", size, (200, 190, 170))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=40)
    if seed == 0:
        draw.rectangle((60, 60, 360, 300), fill=(30, 60, 160))
        draw.ellipse((420, 120, 740, 440), fill=(200, 40, 40))
        draw.line((0, 560, 800, 380), fill=(20, 20, 20), width=12)
        draw.text((80, 460), "ONT HWTC 1234", fill=(0, 0, 0), font=font)
    else:
        draw.polygon([(400, 40), (760, 560), (40, 560)], fill=(20, 120, 40))
        draw.rectangle((520, 40, 780, 200), fill=(240, 220, 30))
        for x in range(0, 800, 80):
            draw.line((x, 0, x, 600), fill=(60, 60, 60), width=4)
        draw.text((40, 60), "UPS 9876", fill=(255, 255, 255), font=font)
    return image


def save(image: Image.Image, path: Path, **options: Any) -> Path:
    image.save(path, **options)
    return path


@pytest.fixture
def sharp(tmp_path: Path) -> Path:
    return save(scene(), tmp_path / "sharp.jpg", quality=92)


def test_a_good_photo_has_no_hints(sharp: Path) -> None:
    assert images.hints(sharp, POSTED_AT) == []


@pytest.mark.parametrize("radius", [2, 6])
def test_a_blurred_copy_is_flagged_blurred_only(tmp_path: Path, radius: int) -> None:
    blurred = save(scene().filter(ImageFilter.GaussianBlur(radius)), tmp_path / "blurred.jpg")
    found = images.hints(blurred, POSTED_AT)
    assert [hint.kind for hint in found] == ["blurred"]
    assert found[0].value < images.BLUR_THRESHOLD == found[0].threshold


def test_a_sharp_dark_photo_is_dark_and_a_blurred_dark_one_is_both(tmp_path: Path) -> None:
    dim = scene().point(lambda value: value // 4)
    assert [hint.kind for hint in images.hints(save(dim, tmp_path / "dim.png"), POSTED_AT)] == [
        "dark"
    ]
    dim_blurred = save(dim.filter(ImageFilter.GaussianBlur(6)), tmp_path / "dim_blurred.png")
    assert [hint.kind for hint in images.hints(dim_blurred, POSTED_AT)] == ["blurred", "dark"]


def test_a_dark_copy_is_flagged_dark_only(tmp_path: Path) -> None:
    dark = save(scene().point(lambda value: value // 8), tmp_path / "dark.png")
    found = images.hints(dark, POSTED_AT)
    assert [hint.kind for hint in found] == ["dark"]
    assert found[0].value < images.DARK_THRESHOLD


def with_exif_time(path: Path, taken: str, offset: str | None = None) -> Path:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    sub[0x9003] = taken
    if offset is not None:
        sub[0x9011] = offset
    return save(scene(), path, exif=exif, quality=92)


def test_a_photo_taken_days_before_posting_is_flagged_with_its_age(tmp_path: Path) -> None:
    old = with_exif_time(tmp_path / "old.jpg", "2025:11:06 17:15:00")
    assert images.hints(old, POSTED_AT) == [images.Hint("taken_early", 72.0, 24.0)]


def test_a_photo_taken_on_site_an_hour_before_is_not_flagged(tmp_path: Path) -> None:
    # Local time 18:15 at UTC+02:00 is 16:15 UTC: one hour before posting.
    fresh = with_exif_time(tmp_path / "fresh.jpg", "2025:11:09 18:15:00", "+02:00")
    assert images.hints(fresh, POSTED_AT) == []
    # 05:15 at UTC+10:00 on the 8th is 19:15 UTC on the 7th: 46 hours before posting.
    zoned = with_exif_time(tmp_path / "zoned.jpg", "2025:11:08 05:15:00", "+10:00")
    assert images.hints(zoned, POSTED_AT) == [images.Hint("taken_early", 46.0, 24.0)]


def test_a_posting_time_without_a_zone_is_refused(sharp: Path) -> None:
    with pytest.raises(ValueError, match="timezone"):
        images.hints(sharp, POSTED_AT.replace(tzinfo=None))


def test_a_camera_without_a_clock_gives_no_time_hint(tmp_path: Path) -> None:
    unset = with_exif_time(tmp_path / "unset.jpg", "0000:00:00 00:00:00")
    assert images.hints(unset, POSTED_AT) == []


def test_the_thumbnail_is_small_upright_jpeg_without_exif(tmp_path: Path) -> None:
    # Stored landscape, left half red and right half blue, with orientation 6: the camera was
    # turned a quarter clockwise, so the photo shows portrait with red on top.
    stored = Image.new("RGB", (1600, 800), (220, 0, 0))
    stored.paste((0, 0, 220), (800, 0, 1600, 800))
    exif = Image.Exif()
    exif[0x0112] = 6
    exif[0x010F] = "PhoneMaker"
    path = save(stored, tmp_path / "turned.jpg", exif=exif, quality=92)

    thumb = Image.open(io.BytesIO(images.thumbnail(path)))
    assert thumb.format == "JPEG"
    assert thumb.size == (160, 320)
    assert not thumb.getexif()
    red, _, blue = thumb.convert("RGB").getpixel((80, 40))  # type: ignore[misc]
    assert red > 150 > blue
    red, _, blue = thumb.convert("RGB").getpixel((80, 280))  # type: ignore[misc]
    assert blue > 150 > red


def test_a_full_size_photo_gives_the_same_small_thumbnail(tmp_path: Path) -> None:
    large = save(scene(size=(4000, 3000)), tmp_path / "large.jpg", quality=85)
    thumb = Image.open(io.BytesIO(images.thumbnail(large)))
    assert thumb.size == (320, 240)


def test_a_small_photo_is_not_enlarged(tmp_path: Path) -> None:
    small = save(scene(size=(200, 100)), tmp_path / "small.png")
    assert Image.open(io.BytesIO(images.thumbnail(small))).size == (200, 100)


def test_a_reused_photo_matches_its_original_and_another_scene_does_not(
    sharp: Path, tmp_path: Path
) -> None:
    copy = scene().resize((400, 300), Image.Resampling.BILINEAR)
    reused = save(copy, tmp_path / "reused.jpg", quality=45)
    other = save(scene(seed=1), tmp_path / "other.jpg")
    original_hash = images.perceptual_hash(sharp)
    assert len(original_hash) == 16
    assert images.similar(original_hash, images.perceptual_hash(reused))
    assert not images.similar(original_hash, images.perceptual_hash(other))
    assert images.hash_distance(original_hash, images.perceptual_hash(other)) > 20


def label(code: zxingcpp.Barcode, caption_below: int = 200) -> Image.Image:
    """The barcode on a white label inside a grey photo, as a phone sees a sticker."""
    printed = Image.fromarray(code.to_image(scale=4)).convert("RGB")
    photo = Image.new("RGB", (printed.width + 300, printed.height + caption_below), (120,) * 3)
    photo.paste((255, 255, 255), (100, 50, printed.width + 200, printed.height + 150))
    photo.paste(printed, (150, 100))
    return photo


def test_code_128_and_qr_labels_are_decoded(tmp_path: Path) -> None:
    ont = zxingcpp.create_barcode("48575443A1B2C3D4", zxingcpp.BarcodeFormat.Code128)
    ups = zxingcpp.create_barcode("UPS-SN-2025110901", zxingcpp.BarcodeFormat.QRCode)
    ont_photo = save(label(ont), tmp_path / "ont.jpg", quality=90)
    ups_photo = save(label(ups), tmp_path / "ups.png")
    assert images.barcodes(ont_photo) == [Barcode("Code 128", "48575443A1B2C3D4")]
    assert images.barcodes(ups_photo) == [Barcode("QR Code", "UPS-SN-2025110901")]


def test_both_serials_on_one_sticker_are_read(tmp_path: Path) -> None:
    ont = label(zxingcpp.create_barcode("48575443A1B2C3D4", zxingcpp.BarcodeFormat.Code128))
    ups = label(zxingcpp.create_barcode("UPS-SN-2025110901", zxingcpp.BarcodeFormat.QRCode))
    sticker = Image.new("RGB", (ont.width + ups.width, max(ont.height, ups.height)), (120,) * 3)
    sticker.paste(ont, (0, 0))
    sticker.paste(ups, (ont.width, 0))
    # Taken with the phone turned: stored sideways, EXIF says so.
    exif = Image.Exif()
    exif[0x0112] = 8
    photo = save(sticker.rotate(-90, expand=True), tmp_path / "sticker.jpg", exif=exif)
    assert sorted(images.barcodes(photo), key=lambda code: code.text) == [
        Barcode("Code 128", "48575443A1B2C3D4"),
        Barcode("QR Code", "UPS-SN-2025110901"),
    ]


def test_a_photo_without_a_code_has_none(sharp: Path) -> None:
    assert images.barcodes(sharp) == []


def test_a_heic_photo_is_read(tmp_path: Path) -> None:
    path = tmp_path / "phone.heic"
    pillow_heif.from_pillow(scene()).save(path, quality=80)
    assert images.open_image(path).size == (800, 600)
    assert Image.open(io.BytesIO(images.thumbnail(path))).size == (320, 240)
    assert images.hints(path, POSTED_AT) == []


def test_a_stream_is_read_like_a_file(sharp: Path) -> None:
    with sharp.open("rb") as stream:
        from_stream = images.perceptual_hash(stream, claimed="image/jpeg")
    assert from_stream == images.perceptual_hash(sharp)


def refusal(path: Path | io.BytesIO, claimed: str | None = None) -> ImageError:
    with pytest.raises(ImageError) as caught:
        images.open_image(path, claimed)
    return caught.value


def test_a_truncated_photo_is_refused_with_the_reason(sharp: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(sharp.read_bytes()[: sharp.stat().st_size // 2])
    error = refusal(cut)
    assert error.status == "truncated"
    assert "cut.jpg" in str(error) and "download the photo again" in str(error)


def test_corrupt_data_is_refused(tmp_path: Path) -> None:
    png = save(scene(), tmp_path / "photo.png")
    data = bytearray(png.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(byte ^ 0xFF for byte in data[middle : middle + 64])
    png.write_bytes(bytes(data))
    error = refusal(png)
    assert error.status == "corrupt"
    assert "damaged" in str(error)


def test_a_text_file_named_jpg_is_not_an_image(tmp_path: Path) -> None:
    fake = tmp_path / "image_20251109_191530.jpg"
    fake.write_text("<html>Media not found</html>\n")
    error = refusal(fake)
    assert error.status == "not_an_image"
    assert "image_20251109_191530.jpg" in str(error)


def test_a_png_named_jpg_is_refused_as_a_type_mismatch(tmp_path: Path) -> None:
    png = save(scene(), tmp_path / "photo.jpg", format="PNG")
    error = refusal(png)
    assert error.status == "type_mismatch"
    assert "JPEG" in str(error) and "PNG" in str(error)
    assert refusal(io.BytesIO(png.read_bytes()), claimed="image/jpeg").status == "type_mismatch"


def test_a_missing_file_and_an_empty_file_are_refused(tmp_path: Path) -> None:
    assert refusal(tmp_path / "gone.jpg").status == "missing"
    empty = tmp_path / "empty.jpg"
    empty.touch()
    assert refusal(empty).status == "not_an_image"


def test_a_video_sized_file_is_refused_unread(tmp_path: Path) -> None:
    video = tmp_path / "clip.jpg"
    with video.open("wb") as out:
        out.truncate(200 * 1024 * 1024)  # sparse: no 200 MB written
    error = refusal(video)
    assert error.status == "too_large"
    assert "video" in str(error)


def test_a_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    # A 10000 x 10000 PNG of one colour is a few kilobytes and 100 MP once decoded.
    bomb = save(Image.new("1", (10_000, 10_000)), tmp_path / "bomb.png", optimize=True)
    assert bomb.stat().st_size < images.MAX_FILE_BYTES
    assert refusal(bomb).status == "too_large"
    later = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(ImageError):
        images.hints(bomb, later)
