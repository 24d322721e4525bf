"""Photos of webhook groups fetched from the gateway (WAHA, Evolution API), both backends.

The inbox holds the drop post and its photo as the webhook delivered them; the real
monitor records the drop, the media worker links the photo and fetches it from a local
fake gateway on 127.0.0.1, into the media store, verified.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import LAWLEY, T0, config_from
from tests.integration.test_ops_service import HEAD, project, running, wait_for
from tests.mediabridge import jpeg, scene
from wa_monitor.core.gateway_events import InboxMessage, MediaRef
from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.monitor.media_worker import MediaWorker
from wa_monitor.monitor.photo_linker import PhotoLinker
from wa_monitor.monitor.scan import Monitor
from wa_monitor.monitor.service import Service
from wa_monitor.store.inbox import InboxWriter, checked
from wa_monitor.store.inbox_source import InboxSource
from wa_monitor.store.media import FolderMediaStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import group_messages as G

PHOTO = jpeg(scene(3))
SHA = hashlib.sha256(PHOTO).hexdigest()


class FakeGateway:
    """WAHA's files and Evolution API's getBase64FromMediaMessage, on 127.0.0.1."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}  # WAHA: path → bytes
        self.by_id: dict[str, bytes] = {}  # Evolution: message id → bytes
        self.requests: list[dict[str, Any]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.requests.append({"path": self.path, "key": self.headers.get("X-Api-Key")})
                data = fake.files.get(self.path)
                if data is None:
                    self._send(404, b'{"error": "not found"}', "application/json")
                else:
                    self._send(200, data, "image/jpeg")

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append(
                    {"path": self.path, "key": self.headers.get("apikey"), "body": body}
                )
                data = fake.by_id.get(body["message"]["key"]["id"])
                if data is None:
                    self._send(404, b'{"status": 404}', "application/json")
                    return
                answer = {"mimetype": "image/jpeg", "base64": base64.b64encode(data).decode()}
                self._send(200, json.dumps(answer).encode(), "application/json")

            def _send(self, status: int, data: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def gateway() -> Iterator[FakeGateway]:
    fake = FakeGateway()
    yield fake
    fake.close()


@pytest.fixture
def writer(store: ReviewStore) -> Iterator[InboxWriter]:
    made = InboxWriter(store, durable=False)
    yield made
    made.close()


def settings(db_url: str, tmp_path: Path, gateway: FakeGateway) -> Settings:
    return settings_from(
        {
            "DATABASE_URL": db_url,
            "MEDIA_DIR": str(tmp_path / "media"),
            "WAHA_URL": gateway.url,
            "WAHA_API_KEY": "waha-key",
            "EVOLUTION_URL": gateway.url,
            "EVOLUTION_API_KEY": "evo-key",
            "EVOLUTION_INSTANCE": "field team",
        }
    )


def post_with_photo(
    writer: InboxWriter, gateway_name: str, photo_id: str, media: MediaRef | None
) -> None:
    def event(message_id: str, content: str | None, **kw: Any) -> InboxMessage:
        return InboxMessage(
            gateway=gateway_name,
            chat_jid=LAWLEY,
            message_id=message_id,
            sender="27821234567",
            sender_pn=None,
            sender_name="Thabo",
            content=content,
            sent_at=(T0 + kw.pop("after", timedelta())).timestamp(),
            **kw,
        )

    writer.write(
        checked(
            [
                event("3EB0DROP0001", "DR10000001 done"),
                event(photo_id, None, media_type="image", media=media, after=timedelta(minutes=1)),
            ]
        ),
        timeout=10,
    )


def fetch_all(store: ReviewStore, settings_: Settings, gateway_name: str) -> dict[str, Any]:
    """Scan the inbox, then one round of the media worker; the photo's row."""
    config = config_from()
    source = InboxSource(store)
    Monitor(config, source, store, anchor_tag="inbox").scan()
    worker = MediaWorker(
        store,
        settings_,
        linker=PhotoLinker(store, InboxSource(store), lambda: config, anchor_tag="inbox"),
        analyse_in_process=False,
        gateway_of=lambda chat: gateway_name if chat == LAWLEY else None,
    )
    try:
        worker.round()
    finally:
        worker.close()
    with store.begin() as conn:
        (photo,) = conn.execute(sa.select(G).where(G.c.media_type == "image")).mappings()
        return dict(photo)


def test_a_waha_photo_is_fetched_with_the_api_key_and_verified(
    db_url: str, store: ReviewStore, writer: InboxWriter, gateway: FakeGateway, tmp_path: Path
) -> None:
    gateway.files["/api/files/default/3EB0PHOTO001.jpeg"] = PHOTO
    # WAHA names its files at its public base URL: fetched from WAHA_URL all the same.
    url = "https://waha.example.net/api/files/default/3EB0PHOTO001.jpeg"
    media = MediaRef(url=url, mimetype="image/jpeg", sha256=bytes.fromhex(SHA))
    post_with_photo(writer, "waha", "3EB0PHOTO001", media)
    photo = fetch_all(store, settings(db_url, tmp_path, gateway), "waha")
    assert photo["drop_number"] == "DR10000001"
    assert photo["status"] == "available", photo["last_error"]
    assert photo["sha256"] == SHA
    assert FolderMediaStore(tmp_path / "media").exists(SHA)
    assert gateway.requests == [{"path": "/api/files/default/3EB0PHOTO001.jpeg", "key": "waha-key"}]


def test_a_waha_photo_without_a_hash_is_stored_under_its_own(
    db_url: str, store: ReviewStore, writer: InboxWriter, gateway: FakeGateway, tmp_path: Path
) -> None:
    gateway.files["/api/files/default/3EB0PHOTO002.jpeg"] = PHOTO
    media = MediaRef(url=f"{gateway.url}/api/files/default/3EB0PHOTO002.jpeg")
    post_with_photo(writer, "waha", "3EB0PHOTO002", media)
    photo = fetch_all(store, settings(db_url, tmp_path, gateway), "waha")
    assert photo["status"] == "available", photo["last_error"]
    assert photo["sha256"] == SHA
    assert photo["width"] == 800


def test_a_waha_url_elsewhere_is_refused_and_the_key_never_sent(
    db_url: str, store: ReviewStore, writer: InboxWriter, gateway: FakeGateway, tmp_path: Path
) -> None:
    media = MediaRef(url="https://attacker.example.com/steal")
    post_with_photo(writer, "waha", "3EB0PHOTO003", media)
    photo = fetch_all(store, settings(db_url, tmp_path, gateway), "waha")
    assert photo["status"] == "failed"
    assert "neither at WAHA_URL nor one of WAHA's files" in photo["last_error"]
    assert gateway.requests == []


def test_a_waha_photo_gone_from_whatsapp_is_unavailable(
    db_url: str, store: ReviewStore, writer: InboxWriter, gateway: FakeGateway, tmp_path: Path
) -> None:
    media = MediaRef(url=f"{gateway.url}/api/files/default/gone.jpeg")
    post_with_photo(writer, "waha", "3EB0PHOTO004", media)
    photo = fetch_all(store, settings(db_url, tmp_path, gateway), "waha")
    assert photo["status"] == "unavailable"
    assert "no longer has this media" in photo["last_error"]


def test_an_evolution_photo_is_asked_for_by_its_id(
    db_url: str, store: ReviewStore, writer: InboxWriter, gateway: FakeGateway, tmp_path: Path
) -> None:
    gateway.by_id["3EB0PHOTO005"] = PHOTO
    post_with_photo(writer, "evolution", "3EB0PHOTO005", MediaRef(mimetype="image/jpeg"))
    photo = fetch_all(store, settings(db_url, tmp_path, gateway), "evolution")
    assert photo["status"] == "available", photo["last_error"]
    assert photo["sha256"] == SHA
    assert gateway.requests == [
        {
            "path": "/chat/getBase64FromMediaMessage/field%20team",
            "key": "evo-key",
            "body": {"message": {"key": {"id": "3EB0PHOTO005"}}, "convertToMp4": False},
        }
    ]


def test_an_evolution_photo_that_does_not_hash_to_its_sha256_is_not_kept(
    db_url: str, store: ReviewStore, writer: InboxWriter, gateway: FakeGateway, tmp_path: Path
) -> None:
    # Another file than the webhook named (another encoding of the photo).
    gateway.by_id["3EB0PHOTO006"] = jpeg(scene(3), quality=60)
    media = MediaRef(mimetype="image/jpeg", sha256=bytes.fromhex(SHA))
    post_with_photo(writer, "evolution", "3EB0PHOTO006", media)
    photo = fetch_all(store, settings(db_url, tmp_path, gateway), "evolution")
    assert photo["status"] == "pending"  # retried later, as the bridge's mismatches are
    assert "does not hash to the SHA-256 it gave" in photo["last_error"]
    assert not FolderMediaStore(tmp_path / "media").exists(SHA)


def test_the_service_fetches_a_webhook_groups_photos_from_its_gateway(
    db_url: str, store: ReviewStore, writer: InboxWriter, gateway: FakeGateway, tmp_path: Path
) -> None:
    gateway.files["/api/files/default/3EB0PHOTO007.jpeg"] = PHOTO
    config = tmp_path / "projects.yaml"
    config.write_text(HEAD + project("Lawley", LAWLEY) + "    gateway: waha\n")
    env = {
        "DATABASE_URL": db_url,
        "MEDIA_DIR": str(tmp_path / "media"),
        "WAHA_URL": gateway.url,
        "WAHA_API_KEY": "waha-key",
        "SCAN_INTERVAL": "0.5",
        "HEARTBEAT_INTERVAL": "0.2",
        "WORKING_HOURS": "always",
        "PROD_ENV_FILE": "",
    }
    service = Service(settings_from(env), config, poll=0.01)

    def photo_status() -> str | None:
        with store.begin() as conn:
            query = sa.select(G.c.status).where(G.c.media_type == "image")
            return conn.execute(query).scalar()  # type: ignore[no-any-return]

    with running(service):
        media = MediaRef(url=f"{gateway.url}/api/files/default/3EB0PHOTO007.jpeg")
        post_with_photo(writer, "waha", "3EB0PHOTO007", media)
        wait_for(lambda: photo_status() == "available", timeout=60, what="the fetched photo")
    assert FolderMediaStore(tmp_path / "media").exists(SHA)
    assert [r["key"] for r in gateway.requests] == ["waha-key"]
