"""Test helpers: a bridge store written message by message, a monitor over it, and a wait
for a condition."""

from __future__ import annotations

import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.monitor.scan import Monitor
from wa_monitor.sim import Member, MessageRow, StoreWriter
from wa_monitor.sources.bridge import BridgeStore
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import drop_submissions, qa_photo_reviews

SAST = ZoneInfo("Africa/Johannesburg")
LAWLEY = "120363418298130331@g.us"
VELO = "120363421664266245@g.us"
MOHADIN = "120363421532174586@g.us"
OTHER = "120363400000000001@g.us"

PROJECTS_YAML = f"""\
# WhatsApp Monitor - test projects
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    enabled: true
    group_jid: "{LAWLEY}"
    description: "Lawley Activation 3 group"
  - name: Velo Test
    enabled: true
    group_jid: "{VELO}"
    description: "Velo Test group"
  - name: Mohadin
    enabled: false
    group_jid: "{MOHADIN}"
    description: "Mohadin Activations group"
"""

T0 = datetime(2025, 11, 9, 19, 15, 30, tzinfo=SAST)

# Everything a test opened, closed after it by the autouse fixture in conftest.py.
_OPEN: list[Bridge | Monitor] = []


def close_all() -> None:
    while _OPEN:
        item = _OPEN.pop()
        if isinstance(item, Monitor):
            item.source.close()
            item.store.dispose()
        else:
            item.close()


def config_from(text: str = PROJECTS_YAML, path: Path = Path("projects.yaml")) -> ProjectsConfig:
    return parse_config(text, path)


@dataclass
class Bridge:
    """A bridge store that tests write to the way the bridge does (INSERT OR REPLACE)."""

    directory: Path
    writer: StoreWriter = field(init=False)

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.writer = StoreWriter(self.messages_db, self.whatsapp_db)
        _OPEN.append(self)

    @property
    def messages_db(self) -> Path:
        return self.directory / "messages.db"

    @property
    def whatsapp_db(self) -> Path:
        return self.directory / "whatsapp.db"

    def post(
        self,
        chat_jid: str,
        content: str | None,
        *,
        sender: str = "27821234567",
        when: datetime = T0,
        message_id: str | None = None,
        media_type: str = "",
        timestamp: str | None = None,
    ) -> tuple[str, int]:
        """Store a message; returns its id and rowid."""
        message_id = message_id or uuid.uuid4().hex[:20].upper()
        row = MessageRow(
            id=message_id,
            chat_jid=chat_jid,
            sender=sender,
            content=content,
            timestamp=timestamp if timestamp is not None else self.writer.timestamp(when),
            is_from_me=False,
            media_type=media_type,
            filename="",
            url="",
            media_key=None,
            file_sha256=None,
            file_enc_sha256=None,
            file_length=0,
        )
        if timestamp is not None:
            # A raw row, e.g. a malformed timestamp that the simulator would refuse to write.
            with sqlite3.connect(self.messages_db) as conn:
                cursor = conn.execute(
                    "INSERT OR REPLACE INTO messages "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    row,
                )
            conn.close()
            return message_id, int(cursor.lastrowid or 0)
        return message_id, self.writer.write(row)

    def chatter(self, chat_jid: str, n: int, when: datetime = T0) -> None:
        for i in range(n):
            self.post(chat_jid, f"Pole {i} done, moving on", when=when + timedelta(seconds=i))

    def redeliver(self, chat_jid: str, message_id: str) -> int:
        return self.writer.redeliver(chat_jid, message_id)

    def member(self, phone: str, *, lid: str | None = None, name: str | None = None) -> None:
        self.writer.add_members(
            [Member(phone=phone, lid=lid, full_name=name, push_name=None, first_name=None)]
        )

    def reader(self) -> BridgeStore:
        store = BridgeStore(self.messages_db, self.whatsapp_db)
        store.open()
        return store

    def close(self) -> None:
        self.writer.close()


def make_monitor(
    bridge: Bridge, url: str, config: ProjectsConfig | None = None, *, chunk: int = 100_000
) -> Monitor:
    monitor = Monitor(config or config_from(), bridge.reader(), ReviewStore(url), chunk=chunk)
    _OPEN.append(monitor)
    return monitor


def review_state(store: ReviewStore) -> dict[tuple[str, str], dict[str, object]]:
    """The reviews by (project, drop), without the columns that name when a row was written
    (or after how many writes: how batches fell decides the versions, not what they held)."""
    skip = {"id", "created_at", "updated_at", "version", "comment_version", "steps_version"}
    return {
        (r["project"], r["drop_number"]): {k: v for k, v in r.items() if k not in skip}
        for r in store.reviews()
    }


def submissions(store: ReviewStore) -> list[dict[str, Any]]:
    """The submissions log, in (chat, message, drop) order."""
    t = drop_submissions
    with store.begin() as conn:
        query = sa.select(t).order_by(t.c.chat_jid, t.c.message_id, t.c.drop_number)
        return [dict(r) for r in conn.execute(query).mappings()]


def review_id(store: ReviewStore, project: str, drop_number: str) -> uuid.UUID | None:
    t = qa_photo_reviews
    with store.begin() as conn:
        return conn.execute(
            sa.select(t.c.id).where(t.c.project == project, t.c.drop_number == drop_number)
        ).scalar()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll a condition another thread or process makes true (a deadline, not a fixed
    sleep)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)
