"""Operations, pure parts: working hours, settings, the guard's URL identity, the systemd
unit, sd_notify, log rotation and projects file edits (comments and order kept)."""

from __future__ import annotations

import json
import logging
import shutil
import socket
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from wa_monitor.cli.ops import parse_when
from wa_monitor.core.config import load_config
from wa_monitor.core.errors import ConfigError
from wa_monitor.core.hours import WorkingHours
from wa_monitor.core.logs import SafeDailyFileHandler, SafeRotatingFileHandler, setup_logging
from wa_monitor.core.settings import settings_from
from wa_monitor.monitor.health import group_staleness
from wa_monitor.monitor.projects_edit import add_project, disable_project, enable_project, make_diff
from wa_monitor.monitor.service import sd_notify, watchdog_interval
from wa_monitor.ops.environments import UnitOptions, render_unit, render_web_unit
from wa_monitor.store.database import same_database

SAST = ZoneInfo("Africa/Johannesburg")
ROOT = Path(__file__).resolve().parents[2]

PROD_YAML = (ROOT / "deploy/prod/config/projects.yaml").read_text()


# -- working hours and staleness ----------------------------------------------------------


def test_working_hours_are_judged_in_the_projects_zone() -> None:
    hours = WorkingHours.parse("Mon-Fri 07:00-18:00")
    monday_8_sast = datetime(2025, 11, 10, 8, 0, tzinfo=SAST)
    assert hours.contains(monday_8_sast, SAST)
    # 06:30 SAST is 04:30 UTC: outside, whatever UTC says.
    assert not hours.contains(datetime(2025, 11, 10, 4, 30, tzinfo=UTC), SAST)
    assert not hours.contains(datetime(2025, 11, 9, 10, 0, tzinfo=SAST), SAST)  # Sunday
    assert WorkingHours.parse("always").contains(datetime(2025, 11, 9, 3, 0, tzinfo=UTC), SAST)
    assert not WorkingHours.parse("never").contains(monday_8_sast, SAST)
    assert WorkingHours.parse("Mon,Wed,Sat 8:00-12:00").days == frozenset({0, 2, 5})


@pytest.mark.parametrize(
    "text", ["Mon-Fri", "07:00", "Xyz 07:00-08:00", "18:00-07:00", "Fri-Mon 1:00-2:00"]
)
def test_bad_working_hours_are_refused(text: str) -> None:
    with pytest.raises(ValueError):
        WorkingHours.parse(text)


def test_a_group_is_stale_only_when_silent_too_long_in_working_hours() -> None:
    now = datetime(2025, 11, 10, 10, 0, tzinfo=SAST)  # Monday 10:00
    newest = {
        "a@g.us": now - timedelta(hours=3),
        "b@g.us": now - timedelta(minutes=5),
        "c@g.us": None,
    }
    names = {"a@g.us": "Lawley", "b@g.us": "Velo", "c@g.us": "Mohadin"}
    hours = WorkingHours.parse("Mon-Fri 07:00-18:00")
    checks = {c.name: c for c in group_staleness(newest, names, 7200, hours, SAST, now=now)}
    assert checks["group Lawley"].status == "warn"
    assert "3.0 h" in checks["group Lawley"].detail
    assert checks["group Velo"].status == "pass"
    assert checks["group Mohadin"].status == "warn"
    night = now.replace(hour=22)
    quiet = group_staleness(newest, names, 7200, hours, SAST, now=night)
    assert {c.name: c.status for c in quiet}["group Lawley"] == "pass"


# -- settings -----------------------------------------------------------------------------


def test_operations_settings_are_read_and_checked() -> None:
    s = settings_from(
        {
            "WA_MONITOR_ENV": "Dev",
            "METRICS_PORT": "9311",
            "ALLOW_SHARED_DATABASE": "yes",
            "WORKING_HOURS": "Mon-Fri 07:00-18:00",
            "LOG_ROTATE": "daily",
            "WA_MONITOR_INSTANCE": "dev@box",
        }
    )
    assert (s.env_name, s.metrics_port, s.allow_shared_database) == ("dev", 9311, True)
    assert (s.log_rotate, s.instance) == ("daily", "dev@box")
    assert settings_from({}).instance.startswith("default@")
    with pytest.raises(ConfigError) as info:
        settings_from({"METRICS_PORT": "http", "WORKING_HOURS": "whenever", "LOG_ROTATE": "hourly"})
    text = str(info.value)
    assert "METRICS_PORT" in text and "WORKING_HOURS" in text and "LOG_ROTATE" in text


@pytest.mark.parametrize("name", ["prod", "dev", "acme-fibre", "co2", "Velo-Test"])
def test_any_company_can_name_an_instance(name: str) -> None:
    assert settings_from({"WA_MONITOR_ENV": name}).env_name == name.lower()
    assert settings_from({"WA_MONITOR_ENV": name}).instance.startswith(f"{name.lower()}@")


@pytest.mark.parametrize("name", ["acme_fibre", "-dev", "dev-", "../prod", "a b", "x" * 33])
def test_a_name_that_cannot_be_a_unit_or_a_folder_is_refused(name: str) -> None:
    with pytest.raises(ConfigError, match="lower-case letters, digits and '-'"):
        settings_from({"WA_MONITOR_ENV": name})


def test_relative_and_absolute_times() -> None:
    now = datetime(2025, 11, 10, 10, 0, tzinfo=UTC)
    assert parse_when("24h", SAST, now) == now - timedelta(hours=24)
    assert parse_when("7d", SAST, now) == now - timedelta(days=7)
    assert parse_when("2025-11-09", SAST, now) == datetime(2025, 11, 9, tzinfo=SAST)
    with pytest.raises(ConfigError, match="not a time"):
        parse_when("yesterday", SAST, now)


# -- the prod/dev guard's notion of "the same database" -----------------------------------


def test_same_database_sees_through_spelling(tmp_path: Path) -> None:
    assert same_database(
        "postgresql://u:secret@LOCALHOST/reviews",
        "postgresql+psycopg://other@127.0.0.1:5432/reviews",
    )
    assert not same_database("postgresql://u@db/reviews", "postgresql://u@db/reviews_dev")
    assert not same_database(
        "postgresql://u@db/reviews", "postgresql://u@db/reviews?options=-csearch_path%3Ddev"
    )
    (tmp_path / "sub").mkdir()
    assert same_database(f"sqlite:///{tmp_path}/r.db", f"sqlite:///{tmp_path}/sub/../r.db")


# -- the systemd unit ---------------------------------------------------------------------


def test_the_shipped_unit_is_the_rendered_one_and_is_hardened() -> None:
    shipped = (ROOT / "deploy/systemd/wa-monitor@.service").read_text()
    assert shipped == render_unit()
    web = (ROOT / "deploy/systemd/wa-monitor-web@.service").read_text()
    assert web == render_web_unit()
    assert "ExecStart=/opt/wa-monitor/venv/bin/wa-monitor serve" in web.splitlines()
    hardening = [line for line in shipped.splitlines() if line.startswith("Protect")]
    assert hardening and all(line in web.splitlines() for line in hardening)
    for line in (
        "Type=notify",
        "Restart=always",
        "User=wa-monitor",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "WatchdogSec=120",
        "ReadOnlyPaths=/opt/velo-test-monitor/services/whatsapp-bridge/store",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert line in shipped.splitlines()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    unit = tmp_path / "wa-monitor@.service"
    executable = shutil.which("true") or "/bin/true"
    unit.write_text(render_unit(UnitOptions(executable=executable)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert str(unit) not in result.stderr, result.stderr  # no warning about our file
    broken = tmp_path / "broken@.service"
    broken.write_text(render_unit(UnitOptions(executable=str(tmp_path / "missing"))))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(broken)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0  # the check can fail


# -- sd_notify ----------------------------------------------------------------------------


def test_sd_notify_sends_a_datagram_to_notify_socket(tmp_path: Path) -> None:
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as server:
        server.bind(str(path))
        server.settimeout(5)
        assert sd_notify("READY=1", {"NOTIFY_SOCKET": str(path)})
        assert server.recv(1024) == b"READY=1"
    assert not sd_notify("READY=1", {})
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({}) is None


# -- log rotation -------------------------------------------------------------------------


def test_log_files_rotate_by_size_or_daily_and_mask_secrets(tmp_path: Path) -> None:
    log_file = tmp_path / "logs" / "wa.log"
    base = {"LOG_FILE": str(log_file), "LOG_MAX_BYTES": "2048", "LOG_BACKUPS": "0"}
    setup_logging(settings_from(base), stream=False)
    root = logging.getLogger()
    try:
        handler = next(h for h in root.handlers if isinstance(h, SafeRotatingFileHandler))
        assert handler.backupCount == 1  # 0 would never roll over: the disk would fill
        log = logging.getLogger("wa_monitor")
        for i in range(100):
            log.info("line %d postgresql://user:hunter2@db/x", i)
        assert log_file.stat().st_size <= 2048
        assert (tmp_path / "logs" / "wa.log.1").exists()
        assert not (tmp_path / "logs" / "wa.log.2").exists()
        text = log_file.read_text() + (tmp_path / "logs" / "wa.log.1").read_text()
        assert "hunter2" not in text and "user:***@db" in text
        try:
            raise RuntimeError("cannot connect to postgresql://user:hunter2@db/x")
        except RuntimeError:
            log.exception("⚠️ failed")  # the traceback is masked too
        assert "hunter2" not in log_file.read_text()
        daily_json = {**base, "LOG_ROTATE": "daily", "LOG_BACKUPS": "7", "LOG_FORMAT": "json"}
        setup_logging(settings_from(daily_json), stream=False)
        try:
            raise RuntimeError("cannot connect to postgresql://user:hunter2@db/x")
        except RuntimeError:
            log.exception("⚠️ failed")
        entry = json.loads(log_file.read_text().splitlines()[-1])
        assert "user:***@db" in entry["exception"] and "hunter2" not in entry["exception"]
        daily = next(h for h in root.handlers if isinstance(h, SafeDailyFileHandler))
        assert (daily.when, daily.backupCount) == ("MIDNIGHT", 7)
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()


# -- editing the projects file ------------------------------------------------------------


def test_add_keeps_comments_order_quotes_and_layout(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROD_YAML + "# end of the list\n")
    result = add_project(
        path,
        name="Marketing",
        group_jid="120363400000000009@g.us",
        description="Marketing activations",
        actor="alice",
    )
    text = path.read_text()
    assert text.startswith(PROD_YAML.rstrip("\n"))  # everything before is untouched
    assert text.endswith(
        '\n\n  - name: Marketing\n    enabled: true\n    group_jid: "120363400000000009@g.us"\n'
        '    description: "Marketing activations"\n# end of the list\n'
    )
    assert [p.name for p in load_config(path).projects] == [
        "Lawley", "Velo Test", "Mohadin", "Mamelodi", "Marketing"
    ]  # fmt: skip
    assert result.diff.count("\n+") >= 5 and "(sha256 " in result.diff
    assert not result.audited


def test_disable_and_enable_change_one_line(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROD_YAML)
    disable_project(path, "Mohadin", actor="bob")
    text = path.read_text()
    assert text.count("enabled: false") == 1
    changed = [a for a, b in zip(PROD_YAML.splitlines(), text.splitlines(), strict=True) if a != b]
    assert changed == ["    enabled: true"]
    assert not load_config(path).by_name("Mohadin").enabled  # type: ignore[union-attr]
    enable_project(path, "Mohadin", actor="bob")
    assert path.read_text() == PROD_YAML


def test_an_edit_that_would_break_the_file_is_refused_and_the_file_kept(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text(PROD_YAML)
    before = path.stat().st_ino
    with pytest.raises(ConfigError, match="already monitored by project 'Lawley'"):
        add_project(
            path, name="Again", group_jid="120363418298130331@g.us", description="x", actor="a"
        )
    with pytest.raises(ConfigError, match="already exists"):
        add_project(path, name="Lawley", group_jid="1203634@g.us", description="x", actor="a")
    with pytest.raises(ConfigError, match="not a group JID"):
        add_project(
            path, name="X", group_jid="27821234567@s.whatsapp.net", description="x", actor="a"
        )
    with pytest.raises(ConfigError, match="did you mean 'Mohadin'"):
        disable_project(path, "Mohadn", actor="a")
    assert path.read_text() == PROD_YAML and path.stat().st_ino == before
    assert not list(tmp_path.glob(".projects.yaml.*[!k]"))  # no temp file left behind


def test_a_broken_file_is_not_edited(tmp_path: Path) -> None:
    path = tmp_path / "projects.yaml"
    path.write_text("projects:\n  - name: [unclosed\n")
    with pytest.raises(ConfigError, match="YAML syntax error"):
        add_project(path, name="X", group_jid="1203634@g.us", description="x", actor="a")
    assert path.read_text() == "projects:\n  - name: [unclosed\n"


def test_diff_names_both_versions() -> None:
    diff = make_diff("a\n", "b\n", Path("projects.yaml"))
    assert "-a\n+b\n" in diff
    assert diff.splitlines()[0].startswith("--- projects.yaml (sha256 ")


# -- the projects file watcher ------------------------------------------------------------


def test_the_watcher_reads_a_settled_change_keeps_the_last_good_and_obeys_sighup(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from wa_monitor.monitor.service import ConfigWatcher

    path = tmp_path / "projects.yaml"
    path.write_text(PROD_YAML)
    watcher = ConfigWatcher(path, load_config(path))
    watcher.SETTLE = 0.0
    assert watcher.poll() is None  # unchanged
    path.write_text(PROD_YAML.replace("name: Mohadin", "name: Mohadin East"))
    assert watcher.poll() is None  # a change is read once it has settled (next poll)
    changed = watcher.poll()
    assert changed is not None
    config, old, new = changed
    assert config.by_name("Mohadin East") is not None and old == PROD_YAML and "East" in new
    path.write_text("projects:\n  - name: x\n")
    assert watcher.poll() is None
    with pytest.raises(ConfigError):
        watcher.poll()
    assert watcher.config is config  # the last good one
    assert watcher.poll() is None  # the same bad file is not reported again
    path.unlink()
    assert watcher.poll() is None
    with pytest.raises(ConfigError, match="gone or unreadable"):
        watcher.poll()
    path.write_text(PROD_YAML)
    watcher.hup.set()  # SIGHUP: read at once, no settling
    reloaded = watcher.poll()
    assert reloaded is not None and reloaded[0].by_name("Mohadin") is not None
    watcher.hup.set()
    with caplog.at_level(logging.INFO, "wa_monitor"):
        assert watcher.poll() is None
    assert any("SIGHUP" in m and "unchanged" in m for m in caplog.messages)


# -- deploy/ ------------------------------------------------------------------------------


def test_the_shipped_prod_and_dev_layouts_are_valid_and_separate() -> None:
    from wa_monitor.core.settings import read_env_file

    settings = {}
    for env in ("prod", "dev"):
        config = load_config(ROOT / f"deploy/{env}/config/projects.yaml")
        assert config.by_group().get("120363421664266245@g.us") is not None  # Velo Test in both
        assert (ROOT / f"deploy/{env}/logs/.gitkeep").exists()
        settings[env] = settings_from(read_env_file(ROOT / f"deploy/{env}/.env.example"))
        assert settings[env].env_name == env
    assert len(load_config(ROOT / "deploy/prod/config/projects.yaml").enabled) == 4
    prod, dev = settings["prod"], settings["dev"]
    assert not same_database(prod.database_url, dev.database_url)
    assert prod.metrics_port != dev.metrics_port
    assert dev.instance_env_files == ("/opt/wa-monitor/*/.env",)
    assert (prod.web_port, dev.web_port) == (8000, 8001)
    assert not dev.allow_shared_database


def test_every_metric_the_alert_rules_use_is_exposed(sqlite_template: Path) -> None:
    import re as regex

    from ruamel.yaml import YAML

    from wa_monitor.monitor.metrics import MonitorMetrics, database_registry
    from wa_monitor.store.review_store import ReviewStore

    rules = YAML(typ="safe").load((ROOT / "deploy/prometheus/wa-monitor-alerts.yml").read_text())
    used = {
        name
        for rule in rules["groups"][0]["rules"]
        for name in regex.findall(r"wa_monitor_\w+", rule["expr"])
    }
    store = ReviewStore(f"sqlite:///{sqlite_template}")
    exposed: set[str] = set()
    try:
        for registry in (MonitorMetrics().registry, database_registry(store)):
            for family in registry.collect():
                exposed.add(family.name)
                if family.type == "counter":
                    exposed.add(family.name + "_total")
    finally:
        store.dispose()
    assert used and used <= exposed, used - exposed
