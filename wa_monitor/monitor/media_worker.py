"""The media worker inside `run`: link the group's messages, fetch and analyse the photos.

It runs in a thread of its own beside the scan, never inside a scan batch, so drop
latency does not depend on the photos. Each round it lets the linker read the new group
rows (`PhotoLinker.step()` until it has nothing more), then takes the due photos from the
queue (`store.media_queue`) a few at a time (MEDIA_WORKERS downloads at once), fetches
each through the bridge into the media store, verified, and records what it showed.

The image work (decoding for the thumbnail, the perceptual hash, barcodes and hints) is
CPU-bound and holds the GIL inside Pillow and zxing; it runs in a separate process (one,
started on first use) fed with the media store key, so the scan thread never waits on it.

A file the media store already has under `file_sha256` is not downloaded again; one
another row already analysed is not analysed again. Every per-photo problem becomes the
row's status and reason; nothing one photo does stops the worker.
"""

from __future__ import annotations

import contextlib
import io
import logging
import multiprocessing
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Protocol

from wa_monitor.core import gateways
from wa_monitor.core.errors import MediaRejected, MediaStoreError, WaMonitorError
from wa_monitor.core.serials import GPON_SERIAL, is_ont_serial, serials_from
from wa_monitor.core.settings import Settings
from wa_monitor.monitor.photo_fetch import FetchOutcome, MediaRow, fetch_photo
from wa_monitor.sources.bridge_media import BridgeMediaClient
from wa_monitor.sources.gateway_media import (
    EvolutionMediaClient,
    GatewayMediaClient,
    GatewayMediaRef,
    WahaMediaClient,
)
from wa_monitor.store import media_queue as queue
from wa_monitor.store.media import FolderMediaStore, MediaStore, open_media_store
from wa_monitor.store.media_queue import Analysis, QueuedMedia
from wa_monitor.store.review_store import ReviewStore

__all__ = [
    "GPON_SERIAL",
    "AnalysisFailed",
    "MediaWorker",
    "analyse_stored",
    "check_media_store",
    "is_ont_serial",
    "media_limit",
    "serials_from",
    "similar",
    "sniff",
]

log = logging.getLogger("wa_monitor")


# The bridge decrypts a photo in well under a second; 30 s is a busy phone link, not a
# hang, and bounds how long a stopping `run` can wait on one request.
BRIDGE_TIMEOUT: Final = 30.0
# Group rows the linker reads per step (one transaction): small enough that a scan
# waiting for the write lock (SQLite) waits a fraction of a second.
LINK_STEP_ROWS: Final = 500
# The service process never imports core.images (Pillow, numpy, SciPy: tens of MB and
# seconds of start-up); the analysis process does. These two copy its bounds, and a test
# keeps them equal: a photo's largest file, and the pHash distance of a copy.
IMAGE_MAX_BYTES: Final = 40 * 1024 * 1024
PHASH_MAX_DISTANCE: Final = 10
# The longest the worker sleeps without looking at the queue (a retry falls due, a row
# another process added).
IDLE_WAIT: Final = 60.0
# A photo's analysis takes well under a second; a minute is a decoder that hangs.
ANALYSIS_TIMEOUT: Final = 60.0

_KIND_NAMES: Final = {
    "image/jpeg": "a JPEG image",
    "image/png": "a PNG image",
    "image/gif": "a GIF image",
    "image/webp": "a WebP image",
    "image/heic": "a HEIC image",
    "video/mp4": "an MP4 video",
    "video/quicktime": "a QuickTime video",
    "video/3gpp": "a 3GP video",
    "application/pdf": "a PDF",
    "application/zip": "a ZIP archive (or an Office document)",
    "audio/ogg": "an Ogg audio file",
    "audio/mpeg": "an MP3 audio file",
    "audio/mp4": "an M4A audio file",
    "application/octet-stream": "a file of unknown type",
}
_HEIF_BRANDS: Final = (b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1")


def sniff(head: bytes) -> str:
    """The content type the first bytes of a file show (not the name, not the claim)."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in _HEIF_BRANDS:
            return "image/heic"
        if brand == b"qt  ":
            return "video/quicktime"
        if brand.startswith(b"3g"):
            return "video/3gpp"
        if brand in (b"M4A ", b"M4B "):
            return "audio/mp4"
        return "video/mp4"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    if head.startswith(b"PK\x03\x04"):
        return "application/zip"
    if head.startswith(b"OggS"):
        return "audio/ogg"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "audio/mpeg"
    return "application/octet-stream"


def _mismatch(media_type: str, content_type: str) -> str | None:
    """Why a file is not what its media type says, or None when it is."""
    expected = {"image": "image/", "video": "video/", "audio": "audio/"}.get(media_type)
    if expected is None or content_type.startswith(expected):
        return None
    what = _KIND_NAMES.get(content_type, content_type)
    article = "an" if media_type[0] in "aeiou" else "a"
    return f"the file is {what}, not {article} {media_type}"


def similar(a: str, b: str) -> bool:
    """`core.images.similar` on two 16-hex pHashes, without loading the image libraries."""
    return (int(a, 16) ^ int(b, 16)).bit_count() <= PHASH_MAX_DISTANCE


def media_limit(media_type: str, settings_max: int) -> int:
    """The largest file fetched for a media type: a photo's bound, else MEDIA_MAX_BYTES."""
    return min(IMAGE_MAX_BYTES, settings_max) if media_type == "image" else settings_max


# -- the analysis, in a process of its own ------------------------------------------------


class AnalysisFailed(WaMonitorError):
    """The stored file cannot be analysed as what it claims: the photo is `failed`."""


_CHILD_STORES: dict[tuple[str | None, ...], MediaStore] = {}


def _child_store(settings: Settings) -> MediaStore:
    """The analysis process's media store, opened once (an S3 client is costly to make)."""
    env = settings.environ
    key = (
        settings.media_url,
        str(settings.media_dir),
        env.get("AWS_ENDPOINT_URL_S3") or env.get("AWS_ENDPOINT_URL"),
    )
    if key not in _CHILD_STORES:
        _CHILD_STORES.clear()
        _CHILD_STORES[key] = open_media_store(settings)
    return _CHILD_STORES[key]


def analyse_stored(
    settings: Settings, sha256: str, media_type: str, posted_at: datetime, size: int
) -> Analysis:
    """Read the stored file under `sha256` and say what it shows; runs in the analysis process.

    An image gets its thumbnail (stored in the media store under its own SHA-256), size,
    perceptual hash, barcodes and quality hints; any other file only its content type.

    Raises:
        AnalysisFailed: the file is not what `media_type` says, or the image is damaged.
        MediaStoreError: the media store failed (try again later).
    """
    import hashlib

    from wa_monitor.core import images

    store = _child_store(settings)
    if media_type != "image":
        with store.open(sha256) as reader:
            content_type = sniff(reader.read(64))
        problem = _mismatch(media_type, content_type)
        if problem:
            raise AnalysisFailed(problem)
        return Analysis(sha256=sha256, size=size, content_type=content_type)
    with store.open(sha256) as reader:
        parts: list[bytes] = []
        held = 0
        # Read to its end (a file damaged since it was stored raises MediaDamaged there),
        # never more than a photo can be.
        while chunk := reader.read(1024 * 1024):
            held += len(chunk)
            if held > IMAGE_MAX_BYTES:
                raise AnalysisFailed(
                    f"{held} bytes and more is larger than a photo ({IMAGE_MAX_BYTES} at most)"
                )
            parts.append(chunk)
        data = b"".join(parts)
        del parts
    content_type = sniff(data[:64])
    problem = _mismatch(media_type, content_type)
    if problem:
        raise AnalysisFailed(problem)
    claimed = content_type

    def source() -> io.BytesIO:
        return io.BytesIO(data)

    try:
        thumb = images.thumbnail(source(), claimed)
        phash = images.perceptual_hash(source(), claimed)
        codes = images.barcodes(source(), claimed)
        found = images.hints(source(), posted_at, claimed)
        width, height = _upright_size(images, source())
    except images.ImageError as exc:
        raise AnalysisFailed(str(exc).replace("stream: ", "", 1)) from None
    thumb_sha = hashlib.sha256(thumb).hexdigest()
    store.put(thumb_sha, io.BytesIO(thumb), max_bytes=len(thumb))
    return Analysis(
        sha256=sha256,
        size=size,
        content_type=content_type,
        width=width,
        height=height,
        thumb_sha256=thumb_sha,
        phash=phash,
        barcodes=tuple({"format": c.format, "text": c.text} for c in codes),
        hints=tuple(
            {"kind": h.kind, "message": _hint_message(h.kind), "value": h.value} for h in found
        ),
    )


def _upright_size(images: Any, stream: io.BytesIO) -> tuple[int, int]:
    """Width and height as the photo is shown (EXIF orientation 5-8 turns it a quarter)."""
    from PIL import Image

    with Image.open(stream, formats=images._ALLOWED_FORMATS) as image:
        width, height = image.size
        if image.getexif().get(0x0112) in (5, 6, 7, 8):
            width, height = height, width
    return int(width), int(height)


def _hint_message(kind: str) -> str:
    return {
        "blurred": "looks blurred",
        "dark": "too dark to read",
        "taken_early": "taken more than a day before it was posted",
    }.get(kind, kind)


# -- the media store's health -------------------------------------------------------------


def check_media_store(settings: Settings) -> tuple[MediaStore | None, str]:
    """The media store and "" when it can be written (S3: answers), else None and why."""
    try:
        store = open_media_store(settings)
    except WaMonitorError as exc:
        return None, str(exc)
    try:
        if isinstance(store, FolderMediaStore):
            root = store.root
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=root, prefix=".probe-"):
                pass
        else:
            store.exists("0" * 64)  # a HEAD: the bucket answers, the credentials are taken
    except OSError as exc:
        return None, f"media folder {settings.media_dir}: cannot be written ({exc.strerror})"
    except MediaStoreError as exc:
        return None, str(exc)
    return store, ""


# -- the worker ---------------------------------------------------------------------------


class Linker(Protocol):
    def step(self, max_rows: int = 5000) -> bool: ...


@dataclass
class WorkerState:
    """What the worker is doing, for the heartbeat (`wa-monitor status`) and the log."""

    fetching: bool = False
    reason: str = ""  # why it does not fetch, when it does not
    rounds: int = 0
    last_round_at: datetime | None = None
    last_error: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "fetching": self.fetching,
            "reason": self.reason,
            "rounds": self.rounds,
            "last_round_at": self.last_round_at.isoformat() if self.last_round_at else None,
            "last_error": self.last_error,
        }


class MediaWorker:
    """Links group messages and fetches their media, until `run`'s stop event is set."""

    def __init__(
        self,
        store: ReviewStore,
        settings: Settings,
        *,
        linker: Linker | None = None,
        media: MediaStore | None = None,
        client: BridgeMediaClient | None = None,
        workers: int | None = None,
        lease: timedelta = queue.LEASE,
        on_round: Callable[[MediaWorker], None] | None = None,
        analyse_in_process: bool = True,
        scan_idle: threading.Event | None = None,
        gateway_of: Callable[[str], str | None] | None = None,
        gateway_clients: Mapping[str, GatewayMediaClient] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.linker = linker
        self.media = media
        self.client = client
        # The webhook gateways' download clients (WAHA, Evolution API), by gateway.
        self.gateway_clients: dict[str, GatewayMediaClient] = dict(gateway_clients or {})
        self.workers = max(1, workers or settings.media_workers)
        self.lease = lease
        self.on_round = on_round
        self.analyse_in_process = analyse_in_process
        self.scan_idle = scan_idle
        # The gateway each group's photos are fetched through (None: the bridge, for all).
        self.gateway_of = gateway_of
        self.state = WorkerState()
        self.outcomes: Counter[str] = Counter()  # fetches by outcome since start
        self.rounded = threading.Event()  # set after each round (tests wait on it)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._prepared = False
        self._bridge_problem = ""

    # -- setup ------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Pick the media store and the bridge client; say once why photos are not fetched.

        Done in the worker's first round, not at start-up: an S3 store that does not
        answer delays the photos, never the scan.
        """
        if self._prepared:
            return
        self._prepared = True
        problems = []
        if self.media is None:
            self.media, problem = check_media_store(self.settings)
            if problem:
                problems.append(f"the media store cannot be used: {problem}")
        bridge_problem = ""
        if self.client is None:
            root = self._bridge_folder()
            if not self.settings.bridge_url:
                bridge_problem = "BRIDGE_URL is not set: the bridge's API cannot be asked"
            elif root is None:
                bridge_problem = "WHATSAPP_DB_PATH is not set: the bridge's store folder is unknown"
            else:
                self.client = BridgeMediaClient(
                    self.settings.bridge_url,
                    root,
                    timeout=BRIDGE_TIMEOUT,
                    token=self.settings.bridge_token,
                )
        self._gateway_clients()
        if self.client is None and not self.gateway_clients:
            problems.append(bridge_problem)
        self.state.fetching = not problems
        self.state.reason = "; ".join(problems)
        self._bridge_problem = bridge_problem
        if problems:
            log.warning("⚠️ photos are linked but not fetched: %s", self.state.reason)

    def _gateway_clients(self) -> None:
        """A download client for each webhook gateway whose URL is set."""
        s = self.settings
        if gateways.WAHA not in self.gateway_clients and s.waha_url:
            self.gateway_clients[gateways.WAHA] = WahaMediaClient(
                s.waha_url, s.waha_api_key, timeout=BRIDGE_TIMEOUT
            )
        if (
            gateways.EVOLUTION not in self.gateway_clients
            and s.evolution_url
            and s.evolution_instance
        ):
            self.gateway_clients[gateways.EVOLUTION] = EvolutionMediaClient(
                s.evolution_url, s.evolution_api_key, s.evolution_instance, timeout=BRIDGE_TIMEOUT
            )

    def _bridge_folder(self) -> Path | None:
        """The bridge's store folder (where it writes `<chat_jid>/<filename>`): messages.db's."""
        path = self.settings.whatsapp_db_path
        return path.parent if path is not None else None

    # -- the loop ---------------------------------------------------------------------

    def wake(self) -> None:
        """Look at the queue now (a scan found rows, a projects file changed)."""
        self._wake.set()

    def run(self, stop: threading.Event) -> None:
        """Rounds until `stop` is set; between them, wait for a wake-up or the next retry."""
        try:
            while not stop.is_set():
                self._wake.clear()
                wait = self.round(stop)
                self.rounded.set()
                deadline = time.monotonic() + wait
                # Stop is looked at every half second: it interrupts any wait.
                while not stop.is_set() and not self._wake.is_set():
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._wake.wait(min(left, 0.5))
        finally:
            self.close()

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        if self.client is not None:
            self.client.close()
        for client in self.gateway_clients.values():
            client.close()

    def round(self, stop: threading.Event | None = None) -> float:
        """One round: link, then fetch what is due. Returns the seconds until the next."""
        stop = stop or threading.Event()
        self._prepare()
        try:
            self._link(stop)
            if self.state.fetching:
                self._fetch_due(stop)
            wait = self._next_due()
            self.state.last_error = ""
        except WaMonitorError as exc:
            # The database or the bridge store is away: the scan reports it; try again soon.
            if str(exc) != self.state.last_error:
                log.warning("⚠️ media worker: %s; trying again", exc)
            self.state.last_error = str(exc)
            wait = 5.0
        self.state.rounds += 1
        self.state.last_round_at = datetime.now(UTC)
        if self.on_round is not None:
            self.on_round(self)
        return wait

    def _after_scan(self, stop: threading.Event) -> None:
        """Wait while a scan runs: the worker's writes never delay a drop's."""
        while self.scan_idle is not None and not self.scan_idle.is_set() and not stop.is_set():
            self.scan_idle.wait(0.25)

    def _link(self, stop: threading.Event) -> None:
        if self.linker is None:
            return
        while not stop.is_set():
            self._after_scan(stop)
            if not self.linker.step(LINK_STEP_ROWS):
                return

    def _next_due(self) -> float:
        """Seconds until the earliest pending photo falls due (at most IDLE_WAIT)."""
        import sqlalchemy as sa

        from wa_monitor.store.schema import group_messages as G

        if not self.state.fetching:
            return IDLE_WAIT
        with self.store.read() as conn:
            due = conn.execute(
                sa.select(sa.func.min(G.c.next_attempt_at)).where(
                    G.c.status == "pending", G.c.drop_number.is_not(None)
                )
            ).scalar()
        if due is None:
            return IDLE_WAIT
        left = float((due - datetime.now(UTC)).total_seconds())
        return min(IDLE_WAIT, max(0.05, left))

    def _fetch_due(self, stop: threading.Event) -> None:
        """Claim due photos, MEDIA_WORKERS at a time, until none is due or stop is set."""
        while not stop.is_set():
            if self._wake.is_set():
                # A scan found rows meanwhile: their photos are linked (so fetched, and
                # shown) now, not after the whole backlog.
                self._wake.clear()
                self._link(stop)
            self._after_scan(stop)
            claimed = queue.claim(self.store, self.workers, lease=self.lease)
            if not claimed:
                return
            threads = [
                threading.Thread(
                    target=self._settle_one, args=(row,), name="wa-monitor media", daemon=True
                )
                for row in claimed
            ]
            for thread in threads:
                thread.start()
            # Daemon threads: a stopping `run` does not wait on a slow bridge; what they
            # held comes back when the lease ends.
            for thread in threads:
                while thread.is_alive() and not stop.is_set():
                    thread.join(0.25)

    # -- one photo --------------------------------------------------------------------

    def _settle_one(self, row: QueuedMedia) -> None:
        try:
            outcome = self._process(row)
        except WaMonitorError as exc:
            outcome = "retry"
            self._retry(row, f"{exc}")
        except Exception as exc:  # one photo's surprise must not end the worker
            log.exception("❌ media worker: photo %s in %s", row.message_id, row.chat_jid)
            outcome = "retry"
            with contextlib.suppress(WaMonitorError):
                self._retry(row, f"an unexpected error ({type(exc).__name__}: {exc})")
        with self._lock:
            self.outcomes[outcome] += 1

    def _retry(self, row: QueuedMedia, reason: str) -> str:
        status = queue.retry_later(self.store, row.id, row.attempts, reason)
        if status == "failed":
            log.warning("⚠️ photo %s in %s failed: %s", row.message_id, row.chat_jid, reason)
        return status

    def _process(self, row: QueuedMedia) -> str:
        """Fetch, analyse and record one claimed row; the outcome for the metrics."""
        assert self.media is not None
        where = f"{row.media_type} {row.filename or ''!r} (message {row.message_id})"
        limit = media_limit(row.media_type, self.settings.media_max_bytes)
        if row.file_length is not None and row.file_length > limit:
            queue.mark_failed(
                self.store,
                row.id,
                f"{where}: {row.file_length} bytes, over the limit of {limit} for a "
                f"{row.media_type} (MEDIA_MAX_BYTES for videos and documents)",
            )
            return "failed"
        sha = row.file_sha256
        reused = False
        if sha is not None and self.media.exists(sha):
            reused = True
            known = queue.stored_elsewhere(self.store, sha, row.id)
            if known is not None:
                self._record(row, known)
                return "reused"
            size = row.file_length or 0
        else:
            fetched = self._fetch(row, sha, limit)
            if fetched.status == "retry":
                return "failed" if self._retry(row, fetched.reason) == "failed" else "retry"
            if fetched.status == "unavailable":
                queue.mark_unavailable(self.store, row.id, fetched.reason)
                return "unavailable"
            if fetched.status == "failed":
                queue.mark_failed(self.store, row.id, fetched.reason)
                return "failed"
            assert fetched.sha256 is not None
            sha, size = fetched.sha256, int(fetched.size or 0)
        try:
            analysis = self._analyse(sha, row.media_type, row.posted_at, size)
        except AnalysisFailed as exc:
            queue.mark_failed(self.store, row.id, f"{where}: {exc}")
            return "failed"
        self._record(row, analysis)
        return "reused" if reused else "fetched"

    def _fetch(self, row: QueuedMedia, sha: str | None, limit: int) -> FetchOutcome:
        """Download the row's file through its group's gateway into the media store."""
        gateway = self.gateway_of(row.chat_jid) if self.gateway_of is not None else None
        client = self.gateway_clients.get(gateway or "")
        if client is not None:
            return self._fetch_from_gateway(client, row, sha, limit)
        if gateway in (gateways.WAHA, gateways.EVOLUTION):
            what = (
                "WAHA_URL" if gateway == gateways.WAHA else "EVOLUTION_URL and EVOLUTION_INSTANCE"
            )
            return FetchOutcome(
                "retry", f"{what} not set: photos from {gateway} cannot be asked for"
            )
        if self.client is None:
            return FetchOutcome("retry", self._bridge_problem or "the bridge cannot be asked")
        return fetch_photo(
            MediaRow(
                message_id=row.message_id,
                chat_jid=row.chat_jid,
                filename=row.filename or "",
                file_sha256=bytes.fromhex(sha) if sha else None,
                file_length=row.file_length,
            ),
            self.client,
            self.media,  # type: ignore[arg-type]
            max_bytes=limit,
        )

    def _fetch_from_gateway(
        self, client: GatewayMediaClient, row: QueuedMedia, sha: str | None, limit: int
    ) -> FetchOutcome:
        """A webhook gateway's download, verified against the SHA-256 it gave (if any)."""
        assert self.media is not None
        where = f"photo {row.filename or ''!r} (message {row.message_id} in {row.chat_jid})"
        ref = GatewayMediaRef(row.chat_jid, row.message_id, self._media_url(row))
        download = client.download(ref, max_bytes=limit)
        if download.status != "ready" or download.file is None:
            status = "failed" if download.status == "ready" else download.status
            return FetchOutcome(status, download.reason)
        with download.file as source:
            if sha is not None and download.sha256 != sha:
                return FetchOutcome(
                    "retry",
                    f"{where}: the gateway's file does not hash to the SHA-256 it gave; "
                    "nothing stored",
                )
            assert download.sha256 is not None
            try:
                stored = self.media.put(download.sha256, source, max_bytes=limit)
            except MediaRejected as exc:
                return FetchOutcome("failed", f"{where}: {exc}")
            except MediaStoreError as exc:
                return FetchOutcome("retry", f"{where}: the media store failed: {exc}")
        return FetchOutcome("fetched", f"{where}: stored", stored.sha256, stored.size)

    def _media_url(self, row: QueuedMedia) -> str | None:
        """The media URL the gateway's webhook gave for the row's message (WAHA's)."""
        import sqlalchemy as sa

        from wa_monitor.store.schema import gateway_inbox as t

        with self.store.read() as conn:
            value = conn.execute(
                sa.select(t.c.media_url).where(
                    t.c.chat_jid == row.chat_jid, t.c.message_id == row.message_id
                )
            ).scalar()
        return None if value is None else str(value)

    def _record(self, row: QueuedMedia, analysis: Analysis) -> None:
        duplicate = None
        if analysis.phash is not None:
            duplicate = queue.duplicate_of(self.store, row, analysis.phash, similar)
        queue.mark_available(self.store, row.id, analysis, duplicate=duplicate)
        if analysis.phash is not None:
            # Newest photos are fetched first: an original fetched after its copies makes
            # them copies of it, the earliest posting.
            for later in queue.later_copies(self.store, row, analysis.phash):
                phash = self._phash_of(later.id)
                if phash is not None:
                    found = queue.duplicate_of(self.store, later, phash, similar)
                    queue.set_duplicate(self.store, later.id, found)
        ont, ups = serials_from(analysis.barcodes, step=row.step, caption=row.content)
        if ont or ups:
            queue.store_serials(self.store, row.review_id, ont=ont, ups=ups)

    def _phash_of(self, media_id: int) -> str | None:
        import sqlalchemy as sa

        from wa_monitor.store.schema import group_messages as G

        with self.store.read() as conn:
            value = conn.execute(sa.select(G.c.phash).where(G.c.id == media_id)).scalar()
        return None if value is None else str(value)

    def _analyse(self, sha: str, media_type: str, posted_at: datetime, size: int) -> Analysis:
        if not self.analyse_in_process:
            return analyse_stored(self.settings, sha, media_type, posted_at, size)
        for attempt in (1, 2):
            future = self._submit(sha, media_type, posted_at, size)
            try:
                return future.result(timeout=ANALYSIS_TIMEOUT)
            except BrokenProcessPool:
                # The analysis process died (out of memory on a hostile image, killed):
                # a new one for the next photo; this one is tried once more, then retried.
                self._discard_pool()
                if attempt == 2:
                    raise MediaStoreError(
                        "the photo analysis process stopped; trying again"
                    ) from None
            except TimeoutError:
                self._discard_pool()
                raise MediaStoreError(
                    f"the photo analysis took longer than {ANALYSIS_TIMEOUT:g} s"
                ) from None
        raise AssertionError("unreachable")

    def _submit(
        self, sha: str, media_type: str, posted_at: datetime, size: int
    ) -> Future[Analysis]:
        with self._lock:
            if self._pool is None:
                # spawn: a fresh interpreter, nothing of the service's threads or
                # connections copied into it.
                self._pool = ProcessPoolExecutor(
                    max_workers=1, mp_context=multiprocessing.get_context("spawn")
                )
            pool = self._pool
        return pool.submit(analyse_stored, self.settings, sha, media_type, posted_at, size)

    def _discard_pool(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            for process in list(getattr(pool, "_processes", {}).values()):
                process.kill()
            pool.shutdown(wait=False, cancel_futures=True)

    # -- reporting --------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        with self._lock:
            outcomes = dict(self.outcomes)
        return {**self.state.as_dict(), "workers": self.workers, "fetches": outcomes}
