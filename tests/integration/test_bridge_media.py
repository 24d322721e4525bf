"""Fetching a photo through a real HTTP bridge on 127.0.0.1 into the folder media store."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.fakebridge import closed_port_url
from wa_monitor.monitor.photo_fetch import MediaRow, fetch_photo
from wa_monitor.sources.bridge_media import BridgeMediaClient
from wa_monitor.store.media import FolderMediaStore

CHAT = "27820000000-1600000000@g.us"
PHOTO = b"\xff\xd8\xff\xe0" + b"a photo of step 8" * 100
OTHER = b"\xff\xd8\xff\xe0" + b"a photo of step 9" * 100


class DownloadBridge:
    """Answers `POST /api/download` with a scripted JSON body (or never, when held)."""

    def __init__(self) -> None:
        self.answer: Any = {}
        self.status = 200
        self.requests: list[dict[str, Any]] = []
        self.hold = False
        self.stopping = threading.Event()
        bridge = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                bridge.requests.append({"path": self.path, "json": json.loads(raw)})
                if bridge.hold:
                    bridge.stopping.wait(10)
                data = json.dumps(bridge.answer).encode()
                try:
                    self.send_response(bridge.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/api"


@pytest.fixture
def bridge() -> Iterator[DownloadBridge]:
    b = DownloadBridge()
    b.thread.start()
    yield b
    b.stopping.set()
    b.server.shutdown()
    b.server.server_close()
    b.thread.join(timeout=5)


@pytest.fixture
def bridge_store(tmp_path: Path) -> Path:
    root = tmp_path / "bridge" / "store"
    (root / CHAT).mkdir(parents=True)
    return root


@pytest.fixture
def media(tmp_path: Path) -> FolderMediaStore:
    return FolderMediaStore(tmp_path / "media")


def row(data: bytes = PHOTO, **changes: Any) -> MediaRow:
    values: dict[str, Any] = {
        "message_id": "3EB0C0FFEE",
        "chat_jid": CHAT,
        "filename": "image_20251109_191530.jpg",
        "file_sha256": hashlib.sha256(data).digest(),
        "file_length": len(data),
    }
    values.update(changes)
    return MediaRow(**values)


def written(bridge_store: Path, data: bytes, name: str = "image_20251109_191530.jpg") -> Path:
    path = bridge_store / CHAT / name
    path.write_bytes(data)
    return path


def success(path: Path | str) -> dict[str, Any]:
    return {"success": True, "message": "ok", "filename": Path(path).name, "path": str(path)}


def stored_files(media: FolderMediaStore) -> list[Path]:
    return [p for p in media.root.rglob("*") if p.is_file()] if media.root.exists() else []


def test_a_downloaded_photo_is_stored_under_its_sha256(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = success(written(bridge_store, PHOTO))
    client = BridgeMediaClient(bridge.url, bridge_store, timeout=5)
    outcome = fetch_photo(row(), client, media)
    assert outcome.status == "fetched", outcome.reason
    assert outcome.sha256 == hashlib.sha256(PHOTO).hexdigest()
    assert outcome.size == len(PHOTO)
    assert bridge.requests == [
        {"path": "/api/download", "json": {"message_id": "3EB0C0FFEE", "chat_jid": CHAT}}
    ]
    with media.open(outcome.sha256) as stored:
        assert stored.read() == PHOTO


def test_a_path_relative_to_the_store_is_read_from_it(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    written(bridge_store, PHOTO)
    bridge.answer = success(f"{CHAT}/image_20251109_191530.jpg")
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "fetched", outcome.reason


def test_another_photo_of_the_burst_is_a_retry_and_nothing_is_stored(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = success(written(bridge_store, OTHER))
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "retry"
    assert "burst" in outcome.reason
    assert stored_files(media) == []


@pytest.mark.parametrize("escape", ["absolute", "dotdot", "symlink"])
def test_a_path_outside_the_store_is_refused(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore, tmp_path: Path, escape: str
) -> None:
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(PHOTO)  # even the right bytes are not read from outside
    if escape == "absolute":
        bridge.answer = success(outside)
    elif escape == "dotdot":
        bridge.answer = success(bridge_store / CHAT / ".." / ".." / ".." / "secret.jpg")
    else:
        link = bridge_store / CHAT / "image_20251109_191530.jpg"
        link.symlink_to(outside)
        bridge.answer = success(link)
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "failed"
    assert "outside" in outcome.reason
    assert stored_files(media) == []


def test_a_file_missing_after_success_fails(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = success(bridge_store / CHAT / "image_20251109_191530.jpg")
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "failed"
    assert "no such file" in outcome.reason
    assert stored_files(media) == []


def test_media_gone_from_whatsapp_is_unavailable(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = {
        "success": False,
        "message": "Failed to download media: download failed with status code 410",
        "filename": "",
        "path": "",
    }
    bridge.status = 500
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "unavailable"
    assert "410" in outcome.reason
    assert stored_files(media) == []


def test_a_bridge_not_connected_is_a_retry(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = {"success": False, "message": "Not connected to WhatsApp"}
    bridge.status = 500
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "retry"
    assert "Not connected" in outcome.reason


def test_a_bridge_that_is_down_is_a_retry(bridge_store: Path, media: FolderMediaStore) -> None:
    outcome = fetch_photo(
        row(), BridgeMediaClient(closed_port_url(), bridge_store, timeout=5), media
    )
    assert outcome.status == "retry"
    assert "unreachable" in outcome.reason
    assert stored_files(media) == []


def test_a_bridge_that_does_not_answer_in_time_is_a_retry(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.hold = True
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=0.3), media)
    assert outcome.status == "retry"
    assert "did not answer" in outcome.reason
    assert stored_files(media) == []


def test_an_oversize_file_fails_and_nothing_is_stored(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = success(written(bridge_store, PHOTO))
    client = BridgeMediaClient(bridge.url, bridge_store, timeout=5)
    # The row understates its length: the limit is enforced while streaming.
    outcome = fetch_photo(row(file_length=100), client, media, max_bytes=1000)
    assert outcome.status == "failed"
    assert "limit" in outcome.reason
    assert stored_files(media) == []
    # A row announcing more than the limit is not even downloaded.
    requests = len(bridge.requests)
    assert fetch_photo(row(), client, media, max_bytes=1000).status == "failed"
    assert len(bridge.requests) == requests


def test_a_row_without_file_sha256_fails_without_a_download(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    outcome = fetch_photo(
        row(file_sha256=None), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media
    )
    assert outcome.status == "failed"
    assert "file_sha256" in outcome.reason
    assert bridge.requests == []


def test_fetching_the_same_photo_again_changes_nothing(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = success(written(bridge_store, PHOTO))
    client = BridgeMediaClient(bridge.url, bridge_store, timeout=5)
    first = fetch_photo(row(), client, media)
    again = fetch_photo(row(), client, media)
    assert first == again
    assert again.status == "fetched"
    assert len(stored_files(media)) == 1


def test_a_folder_given_as_the_file_fails(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = success(bridge_store / CHAT)
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "failed"
    assert "not a regular file" in outcome.reason
    assert stored_files(media) == []


def test_an_answer_that_is_not_json_is_a_retry(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = ["a proxy's page"]
    bridge.status = 502
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "retry"
    assert "HTTP 502" in outcome.reason


def test_a_success_without_a_path_fails(
    bridge: DownloadBridge, bridge_store: Path, media: FolderMediaStore
) -> None:
    bridge.answer = {"success": True, "message": "ok"}
    outcome = fetch_photo(row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), media)
    assert outcome.status == "failed"
    assert "no path" in outcome.reason


def test_a_media_store_that_cannot_be_written_is_a_retry(
    bridge: DownloadBridge, bridge_store: Path, tmp_path: Path
) -> None:
    bridge.answer = success(written(bridge_store, PHOTO))
    blocked = tmp_path / "not-a-folder"
    blocked.write_bytes(b"")  # the media folder's place is taken by a file
    outcome = fetch_photo(
        row(), BridgeMediaClient(bridge.url, bridge_store, timeout=5), FolderMediaStore(blocked)
    )
    assert outcome.status == "retry"
    assert "media store" in outcome.reason
