"""The seed's way, for comparison: what the architecture document's modules do.

Per group, read the new messages; per message, run the regex; per drop number,
`check_drop_exists` (one query), then `insert_drop` or `handle_resubmission`, and
commit: one transaction per drop. (The seed's `id > last_id` cursor lost messages;
this baseline uses a rowid cursor so that its output can be checked.)
"""

from __future__ import annotations

import re
import sqlite3
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa

from wa_monitor.core.config import ProjectsConfig
from wa_monitor.sources.bridge import parse_timestamp, sender_user
from wa_monitor.store.review_store import create_review_engine
from wa_monitor.store.schema import qa_photo_reviews


@dataclass
class BaselineResult:
    seconds: float
    messages: int
    drop_posts: int
    last_rowid: int


def run_baseline(
    messages_db: Path,
    url: str,
    config: ProjectsConfig,
    *,
    max_rowid: int | None = None,
) -> BaselineResult:
    """Scan like the seed (up to `max_rowid` when sampling); returns what it did."""
    engine = create_review_engine(url)
    bridge = sqlite3.connect(f"file:{messages_db}?mode=ro", uri=True)
    zone = config.zone
    regex = re.compile(r"\bDR\d{8}\b")
    t = qa_photo_reviews
    exists = sa.select(t.c.id).where(
        t.c.drop_number == sa.bindparam("d"), t.c.project == sa.bindparam("p")
    )
    resubmit = (
        sa.update(t)
        .where(t.c.id == sa.bindparam("_id"))
        .values(resubmitted=True, updated_at=sa.bindparam("now"))
    )
    high = max_rowid or int(bridge.execute("SELECT max(rowid) FROM messages").fetchone()[0])
    messages = drops = 0
    started = time.perf_counter()
    with engine.connect() as conn:
        for project in config.enabled:
            rows = bridge.execute(
                "SELECT rowid, id, sender, content, timestamp FROM messages "
                "WHERE chat_jid = ? AND rowid <= ? ORDER BY rowid",
                (project.group_jid, high),
            )
            for _rowid, _id, sender, content, stamp in rows:
                messages += 1
                for drop in regex.findall(content or ""):
                    drops += 1
                    when = parse_timestamp(stamp, zone) or datetime.now(UTC)
                    found = conn.execute(exists, {"d": drop, "p": project.name}).scalar()
                    now = datetime.now(UTC)
                    if found is None:
                        phone = sender_user(sender)
                        conn.execute(
                            sa.insert(t),
                            {
                                "id": uuid.uuid4(),
                                "drop_number": drop,
                                "project": project.name,
                                "user_name": phone,
                                "submitted_by": phone,
                                "whatsapp_message_date": when,
                                "last_message_date": when,
                                "review_date": when.astimezone(zone).date(),
                                "created_at": now,
                                "updated_at": now,
                            },
                        )
                    else:
                        conn.execute(resubmit, {"_id": found, "now": now})
                    conn.commit()
    seconds = time.perf_counter() - started
    bridge.close()
    engine.dispose()
    return BaselineResult(seconds, messages, drops, high)
