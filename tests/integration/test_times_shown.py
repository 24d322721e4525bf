"""Every time a person reads is in the business zone with its abbreviation, whatever the
host's zone: the CLI's tables, `status`, the text log (both review backends)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import LAWLEY, T0, Bridge
from tests.integration.test_ops_tools import Env, cli, yaml_for
from wa_monitor.monitor.projects_edit import record_audit
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import api_tokens, report_deliveries, users
from wa_monitor.store.users import add_user, create_token

# 2025-11-09 19:15:30 in Johannesburg, the projects file's zone; the host runs on UTC.
AT = T0.astimezone(UTC)
LOCAL = "2025-11-09 19:15"


@pytest.fixture(autouse=True)
def _host_on_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Env:
    return Env(tmp_path / "prod", db_url).write(yaml_for(("Lawley", LAWLEY)))


def run(env: Env, *args: str) -> str:
    result = cli("--env-file", str(env.env_file), "--config", str(env.config), *args)
    return result.output


def test_users_and_tokens_lists_show_the_business_zone(env: Env, store: ReviewStore) -> None:
    user = add_user(store, "sipho", "pw-sipho-123", "reviewer")
    token, _ = create_token(store, "sipho", "reporting")
    with store.begin() as conn:
        conn.execute(sa.update(users).where(users.c.id == user.id).values(last_login_at=AT))
        conn.execute(
            sa.update(api_tokens)
            .where(api_tokens.c.id == token.id)
            .values(created_at=AT, last_used_at=AT + timedelta(hours=1))
        )
    listed = run(env, "users", "list")
    assert re.search(rf"sipho .* {LOCAL} SAST", listed), listed
    tokens = run(env, "tokens", "list")
    assert f"{LOCAL} SAST" in tokens and "2025-11-09 20:15 SAST" in tokens, tokens
    assert "UTC" not in listed + tokens


def test_projects_history_report_list_and_status_show_the_business_zone(
    env: Env, store: ReviewStore
) -> None:
    record_audit(store, actor="thandi", source="cli", path=env.config, diff="+ x\n", now=AT)
    history = run(env, "projects", "history")
    assert f"{LOCAL}:30 SAST thandi (cli)" in history and "UTC" not in history, history

    with store.begin() as conn:
        conn.execute(
            sa.insert(report_deliveries).values(
                report="daily-sheet",
                period="2025-11-09",
                destination="folder:/srv/reports",
                status="delivered",
                attempts=1,
                created_at=AT,
                delivered_at=AT,
            )
        )
    reports = run(env, "report", "list")
    assert re.search(rf"daily-sheet .*2025-11-09 .*delivered .*{LOCAL} SAST", reports), reports

    record_heartbeat(store, "prod@test", started_at=AT, counters={}, status={}, now=AT)
    status = run(env, "status")
    assert f"last heartbeat: {LOCAL}:30 SAST" in status, status


def test_the_text_log_is_in_the_business_zone_and_json_stays_utc(
    db_url: str, tmp_path: Path
) -> None:
    bridge = Bridge(tmp_path / "store")
    bridge.writer.add_chat(LAWLEY, "Lawley Activation 3")
    logs = {}
    for number, kind in ((12345678, "text"), (12345679, "json")):
        bridge.post(LAWLEY, f"DR{number}", when=T0)  # each scan has a drop to log
        logs[kind] = tmp_path / f"{kind}.log"
        env = Env(tmp_path / kind, db_url).write(
            yaml_for(("Lawley", LAWLEY)),
            WHATSAPP_DB_PATH=str(bridge.messages_db),
            LOG_FILE=str(logs[kind]),
            LOG_FORMAT=kind,
        )
        scanned_at = datetime.now(UTC)
        assert "Scan summary" in run(env, "scan")
        if kind == "text":
            lines = logs[kind].read_text().splitlines()
            assert lines and all(" SAST - " in line for line in lines), lines
            stamp = datetime.strptime(lines[0].split(",")[0], "%Y-%m-%d %H:%M:%S")
            # Two hours ahead of UTC, though the host's zone is UTC.
            ahead = stamp - scanned_at.replace(tzinfo=None)
            assert abs(ahead - timedelta(hours=2)) < timedelta(minutes=1), lines[0]
    records = logs["json"].read_text().splitlines()
    assert records and all(re.search(r'"time": "[^"]+\+00:00"', r) for r in records), records
