"""Faults around the photos: the bridge failing, the media store down, `run` killed mid-fetch,
the burst-collision bug, a path outside the bridge's store, a truncated image.

Each photo must end with a clear status, nothing stored that was not verified, and the
worker (and `run`) carrying on.
"""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.faults.support import Site, figure, wait_until
from tests.helpers import LAWLEY, PROJECTS_YAML
from tests.mediabridge import (
    CHAT,
    MediaBridge,
    Rig,
    jpeg,
    make_due,
    row,
    scene,
    settings_for,
)
from wa_monitor.core.settings import settings_from
from wa_monitor.sim import MessageRow, StoreWriter
from wa_monitor.sources.bridge_media import BridgeMediaClient
from wa_monitor.store.media import FolderMediaStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import group_messages as G


@pytest.fixture
def rig(store: ReviewStore, db_url: str, tmp_path: Path) -> Iterator[Rig]:
    bridge = MediaBridge(tmp_path / "bridge-store")
    with bridge.serving():
        yield Rig(
            store,
            bridge,
            FolderMediaStore(tmp_path / "media"),
            settings_for(db_url, tmp_path, bridge),
        )


def quick_client(rig: Rig, timeout: float = 0.5) -> BridgeMediaClient:
    return BridgeMediaClient(rig.bridge.url, rig.bridge.store, timeout=timeout)


def stored(media: FolderMediaStore) -> list[str]:
    return sorted(p.name for p in media.root.rglob("*") if p.is_file() and len(p.name) == 64)


# -- the bridge failing -------------------------------------------------------------------


def test_a_failing_bridge_is_retried_until_the_photo_comes(rig: Rig) -> None:
    rig.bridge.slow_seconds = 2.0
    data = jpeg(scene(0))
    media_id, message_id = rig.add(CHAT, data)
    rig.bridge.files[(CHAT, message_id)].script[:] = ["500", "nonjson", "slow"]
    worker = rig.worker(client=quick_client(rig))
    reasons = []
    for _ in range(3):
        worker.round()
        got = row(rig.store, media_id)
        assert got["status"] == "pending"
        reasons.append(got["last_error"])
        make_due(rig.store)
    worker.round()
    got = row(rig.store, media_id)
    assert got["status"] == "available", got["last_error"]
    assert got["attempts"] == 4 and got["last_error"] is None
    assert "HTTP 500 without JSON" in reasons[0]
    assert "HTTP 200 without JSON" in reasons[1]
    assert "did not answer within 0.5 s" in reasons[2]
    assert stored(rig.media) == sorted([got["sha256"], got["thumb_sha256"]])
    figure(
        "media fault: the bridge answered 500, HTML, then nothing in time; the photo was "
        f"retried and stored on attempt {got['attempts']}: " + " | ".join(r[-50:] for r in reasons)
    )


def test_media_gone_from_whatsapp_is_unavailable_at_once(rig: Rig) -> None:
    media_id, message_id = rig.add(CHAT, jpeg(scene(1)))
    rig.bridge.files[(CHAT, message_id)].script[:] = ["gone"]
    rig.worker().round()
    got = row(rig.store, media_id)
    assert got["status"] == "unavailable"
    assert "WhatsApp no longer has this media" in got["last_error"]
    assert got["attempts"] == 1


def test_a_burst_collision_is_retried_then_failed_with_the_reason(rig: Rig) -> None:
    lucky, lucky_message = rig.add(CHAT, jpeg(scene(0)))
    unlucky, unlucky_message = rig.add(
        CHAT, jpeg(scene(1)), posted_at=datetime(2025, 11, 9, 18, tzinfo=UTC)
    )
    rig.bridge.files[(CHAT, lucky_message)].script[:] = ["sibling"]
    rig.bridge.files[(CHAT, unlucky_message)].script[:] = ["sibling"] * 8
    worker = rig.worker()
    for _ in range(8):
        worker.round()
        make_due(rig.store)
    assert row(rig.store, lucky)["status"] == "available"
    got = row(rig.store, unlucky)
    assert got["status"] == "failed"
    assert "another photo of the same burst" in got["last_error"]
    assert "gave up after 8 attempts" in got["last_error"]
    # Nothing of the wrong files was kept: only the lucky photo and its thumbnail.
    assert len(stored(rig.media)) == 2
    figure(f"media fault: burst collision 8 times: failed, {got['last_error'][-90:]!r}")


def test_a_path_outside_the_bridge_store_is_refused(rig: Rig) -> None:
    media_id, message_id = rig.add(CHAT, jpeg(scene(0)))
    rig.bridge.files[(CHAT, message_id)].script[:] = ["outside"]
    rig.worker().round()
    got = row(rig.store, media_id)
    assert got["status"] == "failed"
    assert "leads outside its store folder" in got["last_error"]
    assert stored(rig.media) == []


def test_a_truncated_image_is_failed_as_damaged(rig: Rig) -> None:
    whole = jpeg(scene(0))
    media_id, _ = rig.add(CHAT, whole[: len(whole) // 2])  # what the phone uploaded
    rig.worker().round()
    got = row(rig.store, media_id)
    assert got["status"] == "failed"
    assert "damaged" in got["last_error"] or "truncated" in got["last_error"]


# -- the media store down -----------------------------------------------------------------


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Moto:
    port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, self.log.read_text()
                assert self.process.poll() is None, self.log.read_text()
                time.sleep(0.05)  # polling for the server to listen

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            self.process = None


def test_an_s3_outage_mid_run_is_retried_and_the_worker_recovers(
    store: ReviewStore, db_url: str, tmp_path: Path
) -> None:
    import boto3

    moto = Moto(_port(), tmp_path / "moto.log")
    aws = {
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": moto.endpoint,
    }

    def bucket() -> None:
        boto3.client(
            "s3",
            endpoint_url=moto.endpoint,
            aws_access_key_id=aws["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=aws["AWS_SECRET_ACCESS_KEY"],
            region_name="us-east-1",
        ).create_bucket(Bucket="photos")

    bridge = MediaBridge(tmp_path / "bridge-store")
    moto.start()
    try:
        bucket()
        with bridge.serving():
            settings = settings_from(
                {
                    "DATABASE_URL": db_url,
                    "WHATSAPP_DB_PATH": str(bridge.store / "messages.db"),
                    "BRIDGE_URL": bridge.url,
                    "MEDIA_URL": "s3://photos/wa",
                    **aws,
                }
            )
            rig = Rig(store, bridge, FolderMediaStore(tmp_path / "unused"), settings)
            first, _ = rig.add(CHAT, jpeg(scene(0)))
            worker = rig.worker()
            worker.round()
            assert row(store, first)["status"] == "available", row(store, first)["last_error"]

            moto.stop()
            second, _ = rig.add(CHAT, jpeg(scene(1)), drop="DR2000002")
            worker.round()  # no crash: the photo waits with the reason
            got = row(store, second)
            assert got["status"] == "pending"
            assert "s3://photos/wa" in got["last_error"]
            assert "testing-secret" not in got["last_error"]
            down_reason = got["last_error"]

            moto.start()
            bucket()  # moto keeps nothing across a restart: the bucket is new and empty
            make_due(store)
            worker.round()
            got = row(store, second)
            assert got["status"] == "available", got["last_error"]
            assert got["attempts"] == 2
    finally:
        moto.stop()
    figure(
        f"media fault: S3 stopped mid-run: photo pending ({down_reason[-70:]!r}), "
        "stored after restart"
    )


# -- `run` with photos --------------------------------------------------------------------


def photo_site(
    root: Path, db_url: str, bridge: MediaBridge, photos: int = 1
) -> tuple[Site, list[str]]:
    """A bridge store with a drop post and `photos` photos after it, served by `bridge`."""
    store_dir = bridge.store
    site = Site(root, store_dir / "messages.db", store_dir / "whatsapp.db", db_url)
    site.config.write_text(PROJECTS_YAML)
    writer = StoreWriter(site.messages_db, site.whatsapp_db)
    now = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
    sender = "27821234567"

    def write(message_id: str, content: str, when: datetime, **media: Any) -> None:
        writer.write(
            MessageRow(
                id=message_id,
                chat_jid=LAWLEY,
                sender=sender,
                content=content,
                timestamp=writer.timestamp(when),
                is_from_me=False,
                media_type=media.get("media_type", ""),
                filename=media.get("filename", ""),
                url=media.get("url", ""),
                media_key=media.get("media_key"),
                file_sha256=media.get("file_sha256"),
                file_enc_sha256=media.get("file_enc_sha256"),
                file_length=media.get("file_length", 0),
            )
        )

    write("POST0000000000000001", "DR12345678 installed", now)
    ids = []
    for i in range(photos):
        data = jpeg(scene(i % 2))
        when = now + timedelta(minutes=1 + i)
        message_id = f"PHOTO{i:015d}"
        filename = f"image_{when:%Y%m%d_%H%M%S}.jpg"
        write(
            message_id,
            "",
            when,
            media_type="image",
            filename=filename,
            url="https://mmg.whatsapp.net/x",
            media_key=os.urandom(32),
            file_sha256=hashlib.sha256(data).digest(),
            file_enc_sha256=os.urandom(32),
            file_length=len(data),
        )
        bridge.add(LAWLEY, message_id, filename, data)
        ids.append(message_id)
    writer.close()
    return site, ids


def photo_rows(store: ReviewStore) -> list[dict[str, Any]]:
    with store.read() as conn:
        return [
            dict(r)
            for r in conn.execute(
                sa.select(G).where(G.c.media_type == "image").order_by(G.c.message_id)
            ).mappings()
        ]


def test_run_links_and_fetches_a_photo_posted_after_a_drop(db_url: str, tmp_path: Path) -> None:
    bridge = MediaBridge(tmp_path / "store")
    site, ids = photo_site(tmp_path, db_url, bridge)
    store = site.store()
    port = _port()
    with bridge.serving():
        process = site.start(
            BRIDGE_URL=bridge.url, MEDIA_DIR=str(tmp_path / "media"), METRICS_PORT=str(port)
        )
        try:
            started = time.monotonic()
            wait_until(
                lambda: [(r["status"], r["drop_number"]) for r in photo_rows(store)]
                == [("available", "DR12345678")],
                60,
                "the photo linked and fetched by `run`",
                process=process,
            )
            took = time.monotonic() - started
            (photo,) = photo_rows(store)
            assert photo["round"] == 0 and photo["review_id"] is not None
            assert photo["thumb_sha256"] and photo["phash"]

            def metrics() -> str:
                import httpx

                try:
                    return httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
                except httpx.HTTPError:
                    return ""

            wait_until(
                lambda: 'wa_monitor_media_fetches_total{outcome="fetched"} 1.0' in metrics()
                and 'wa_monitor_media_photos{status="available"} 1.0' in metrics(),
                40,
                "the fetch and the backlog in /metrics",
                process=process,
            )
            assert process.stop() == 0
        finally:
            process.ensure_dead()
            store.dispose()
    assert bridge.requests[ids[0]] == 1
    figure(f"media: `run` linked and fetched a photo {took:.1f} s after it started")


def test_run_killed_mid_fetch_fetches_the_photo_once_after_a_restart(
    db_url: str, tmp_path: Path
) -> None:
    bridge = MediaBridge(tmp_path / "store")
    site, ids = photo_site(tmp_path, db_url, bridge)
    bridge.files[(LAWLEY, ids[0])].script[:] = ["hang"]
    store = site.store()
    media = FolderMediaStore(tmp_path / "media")
    with bridge.serving():
        env = {"BRIDGE_URL": bridge.url, "MEDIA_DIR": str(media.root)}
        first = site.start(**env)
        try:
            assert bridge.hanging.wait(60), first.log()
            first.kill9()  # mid-fetch: the bridge has the request in hand
        finally:
            first.ensure_dead()
        bridge.release.set()
        (photo,) = photo_rows(store)
        assert photo["status"] == "pending" and photo["attempts"] == 1
        make_due(store)  # the killed worker's lease is over
        second = site.start(**env)
        try:
            wait_until(
                lambda: [r["status"] for r in photo_rows(store)] == ["available"],
                60,
                "the photo fetched after the restart",
                process=second,
            )
            assert second.stop() == 0
        finally:
            second.ensure_dead()
    (photo,) = photo_rows(store)
    store.dispose()
    assert photo["attempts"] == 2
    assert stored(media) == sorted([photo["sha256"], photo["thumb_sha256"]])
    assert (
        not list((media.root / ".incoming").glob("put-*"))
        if (media.root / ".incoming").exists()
        else True
    )
    figure(
        "media fault: `run` SIGKILLed while the bridge held the download; after the lease, "
        f"a restart stored the photo once (attempts {photo['attempts']}, "
        f"{len(stored(media))} files: photo and thumbnail)"
    )


def test_sigterm_while_the_bridge_holds_a_download_stops_run_at_once(
    db_url: str, tmp_path: Path
) -> None:
    bridge = MediaBridge(tmp_path / "store")
    site, ids = photo_site(tmp_path, db_url, bridge)
    bridge.files[(LAWLEY, ids[0])].script[:] = ["hang"]
    with bridge.serving():
        process = site.start(BRIDGE_URL=bridge.url, MEDIA_DIR=str(tmp_path / "media"))
        try:
            assert bridge.hanging.wait(60), process.log()
            signalled = time.monotonic()
            assert process.stop(timeout=30) == 0
            took = time.monotonic() - signalled
        finally:
            process.ensure_dead()
    log = process.log()
    assert "Traceback" not in log and "Drop monitor stopped" in log
    # The media worker waits 5 s for a download in hand, never the bridge's 30 s timeout.
    assert took < 15, took
    figure(f"media fault: SIGTERM while the bridge held a download: exit 0 after {took:.1f} s")
