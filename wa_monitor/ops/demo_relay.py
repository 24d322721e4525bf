"""The demo's webhook gateway: the simulated phones' messages posted to `serve` as WAHA,
Evolution API or the Go bridge fork would post them.

The simulation writes a bridge-format store (the phones' messages); with a webhook
gateway the monitor never reads that store: `WebhookRelay` reads each new row of it, in
rowid order, turns it into the gateway's webhook body and posts it to the demo's own
`/webhooks/…` route until it is acknowledged, as the gateways retry. Senders addressed
by LID are sent with their phone number and push name, as the gateways know them.
"""

from __future__ import annotations

import base64
import logging
import sqlite3
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from wa_monitor.core.gateways import BRIDGE_WEBHOOK, EVOLUTION, WAHA
from wa_monitor.sources.bridge import parse_timestamp

log = logging.getLogger("wa_monitor")

WEBHOOK_PATHS = {WAHA: "waha", EVOLUTION: "evolution", BRIDGE_WEBHOOK: "bridge"}
MIMETYPES = {
    "image": "image/jpeg",
    "video": "video/mp4",
    "audio": "audio/ogg",
    "document": "application/pdf",
}
_BATCH = 200


@dataclass(frozen=True)
class Author:
    """A sender as the gateway names them: their phone JID and push name."""

    jid: str
    name: str | None


class WebhookRelay:
    """Posts the rows of a bridge-format store to a webhook route, one call per message.

    Args:
        messages_db, whatsapp_db: the simulated phones' store and its contacts.
        gateway: waha, evolution or bridge-webhook (the body's shape).
        url: the route (`http://127.0.0.1:8000/webhooks/waha`).
        headers: the gateway's credential (X-Api-Key, apikey, Authorization).
        media_base: where the gateway serves media files (WAHA's media.url).
        session: WAHA's session or Evolution's instance.
    """

    def __init__(
        self,
        messages_db: Path,
        whatsapp_db: Path,
        gateway: str,
        url: str,
        *,
        headers: Mapping[str, str],
        media_base: str,
        session: str,
    ) -> None:
        self.messages_db = messages_db
        self.whatsapp_db = whatsapp_db
        self.gateway = gateway
        self.url = url
        self.media_base = media_base.rstrip("/")
        self.session = session
        self._http = httpx.Client(headers=dict(headers), timeout=10.0)
        self.posted = 0
        self._after = 0

    def close(self) -> None:
        self._http.close()

    def run(self, stop: threading.Event, every: float = 0.2) -> None:
        """Post what is new until `stop`: the session's state first, then every message."""
        try:
            session = self.session_body()
            if session:
                self._post(stop, session)
            while not stop.is_set():
                if not self.relay_new(stop):
                    stop.wait(every)
        finally:
            self.close()

    def relay_new(self, stop: threading.Event) -> int:
        """Post the rows written since the last call; the number posted."""
        rows = self._rows()
        authors = self._authors() if rows else {}
        for row in rows:
            if stop.is_set():
                break
            self._post(stop, self.body(row, authors))
            self._after = int(row["rowid"])
            self.posted += 1
        return len(rows)

    def _rows(self) -> list[sqlite3.Row]:
        conn = sqlite3.connect(f"file:{self.messages_db}?mode=ro", uri=True, timeout=5.0)
        conn.row_factory = sqlite3.Row
        try:
            return conn.execute(
                "SELECT rowid, id, chat_jid, sender, content, timestamp, is_from_me, media_type, "
                "filename, file_sha256, file_length FROM messages WHERE rowid > ? ORDER BY rowid "
                "LIMIT ?",
                (self._after, _BATCH),
            ).fetchall()
        except sqlite3.OperationalError:
            return []  # not created yet
        finally:
            conn.close()

    def _authors(self) -> dict[str, Author]:
        """Each sender's phone JID (LIDs resolved) and push name, from the contacts store."""
        try:
            conn = sqlite3.connect(f"file:{self.whatsapp_db}?mode=ro", uri=True, timeout=5.0)
        except sqlite3.OperationalError:
            return {}
        try:
            names = {
                str(jid).split("@")[0]: push or full
                for jid, push, full in conn.execute(
                    "SELECT their_jid, push_name, full_name FROM whatsmeow_contacts"
                )
            }
            try:
                lids = dict(conn.execute("SELECT lid, pn FROM whatsmeow_lid_map").fetchall())
            except sqlite3.OperationalError:
                lids = {}
        except sqlite3.OperationalError:
            return {}
        finally:
            conn.close()
        found = {}
        for user, name in names.items():
            found[user] = Author(f"{user}@s.whatsapp.net", name)
        for lid, phone in lids.items():
            lid_user, phone_user = str(lid).split("@")[0], str(phone).split("@")[0]
            found[lid_user] = Author(f"{phone_user}@s.whatsapp.net", names.get(phone_user))
        return found

    def _post(self, stop: threading.Event, body: dict[str, Any]) -> None:
        """Post until acknowledged (2xx), waiting longer after each refusal, as gateways do."""
        wait = 0.5
        while not stop.is_set():
            try:
                answer = self._http.post(self.url, json=body)
                if 200 <= answer.status_code < 300:
                    return
                problem = f"HTTP {answer.status_code}: {answer.text[:200]}"
            except httpx.HTTPError as exc:
                problem = str(exc)
            log.warning(
                "⚠️ demo %s webhook not acknowledged (%s); again in %gs", self.gateway, problem, wait
            )
            stop.wait(wait)
            wait = min(wait * 2, 10.0)

    # -- the bodies ---------------------------------------------------------------------

    def session_body(self) -> dict[str, Any]:
        """The gateway's word that its session is connected (the Go fork sends none)."""
        if self.gateway == WAHA:
            return {
                "event": "session.status",
                "session": self.session,
                "payload": {"status": "WORKING"},
                "timestamp": _now_ms(),
            }
        if self.gateway == EVOLUTION:
            return {
                "event": "connection.update",
                "instance": self.session,
                "data": {"instance": self.session, "state": "open"},
                "date_time": _utc_text(),
            }
        return {}

    def body(self, row: sqlite3.Row, authors: Mapping[str, Author]) -> dict[str, Any]:
        """One stored message as the gateway's webhook body."""
        sent = parse_timestamp(row["timestamp"]) or datetime.now(UTC)
        user = str(row["sender"] or "").split("@")[0]
        author = authors.get(user) or Author(f"{user}@s.whatsapp.net", None)
        chat, message_id = str(row["chat_jid"]), str(row["id"])
        media = row["media_type"] or None
        text = row["content"]
        # The decrypted file's SHA-256, as WhatsApp's message carries it (base64 in JSON).
        sha256 = base64.b64encode(row["file_sha256"]).decode() if row["file_sha256"] else None
        if self.gateway == WAHA:
            payload: dict[str, Any] = {
                "id": f"false_{chat}_{message_id}_{author.jid}",
                "timestamp": int(sent.timestamp()),
                "from": chat,
                "participant": author.jid,
                "fromMe": bool(row["is_from_me"]),
                "body": text or "",
                "hasMedia": media is not None,
                "_data": {"notifyName": author.name} if author.name else {},
            }
            if media is not None:
                payload["media"] = {
                    "url": f"{self.media_base}/api/files/{chat}/{message_id}",
                    "mimetype": MIMETYPES.get(media, "application/octet-stream"),
                    "filename": row["filename"] or None,
                }
            return {"event": "message", "session": self.session, "payload": payload}
        if self.gateway == EVOLUTION:
            if media is None:
                message: dict[str, Any] = {"conversation": text or ""}
                kind = "conversation"
            else:
                kind = f"{media}Message"
                message = {
                    kind: {
                        "caption": text or "",
                        "mimetype": MIMETYPES.get(media, "application/octet-stream"),
                        "fileSha256": sha256,
                        "fileLength": row["file_length"],
                    }
                }
            return {
                "event": "messages.upsert",
                "instance": self.session,
                "data": {
                    "key": {
                        "remoteJid": chat,
                        "fromMe": bool(row["is_from_me"]),
                        "id": message_id,
                        "participant": author.jid,
                    },
                    "pushName": author.name or "",
                    "message": message,
                    "messageType": kind,
                    "messageTimestamp": int(sent.timestamp()),
                },
            }
        return {
            "id": message_id,
            "chat_jid": chat,
            "sender": author.jid.split("@")[0],
            "content": text or "",
            "timestamp": sent.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "is_from_me": bool(row["is_from_me"]),
            "media_type": media or "",
            "filename": row["filename"] or "",
            "url": "",
            "file_sha256": sha256,
            "file_length": row["file_length"],
            "sender_name": author.name or "",
        }


def _now_ms() -> int:
    return int(datetime.now(UTC).timestamp() * 1000)


def _utc_text() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")
