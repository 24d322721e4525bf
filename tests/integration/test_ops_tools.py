"""Operations tools on real databases (SQLite and PostgreSQL): compare, replay, doctor,
status, the health endpoints and the dashboard's projects API."""

from __future__ import annotations

import json
import shutil
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from tests.helpers import LAWLEY, T0, VELO, Bridge, make_monitor, submissions
from tests.integration.test_api_support import TestClient, add_people
from wa_monitor.cli.main import main
from wa_monitor.core.config import load_config
from wa_monitor.core.settings import settings_from
from wa_monitor.monitor.projects_edit import audit_rows
from wa_monitor.ops.compare import compare, load_side
from wa_monitor.ops.doctor import run_doctor
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import drop_submissions, qa_photo_reviews

MAMELODI = "120363408849234743@g.us"
ELSEWHERE = "120363499999999999@g.us"


def yaml_for(*projects: tuple[str, str], pattern: str | None = None) -> str:
    text = "timezone: Africa/Johannesburg\n"
    if pattern:
        text += f"drop_pattern: '{pattern}'\n"
    text += "projects:\n"
    for name, jid in projects:
        text += f'  - name: {name}\n    group_jid: "{jid}"\n    description: "{name} group"\n'
    return text


@dataclass
class Env:
    """An environment directory: .env and config/projects.yaml, as in deploy/."""

    root: Path
    db_url: str

    @property
    def env_file(self) -> Path:
        return self.root / ".env"

    @property
    def config(self) -> Path:
        return self.root / "config" / "projects.yaml"

    def write(self, yaml: str, **extra: str) -> Env:
        self.config.parent.mkdir(parents=True, exist_ok=True)
        self.config.write_text(yaml)
        lines = {"DATABASE_URL": self.db_url, "WA_MONITOR_INSTANCE": f"{self.root.name}@test"}
        lines.update(extra)
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
        return self


def cli(*args: str) -> Result:
    # The environment must not leak into the settings: the env file says it all.
    env = {
        k: None
        for k in ("DATABASE_URL", "NEON_DATABASE_URL", "WHATSAPP_DB_PATH", "WA_MONITOR_CONFIG")
    }
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def bridge(tmp_path: Path) -> Bridge:
    b = Bridge(tmp_path / "store")
    b.writer.add_chat(LAWLEY, "Lawley Activation 3")
    b.writer.add_chat(VELO, "Velo Test")
    b.writer.add_chat(MAMELODI, "Mamelodi POP1 Activations")
    return b


@pytest.fixture
def other_db(tmp_path: Path, sqlite_template: Path) -> str:
    path = tmp_path / "dev-reviews.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite:///{path}"


# -- compare ------------------------------------------------------------------------------


def test_compare_shows_each_sides_drops_and_every_difference(
    db_url: str, other_db: str, bridge: Bridge, tmp_path: Path
) -> None:
    prod = Env(tmp_path / "prod", db_url).write(yaml_for(("Lawley", LAWLEY), ("Velo Test", VELO)))
    # Dev tries a pattern that also accepts 7-digit drop numbers (FIELD_NOTES 3.9).
    dev = Env(tmp_path / "dev", other_db).write(
        yaml_for(("Velo Test", VELO), pattern=r"\bDR\s?\d{7,8}\b")
    )
    bridge.post(VELO, "DR12345678 done", when=T0)
    bridge.post(VELO, "DR 1752169 done", when=T0 + timedelta(minutes=1))
    bridge.post(LAWLEY, "DR87654321", when=T0 + timedelta(minutes=2))
    make_monitor(bridge, dev.db_url, load_config(dev.config)).scan()
    bridge.post(VELO, "DR22222222 late", when=T0 + timedelta(minutes=3))  # dev stopped
    make_monitor(bridge, prod.db_url, load_config(prod.config)).scan()

    result = compare(load_side("prod", prod.env_file), load_side("dev", dev.env_file))
    assert result.only_a_groups == [LAWLEY] and result.only_b_groups == []
    verdicts = {line.key[2]: line.verdict for line in result.lines[VELO]}
    assert verdicts == {"DR12345678": "same", "DR1752169": "only_b", "DR22222222": "only_a"}
    assert not result.same_database

    out = cli("compare", "--a", str(prod.env_file), "--b", str(dev.env_file))
    assert out.exit_code == 1, out.output
    assert "DR1752169" in out.output and "only in dev" in out.output
    assert "DR22222222" in out.output and "only in prod" in out.output
    assert "DR12345678" in out.output  # every drop each side detected is listed
    only = cli("compare", "--a", str(prod.env_file), "--b", str(dev.env_file), "--only-differences")
    assert "DR12345678" not in only.output and "DR1752169" in only.output
    assert f"monitored only by prod: {LAWLEY}" in out.output
    assert "total: 1 identical, 1 only in prod, 1 only in dev, 0 differ" in out.output
    assert "***" in out.output or "sqlite" in out.output  # URLs shown masked

    data = json.loads(
        cli("compare", "--a", str(prod.env_file), "--b", str(dev.env_file), "--json").output
    )
    assert data["summary"] == {"same": 1, "only_a": 1, "only_b": 1, "differs": 0}

    since = (T0 + timedelta(minutes=1, seconds=30)).isoformat()
    late = cli("compare", "--a", str(prod.env_file), "--b", str(dev.env_file), "--since", since)
    assert "total: 0 identical, 1 only in prod, 0 only in dev, 0 differ" in late.output


def test_compare_reports_a_different_kind_for_the_same_message(
    db_url: str, other_db: str, bridge: Bridge, tmp_path: Path
) -> None:
    prod = Env(tmp_path / "prod", db_url).write(yaml_for(("Velo Test", VELO)))
    dev = Env(tmp_path / "dev", other_db).write(yaml_for(("Velo Test", VELO)))
    bridge.post(VELO, "DR12345678", when=T0)
    make_monitor(bridge, prod.db_url, load_config(prod.config)).scan()
    prod_store, dev_store = ReviewStore(prod.db_url), ReviewStore(dev.db_url)
    rows = [dict(r) for r in submissions(prod_store)]
    prod_store.dispose()
    for r in rows:
        r.pop("id")
        r["kind"] = "resubmission"  # dev recorded it as a resubmission (older history)
    with dev_store.begin() as conn:
        conn.execute(sa.insert(drop_submissions), rows)
    dev_store.dispose()
    result = compare(load_side("prod", prod.env_file), load_side("dev", dev.env_file))
    (line,) = result.lines[VELO]
    assert line.verdict == "differs"
    assert line.differences == ["kind: new ≠ resubmission"]


# -- replay -------------------------------------------------------------------------------


def _counts(store: ReviewStore) -> tuple[int, int, list[object]]:
    with store.begin() as conn:
        reviews = conn.execute(sa.select(sa.func.count()).select_from(qa_photo_reviews)).scalar()
        logged = conn.execute(sa.select(sa.func.count()).select_from(drop_submissions)).scalar()
        stamps = list(conn.execute(sa.select(qa_photo_reviews.c.updated_at)).scalars())
    return int(reviews or 0), int(logged or 0), stamps


def test_replay_reports_what_the_current_code_would_record_and_writes_nothing(
    db_url: str, store: ReviewStore, bridge: Bridge, tmp_path: Path
) -> None:
    env = Env(tmp_path / "prod", db_url).write(
        yaml_for(("Lawley", LAWLEY), ("Velo Test", VELO)),
        WHATSAPP_DB_PATH=str(bridge.messages_db),
    )
    bridge.post(LAWLEY, "DR30000001 long ago", when=T0 - timedelta(days=2))
    bridge.post(LAWLEY, "DR10000001", when=T0)
    bridge.post(VELO, "DR20000001", when=T0 + timedelta(hours=1))
    make_monitor(bridge, db_url, load_config(env.config)).scan()
    bridge.post(LAWLEY, "DR10000001 again", when=T0 + timedelta(hours=2))
    bridge.post(VELO, "DR20000002", when=T0 + timedelta(hours=2))
    before = _counts(store)

    since = (T0 - timedelta(hours=1)).isoformat()
    base = ["--env-file", str(env.env_file), "--config", str(env.config), "replay"]
    out = cli(*base, "--since", since, "--dry-run")
    assert out.exit_code == 0, out.output
    assert "would record resubmission: DR10000001 in Lawley" in out.output
    assert "would record new: DR20000002 in Velo Test" in out.output
    assert "DR30000001" not in out.output  # before --since
    assert "recorded but not detected" not in out.output
    data = json.loads(cli(*base, "--since", since, "--dry-run", "--json").output)
    assert data["projects"]["Lawley"] == {
        "messages": 3, "detected": 2, "already": 1, "new": 0, "resubmission": 1, "not_detected": 0
    }  # fmt: skip
    assert data["projects"]["Velo Test"]["new"] == 1
    assert _counts(store) == before  # nothing written

    # A pattern change that would lose Lawley's drops shows up before it is deployed.
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml_for(("Lawley", LAWLEY), ("Velo Test", VELO), pattern=r"\bDR2\d{7}\b"))
    changed = cli(
        "--env-file", str(env.env_file), "--config", str(strict),
        "replay", "--since", since, "--dry-run", "--project", "Lawley",
    )  # fmt: skip
    assert "recorded but not detected now: DR10000001 in Lawley" in changed.output
    assert "Velo Test" not in changed.output
    refused = cli(*base, "--since", since)
    assert refused.exit_code == 2 and "--dry-run" in refused.output
    assert _counts(store) == before


# -- doctor -------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_doctor_runs_every_troubleshooting_check_with_fixes(
    db_url: str, store: ReviewStore, bridge: Bridge, tmp_path: Path
) -> None:
    bridge.post(LAWLEY, "hello", when=datetime.now(UTC))
    bridge.post(MAMELODI, "hello", when=datetime.now(UTC))
    env = Env(tmp_path / "prod", db_url).write(
        yaml_for(("Lawley", LAWLEY), ("Mamelodi", ELSEWHERE)),
        WHATSAPP_DB_PATH=str(bridge.messages_db),
        BRIDGE_URL=f"http://127.0.0.1:{closed_port()}/api",
        WORKING_HOURS="always",
    )
    report = run_doctor(env.config, env_file=env.env_file, environ={})
    checks = {c.name: c for c in report.checks}
    assert not report.healthy
    for name in ("settings", "environment variables", "projects file", "database", "schema",
                 "instance separation", "bridge store", "bridge activity", "group of Lawley",
                 "log file"):  # fmt: skip
        assert checks[name].status == "pass", checks[name]
    mamelodi = checks["group of Mamelodi"]
    assert mamelodi.status == "fail"
    assert f"{ELSEWHERE} is not in the bridge store" in mamelodi.detail
    assert f"closest groups: 'Mamelodi POP1 Activations' = {MAMELODI}" in mamelodi.fix
    assert checks["heartbeat"].status == "fail" and "systemctl" in checks["heartbeat"].fix
    assert checks["bridge process"].status == "warn"
    assert checks["photos"].status == "pass"
    assert checks["photos"].detail.startswith("0 pending, 0 available, 0 failed")

    # Fixed: the right JID, and a running monitor.
    env.write(
        yaml_for(("Lawley", LAWLEY), ("Mamelodi", MAMELODI)),
        WHATSAPP_DB_PATH=str(bridge.messages_db),
        BRIDGE_URL=f"http://127.0.0.1:{closed_port()}/api",
        MEDIA_DIR=str(tmp_path / "media"),
    )
    record_heartbeat(store, "prod@test", started_at=T0, counters={}, status={})
    out = cli("--env-file", str(env.env_file), "--config", str(env.config), "doctor")
    assert out.exit_code == 0, out.output
    assert "PASS  group of Mamelodi" in out.output
    assert "PASS  media store" in out.output
    assert "WARN  bridge process" in out.output and "fix:" in out.output
    assert "healthy: 0 failed, 1 warning(s)" in out.output


def test_doctor_finds_broken_settings_config_and_database(tmp_path: Path, bridge: Bridge) -> None:
    env = Env(tmp_path / "prod", "postgresql://nobody:pw@127.0.0.1:1/nowhere")
    env.write("projects:\n  - name: Lawley\n   group_jid: x\n")
    report = run_doctor(env.config, env_file=env.env_file, environ={}, probe_bridge_process=False)
    checks = {c.name: c for c in report.checks}
    assert checks["environment variables"].status == "fail"
    assert "WHATSAPP_DB_PATH" in checks["environment variables"].detail
    assert checks["projects file"].status == "fail"
    assert "YAML syntax error" in checks["projects file"].detail
    assert checks["database"].status == "fail" and "DATABASE_URL" in checks["database"].fix
    assert "pw" not in checks["database"].detail  # the password is masked
    assert checks["bridge store"].status == "fail"
    out = cli("--env-file", str(env.env_file), "doctor", "--skip-bridge-process")
    assert out.exit_code == 1 and "FAIL  projects file" in out.output


# -- status -------------------------------------------------------------------------------


def test_status_exits_non_zero_until_the_monitor_beats_and_the_bridge_is_readable(
    db_url: str, store: ReviewStore, bridge: Bridge, tmp_path: Path
) -> None:
    bridge.post(LAWLEY, "hello", when=datetime.now(UTC))
    env = Env(tmp_path / "prod", db_url).write(
        yaml_for(("Lawley", LAWLEY)), WHATSAPP_DB_PATH=str(bridge.messages_db)
    )
    args = ["--env-file", str(env.env_file), "--config", str(env.config), "status"]
    first = cli(*args)
    assert first.exit_code == 1
    assert "FAIL  heartbeat: no monitor has ever recorded a heartbeat" in first.output
    record_heartbeat(
        store,
        "prod@test",
        started_at=T0,
        counters={"scans": 3, "messages": 10, "new": {"Lawley": 2}, "errors": {}},
        status={"env": "prod"},
    )
    ok = cli(*args)
    assert ok.exit_code == 0, ok.output
    assert "PASS  heartbeat: monitor prod@test" in ok.output
    assert "since start: 3 scans, 10 messages, 2 new drops" in ok.output
    data = json.loads(cli(*args, "--json").output)
    assert data["status"] == "ok" and data["heartbeat"]["counters"]["scans"] == 3
    assert "PASS  photos: 0 pending, 0 available, 0 failed, 0 unavailable" in ok.output
    assert data["photos"]["pending"] == 0 and data["photos"]["oldest_pending_seconds"] is None
    # The photo backlog, and a worker that says why it does not fetch.
    from tests.mediabridge import add_media

    add_media(store, b"photo", posted_at=datetime.now(UTC) - timedelta(minutes=12))
    record_heartbeat(
        store,
        "prod@test",
        started_at=T0,
        counters={},
        status={"env": "prod", "media": {"fetching": False, "reason": "MEDIA_DIR is not set"}},
    )
    waiting = cli(*args)
    assert waiting.exit_code == 0, waiting.output  # photos warn, they never fail the monitor
    assert "WARN  photos: 1 pending (oldest posted 12 min ago), 0 available" in waiting.output
    assert "does not fetch them: MEDIA_DIR is not set" in waiting.output
    photos = json.loads(cli(*args, "--json").output)["photos"]
    assert photos["pending"] == 1 and 700 < photos["oldest_pending_seconds"] < 800
    record_heartbeat(
        store,
        "prod@test",
        started_at=T0,
        counters={},
        status={"env": "prod", "healthy": False, "last_error": "messages.db: disk I/O error"},
    )
    sick = cli(*args)
    assert sick.exit_code == 1
    assert "reports itself unhealthy: messages.db: disk I/O error" in sick.output
    bridge.close()
    bridge.messages_db.unlink()
    gone = cli(*args)
    assert gone.exit_code == 1 and "FAIL  bridge store" in gone.output


# -- the dashboard's endpoints ------------------------------------------------------------


@pytest.fixture
def client(store: ReviewStore, bridge: Bridge, tmp_path: Path) -> Iterator[TestClient]:
    import wa_monitor.web.projects
    from wa_monitor.web.app import create_app

    path = tmp_path / "config" / "projects.yaml"
    path.parent.mkdir()
    path.write_text("# the dashboard's projects\n" + yaml_for(("Lawley", LAWLEY)))
    settings = settings_from(
        {
            "DATABASE_URL": store.url,
            "SECRET_KEY": "test-secret-key-0123456789",
            "WHATSAPP_DB_PATH": str(bridge.messages_db),
            "WORKING_HOURS": "always",
        }
    )
    app = create_app(settings, load_config(path), store, run_sender=False)
    # The projects page's API; the dashboard includes it the same way.
    app.include_router(wa_monitor.web.projects.router)
    with TestClient(app) as c:
        yield c


def test_healthz_readyz_and_metrics(client: TestClient, store: ReviewStore, bridge: Bridge) -> None:
    bridge.post(LAWLEY, "hello", when=datetime.now(UTC))
    assert client.get("/healthz").json()["status"] == "ok"
    not_ready = client.get("/readyz")
    assert not_ready.status_code == 503
    failing = [c["name"] for c in not_ready.json()["checks"] if c["status"] == "fail"]
    assert failing == ["heartbeat"]
    record_heartbeat(
        store,
        "prod@vps",
        started_at=T0,
        counters={"messages": 12, "new": {"Lawley": 3}, "resubmitted": {}, "errors": {"bridge": 2}},
        status={
            "last_scan_at": datetime.now(UTC).isoformat(),
            "groups": [
                {"jid": LAWLEY, "project": "Lawley", "newest_at": datetime.now(UTC).isoformat()},
                {"jid": VELO, "project": "Velo Test", "newest_at": T0.isoformat(), "stale": True},
            ],
        },
    )
    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    warned = [c for c in ready.json()["checks"] if c["status"] == "warn"]
    assert [c["name"] for c in warned] == ["group Velo Test"]  # quiet, yet ready
    assert {c["name"] for c in ready.json()["checks"]} >= {
        "database", "schema", "heartbeat", "bridge store", "bridge activity"
    }  # fmt: skip
    text = client.get("/metrics").text
    assert "wa_monitor_database_up 1.0" in text
    assert 'wa_monitor_drops_total{kind="new",monitor="prod@vps",project="Lawley"} 3.0' in text
    assert 'wa_monitor_errors_total{kind="bridge",monitor="prod@vps"} 2.0' in text
    assert 'wa_monitor_messages_scanned_total{monitor="prod@vps"} 12.0' in text
    assert "wa_monitor_feedback_outbox_pending 0.0" in text
    assert 'wa_monitor_newest_message_age_seconds{group_jid="' in text
    bridge.close()
    bridge.messages_db.unlink()
    assert client.get("/readyz").status_code == 503


def test_admins_manage_projects_from_the_dashboard_audited_as_themselves(
    client: TestClient, store: ReviewStore, bridge: Bridge
) -> None:
    people = add_people(store)
    bridge.post(VELO, "hello")
    bridge.post(MAMELODI, "hello")
    listed = client.get("/api/wa-monitor-projects", headers=people.bearer("admin"))
    assert [p["name"] for p in listed.json()["data"]["projects"]] == ["Lawley"]
    assert (
        client.get("/api/wa-monitor-projects", headers=people.bearer("reviewer")).status_code == 403
    )
    added = client.post(
        "/api/wa-monitor-projects",
        json={"name": "Velo Test", "groupName": "velo test"},
        headers=people.bearer("admin"),
    )
    assert added.status_code == 200, added.text
    assert added.json()["data"]["audited"] is True
    bad = client.post(
        "/api/wa-monitor-projects",
        json={"name": "Mamelodi", "groupName": "Mamelodi POP"},
        headers=people.bearer("admin"),
    )
    assert bad.status_code == 422 and "Mamelodi POP1 Activations" in bad.json()["error"]["message"]
    off = client.post("/api/wa-monitor-projects/Lawley/disable", headers=people.bearer("admin"))
    assert off.status_code == 200
    missing = client.post("/api/wa-monitor-projects/Nope/disable", headers=people.bearer("admin"))
    assert missing.status_code == 404
    path = Path(client.app.state.config.path)  # type: ignore[attr-defined]
    text = path.read_text()
    assert text.startswith("# the dashboard's projects\n")
    config = load_config(path)
    assert [(p.name, p.enabled, p.group_jid) for p in config.projects] == [
        ("Lawley", False, LAWLEY), ("Velo Test", True, VELO)
    ]  # fmt: skip
    assert [r["actor"] for r in audit_rows(store, path)] == ["dashboard:admin"] * 2


# -- the projects commands ----------------------------------------------------------------


def test_projects_commands_edit_validate_and_audit(
    db_url: str, store: ReviewStore, bridge: Bridge, tmp_path: Path
) -> None:
    bridge.post(MAMELODI, "hello")
    env = Env(tmp_path / "prod", db_url).write(
        "# keep me\n" + yaml_for(("Lawley", LAWLEY)), WHATSAPP_DB_PATH=str(bridge.messages_db)
    )
    base = ["--env-file", str(env.env_file), "--config", str(env.config), "projects"]
    missing = cli(*base, "add", "--name", "Mamelodi", "--group-name", "Mamelodi POP2")
    assert missing.exit_code == 2
    assert f"closest: 'Mamelodi POP1 Activations' ({MAMELODI})" in missing.output
    both = cli(*base, "add", "--name", "X", "--group-jid", VELO, "--group-name", "Velo Test")
    assert both.exit_code == 2 and "exactly one of" in both.output
    added = cli(*base, "add", "--name", "Mamelodi", "--group-name", "mamelodi pop1 activations")
    assert added.exit_code == 0, added.output
    assert "recorded in the audit log" in added.output
    assert cli(*base, "disable", "Lawley").exit_code == 0
    listed = cli(*base, "list").output
    assert "Lawley" in listed and "Mamelodi" in listed and MAMELODI in listed
    assert env.config.read_text().startswith("# keep me\n")
    config = load_config(env.config)
    assert [(p.name, p.enabled) for p in config.projects] == [("Lawley", False), ("Mamelodi", True)]
    history = cli(*base, "history").output
    assert history.count("(cli)") == 2 and "+    enabled: false" in history
    assert [r["source"] for r in audit_rows(store, env.config)] == ["cli", "cli"]
