"""Scheduled reports on both backends, against a real SMTP server and a webhook receiver:
each period delivered once per destination (across restarts and two schedulers), a
missed period caught up, a failing destination retried with backoff and alerted."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import subprocess
import sys
import threading
from collections.abc import Callable
from datetime import date, datetime, time, timedelta
from pathlib import Path
from time import monotonic, sleep

import openpyxl

from tests.integration.report_receivers import (
    SMTP_USER,
    Hook,
    Mailbox,
    hook,
    mailbox,
    smtp_env,
)
from tests.integration.test_api_support import PROJECTS_YAML, post, record, today_minutes_ago
from wa_monitor.core.config import ProjectsConfig, parse_config
from wa_monitor.core.settings import Settings, settings_from
from wa_monitor.reports import delivery
from wa_monitor.reports.destinations import SIGNATURE_HEADER, TIMESTAMP_HEADER
from wa_monitor.reports.schedule import Scheduler
from wa_monitor.store import report_deliveries as records
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web import queries as q
from wa_monitor.web.reports_api import scheduler_for

__all__ = ["hook", "mailbox"]  # fixtures
KEY = "webhook-signing-key-0123456789"


def reports_yaml(box: Mailbox, receiver: Hook, when: str = "daily 20:00", alerts: str = "") -> str:
    return f"""
reports:
  - name: daily-sheet
    what: daily-drops
    when: {when}
    to:
      - email: {{to: [ops@example.com, pm@example.com]}}
      - webhook: {{url: "{receiver.url}", secret: REPORTS_WEBHOOK_SECRET}}
{alerts}"""


def setup(
    store: ReviewStore, tmp_path: Path, box: Mailbox, receiver: Hook, **kw: str
) -> tuple[ProjectsConfig, Settings]:
    config = parse_config(PROJECTS_YAML + reports_yaml(box, receiver, **kw), tmp_path / "p.yaml")
    settings = settings_from(
        {"DATABASE_URL": store.url, "REPORTS_WEBHOOK_SECRET": KEY, **smtp_env(box)}
    )
    return config, settings


def scheduler(store: ReviewStore, settings: Settings, config: ProjectsConfig) -> Scheduler:
    return scheduler_for(store, settings, lambda: config)


def at(config: ProjectsConfig, day: date, hh: int, mm: int = 0) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=config.zone)


def seed(store: ReviewStore) -> None:
    record(
        store,
        post("DR11111111", today_minutes_ago(50)),
        post("DR22222222", today_minutes_ago(40)),
        post("DR44444444", today_minutes_ago(20), project="Mohadin"),
    )


def test_the_daily_report_is_mailed_and_posted_once_per_period_across_a_restart(
    store: ReviewStore, tmp_path: Path, mailbox: Mailbox, hook: Hook
) -> None:
    config, settings = setup(store, tmp_path, mailbox, hook)
    seed(store)
    day = q.today(config.zone)
    before = scheduler(store, settings, config).tick(at(config, day, 19, 59))
    # Before 20:00 the latest due period is yesterday's: delivered (empty) at once.
    assert {o.period for o in before.outcomes} == {(day - timedelta(days=1)).isoformat()}
    mailbox.clear()
    hook.posts.clear()

    first = scheduler(store, settings, config).tick(at(config, day, 20, 0))
    assert [o.status for o in first.outcomes] == [delivery.DELIVERED] * 2
    (mail,) = mailbox.messages
    assert mailbox.recipients == [["ops@example.com", "pm@example.com"]]
    assert mail["Subject"] == f"WA Monitor: daily-sheet {day}"
    assert SMTP_USER in mail["From"]
    assert "Lawley: 2 drop(s)" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    (attachment,) = mail.iter_attachments()
    assert attachment.get_filename() == f"daily-sheet-{day}.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(attachment.get_content())).active
    assert [r[1:] for r in sheet.iter_rows(min_row=2, values_only=True)] == [
        ("Lawley", 2),
        ("Mohadin", 1),
    ]
    ((headers, body),) = hook.posts
    assert body == attachment.get_content()
    signed = hmac.new(
        KEY.encode(), headers[TIMESTAMP_HEADER.lower()].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers[SIGNATURE_HEADER.lower()] == f"sha256={signed}"
    assert headers["x-wa-monitor-period"] == day.isoformat()

    # The process restarts: a new scheduler, the same database, later that evening.
    again = scheduler(store, settings, config)
    assert again.tick(at(config, day, 20, 1)).outcomes == ()
    assert again.tick(at(config, day, 23, 59)).outcomes == ()
    assert len(mailbox.messages) == 1 and len(hook.posts) == 1
    found = records.recent(store, report="daily-sheet")
    assert {(d.period, d.status, d.requested_by) for d in found if d.period == str(day)} == {
        (str(day), records.DELIVERED, f"scheduler:{settings.instance}")
    }


def test_two_schedulers_at_once_deliver_each_period_once(
    store: ReviewStore, tmp_path: Path, mailbox: Mailbox, hook: Hook
) -> None:
    config, settings = setup(store, tmp_path, mailbox, hook)
    day = q.today(config.zone)
    moment = at(config, day, 20, 5)
    start = threading.Barrier(4)
    outcomes: list[delivery.Outcome] = []

    def run() -> None:
        mine = scheduler(store, settings, config)
        start.wait()
        outcomes.extend(mine.tick(moment).outcomes)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [o.status for o in outcomes].count(delivery.DELIVERED) == 2  # email, webhook
    assert len(mailbox.messages) == 1 and len(hook.posts) == 1


def test_a_missed_run_is_delivered_when_the_service_comes_back_the_latest_only(
    store: ReviewStore, tmp_path: Path, mailbox: Mailbox, hook: Hook
) -> None:
    config, settings = setup(store, tmp_path, mailbox, hook)
    day = q.today(config.zone)
    # Down from before 20:00 two days ago until 08:00 today: only yesterday's goes.
    back = scheduler(store, settings, config).tick(at(config, day, 8, 0))
    yesterday = (day - timedelta(days=1)).isoformat()
    assert {(o.period, o.status) for o in back.outcomes} == {(yesterday, delivery.DELIVERED)}
    assert mailbox.subjects() == [f"WA Monitor: daily-sheet {yesterday}"]


def test_a_weekly_report_covers_the_seven_days_up_to_its_day(
    store: ReviewStore, tmp_path: Path, mailbox: Mailbox, hook: Hook
) -> None:
    config, settings = setup(store, tmp_path, mailbox, hook, when="weekly fri 17:00")
    seed(store)
    day = q.today(config.zone)
    friday = day + timedelta(days=(4 - day.weekday()) % 7)
    scheduler(store, settings, config).tick(at(config, friday, 17, 0))
    first = friday - timedelta(days=6)
    name = f"{first}_to_{friday}"
    assert mailbox.subjects() == [f"WA Monitor: daily-sheet {name}"]
    (attachment,) = mailbox.messages[0].iter_attachments()
    sheet = openpyxl.load_workbook(io.BytesIO(attachment.get_content())).active
    rows = list(sheet.iter_rows(min_row=2, values_only=True))
    assert (day.isoformat(), "Lawley", 2) in rows  # today is one of the seven days
    assert all(first.isoformat() <= r[0] <= friday.isoformat() for r in rows)
    # Saturday: still that week's period, already delivered.
    assert (
        scheduler(store, settings, config).tick(at(config, friday + timedelta(1), 9)).outcomes == ()
    )


def test_a_failing_webhook_is_retried_with_backoff_and_its_failure_alerted(
    store: ReviewStore, tmp_path: Path, mailbox: Mailbox, hook: Hook
) -> None:
    alerts = """alerts:
  to: [{email: oncall@example.com}]
  quiet: 1h
  monitor_silent: off
  bridge_stale: off
"""
    config, settings = setup(store, tmp_path, mailbox, hook, alerts=alerts)
    day = q.today(config.zone)
    hook.status = 503
    s = scheduler(store, settings, config)
    t0 = at(config, day, 20, 0)
    first = s.tick(t0)
    failed = [o for o in first.outcomes if not o.ok]
    assert len(failed) == 1 and "answered HTTP 503" in failed[0].message
    alert_mails = [m for m in mailbox.messages if "ALERT" in str(m["Subject"])]
    assert [str(m["Subject"]) for m in alert_mails] == [
        f"[WA Monitor {settings.instance}] ALERT: a report was not delivered"
    ]
    assert "answered HTTP 503" in alert_mails[0].get_content()
    assert mailbox.recipients[-1] == ["oncall@example.com"]

    assert s.tick(t0 + timedelta(seconds=30)).outcomes == ()  # within the first backoff
    assert len(hook.posts) == 1
    retried = s.tick(t0 + timedelta(seconds=61))
    assert [o.attempts for o in retried.outcomes] == [2] and len(hook.posts) == 2
    assert s.tick(t0 + timedelta(minutes=3)).outcomes == ()  # the second wait is 5 min
    assert len([m for m in mailbox.messages if "ALERT" in str(m["Subject"])]) == 1  # quiet

    hook.status = 200
    fixed = s.tick(t0 + timedelta(minutes=7))
    assert [(o.status, o.attempts) for o in fixed.outcomes] == [(delivery.DELIVERED, 3)]
    resolved = [m for m in mailbox.messages if "resolved" in str(m["Subject"])]
    assert len(resolved) == 1 and "every recent report was delivered" in resolved[0].get_content()
    # The mail report went once, at the first pass, for all of this.
    reports = [m for m in mailbox.messages if str(m["Subject"]).startswith("WA Monitor:")]
    assert len(reports) == 1


def test_report_send_by_hand_mails_a_day_and_the_scheduler_does_not_repeat_it(
    store: ReviewStore, tmp_path: Path, mailbox: Mailbox, hook: Hook
) -> None:
    from click.testing import CliRunner

    from wa_monitor.cli.main import main

    config, settings = setup(store, tmp_path, mailbox, hook)
    seed(store)
    day = q.today(config.zone)
    (tmp_path / "p.yaml").write_text(PROJECTS_YAML + reports_yaml(mailbox, hook))
    env_file = tmp_path / ".env"
    lines = {"DATABASE_URL": store.url, "REPORTS_WEBHOOK_SECRET": KEY, **smtp_env(mailbox)}
    env_file.write_text("".join(f"{k}={v}\n" for k, v in lines.items()))
    clear = {k: None for k in ("DATABASE_URL", "NEON_DATABASE_URL", "WA_MONITOR_CONFIG")}
    options = ["--env-file", str(env_file), "--config", str(tmp_path / "p.yaml")]
    result = CliRunner().invoke(
        main,
        [*options, "report", "send", "--date", str(day)],
        env=clear,
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    assert "→ email ops@example.com, pm@example.com: delivered" in result.stdout
    assert "→ webhook http://127.0.0.1" in result.stdout
    assert len(mailbox.messages) == 1 and len(hook.posts) == 1
    assert scheduler(store, settings, config).tick(at(config, day, 20, 30)).outcomes == ()
    assert len(mailbox.messages) == 1


def test_a_wrong_smtp_password_fails_with_what_to_fix(
    store: ReviewStore, tmp_path: Path, mailbox: Mailbox, hook: Hook
) -> None:
    config, _ = setup(store, tmp_path, mailbox, hook)
    settings = settings_from(
        {
            "DATABASE_URL": store.url,
            "REPORTS_WEBHOOK_SECRET": KEY,
            **smtp_env(mailbox),
            "SMTP_PASSWORD": "wrong",
        }
    )
    outcomes = (
        scheduler(store, settings, config).tick(at(config, q.today(config.zone), 20)).outcomes
    )
    (mail,) = [o for o in outcomes if o.destination.kind == "email"]
    assert mail.status == delivery.FAILED
    assert "refused SMTP_USER reports@example.com's password" in mail.message
    assert "wrong" not in mail.message and mailbox.messages == []


def test_the_dashboard_runs_the_scheduler_while_it_serves(
    store: ReviewStore, tmp_path: Path
) -> None:
    from tests.integration.test_api_support import TestClient, settings_for
    from wa_monitor.web.app import create_app

    out = tmp_path / "out"
    out.mkdir()
    yaml = (
        PROJECTS_YAML
        + f"""
reports:
  - {{name: daily-sheet, what: daily-drops, format: csv, when: daily 20:00,
     to: [{{folder: {out}}}]}}
"""
    )
    config = parse_config(yaml, tmp_path / "p.yaml")
    app = create_app(settings_for(store.url), config, store, run_sender=False, run_scheduler=True)
    when = config.reports[0].when
    assert when is not None

    def latest() -> str:
        return when.latest_due(datetime.now(config.zone), config.zone)[0].name

    before = latest()
    with TestClient(app):
        pass  # the scheduler's first pass runs at start; stopping waits for it
    periods = {before, latest()}  # one, unless 20:00 passed meanwhile
    assert [p.name for p in out.iterdir()] in [[f"daily-sheet-{n}.csv"] for n in periods]
    quiet = create_app(settings_for(store.url), config, store, run_sender=False)
    with TestClient(quiet):
        pass
    assert len(list(out.iterdir())) == 1  # tests' apps schedule nothing unless asked


# Runs the scheduler's pass as `serve` builds it, in a process of its own: ready when it
# has reached the database, it waits for the `go` file, then prints what it delivered.
ONE_PASS = """
import json, sys, time
from datetime import datetime
from pathlib import Path
from wa_monitor.core.config import parse_config
from wa_monitor.core.settings import settings_from
from wa_monitor.store.review_store import ReviewStore
from wa_monitor.web.reports_api import scheduler_for

projects, env, moment, ready, go = sys.argv[1:]
config = parse_config(Path(projects).read_text(), Path(projects))
settings = settings_from(json.loads(env))
store = ReviewStore(settings.database_url)
store.ping()
scheduler = scheduler_for(store, settings, lambda: config)
Path(ready).touch()
deadline = time.monotonic() + 60
while not Path(go).exists():
    assert time.monotonic() < deadline, "never told to go"
    time.sleep(0.002)
done = scheduler.tick(datetime.fromisoformat(moment))
print(json.dumps([[o.destination.key, o.status, o.message] for o in done.outcomes]))
"""


def until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = monotonic() + timeout
    while not condition():
        assert monotonic() < deadline, f"timed out waiting for {what}"
        sleep(0.01)


def test_two_scheduler_processes_deliver_a_due_period_once_to_a_folder_and_a_webhook(
    store: ReviewStore, tmp_path: Path, hook: Hook
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    projects = tmp_path / "projects.yaml"
    projects.write_text(
        PROJECTS_YAML
        + f"""
reports:
  - name: daily-sheet
    what: daily-drops
    format: csv
    when: daily 20:00
    to:
      - folder: {out}
      - webhook: {{url: "{hook.url}", secret: REPORTS_WEBHOOK_SECRET}}
"""
    )
    config = parse_config(projects.read_text(), projects)
    seed(store)
    day = q.today(config.zone)
    moment = at(config, day, 20, 5)
    env = json.dumps({"DATABASE_URL": store.url, "REPORTS_WEBHOOK_SECRET": KEY})
    go = tmp_path / "go"
    ready = [tmp_path / f"ready-{n}" for n in range(2)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                ONE_PASS,
                str(projects),
                env,
                moment.isoformat(),
                str(r),
                str(go),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ready
    ]
    try:
        until(lambda: all(r.exists() for r in ready), "both schedulers to reach the database")
        go.touch()  # both at once
        finished = [p.communicate(timeout=60) for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    assert [p.returncode for p in processes] == [0, 0], [err for _, err in finished]
    told = [tuple(o) for stdout, _ in finished for o in json.loads(stdout.splitlines()[-1])]
    folder, webhook = (d.key for d in config.reports[0].to)
    delivered = sorted(key for key, status, _ in told if status == delivery.DELIVERED)
    assert delivered == sorted([folder, webhook]), told
    # The other process found each one taken: delivered already, or being delivered.
    assert {status for _, status, _ in told} <= {
        delivery.DELIVERED,
        delivery.ALREADY,
        delivery.IN_PROGRESS,
    }, told

    assert [p.name for p in out.iterdir()] == [f"daily-sheet-{day}.csv"]
    assert len(hook.posts) == 1
    assert hook.posts[0][0]["x-wa-monitor-period"] == day.isoformat()
    for key in (folder, webhook):
        found = records.get(store, "daily-sheet", day.isoformat(), key)
        assert found is not None
        assert (found.status, found.attempts) == (records.DELIVERED, 1)
