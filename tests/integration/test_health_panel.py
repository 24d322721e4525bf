"""The admins' health panel (/api/wa-monitor-health-panel and /wa-monitor/health) on both
backends: what an admin learns from it, who may see it, and that one refresh reads only
through indexes."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from tests.helpers import Bridge
from tests.integration.test_api_support import (
    LAWLEY_JID,
    MOHADIN_JID,
    PASSWORD,
    People,
    TestClient,
    add_people,
    minutes_ago,
    post,
    projects_config,
    record,
)
from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.store.schema import (
    alert_states,
    feedback_outbox,
    group_messages,
    report_deliveries,
)
from wa_monitor.store.users import create_token
from wa_monitor.web.app import create_app

URL = "/api/wa-monitor-health-panel"
PAGE = "/wa-monitor/health"
INSTANCE = "prod@vps1"
LOCAL = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d SAST$")
# The tables a refresh must never scan: they grow with every drop, message and feedback.
BIG_TABLES = ("qa_photo_reviews", "group_messages", "feedback_outbox")


def panel_settings(store: ReviewStore, **env: str) -> Settings:
    return settings_from(
        {
            "DATABASE_URL": store.url,
            "SECRET_KEY": "test-secret-key-0123456789",
            "BRIDGE_URL": "http://127.0.0.1:9/api",
            "WA_MONITOR_INSTANCE": INSTANCE,
            "WORKING_HOURS": "always",  # silence is judged whatever the hour the tests run
            "STALE_AFTER": "3600",
            "BRIDGE_STALE_AFTER": "900",
            "HEARTBEAT_STALE_AFTER": "120",
            **env,
        }
    )


def panel_client(store: ReviewStore, **env: str) -> TestClient:
    settings = panel_settings(store, **env)
    app = create_app(settings, projects_config(), store, run_sender=False, follow_seconds=0)
    return TestClient(app, follow_redirects=False)


@pytest.fixture
def people(store: ReviewStore) -> People:
    return add_people(store, ("viewer", "reviewer", "admin"))


@pytest.fixture
def client(store: ReviewStore, people: People) -> Iterator[TestClient]:
    with panel_client(store) as c:
        yield c


def heartbeat(
    store: ReviewStore,
    instance: str = INSTANCE,
    *,
    age: float = 5,
    groups: dict[str, float | None] | None = None,
    bridge_age: float = 60,
    counters: dict[str, Any] | None = None,
    **status: Any,
) -> None:
    """A heartbeat `age` seconds old; each group's newest message `groups[jid]` minutes old."""
    at = datetime.now(UTC) - timedelta(seconds=age)
    ages: dict[str, float | None] = {LAWLEY_JID: 3, MOHADIN_JID: 3} if groups is None else groups
    names = {LAWLEY_JID: "Lawley", MOHADIN_JID: "Mohadin"}
    record_heartbeat(
        store,
        instance,
        started_at=at - timedelta(hours=2),
        counters=counters or {},
        status={
            "env": instance.split("@")[0],
            "healthy": True,
            "last_scan_at": at.isoformat(),
            "last_error": "",
            "bridge": {
                "path": "/srv/secret/messages.db",
                "changed_at": (at - timedelta(seconds=bridge_age)).isoformat(),
                "stale": False,
                "readable": True,
                "error": "",
                "contacts_error": "",
            },
            "groups": [
                {
                    "jid": jid,
                    "project": names[jid],
                    "newest_at": None
                    if minutes is None
                    else (datetime.now(UTC) - timedelta(minutes=minutes)).isoformat(),
                    "stale": False,
                }
                for jid, minutes in ages.items()
            ],
            "media": {"fetching": True},
            **status,
        },
        now=at,
    )


def _panel(client: TestClient, people: People) -> dict[str, Any]:
    done = client.get(URL, headers=people.bearer("admin"))
    assert done.status_code == 200, done.text
    body: dict[str, Any] = done.json()
    assert body["success"] is True
    return body["data"]  # type: ignore[no-any-return]


def _group(data: dict[str, Any], project: str) -> dict[str, Any]:
    return next(g for g in data["groups"] if g["project"] == project)  # type: ignore[no-any-return]


def _messages(data: dict[str, Any], source: str | None = None) -> list[str]:
    return [w["message"] for w in data["warnings"] if source is None or w["source"] == source]


def test_a_working_installation_is_all_good_with_times_in_the_business_zone(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    heartbeat(store)
    record(
        store,
        post("DR11110001", minutes_ago(40)),
        post("DR11110002", minutes_ago(10)),
        post("DR22220001", minutes_ago(25), project="Mohadin"),
    )

    data = _panel(client, people)

    assert data["status"] == "ok", data["warnings"]
    assert data["warnings"] == []
    assert data["timezone"] == "Africa/Johannesburg" and data["zoneAbbr"] == "SAST"
    assert LOCAL.match(data["generatedLocal"])
    lawley = _group(data, "Lawley")
    assert lawley["stale"] is False and lawley["problem"] is None
    assert lawley["lastMessageFrom"] == "heartbeat"
    assert LOCAL.match(lawley["lastMessage"]["local"])
    assert 170 <= lawley["lastMessage"]["ageSeconds"] <= 400
    assert lawley["lastMessage"]["age"].endswith("min")
    assert lawley["lastDrop"]["dropNumber"] == "DR11110002"  # the newest, not the first
    assert 590 <= lawley["lastDrop"]["ageSeconds"] <= 900
    assert _group(data, "Mohadin")["lastDrop"]["dropNumber"] == "DR22220001"
    (monitor,) = data["monitors"]
    assert monitor["instance"] == INSTANCE and monitor["current"] is True
    assert monitor["status"] == "running" and monitor["pid"] and monitor["host"]
    assert LOCAL.match(monitor["lastBeat"]["local"]) and LOCAL.match(monitor["lastScan"]["local"])
    assert data["bridge"]["status"] == "fresh" and data["bridge"]["source"] == "heartbeat"
    assert data["feedback"] == {
        "pending": 0,
        "sending": 0,
        "failed": 0,
        "unconfirmed": 0,
        "entries": [],
    }
    assert data["media"]["pending"] == 0 and data["media"]["failed"] == 0
    assert data["media"]["fetching"] is True
    assert data["reports"] == [] and data["alerts"] == []
    assert "/srv/secret" not in client.get(URL, headers=people.bearer("admin")).text


def test_a_group_silent_in_working_hours_is_flagged_and_a_quiet_night_is_not(
    store: ReviewStore, people: People
) -> None:
    heartbeat(store, groups={LAWLEY_JID: 3, MOHADIN_JID: 180}, bridge_age=3 * 3600)
    record(store, post("DR22220001", minutes_ago(200), project="Mohadin"))

    with panel_client(store) as client:
        data = _panel(client, people)
    mohadin = _group(data, "Mohadin")
    assert mohadin["stale"] is True
    assert "no message for 3.0 h (limit 60 min during working hours)" in mohadin["problem"]
    assert mohadin["lastDrop"]["dropNumber"] == "DR22220001"
    assert _group(data, "Lawley")["stale"] is False
    assert _group(data, "Lawley")["lastDrop"] is None  # none in the last 30 days
    assert data["bridge"]["status"] == "stale"
    assert data["status"] == "fail"  # a stale bridge store fails readiness too
    assert data["warnings"][0]["level"] == "fail" and data["warnings"][0]["source"] == "bridge"
    assert any(m.startswith("Mohadin: no message for") for m in _messages(data, "group"))

    with panel_client(store, WORKING_HOURS="never") as client:
        night = _panel(client, people)
    assert _group(night, "Mohadin")["stale"] is False
    assert night["bridge"]["status"] == "quiet"
    assert "outside working hours" in night["bridge"]["detail"]
    assert night["status"] == "ok", night["warnings"]


def test_with_no_monitor_the_panel_fails_and_says_how_to_start_it(
    client: TestClient, people: People
) -> None:
    data = _panel(client, people)

    assert data["status"] == "fail"
    assert data["monitors"] == []
    first = data["warnings"][0]
    assert first["level"] == "fail" and first["source"] == "monitor"
    assert "No monitor has recorded a heartbeat" in first["message"]
    assert "systemctl start wa-monitor@prod" in first["message"]
    assert data["bridge"]["status"] == "unknown"
    lawley = _group(data, "Lawley")
    assert lawley["lastMessage"] is None and lawley["stale"] is True
    assert "no monitor reports on it" in lawley["problem"]


def test_each_monitor_is_listed_and_only_this_dashboards_one_fails_the_panel(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    heartbeat(store)
    heartbeat(store, "dev@vps1", age=3600)  # a dev monitor that once wrote here
    heartbeat(store, "old@vps0", age=30, stopped_at=minutes_ago(1).isoformat())

    data = _panel(client, people)
    monitors = {m["instance"]: m for m in data["monitors"]}
    assert monitors[INSTANCE]["status"] == "running" and monitors[INSTANCE]["current"]
    assert monitors["dev@vps1"]["status"] == "stale" and not monitors["dev@vps1"]["current"]
    assert "last beat 60 min ago (limit 2 min)" in monitors["dev@vps1"]["detail"]
    assert monitors["old@vps0"]["status"] == "stopped"
    assert LOCAL.match(monitors["old@vps0"]["detail"].removeprefix("stopped at "))
    assert data["status"] == "warn"
    assert {w["level"] for w in data["warnings"]} == {"warn"}

    heartbeat(store, age=600)  # this dashboard's monitor stops beating
    data = _panel(client, people)
    assert data["status"] == "fail"
    assert f"Monitor {INSTANCE}" in data["warnings"][0]["message"]
    assert "journalctl" in data["warnings"][0]["message"]


def test_what_the_monitor_counted_and_reported_becomes_warnings(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    heartbeat(
        store,
        counters={"rejected_reloads": 2, "errors": {"config": 2, "bridge": 1}},
        last_error="database is locked",
        media={"fetching": False, "reason": "MEDIA_DIR /srv/media is not writable"},
    )

    data = _panel(client, people)

    assert data["status"] == "warn"
    (rejected,) = _messages(data, "projects file")
    assert "rejected the projects file 2 time(s)" in rejected
    assert "wa-monitor check-config" in rejected
    assert any("errors since it started: bridge 1" in m for m in _messages(data, "monitor"))
    assert any("last error: database is locked" in m for m in _messages(data, "monitor"))
    (photos,) = _messages(data, "photos")
    assert "does not fetch them: MEDIA_DIR /srv/media is not writable" in photos
    assert data["media"]["fetching"] is False


def feedback_entry(
    store: ReviewStore, drop: str, status: str, error: str | None, ago: float
) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.insert(feedback_outbox).values(
                review_id=uuid.uuid4(),
                drop_number=drop,
                project="Lawley",
                recipient=LAWLEY_JID,
                message=f"{drop}: photos missing",
                request_key=uuid.uuid4().hex,
                status=status,
                attempts=7 if status == "failed" else 1,
                last_error=error,
                requested_by="reviewer",
                created_at=minutes_ago(ago),
            )
        )


def test_failed_and_unconfirmed_feedback_are_listed_with_their_errors(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    heartbeat(store)
    feedback_entry(store, "DR10000001", "sent", None, 50)
    feedback_entry(store, "DR10000002", "failed", "the bridge is not connected to WhatsApp", 40)
    feedback_entry(store, "DR10000003", "unconfirmed", "no answer from the bridge in 10 s", 30)
    feedback_entry(store, "DR10000004", "pending", None, 1)

    data = _panel(client, people)

    feedback = data["feedback"]
    assert (feedback["pending"], feedback["failed"], feedback["unconfirmed"]) == (1, 1, 1)
    entries = feedback["entries"]
    assert [e["dropNumber"] for e in entries] == ["DR10000003", "DR10000002"]  # newest first
    failed = entries[1]
    assert failed["status"] == "failed" and failed["attempts"] == 7
    assert failed["lastError"] == "the bridge is not connected to WhatsApp"
    assert failed["requestedBy"] == "reviewer" and LOCAL.match(failed["requestedAt"]["local"])
    (warning,) = _messages(data, "feedback")
    assert "1 failed, 1 unconfirmed" in warning
    assert data["status"] == "warn"


def photo_row(
    store: ReviewStore, status: str, drop: str | None, ago: float, error: str | None = None
) -> None:
    with store.begin() as conn:
        conn.execute(
            sa.insert(group_messages).values(
                chat_jid=LAWLEY_JID,
                message_id=uuid.uuid4().hex[:20],
                project="Lawley",
                sender="27821234567",
                posted_at=minutes_ago(ago),
                media_type="image",
                filename=f"{uuid.uuid4().hex[:6]}.jpg",
                drop_number=drop,
                status=status,
                attempts=5 if status == "failed" else 0,
                last_error=error,
            )
        )


def test_the_photo_backlog_shows_the_oldest_waiting_and_the_newest_failures(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    heartbeat(store)
    photo_row(store, "available", "DR10000001", 300)
    photo_row(store, "pending", "DR10000002", 150)  # waiting 2.5 h: the worker is not keeping up
    photo_row(store, "pending", "DR10000003", 5)
    photo_row(store, "pending", None, 400)  # chatter: never fetched, not a backlog
    photo_row(store, "failed", "DR10000004", 100, "the bridge answered 404: media expired")
    photo_row(store, "failed", "DR10000005", 20, "download timed out")

    data = _panel(client, people)

    media = data["media"]
    assert (media["pending"], media["unlinked"], media["failed"]) == (2, 1, 2)
    assert 145 * 60 <= media["oldestPending"]["ageSeconds"] <= 160 * 60
    assert [f["dropNumber"] for f in media["failures"]] == ["DR10000005", "DR10000004"]
    assert media["failures"][1]["lastError"] == "the bridge answered 404: media expired"
    warnings = _messages(data, "photos")
    assert any("2 photo(s) waiting, the oldest posted 2.5 h ago" in m for m in warnings)
    assert any("2 photo(s) could not be fetched; latest: download timed out" in m for m in warnings)


def test_a_failed_report_is_listed_without_its_destinations_address(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    heartbeat(store)
    with store.begin() as conn:
        for period, status in (("2026-03-01", "delivered"), ("2026-03-02", "failed")):
            conn.execute(
                sa.insert(report_deliveries).values(
                    report="daily-reviews",
                    period=period,
                    destination="folder:/srv/secret/reports",
                    status=status,
                    attempts=3,
                    last_error=None if status == "delivered" else "Permission denied",
                )
            )

    data = _panel(client, people)

    (report,) = data["reports"]
    assert report["period"] == "2026-03-02" and report["destination"] == "folder"
    assert report["lastError"] == "Permission denied" and report["attempts"] == 3
    (warning,) = _messages(data, "reports")
    assert "daily-reviews for 2026-03-02 to its folder failed after 3 attempt(s)" in warning
    assert "/srv/secret" not in client.get(URL, headers=people.bearer("admin")).text


def test_firing_alerts_are_listed_and_one_that_did_not_reach_its_channel_warns(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    heartbeat(store)
    with store.begin() as conn:
        for alert, channel, state, sent, error in (
            ("monitor-silent", "email:ops@example.com", "firing", True, None),
            ("outbox-backlog", "webhook:https://hooks.example/T0KEN", "firing", False, "HTTP 502"),
            ("report-failed", "email:ops@example.com", "resolved", True, None),
        ):
            conn.execute(
                sa.insert(alert_states).values(
                    alert=alert,
                    channel=channel,
                    state=state,
                    since=minutes_ago(30),
                    sent_at=minutes_ago(29) if sent else None,
                    attempt_at=minutes_ago(1),
                    message=f"{alert}: look",
                    last_error=error,
                )
            )

    data = _panel(client, people)

    alerts = {a["alert"]: a for a in data["alerts"]}
    assert set(alerts) == {"monitor-silent", "outbox-backlog"}  # not the resolved one
    assert alerts["monitor-silent"]["channel"] == "email"
    assert LOCAL.match(alerts["monitor-silent"]["sentAt"]["local"])
    assert alerts["outbox-backlog"]["sentAt"] is None
    assert alerts["outbox-backlog"]["lastError"] == "HTTP 502"
    (warning,) = _messages(data, "alerts")
    assert warning == "Alert outbox-backlog did not reach its webhook: HTTP 502"
    text = client.get(URL, headers=people.bearer("admin")).text
    assert "T0KEN" not in text and "ops@example.com" not in text


def test_a_host_with_the_bridge_store_reads_the_groups_from_it(
    store: ReviewStore, people: People, tmp_path: Any
) -> None:
    bridge = Bridge(tmp_path / "bridge")
    bridge.writer.add_chat(LAWLEY_JID, "Lawley Activation 3")
    bridge.post(LAWLEY_JID, "DR11110001 pole 4", when=minutes_ago(7))
    heartbeat(store, groups={})  # the monitor reports no group: the store is read here

    with panel_client(store, WHATSAPP_DB_PATH=str(bridge.messages_db)) as client:
        data = _panel(client, people)

    lawley = _group(data, "Lawley")
    assert lawley["lastMessageFrom"] == "bridge store"
    assert 400 <= lawley["lastMessage"]["ageSeconds"] <= 600
    assert lawley["stale"] is False
    mohadin = _group(data, "Mohadin")
    assert mohadin["lastMessage"] is None
    assert "no message in the bridge store" in mohadin["problem"]
    assert data["bridge"]["source"] == "bridge store"
    assert data["bridge"]["status"] == "fresh"  # the file was just written


# -- who may see it -----------------------------------------------------------------------


def _sign_in(client: TestClient, username: str) -> None:
    page = client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token, page.text[:500]
    done = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf": token.group(1)}
    )
    assert done.status_code == 303, done.text[:500]


@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_only_admins_get_the_json(
    client: TestClient, people: People, store: ReviewStore, role: str
) -> None:
    assert client.get(URL).status_code == 401
    refused = client.get(URL, headers=people.bearer(role))
    assert refused.status_code == 403
    assert refused.json()["success"] is False
    front_end = create_token(store, "admin", "next.js", front_end=True)[1]
    assert client.get(URL, headers={"Authorization": f"Bearer {front_end}"}).status_code == 403


@pytest.mark.parametrize("role", ["viewer", "reviewer"])
def test_viewers_and_reviewers_get_the_pages_403(
    client: TestClient, people: People, role: str
) -> None:
    assert client.get(PAGE).headers["location"] == "/login?next=/wa-monitor/health"
    _sign_in(client, role)
    page = client.get(PAGE)
    assert page.status_code == 403
    assert f"The health page is for admins; {role} is a {role}" in page.text
    assert "health.js" not in page.text
    assert f'href="{PAGE}"' not in client.get("/wa-monitor").text  # no link to it either


def test_admins_get_the_page_and_a_header_link_to_it(client: TestClient, people: People) -> None:
    _sign_in(client, "admin")
    page = client.get(PAGE)
    assert page.status_code == 200
    assert '<script src="/static/health.js' in page.text
    assert '<link rel="stylesheet" href="/static/health.css' in page.text
    assert re.search(r'href="/wa-monitor/health" aria-current="page">Health<', page.text)
    assert '"refreshMs": 15000' in page.text  # three of the dashboard's 5 s polls
    assert not re.search(r"\son[a-z]+=", page.text)  # no inline handler (CSP)
    assert 'href="/wa-monitor/health">Health<' in client.get("/wa-monitor").text
    for asset in ("/static/health.js", "/static/health.css"):
        assert client.get(asset).status_code == 200


# -- cheap enough to poll -----------------------------------------------------------------


def test_one_refresh_reads_the_big_tables_only_through_indexes(
    client: TestClient, people: People, store: ReviewStore
) -> None:
    heartbeat(store)
    record(store, post("DR11110001", minutes_ago(10)))
    feedback_entry(store, "DR10000002", "failed", "not connected", 40)
    photo_row(store, "failed", "DR10000004", 100, "expired")
    statements: list[tuple[str, Any]] = []

    def seen(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    sa.event.listen(store.engine, "before_cursor_execute", seen)
    try:
        _panel(client, people)
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", seen)

    reads = [(s, p) for s, p in statements if any(t in s for t in BIG_TABLES)]
    assert len(reads) >= 7  # the last drops (one per project), the outbox, the photo backlog
    for statement, parameters in reads:
        plan = _plan(store, statement, parameters)
        assert "Seq Scan" not in plan, (statement, plan)
        # SQLite: a SEARCH (a range of an index), never a SCAN of a table or a whole index.
        for line in plan.splitlines():
            if any(t in line for t in BIG_TABLES) and store.dialect == "sqlite":
                assert line.startswith("SEARCH"), (statement, plan)
        if "FROM qa_photo_reviews" in statement and store.dialect == "sqlite":
            # The newest drops first, from now back: not all of a project's drops, sorted.
            assert "ix_qa_photo_reviews_message_day" in plan and "TEMP B-TREE" not in plan


def _plan(store: ReviewStore, statement: str, parameters: Any) -> str:
    """The query plan of `statement`, with sequential scans made a last resort (a tiny
    test table would otherwise always be scanned): what a big table gets."""
    with store.engine.connect() as conn:
        if store.dialect == "postgresql":
            conn.exec_driver_sql("SET enable_seqscan = off")
            rows = conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).all()
            return "\n".join(str(r[0]) for r in rows)
        rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters).all()
        return "\n".join(str(r[-1]) for r in rows)
