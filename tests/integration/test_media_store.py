"""The media store against a real folder and a real S3-compatible server (moto's server mode)."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wa_monitor.core.errors import (
    ConfigError,
    MediaDamaged,
    MediaNotFound,
    MediaRejected,
    MediaStoreError,
)
from wa_monitor.core.settings import settings_from
from wa_monitor.store.media import (
    FolderMediaStore,
    MediaStore,
    S3MediaStore,
    open_media_store,
)

SECRET = "dummy-secret-never-shown"
PHOTO = b"\xff\xd8\xff\xe0" + b"a photo of step 8 " * 1000
PHOTO_SHA = hashlib.sha256(PHOTO).hexdigest()
MIB = 1024 * 1024


class ChunkStream:
    """A binary stream of `count` MiB made up as it is read: never held whole in memory."""

    def __init__(self, count: int) -> None:
        self._chunks = self.chunks(count)
        self._pending = b""

    @staticmethod
    def chunks(count: int) -> Iterator[bytes]:
        block = hashlib.sha256(b"seed").digest() * (MIB // 32)
        for i in range(count):
            yield i.to_bytes(8, "big") + block[8:]

    @classmethod
    def digest(cls, count: int) -> str:
        digest = hashlib.sha256()
        for chunk in cls.chunks(count):
            digest.update(chunk)
        return digest.hexdigest()

    def read(self, size: int = -1, /) -> bytes:
        while size < 0 or len(self._pending) < size:
            chunk = next(self._chunks, b"")
            if not chunk:
                break
            self._pending += chunk
        if size < 0:
            size = len(self._pending)
        out, self._pending = self._pending[:size], self._pending[size:]
        return out


class Bytes:
    def __init__(self, data: bytes) -> None:
        self._data = data
        self._at = 0

    def read(self, size: int = -1, /) -> bytes:
        end = len(self._data) if size < 0 else self._at + size
        out = self._data[self._at : end]
        self._at += len(out)
        return out


@dataclass
class MotoServer:
    process: subprocess.Popen[bytes]
    endpoint: str

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_moto(log: Path) -> MotoServer:
    port = _free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"moto server did not start: {log.read_text()}") from None
            try:
                process.wait(timeout=0.1)  # waits for the server to listen, or to exit
            except subprocess.TimeoutExpired:
                continue
            raise RuntimeError(f"moto server exited: {log.read_text()}") from None
    return MotoServer(process, f"http://127.0.0.1:{port}")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # Dummy credentials, for this test only: boto3 must never reach a real account.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture(scope="module")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = start_moto(tmp_path_factory.mktemp("moto") / "moto.log")
    yield server
    server.stop()


def _s3_store(endpoint: str, bucket: str) -> S3MediaStore:
    import boto3

    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket=bucket)
    return S3MediaStore(f"s3://{bucket}/photos", endpoint_url=endpoint)


def _s3_keys(store: S3MediaStore) -> list[str]:
    listed = store.client.list_objects_v2(Bucket=store.bucket)
    return [item["Key"] for item in listed.get("Contents", [])]


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path, aws_env: None) -> Iterator[MediaStore]:
    if request.param == "folder":
        yield FolderMediaStore(tmp_path / "media")
    else:
        server: MotoServer = request.getfixturevalue("moto")
        bucket = f"media-{os.urandom(4).hex()}"
        yield _s3_store(server.endpoint, bucket)


def stored_files(store: MediaStore) -> list[str]:
    """Every file or object the store holds, temporary ones included."""
    if isinstance(store, FolderMediaStore):
        return sorted(str(p.relative_to(store.root)) for p in store.root.rglob("*") if p.is_file())
    assert isinstance(store, S3MediaStore)
    return sorted(_s3_keys(store))


def read_all(store: MediaStore, sha256: str) -> bytes:
    with store.open(sha256) as stream:
        data: bytes = stream.read()
    return data


def test_a_photo_put_is_read_back_under_its_sha256(store: MediaStore) -> None:
    assert not store.exists(PHOTO_SHA)
    stored = store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=10 * MIB)
    assert (stored.sha256, stored.size, stored.added) == (PHOTO_SHA, len(PHOTO), True)
    assert store.exists(PHOTO_SHA)
    assert read_all(store, PHOTO_SHA) == PHOTO
    # Storing it again (a re-read message) changes nothing.
    again = store.put(PHOTO_SHA.upper(), Bytes(PHOTO), max_bytes=10 * MIB)
    assert (again.size, again.added) == (len(PHOTO), False)
    assert [name.rsplit("/", 1)[-1] for name in stored_files(store)] == [PHOTO_SHA]


def test_files_fan_out_and_are_read_only(tmp_path: Path) -> None:
    store = FolderMediaStore(tmp_path / "media")
    store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    path = tmp_path / "media" / PHOTO_SHA[:2] / PHOTO_SHA[2:4] / PHOTO_SHA
    assert path.read_bytes() == PHOTO
    assert path.stat().st_mode & 0o222 == 0


def test_a_large_stream_is_stored_with_bounded_memory(store: MediaStore) -> None:
    count = 64  # MiB, made up as it is read
    sha = ChunkStream.digest(count)
    assert not store.exists(sha)  # the S3 client is made (its API model read) before
    tracemalloc.start()
    try:
        stored = store.put(sha, ChunkStream(count), max_bytes=200 * MIB)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == count * MIB
    assert peak < 16 * MIB, f"peak {peak / MIB:.1f} MiB for a {count} MiB photo"
    digest = hashlib.sha256()
    with store.open(sha) as stream:
        while chunk := stream.read(MIB):
            digest.update(chunk)
    assert digest.hexdigest() == sha


def test_bytes_that_do_not_hash_to_the_expected_sha256_are_refused(store: MediaStore) -> None:
    wrong = hashlib.sha256(b"another photo of the burst").hexdigest()
    with pytest.raises(MediaRejected) as caught:
        store.put(wrong, Bytes(PHOTO), max_bytes=MIB)
    assert caught.value.reason == "mismatch"
    assert not store.exists(wrong)
    assert stored_files(store) == []
    with pytest.raises(MediaNotFound):
        read_all(store, wrong)


def test_a_file_over_the_limit_is_refused_before_it_is_read_whole(store: MediaStore) -> None:
    count = 50
    stream = ChunkStream(count)
    with pytest.raises(MediaRejected) as caught:
        store.put(ChunkStream.digest(count), stream, max_bytes=3 * MIB)
    assert caught.value.reason == "oversize"
    assert "3145728 bytes" in str(caught.value)
    assert stored_files(store) == []
    assert stream.read(1)  # the rest was never read


@pytest.mark.parametrize(
    "name", ["../../../etc/passwd", "/etc/passwd", "ab/../../x", PHOTO_SHA[:-1] + "/", ""]
)
def test_a_name_that_is_not_a_sha256_is_refused(store: MediaStore, name: str) -> None:
    with pytest.raises(MediaRejected) as caught:
        store.put(name, Bytes(PHOTO), max_bytes=MIB)
    assert caught.value.reason == "bad_key"
    with pytest.raises(MediaRejected):
        store.exists(name)
    with pytest.raises(MediaRejected):
        read_all(store, name)
    assert stored_files(store) == []


class BreaksOff(ChunkStream):
    """A download whose connection drops after a few MiB."""

    def read(self, size: int = -1, /) -> bytes:
        chunk = super().read(size)
        if not chunk:
            raise ConnectionResetError("the bridge closed the connection")
        return chunk


def test_a_download_that_breaks_off_leaves_nothing(store: MediaStore) -> None:
    with pytest.raises(ConnectionResetError):
        store.put(ChunkStream.digest(5), BreaksOff(3), max_bytes=10 * MIB)
    assert stored_files(store) == []
    assert not store.exists(ChunkStream.digest(5))


def test_a_file_damaged_after_it_was_stored_is_not_served_as_the_photo(
    store: MediaStore,
) -> None:
    store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    damaged = PHOTO[:-1] + b"!"
    if isinstance(store, FolderMediaStore):
        path = store.root / PHOTO_SHA[:2] / PHOTO_SHA[2:4] / PHOTO_SHA
        path.chmod(0o644)
        path.write_bytes(damaged)
    else:
        assert isinstance(store, S3MediaStore)
        key = f"{store.prefix}/{PHOTO_SHA[:2]}/{PHOTO_SHA[2:4]}/{PHOTO_SHA}"
        store.client.put_object(Bucket=store.bucket, Key=key, Body=damaged)
    with pytest.raises(MediaDamaged, match="fetch the photo again"):
        read_all(store, PHOTO_SHA)


def test_a_folder_that_cannot_be_made_is_a_media_store_error(tmp_path: Path) -> None:
    taken = tmp_path / "media"
    taken.write_text("a file where the folder should be")
    store = FolderMediaStore(taken)
    with pytest.raises(MediaStoreError, match="check MEDIA_DIR"):
        store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    with pytest.raises(MediaStoreError, match="check MEDIA_DIR"):
        store.exists(PHOTO_SHA)
    assert taken.read_text() == "a file where the folder should be"


def test_a_fan_out_folder_linked_outside_the_store_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "media"
    root.mkdir()
    (root / PHOTO_SHA[:2]).symlink_to(outside, target_is_directory=True)
    store = FolderMediaStore(root)
    with pytest.raises(MediaStoreError, match="outside the folder"):
        store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    assert list(outside.rglob("*")) == []
    # A file replaced by a link to somewhere else is not served either.
    other = FolderMediaStore(tmp_path / "other")
    other.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    stored = tmp_path / "other" / PHOTO_SHA[:2] / PHOTO_SHA[2:4] / PHOTO_SHA
    stored.unlink()
    (outside / "secret").write_bytes(b"not a photo")
    stored.symlink_to(outside / "secret")
    assert not other.exists(PHOTO_SHA)
    with pytest.raises(MediaStoreError):
        read_all(other, PHOTO_SHA)


def test_an_s3_outage_is_a_media_store_error_and_stores_nothing(
    tmp_path: Path, aws_env: None
) -> None:
    server = start_moto(tmp_path / "moto.log")
    try:
        store = _s3_store(server.endpoint, "outage")
        store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    finally:
        server.stop()
    other = hashlib.sha256(b"x").hexdigest()
    for attempt in (
        lambda: store.put(other, Bytes(b"x"), max_bytes=MIB),
        lambda: store.exists(PHOTO_SHA),
        lambda: read_all(store, PHOTO_SHA),
    ):
        with pytest.raises(MediaStoreError) as caught:
            attempt()
        assert not isinstance(caught.value, MediaNotFound)
        message = str(caught.value)
        assert "s3://outage/photos" in message and "is the S3 server up" in message
        assert SECRET not in message and "testing-key-id" not in message


def test_the_settings_pick_the_store(tmp_path: Path, aws_env: None) -> None:
    beside = settings_from({"DATABASE_URL": f"sqlite:///{tmp_path}/reviews.db"})
    assert beside.media_dir == tmp_path / "media"
    chosen = open_media_store(beside)
    assert isinstance(chosen, FolderMediaStore) and chosen.root == tmp_path / "media"
    named = settings_from({"MEDIA_DIR": str(tmp_path / "photos")})
    assert open_media_store(named).root == tmp_path / "photos"  # type: ignore[attr-defined]
    s3: Any = open_media_store(
        settings_from(
            {"MEDIA_URL": "s3://bucket/a/prefix/", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
        )
    )
    assert (s3.bucket, s3.prefix, s3.endpoint_url) == ("bucket", "a/prefix", "http://127.0.0.1:9")
    postgres = settings_from({"DATABASE_URL": "postgresql://u@h/reviews"})
    with pytest.raises(ConfigError, match="MEDIA_DIR is not set"):
        open_media_store(postgres)


def test_the_s3_store_takes_its_credentials_from_the_settings(
    moto: MotoServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    env = {
        "MEDIA_URL": "s3://from-env-file",
        "AWS_ENDPOINT_URL": moto.endpoint,
        "AWS_ACCESS_KEY_ID": "env-file-key-id",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    store: Any = open_media_store(settings_from(env))
    store.client.create_bucket(Bucket="from-env-file")
    store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    assert read_all(store, PHOTO_SHA) == PHOTO
    assert SECRET not in repr(store) and SECRET not in repr(vars(store).get("bucket"))


def test_s3_refusals_say_why_without_credentials(moto: MotoServer, aws_env: None) -> None:
    store = S3MediaStore("s3://no-such-bucket/photos", endpoint_url=moto.endpoint)
    with pytest.raises(MediaStoreError, match="NoSuchBucket") as caught:
        store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    assert SECRET not in str(caught.value)
    with pytest.raises(ConfigError, match="not in the URL") as refused:
        S3MediaStore(f"s3://key:{SECRET}@bucket/photos")
    assert SECRET not in str(refused.value)


def test_what_a_crash_left_in_the_folder_is_swept(tmp_path: Path) -> None:
    store = FolderMediaStore(tmp_path / "media")
    store.put(PHOTO_SHA, Bytes(PHOTO), max_bytes=MIB)
    incoming = tmp_path / "media" / ".incoming"
    old, recent = incoming / "put-old", incoming / "put-recent"
    old.write_bytes(b"half a photo")
    recent.write_bytes(b"a put under way")
    os.utime(old, (time.time() - 3 * 86400,) * 2)
    assert store.sweep() == 1
    assert not old.exists() and recent.exists()
    assert read_all(store, PHOTO_SHA) == PHOTO
