"""The front end's health panel, on both backends, read with a front-end token."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.integration.test_api_support import (
    LAWLEY_JID,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
    settings_for,
)
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import feedback_outbox
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app

URL = "/api/wa-monitor-health"
STATUSES = {"up", "down", "degraded", "stale"}
# Every check the panel reads, by section.
PANEL = {
    "vps": ("whatsapp_bridge", "drop_monitor_prod", "drop_monitor_dev", "log_activity"),
    "database": ("connection", "table_exists", "recent_data"),
    "api": ("get_drops", "get_daily_drops"),
}


@pytest.fixture
def panel(store: ReviewStore) -> Iterator[tuple[TestClient, dict[str, str]]]:
    app = create_app(settings_for(store.url), projects_config(), store, run_sender=False)
    add_people(store, ("viewer",))
    token = create_token(store, "viewer", "next.js", front_end=True)[1]
    with TestClient(app) as client:
        yield client, {"Authorization": f"Bearer {token}"}


def _beat(
    store: ReviewStore,
    *,
    age: float = 0,
    scanned: float = 0,
    instance: str = "prod@vps",
    **status: Any,
) -> None:
    at = datetime.now(UTC) - timedelta(seconds=age)
    newest = (at - timedelta(minutes=3)).isoformat()
    defaults: dict[str, Any] = {
        "env": instance.split("@")[0],
        "healthy": True,
        "projects": ["Lawley"],
        "last_scan_at": (at - timedelta(seconds=scanned)).isoformat(),
        "last_scan_seconds": 0.01,
        "last_error": None,
        "bridge": {"path": "/srv/secret/messages.db", "stale": False, "readable": True},
        "groups": [{"jid": LAWLEY_JID, "project": "Lawley", "newest_at": newest, "stale": False}],
    }
    record_heartbeat(
        store, instance, started_at=at, counters={}, status={**defaults, **status}, now=at
    )


def _health(client: TestClient, headers: dict[str, str]) -> dict[str, Any]:
    done = client.get(URL, headers=headers)
    assert done.status_code == 200, done.text  # the panel reads a 200 whatever the state
    body: dict[str, Any] = done.json()
    assert body["success"] is True
    data: dict[str, Any] = body["data"]
    for section, names in PANEL.items():
        for name in names:
            check = data["checks"][section][name]
            assert check["status"] in STATUSES, (section, name, check)
            assert isinstance(check["details"], dict)
            assert isinstance(check.get("latency_ms", 0), int)
            assert isinstance(check.get("error", ""), str)
    return data


def _statuses(data: dict[str, Any]) -> dict[str, str]:
    return {
        name: data["checks"][section][name]["status"]
        for section, names in PANEL.items()
        for name in names
    }


def test_a_working_monitor_is_all_systems_operational(
    panel: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = panel
    _beat(store)
    record(store, post("DR11111111", minutes_ago(10)))

    data = _health(client, headers)

    assert data["overall_status"] == "healthy", _statuses(data)
    assert "/srv/secret" not in client.get(URL, headers=headers).text  # no file paths
    assert set(_statuses(data).values()) == {"up"}
    bridge = data["checks"]["vps"]["whatsapp_bridge"]["details"]
    assert bridge["groups"]["Lawley"]["quiet"] is False
    assert 170 <= bridge["last_message_seconds_ago"] <= 600
    assert bridge["feedback_failed"] == 0 and bridge["feedback_pending"] == 0
    monitor = data["checks"]["vps"]["drop_monitor_prod"]["details"]
    assert monitor["instance"] == "prod@vps" and monitor["last_beat_seconds_ago"] < 60
    assert data["checks"]["vps"]["drop_monitor_dev"]["details"]["configured"] is False
    recent = data["checks"]["database"]["recent_data"]["details"]
    assert recent["drops_last_24h"] == 1 and recent["latest_drop"] is not None
    assert data["checks"]["database"]["connection"]["latency_ms"] >= 1
    assert data["checks"]["database"]["table_exists"]["details"]["writable"] is True


def test_no_monitor_is_system_down_and_says_what_to_do_without_paths(
    panel: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = panel

    done = client.get(URL, headers=headers)
    data = _health(client, headers)

    assert data["overall_status"] == "down"
    prod = data["checks"]["vps"]["drop_monitor_prod"]
    assert prod["status"] == "down" and "systemctl start" in prod["error"]
    assert data["checks"]["vps"]["log_activity"]["status"] == "down"
    assert data["checks"]["database"]["connection"]["status"] == "up"  # only the monitor
    database = store.url.rsplit("/", 1)[-1]
    assert database not in done.text and "127.0.0.1" not in done.text


def test_a_stopped_or_late_monitor_and_old_scans_show_where_it_hurts(
    panel: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = panel
    _beat(store, scanned=600)  # beats, but its last scan is 10 minutes old
    assert _statuses(_health(client, headers))["log_activity"] == "stale"

    _beat(store, age=3600)
    data = _health(client, headers)
    assert _statuses(data)["drop_monitor_prod"] == "down"
    assert _statuses(data)["log_activity"] == "down"
    assert data["overall_status"] == "down"


def test_quiet_groups_and_feedback_not_confirmed_degrade_the_bridge(
    panel: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = panel
    record(store, post("DR11111111", minutes_ago(10)))
    _beat(store)
    with store.begin() as conn:
        for n, status in enumerate(["failed", "unconfirmed", "pending", "sent"]):
            conn.execute(
                sa.insert(feedback_outbox).values(
                    review_id=uuid.uuid4(),
                    drop_number="DR11111111",
                    recipient=LAWLEY_JID,
                    message="DR11111111\nAll items complete! ✅",
                    request_key=f"key-{n}",
                    status=status,
                )
            )

    data = _health(client, headers)

    bridge = data["checks"]["vps"]["whatsapp_bridge"]
    assert bridge["status"] == "degraded"
    assert "1 failed, 1 unconfirmed" in bridge["error"]
    assert (bridge["details"]["feedback_pending"], bridge["details"]["feedback_failed"]) == (1, 1)
    assert data["overall_status"] == "degraded"

    quiet = [{"jid": LAWLEY_JID, "project": "Lawley", "newest_at": None, "stale": True}]
    with store.begin() as conn:
        conn.execute(sa.delete(feedback_outbox))
    _beat(store, groups=quiet)
    bridge = _health(client, headers)["checks"]["vps"]["whatsapp_bridge"]
    assert bridge["status"] == "degraded" and "Lawley" in bridge["error"]


def test_a_bridge_the_monitor_cannot_read_is_down(
    panel: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = panel
    _beat(store, healthy=False, bridge={"readable": False, "error": "disk I/O error"})
    data = _health(client, headers)
    assert _statuses(data)["whatsapp_bridge"] == "down"
    assert data["overall_status"] == "down"


def test_a_dev_monitor_reporting_here_is_shown(
    panel: tuple[TestClient, dict[str, str]], store: ReviewStore
) -> None:
    client, headers = panel
    _beat(store, age=5)
    _beat(store, age=3600, instance="dev@laptop")
    dev = _health(client, headers)["checks"]["vps"]["drop_monitor_dev"]
    assert dev["status"] == "down" and dev["details"]["instance"] == "dev@laptop"


def test_it_needs_a_sign_in_and_answers_only_get(
    panel: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = panel
    assert client.get(URL).status_code == 401
    refused = client.post(URL, json={}, headers=headers)
    assert refused.status_code == 405
    assert refused.json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    assert refused.headers["Allow"] == "GET, HEAD"
