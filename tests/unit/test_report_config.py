"""The projects file's `reports:`: read into specs, every mistake said at its line."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from wa_monitor.core.config import load_config, parse_config
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.report_config import (
    EmailDestination,
    FolderDestination,
    Period,
    Schedule,
    WebhookDestination,
)
from wa_monitor.monitor.projects_edit import set_enabled

HEAD = """\
timezone: Africa/Johannesburg
projects:
  - name: Lawley
    group_jid: "120363418298130331@g.us"
    description: Lawley Activation 3
  - name: Mamelodi East
    group_jid: "120363421532174586@g.us"
    description: Mamelodi
"""
PATH = Path("/srv/wa/projects.yaml")


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(HEAD + text, PATH)
    return caught.value.problems


def test_reports_are_read_with_their_defaults() -> None:
    config = parse_config(
        HEAD
        + """\
reports:
  - name: daily-sheet
    what: daily-drops
    when: daily 20:00
    to:
      - folder: /srv/sharepoint/WA Monitor
      - folder: exports
  - name: mamelodi-reviews
    project: Mamelodi East
    what: reviews
    format: csv
    to: [{folder: /srv/reviews}]
""",
        PATH,
    )
    sheet, reviews = config.reports
    assert sheet.project is None  # all projects
    assert sheet.format == "xlsx"
    assert sheet.when == Schedule(time(20, 0))
    # A relative folder is read from the projects file's folder, not the working directory.
    assert sheet.to == (
        FolderDestination(Path("/srv/sharepoint/WA Monitor")),
        FolderDestination(Path("/srv/wa/exports")),
    )
    assert reviews.project == "Mamelodi East" and reviews.when is None
    assert config.report("mamelodi-reviews") is reviews
    assert sheet.file_name("2026-01-15") == "daily-sheet-2026-01-15.xlsx"
    assert reviews.file_name("2026-01-15") == "mamelodi-reviews-2026-01-15-Mamelodi-East.csv"


def test_a_file_without_reports_has_none() -> None:
    assert parse_config(HEAD, PATH).reports == ()


def test_every_mistake_is_said_at_its_line() -> None:
    found = problems(
        """\
reports:
  - name: sheet one
    project: Lawly
    what: drops
    format: pdf
    when: at eight
    colour: red
    to:
      - email: ops-at-example
      - folder: ""
      - folder: /a
        webhook: https://x
  - name: sheet-2
    what: reviews
  - name: sheet-2
    what: daily-drops
    to: []
"""
    )
    text = "\n".join(found)
    expected = [
        ("projects.yaml:10:", "`name: sheet one` must be 1 to 60 letters"),
        ("projects.yaml:11:", "`project: Lawly` is not a project of this file"),
        ("projects.yaml:12:", "`what: drops` is unknown; a report is one of `daily-drops`"),
        ("projects.yaml:13:", "`format: pdf` is not one of xlsx, csv, json"),
        ("projects.yaml:14:", "`when`: `at eight` is not a schedule; write `daily HH:MM`"),
        ("projects.yaml:15:", "unknown key `colour`; allowed: name, project, what, format"),
        ("projects.yaml:17:", "`email`: `ops-at-example` is not an e-mail address"),
        ("projects.yaml:18:", "`folder` must be a path"),
        ("projects.yaml:19:", "destination 3 must be one `kind: value`"),
        ("projects.yaml:21:", "report `sheet-2`: `to` is missing"),
        ("projects.yaml:23:", "duplicate name (also on line 21)"),
        ("projects.yaml:25:", "`to` must be a non-empty list"),
    ]
    for where, what in expected:
        assert any(p.startswith(f"{PATH}:{where.split(':')[1]}:") and what in p for p in found), (
            where,
            what,
            text,
        )
    assert "Lawley, Mamelodi East" in text  # the projects it could have named


def test_reports_must_be_a_list() -> None:
    (found,) = problems("reports:\n  name: daily-sheet\n")
    assert found.startswith(f"{PATH}:10:") and "`reports` must be a list of reports" in found


@pytest.mark.parametrize("text", ["daily 20:00", "Daily 7:05", "  daily   23:59 "])
def test_a_schedule_is_a_time_of_each_day(text: str) -> None:
    parsed = Schedule.parse(text)
    assert str(parsed) == f"daily {parsed.at:%H:%M}"


@pytest.mark.parametrize(
    "text", ["daily 24:00", "daily 20", "weekly 20:00", "weekly fry 17:00", "20:00", ""]
)
def test_a_schedule_that_is_not_one_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="daily HH:MM` or `weekly DAY HH:MM"):
        Schedule.parse(text)


def test_editing_projects_keeps_the_reports(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(
        HEAD + "reports:\n  - name: daily-sheet  # the client's sheet\n"
        "    what: daily-drops\n    to: [{folder: out}]\n"
    )
    set_enabled(path, "Lawley", False, actor="test")
    config = load_config(path)
    assert not config.by_name("Lawley").enabled  # type: ignore[union-attr]
    assert [r.name for r in config.reports] == ["daily-sheet"]
    assert config.reports[0].to == (FolderDestination(tmp_path / "out"),)
    assert "# the client's sheet" in path.read_text()


def test_file_names_keep_only_safe_characters() -> None:
    config = parse_config(
        HEAD.replace("Mamelodi East", "Mamelodi/East ../x")
        + "reports:\n  - {name: r, project: Mamelodi/East ../x, what: reviews, "
        "to: [{folder: /o}]}\n",
        PATH,
    )
    name = config.reports[0].file_name(date(2026, 1, 15).isoformat())
    assert name == "r-2026-01-15-Mamelodi-East-..-x.xlsx"
    assert "/" not in name


# -- schedules, periods ---------------------------------------------------------------

SAST = ZoneInfo("Africa/Johannesburg")


def local(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=SAST)


def test_a_daily_report_is_due_from_its_time_and_the_day_before_until_then() -> None:
    daily = Schedule.parse("daily 20:00")
    thursday = date(2026, 1, 15)
    period, due = daily.latest_due(local(thursday, 19, 59), SAST)
    assert period == Period(date(2026, 1, 14), date(2026, 1, 14))
    assert due == local(date(2026, 1, 14), 20)
    period, due = daily.latest_due(local(thursday, 20, 0), SAST)
    assert period.name == "2026-01-15" and due == local(thursday, 20)
    # Read as an instant: 18:30 UTC is 20:30 SAST.
    assert daily.latest_due(datetime(2026, 1, 15, 18, 30, tzinfo=UTC), SAST)[0].name == (
        "2026-01-15"
    )


def test_a_weekly_report_covers_the_seven_days_ending_on_its_day() -> None:
    weekly = Schedule.parse("Weekly Friday 17:00")
    assert str(weekly) == "weekly fri 17:00"
    friday = date(2026, 1, 16)
    week = Period(date(2026, 1, 10), friday)
    assert weekly.latest_due(local(friday, 17), SAST) == (week, local(friday, 17))
    assert weekly.latest_due(local(date(2026, 1, 20), 9), SAST)[0] == week  # a Tuesday
    before = weekly.latest_due(local(friday, 16, 59), SAST)[0]
    assert before == Period(date(2026, 1, 3), date(2026, 1, 9))
    # A day by hand (`report send --date`) is sent as the week it falls in.
    assert weekly.period_of(date(2026, 1, 12)) == week
    assert week.name == "2026-01-10_to_2026-01-16" and len(list(week.days())) == 7


# -- destinations -------------------------------------------------------------------


def test_email_and_webhook_destinations_are_read_in_either_form() -> None:
    config = parse_config(
        HEAD
        + """\
reports:
  - name: daily-sheet
    what: summary
    when: weekly mon 07:00
    to:
      - email: ops@example.com
      - email: {to: [a@example.com, b@example.co.za], subject: Drops this week}
      - webhook: https://hooks.example.com/wa
      - webhook: {url: "https://hooks.example.com/x?t=1", secret: REPORTS_WEBHOOK_SECRET}
""",
        PATH,
    )
    assert config.reports[0].to == (
        EmailDestination(("ops@example.com",)),
        EmailDestination(("a@example.com", "b@example.co.za"), "Drops this week"),
        WebhookDestination("https://hooks.example.com/wa"),
        WebhookDestination("https://hooks.example.com/x?t=1", "REPORTS_WEBHOOK_SECRET"),
    )
    # What operators read of a webhook leaves its query (a token, often) out.
    assert str(config.reports[0].to[3]) == "webhook https://hooks.example.com/x"


def test_bad_destinations_say_what_to_write() -> None:
    found = "\n".join(
        problems(
            """\
reports:
  - name: r
    what: reviews
    to:
      - email: {to: [], subject: x}
      - email: {to: [a@example.com], subject: "two\\nlines"}
      - email: {to: [a@example.com], cc: [b@example.com]}
      - webhook: ftp://example.com/x
      - webhook: {url: "https://u:pw@example.com/x"}
      - webhook: {url: "https://example.com/x", secret: "s3cr3t value!"}
      - ftp: /x
"""
        )
    )
    for line, what in [
        (13, "`email` needs `to:`"),
        (14, "`subject` must be one line"),
        (15, "unknown key `cc`"),
        (16, "`webhook` needs an http(s) `url:`"),
        (17, "put no password in the url"),
        (18, "`secret` names the .env variable"),
        (19, "unknown destination `ftp`; available: `folder:`, `email:`, `webhook:`"),
    ]:
        assert f"{PATH}:{line}: report `r`: " in found and what in found, (line, what, found)


# -- alerts ---------------------------------------------------------------------------


def test_alerts_are_read_with_their_defaults_and_conditions_turned_off() -> None:
    config = parse_config(
        HEAD
        + """\
alerts:
  to: [{email: oncall@example.com}, {webhook: "https://hooks.example.com/alerts"}]
  quiet: 30m
  bridge_stale: 2h
  media_backlog: off
  overdue_reviews: 3
  report_failed: off
""",
        PATH,
    )
    rules = config.alerts
    assert rules is not None
    assert rules.quiet == timedelta(minutes=30)
    assert rules.monitor_silent == timedelta(minutes=10)  # the default
    assert rules.bridge_stale == timedelta(hours=2)
    assert rules.outbox_backlog == 20 and rules.media_backlog is None
    assert rules.overdue_reviews == 3 and rules.report_failed is False
    assert [d.kind for d in rules.to] == ["email", "webhook"]
    assert parse_config(HEAD, PATH).alerts is None


def test_bad_alerts_are_said_at_their_lines() -> None:
    found = problems(
        """\
alerts:
  quiet: soon
  monitor_silent: 0m
  outbox_backlog: many
  report_failed: sometimes
  pager: 5
"""
    )
    text = "\n".join(found)
    for line, what in [
        (10, "`to` is missing"),
        (10, "alerts: `quiet`: `soon` is not a duration"),
        (11, "alerts: `monitor_silent`: `0m` is not a positive duration"),
        (12, "`many` must be a whole number of at least 1, or `off`"),
        (13, "`sometimes` must be on or off"),
        (14, "alerts: unknown key `pager`; allowed: to, quiet, monitor_silent"),
    ]:
        assert any(p.startswith(f"{PATH}:{line}:") and what in p for p in found), (line, what, text)
    (only,) = problems("alerts: [email]\n")
    assert only.startswith(f"{PATH}:9:") and "`alerts` must be a mapping" in only
