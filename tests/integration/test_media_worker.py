"""The photo fetch queue and the media worker, on both backends, with a real HTTP bridge."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from PIL import Image

from tests.mediabridge import (
    CHAT,
    T0,
    MediaBridge,
    Rig,
    add_media,
    add_review,
    jpeg,
    label,
    row,
    scene,
    settings_for,
)
from wa_monitor.core.settings import settings_from
from wa_monitor.monitor.media_worker import MediaWorker, serials_from, sniff
from wa_monitor.store import media_queue as queue
from wa_monitor.store.media import FolderMediaStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import group_messages as G
from wa_monitor.store.schema import qa_photo_reviews as R


@pytest.fixture
def rig(store: ReviewStore, db_url: str, tmp_path: Path) -> Iterator[Rig]:
    bridge = MediaBridge(tmp_path / "bridge-store")
    with bridge.serving():
        settings = settings_for(db_url, tmp_path, bridge)
        yield Rig(store, bridge, FolderMediaStore(tmp_path / "media"), settings)


# -- the queue ----------------------------------------------------------------------------


def test_claims_take_due_photos_newest_first_and_hold_them_for_the_lease(
    store: ReviewStore,
) -> None:
    old, _ = add_media(store, b"a", posted_at=T0)
    new, _ = add_media(store, b"b", posted_at=T0 + timedelta(minutes=5))
    later, _ = add_media(store, b"c", posted_at=T0 + timedelta(minutes=9))
    with store.begin() as conn:  # not due yet: its retry is in the future
        conn.execute(
            sa.update(G).where(G.c.id == later).values(next_attempt_at=T0 + timedelta(hours=5))
        )
    now = T0 + timedelta(hours=1)
    claimed = queue.claim(store, 5, now=now, lease=timedelta(minutes=15))
    assert [c.id for c in claimed] == [new, old]
    assert all(c.attempts == 1 for c in claimed)
    # Held: nobody else takes them during the lease...
    assert queue.claim(store, 5, now=now + timedelta(minutes=14)) == []
    # ...and a worker killed with them in hand loses nothing: they are due after it.
    again = queue.claim(store, 5, now=now + timedelta(minutes=16), lease=timedelta(minutes=15))
    assert [c.id for c in again] == [new, old]
    assert [c.attempts for c in again] == [2, 2]


def test_retries_back_off_from_30_s_doubling_to_an_hour_then_fail_after_8(
    store: ReviewStore,
) -> None:
    assert [queue.backoff(n).total_seconds() for n in range(1, 10)] == [
        30, 60, 120, 240, 480, 960, 1920, 3600, 3600,
    ]  # fmt: skip
    media_id, _ = add_media(store, b"x")
    now = T0
    waits = []
    for attempt in range(1, queue.MAX_ATTEMPTS + 1):
        (claimed,) = queue.claim(store, 1, now=now)
        assert claimed.attempts == attempt
        status = queue.retry_later(store, media_id, claimed.attempts, "the bridge is busy", now=now)
        due = row(store, media_id)["next_attempt_at"]
        if status == "pending":
            waits.append((due - now).total_seconds())
            assert queue.claim(store, 1, now=due - timedelta(seconds=1)) == []
            now = due
    assert waits == [30, 60, 120, 240, 480, 960, 1920]
    final = row(store, media_id)
    assert final["status"] == "failed"
    assert final["last_error"] == "the bridge is busy (gave up after 8 attempts)"
    assert queue.claim(store, 1, now=now + timedelta(days=1)) == []


def test_unavailable_is_final(store: ReviewStore) -> None:
    media_id, _ = add_media(store, b"x")
    assert len(queue.claim(store, 1, now=T0)) == 1
    assert queue.mark_unavailable(store, media_id, "WhatsApp no longer has this media", now=T0)
    # A late retry from a second worker whose lease ran out changes nothing.
    queue.retry_later(store, media_id, 1, "slow", now=T0)
    assert not queue.mark_failed(store, media_id, "late")
    assert queue.claim(store, 1, now=T0 + timedelta(days=30)) == []
    assert row(store, media_id)["status"] == "unavailable"
    assert row(store, media_id)["last_error"] == "WhatsApp no longer has this media"


def test_two_claimers_never_take_the_same_photo(store: ReviewStore, db_url: str) -> None:
    """On PostgreSQL the claim locks with SKIP LOCKED; SQLite serialises its writers."""
    ids = {add_media(store, bytes([i]), posted_at=T0 + timedelta(seconds=i))[0] for i in range(60)}
    other = ReviewStore(db_url)
    taken: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def claimer(name: str, s: ReviewStore) -> None:
        start.wait()
        while claimed := queue.claim(s, 2, now=T0 + timedelta(hours=1)):
            taken[name].extend(c.id for c in claimed)

    threads = [
        threading.Thread(target=claimer, args=("a", store)),
        threading.Thread(target=claimer, args=("b", other)),
    ]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    finally:
        other.dispose()
    assert not set(taken["a"]) & set(taken["b"])
    assert sorted(taken["a"] + taken["b"]) == sorted(ids)


def test_the_backlog_counts_each_status_and_the_oldest_pending(store: ReviewStore) -> None:
    first, _ = add_media(store, b"a", posted_at=T0)
    add_media(store, b"b", posted_at=T0 + timedelta(hours=1))
    gone, _ = add_media(store, b"c")
    broken, _ = add_media(store, b"d")
    queue.mark_unavailable(store, gone, "gone")
    queue.mark_failed(store, broken, "the file is a PDF, not an image")
    seen = queue.backlog(store, now=T0 + timedelta(hours=2))
    assert {s: seen.count(s) for s in queue.STATUSES} == {
        "pending": 2,
        "available": 0,
        "failed": 1,
        "unavailable": 1,
    }
    assert seen.oldest_pending_at == T0
    assert seen.oldest_pending_age(T0 + timedelta(hours=2)) == 7200
    assert [reason for reason, _ in seen.failures] == ["the file is a PDF, not an image"]
    assert seen.as_dict(T0 + timedelta(hours=2))["oldest_pending_seconds"] == 7200
    assert first


def test_a_photo_of_no_drop_is_not_fetched_until_it_is_linked(store: ReviewStore) -> None:
    chatter, _ = add_media(store, b"a", drop=None, posted_at=T0 + timedelta(minutes=1))
    photo, _ = add_media(store, b"b", posted_at=T0)
    now = T0 + timedelta(hours=1)
    seen = queue.backlog(store, now=now)
    assert (seen.count("pending"), seen.unlinked, seen.due) == (1, 1, 1)
    assert seen.oldest_pending_at == T0
    assert [c.id for c in queue.claim(store, 5, now=now)] == [photo]
    # A re-link (or a reviewer's move) gives it a drop: it is fetched like any other.
    with store.begin() as conn:
        conn.execute(sa.update(G).where(G.c.id == chatter).values(drop_number="DR1000002"))
    assert [c.id for c in queue.claim(store, 5, now=now)] == [chatter]


# -- what a file is -----------------------------------------------------------------------


def test_the_service_copies_of_the_image_bounds_match_core_images() -> None:
    import random

    from wa_monitor.core import images
    from wa_monitor.monitor import media_worker

    assert media_worker.IMAGE_MAX_BYTES == images.MAX_FILE_BYTES
    assert media_worker.PHASH_MAX_DISTANCE == images.PHASH_MAX_DISTANCE
    rng = random.Random(11)
    for _ in range(2000):
        a = rng.getrandbits(64)
        b = a ^ sum(1 << bit for bit in rng.sample(range(64), rng.randrange(16)))
        ha, hb = f"{a:016x}", f"{b:016x}"
        assert media_worker.similar(ha, hb) == images.similar(ha, hb)


def test_the_service_does_not_load_the_image_libraries() -> None:
    import subprocess
    import sys

    probe = (
        "import sys; import wa_monitor.monitor.service; "
        "print(sorted(m for m in ('PIL', 'numpy', 'scipy', 'imagehash', 'zxingcpp') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_files_are_known_by_their_first_bytes() -> None:
    assert sniff(jpeg(scene())[:64]) == "image/jpeg"
    assert sniff(b"\x89PNG\r\n\x1a\n" + b"\0" * 8) == "image/png"
    assert sniff(b"\0\0\0\x18ftypheic" + b"\0" * 8) == "image/heic"
    assert sniff(b"\0\0\0\x18ftypisom" + b"\0" * 8) == "video/mp4"
    assert sniff(b"%PDF-1.7\n") == "application/pdf"
    assert sniff(b"hello") == "application/octet-stream"


def test_serials_are_an_ont_gpon_code_and_a_ups_code_on_the_ups_step() -> None:
    codes = [
        {"format": "Code 128", "text": "HWTC1A2B3C4D"},
        {"format": "QR Code", "text": "UPS-77"},
    ]
    assert serials_from(codes, step=None, caption=None) == ("HWTC1A2B3C4D", None)
    assert serials_from(codes, step="step_09_ups_serial", caption=None) == (
        "HWTC1A2B3C4D",
        "UPS-77",
    )
    assert serials_from(codes[1:], step=None, caption="ups serial") == (None, "UPS-77")
    assert serials_from(codes[1:], step="step_01_house_photo", caption=None) == (None, None)
    # The label's other form: the vendor id as 8 hex digits ("HWTC"), then the 8 digits.
    hexed = [{"format": "Code 128", "text": "48575443A1B2C3D4"}]
    assert serials_from(hexed, step=None, caption=None) == ("48575443A1B2C3D4", None)


# -- the worker, end to end ---------------------------------------------------------------


def test_a_pending_photo_is_fetched_verified_analysed_and_its_serial_stored(rig: Rig) -> None:
    review = add_review(rig.store, "DR1000001")
    media_id, message_id = rig.add(
        CHAT, label("HWTC1A2B3C4D"), review_id=review, step="step_08_ont_barcode"
    )
    worker = rig.worker()
    worker.round()
    got = row(rig.store, media_id)
    assert got["status"] == "available", got["last_error"]
    assert got["sha256"] == got["file_sha256"]
    assert got["content_type"] == "image/jpeg"
    assert (got["width"], got["height"]) == Image.open(
        io.BytesIO(rig.bridge.files[(CHAT, message_id)].data)
    ).size
    assert got["barcodes"] == [{"format": "Code 128", "text": "HWTC1A2B3C4D"}]
    assert len(got["phash"]) == 16
    assert got["phash_b0"] == int(got["phash"][:4], 16)
    assert got["phash_b3"] == int(got["phash"][12:], 16)
    assert rig.media.exists(got["sha256"]) and rig.media.exists(got["thumb_sha256"])
    with rig.media.open(got["thumb_sha256"]) as thumb:
        assert max(Image.open(io.BytesIO(thumb.read())).size) <= 320
    with rig.store.read() as conn:
        serial = conn.execute(sa.select(R.c.ont_serial_scanned).where(R.c.id == review)).scalar()
    assert serial == "HWTC1A2B3C4D"
    assert worker.status()["fetches"] == {"fetched": 1}


def test_a_serial_already_on_the_review_is_not_overwritten(rig: Rig) -> None:
    review = add_review(rig.store, "DR1000001")
    with rig.store.begin() as conn:
        conn.execute(sa.update(R).where(R.c.id == review).values(ont_serial_scanned="ZTEG00000001"))
    rig.add(CHAT, label("HWTC1A2B3C4D"), review_id=review)
    rig.worker().round()
    with rig.store.read() as conn:
        serial = conn.execute(sa.select(R.c.ont_serial_scanned).where(R.c.id == review)).scalar()
    assert serial == "ZTEG00000001"


def test_a_photo_reused_from_another_drop_points_at_the_earliest(rig: Rig) -> None:
    original = jpeg(scene(0), 92)
    copy = jpeg(scene(0).resize((640, 480)), 70)  # re-sent: resized and recompressed
    first, _ = rig.add(CHAT, original, drop="DR1000001", posted_at=T0)
    same_drop, _ = rig.add(CHAT, copy, drop="DR1000001", posted_at=T0 + timedelta(minutes=1))
    other, _ = rig.add(CHAT, copy, drop="DR2000002", posted_at=T0 + timedelta(days=3))
    unrelated, _ = rig.add(CHAT, jpeg(scene(1)), drop="DR3000003", posted_at=T0 + timedelta(days=4))
    worker = rig.worker()
    worker.round()
    assert row(rig.store, other)["duplicate_of"] == first
    assert row(rig.store, first)["duplicate_of"] is None
    assert row(rig.store, same_drop)["duplicate_of"] is None  # its own drop, and earlier
    assert row(rig.store, unrelated)["duplicate_of"] is None


def test_a_file_the_store_already_has_is_not_downloaded_again(rig: Rig) -> None:
    data = jpeg(scene(1))
    first, first_message = rig.add(CHAT, data)
    worker = rig.worker()
    worker.round()
    second, second_message = rig.add("120363000000000002@g.us", data, drop="DR2000002")
    worker.round()
    assert row(rig.store, second)["status"] == "available"
    assert row(rig.store, second)["thumb_sha256"] == row(rig.store, first)["thumb_sha256"]
    assert rig.bridge.requests[first_message] == 1
    assert rig.bridge.requests[second_message] == 0
    assert worker.status()["fetches"] == {"fetched": 1, "reused": 1}


def test_a_reviewers_hint_decision_stays_with_its_photo_not_with_the_file(rig: Rig) -> None:
    data = jpeg(scene(2))
    first, _ = rig.add(CHAT, data)
    worker = rig.worker()
    worker.round()
    decided = {"kind": "dark", "message": "too dark", "value": 0.1}
    with rig.store.begin() as conn:
        conn.execute(
            sa.update(G)
            .where(G.c.id == first)
            .values(hints=[{**decided, "state": "dismissed", "by": "thandi", "at": "x"}])
        )
    second, _ = rig.add("120363000000000002@g.us", data, drop="DR2000002")
    worker.round()
    assert row(rig.store, second)["status"] == "available"
    assert row(rig.store, second)["hints"] == [decided]  # the finding, not thandi's call
    assert row(rig.store, first)["hints"][0]["state"] == "dismissed"


def test_a_file_that_is_not_what_its_type_says_is_failed_with_the_reason(rig: Rig) -> None:
    media_id, _ = rig.add(CHAT, b"%PDF-1.7\n" + b"0" * 2000, filename="image_20251109_171500.jpg")
    rig.worker().round()
    got = row(rig.store, media_id)
    assert got["status"] == "failed"
    assert "the file is a PDF, not an image" in got["last_error"]


def test_a_video_over_media_max_bytes_is_failed_without_a_download(rig: Rig, db_url: str) -> None:
    settings = settings_for(db_url, rig.media.root.parent, rig.bridge, MEDIA_MAX_BYTES="4096")
    media_id, message_id = rig.add(
        CHAT, b"\0\0\0\x18ftypisom" + b"v" * 8000, media_type="video", filename="video.mp4"
    )
    MediaWorker(rig.store, settings, analyse_in_process=False).round()
    got = row(rig.store, media_id)
    assert got["status"] == "failed"
    assert "over the limit of 4096" in got["last_error"]
    assert rig.bridge.requests[message_id] == 0


def test_a_video_is_stored_with_its_content_type_and_no_image_fields(rig: Rig) -> None:
    media_id, _ = rig.add(
        CHAT, b"\0\0\0\x18ftypisom" + b"v" * 8000, media_type="video", filename="video.mp4"
    )
    rig.worker().round()
    got = row(rig.store, media_id)
    assert got["status"] == "available", got["last_error"]
    assert got["content_type"] == "video/mp4"
    assert got["thumb_sha256"] is None and got["phash"] is None


def test_without_a_usable_media_store_photos_are_linked_not_fetched(
    store: ReviewStore, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the media folder should be")
    settings = settings_from(
        {
            "DATABASE_URL": store.url,
            "WHATSAPP_DB_PATH": str(tmp_path / "messages.db"),
            "MEDIA_DIR": str(blocker / "media"),
        }
    )
    steps: list[int] = []

    class Linker:
        def step(self, max_rows: int = 5000) -> bool:
            steps.append(max_rows)
            return len(steps) < 3  # more work twice, then done

    media_id, _ = add_media(store, b"x")
    worker = MediaWorker(store, settings, linker=Linker(), analyse_in_process=False)
    worker.round()
    worker.round()
    assert len(steps) == 4  # three steps in the first round, one in the second
    assert row(store, media_id)["status"] == "pending"
    status = worker.status()
    assert status["fetching"] is False
    assert "media store cannot be used" in status["reason"]
    warnings = [r for r in caplog.records if "not fetched" in r.getMessage()]
    assert len(warnings) == 1


def test_the_analysis_runs_in_a_process_of_its_own(rig: Rig) -> None:
    media_id, _ = rig.add(CHAT, jpeg(scene(0)))
    worker = rig.worker(analyse_in_process=True)
    try:
        worker.round()
        pool = worker._pool
        assert pool is not None
        pids = [p.pid for p in pool._processes.values()]  # type: ignore[attr-defined]
        assert pids and all(pid != __import__("os").getpid() for pid in pids)
    finally:
        worker.close()
    assert row(rig.store, media_id)["status"] == "available"


def test_the_worker_thread_stops_at_once_when_told(rig: Rig) -> None:
    worker = rig.worker()
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,))
    thread.start()
    assert worker.rounded.wait(10)
    media_id, _ = rig.add(CHAT, jpeg(scene(1)))
    worker.wake()
    deadline = time.monotonic() + 10
    while row(rig.store, media_id)["status"] != "available":
        assert time.monotonic() < deadline, "the woken worker did not fetch the photo"
        time.sleep(0.05)  # polling an outcome
    started = time.monotonic()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()
    assert time.monotonic() - started < 2


# -- the backlog in /metrics --------------------------------------------------------------


def test_metrics_show_the_backlog_by_status_and_fetches_by_outcome(rig: Rig) -> None:
    from prometheus_client import generate_latest

    from wa_monitor.monitor.metrics import MonitorMetrics, database_registry
    from wa_monitor.store.heartbeats import record_heartbeat

    rig.add(CHAT, jpeg(scene(0)))
    gone, message_id = rig.add(CHAT, jpeg(scene(1)), drop="DR2000002")
    rig.bridge.files[(CHAT, message_id)].script[:] = ["gone"]
    add_media(rig.store, b"later", posted_at=T0 + timedelta(days=1))
    with rig.store.begin() as conn:  # not due: in its backoff
        conn.execute(
            sa.update(G)
            .where(G.c.status == "pending", G.c.file_length == 5)
            .values(next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
        )
    metrics = MonitorMetrics()
    seen: list[dict[str, int]] = []

    def on_round(worker: MediaWorker) -> None:
        metrics.observe_media(queue.backlog(rig.store))
        metrics.observe_fetches(worker.status()["fetches"])
        seen.append(worker.status()["fetches"])

    rig.worker(on_round=on_round).round()
    text = generate_latest(metrics.registry).decode()
    assert 'wa_monitor_media_photos{status="available"} 1.0' in text
    assert 'wa_monitor_media_photos{status="unavailable"} 1.0' in text
    assert 'wa_monitor_media_photos{status="pending"} 1.0' in text
    assert 'wa_monitor_media_fetches_total{outcome="fetched"} 1.0' in text
    assert 'wa_monitor_media_fetches_total{outcome="unavailable"} 1.0' in text
    assert row(rig.store, gone)["status"] == "unavailable"
    # The dashboard's /metrics reads the same queue, and the fetches from the heartbeat.
    record_heartbeat(
        rig.store,
        "prod@test",
        started_at=T0,
        counters={"media_fetches": seen[-1]},
        status={},
    )
    dashboard = generate_latest(database_registry(rig.store)).decode()
    assert 'wa_monitor_media_photos{status="available"} 1.0' in dashboard
    assert 'wa_monitor_media_fetches_total{monitor="prod@test",outcome="fetched"} 1.0' in dashboard
