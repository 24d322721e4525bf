"""`wa-monitor status`, `/readyz` and `doctor` report one readiness: for the same review
database, heartbeat and bridge store they give the same checks, in the same order, with
the same findings (each consumer adds only its own: /readyz the database writes, doctor
its troubleshooting checks, status and doctor the groups). A dashboard on a host
without the bridge store reports the monitor's view of it instead."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from tests.helpers import LAWLEY, Bridge
from tests.integration.test_api_support import TestClient, add_people
from wa_monitor.cli.main import main
from wa_monitor.core.config import load_config
from wa_monitor.core.settings import load_settings
from wa_monitor.ops.doctor import run_doctor
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore

READINESS = ("database", "schema", "heartbeat", "bridge store", "bridge activity")
INSTANCE = "prod@test"
Situation = Callable[[ReviewStore, Bridge], None]


def _beat(store: ReviewStore, *, age: float = 0, **status: Any) -> None:
    now = datetime.now(UTC) - timedelta(seconds=age)
    record_heartbeat(store, INSTANCE, started_at=now, counters={}, status=status, now=now)


def _gone(store: ReviewStore, bridge: Bridge) -> None:
    _beat(store)
    bridge.close()
    bridge.messages_db.unlink()


SITUATIONS: dict[str, Situation] = {
    "no monitor yet": lambda store, bridge: None,
    "a fresh heartbeat": lambda store, bridge: _beat(store),
    "a stale heartbeat": lambda store, bridge: _beat(store, age=3600),
    "a monitor that reports itself unhealthy": lambda store, bridge: _beat(
        store, healthy=False, last_error="messages.db: disk I/O error"
    ),
    "a stopped monitor": lambda store, bridge: _beat(store, stopped_at="2025-11-10T08:00:00"),
    "the bridge store gone": _gone,
}


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def _readiness(checks: list[dict[str, str]]) -> list[tuple[str, str, str, str]]:
    # Ages are measured at each call ("beat 0 s ago", then "1 s ago"): compare their shape.
    return [
        (c["name"], c["status"], re.sub(r"\d+(\.\d+)?", "N", c["detail"]), c["fix"])
        for c in checks
        if c["name"] in READINESS
    ]


@pytest.mark.parametrize("situation", list(SITUATIONS))
def test_status_readyz_and_doctor_report_the_same_readiness(
    situation: str, db_url: str, store: ReviewStore, tmp_path: Path
) -> None:
    bridge = Bridge(tmp_path / "store")
    bridge.writer.add_chat(LAWLEY, "Lawley Activation 3")
    bridge.post(LAWLEY, "hello", when=datetime.now(UTC))
    people = add_people(store, ("viewer",))
    config = tmp_path / "config" / "projects.yaml"
    config.parent.mkdir()
    config.write_text(
        f'timezone: Africa/Johannesburg\nprojects:\n  - name: Lawley\n    group_jid: "{LAWLEY}"\n'
        "    description: Lawley group\n"
    )
    env_file = tmp_path / ".env"
    env_file.write_text(
        f"DATABASE_URL={db_url}\nWHATSAPP_DB_PATH={bridge.messages_db}\n"
        f"WA_MONITOR_INSTANCE={INSTANCE}\nWORKING_HOURS=always\nSECRET_KEY=test-secret-key-0123\n"
        f"BRIDGE_URL=http://127.0.0.1:{_closed_port()}/api\n"
    )
    SITUATIONS[situation](store, bridge)

    unset = ("DATABASE_URL", "NEON_DATABASE_URL", "WHATSAPP_DB_PATH", "WA_MONITOR_CONFIG")
    result = CliRunner().invoke(
        main,
        ["--env-file", str(env_file), "--config", str(config), "status", "--json"],
        env=dict.fromkeys(unset),
        catch_exceptions=False,
    )
    status = json.loads(result.output)["checks"]

    from wa_monitor.web.app import create_app

    app = create_app(load_settings({}, env_file), load_config(config), store, run_sender=False)
    with TestClient(app) as client:
        answer = client.get("/readyz", headers=people.bearer("viewer"))
    readyz = answer.json()["checks"]

    doctor = [
        c.as_dict()
        for c in run_doctor(
            config, env_file=env_file, environ={}, probe_bridge_process=False
        ).checks
    ]

    expected = _readiness(status)
    assert [name for name, *_ in expected] == [
        name for name in READINESS if name in {c["name"] for c in status}
    ], status
    assert _readiness(readyz) == expected, (readyz, status)
    assert _readiness(doctor) == expected, (doctor, status)
    # Each verdict follows from the same checks.
    healthy = all(status != "fail" for _, status, *_ in expected)
    assert (result.exit_code == 0) == healthy, result.output
    assert (answer.status_code == 200) == healthy, readyz


@pytest.mark.parametrize(
    ("bridge", "expected"),
    [
        ({"readable": True, "stale": False}, ("bridge store", "pass")),
        ({"readable": False, "error": "disk I/O error"}, ("bridge store", "fail")),
        ({"readable": True, "stale": True}, ("bridge activity", "fail")),
    ],
)
def test_a_dashboard_without_the_bridge_store_takes_the_monitors_view_of_it(
    bridge: dict[str, Any], expected: tuple[str, str], store: ReviewStore
) -> None:
    from wa_monitor.core.settings import settings_from
    from wa_monitor.web.health import readiness

    groups = [
        {"jid": LAWLEY, "project": "Lawley", "newest_at": "2025-11-10T08:00:00", "stale": True}
    ]
    _beat(store, bridge=bridge, groups=groups)
    settings = settings_from({"DATABASE_URL": store.url, "SECRET_KEY": "test-secret-key-0123"})
    assert settings.whatsapp_db_path is None
    report = readiness(settings, store)
    found = [(c.name, c.status) for c in report.checks]
    assert found == [
        ("database", "pass"),
        ("schema", "pass"),
        ("database writes", "pass"),
        ("heartbeat", "pass"),
        expected,
        ("group Lawley", "warn"),  # quiet, as the monitor judged it: not a reason to be unready
    ]
    assert report.healthy == (expected[1] == "pass")


@pytest.mark.parametrize(
    ("inbox", "expected"),
    [
        ({"gateways": ["waha"], "stale": False, "readable": True}, ("webhook inbox", "pass")),
        ({"gateways": ["waha"], "stale": True, "readable": True}, ("webhook activity", "fail")),
        (
            {"gateways": ["evolution"], "readable": False, "error": "relation missing"},
            ("webhook inbox", "fail"),
        ),
    ],
)
def test_a_webhook_only_dashboard_is_judged_by_the_monitors_view_of_its_inbox(
    inbox: dict[str, Any], expected: tuple[str, str], store: ReviewStore
) -> None:
    # Every project on a webhook gateway: no bridge store anywhere, and none is asked for.
    from wa_monitor.core.settings import settings_from
    from wa_monitor.web.health import readiness

    _beat(store, bridge=None, inbox=inbox, gateways=inbox["gateways"], groups=[])
    settings = settings_from({"DATABASE_URL": store.url, "SECRET_KEY": "test-secret-key-0123"})
    report = readiness(settings, store)
    found = [(c.name, c.status) for c in report.checks]
    assert found == [
        ("database", "pass"),
        ("schema", "pass"),
        ("database writes", "pass"),
        ("heartbeat", "pass"),
        expected,
    ]
    assert report.healthy == (expected[1] == "pass")
