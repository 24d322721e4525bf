"""The `wa-monitor` command as a process: what an operator types and sees."""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.helpers import LAWLEY, PROJECTS_YAML, VELO, Bridge
from wa_monitor.store.review_store import ReviewStore

WA_MONITOR = [sys.executable, "-m", "wa_monitor"]
LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \S+ - (INFO|WARNING|ERROR) - ")


@dataclass
class Site:
    """A service directory: config/projects.yaml, a bridge store and a review database."""

    root: Path
    bridge: Bridge
    db_url: str

    def env(self, **extra: str) -> dict[str, str]:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("DATABASE_URL", "NEON_", "WHATSAPP_", "WA_MONITOR_"))
        }
        env.update(
            DATABASE_URL=self.db_url,
            WHATSAPP_DB_PATH=str(self.bridge.messages_db),
            SCAN_INTERVAL="15",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def run(self, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*WA_MONITOR, *args],
            cwd=self.root,
            env=self.env(**extra),
            capture_output=True,
            text=True,
            timeout=120,
            stdin=subprocess.DEVNULL,
        )


@pytest.fixture
def site(tmp_path: Path, empty_db_url: str) -> Site:
    """A site whose review database (PostgreSQL, then SQLite) has no schema yet."""
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "projects.yaml").write_text(PROJECTS_YAML)
    return Site(tmp_path, Bridge(tmp_path / "store"), empty_db_url)


@pytest.fixture
def sqlite_site(tmp_path: Path) -> Site:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "projects.yaml").write_text(PROJECTS_YAML)
    return Site(tmp_path, Bridge(tmp_path / "store"), f"sqlite:///{tmp_path / 'reviews.db'}")


def test_scan_refuses_an_unknown_schema_then_records_after_upgrade(site: Site) -> None:
    site.bridge.member("27821234567", name="Thabo Nkosi")
    site.bridge.post(VELO, "DR12345678 done")
    site.bridge.post(VELO, "Resubmitting DR12345678")
    site.bridge.post(LAWLEY, "DR87654321")

    refused = site.run("scan", "--once")
    assert refused.returncode == 1
    assert "has no WA Monitor schema; run `wa-monitor db upgrade`" in refused.stderr

    upgraded = site.run("db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    scanned = site.run("scan", "--once")
    assert scanned.returncode == 0, scanned.stderr
    rows = {line.split("│")[1].strip(): line for line in scanned.stdout.splitlines() if "│" in line}
    assert re.search(r"│\s+2\s+│\s+1\s+│\s+1\s+│", rows["Velo Test"])
    assert re.search(r"│\s+1\s+│\s+1\s+│\s+0\s+│", rows["Lawley"])
    store = ReviewStore(site.db_url)
    assert {r["drop_number"]: r["user_name"] for r in store.reviews()} == {
        "DR12345678": "Thabo Nkosi",
        "DR87654321": "Thabo Nkosi",
    }
    store.dispose()


def test_run_records_live_messages_and_stops_cleanly_on_sigterm(site: Site) -> None:
    assert site.run("db", "upgrade").returncode == 0
    site.bridge.post(VELO, "DR11111111 before the start")
    process = subprocess.Popen(
        [*WA_MONITOR, "run"],
        cwd=site.root,
        env=site.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        stdin=subprocess.DEVNULL,
    )
    store = ReviewStore(site.db_url)
    try:
        wait_for(lambda: len(store.reviews()) == 1, process)
        site.bridge.post(VELO, "DR22222222 posted while running")
        # SCAN_INTERVAL is 15 s: a review within a few seconds means the service
        # woke up on the bridge's write.
        started = time.monotonic()
        wait_for(lambda: len(store.reviews()) == 2, process)
        assert time.monotonic() - started < 10
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        store.dispose()
    assert process.returncode == 0, stderr
    lines = stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), stderr
    text = "\n".join(lines)
    assert " - INFO - 🎯 MONITORING 2 PROJECTS:" in text
    assert f" - INFO -    • Lawley: {LAWLEY}" in text
    assert " - INFO - ✅ Drop monitor started (scan interval: 15s)" in text
    assert " - INFO - 📱 Found drop: DR22222222 in Velo Test" in text
    assert " - INFO - ✅ Created QA review for DR22222222" in text
    assert "SIGTERM received" in text


def wait_for(condition: object, process: subprocess.Popen[str], timeout: float = 20) -> None:
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the service exited early: {process.communicate()}")
        try:
            if condition():
                return
        except Exception:  # the schema may not be visible yet
            pass
        time.sleep(0.05)  # polling an outcome, not waiting instead of synchronising
    raise AssertionError("timed out waiting for the service")


def test_check_config_reports_every_problem_with_exit_status_2(sqlite_site: Site) -> None:
    path = sqlite_site.root / "config" / "projects.yaml"
    path.write_text(
        PROJECTS_YAML.replace(f'"{VELO}"', '"not-a-jid"').replace(
            "enabled: false", "enabled: maybe"
        )
    )
    result = sqlite_site.run("check-config")
    assert result.returncode == 2
    assert (
        "config/projects.yaml:10: project 'Velo Test': group_jid `not-a-jid` is not a group JID"
        in result.stderr
    )
    assert (
        "config/projects.yaml:13: project 'Mohadin': `enabled` must be true or false"
        in result.stderr
    )
    # the service refuses to start on it too
    assert sqlite_site.run("run").returncode == 2


def test_check_config_lists_enabled_projects_and_honours_config_options(sqlite_site: Site) -> None:
    other = sqlite_site.root / "other.yaml"
    other.write_text(PROJECTS_YAML.replace("name: Lawley", "name: Lawley Two"))
    by_option = sqlite_site.run("--config", str(other), "check-config")
    by_env = sqlite_site.run("check-config", WA_MONITOR_CONFIG=str(other))
    default = sqlite_site.run("check-config")
    assert "Lawley Two" in by_option.stdout and "Lawley Two" in by_env.stdout
    assert "Lawley Two" not in default.stdout
    assert "2 enabled project(s)" in default.stdout
    assert "disabled (validated, not monitored): Mohadin" in default.stdout


@pytest.mark.parametrize(
    ("make", "message"),
    [
        ("missing", "messages.db not found; check WHATSAPP_DB_PATH"),
        ("not-a-store", "not a bridge store: table `messages` is missing"),
        ("no-column", "table `messages` has no column `content`"),
        ("garbage", "not a readable SQLite bridge store"),
    ],
)
def test_bad_bridge_store(sqlite_site: Site, make: str, message: str) -> None:
    path = sqlite_site.root / "bad" / "messages.db"
    path.parent.mkdir()
    if make == "not-a-store":
        sqlite3.connect(path).execute("CREATE TABLE notes (x)").connection.close()
    elif make == "no-column":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE messages (id, chat_jid, sender, timestamp, media_type)")
        conn.execute("CREATE TABLE chats (jid, name, last_message_time)")
        conn.close()
    elif make == "garbage":
        path.write_bytes(b"this is not a database" * 100)
    sqlite_site.run("db", "upgrade")
    result = sqlite_site.run("scan", WHATSAPP_DB_PATH=str(path))
    assert result.returncode == 1
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_reported_with_the_password_masked(sqlite_site: Site) -> None:
    url = "postgresql://qa_user:Sup3rS3cret@127.0.0.1:1/reviews"
    result = sqlite_site.run("scan", DATABASE_URL=url)
    assert result.returncode == 1
    assert "postgresql://qa_user:***@127.0.0.1:1/reviews" in result.stderr
    assert "Sup3rS3cret" not in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_missing_settings_and_config_are_clear(sqlite_site: Site, tmp_path: Path) -> None:
    result = sqlite_site.run("scan", WHATSAPP_DB_PATH="")
    assert result.returncode == 2
    assert "WHATSAPP_DB_PATH is not set" in result.stderr
    result = sqlite_site.run("--config", str(tmp_path / "nope.yaml"), "check-config")
    assert result.returncode == 2
    assert "projects file not found" in result.stderr


def test_env_file_is_read(sqlite_site: Site) -> None:
    env_file = sqlite_site.root / "prod.env"
    env_file.write_text(
        f"NEON_DATABASE_URL={sqlite_site.db_url}\nWHATSAPP_DB_PATH={sqlite_site.bridge.messages_db}\n"
    )
    sqlite_site.bridge.post(VELO, "DR12345678")
    assert (
        sqlite_site.run("--env-file", str(env_file), "db", "upgrade", DATABASE_URL="").returncode
        == 0
    )
    result = sqlite_site.run(
        "--env-file", str(env_file), "scan", DATABASE_URL="", WHATSAPP_DB_PATH=""
    )
    assert result.returncode == 0, result.stderr
    assert re.search(r"Total\s+│\s+1\s+│\s+1\s+│", result.stdout)


def test_groups_lists_jids_names_and_projects(sqlite_site: Site) -> None:
    sqlite_site.bridge.writer.add_chat(VELO, "Velo Test group")
    sqlite_site.bridge.writer.add_chat("120363499999999999@g.us", "Soweto Activations")
    sqlite_site.bridge.chatter(VELO, 3)
    sqlite_site.bridge.chatter("120363499999999999@g.us", 2)
    result = sqlite_site.run("groups")
    assert result.returncode == 0, result.stderr
    velo = next(line for line in result.stdout.splitlines() if VELO in line)
    assert (
        "Velo Test group" in velo
        and "│        3 │" in velo
        and velo.rstrip(" │").endswith("Velo Test")
    )
    other = next(line for line in result.stdout.splitlines() if "120363499999999999@g.us" in line)
    assert "Soweto Activations" in other and "│        2 │" in other


def test_simulate_then_scan_records_what_was_posted(sqlite_site: Site) -> None:
    simulated = sqlite_site.run("simulate", "--messages", "3000", "--seed", "3")
    assert simulated.returncode == 0, simulated.stderr
    sqlite_site.run("db", "upgrade")
    demo_config = sqlite_site.root / "demo.yaml"
    from wa_monitor.ops.demo import projects_yaml

    demo_config.write_text(projects_yaml())
    result = sqlite_site.run("--config", str(demo_config), "scan")
    assert result.returncode == 0, result.stderr
    match = re.search(r"Total\s+│\s+(\d+)\s+│\s+(\d+)\s+│\s+(\d+)\s+│", result.stdout)
    assert match and int(match.group(1)) >= 3000 and int(match.group(2)) > 10


def test_demo_runs_with_no_setup_and_serves_the_dashboard(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [*WA_MONITOR, "demo", "--every", "0.1", "--dir", str(tmp_path / "d"), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(3)]
        assert f"http://127.0.0.1:{port}/wa-monitor" in lines[1]
        username, _, password = lines[2].split()[-3:]
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
            deadline = time.monotonic() + 20
            page = None
            while time.monotonic() < deadline:
                try:
                    page = client.get("/login")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)  # polling for the server to listen
            assert page is not None and page.status_code == 200
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert (username, bool(password)) == ("reviewer", True)
    assert "🎯 MONITORING 4 PROJECTS:" in stderr
    assert "✅ Created QA review for DR" in stderr
    match = re.search(r"demo stopped: (\d+) reviews", stdout)
    assert match and int(match.group(1)) > 0


def test_demo_stops_with_a_hint_when_its_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [*WA_MONITOR, "demo", "--port", str(port), "--duration", "5"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    assert result.returncode == 1, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "demo login" not in result.stdout and "/wa-monitor" not in result.stdout
    assert "Traceback" not in result.stderr


def test_missing_projects_file_says_how_to_write_one(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    result = subprocess.run(
        [*WA_MONITOR, "--config", str(missing), "check-config"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode == 2
    assert "projects.example.yaml" not in result.stderr
    assert "group_jid" in result.stderr and "wa-monitor groups" in result.stderr


def test_dev_scan_refuses_prods_review_database(sqlite_site: Site) -> None:
    prod_env = sqlite_site.root / "prod.env"
    prod_env.write_text(f"DATABASE_URL={sqlite_site.db_url}\n")
    assert sqlite_site.run("db", "upgrade").returncode == 0
    sqlite_site.bridge.post(VELO, "DR12345678")
    dev = {"WA_MONITOR_ENV": "dev", "PROD_ENV_FILE": str(prod_env)}
    refused = sqlite_site.run("scan", **dev)
    assert refused.returncode != 0
    assert "prod" in refused.stderr and "Traceback" not in refused.stderr
    store = ReviewStore(sqlite_site.db_url)
    assert store.reviews() == []  # nothing written
    store.dispose()
    allowed = sqlite_site.run("scan", ALLOW_SHARED_DATABASE="true", **dev)
    assert allowed.returncode == 0, allowed.stderr
