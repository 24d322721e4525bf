"""Photos an installer would post: one Pillow-drawn scene per QA step, real barcodes on 8 and 9.

Each scene is drawn from a seed, so the same `Scene` always gives the same bytes, and two
drops' photos of the same step differ in layout enough that a perceptual hash tells them
apart (only a photo posted again, or its re-encoded copy, looks alike). Every photo is
labelled with its step and drop number in a band at the bottom, so whoever looks at a
gallery sees at once what the photo stands for. Steps 8 and 9 carry a Code 128 barcode
(the ONT serial in GPON form, the UPS serial) that zxing-cpp reads back.

Speed matters (the demo and tests write hundreds of photos): the film grain and the
fonts are made once per process, a scene's drawing is a few large shapes, and the
encoding is one JPEG pass (about 10-20 ms a photo on a laptop).
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Final

import numpy as np
import zxingcpp
from PIL import Image, ImageChops, ImageDraw, ImageEnhance, ImageFilter, ImageFont

PHOTO_SIZE: Final = (1280, 960)
JPEG_QUALITY: Final = 80

# (column name, label) of the twelve steps, in order: the same as the review's steps
# (wa_monitor.core.steps), repeated here because the simulator imports nothing else.
STEPS: Final[tuple[tuple[str, str], ...]] = (
    ("step_01_house_photo", "House photo"),
    ("step_02_cable_from_pole", "Cable from pole"),
    ("step_03_cable_entry_outside", "Cable entry outside"),
    ("step_04_cable_entry_inside", "Cable entry inside"),
    ("step_05_wall_for_installation", "Wall for installation"),
    ("step_06_ont_back_after_install", "ONT back after install"),
    ("step_07_power_meter_reading", "Power meter reading"),
    ("step_08_ont_barcode", "ONT barcode"),
    ("step_09_ups_serial", "UPS serial"),
    ("step_10_final_installation", "Final installation"),
    ("step_11_green_lights", "Green lights"),
    ("step_12_customer_signature", "Customer signature"),
)
ONT_STEP: Final = 8
UPS_STEP: Final = 9

_ONT_VENDORS: Final = ("ZTEG", "HWTC", "ALCL", "NOKG", "FHTT", "GPON")
_BAND: Final = 96  # height of the label band at the bottom
_GRAIN: Final = 18  # film grain amplitude: photos have texture (a sharp photo is not flat)
_SQUEEZE: Final = [v * (255 - 2 * _GRAIN) // 255 for v in range(256)] * 3

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class Scene:
    """What one photo shows; `render_jpeg(scene)` always gives the same bytes for it.

    Attributes:
        step: 1..12, the QA step the installer photographed.
        drop_number: printed in the label band.
        seed: the layout (two installations of one step look different).
        taken_at: the camera's clock (aware), written as EXIF DateTimeOriginal; None: no EXIF.
        serial: the barcode's text (steps 8 and 9; None draws no barcode).
        blurred: shaken camera (a Gaussian blur over the whole photo).
        dark: taken without light (a fraction of the brightness).
    """

    step: int
    drop_number: str
    seed: int
    taken_at: datetime | None = None
    serial: str | None = None
    blurred: bool = False
    dark: bool = False

    def __post_init__(self) -> None:
        if not 1 <= self.step <= len(STEPS):
            raise ValueError(f"step must be 1..{len(STEPS)}, got {self.step}")
        if self.taken_at is not None and self.taken_at.tzinfo is None:
            raise ValueError("taken_at must be an aware datetime")

    @property
    def column(self) -> str:
        return STEPS[self.step - 1][0]

    @property
    def label(self) -> str:
        return STEPS[self.step - 1][1]


def ont_serial(rng: random.Random) -> str:
    """An ONT serial in GPON form: a 4-letter vendor id and 8 hex digits (ZTEG1A2B3C4D)."""
    return rng.choice(_ONT_VENDORS) + f"{rng.getrandbits(32):08X}"


def ups_serial(rng: random.Random) -> str:
    """A UPS serial as printed on its label: `UPS-` and 10 digits, or 12 digits."""
    if rng.random() < 0.5:
        return f"UPS-{rng.randrange(10**9, 10**10)}"
    return f"{rng.randrange(10**11, 10**12)}"


# -- rendering --------------------------------------------------------------------------


def render_jpeg(scene: Scene, *, quality: int = JPEG_QUALITY) -> bytes:
    """The photo of `scene` as a JPEG file (about 1280×960, 100-300 KB)."""
    image = render_image(scene)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=_exif(scene.taken_at))
    return out.getvalue()


def render_image(scene: Scene) -> Image.Image:
    """The photo of `scene` as a Pillow image (RGB, PHOTO_SIZE)."""
    image = _base(scene.step, scene.seed).copy()
    if scene.serial is not None and scene.step in (ONT_STEP, UPS_STEP):
        _paste_barcode(image, scene)
    _label(image, scene)
    if scene.dark:
        image = ImageEnhance.Brightness(image).enhance(0.16)
    if scene.blurred:
        image = image.filter(ImageFilter.GaussianBlur(radius=7))
    return image


def reencode(jpeg: bytes, *, width: int = 1024, quality: int = 70) -> bytes:
    """A copy of a JPEG photo resized and saved again (a re-post from another phone).

    The bytes (and so the SHA-256) differ from the original; what the photo shows does
    not, so only a perceptual hash finds it.
    """
    with Image.open(io.BytesIO(jpeg)) as original:
        exif = original.info.get("exif", b"")
        original.draft("RGB", (width, width))
        image = original.convert("RGB")
    height = round(image.height * width / image.width)
    image = image.resize((width, height), Image.Resampling.BILINEAR)
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality, exif=exif)
    return out.getvalue()


def fake_mp4(seed: int, size: int = 60_000) -> bytes:
    """A short video's bytes: a valid `ftyp` box (type sniffers say video/mp4), then data."""
    ftyp = b"ftyp" + b"mp42" + struct.pack(">I", 0) + b"mp42isomavc1"
    body = random.Random(f"mp4-{seed}").randbytes(max(0, size - len(ftyp) - 20))
    return (
        struct.pack(">I", len(ftyp) + 4)
        + ftyp
        + struct.pack(">I", len(body) + 8)
        + b"mdat"
        + body
        + struct.pack(">I", 8)
        + b"free"
    )


def fake_ogg(seed: int, size: int = 12_000) -> bytes:
    """A voice note's bytes: an `OggS` page header (sniffed as audio/ogg), then data."""
    header = b"OggS\x00\x02" + bytes(8) + struct.pack("<I", seed & 0xFFFFFFFF) + bytes(8)
    return header + random.Random(f"ogg-{seed}").randbytes(max(0, size - len(header)))


def fake_pdf(title: str, seed: int) -> bytes:
    """A one-page PDF document naming `title` (a real, minimal PDF file)."""
    safe = title.encode("latin-1", "replace").replace(b"(", b"[").replace(b")", b"]")
    stream = b"BT /F1 24 Tf 72 720 Td (" + safe + b") Tj ET\n"
    stream += b"BT /F1 12 Tf 72 690 Td (Reference " + str(seed).encode() + b") Tj ET\n"
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length " + str(len(stream)).encode() + b" >>\nstream\n" + stream + b"endstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    )
    return bytes(out)


def sha256(data: bytes) -> bytes:
    """The 32 raw bytes of the SHA-256 of `data` (the bridge's `file_sha256`)."""
    return hashlib.sha256(data).digest()


# -- the pieces ---------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _grain() -> Image.Image:
    # One film grain for every photo: high frequencies only, so no two photos look alike
    # because of it, and a photo is never flat (the blur measure needs texture to see).
    rng = random.Random("grain")
    w, h = PHOTO_SIZE
    small = Image.frombytes("L", (w // 2, h // 2), rng.randbytes((w // 2) * (h // 2)))
    small = small.point(lambda v: v * 2 * _GRAIN // 255)
    grain = small.resize(PHOTO_SIZE, Image.Resampling.NEAREST)
    return Image.merge("RGB", (grain, grain, grain))


@lru_cache(maxsize=8)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=48)
def _base(step: int, seed: int) -> Image.Image:
    """The drawn scene of one step (no label, no barcode), with grain; cached."""
    rng = random.Random(f"scene-{step}-{seed}")
    image = Image.new("RGB", PHOTO_SIZE, _jitter(rng, (150, 150, 150), 40))
    draw = ImageDraw.Draw(image)
    _SCENES[step - 1](draw, rng)
    # A few large shapes of the surroundings: what makes two installations look different.
    w, h = PHOTO_SIZE
    for _ in range(3):
        x, y = rng.randrange(w), rng.randrange(h - _BAND)
        r = rng.randint(40, 160)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_jitter(rng, (90, 90, 90), 80))
    # Squeeze the colours into 0..255-2*_GRAIN, then add the grain (0..2*_GRAIN): nothing
    # wraps, and a modulo add is ten times faster than a clipping one.
    return ImageChops.add_modulo(image.point(_SQUEEZE), _grain())


def _jitter(rng: random.Random, colour: RGB, spread: int) -> RGB:
    r, g, b = (max(0, min(255, c + rng.randint(-spread, spread))) for c in colour)
    return (r, g, b)


def _label(image: Image.Image, scene: Scene) -> None:
    w, h = image.size
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, h - _BAND, w, h), fill=(20, 24, 28))
    draw.text(
        (24, h - _BAND + 12),
        f"Step {scene.step}: {scene.label}",
        fill=(255, 255, 255),
        font=_font(38),
    )
    draw.text((24, h - 38), scene.drop_number, fill=(250, 200, 60), font=_font(26))
    if scene.taken_at is not None:
        stamp = scene.taken_at.strftime("%Y-%m-%d %H:%M")
        draw.text((w - 300, h - 38), stamp, fill=(200, 200, 200), font=_font(24))


@lru_cache(maxsize=64)
def _barcode(text: str) -> Image.Image:
    code = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.Code128)
    return Image.fromarray(np.asarray(code.to_image(scale=3, add_quiet_zones=True)))


def _paste_barcode(image: Image.Image, scene: Scene) -> None:
    assert scene.serial is not None
    rng = random.Random(f"label-{scene.seed}")
    code = _barcode(scene.serial)
    pad = 30
    lw, lh = code.width + 2 * pad, code.height + 110
    w, h = image.size
    x = rng.randint(40, max(40, w - lw - 40))
    y = rng.randint(40, max(40, h - _BAND - lh - 40))
    draw = ImageDraw.Draw(image)
    draw.rectangle((x, y, x + lw, y + lh), fill=(245, 245, 240), outline=(60, 60, 60), width=3)
    caption = "GPON SN" if scene.step == ONT_STEP else "UPS S/N"
    draw.text((x + pad, y + 12), caption, fill=(20, 20, 20), font=_font(28))
    image.paste(code.convert("RGB"), (x + pad, y + 50))
    draw.text((x + pad, y + 56 + code.height), scene.serial, fill=(20, 20, 20), font=_font(30))


def _exif(taken_at: datetime | None) -> bytes:
    if taken_at is None:
        return b""
    exif = Image.Exif()
    exif[0x010F] = "SimPhone"  # Make
    exif[0x0110] = "Field Camera"  # Model
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = taken_at.strftime("%Y:%m:%d %H:%M:%S")  # DateTimeOriginal
    offset = taken_at.strftime("%z")
    ifd[0x9011] = f"{offset[:3]}:{offset[3:]}"  # OffsetTimeOriginal
    return exif.tobytes()


# -- the twelve scenes --------------------------------------------------------------------
# Each draws on a full-size canvas; the bottom _BAND pixels are the label's.

_W, _H = PHOTO_SIZE
_GROUND = _H - _BAND


def _sky_and_ground(draw: ImageDraw.ImageDraw, rng: random.Random) -> int:
    horizon = rng.randint(_H // 4, _H // 2 + 80)
    draw.rectangle((0, 0, _W, horizon), fill=_jitter(rng, (120, 170, 225), 30))
    draw.rectangle((0, horizon, _W, _GROUND), fill=_jitter(rng, (110, 130, 70), 35))
    return horizon


def _wall(draw: ImageDraw.ImageDraw, rng: random.Random, colour: RGB, bricks: bool) -> None:
    draw.rectangle((0, 0, _W, _GROUND), fill=_jitter(rng, colour, 30))
    if bricks:
        row = rng.randint(36, 60)
        mortar = _jitter(rng, (200, 190, 180), 20)
        for i, y in enumerate(range(0, _GROUND, row)):
            draw.line((0, y, _W, y), fill=mortar, width=4)
            shift = (row if i % 2 else 0) + rng.randint(0, 8)
            for x in range(shift, _W, row * 2):
                draw.line((x, y, x, y + row), fill=mortar, width=4)


def _cable(
    draw: ImageDraw.ImageDraw, rng: random.Random, start: tuple[int, int], end: tuple[int, int]
) -> None:
    (x0, y0), (x1, y1) = start, end
    sag = rng.randint(20, 120)
    points = []
    for i in range(21):
        t = i / 20
        points.append((x0 + (x1 - x0) * t, y0 + (y1 - y0) * t + sag * 4 * t * (1 - t)))
    draw.line(points, fill=_jitter(rng, (30, 30, 30), 10), width=rng.randint(5, 9))


def _box(
    draw: ImageDraw.ImageDraw, rng: random.Random, colour: RGB, w: int, h: int
) -> tuple[int, int, int, int]:
    x = rng.randint(60, _W - w - 60)
    y = rng.randint(60, _GROUND - h - 40)
    draw.rounded_rectangle(
        (x, y, x + w, y + h), radius=18, fill=colour, outline=(50, 50, 50), width=4
    )
    return x, y, x + w, y + h


def _house(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    horizon = _sky_and_ground(draw, rng)
    w, h = rng.randint(420, 760), rng.randint(260, 380)
    x = rng.randint(40, _W - w - 40)
    y = min(_GROUND - h - 20, horizon + rng.randint(-40, 80))
    draw.rectangle((x, y, x + w, y + h), fill=_jitter(rng, (210, 190, 160), 40))
    roof = _jitter(rng, (150, 60, 50), 40)
    draw.polygon([(x - 30, y), (x + w // 2, y - rng.randint(120, 220)), (x + w + 30, y)], fill=roof)
    door = rng.randint(x + 40, x + w - 140)
    draw.rectangle((door, y + h - 170, door + 90, y + h), fill=_jitter(rng, (90, 60, 40), 30))
    for _ in range(rng.randint(1, 3)):
        wx = rng.randint(x + 20, x + w - 120)
        draw.rectangle(
            (wx, y + 50, wx + 100, y + 130), fill=(170, 200, 230), outline=(240, 240, 240), width=6
        )
    draw.text((x + 20, y + 10), str(rng.randint(1, 999)), fill=(40, 40, 40), font=_font(48))


def _pole(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _sky_and_ground(draw, rng)
    x = rng.randint(120, _W - 160)
    top = rng.randint(40, 160)
    draw.rectangle((x, top, x + 36, _GROUND), fill=_jitter(rng, (110, 80, 50), 25))
    draw.rectangle((x - 60, top + 40, x + 96, top + 56), fill=(90, 70, 50))
    far = rng.choice((0, _W))
    _cable(draw, rng, (x + 18, top + 60), (far, rng.randint(top + 200, _GROUND - 200)))
    draw.rectangle((x - 10, top + 120, x + 46, top + 190), fill=(60, 60, 60))


def _entry_outside(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (170, 90, 60), bricks=True)
    hole = (rng.randint(200, _W - 200), rng.randint(300, _GROUND - 120))
    _cable(draw, rng, (rng.randint(0, _W), 0), hole)
    draw.ellipse(
        (hole[0] - 28, hole[1] - 28, hole[0] + 28, hole[1] + 28),
        fill=(230, 230, 230),
        outline=(40, 40, 40),
        width=4,
    )


def _entry_inside(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (225, 215, 190), bricks=False)
    skirting = _GROUND - rng.randint(40, 120)
    draw.rectangle((0, skirting, _W, _GROUND), fill=_jitter(rng, (120, 90, 60), 20))
    grommet = (rng.randint(150, _W - 150), rng.randint(120, skirting - 200))
    draw.ellipse(
        (grommet[0] - 22, grommet[1] - 22, grommet[0] + 22, grommet[1] + 22),
        fill=(250, 250, 250),
        outline=(60, 60, 60),
        width=3,
    )
    _cable(draw, rng, grommet, (rng.choice((0, _W)), skirting - 10))


def _wall_for_installation(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (235, 230, 215), bricks=False)
    x0, y0, x1, y1 = _box(draw, rng, _jitter(rng, (235, 230, 215), 10), 300, 220)
    for i in range(x0, x1, 28):
        draw.line((i, y0, i + 14, y0), fill=(200, 40, 40), width=5)
        draw.line((i, y1, i + 14, y1), fill=(200, 40, 40), width=5)
    sx, sy = rng.randint(80, _W - 200), rng.randint(_GROUND - 260, _GROUND - 140)
    draw.rectangle(
        (sx, sy, sx + 110, sy + 110), fill=(250, 250, 250), outline=(90, 90, 90), width=4
    )
    draw.ellipse((sx + 30, sy + 30, sx + 80, sy + 80), fill=(60, 60, 60))


def _ont_back(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (230, 225, 210), bricks=False)
    x0, _, _, y1 = _box(draw, rng, (245, 245, 245), 420, 260)
    for i in range(4):
        px = x0 + 40 + i * 90
        draw.rectangle((px, y1 - 80, px + 60, y1 - 30), fill=(30, 30, 30))
    _cable(draw, rng, (x0 + 70, y1 - 30), (x0 + rng.randint(-200, 200), _GROUND))
    _cable(draw, rng, (x0 + 160, y1 - 30), (rng.randint(0, _W), _GROUND))


def _power_meter(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (190, 190, 185), bricks=rng.random() < 0.5)
    x0, y0, x1, _ = _box(draw, rng, _jitter(rng, (80, 85, 90), 15), 360, 440)
    draw.rectangle(
        (x0 + 40, y0 + 60, x1 - 40, y0 + 150), fill=(170, 200, 160), outline=(20, 20, 20), width=4
    )
    reading = f"{rng.randint(0, 99999):05d}.{rng.randint(0, 9)}"
    draw.text((x0 + 60, y0 + 75), reading, fill=(20, 30, 20), font=_font(56))
    draw.text((x0 + 60, y0 + 170), "kWh", fill=(230, 230, 230), font=_font(36))


def _ont_label_scene(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (240, 240, 238), bricks=False)
    draw.rectangle((0, rng.randint(0, 200), _W, _GROUND), fill=_jitter(rng, (225, 225, 228), 15))


def _ups(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (220, 215, 200), bricks=False)
    x = rng.randint(0, _W // 3)
    draw.rectangle(
        (x, rng.randint(40, 200), x + rng.randint(700, 900), _GROUND),
        fill=_jitter(rng, (40, 40, 45), 10),
    )


def _final(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (232, 228, 214), bricks=False)
    x0, y0, x1, y1 = _box(draw, rng, (245, 245, 245), 320, 200)
    ux = min(_W - 240, x1 + 40) if x0 < _W // 2 else max(40, x0 - 260)
    uy = min(_GROUND - 240, y1 + 20)
    draw.rectangle((ux, uy, ux + 200, uy + 200), fill=(35, 35, 40), outline=(10, 10, 10), width=3)
    _cable(draw, rng, ((x0 + x1) // 2, y1), (ux + 100, uy))
    _cable(draw, rng, (x0, (y0 + y1) // 2), (0, rng.randint(0, _GROUND)))


def _green_lights(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _wall(draw, rng, (225, 222, 210), bricks=False)
    x0, y0, _, _ = _box(draw, rng, (250, 250, 250), 560, 240)
    names = ("PWR", "PON", "LOS", "LAN1", "LAN2")
    for i, name in enumerate(names):
        cx = x0 + 60 + i * 110
        lit = (40, 230, 70) if name != "LOS" else (70, 70, 70)
        draw.ellipse((cx - 20, y0 + 70, cx + 20, y0 + 110), fill=lit)
        draw.text((cx - 30, y0 + 130), name, fill=(40, 40, 40), font=_font(26))


def _signature(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    draw.rectangle((0, 0, _W, _GROUND), fill=_jitter(rng, (120, 100, 80), 30))
    x0, y0 = rng.randint(40, 240), rng.randint(20, 120)
    x1, y1 = x0 + rng.randint(800, 980), min(_GROUND - 20, y0 + 700)
    draw.rectangle((x0, y0, x1, y1), fill=(250, 250, 245))
    for y in range(y0 + 80, y1 - 100, 60):
        draw.line((x0 + 40, y, x1 - 40, y), fill=(190, 200, 220), width=2)
    draw.text((x0 + 40, y0 + 20), "Installation accepted", fill=(30, 30, 30), font=_font(36))
    sy = y1 - 140
    draw.line((x0 + 40, sy + 60, x0 + 520, sy + 60), fill=(30, 30, 30), width=3)
    points = [(x0 + 60 + i * 24, sy + rng.randint(-30, 50)) for i in range(18)]
    draw.line(points, fill=(20, 40, 140), width=5, joint="curve")
    draw.text((x0 + 40, sy + 70), "Customer signature", fill=(60, 60, 60), font=_font(26))


_SCENES: Final = (
    _house,
    _pole,
    _entry_outside,
    _entry_inside,
    _wall_for_installation,
    _ont_back,
    _power_meter,
    _ont_label_scene,
    _ups,
    _final,
    _green_lights,
    _signature,
)
