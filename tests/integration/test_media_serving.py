"""GET /media/{sha256} and its thumbnail on both backends: only verified files, the cache
and safety headers, downloads for what is not an image, streamed with bounded memory,
and a clear 503 when the media store (S3) is down."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_api_support import (
    LiveServer,
    TestClient,
    add_people,
    projects_config,
    settings_for,
)
from tests.integration.test_media_store import ChunkStream, start_moto
from tests.integration.test_photos_api import add_message, assert_error, jpeg, put
from wa_monitor.store.media import FolderMediaStore, MediaStore, S3MediaStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.app import create_app

CACHE = "private, max-age=31536000, immutable"
MIB = 1024 * 1024


class Served:
    def __init__(self, client: TestClient, store: ReviewStore, media: MediaStore, token: str):
        self.client = client
        self.store = store
        self.media = media
        self.headers = {"Authorization": f"Bearer {token}"}

    def get(self, path: str, **headers: str) -> Any:
        return self.client.get(path, headers={**self.headers, **headers})

    def photo(self, data: bytes, **values: Any) -> str:
        """A verified file: in the media store, and a row that says so."""
        sha = put(self.media, data)
        add_message(
            self.store,
            status="available",
            file_sha256=sha,
            sha256=sha,
            size=len(data),
            **values,
        )
        return sha


def app_for(store: ReviewStore, media: MediaStore | None) -> Any:
    return create_app(
        settings_for(store.url), projects_config(), store, run_sender=False, media_store=media
    )


@pytest.fixture
def served(store: ReviewStore, tmp_path: Path) -> Iterator[Served]:
    people = add_people(store, ("viewer",))
    media = FolderMediaStore(tmp_path / "media")
    with TestClient(app_for(store, media)) as client:
        yield Served(client, store, media, people.tokens["viewer"])


def test_a_photo_is_served_inline_with_the_cache_and_safety_headers(served: Served) -> None:
    data = jpeg("orange")
    thumb = put(served.media, jpeg("white", (16, 12)))
    sha = served.photo(data, content_type="image/jpeg", thumb_sha256=thumb, filename="x.jpg")
    response = served.get(f"/media/{sha}")
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["cache-control"] == CACHE
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["etag"] == f'"{sha}"'
    assert response.headers["content-disposition"] == 'inline; filename="x.jpg"'
    assert response.headers["content-length"] == str(len(data))
    assert "sandbox" in response.headers["content-security-policy"]
    # Upper-case hex names the same file.
    assert served.get(f"/media/{sha.upper()}").content == data

    thumbnail = served.get(f"/media/{sha}/thumb")
    assert thumbnail.status_code == 200
    assert thumbnail.headers["content-type"] == "image/jpeg"
    assert hashlib.sha256(thumbnail.content).hexdigest() == thumb
    assert thumbnail.headers["etag"] == f'"{thumb}"'
    assert thumbnail.headers["cache-control"] == CACHE
    assert thumbnail.headers["x-content-type-options"] == "nosniff"


def test_a_file_the_browser_has_is_not_sent_again(served: Served) -> None:
    sha = served.photo(jpeg(), content_type="image/jpeg")
    for tag in (f'"{sha}"', f'W/"{sha}"', f'"other", "{sha}"', "*"):
        again = served.get(f"/media/{sha}", **{"If-None-Match": tag})
        assert again.status_code == 304, tag
        assert again.content == b""
        assert again.headers["etag"] == f'"{sha}"'
        assert again.headers["cache-control"] == CACHE
    changed = served.get(f"/media/{sha}", **{"If-None-Match": '"' + "0" * 64 + '"'})
    assert changed.status_code == 200 and changed.content


def test_what_is_not_an_image_is_a_download_with_a_safe_name(served: Served) -> None:
    pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj <<>> endobj\n%%EOF\n"
    sha = served.photo(
        pdf,
        media_type="document",
        content_type="application/pdf",
        filename='../../etc/"quote"\r\nSet-Cookie: x=1.pdf',
    )
    response = served.get(f"/media/{sha}")
    assert response.status_code == 200 and response.content == pdf
    assert response.headers["content-type"] == "application/pdf"
    disposition = response.headers["content-disposition"]
    assert disposition == 'attachment; filename="quote_Set-Cookie_x_1.pdf"'
    assert "set-cookie" not in response.headers
    assert served.get(f"/media/{sha}/thumb").status_code == 404, "a PDF has no thumbnail"

    svg = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    sha = served.photo(svg, media_type="document", content_type="image/svg+xml", filename=None)
    response = served.get(f"/media/{sha}")
    assert response.headers["content-disposition"] == f'attachment; filename="{sha[:16]}"'
    assert response.headers["x-content-type-options"] == "nosniff"

    video = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 100
    sha = served.photo(video, media_type="video", content_type="video/mp4", filename="")
    response = served.get(f"/media/{sha}")
    assert response.headers["content-disposition"] == f'attachment; filename="{sha[:16]}.mp4"'


def test_only_verified_files_are_served(served: Served) -> None:
    data = jpeg("purple")
    # In the media store, but no row says it was fetched and verified.
    stray = put(served.media, data)
    assert_error(served.get(f"/media/{stray}"), 404, "NOT_FOUND")
    # A row still waiting for its file, naming that hash.
    add_message(served.store, status="pending", file_sha256=stray)
    assert_error(served.get(f"/media/{stray}"), 404, "NOT_FOUND")
    add_message(served.store, status="failed", file_sha256=stray, sha256=stray)
    assert_error(served.get(f"/media/{stray}"), 404, "NOT_FOUND")
    assert_error(served.get(f"/media/{stray}/thumb"), 404, "NOT_FOUND")
    assert_error(served.get(f"/media/{'a' * 64}"), 404, "NOT_FOUND")
    for bad in ("abc", "g" * 64, "a" * 65, "a" * 63, "a" * 5000, " " * 64):
        error = assert_error(served.get(f"/media/{bad}"), 400, "BAD_REQUEST")
        assert "SHA-256" in error["message"]
        assert_error(served.get(f"/media/{bad}/thumb"), 400, "BAD_REQUEST")
    assert served.get("/media/").status_code == 404
    assert served.get("/media/%2e%2e%2fetc%2fpasswd").status_code == 404


def test_a_verified_file_missing_from_the_store_is_a_clear_404(served: Served) -> None:
    data = jpeg("black")
    sha = hashlib.sha256(data).hexdigest()
    add_message(served.store, status="available", file_sha256=sha, sha256=sha, size=len(data))
    error = assert_error(served.get(f"/media/{sha}"), 404, "NOT_FOUND")
    assert "missing from the media store" in error["message"]


def test_a_large_file_is_streamed_with_bounded_memory(store: ReviewStore, tmp_path: Path) -> None:
    people = add_people(store, ("viewer",))
    media = FolderMediaStore(tmp_path / "media")
    size = 50
    sha = ChunkStream.digest(size)
    media.put(sha, ChunkStream(size), max_bytes=size * MIB)
    add_message(
        store,
        media_type="video",
        status="available",
        file_sha256=sha,
        sha256=sha,
        size=size * MIB,
        content_type="video/mp4",
        filename="install.mp4",
    )
    server = LiveServer(app_for(store, media)).start()
    try:
        digest, received = hashlib.sha256(), 0
        tracemalloc.start()
        try:
            with httpx.stream(
                "GET",
                f"{server.url}/media/{sha}",
                headers={"Authorization": f"Bearer {people.tokens['viewer']}"},
                timeout=60,
            ) as response:
                assert response.status_code == 200
                assert response.headers["content-length"] == str(size * MIB)
                assert response.headers["content-disposition"].startswith("attachment;")
                for chunk in response.iter_bytes():
                    digest.update(chunk)
                    received += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        server.stop()
    assert received == size * MIB and digest.hexdigest() == sha
    # Server and client in this process: both held a few chunks at a time, never the file.
    assert peak < 12 * MIB, f"peak {peak / MIB:.1f} MiB while streaming {size} MiB"


def test_a_file_damaged_in_the_store_is_broken_off_not_passed_on(
    store: ReviewStore, tmp_path: Path
) -> None:
    people = add_people(store, ("viewer",))
    media = FolderMediaStore(tmp_path / "media")
    data = os.urandom(3 * MIB)
    sha = put(media, data)
    add_message(
        store, status="available", file_sha256=sha, sha256=sha, size=len(data),
        content_type="application/pdf",
    )  # fmt: skip
    path = media.root / sha[:2] / sha[2:4] / sha
    path.chmod(0o644)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # bit rot in the last byte
    server = LiveServer(app_for(store, media)).start()
    try:
        received = bytearray()
        with (
            pytest.raises(httpx.RemoteProtocolError),
            httpx.stream(
                "GET",
                f"{server.url}/media/{sha}",
                headers={"Authorization": f"Bearer {people.tokens['viewer']}"},
                timeout=30,
            ) as response,
        ):
            assert response.status_code == 200
            for chunk in response.iter_bytes():
                received += chunk
        # The answer broke off short of its length: the damaged end was never sent.
        assert len(received) < len(data)
        assert data[: len(received)] == bytes(received)
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Dummy credentials, for this test only: boto3 must never reach a real account.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "dummy-secret-never-shown")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def test_an_s3_outage_is_a_clear_503_and_the_file_is_back_after_it(
    store: ReviewStore, tmp_path: Path, aws_env: None
) -> None:
    import boto3

    people = add_people(store, ("viewer",))
    moto = start_moto(tmp_path / "moto.log")
    try:
        boto3.client("s3", endpoint_url=moto.endpoint).create_bucket(Bucket="photos")
        media = S3MediaStore("s3://photos/wa", endpoint_url=moto.endpoint)
        data = jpeg("yellow")
        sha = put(media, data)
        add_message(
            store,
            status="available",
            file_sha256=sha,
            sha256=sha,
            size=len(data),
            content_type="image/jpeg",
        )
        with TestClient(app_for(store, media)) as client:
            headers = {"Authorization": f"Bearer {people.tokens['viewer']}"}
            assert client.get(f"/media/{sha}", headers=headers).content == data
            moto.stop()
            down = client.get(f"/media/{sha}", headers=headers)
            error = assert_error(down, 503, "MEDIA_STORE_UNAVAILABLE")
            assert "media store cannot be read" in error["message"]
            assert "dummy-secret" not in down.text and "testing-key-id" not in down.text
            assert down.headers["retry-after"] == "30"
            # What the rows say is still answered.
            assert client.get(f"/media/{'b' * 64}", headers=headers).status_code == 404
    finally:
        moto.stop() if moto.process.poll() is None else None


def test_a_media_store_the_settings_cannot_name_is_a_503(
    store: ReviewStore, tmp_path: Path
) -> None:
    people = add_people(store, ("viewer",))
    data = jpeg()
    sha = hashlib.sha256(data).hexdigest()
    add_message(store, status="available", file_sha256=sha, sha256=sha, size=len(data))
    app = app_for(store, None)
    # PostgreSQL has no folder beside it: without MEDIA_DIR or MEDIA_URL there is no store.
    app.state.settings = dataclasses.replace(app.state.settings, media_dir=None)
    with TestClient(app) as client:
        response = client.get(
            f"/media/{sha}", headers={"Authorization": f"Bearer {people.tokens['viewer']}"}
        )
    error = assert_error(response, 503, "MEDIA_STORE_UNAVAILABLE")
    assert "MEDIA_DIR" in error["message"]


def test_head_answers_the_headers_without_reading_the_file(served: Served, tmp_path: Path) -> None:
    data = jpeg("teal")
    sha = served.photo(data, content_type="image/jpeg", filename="x.jpg")
    # A damaged file would break a GET off; a HEAD never reads it, so it still answers.
    stored = next(p for p in (tmp_path / "media").rglob(sha))
    stored.write_bytes(b"damaged")
    response = served.client.head(f"/media/{sha}", headers=served.headers)
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["content-length"] == str(len(data))
    assert response.headers["etag"] == f'"{sha}"'
    assert response.headers["cache-control"] == CACHE
    assert served.client.head("/media/" + "0" * 64, headers=served.headers).status_code == 404
