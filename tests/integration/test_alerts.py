"""Alerts on both backends: each condition fires once, stays quiet for its quiet period
(across a restart), reminds after it, and says when it clears; to a real SMTP server and
a webhook receiver."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.fakebridge import HELD, PROXY_BAD_GATEWAY, FakeBridge
from tests.helpers import Bridge
from tests.integration.report_receivers import Hook, Mailbox, hook, mailbox, smtp_env
from tests.integration.test_api_support import (
    LAWLEY_JID,
    PROJECTS_YAML,
    post,
    record,
    review,
)
from tests.mediabridge import add_media
from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.core.report_config import AlertRules, WebhookDestination
from wa_monitor.core.settings import settings_from
from wa_monitor.core.steps import STEP_COLUMNS
from wa_monitor.feedback import outbox
from wa_monitor.reports import alerts
from wa_monitor.reports.destinations import Outbound
from wa_monitor.store import alert_states as states
from wa_monitor.store import media_queue
from wa_monitor.store import report_deliveries as records
from wa_monitor.store.heartbeats import record_heartbeat
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web import queries as q
from wa_monitor.web.reports_api import scheduler_for

__all__ = ["hook", "mailbox"]  # fixtures
T0 = datetime(2026, 3, 4, 10, 0, tzinfo=UTC)  # a Wednesday, 12:00 SAST: working hours
ZONE = parse_config(PROJECTS_YAML, Path("p.yaml")).zone
RULES = AlertRules(to=(), quiet=timedelta(hours=1))

# Per condition: readings that fire it, and readings that clear it.
CASES = {
    "monitor-silent": (
        alerts.Readings(T0, heartbeat_age=1500, monitor="the monitor prod@vps"),
        alerts.Readings(T0, heartbeat_age=5, monitor="the monitor prod@vps"),
    ),
    "bridge-stale": (
        alerts.Readings(T0, heartbeat_age=5, bridge_age=4 * 3600),
        alerts.Readings(T0, heartbeat_age=5, bridge_age=60),
    ),
    "outbox-backlog": (
        alerts.Readings(T0, heartbeat_age=5, outbox=25),
        alerts.Readings(T0, heartbeat_age=5, outbox=0),
    ),
    "media-backlog": (
        alerts.Readings(T0, heartbeat_age=5, media=500),
        alerts.Readings(T0, heartbeat_age=5, media=3),
    ),
    "overdue-reviews": (
        alerts.Readings(T0, heartbeat_age=5, overdue=12),
        alerts.Readings(T0, heartbeat_age=5, overdue=0),
    ),
    "report-failed": (
        alerts.Readings(T0, heartbeat_age=5, failed_reports=("daily-sheet 2026-03-03 → x: 503",)),
        alerts.Readings(T0, heartbeat_age=5),
    ),
}


def finding(readings: alerts.Readings, name: str) -> alerts.Finding:
    (found,) = [f for f in alerts.judge(RULES, readings) if f.alert == name]
    return found


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_condition_fires_on_its_reading_and_clears(name: str) -> None:
    firing, clear = CASES[name]
    assert finding(firing, name).firing
    assert not finding(clear, name).firing


def test_the_details_say_what_was_read_and_the_limit() -> None:
    silent = finding(CASES["monitor-silent"][0], "monitor-silent")
    assert silent.detail == "the monitor prod@vps last beat 25 min ago (limit 10 min)"
    never = finding(alerts.Readings(T0, heartbeat_age=None), "monitor-silent")
    assert never.firing and "has ever written a heartbeat" in never.detail
    backlog = finding(CASES["outbox-backlog"][0], "outbox-backlog")
    assert backlog.detail == "25 feedback message(s) wait to be sent (limit 20)"


def test_the_bridge_is_not_judged_outside_working_hours_or_without_a_reading() -> None:
    evening = replace(CASES["bridge-stale"][0], working=False)
    assert [f for f in alerts.judge(RULES, evening) if f.alert == "bridge-stale"] == []
    unknown = alerts.Readings(T0, heartbeat_age=None)
    assert [f for f in alerts.judge(RULES, unknown) if f.alert == "bridge-stale"] == []
    reported = alerts.Readings(T0, heartbeat_age=5, bridge_reported_stale=True)
    assert finding(reported, "bridge-stale").firing


def test_a_condition_turned_off_is_not_judged() -> None:
    rules = replace(RULES, outbox_backlog=None, report_failed=False)
    names = {f.alert for f in alerts.judge(rules, CASES["outbox-backlog"][0])}
    assert "outbox-backlog" not in names and "report-failed" not in names


@pytest.mark.parametrize("name", sorted(CASES))
def test_an_alert_is_told_once_per_quiet_period_and_when_it_clears(
    store: ReviewStore, hook: Hook, name: str
) -> None:
    rules = replace(RULES, to=(WebhookDestination(hook.url),))
    firing, clear = (finding(r, name) for r in CASES[name])

    def tell(f: alerts.Finding, minutes: float) -> list[alerts.Told]:
        return alerts.tell(
            store,
            rules,
            [f],
            outbound=Outbound(),
            zone=ZONE,
            instance="prod",
            now=T0 + timedelta(minutes=minutes),
        )

    assert [(t.state, t.ok) for t in tell(firing, 0)] == [(states.FIRING, True)]
    assert tell(firing, 10) == []  # quiet
    assert tell(firing, 59) == []  # still quiet: a restart reads the same record
    assert [t.state for t in tell(firing, 61)] == [states.FIRING]  # a reminder
    assert [t.state for t in tell(clear, 70)] == [states.RESOLVED]
    assert tell(clear, 80) == []
    bodies = [json.loads(b) for b in hook.bodies()]
    assert [(b["alert"], b["state"]) for b in bodies] == [
        (name, "firing"),
        (name, "firing"),
        (name, "resolved"),
    ]
    # The reminder keeps the moment it started firing.
    assert bodies[1]["since"] == bodies[0]["since"] == T0.isoformat()
    assert [h["x-wa-monitor-alert"] for h, _ in hook.posts] == [name] * 3


def test_a_channel_that_fails_is_tried_again_after_a_while_and_not_lost(
    store: ReviewStore, hook: Hook
) -> None:
    rules = replace(RULES, to=(WebhookDestination(hook.url),))
    firing = finding(CASES["outbox-backlog"][0], "outbox-backlog")
    hook.status = 500

    def tell(minutes: float) -> list[alerts.Told]:
        at = T0 + timedelta(minutes=minutes)
        return alerts.tell(
            store, rules, [firing], outbound=Outbound(), zone=ZONE, instance="p", now=at
        )

    (failed,) = tell(0)
    assert not failed.ok and "answered HTTP 500" in failed.message
    assert tell(1) == []  # not hammered
    hook.status = 200
    assert [(t.state, t.ok) for t in tell(3)] == [(states.FIRING, True)]
    assert len(hook.posts) == 2
    (state,) = states.every(store)
    assert state.state == states.FIRING and state.last_error is None


def test_the_scheduler_mails_a_silent_monitor_with_business_times_then_its_recovery(
    store: ReviewStore, tmp_path: Path, mailbox: Mailbox
) -> None:
    yaml = (
        PROJECTS_YAML
        + """
alerts:
  to:
    - email: {to: [oncall@example.com], subject: WA Monitor needs you}
  quiet: 2h
  monitor_silent: 10m
"""
    )
    config = parse_config(yaml, tmp_path / "p.yaml")
    settings = settings_from(
        {"DATABASE_URL": store.url, "WA_MONITOR_INSTANCE": "prod@vps", **smtp_env(mailbox)}
    )
    beat = dict(started_at=T0 - timedelta(hours=1), counters={}, status={"healthy": True})
    record_heartbeat(store, "prod@vps", now=T0 - timedelta(minutes=20), **beat)  # type: ignore[arg-type]
    scheduler = scheduler_for(store, settings, lambda: config)

    first = scheduler.tick(T0)
    assert [(t.alert, t.state) for t in first.told] == [("monitor-silent", states.FIRING)]
    (mail,) = mailbox.messages
    assert mail["Subject"] == "WA Monitor needs you"
    text = mail.get_content()
    assert "the monitor prod@vps last beat 20 min ago (limit 10 min)" in text
    assert "2026-03-04 12:00 SAST" in text  # the business zone, with its abbreviation
    assert scheduler.tick(T0 + timedelta(minutes=30)).told == ()

    record_heartbeat(store, "prod@vps", now=T0 + timedelta(minutes=40), **beat)  # type: ignore[arg-type]
    back = scheduler_for(store, settings, lambda: config).tick(T0 + timedelta(minutes=41))
    assert [(t.alert, t.state) for t in back.told] == [("monitor-silent", states.RESOLVED)]
    assert "Resolved at 2026-03-04 12:41 SAST" in mailbox.messages[1].get_content()
    assert len(mailbox.messages) == 2


# -- each condition from the real state: read() gives the figure, judge() fires, and the
# -- finding clears once the cause is gone -------------------------------------------------

LIMITS = """
alerts:
  to: [{webhook: {url: "http://127.0.0.1:9/alerts"}}]
  monitor_silent: 10m
  bridge_stale: 1h
  outbox_backlog: 3
  media_backlog: 3
  overdue_reviews: 3
"""


def world(tmp_path: Path, yaml: str = PROJECTS_YAML) -> ProjectsConfig:
    return parse_config(yaml + LIMITS, tmp_path / "projects.yaml")


def read_and_judge(
    store: ReviewStore, config: ProjectsConfig, moment: datetime, **env: str
) -> tuple[alerts.Readings, dict[str, alerts.Finding]]:
    settings = settings_from({"DATABASE_URL": store.url, **env})
    readings = alerts.read(store, settings, config, now=moment)
    assert config.alerts is not None
    return readings, {f.alert: f for f in alerts.judge(config.alerts, readings)}


def beat(store: ReviewStore, at: datetime, **status: Any) -> None:
    record_heartbeat(
        store,
        "prod@vps",
        started_at=at - timedelta(hours=1),
        counters={},
        status={"healthy": True, **status},
        now=at,
    )


def test_a_heartbeat_older_than_the_limit_is_a_silent_monitor_until_it_beats_again(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = world(tmp_path)
    r, found = read_and_judge(store, config, T0)
    assert r.heartbeat_age is None and found["monitor-silent"].firing  # never beat

    beat(store, T0 - timedelta(minutes=20))
    r, found = read_and_judge(store, config, T0)
    assert (r.heartbeat_age, r.monitor) == (1200, "the monitor prod@vps")
    assert found["monitor-silent"].firing
    assert found["monitor-silent"].detail == (
        "the monitor prod@vps last beat 20 min ago (limit 10 min)"
    )

    beat(store, T0 - timedelta(seconds=30))
    r, found = read_and_judge(store, config, T0)
    assert r.heartbeat_age == 30 and not found["monitor-silent"].firing

    # A monitor that stopped cleanly wrote a fresh last beat: it is silent all the same.
    beat(store, T0 - timedelta(seconds=5), stopped_at=(T0 - timedelta(seconds=5)).isoformat())
    r, found = read_and_judge(store, config, T0)
    assert r.monitor_stopped and found["monitor-silent"].firing
    assert "stopped" in found["monitor-silent"].detail


def _age_store(bridge: Bridge, changed: datetime) -> None:
    """The bridge last committed at `changed`: its file (and journal) last changed then."""
    stamp = changed.timestamp()
    for path in bridge.messages_db.parent.glob("messages.db*"):
        os.utime(path, (stamp, stamp))


def test_a_bridge_store_unchanged_for_longer_than_the_limit_is_stale_until_it_commits(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = world(tmp_path)
    bridge = Bridge(tmp_path / "bridge")
    bridge.post(LAWLEY_JID, "DR1234567")
    env = {"WHATSAPP_DB_PATH": str(bridge.messages_db), "WORKING_HOURS": "always"}
    beat(store, datetime.now(UTC))
    _age_store(bridge, datetime.now(UTC) - timedelta(hours=4))

    r, found = read_and_judge(store, config, datetime.now(UTC), **env)
    assert r.bridge_age is not None and 4 * 3600 <= r.bridge_age < 4 * 3600 + 60
    assert found["bridge-stale"].firing
    assert found["bridge-stale"].detail.startswith("messages.db last changed 4.0 h ago")

    bridge.post(LAWLEY_JID, "DR7654321")  # the bridge commits a message: the file changes
    r, found = read_and_judge(store, config, datetime.now(UTC), **env)
    assert r.bridge_age is not None and r.bridge_age < 60
    assert not found["bridge-stale"].firing


def test_a_stale_bridge_store_is_judged_in_working_hours_only(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = world(tmp_path)
    bridge = Bridge(tmp_path / "bridge")
    bridge.post(LAWLEY_JID, "DR1234567")
    env = {"WHATSAPP_DB_PATH": str(bridge.messages_db), "WORKING_HOURS": "Mon-Fri 08:00-17:00"}
    beat(store, T0)
    _age_store(bridge, T0 - timedelta(hours=3))  # 09:00 SAST, nothing since

    r, found = read_and_judge(store, config, T0, **env)  # Wednesday 12:00 SAST
    assert r.working and r.bridge_age == 3 * 3600 and found["bridge-stale"].firing
    evening = T0 + timedelta(hours=8)  # 20:00 SAST: a quiet group is no sign of trouble
    beat(store, evening)
    r, found = read_and_judge(store, config, evening, **env)
    assert not r.working and "bridge-stale" not in found


def test_without_the_store_at_hand_the_monitors_word_on_the_bridge_is_judged(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = world(tmp_path)
    beat(store, T0 - timedelta(seconds=10), bridge={"stale": True, "readable": True})
    r, found = read_and_judge(store, config, T0)  # no WHATSAPP_DB_PATH on this host
    assert r.bridge_age is None and r.bridge_reported_stale
    assert found["bridge-stale"].firing
    assert found["bridge-stale"].detail == "the monitor prod@vps reports messages.db stale"

    beat(store, T0 - timedelta(seconds=5), bridge={"stale": False, "readable": True})
    r, found = read_and_judge(store, config, T0)
    assert not r.bridge_reported_stale and not found["bridge-stale"].firing


def _feedback(store: ReviewStore, drops: list[str]) -> list[int]:
    record(store, *(post(d, T0 - timedelta(hours=1)) for d in drops))
    ids = []
    for drop in drops:
        entry, created = outbox.enqueue(
            store,
            review_id=review(store, drop)["id"],
            drop_number=drop,
            project="Lawley",
            recipient=LAWLEY_JID,
            message=f"{drop}: the UPS serial photo is missing",
            request_key=f"key-{drop}",
            requested_by="reviewer",
        )
        assert created
        ids.append(entry.id)
    return ids


def test_feedback_not_known_to_have_reached_the_group_is_an_outbox_backlog(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = world(tmp_path)
    beat(store, T0)
    ids = _feedback(store, ["DR11000001", "DR11000002", "DR11000003"])
    r, found = read_and_judge(store, config, T0)
    assert r.outbox == 3 and found["outbox-backlog"].firing
    assert found["outbox-backlog"].detail.startswith("3 feedback message(s)")

    bridge = FakeBridge().start()
    try:
        sender = outbox.FeedbackSender(store, outbox.BridgeClient(bridge.url))
        # One message is on its way (the bridge has not answered yet): still not out.
        bridge.answer(HELD)
        on_its_way = threading.Thread(target=sender.deliver, args=(ids[0],))
        on_its_way.start()
        bridge.wait_for(requests=1, holding=1)
        r, found = read_and_judge(store, config, T0)
        assert r.outbox == 3 and found["outbox-backlog"].firing
        bridge.release()
        on_its_way.join()
        # A proxy in front of the bridge answers 502: whether they went is unknown, and
        # nothing sends them again without a person. They still pile up.
        bridge.answer(PROXY_BAD_GATEWAY, PROXY_BAD_GATEWAY)
        sender.deliver_due()
    finally:
        bridge.stop()
    statuses = [e.status for e in (outbox.get_entry(store, entry_id=i) for i in ids) if e]
    assert statuses == [outbox.SENT, outbox.UNCONFIRMED, outbox.UNCONFIRMED]
    r, found = read_and_judge(store, config, T0)
    assert r.outbox == 2 and not found["outbox-backlog"].firing  # two of three: under it

    _feedback(store, ["DR11000004"])
    r, found = read_and_judge(store, config, T0)
    assert r.outbox == 3 and found["outbox-backlog"].firing
    # A reviewer saw both unconfirmed ones in the group: they are sent, the backlog clears.
    for entry_id in ids[1:]:
        assert outbox.mark_sent(store, entry_id, "reviewer") is not None
    r, found = read_and_judge(store, config, T0)
    assert r.outbox == 1 and not found["outbox-backlog"].firing


def test_photos_waiting_to_be_fetched_are_a_media_backlog_until_the_worker_fetches_them(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = world(tmp_path)
    beat(store, T0)
    for i in range(3):
        add_media(store, bytes([i]), posted_at=T0 - timedelta(minutes=30 - i))
    add_media(store, b"chatter", drop=None, posted_at=T0 - timedelta(minutes=5))  # no drop
    r, found = read_and_judge(store, config, T0)
    assert r.media == 3 and found["media-backlog"].firing
    assert found["media-backlog"].detail == "3 photo(s) wait to be fetched (limit 3)"

    (fetched,) = media_queue.claim(store, 1, now=T0)
    analysis = media_queue.Analysis(sha256="ab" * 32, size=1, content_type="image/jpeg")
    assert media_queue.mark_available(store, fetched.id, analysis, now=T0)
    r, found = read_and_judge(store, config, T0)
    assert r.media == 2 and not found["media-backlog"].firing


OVERDUE_YAML = PROJECTS_YAML.replace(
    "    description: Lawley Activation 3 group\n",
    "    description: Lawley Activation 3 group\n"
    "    working_hours: Mon-Fri 08:00-17:00\n    review_target: 2h\n",
)


def test_reviews_waiting_past_the_target_in_working_hours_are_overdue_until_judged(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = world(tmp_path, OVERDUE_YAML)
    posted = datetime(2026, 3, 3, 14, 30, tzinfo=UTC)  # Tuesday 16:30 SAST
    drops = ["DR12000001", "DR12000002", "DR12000003"]
    record(
        store,
        *(post(d, posted) for d in drops),
        post("DR12000009", posted - timedelta(days=2), project="Mohadin"),  # no target
    )
    next_morning = datetime(2026, 3, 4, 7, 0, tzinfo=UTC)  # Wednesday 09:00 SAST
    beat(store, next_morning)
    # 16.5 hours on the wall clock, 1.5 working hours: within the target.
    r, found = read_and_judge(store, config, next_morning)
    assert r.overdue == 0 and not found["overdue-reviews"].firing

    later = next_morning + timedelta(hours=1)  # 2.5 working hours
    beat(store, later)
    r, found = read_and_judge(store, config, later)
    assert r.overdue == 3 and found["overdue-reviews"].firing
    assert found["overdue-reviews"].detail == "3 drop(s) wait past their target (limit 3)"

    steps = {s: True for s in STEP_COLUMNS}
    saved = q.update_review(
        store, review(store, drops[0])["id"], "reviewer", {**steps, "completed": True}
    )
    assert saved is not None
    r, found = read_and_judge(store, config, later)
    assert r.overdue == 2 and not found["overdue-reviews"].firing


def test_a_failed_report_delivery_fires_until_it_is_delivered_and_only_for_a_week(
    store: ReviewStore, tmp_path: Path
) -> None:
    config = world(tmp_path)
    beat(store, T0)
    where = "folder:/srv/reports"
    claim = records.claim(store, "daily-sheet", "2026-03-03", where, requested_by="scheduler:p")
    records.failed(store, claim, "Permission denied")
    r, found = read_and_judge(store, config, T0)
    assert r.failed_reports == (f"daily-sheet 2026-03-03 → {where}: Permission denied",)
    assert found["report-failed"].firing and "Permission denied" in found["report-failed"].detail
    # A week on, that period's failure is history, not an alert.
    week = T0 + timedelta(days=8)
    beat(store, week)
    r, found = read_and_judge(store, config, week)
    assert r.failed_reports == () and not found["report-failed"].firing

    again = records.claim(store, "daily-sheet", "2026-03-03", where, requested_by="scheduler:p")
    assert again.mine
    records.delivered(store, again, {"file": "daily-sheet-2026-03-03.xlsx"})
    r, found = read_and_judge(store, config, T0)
    assert r.failed_reports == () and not found["report-failed"].firing
    assert found["report-failed"].detail == "every recent report was delivered"
