"""The service reading every gateway at once: the bridge's messages.db and the webhook
inbox, on both review backends; projects moved between gateways; the inbox's latency."""

from __future__ import annotations

import json
import statistics
import threading
import time
from collections.abc import Iterator
from dataclasses import replace as replace_message
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
import sqlalchemy as sa

from tests.faults.support import figure
from tests.helpers import LAWLEY, T0, VELO, Bridge
from tests.integration.test_ops_service import (
    HEAD,
    drops,
    project,
    replace_text,
    running,
    settings_for,
    wait_for,
)
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.gateway_events import InboxDeletion, InboxMessage, SessionStatus
from wa_monitor.core.settings import settings_from
from wa_monitor.monitor.service import BRIDGE_FEED, INBOX_FEED, Service
from wa_monitor.store.heartbeats import read_heartbeats
from wa_monitor.store.inbox import InboxWriter, checked
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import drop_submissions, gateway_lids, qa_photo_reviews


def via(name: str, jid: str, gateway: str | None) -> str:
    text = project(name, jid)
    return text + (f"    gateway: {gateway}\n" if gateway else "")


def inbox_settings(db_url: str, **extra: str) -> dict[str, str]:
    env = {
        "DATABASE_URL": db_url,
        "SCAN_INTERVAL": "0.5",
        "HEARTBEAT_INTERVAL": "0.05",
        "WORKING_HOURS": "always",
        "WA_MONITOR_INSTANCE": "test@host",
        "PROD_ENV_FILE": "",
        "GATEWAY": "waha",
    }
    env.update(extra)
    return env


@pytest.fixture
def writer(store: ReviewStore) -> Iterator[InboxWriter]:
    made = InboxWriter(store, durable=False)
    yield made
    made.close()


def message(
    text: str, message_id: str, *, chat: str = LAWLEY, gateway: str = "waha", at: float = 0.0
) -> InboxMessage:
    return InboxMessage(
        gateway=gateway,
        chat_jid=chat,
        message_id=message_id,
        sender="27821234567@c.us",
        sender_pn=None,
        sender_name="Thabo",
        content=text,
        sent_at=at or T0.timestamp(),
    )


def write(writer: InboxWriter, *events: InboxMessage | InboxDeletion | SessionStatus) -> None:
    writer.write(checked(list(events)), timeout=10)


def logged(store: ReviewStore, drop: str) -> list[str]:
    t = drop_submissions
    with store.begin() as conn:
        rows = conn.execute(sa.select(t.c.message_id).where(t.c.drop_number == drop))
        return sorted(r[0] for r in rows)


def test_inbox_projects_run_without_a_bridge_and_show_in_the_heartbeat(
    db_url: str, store: ReviewStore, writer: InboxWriter, tmp_path: Path
) -> None:
    config = tmp_path / "projects.yaml"
    config.write_text(HEAD + via("Lawley", LAWLEY, None))  # GATEWAY=waha
    service = Service(settings_from(inbox_settings(db_url)), config, poll=0.01)
    service.open()
    assert set(service.monitors) == {INBOX_FEED}
    write(writer, SessionStatus("waha", "default", "WORKING", T0.timestamp()))
    with running(service):
        write(writer, message("DR10000001 done", "3EB0AAAA0001"))
        wait_for(lambda: ("Lawley", "DR10000001") in drops(store), what="the inbox's drop")
        wait_for(
            lambda: (service.status()["inbox"] or {}).get("received_at") is not None,
            what="the inbox's freshness",
        )
    beat = read_heartbeats(store)[0]
    status = beat["status"]
    assert status["bridge"] is None
    assert status["gateways"] == ["waha"]
    inbox = status["inbox"]
    assert inbox["readable"] is True and inbox["stale"] is False
    assert inbox["sessions"] == [
        {
            "gateway": "waha",
            "session": "default",
            "status": "WORKING",
            "changed_at": inbox["sessions"][0]["changed_at"],
        }
    ]
    assert [g["gateway"] for g in status["groups"]] == ["waha"]
    assert status["groups"][0]["newest_at"] is not None


def test_a_bridge_project_still_needs_whatsapp_db_path(db_url: str, tmp_path: Path) -> None:
    config = tmp_path / "projects.yaml"
    config.write_text(HEAD + via("Lawley", LAWLEY, None) + via("Velo Test", VELO, "bridge"))
    service = Service(settings_from(inbox_settings(db_url)), config)
    with pytest.raises(ConfigError, match="WHATSAPP_DB_PATH is not set"):
        service.open()


def test_bridge_and_inbox_projects_are_scanned_at_once(
    db_url: str, store: ReviewStore, writer: InboxWriter, tmp_path: Path
) -> None:
    bridge = Bridge(tmp_path / "store")
    bridge.post(LAWLEY, "DR10000001")
    config = tmp_path / "projects.yaml"
    config.write_text(HEAD + via("Lawley", LAWLEY, None) + via("Velo Test", VELO, "evolution"))
    service = Service(settings_for(db_url, bridge), config, poll=0.01)
    with running(service):
        write(writer, message("DR20000001", "3EB0BBBB0001", chat=VELO, gateway="evolution"))
        wait_for(
            lambda: {("Lawley", "DR10000001"), ("Velo Test", "DR20000001")} <= drops(store),
            what="both gateways' drops",
        )
        assert set(service.monitors) == {BRIDGE_FEED, INBOX_FEED}
        bridge.post(LAWLEY, "DR10000002")
        write(writer, message("DR20000002", "3EB0BBBB0002", chat=VELO, gateway="evolution"))
        wait_for(
            lambda: {("Lawley", "DR10000002"), ("Velo Test", "DR20000002")} <= drops(store),
            what="the next drops of both",
        )
    # Each group was read from its own source only.
    assert drops(store) == {
        ("Lawley", "DR10000001"),
        ("Lawley", "DR10000002"),
        ("Velo Test", "DR20000001"),
        ("Velo Test", "DR20000002"),
    }
    bridge.close()


def test_a_project_moved_between_gateways_loses_and_doubles_no_drop(
    db_url: str, store: ReviewStore, writer: InboxWriter, tmp_path: Path
) -> None:
    bridge = Bridge(tmp_path / "store")
    config = tmp_path / "projects.yaml"
    on_bridge = HEAD + via("Lawley", LAWLEY, "bridge")
    on_waha = HEAD + via("Lawley", LAWLEY, "waha")
    config.write_text(on_bridge)
    # The same WhatsApp message is seen by both gateways: one id.
    shared, _ = bridge.post(LAWLEY, "DR10000001 first")
    bridge.post(LAWLEY, "DR10000002")
    service = Service(settings_for(db_url, bridge), config, poll=0.01)
    with running(service):
        wait_for(lambda: len(drops(store)) == 2, what="the bridge's drops")
        # While the move is made, WAHA already receives the group (history included).
        write(
            writer,
            message("DR10000001 first", shared),
            message("DR10000003 while moving", "3EB0CCCC0003"),
        )
        replace_text(config, on_waha)
        wait_for(lambda: ("Lawley", "DR10000003") in drops(store), what="the inbox's drop")
        write(writer, message("DR10000004", "3EB0CCCC0004"))
        bridge.post(LAWLEY, "DR10000099 the bridge is no longer read")
        wait_for(lambda: ("Lawley", "DR10000004") in drops(store), what="the next drop")
        assert ("Lawley", "DR10000099") not in drops(store)
        # Back to the bridge: the inbox's cursor means nothing there; read from its start.
        replace_text(config, on_bridge)
        bridge.post(LAWLEY, "DR10000005")
        wait_for(lambda: ("Lawley", "DR10000005") in drops(store), what="back on the bridge")
    assert {d for _, d in drops(store)} == {
        "DR10000001",
        "DR10000002",
        "DR10000003",
        "DR10000004",
        "DR10000005",
        "DR10000099",  # posted while on WAHA: the bridge's rescan found it, once
    }
    assert logged(store, "DR10000001") == [shared]
    t = qa_photo_reviews
    with store.begin() as conn:
        resubmitted = conn.execute(sa.select(sa.func.count()).where(t.c.resubmitted)).scalar()
    assert resubmitted == 0
    bridge.close()


def test_a_webhook_deletion_flags_the_drop(
    db_url: str, store: ReviewStore, writer: InboxWriter, tmp_path: Path
) -> None:
    config = tmp_path / "projects.yaml"
    config.write_text(HEAD + via("Lawley", LAWLEY, None))
    service = Service(settings_from(inbox_settings(db_url)), config, poll=0.01)
    t = qa_photo_reviews

    def flagged() -> bool:
        with store.begin() as conn:
            value = conn.execute(sa.select(t.c.post_deleted_at)).scalar()
        return value is not None

    with running(service):
        write(writer, message("DR10000001", "3EB0DDDD0001"))
        wait_for(lambda: drops(store) == {("Lawley", "DR10000001")})
        deleted = InboxDeletion("waha", LAWLEY, "3EB0DDDD0001", (T0 + timedelta(1)).timestamp())
        write(writer, deleted)
        wait_for(flagged, what="the deletion's flag")


def test_a_webhook_message_becomes_a_review_quickly(
    db_url: str, store: ReviewStore, writer: InboxWriter, tmp_path: Path
) -> None:
    config = tmp_path / "projects.yaml"
    config.write_text(HEAD + via("Lawley", LAWLEY, None))
    service = Service(settings_from(inbox_settings(db_url, SCAN_INTERVAL="30")), config)
    latencies = []
    with running(service):
        wait_for(lambda: service.counters.scans >= 1, what="the first scan")
        for n in range(10):
            drop = f"DR1{n:07d}"
            started = time.monotonic()
            write(writer, message(drop, f"3EB0EEEE{n:04d}"))
            wait_for(lambda drop=drop: ("Lawley", drop) in drops(store), what=drop)  # type: ignore[misc]
            latencies.append(time.monotonic() - started)
    p50 = statistics.median(latencies)
    figure(
        f"webhook inbox → review ({store.dialect}): p50 {p50 * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} messages (poll 0.1 s)"
    )
    assert p50 <= 0.25, f"p50 {p50 * 1000:.0f} ms from the webhook's commit to the review"


class FakeWaha:
    """WAHA's LID lookup on 127.0.0.1: `known` LID → phone; `failing` answers 500."""

    def __init__(self) -> None:
        self.known: dict[str, str] = {}
        self.failing = True
        self.asked: list[tuple[str, str | None]] = []  # (path, X-Api-Key)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake.asked.append((self.path, self.headers.get("X-Api-Key")))
                lid = unquote(self.path.rsplit("/", 1)[-1])
                if fake.failing:
                    self._answer(500, {"error": "session not ready"})
                elif lid in fake.known:
                    self._answer(200, {"lid": lid, "pn": f"{fake.known[lid]}@c.us"})
                else:
                    self._answer(404, {"error": "not found"})

            def _answer(self, status: int, doc: dict[str, str]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

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
def waha() -> Iterator[FakeWaha]:
    fake = FakeWaha()
    yield fake
    fake.close()


def submitted_by(store: ReviewStore, drop: str) -> str:
    t = qa_photo_reviews
    with store.begin() as conn:
        query = sa.select(t.c.submitted_by).where(t.c.drop_number == drop)
        return str(conn.execute(query).scalar())


def test_a_lid_sender_is_looked_up_at_waha_outside_the_scan(
    db_url: str, store: ReviewStore, writer: InboxWriter, tmp_path: Path, waha: FakeWaha
) -> None:
    lid = "111222333444555@lid"
    waha.known[lid] = "27829876543"
    config = tmp_path / "projects.yaml"
    config.write_text(HEAD + via("Lawley", LAWLEY, None))
    env = inbox_settings(db_url, WAHA_URL=waha.url, WAHA_API_KEY="k-123", WAHA_SESSION="default")
    service = Service(settings_from(env), config, poll=0.01)

    def from_lid(text: str, message_id: str) -> InboxMessage:
        return replace_message(message(text, message_id), sender=lid)

    with running(service):
        # WAHA fails: the post is recorded at once, with the LID as its sender.
        write(writer, from_lid("DR10000001", "3EB0FFFF0001"))
        wait_for(lambda: ("Lawley", "DR10000001") in drops(store), what="the first drop")
        wait_for(lambda: len(waha.asked) >= 1, what="a lookup")
        assert submitted_by(store, "DR10000001") == "111222333444555"
        lookups = service.lid_lookups
        assert lookups is not None and lookups.status()["pending"] == 1
        # WAHA answers again: the lookup is retried, and later posts get the phone.
        waha.failing = False
        lookups.pending[lid] = (0.0, 0)  # due now, not after the back-off
        lookups.wake()
        wait_for(lambda: lookups.found == 1, what="the retried lookup")
        write(writer, from_lid("DR10000002", "3EB0FFFF0002"))
        wait_for(lambda: ("Lawley", "DR10000002") in drops(store), what="the second drop")
    assert submitted_by(store, "DR10000002") == "27829876543"
    assert submitted_by(store, "DR10000001") == "111222333444555"  # recorded as it was
    assert all(key == "k-123" for _, key in waha.asked)
    assert waha.asked[-1][0] == "/api/default/lids/111222333444555%40lid"
    with store.begin() as conn:
        rows = conn.execute(sa.select(gateway_lids.c.lid, gateway_lids.c.phone)).all()
    assert [tuple(r) for r in rows] == [(lid, "27829876543")]
