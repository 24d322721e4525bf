"""Media rows with real files: the bridge's columns, the phone's files, and their truth."""

from __future__ import annotations

import hashlib
import io
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from wa_monitor.core import images
from wa_monitor.sim import (
    DEFAULT_START,
    DEMO_GROUPS,
    LiveSimulator,
    MediaMaker,
    MediaShares,
    PhotoTruth,
    SimTruth,
    SteppingClock,
    StoreWriter,
    generate_store,
    origin_path,
    parse_bridge_timestamp,
)

SAST = ZoneInfo("Africa/Johannesburg")
# Every kind of imperfect photo turns up in a small run.
SHARES = MediaShares(blurred=0.1, dark=0.1, taken_early=0.1, reused=0.12, expired=0.08)


@dataclass
class Live:
    root: Path
    truth: SimTruth

    @property
    def db(self) -> Path:
        return self.root / "store" / "messages.db"

    def rows(self) -> dict[str, tuple[object, ...]]:
        conn = sqlite3.connect(self.db)
        try:
            found = conn.execute(
                "SELECT id, chat_jid, sender, content, timestamp, media_type, filename, url, "
                "media_key, file_sha256, file_enc_sha256, file_length FROM messages"
            ).fetchall()
        finally:
            conn.close()
        return {r[0]: r for r in found}


def run_live(root: Path, seed: int, steps: int = 160) -> SimTruth:
    clock = SteppingClock(datetime(2025, 11, 9, 7, 0, tzinfo=SAST), timedelta(seconds=2))
    store = root / "store"
    # bulk: no fsync per message (the files are what this tests, not the journal).
    with StoreWriter(store / "messages.db", store / "whatsapp.db", bulk=True) as writer:
        maker = MediaMaker(root / "media-origin", seed=seed, zone=writer.zone, shares=SHARES)
        sim = LiveSimulator(
            writer,
            DEMO_GROUPS,
            seed=seed,
            clock=clock,
            drop_rate=0.12,
            resubmit_share=0.4,
            media=maker,
        )
        sim.run(steps)
    return sim.truth()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    root = tmp_path_factory.mktemp("live-media")
    yield Live(root, run_live(root, seed=11, steps=260))


def photos_of(truth: SimTruth) -> list[PhotoTruth]:
    return [p for p in truth.photos if p.media_type == "image"]


def test_every_media_row_has_the_bridges_columns_and_its_file(live: Live) -> None:
    rows = live.rows()
    assert len(live.truth.photos) >= 60
    for p in live.truth.photos:
        (_, chat, _, content, stamp, media_type, filename, url, key, sha, enc, length) = rows[
            p.message_id
        ]
        assert (chat, media_type, filename) == (p.chat_jid, p.media_type, p.filename)
        when = parse_bridge_timestamp(str(stamp))
        if media_type in ("image", "video"):
            ext = ".jpg" if media_type == "image" else ".mp4"
            # Named by the second it was stored, as the bridge does.
            assert filename == f"{media_type}_{when:%Y%m%d_%H%M%S}{ext}"
        assert re.match(r"https://mmg\.whatsapp\.net/v/t62\.\d+-24/\d+_\d+_\d+_n\.enc\?", str(url))
        assert isinstance(key, bytes) and len(key) == 32
        assert isinstance(enc, bytes) and len(enc) == 32
        assert isinstance(sha, bytes) and sha.hex() == p.sha256
        assert length == p.size
        assert content == p.caption or (p.caption is None and content in ("", None))
        assert p.posted_at == when
        if p.expired:
            assert p.origin is None
            assert not origin_path(live.root / "media-origin", p.chat_jid, p.message_id).exists()
        else:
            assert p.origin == origin_path(live.root / "media-origin", p.chat_jid, p.message_id)
            data = p.origin.read_bytes()
            assert hashlib.sha256(data).digest() == sha and len(data) == length
    # The origin folder is outside the bridge's store folder.
    assert not (live.root / "media-origin").is_relative_to(live.db.parent)


def test_drops_come_with_bursts_of_their_steps_from_their_poster(live: Live) -> None:
    photos = [p for p in photos_of(live.truth) if p.drop_number and p.reused_from is None]
    bursts: dict[tuple[str, str, int | None], list[PhotoTruth]] = {}
    for p in photos:
        assert p.drop_number is not None
        bursts.setdefault((p.chat_jid, p.drop_number, p.round), []).append(p)
    assert len(bursts) >= 8
    for burst in bursts.values():
        assert len({p.sender_phone for p in burst}) == 1  # one installer's burst
        steps = [int(p.step[5:7]) for p in burst if p.step]
        assert steps == sorted(steps)  # posted in the order of the steps
    assert max(len(b) for b in bursts.values()) >= 8
    chat, drop, _ = next(iter(bursts))
    assert [p for p in live.truth.photos_for(chat, drop) if p.media_type == "image"] == [
        p for p in photos_of(live.truth) if (p.chat_jid, p.drop_number) == (chat, drop)
    ]
    rounds = {p.round for p in photos}
    assert 0 in rounds and any(r and r > 0 for r in rounds)  # resubmissions post new photos


def test_burst_photos_share_seconds_so_their_file_names_collide(live: Live) -> None:
    names = Counter((p.chat_jid, p.filename) for p in live.truth.photos)
    assert any(n > 1 for n in names.values())


def test_serials_are_on_steps_8_and_9_and_the_same_device_on_a_resubmission(live: Live) -> None:
    photos = photos_of(live.truth)
    onts = [p for p in photos if p.step == "step_08_ont_barcode"]
    upss = [p for p in photos if p.step == "step_09_ups_serial"]
    assert onts and upss
    for p in onts + upss:
        assert p.serial and not (p.blurred or p.dark)
    for p in [p for p in onts if p.origin][:3] + [p for p in upss if p.origin][:3]:
        assert p.origin is not None
        assert [b.text for b in images.barcodes(p.origin)] == [p.serial]
    by_drop: dict[tuple[str, str | None], set[str | None]] = {}
    for p in onts:
        if p.reused_from is None:
            by_drop.setdefault((p.chat_jid, p.drop_number), set()).add(p.serial)
    assert all(len(serials) == 1 for serials in by_drop.values())


def test_imperfect_photos_are_in_the_truth_and_in_the_files(live: Live) -> None:
    photos = [p for p in photos_of(live.truth) if p.origin is not None]
    for kind in ("blurred", "dark", "taken_early"):
        marked = [p for p in photos if getattr(p, kind)]
        assert marked, kind
        for p in marked[:3]:
            assert kind in [h.kind for h in images.hints(p.origin, p.posted_at)]  # type: ignore[arg-type]
    assert any(p.expired for p in live.truth.photos)
    assert any(p.caption and p.drop_number and p.drop_number in p.caption for p in photos)


def test_reused_photos_repeat_another_drops_picture(live: Live) -> None:
    by_id = {p.message_id: p for p in live.truth.photos}
    reused = [p for p in photos_of(live.truth) if p.reused_from]
    assert any(p.reencoded for p in reused) and any(not p.reencoded for p in reused)
    for p in reused:
        original = by_id[p.reused_from or ""]
        assert (original.chat_jid, original.drop_number) != (p.chat_jid, p.drop_number)
        assert p.step == original.step and p.serial == original.serial
        if p.reencoded:
            assert p.sha256 != original.sha256
            if p.origin and original.origin:
                assert images.similar(
                    images.perceptual_hash(p.origin), images.perceptual_hash(original.origin)
                )
        else:
            assert p.sha256 == original.sha256


def test_videos_and_documents_have_files_of_their_type(live: Live) -> None:
    kinds = {p.media_type: p for p in live.truth.photos if p.origin is not None}
    assert "video" in kinds
    assert kinds["video"].content_type == "video/mp4"
    assert kinds["video"].origin is not None
    assert kinds["video"].origin.read_bytes()[4:8] == b"ftyp"
    with pytest.raises(images.ImageError):
        images.thumbnail(io.BytesIO(kinds["video"].origin.read_bytes()))


def test_the_same_seed_writes_the_same_files(tmp_path: Path) -> None:
    a = run_live(tmp_path / "a", seed=4, steps=40)
    b = run_live(tmp_path / "b", seed=4, steps=40)
    c = run_live(tmp_path / "c", seed=5, steps=40)
    strip = [(p.message_id, p.sha256, p.step, p.serial, p.expired) for p in a.photos]
    assert strip == [(p.message_id, p.sha256, p.step, p.serial, p.expired) for p in b.photos]
    assert strip != [(p.message_id, p.sha256, p.step, p.serial, p.expired) for p in c.photos]


def test_bulk_with_files_writes_the_same_messages_with_true_media_columns(
    tmp_path: Path,
) -> None:
    old = DEFAULT_START + timedelta(hours=3)
    with_files = generate_store(
        tmp_path / "a" / "messages.db",
        None,
        n_messages=600,
        seed=8,
        media_origin=tmp_path / "o",
        media_expired_before=old,
    )
    rows_only = generate_store(tmp_path / "b" / "messages.db", None, n_messages=600, seed=8)
    query = "SELECT id, chat_jid, sender, timestamp, media_type, filename, file_sha256 "
    query += "FROM messages"
    a = sqlite3.connect(tmp_path / "a" / "messages.db").execute(query).fetchall()
    b = sqlite3.connect(tmp_path / "b" / "messages.db").execute(query).fetchall()
    assert [r[:6] for r in a] == [r[:6] for r in b]
    assert with_files.drops == rows_only.drops and rows_only.photos == ()
    media = {r[0]: r for r in a if r[4]}
    assert len(with_files.photos) == with_files.media_rows == len(media)
    for p in with_files.photos:
        assert media[p.message_id][6] == bytes.fromhex(p.sha256)
        if p.origin is not None:
            assert hashlib.sha256(p.origin.read_bytes()).hexdigest() == p.sha256
    # WhatsApp dropped the old media; some newer ones expired as well.
    assert all(p.expired for p in with_files.photos if p.posted_at < old)
    assert any(p.posted_at < old for p in with_files.photos)
    assert any(not p.expired for p in with_files.photos if p.posted_at >= old)
    stepped = [p for p in with_files.photos if p.step and p.drop_number]
    assert stepped and all(p.round is not None for p in stepped)
