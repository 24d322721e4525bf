"""`doctor`, `status` and the admins' health panel for the webhook gateways (WAHA, Evolution
API, the Go bridge fork) and `wa-monitor bridge`, on both backends: each problem found with
what to do about it, against fake gateways served on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from click.testing import CliRunner, Result

from tests.helpers import LAWLEY, VELO, Bridge
from wa_monitor.cli.main import main
from wa_monitor.monitor.health import Check
from wa_monitor.ops.doctor import run_doctor
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import gateway_inbox, gateway_sessions

WAHA_KEY = "waha-key-0123456789"
EVOLUTION_KEY = "evolution-key-0123456789"


# -- fake gateways --------------------------------------------------------------------------


@dataclass
class FakeGateway:
    """An HTTP server on 127.0.0.1:0 answering GETs from `routes` (path → status, JSON)
    when the request carries `header` = `key`; 401 otherwise, 404 for other paths."""

    routes: dict[str, tuple[int, Any]]
    header: str
    key: str
    seen: list[tuple[str, str]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeGateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                gateway.seen.append((self.path, self.headers.get(gateway.header) or ""))
                if self.headers.get(gateway.header) != gateway.key:
                    status, body = 401, {"message": "Unauthorized"}
                else:
                    status, body = gateway.routes.get(self.path, (404, {"message": "not found"}))
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.shutdown()
        self.server.server_close()


def waha(status: str = "WORKING", session: str = "default") -> FakeGateway:
    return FakeGateway(
        {f"/api/sessions/{session}": (200, {"name": session, "status": status})},
        "X-Api-Key",
        WAHA_KEY,
    )


def evolution(state: str = "open", groups_ignore: bool = False) -> FakeGateway:
    return FakeGateway(
        {
            "/instance/connectionState/field": (
                200,
                {"instance": {"instanceName": "field", "state": state}},
            ),
            "/settings/find/field": (200, {"groupsIgnore": groups_ignore, "rejectCall": False}),
        },
        "apikey",
        EVOLUTION_KEY,
    )


# -- the installation -----------------------------------------------------------------------


def projects_yaml(gateways: dict[str, str | None]) -> str:
    """Lawley and Velo Test, each with its `gateway:` (None: GATEWAY's)."""
    text = "timezone: Africa/Johannesburg\nprojects:\n"
    for name, jid in (("Lawley", LAWLEY), ("Velo Test", VELO)):
        text += f'  - name: {name}\n    group_jid: "{jid}"\n    description: "{name} group"\n'
        if gateways.get(name):
            text += f"    gateway: {gateways[name]}\n"
    return text


@dataclass
class Site:
    root: Path
    db_url: str

    @property
    def config(self) -> Path:
        return self.root / "projects.yaml"

    def environ(self, **extra: str) -> dict[str, str]:
        return {
            "DATABASE_URL": self.db_url,
            "WA_MONITOR_INSTANCE": "prod@test",
            "WA_MONITOR_CONFIG": str(self.config),
            "WORKING_HOURS": "always",
            "STALE_AFTER": "3600",
            "MEDIA_DIR": str(self.root / "media"),
            **extra,
        }

    def doctor(self, gateways: dict[str, str | None], **env: str) -> dict[str, Check]:
        self.config.write_text(projects_yaml(gateways))
        report = run_doctor(
            self.config,
            environ=self.environ(**env),
            probe_bridge_process=False,
            unit_dir=self.root / "no-units",
        )
        names = [c.name for c in report.checks]
        assert len(names) == len(set(names)), names
        return {c.name: c for c in report.checks}

    def cli(self, *args: str, **env: str) -> Result:
        environ: dict[str, str | None] = {
            k: None for k in os.environ if k.startswith(("WHATSAPP_", "WA_MONITOR_", "WAHA_"))
        }
        environ.update(self.environ(**env))
        return CliRunner().invoke(main, list(args), env=environ, catch_exceptions=False)


@pytest.fixture
def site(tmp_path: Path, db_url: str) -> Site:
    return Site(tmp_path, db_url)


def inbox_row(
    store: ReviewStore,
    gateway: str,
    chat: str,
    *,
    minutes: float,
    message_id: str | None = None,
    received_minutes: float | None = None,
) -> None:
    """A message of `chat` delivered by `gateway`, posted `minutes` ago."""
    now = datetime.now(UTC)
    with store.begin() as conn:
        seq = conn.execute(
            sa.select(sa.func.coalesce(sa.func.max(gateway_inbox.c.seq), 0))
        ).scalar()
        conn.execute(
            gateway_inbox.insert().values(
                seq=int(seq or 0) + 1,
                gateway=gateway,
                chat_jid=chat,
                message_id=message_id or f"M{int(seq or 0) + 1:06d}",
                sender="27821234567",
                content="hello",
                sent_at=(now - timedelta(minutes=minutes)).timestamp(),
                received_at=now
                - timedelta(minutes=minutes if received_minutes is None else received_minutes),
            )
        )


def session_row(store: ReviewStore, gateway: str, session: str, status: str) -> None:
    now = datetime.now(UTC)
    with store.begin() as conn:
        conn.execute(
            gateway_sessions.insert().values(
                gateway=gateway,
                session=session,
                status=status,
                changed_at=now - timedelta(minutes=7),
            )
        )


# -- doctor ---------------------------------------------------------------------------------


def test_doctor_on_waha_alone_needs_no_bridge_store_and_passes_when_all_is_well(
    site: Site, store: ReviewStore
) -> None:
    inbox_row(store, "waha", LAWLEY, minutes=3)
    inbox_row(store, "waha", VELO, minutes=5)
    session_row(store, "waha", "default", "WORKING")
    with waha() as fake:
        checks = site.doctor({}, GATEWAY="waha", WAHA_URL=fake.url, WAHA_API_KEY=WAHA_KEY)
    assert fake.seen == [("/api/sessions/default", WAHA_KEY)]
    for name in (
        "environment variables",
        "WAHA webhook credentials",
        "WAHA API",
        "WAHA session",
        "WAHA: last webhook",
        "WAHA: session default",
        "WAHA: group of Lawley",
        "WAHA: group of Velo Test",
        "source WAHA",
    ):
        assert checks[name].status == "pass", checks[name]
    assert "WHATSAPP_DB_PATH" not in checks["environment variables"].detail
    assert not any(n.startswith("bridge") for n in checks), sorted(checks)
    assert "newest message 3 min" in checks["source WAHA"].detail
    assert "WAHA: Lawley, Velo Test" in checks["gateways"].detail


def test_doctor_says_how_to_set_up_waha_when_nothing_arrives(
    site: Site, store: ReviewStore
) -> None:
    with waha("SCAN_QR_CODE") as fake:
        checks = site.doctor({}, GATEWAY="waha", WAHA_URL=fake.url)
    credentials = checks["WAHA webhook credentials"]
    assert credentials.status == "fail" and "503" in credentials.detail
    assert "WAHA_API_KEY" in credentials.fix and "WAHA_HMAC_KEY" in credentials.fix
    # Without the key WAHA refuses the doctor too.
    assert checks["WAHA API"].status == "fail" and "API key" in checks["WAHA API"].detail
    webhook = checks["WAHA: last webhook"]
    assert webhook.status == "fail" and webhook.detail == "no webhook call received yet"
    assert "/webhooks/waha" in webhook.fix
    assert "message, message.edited, message.revoked, session.status" in webhook.fix
    assert checks["WAHA: group of Lawley"].status == "warn"
    assert "wa-monitor groups" in checks["WAHA: group of Lawley"].fix


def test_doctor_reports_a_waha_session_that_is_not_working(site: Site, store: ReviewStore) -> None:
    inbox_row(store, "waha", LAWLEY, minutes=3)
    session_row(store, "waha", "default", "SCAN_QR_CODE")
    with waha("SCAN_QR_CODE") as fake:
        checks = site.doctor(
            {"Velo Test": "bridge-webhook"},
            GATEWAY="waha",
            WAHA_URL=fake.url,
            WAHA_API_KEY=WAHA_KEY,
            WEBHOOK_TOKEN="t" * 32,
        )
    session = checks["WAHA session"]
    assert session.status == "fail" and "SCAN_QR_CODE" in session.detail
    assert "QR code" in session.fix
    reported = checks["WAHA: session default"]
    assert reported.status == "warn" and "SCAN_QR_CODE since 7 min" in reported.detail
    # The Go fork's project: its token is set, nothing arrived yet.
    assert checks["bridge webhook token"].status == "pass"
    fork = checks["Go bridge fork's webhook: last webhook"]
    assert fork.status == "fail" and "/webhooks/bridge" in fork.fix


def test_doctor_on_a_missing_waha_session_names_the_setting(site: Site, store: ReviewStore) -> None:
    with waha(session="other") as fake:
        checks = site.doctor({}, GATEWAY="waha", WAHA_URL=fake.url, WAHA_API_KEY=WAHA_KEY)
    assert checks["WAHA API"].status == "fail"
    assert "no session 'default'" in checks["WAHA API"].detail
    assert "WAHA_SESSION" in checks["WAHA API"].fix


def test_doctor_on_waha_that_does_not_answer_says_so(site: Site, store: ReviewStore) -> None:
    with waha() as fake:
        url = fake.url
    checks = site.doctor({}, GATEWAY="waha", WAHA_URL=url, WAHA_API_KEY=WAHA_KEY)
    assert checks["WAHA API"].status == "fail" and "does not answer" in checks["WAHA API"].detail
    assert "WAHA_URL" in checks["WAHA API"].fix


def test_doctor_finds_evolutions_closed_instance_and_ignored_groups(
    site: Site, store: ReviewStore
) -> None:
    inbox_row(store, "evolution", VELO, minutes=2)
    session_row(store, "evolution", "field", "close")
    with evolution("close", groups_ignore=True) as fake:
        checks = site.doctor(
            {"Velo Test": "evolution"},
            GATEWAY="bridge",
            WHATSAPP_DB_PATH=str(site.root / "none" / "messages.db"),
            EVOLUTION_URL=fake.url,
            EVOLUTION_INSTANCE="field",
            EVOLUTION_API_KEY=EVOLUTION_KEY,
        )
    assert all(key == EVOLUTION_KEY for _, key in fake.seen) and fake.seen
    assert checks["Evolution API"].status == "pass"
    connection = checks["Evolution connection"]
    assert connection.status == "fail" and "'field' is close" in connection.detail
    assert "/instance/connect/field" in connection.fix
    ignored = checks["Evolution groupsIgnore"]
    assert ignored.status == "fail" and '"groupsIgnore": false' in ignored.fix
    assert checks["Evolution API: session field"].status == "warn"
    assert checks["Evolution API: last webhook"].status == "pass"
    assert checks["Evolution API: group of Velo Test"].status == "pass"
    # Lawley stays on the bridge, whose store is missing: still checked.
    assert checks["bridge store"].status == "fail"


def test_doctor_lists_evolutions_missing_settings_and_a_refused_key(
    site: Site, store: ReviewStore
) -> None:
    checks = site.doctor({}, GATEWAY="evolution", EVOLUTION_URL="http://127.0.0.1:9")
    settings = checks["Evolution API settings"]
    assert settings.status == "fail"
    assert "EVOLUTION_INSTANCE, EVOLUTION_API_KEY" in settings.detail and "503" in settings.detail
    with evolution() as fake:
        checks = site.doctor(
            {},
            GATEWAY="evolution",
            EVOLUTION_URL=fake.url,
            EVOLUTION_INSTANCE="field",
            EVOLUTION_API_KEY="wrong",
        )
    assert checks["Evolution API"].status == "fail" and "refused" in checks["Evolution API"].detail
    webhook = checks["Evolution API: last webhook"]
    assert "webhookByEvents off" in webhook.fix and "MESSAGES_UPSERT" in webhook.fix


def test_doctor_tells_a_group_arriving_from_another_gateway(site: Site, store: ReviewStore) -> None:
    inbox_row(store, "evolution", LAWLEY, minutes=2)
    with waha() as fake:
        checks = site.doctor({}, GATEWAY="waha", WAHA_URL=fake.url, WAHA_API_KEY=WAHA_KEY)
    lawley = checks["WAHA: group of Lawley"]
    assert lawley.status == "warn" and "arrive from evolution" in lawley.detail
    assert "`gateway: evolution`" in lawley.fix


def test_doctor_without_the_go_forks_token(site: Site, store: ReviewStore) -> None:
    checks = site.doctor({}, GATEWAY="bridge-webhook")
    token = checks["bridge webhook token"]
    assert token.status == "fail" and "WEBHOOK_TOKEN" in token.fix


def test_doctor_reads_the_python_bridges_connection(site: Site, store: ReviewStore) -> None:
    bridge = Bridge(site.root / "store")
    bridge.post(LAWLEY, "hello", when=datetime.now(UTC))
    status = site.root / "store" / "bridge-status.json"
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    env = {"WHATSAPP_DB_PATH": str(bridge.messages_db)}
    status.write_text(json.dumps({"state": "connected", "since": since, "pid": os.getpid()}))
    assert site.doctor({}, **env)["bridge connection"].status == "pass"
    status.write_text(
        json.dumps(
            {
                "state": "logged_out",
                "since": since,
                "pid": os.getpid(),
                "detail": "logged out: pair again with `wa-monitor bridge pair`",
            }
        )
    )
    logged_out = site.doctor({}, **env)["bridge connection"]
    assert logged_out.status == "fail" and "wa-monitor bridge pair" in logged_out.fix
    status.write_text(json.dumps({"state": "connected", "since": since, "pid": 2**22 + 1}))
    dead = site.doctor({}, **env)["bridge connection"]
    assert dead.status == "fail" and "is not running" in dead.detail
    status.unlink()  # another bridge (upstream's) writes no status: nothing to say
    assert "bridge connection" not in site.doctor({}, **env)


# -- status ---------------------------------------------------------------------------------


def test_status_has_a_line_per_source_and_needs_no_bridge_store_for_webhooks(
    site: Site, store: ReviewStore
) -> None:
    site.config.write_text(projects_yaml({"Velo Test": "evolution"}))
    record_heartbeat(store, "prod@test", started_at=datetime.now(UTC), counters={}, status={})
    inbox_row(store, "waha", LAWLEY, minutes=2)
    inbox_row(store, "evolution", VELO, minutes=90)
    session_row(store, "waha", "default", "WORKING")
    session_row(store, "evolution", "field", "close")
    result = site.cli("status", GATEWAY="waha", EVOLUTION_INSTANCE="field")
    lines = result.output.splitlines()
    assert result.exit_code == 0, result.output
    assert not any("bridge store" in line for line in lines), result.output
    assert any(
        line.startswith("PASS  source WAHA: 1 group(s) through the inbox; newest message 2 min")
        for line in lines
    ), result.output
    assert any(line.startswith("PASS  WAHA: session default: WORKING") for line in lines)
    assert any(line.startswith("WARN  Evolution API: session field: close") for line in lines)
    velo = next(line for line in lines if "group of Velo Test" in line)
    assert velo.startswith("WARN") and "newest message 90 min ago" in velo

    data = json.loads(site.cli("status", "--json", GATEWAY="waha").output)
    names = {c["name"]: c["status"] for c in data["checks"]}
    assert names["source Evolution API"] == "pass" and names["WAHA: group of Lawley"] == "pass"


# -- the admins' health panel ----------------------------------------------------------------

# The tables a refresh must never scan: they grow with every message, drop and feedback.
BIG_TABLES = ("gateway_inbox", "qa_photo_reviews", "group_messages", "feedback_outbox")


def panel(store: ReviewStore, gateways: dict[str, str | None], **env: str) -> dict[str, Any]:
    from tests.integration.test_api_support import TestClient, add_people
    from wa_monitor.core.config import parse_config
    from wa_monitor.core.settings import settings_from
    from wa_monitor.web.app import create_app

    people = add_people(store, ("admin",))
    settings = settings_from(
        {
            "DATABASE_URL": store.url,
            "SECRET_KEY": "test-secret-key-0123456789",
            "BRIDGE_URL": "http://127.0.0.1:9/api",
            "WA_MONITOR_INSTANCE": "prod@test",
            "WORKING_HOURS": "always",
            "STALE_AFTER": "3600",
            **env,
        }
    )
    config = parse_config(projects_yaml(gateways), Path("projects.yaml"))
    app = create_app(settings, config, store, run_sender=False, follow_seconds=0)
    with TestClient(app, follow_redirects=False) as client:
        done = client.get("/api/wa-monitor-health-panel", headers=people.bearer("admin"))
        page = client.get("/static/health.js")
    assert done.status_code == 200, done.text
    assert "renderSources" in page.text
    data: dict[str, Any] = done.json()["data"]
    return data


def test_the_panel_shows_each_source_with_its_groups_session_and_warnings(
    store: ReviewStore,
) -> None:
    record_heartbeat(store, "prod@test", started_at=datetime.now(UTC), counters={}, status={})
    inbox_row(store, "waha", LAWLEY, minutes=4)
    inbox_row(store, "evolution", VELO, minutes=300)
    session_row(store, "waha", "default", "WORKING")
    session_row(store, "evolution", "field", "close")
    data = panel(store, {"Velo Test": "evolution"}, GATEWAY="waha", EVOLUTION_INSTANCE="field")

    sources = {s["gateway"]: s for s in data["sources"]}
    assert set(sources) == {"waha", "evolution"}
    waha_source = sources["waha"]
    assert waha_source["status"] == "ok" and waha_source["warnings"] == []
    assert [g["project"] for g in waha_source["groups"]] == ["Lawley"]
    assert waha_source["lastMessage"]["age"] == "4 min"
    assert waha_source["sessions"][0] | {"changedAt": None} == {
        "session": "default",
        "status": "WORKING",
        "working": True,
        "changedAt": None,
    }
    evo = sources["evolution"]
    assert evo["status"] == "fail" and evo["label"] == "Evolution API"
    assert any("session field is close" in w for w in evo["warnings"])
    assert any("Velo Test: no message for 5.0 h" in w for w in evo["warnings"])
    # Nobody reads a bridge store: the bridge is not in use, not failing.
    assert data["bridge"]["status"] == "unused"
    groups = {g["project"]: g for g in data["groups"]}
    assert groups["Lawley"]["gateway"] == "waha" and groups["Lawley"]["lastMessageFrom"] == "inbox"
    assert groups["Velo Test"]["stale"] and "Evolution API" in groups["Velo Test"]["problem"]
    failing = [w["message"] for w in data["warnings"] if w["level"] == "fail"]
    assert any("Evolution API session field is close" in m for m in failing), failing
    assert data["status"] == "fail"


def test_the_panel_flags_a_webhook_group_that_never_posted(store: ReviewStore) -> None:
    record_heartbeat(store, "prod@test", started_at=datetime.now(UTC), counters={}, status={})
    inbox_row(store, "bridge-webhook", LAWLEY, minutes=1)
    data = panel(store, {}, GATEWAY="bridge-webhook")
    fork = data["sources"][0]
    assert fork["label"] == "Go bridge fork's webhook" and fork["status"] == "warn"
    assert fork["warnings"] == [
        "Velo Test: no message in the inbox from Go bridge fork's webhook: check the JID "
        "(`wa-monitor groups`) and that Go bridge fork's webhook's number is in the group"
    ]


def test_the_panel_shows_the_python_bridges_connection(store: ReviewStore, tmp_path: Path) -> None:
    bridge = Bridge(tmp_path / "store")
    bridge.post(LAWLEY, "hello", when=datetime.now(UTC))
    bridge.post(VELO, "hello", when=datetime.now(UTC))
    (tmp_path / "store" / "bridge-status.json").write_text(
        json.dumps({"state": "logged_out", "detail": "pair again", "pid": 1})
    )
    record_heartbeat(store, "prod@test", started_at=datetime.now(UTC), counters={}, status={})
    data = panel(store, {}, WHATSAPP_DB_PATH=str(bridge.messages_db))
    source = data["sources"][0]
    assert source["gateway"] == "bridge" and source["connection"] == "logged_out"
    assert source["status"] == "fail"
    assert "`wa-monitor bridge` is logged_out: pair again" in source["warnings"]


def test_one_refresh_reads_the_inbox_only_through_indexes(store: ReviewStore) -> None:
    record_heartbeat(store, "prod@test", started_at=datetime.now(UTC), counters={}, status={})
    for n in range(30):
        inbox_row(store, "waha", LAWLEY if n % 2 else VELO, minutes=n)
    session_row(store, "waha", "default", "WORKING")
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        panel(store, {}, GATEWAY="waha")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)
    inbox_reads = [(s, p) for s, p in statements if "FROM gateway_inbox" in s]
    assert len(inbox_reads) == 2  # one per group, each stopping at its newest row
    for statement, parameters in [(s, p) for s, p in statements if any(t in s for t in BIG_TABLES)]:
        plan = _plan(store, statement, parameters)
        assert "Seq Scan" not in plan, (statement, plan)
        if store.dialect == "sqlite":
            for line in plan.splitlines():
                if any(t in line for t in BIG_TABLES):
                    assert line.startswith("SEARCH"), (statement, plan)
        if "FROM gateway_inbox" in statement:
            assert "ix_gateway_inbox_chat_seq" in plan and "TEMP B-TREE" not in plan, plan
            assert "Sort" not in plan, plan


def _plan(store: ReviewStore, statement: str, parameters: Any) -> str:
    """The query plan of `statement`, sequential scans a last resort (as a big table's)."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
            return "\n".join(str(r[0]) for r in rows)
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return "\n".join(str(r[-1]) for r in rows)


# -- the front end's health panel ----------------------------------------------------------


def front_end_bridge(store: ReviewStore, **env: str) -> dict[str, Any]:
    """The whatsapp_bridge check of /api/wa-monitor-health, for a webhook-only install."""
    from tests.integration.test_api_support import TestClient, add_people
    from wa_monitor.core.config import parse_config
    from wa_monitor.core.errors import UniqueViolation
    from wa_monitor.core.settings import settings_from
    from wa_monitor.store.users import create_token
    from wa_monitor.web.app import create_app

    with contextlib.suppress(UniqueViolation):  # asked again in the same test
        add_people(store, ("viewer",))
    token = create_token(store, "viewer", "next.js", front_end=True)[1]
    settings = settings_from(
        {
            "DATABASE_URL": store.url,
            "SECRET_KEY": "test-secret-key-0123456789",
            "WA_MONITOR_INSTANCE": "prod@test",
            "WORKING_HOURS": "always",
            "STALE_AFTER": "3600",
            **env,
        }
    )
    config = parse_config(projects_yaml({}), Path("projects.yaml"))
    app = create_app(settings, config, store, run_sender=False, follow_seconds=0)
    with TestClient(app) as client:
        done = client.get("/api/wa-monitor-health", headers={"Authorization": f"Bearer {token}"})
    assert done.status_code == 200, done.text
    check: dict[str, Any] = done.json()["data"]["checks"]["vps"]["whatsapp_bridge"]
    return check


def test_the_front_ends_bridge_check_tells_of_the_gateways_when_no_project_reads_a_store(
    store: ReviewStore,
) -> None:
    record_heartbeat(store, "prod@test", started_at=datetime.now(UTC), counters={}, status={})
    nothing = front_end_bridge(store, GATEWAY="waha")
    assert nothing["status"] == "stale" and "wa-monitor doctor" in nothing["error"]

    inbox_row(store, "waha", LAWLEY, minutes=4)
    inbox_row(store, "waha", VELO, minutes=300)
    session_row(store, "waha", "default", "WORKING")
    quiet = front_end_bridge(store, GATEWAY="waha")
    assert quiet["status"] == "degraded" and quiet["error"] == "quiet in working hours: Velo Test"
    assert quiet["details"]["source"] == "the webhook gateways' inbox (waha)"
    assert quiet["details"]["sessions"] == {"waha/default": "WORKING"}
    assert quiet["details"]["groups"]["Lawley"]["quiet"] is False

    with store.begin() as conn:
        conn.execute(gateway_sessions.update().values(status="SCAN_QR_CODE"))
    down = front_end_bridge(store, GATEWAY="waha")
    assert down["status"] == "down" and "waha/default is SCAN_QR_CODE" in down["error"]


# -- the bridge's token ---------------------------------------------------------------------


def test_doctor_says_when_the_bridges_api_wants_a_token() -> None:
    """A bridge that refuses requests without its bearer token (`wa-monitor bridge`, the
    maintained fork), probed with an empty /send that no bridge sends."""
    from wa_monitor.ops.doctor import check_bridge_token

    posted: list[tuple[str, str, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            posted.append((self.path, self.headers.get("Authorization") or "", body))
            status = 400 if self.headers.get("Authorization") == "Bearer right" else 401
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/api"
    try:
        missing = check_bridge_token(url, None)
        wrong = check_bridge_token(url, "wrong")
        right = check_bridge_token(url, "right")
    finally:
        server.shutdown()
        server.server_close()
    assert missing is not None and missing.status == "fail" and "BRIDGE_TOKEN" in missing.fix
    assert wrong is not None and wrong.status == "fail" and "refuses BRIDGE_TOKEN" in wrong.detail
    assert right is not None and right.status == "pass"
    assert [(p, a, b) for p, a, b in posted] == [
        ("/api/send", "", b"{}"),
        ("/api/send", "Bearer wrong", b"{}"),
        ("/api/send", "Bearer right", b"{}"),
    ]
    assert check_bridge_token(url, "right") is None  # nothing answers: the process check says so


def test_doctor_looks_for_a_webhook_projects_group_in_the_inbox_not_the_bridge_store(
    site: Site, store: ReviewStore
) -> None:
    bridge = Bridge(site.root / "store")
    bridge.writer.add_chat(VELO, "Velo Test group")
    bridge.post(VELO, "hello", when=datetime.now(UTC))
    inbox_row(store, "waha", LAWLEY, minutes=2)
    with waha() as fake:
        checks = site.doctor(
            {"Lawley": "waha"},
            WHATSAPP_DB_PATH=str(bridge.messages_db),
            WAHA_URL=fake.url,
            WAHA_API_KEY=WAHA_KEY,
        )
    assert checks["group of Velo Test"].status == "pass"  # the bridge store's
    assert "group of Lawley" not in checks  # not looked for in the bridge store
    assert checks["WAHA: group of Lawley"].status == "pass"
    assert checks["bridge store"].status == "pass"
