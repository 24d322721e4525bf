"""Writing to a site's bridge store the way the bridge does, for the fault tests."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from wa_monitor.sim import MessageRow, StoreWriter

T0 = datetime(2025, 12, 1, 8, 0, tzinfo=UTC)


def message(
    writer: StoreWriter, jid: str, text: str, n: int = 0, sender: str = "27820000001"
) -> MessageRow:
    return MessageRow(
        uuid.uuid4().hex[:20].upper(),
        jid,
        sender,
        text,
        writer.timestamp(T0 + timedelta(seconds=n)),
        False,
        "",
        "",
        "",
        None,
        None,
        None,
        0,
    )


def post(messages_db: Path, whatsapp_db: Path, jid: str, *texts: str) -> None:
    """Store messages, one bridge transaction each."""
    with StoreWriter(messages_db, whatsapp_db) as writer:
        for n, text in enumerate(texts):
            writer.write(message(writer, jid, text, n))
