"""The files behind media rows: what the phone holds, how the bridge's row describes it.

`MediaMaker` turns a bridge media row (made by `compose.media_row`) into one whose file
exists: the decrypted file as the phone would have it is written outside the bridge
store, to `<origin>/<chat_jid>/<message_id>`, and the row gets that file's true
`file_sha256` (32 raw bytes) and `file_length`, and a caption in `content` for some (as
forks that keep captions store it). `sim.bridge_api` serves these files the way the
bridge's `/api/download` does.

Photos of a drop come in bursts, one per QA step in order (steps 8 and 9 with their
barcodes); some are blurred, dark or taken long before they were posted; some repeat a
photo of another drop (the same bytes, or a resized re-encoded copy); some have expired
(WhatsApp dropped them: no origin file, the download fails with 404). Every decision
comes from the maker's own seeded RNG, so turning files on does not change the messages
a simulation writes, only their media columns. `PhotoTruth` records each file.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final
from zoneinfo import ZoneInfo

from wa_monitor.sim.photos import (
    ONT_STEP,
    STEPS,
    UPS_STEP,
    Scene,
    fake_mp4,
    fake_ogg,
    fake_pdf,
    ont_serial,
    reencode,
    render_jpeg,
    sha256,
    ups_serial,
)
from wa_monitor.sim.values import MessageRow, PhotoTruth

__all__ = ["MediaMaker", "MediaShares", "PhotoTruth", "chat_folder", "origin_path"]

_CONTENT_TYPES: Final = {
    ".jpg": "image/jpeg",
    ".mp4": "video/mp4",
    ".ogg": "audio/ogg",
    ".pdf": "application/pdf",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
}


def chat_folder(chat_jid: str) -> str:
    """The folder the bridge keeps a chat's downloads in (`:` would not do in a file name)."""
    return chat_jid.replace(":", "_")


def origin_path(origin_root: Path, chat_jid: str, message_id: str) -> Path:
    """Where the simulated phone keeps a message's decrypted file."""
    return origin_root / chat_folder(chat_jid) / message_id


@dataclass(frozen=True)
class MediaShares:
    """How often each kind of imperfect photo comes up (each a share of photos)."""

    blurred: float = 0.06
    dark: float = 0.05
    taken_early: float = 0.05
    reused: float = 0.05
    expired: float = 0.03
    caption: float = 0.25
    """Share of bursts whose first photo carries the drop number as a caption, and of
    serial photos (steps 8, 9) captioned "ONT serial" / "UPS serial"."""
    before: float = 0.15
    """Share of drop posts (live) whose photos come first, the post after them."""

    def __post_init__(self) -> None:
        for name in ("blurred", "dark", "taken_early", "reused", "expired", "caption", "before"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, got {value}")


@dataclass
class _Recent:
    message_id: str
    chat_jid: str
    drop: str
    step: int
    serial: str | None
    data: bytes


@dataclass
class _DropMedia:
    rounds: int = 0
    ont: str = ""
    ups: str = ""


@dataclass
class MediaMaker:
    """Writes the files of media rows under `origin_root` and records their truth.

    Some media expire (`shares.expired`, and all of it posted before `expired_before`):
    the row is written, the file is not, and the simulated bridge answers 404 for it.
    """

    origin_root: Path
    seed: int = 0
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    shares: MediaShares = field(default_factory=MediaShares)
    expired_before: datetime | None = None
    """Media posted before this (aware) time has expired too: WhatsApp drops old media."""
    truths: list[PhotoTruth] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(f"media-{self.seed}")
        self._drops: dict[tuple[str, str], _DropMedia] = {}
        self._recent: deque[_Recent] = deque(maxlen=40)

    # -- bursts ------------------------------------------------------------------------

    def open_round(self, chat_jid: str, drop: str) -> int:
        """A post of `drop` in `chat_jid` opens its next round; returns that round (0, 1, ...)."""
        entry = self._drops.get((chat_jid, drop))
        if entry is None:
            entry = _DropMedia(ont=ont_serial(self.rng), ups=ups_serial(self.rng))
            self._drops[(chat_jid, drop)] = entry
        else:
            entry.rounds += 1
        return entry.rounds

    def plan_steps(self, n: int, *, resubmission: bool = False) -> list[int]:
        """The steps of a burst of `n` photos in posting order: each step once, in order,
        then second shots of some; a resubmission re-takes a few steps only."""
        rng = self.rng
        if n <= 0:
            return []
        if resubmission or n < len(STEPS):
            chosen = sorted(rng.sample(range(1, len(STEPS) + 1), min(n, len(STEPS))))
        else:
            chosen = list(range(1, len(STEPS) + 1))
        extra = [rng.randint(1, len(STEPS)) for _ in range(n - len(chosen))]
        for step in extra:  # a second shot right after the first of its step
            chosen.insert(chosen.index(step) + 1 if step in chosen else len(chosen), step)
        return chosen

    def burst_gaps(self, n: int) -> list[int]:
        """Seconds after the first photo at which each of `n` burst photos is stored.

        Photos of a burst follow each other within seconds; many share a second, so the
        bridge gives them the same file name (its burst-collision bug).
        """
        rng = self.rng
        gaps, at = [], 0
        for i in range(n):
            if i:
                at += rng.choice((0, 0, 1, 1, 1, 2, 3))
            gaps.append(at)
        return gaps

    # -- files ---------------------------------------------------------------------------

    def photo(
        self,
        row: MessageRow,
        *,
        posted_at: datetime,
        sender_phone: str,
        drop: str | None,
        round: int | None,
        step: int | None,
        caption: str | None = None,
    ) -> MessageRow:
        """`row` (an image row) with a real photo of `step` of `drop` behind it."""
        rng = self.rng
        shares = self.shares
        serial: str | None = None
        reused: _Recent | None = None
        reencoded = blurred = dark = early = False
        if drop is not None and rng.random() < shares.reused:
            others = [r for r in self._recent if r.drop != drop or r.chat_jid != row.chat_jid]
            same = [r for r in others if r.step == step]
            pool = same or others
            if pool:
                reused = pool[rng.randrange(len(pool))]
        if reused is not None:
            reencoded = rng.random() < 0.5
            data = reencode(reused.data) if reencoded else reused.data
            step, serial = reused.step, reused.serial
        else:
            if step is None:
                step = rng.randint(1, len(STEPS))
            entry = self._drops.get((row.chat_jid, drop)) if drop is not None else None
            if step == ONT_STEP:
                serial = entry.ont if entry else ont_serial(rng)
            elif step == UPS_STEP:
                serial = entry.ups if entry else ups_serial(rng)
            # A photo with a barcode stays readable: the serial is what it is for.
            if serial is None:
                blurred = rng.random() < shares.blurred
                dark = not blurred and rng.random() < shares.dark
            early = rng.random() < shares.taken_early
            before = (
                timedelta(days=rng.randint(3, 60), hours=rng.randint(0, 23))
                if early
                else timedelta(seconds=rng.randint(30, 1800))
            )
            scene = Scene(
                step=step,
                drop_number=drop or "no drop number",
                seed=rng.getrandbits(32),
                taken_at=(posted_at - before).astimezone(self.zone),
                serial=serial,
                blurred=blurred,
                dark=dark,
            )
            data = render_jpeg(scene)
        if caption is None and step in (ONT_STEP, UPS_STEP) and rng.random() < shares.caption:
            # Installers often say what a serial photo is (forks keep the caption).
            caption = "ONT serial" if step == ONT_STEP else "UPS serial"
        if drop is not None and reused is None:
            self._recent.append(_Recent(row.id, row.chat_jid, drop, step, serial, data))
        return self._store(
            row,
            data,
            posted_at=posted_at,
            sender_phone=sender_phone,
            drop=drop,
            round=round,
            step=STEPS[step - 1][0],
            serial=serial,
            caption=caption,
            blurred=blurred,
            dark=dark,
            taken_early=early,
            reused_from=reused.message_id if reused else None,
            reencoded=reencoded,
        )

    def other(
        self,
        row: MessageRow,
        *,
        posted_at: datetime,
        sender_phone: str,
        drop: str | None = None,
        round: int | None = None,
    ) -> MessageRow:
        """`row` (a video, voice note or document row; an image too) with a file behind it."""
        if row.media_type == "image":
            return self.photo(
                row,
                posted_at=posted_at,
                sender_phone=sender_phone,
                drop=drop,
                round=round,
                step=None,
            )
        seed = self.rng.getrandbits(32)
        if row.media_type == "video":
            data = fake_mp4(seed, self.rng.randint(40_000, 120_000))
        elif row.media_type == "audio":
            data = fake_ogg(seed, self.rng.randint(6_000, 30_000))
        elif row.filename.endswith(".pdf"):
            data = fake_pdf(row.filename.removesuffix(".pdf"), seed)
        else:  # .xlsx, .docx: zip containers
            data = b"PK\x03\x04" + random.Random(seed).randbytes(self.rng.randint(8_000, 40_000))
        return self._store(
            row,
            data,
            posted_at=posted_at,
            sender_phone=sender_phone,
            drop=drop,
            round=round,
            step=None,
            serial=None,
            caption=None,
        )

    def _store(
        self,
        row: MessageRow,
        data: bytes,
        *,
        posted_at: datetime,
        sender_phone: str,
        drop: str | None,
        round: int | None,
        step: str | None,
        serial: str | None,
        caption: str | None,
        blurred: bool = False,
        dark: bool = False,
        taken_early: bool = False,
        reused_from: str | None = None,
        reencoded: bool = False,
    ) -> MessageRow:
        expired = self.rng.random() < self.shares.expired
        if self.expired_before is not None and posted_at < self.expired_before:
            expired = True
        origin: Path | None = None
        if not expired:
            origin = origin_path(self.origin_root, row.chat_jid, row.id)
            origin.parent.mkdir(parents=True, exist_ok=True)
            origin.write_bytes(data)
        digest = sha256(data)
        content = caption if caption is not None else row.content
        suffix = "." + row.filename.rsplit(".", 1)[-1].lower() if "." in row.filename else ""
        self.truths.append(
            PhotoTruth(
                message_id=row.id,
                chat_jid=row.chat_jid,
                sender_phone=sender_phone,
                posted_at=posted_at,
                media_type=row.media_type,
                filename=row.filename,
                sha256=digest.hex(),
                size=len(data),
                content_type=_CONTENT_TYPES.get(suffix, "application/octet-stream"),
                caption=caption,
                drop_number=drop,
                round=round,
                step=step,
                serial=serial,
                blurred=blurred,
                dark=dark,
                taken_early=taken_early,
                reused_from=reused_from,
                reencoded=reencoded,
                expired=expired,
                origin=origin,
            )
        )
        return row._replace(content=content, file_sha256=digest, file_length=len(data))
