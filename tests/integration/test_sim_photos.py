"""The simulated bridge's POST /api/download over HTTP on 127.0.0.1, as the bridge answers it."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from tests.fakebridge import DOWNLOAD_NOT_CONNECTED, PROXY_BAD_GATEWAY, running_bridge
from wa_monitor.sim import MediaMaker, MessageRow, StoreWriter
from wa_monitor.sim.bridge_api import (
    EXPIRED_MESSAGE,
    NOT_CONNECTED,
    BridgeMedia,
    DownloadAnswer,
)
from wa_monitor.sim.media import MediaShares
from wa_monitor.sources.bridge_media import BridgeMediaClient

CHAT = "120363418298130331@g.us"
PERFECT = MediaShares(blurred=0, dark=0, taken_early=0, reused=0, expired=0, caption=0)


@dataclass
class Store:
    root: Path
    maker: MediaMaker

    @property
    def db(self) -> Path:
        return self.root / "store" / "messages.db"

    @property
    def folder(self) -> Path:
        return self.root / "store"

    @property
    def origin(self) -> Path:
        return self.root / "media-origin"


def media_row(message_id: str, filename: str, timestamp: str) -> MessageRow:
    return MessageRow(
        message_id, CHAT, "27821234567", "", timestamp, False, "image", filename,
        "https://mmg.whatsapp.net/v/t62.7118-24/1_2_3_n.enc?ccb=11-4", b"k" * 32, None,
        b"e" * 32, 0,
    )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """A bridge store with a burst of three photos, two stored in the same second, and a text."""
    maker = MediaMaker(tmp_path / "media-origin", seed=1, shares=PERFECT)
    with StoreWriter(tmp_path / "store" / "messages.db") as writer:
        posted = datetime(2025, 11, 9, 17, 15, 30, tzinfo=UTC)
        for message_id, second, step in (("3EB0AA", 30, 1), ("3EB0BB", 30, 2), ("3EB0CC", 31, 3)):
            stamp = f"2025-11-09 19:15:{second}+02:00"
            row = media_row(message_id, f"image_20251109_1915{second}.jpg", stamp)
            row = maker.photo(
                row,
                posted_at=posted,
                sender_phone="27821234567",
                drop="DR12345678",
                round=0,
                step=step,
            )
            writer.write(row)
        text = MessageRow(
            "3EB0TEXT", CHAT, "27821234567", "DR12345678 done", "2025-11-09 19:15:00+02:00",
            False, "", "", "", None, None, None, 0,
        )  # fmt: skip
        writer.write(text)
    yield Store(tmp_path, maker)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def truth(store: Store, message_id: str) -> str:
    return next(p.sha256 for p in store.maker.truths if p.message_id == message_id)


def post(url: str, body: object) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(f"{url}/download", content=content, timeout=10)


def test_a_download_copies_the_photo_into_the_store_and_answers_its_absolute_path(
    store: Store,
) -> None:
    with running_bridge(BridgeMedia(store.db, store.origin)) as bridge:
        answer = post(bridge.url, {"message_id": "3EB0CC", "chat_jid": CHAT})
    assert answer.status_code == 200
    assert answer.json() == {
        "success": True,
        "message": "Successfully downloaded image media",
        "filename": "image_20251109_191531.jpg",
        "path": str(store.folder.absolute() / CHAT / "image_20251109_191531.jpg"),
    }
    path = Path(answer.json()["path"])
    assert path.is_absolute() and path.is_relative_to(store.folder.absolute())
    assert sha(path) == truth(store, "3EB0CC")
    assert bridge.downloads == [{"message_id": "3EB0CC", "chat_jid": CHAT}]


def test_photos_of_the_same_second_collide_and_the_later_one_gets_its_siblings_file(
    store: Store,
) -> None:
    media = BridgeMedia(store.db, store.origin)
    with running_bridge(media) as bridge:
        first = post(bridge.url, {"message_id": "3EB0AA", "chat_jid": CHAT}).json()
        second = post(bridge.url, {"message_id": "3EB0BB", "chat_jid": CHAT}).json()
    assert first["path"] == second["path"] and second["success"] is True
    # The bridge found a file of that name and returned it: the first photo, not the second.
    assert sha(Path(second["path"])) == truth(store, "3EB0AA") != truth(store, "3EB0BB")
    assert media.downloads == 1


def test_a_bridge_that_downloads_again_overwrites_its_siblings_file(store: Store) -> None:
    media = BridgeMedia(store.db, store.origin, collisions="overwrite")
    first = media.download("3EB0AA", CHAT)
    assert isinstance(first.body, dict)
    path = Path(str(first.body["path"]))
    assert sha(path) == truth(store, "3EB0AA")
    media.download("3EB0BB", CHAT)
    # The first answer's file now holds the second photo: a reader must verify it.
    assert sha(path) == truth(store, "3EB0BB")


def test_expired_media_fails_with_404_and_writes_nothing(store: Store) -> None:
    media = BridgeMedia(store.db, store.origin)
    media.expire(CHAT, "3EB0CC")
    with running_bridge(media) as bridge:
        answer = post(bridge.url, {"message_id": "3EB0CC", "chat_jid": CHAT})
    assert answer.status_code == 500
    assert answer.json() == {"success": False, "message": EXPIRED_MESSAGE}
    assert not (store.folder / CHAT / "image_20251109_191531.jpg").exists()


@pytest.mark.parametrize(
    ("body", "status", "answer"),
    [
        (
            {"message_id": "NOPE", "chat_jid": CHAT},
            500,
            {
                "success": False,
                "message": "Failed to download media: failed to find message: "
                "sql: no rows in result set",
            },
        ),
        (
            {"message_id": "3EB0TEXT", "chat_jid": CHAT},
            500,
            {"success": False, "message": "Failed to download media: not a media message"},
        ),
        ({"message_id": "3EB0AA"}, 400, "Message ID and Chat JID are required\n"),
        (b"not json", 400, "Invalid request format\n"),
        ({"message_id": 5, "chat_jid": CHAT}, 400, "Invalid request format\n"),
    ],
)
def test_bad_requests_are_answered_as_the_bridge_answers_them(
    store: Store, body: object, status: int, answer: object
) -> None:
    with running_bridge(BridgeMedia(store.db, store.origin)) as bridge:
        response = post(bridge.url, body)
    assert response.status_code == status
    assert (response.json() if isinstance(answer, dict) else response.text) == answer


def test_a_hostile_file_name_never_yields_a_path_outside_the_store(store: Store) -> None:
    with StoreWriter(store.db) as writer:
        for i, name in enumerate(("../../escape.jpg", "..", "a/../../b.jpg")):
            writer.write(media_row(f"EVIL{i}", name, "2025-11-09 19:16:00+02:00"))
    media = BridgeMedia(store.db, store.origin)
    for i in range(3):
        (store.origin / CHAT / f"EVIL{i}").write_bytes(b"x")
        answer = media.download(f"EVIL{i}", CHAT)
        assert answer.status == 500 and isinstance(answer.body, dict)
        assert answer.body["success"] is False and "path" not in answer.body
    assert not (store.root / "escape.jpg").exists()
    assert not (store.root / "b.jpg").exists()


def test_scripted_failures_come_first_then_real_downloads(store: Store) -> None:
    media = BridgeMedia(store.db, store.origin)
    media.fail_next(NOT_CONNECTED, DownloadAnswer(502, "<html>502 Bad Gateway</html>"))
    with running_bridge(media) as bridge:
        bridge.answer_download(PROXY_BAD_GATEWAY, DOWNLOAD_NOT_CONNECTED)
        body = {"message_id": "3EB0CC", "chat_jid": CHAT}
        answers = [post(bridge.url, body) for _ in range(5)]
    assert [a.status_code for a in answers] == [502, 500, 500, 502, 200]
    assert "nginx" in answers[0].text and "<html>" in answers[3].text
    assert answers[1].json()["success"] is False and answers[2].json()["success"] is False
    assert answers[4].json()["success"] is True


def test_the_monitors_client_gets_ready_retry_and_unavailable_from_it(store: Store) -> None:
    media = BridgeMedia(store.db, store.origin)
    media.expire(CHAT, "3EB0BB")
    media.fail_next(NOT_CONNECTED)
    with running_bridge(media) as bridge:
        client = BridgeMediaClient(bridge.url, store.folder, timeout=10)
        assert client.download("3EB0CC", CHAT).status == "retry"  # not connected
        ready = client.download("3EB0CC", CHAT)
        gone = client.download("3EB0BB", CHAT)
        unknown = client.download("NOPE", CHAT)
    assert ready.status == "ready" and ready.path is not None
    with client.open(ready.path) as f:
        assert hashlib.sha256(f.read()).hexdigest() == truth(store, "3EB0CC")
    assert gone.status == "unavailable"
    assert unknown.status == "retry"


def test_the_send_api_of_the_test_bridge_is_unchanged_beside_downloads(store: Store) -> None:
    with running_bridge(BridgeMedia(store.db, store.origin)) as bridge:
        sent = httpx.post(f"{bridge.url}/send", json={"recipient": "2782", "message": "hi"})
        post(bridge.url, {"message_id": "3EB0CC", "chat_jid": CHAT})
        other = httpx.post(f"{bridge.url}/nothing", json={})
    assert sent.json()["success"] is True
    assert bridge.sent == [{"recipient": "2782", "message": "hi"}]
    assert other.status_code == 404


def test_simulate_writes_photo_files_unless_told_not_to(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from wa_monitor.cli.main import main

    env = {"WA_MONITOR_CONFIG": None, "WHATSAPP_DB_PATH": None}

    def simulate(db: Path, *more: str) -> str:
        args = ["simulate", "--messages-db", str(db), "--messages", "150", "--seed", "2", *more]
        done = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
        assert done.exit_code == 0, done.output
        return done.output

    db = tmp_path / "a" / "store" / "messages.db"
    output = simulate(db)
    origin = tmp_path / "a" / "media-origin"  # beside the store folder, outside it
    files = {p.name: p for p in origin.glob("*/*")}
    assert files and f"media files in {origin}" in output
    rows = (
        sqlite3.connect(db)
        .execute("SELECT id, chat_jid, file_sha256 FROM messages WHERE media_type != ''")
        .fetchall()
    )
    media = BridgeMedia(db, origin, collisions="overwrite")
    for message_id, chat_jid, digest in rows:
        answer = media.download(message_id, chat_jid)
        if message_id not in files:  # expired
            assert answer.body == {"success": False, "message": EXPIRED_MESSAGE}
            continue
        assert answer.status == 200 and isinstance(answer.body, dict)
        path = Path(str(answer.body["path"]))
        assert path.is_relative_to(db.parent.absolute())
        assert hashlib.sha256(path.read_bytes()).digest() == digest

    plain = tmp_path / "b" / "store" / "messages.db"
    assert "media files" not in simulate(plain, "--no-photos")
    assert not (tmp_path / "b" / "media-origin").exists()
