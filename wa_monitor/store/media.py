"""The media store: photos kept content-addressed by their SHA-256, in a folder or in S3.

A file is stored only once its bytes hash to the SHA-256 it was announced with and stay
within the size limit: it is streamed (never held whole in memory) to a temporary file,
verified, and only then made visible under its final name. A refused or failed `put`
leaves nothing behind, so whatever `open` serves was verified. Errors are translated
here into `core.errors` (`MediaRejected`, `MediaNotFound`, `MediaStoreError`); no
caller sees boto3's or the operating system's exceptions.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import tempfile
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol
from urllib.parse import urlsplit

from wa_monitor.core.errors import (
    ConfigError,
    MediaDamaged,
    MediaNotFound,
    MediaRejected,
    MediaStoreError,
)
from wa_monitor.core.masking import mask_url
from wa_monitor.core.settings import Settings

__all__ = [
    "CHUNK",
    "FolderMediaStore",
    "MediaStore",
    "S3MediaStore",
    "StoredMedia",
    "VerifiedReader",
    "open_media_store",
]

CHUNK = 1024 * 1024  # bytes read at a time: the memory a put or an open holds
_SHA256 = re.compile(r"[0-9a-f]{64}")


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


@dataclass(frozen=True)
class StoredMedia:
    """A file in the media store: its SHA-256, its size, and whether this put added it."""

    sha256: str
    size: int
    added: bool


class MediaStore(Protocol):
    """What a media store does; files are named by their SHA-256 (64 lowercase hex digits)."""

    def put(self, sha256: str, stream: Readable, *, max_bytes: int) -> StoredMedia:
        """Store the bytes of `stream`, which must hash to `sha256` and be at most `max_bytes`.

        Raises MediaRejected (nothing kept) on a mismatch, an oversize file or a name that
        is not a SHA-256; MediaStoreError when the store cannot be written. An error raised
        by `stream` itself (a download breaking off) passes through as it is, nothing kept.
        """
        ...

    def open(self, sha256: str) -> Any:
        """A context manager giving the stored file as a `VerifiedReader` (MediaNotFound if absent).

        Reading it to the end raises MediaDamaged if the bytes no longer hash to `sha256`.
        """
        ...

    def exists(self, sha256: str) -> bool:
        """Whether a verified file is stored under `sha256`."""
        ...


def checked_key(sha256: str) -> str:
    """The SHA-256 as the store names files; MediaRejected for anything else (a path, say)."""
    key = sha256.strip().lower() if isinstance(sha256, str) else ""
    if not _SHA256.fullmatch(key):
        raise MediaRejected(
            f"media name {sha256!r:.80} is not a SHA-256 (64 hex digits); nothing stored",
            reason="bad_key",
        )
    return key


def _copy_verified(stream: Readable, sink: IO[bytes], key: str, max_bytes: int) -> int:
    """Copy `stream` into `sink` chunk by chunk; MediaRejected on oversize or mismatch."""
    digest = hashlib.sha256()
    size = 0
    while True:
        chunk = stream.read(CHUNK)
        if not chunk:
            break
        size += len(chunk)
        if size > max_bytes:
            raise MediaRejected(
                f"media {key}: larger than the limit of {max_bytes} bytes; nothing stored",
                reason="oversize",
            )
        digest.update(chunk)
        try:
            sink.write(chunk)
        except OSError as exc:
            raise MediaStoreError(
                f"media {key}: cannot be written ({exc.strerror}); check the free space"
            ) from None
    if digest.hexdigest() != key:
        raise MediaRejected(
            f"media {key}: the bytes hash to {digest.hexdigest()}, not the expected SHA-256 "
            "(a wrong or damaged download); nothing stored",
            reason="mismatch",
        )
    return size


class VerifiedReader:
    """A stored file read as a stream, hashed on the way: its end is where it is verified.

    A file damaged or replaced since it was stored (bit rot, a hand-edited folder, an object
    overwritten in the bucket) raises MediaDamaged at its end instead of ending quietly, so
    a reader that streams to the end never passes on unverified bytes as the photo.
    """

    def __init__(self, stream: Readable, sha256: str) -> None:
        self._stream = stream
        self.sha256 = sha256
        self._digest = hashlib.sha256()
        self._checked = False

    def read(self, size: int = -1, /) -> bytes:
        if size < 0:
            parts = []
            while chunk := self.read(CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        chunk = self._stream.read(size)
        if chunk:
            self._digest.update(chunk)
        elif not self._checked:
            self._checked = True
            if self._digest.hexdigest() != self.sha256:
                raise MediaDamaged(
                    f"media {self.sha256}: the stored bytes hash to {self._digest.hexdigest()}; "
                    "the file was damaged or replaced after it was stored; fetch the photo again"
                )
        return chunk


class FolderMediaStore:
    """Files under `root` as `ab/cd/<sha256>`, read-only once written."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FolderMediaStore({str(self.root)!r})"

    def _real_root(self) -> Path:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            return self.root.resolve(strict=True)
        except OSError as exc:
            raise MediaStoreError(
                f"media folder {self.root}: cannot be created or read ({exc.strerror}); "
                "check MEDIA_DIR and its permissions"
            ) from None

    def _path(self, key: str, *, create: bool) -> Path:
        """The file's path, refusing one that leads outside the folder (a symlinked fan-out)."""
        root = self._real_root()
        folder = root / key[:2] / key[2:4]
        if create:
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise MediaStoreError(
                    f"media folder {self.root}: cannot create {folder} ({exc.strerror})"
                ) from None
        if not folder.resolve().is_relative_to(root):
            raise MediaStoreError(
                f"media folder {self.root}: {folder} leads outside the folder (a symbolic "
                "link?); remove it"
            )
        return folder / key

    def exists(self, sha256: str) -> bool:
        key = checked_key(sha256)
        try:
            return stat.S_ISREG(os.lstat(self._path(key, create=False)).st_mode)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise MediaStoreError(f"media folder {self.root}: {exc.strerror}") from None

    @contextmanager
    def open(self, sha256: str) -> Iterator[VerifiedReader]:
        key = checked_key(sha256)
        target = self._path(key, create=False)
        try:
            # O_NOFOLLOW: a symbolic link put in place of a file is not followed out.
            fd = os.open(target, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            raise MediaNotFound(f"media {key}: not in the media folder {self.root}") from None
        except OSError as exc:
            raise MediaStoreError(
                f"media {key}: cannot be read from {self.root} ({exc.strerror})"
            ) from None
        with os.fdopen(fd, "rb") as file:
            yield VerifiedReader(file, key)

    def sweep(self, older_than: float = 24 * 3600) -> int:
        """Remove what puts cut short by a crash left in `.incoming`; how many files went."""
        incoming = self._real_root() / ".incoming"
        cutoff = time.time() - older_than
        removed = 0
        for leftover in incoming.glob("put-*") if incoming.is_dir() else ():
            with suppress(FileNotFoundError):
                if leftover.lstat().st_mtime < cutoff:
                    leftover.unlink()
                    removed += 1
        return removed

    @contextmanager
    def _writing(self, key: str) -> Iterator[None]:
        try:
            yield
        except OSError as exc:
            raise MediaStoreError(
                f"media {key}: cannot be written to {self.root} ({exc.strerror})"
            ) from None

    def put(self, sha256: str, stream: Readable, *, max_bytes: int) -> StoredMedia:
        key = checked_key(sha256)
        if self.exists(key):
            return StoredMedia(key, self._path(key, create=False).stat().st_size, added=False)
        # The temporary file sits inside the folder, so that the rename is atomic (one file
        # system); a crash leaves a file in `.incoming`, never a final name unverified.
        incoming = self._real_root() / ".incoming"
        try:
            incoming.mkdir(exist_ok=True)
            fd, temporary = tempfile.mkstemp(prefix="put-", dir=incoming)
        except OSError as exc:
            raise MediaStoreError(
                f"media folder {self.root}: cannot write ({exc.strerror}); check its "
                "permissions and free space"
            ) from None
        try:
            with os.fdopen(fd, "wb") as sink:
                size = _copy_verified(stream, sink, key, max_bytes)
                with self._writing(key):
                    sink.flush()
                    os.fsync(sink.fileno())
            with self._writing(key):
                os.chmod(temporary, 0o444)
                target = self._path(key, create=True)
                os.replace(temporary, target)
        except BaseException:
            _remove(temporary)
            raise
        _fsync_folder(target.parent)
        return StoredMedia(key, size, added=True)


def _remove(path: str) -> None:
    with suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable; some file systems cannot sync a folder, which is no error."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# The variables a .env file may set for the S3 store, as boto3's Session calls them.
_AWS = {
    "AWS_ACCESS_KEY_ID": "aws_access_key_id",
    "AWS_SECRET_ACCESS_KEY": "aws_secret_access_key",
    "AWS_SESSION_TOKEN": "aws_session_token",
    "AWS_DEFAULT_REGION": "region_name",
    "AWS_PROFILE": "profile_name",
}


class S3MediaStore:
    """Objects under `s3://bucket/prefix/ab/cd/<sha256>` of an S3-compatible server."""

    def __init__(
        self,
        url: str,
        *,
        endpoint_url: str | None = None,
        aws: Mapping[str, str] | None = None,
        client: Any = None,
    ) -> None:
        """`aws`: AWS_* variables (from the .env file, say) used before boto3's own lookup."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.hostname or parts.username or parts.password:
            raise ConfigError(
                [
                    f"MEDIA_URL={mask_url(url)!r} must be s3://bucket/prefix; credentials go "
                    "in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, not in the URL"
                ]
            )
        self.bucket = parts.hostname
        self.prefix = parts.path.strip("/")
        self.endpoint_url = endpoint_url
        # Kept out of every repr and message.
        self._aws = {name: value for name, value in (aws or {}).items() if name in _AWS and value}
        self._client = client

    def __repr__(self) -> str:
        return f"S3MediaStore('s3://{self.bucket}/{self.prefix}')"

    @property
    def client(self) -> Any:
        if self._client is None:
            # Imported here: boto3 is slow to import and only this store needs it.
            from boto3.session import Session
            from botocore.config import Config

            config = Config(
                connect_timeout=5,
                read_timeout=30,
                retries={"max_attempts": 2, "mode": "standard"},
            )
            session = Session(**{_AWS[name]: value for name, value in self._aws.items()})
            self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
        return self._client

    def _key(self, key: str) -> str:
        name = f"{key[:2]}/{key[2:4]}/{key}"
        return f"{self.prefix}/{name}" if self.prefix else name

    @contextmanager
    def _errors(self, key: str, doing: str) -> Iterator[None]:
        """boto3's errors as MediaStoreError, with the reason and never a credential."""
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "unknown"))
            if code in {"404", "NoSuchKey", "NotFound"}:
                where = f"s3://{self.bucket}/{self.prefix}"
                raise MediaNotFound(f"media {key}: not in {where}") from None
            raise MediaStoreError(
                f"media {key}: S3 refused to {doing} in s3://{self.bucket}/{self.prefix}: "
                f"{code} {mask_url(str(error.get('Message', '')))}".rstrip()
            ) from None
        except (BotoCoreError, Boto3Error) as exc:
            raise MediaStoreError(
                f"media {key}: cannot {doing} in s3://{self.bucket}/{self.prefix}: "
                f"{type(exc).__name__}: {mask_url(str(exc))}; is the S3 server up and "
                "AWS_ENDPOINT_URL right?"
            ) from None

    def exists(self, sha256: str) -> bool:
        key = checked_key(sha256)
        try:
            with self._errors(key, "look up"):
                self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except MediaNotFound:
            return False
        return True

    @contextmanager
    def open(self, sha256: str) -> Iterator[VerifiedReader]:
        key = checked_key(sha256)
        with self._errors(key, "read"):
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"]
        try:
            with self._errors(key, "read"):
                yield VerifiedReader(body, key)
        finally:
            body.close()

    def put(self, sha256: str, stream: Readable, *, max_bytes: int) -> StoredMedia:
        key = checked_key(sha256)
        if self.exists(key):
            return StoredMedia(key, self._size(key), added=False)
        # Verified in a temporary file first: the object appears under its key only once
        # the upload is complete (a multipart upload becomes visible when completed), so
        # S3 never holds an unverified or partial file under its final name. The upload
        # reads the file by name, part by part, so memory stays bounded by the parts.
        with tempfile.TemporaryDirectory(prefix="wa-monitor-media-") as folder:
            spool = Path(folder) / key
            with spool.open("wb") as sink:
                size = _copy_verified(stream, sink, key, max_bytes)
            with self._errors(key, "write"):
                self.client.upload_file(
                    str(spool), self.bucket, self._key(key), Config=self._transfer()
                )
        return StoredMedia(key, size, added=True)

    @staticmethod
    def _transfer() -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(max_concurrency=2, multipart_chunksize=8 * 1024 * 1024)

    def _size(self, key: str) -> int:
        with self._errors(key, "look up"):
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        return int(head["ContentLength"])


def open_media_store(settings: Settings) -> MediaStore:
    """The media store the settings name: MEDIA_URL's S3 store, else the MEDIA_DIR folder."""
    if settings.media_url:
        env = settings.environ
        endpoint = env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL") or None
        return S3MediaStore(settings.media_url, endpoint_url=endpoint, aws=env)
    if settings.media_dir is None:
        raise ConfigError(
            [
                "MEDIA_DIR is not set; with a PostgreSQL review database, set MEDIA_DIR to a "
                "folder for the photos (or MEDIA_URL=s3://bucket/prefix)"
            ]
        )
    return FolderMediaStore(settings.media_dir)
