"""The simulator's photos: what a reviewer and the media worker will see in them."""

from __future__ import annotations

import io
import random
import re
from datetime import UTC, datetime, timedelta

import pytest
import zxingcpp
from PIL import Image

from wa_monitor.core import images
from wa_monitor.core.steps import STEP_LABELS
from wa_monitor.sim.photos import (
    PHOTO_SIZE,
    STEPS,
    Scene,
    fake_mp4,
    fake_ogg,
    fake_pdf,
    ont_serial,
    reencode,
    render_jpeg,
    ups_serial,
)

POSTED = datetime(2025, 11, 9, 10, 0, tzinfo=UTC)
GPON = re.compile(r"^[A-Z]{4}[0-9A-F]{8}$")


def photo(step: int, seed: int = 1, **changes: object) -> bytes:
    serial = {8: "ZTEG1A2B3C4D", 9: "UPS-4820193746"}.get(step)
    values: dict[str, object] = {
        "step": step,
        "drop_number": "DR12345678",
        "seed": seed,
        "taken_at": POSTED - timedelta(minutes=4),
        "serial": serial,
        **changes,
    }
    return render_jpeg(Scene(**values))  # type: ignore[arg-type]


def test_the_steps_are_the_reviews_steps() -> None:
    assert dict(STEPS) == STEP_LABELS


@pytest.mark.parametrize("step", range(1, 13))
def test_every_step_is_a_sharp_well_lit_jpeg_of_the_right_size(step: int) -> None:
    data = photo(step, seed=step)
    assert 60_000 <= len(data) <= 400_000
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size) == ("JPEG", PHOTO_SIZE)
    # Nothing to warn a reviewer about: not blurred, not dark, taken minutes before posting.
    assert images.hints(io.BytesIO(data), POSTED) == []


def test_steps_8_and_9_carry_their_serial_as_a_readable_code128() -> None:
    for step, serial in ((8, "ZTEG1A2B3C4D"), (9, "UPS-4820193746"), (9, "482019374612")):
        data = photo(step, serial=serial)
        found = zxingcpp.read_barcodes(Image.open(io.BytesIO(data)))
        assert [(code.format, code.text) for code in found] == [
            (zxingcpp.BarcodeFormat.Code128, serial)
        ]
        assert [b.text for b in images.barcodes(io.BytesIO(data))] == [serial]


def test_serials_have_the_forms_the_worker_recognises() -> None:
    rng = random.Random(5)
    onts = [ont_serial(rng) for _ in range(50)]
    upss = [ups_serial(rng) for _ in range(50)]
    assert all(GPON.match(s) for s in onts)
    assert not any(GPON.match(s) for s in upss)
    assert all(re.fullmatch(r"UPS-\d{10}|\d{12}", s) for s in upss)


def test_blurred_dark_and_old_photos_are_what_the_hints_find() -> None:
    kinds = {
        "blurred": photo(3, blurred=True),
        "dark": photo(3, dark=True),
        "taken_early": photo(3, taken_at=POSTED - timedelta(days=20)),
    }
    for kind, data in kinds.items():
        assert [h.kind for h in images.hints(io.BytesIO(data), POSTED)] == [kind]


def test_a_photo_without_a_camera_time_has_no_exif() -> None:
    data = photo(1, taken_at=None)
    with Image.open(io.BytesIO(data)) as image:
        assert "exif" not in image.info


def test_a_reencoded_copy_differs_in_bytes_but_not_to_the_perceptual_hash() -> None:
    original = photo(1, seed=7)
    copy = reencode(original)
    assert copy != original
    with Image.open(io.BytesIO(copy)) as image:
        assert image.width == 1024
    assert images.similar(
        images.perceptual_hash(io.BytesIO(original)), images.perceptual_hash(io.BytesIO(copy))
    )


def test_two_installations_of_a_step_do_not_look_alike() -> None:
    # Else every drop would be flagged as re-using another's photos.
    for step in (1, 5, 8, 11, 12):
        hashes = [images.perceptual_hash(io.BytesIO(photo(step, seed=s))) for s in range(5)]
        for i, a in enumerate(hashes):
            for b in hashes[i + 1 :]:
                assert not images.similar(a, b), (step, a, b)


def test_the_same_scene_gives_the_same_bytes_another_seed_others() -> None:
    assert photo(2, seed=3) == photo(2, seed=3)
    assert photo(2, seed=3) != photo(2, seed=4)
    assert photo(2, seed=3) != photo(2, seed=3, drop_number="DR87654321")


def test_videos_voice_notes_and_documents_sniff_as_their_type() -> None:
    video = fake_mp4(1, 50_000)
    assert len(video) == 50_000 and video[4:8] == b"ftyp"
    assert fake_mp4(1) == fake_mp4(1) != fake_mp4(2)
    assert fake_ogg(1).startswith(b"OggS")
    pdf = fake_pdf("As-built Soweto", 3)
    assert pdf.startswith(b"%PDF-1.4") and pdf.rstrip().endswith(b"%%EOF")
    assert b"As-built Soweto" in pdf


def test_a_scene_refuses_a_step_outside_1_to_12_and_a_naive_time() -> None:
    with pytest.raises(ValueError, match="step"):
        Scene(13, "DR1", 1)
    with pytest.raises(ValueError, match="aware"):
        Scene(1, "DR1", 1, taken_at=datetime(2025, 1, 1))


def test_the_simulator_imports_nothing_of_wa_monitor_and_only_its_photo_tools() -> None:
    import sys

    import grimp

    graph = grimp.build_graph("wa_monitor", include_external_packages=True, cache_dir=None)
    imported = {
        target.split(".")[0]
        for module in graph.modules
        if module == "wa_monitor.sim" or module.startswith("wa_monitor.sim.")
        for target in graph.find_modules_directly_imported_by(module)
        if not target.startswith("wa_monitor.sim")
    }
    assert "wa_monitor" not in imported
    assert imported - set(sys.stdlib_module_names) == {"PIL", "numpy", "zxingcpp"}
