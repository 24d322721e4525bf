"""`wa-monitor bridge` as a process: what an operator types and sees before WhatsApp is
reached (the connection itself needs the network, which the suite does not use)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

WA_MONITOR = [sys.executable, "-m", "wa_monitor"]
ROOT = Path(__file__).resolve().parents[2]
# Holds the store's session lock until its stdin closes, like a running bridge.
HOLD_LOCK = (
    "import sys; from pathlib import Path; from wa_monitor.bridge.session import SessionLock; "
    "SessionLock(Path(sys.argv[1])).acquire(); print('held', flush=True); sys.stdin.read()"
)


def environment(store: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BRIDGE_", "WHATSAPP_", "WA_MONITOR_", "DATABASE_URL"))
    }
    env.update(BRIDGE_STORE=str(store), PYTHONUNBUFFERED="1", **extra)
    return env


def bridge(store: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WA_MONITOR, "bridge", *args],
        cwd=store.parent,
        env=environment(store, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


@pytest.fixture
def store(tmp_path: Path) -> Path:
    folder = tmp_path / "bridge"
    folder.mkdir()
    return folder


@pytest.fixture
def held(store: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the store's WhatsApp session."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(store)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    assert holder.stdout.readline().strip() == "held"
    try:
        yield holder
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(timeout=20)
        holder.stdout.close()


def test_run_refuses_to_start_without_a_token(store: Path) -> None:
    done = bridge(store, "run")
    assert done.returncode == 2
    assert "BRIDGE_TOKEN is not set" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (store / "messages.db").exists()


def test_a_second_bridge_on_the_same_session_refuses_at_once_naming_the_pid(
    store: Path, held: subprocess.Popen[str]
) -> None:
    done = bridge(store, "run", BRIDGE_TOKEN="t0ken")
    assert done.returncode == 1
    assert f"PID {held.pid}" in done.stderr
    assert "already in use" in done.stderr
    assert "Traceback" not in done.stderr
    assert held.poll() is None  # the running one is untouched
    pairing = bridge(store, "pair")
    assert pairing.returncode == 1 and f"PID {held.pid}" in pairing.stderr


def test_the_lock_is_free_again_once_its_holder_stops(store: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(store)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdin is not None
    assert holder.stdout.readline().strip() == "held"
    holder.stdin.close()
    holder.wait(timeout=20)
    holder.stdout.close()
    done = bridge(store, "run", BRIDGE_TOKEN="t0ken")
    assert "already in use" not in done.stderr
    # It went on to the next check: this store was never paired.
    assert done.returncode == 1
    assert "not paired" in done.stderr and "wa-monitor bridge pair" in done.stderr


def test_pair_refuses_a_phone_number_that_is_not_one(store: Path) -> None:
    done = bridge(store, "pair", "--phone", "call me")
    assert done.returncode == 2
    assert "--phone" in done.stderr and "digits only" in done.stderr


def test_a_bad_listen_address_is_refused_before_anything_starts(store: Path) -> None:
    done = bridge(store, "run", BRIDGE_TOKEN="t0ken", BRIDGE_LISTEN="8080")
    assert done.returncode == 2
    assert "BRIDGE_LISTEN" in done.stderr
    assert not (store / "whatsapp.db.lock").exists()


def test_without_a_store_folder_the_error_says_which_setting(tmp_path: Path) -> None:
    env = environment(tmp_path, BRIDGE_TOKEN="t0ken")
    del env["BRIDGE_STORE"]
    done = subprocess.run(
        [*WA_MONITOR, "bridge", "run"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "BRIDGE_STORE is not set" in done.stderr


@pytest.mark.parametrize(("state", "code"), [("connected", 0), ("logged_out", 1)])
def test_status_shows_the_status_file_and_exits_by_it(store: Path, state: str, code: int) -> None:
    (store / "bridge-status.json").write_text(
        json.dumps(
            {
                "state": state,
                "since": "2025-11-09T17:15:30+00:00",
                "updated_at": "2025-11-09T17:16:00+00:00",
                "pid": 4242,
                "detail": "WhatsApp logged this bridge out" if code else "",
                "account": "27820000000",
                "pairing_failures": 0,
            }
        )
    )
    done = bridge(store, "status")
    assert done.returncode == code
    assert f"bridge {state} as 27820000000" in done.stdout
    as_json = bridge(store, "status", "--json")
    assert json.loads(as_json.stdout)["state"] == state


def test_status_without_a_status_file(store: Path) -> None:
    done = bridge(store, "status")
    assert done.returncode == 1
    assert "no status yet" in done.stdout


def test_help_does_not_load_neonize() -> None:
    code = (
        "import sys; from wa_monitor.cli.main import main\n"
        "try:\n    main(['bridge', '--help'])\nexcept SystemExit:\n    pass\n"
        "sys.exit(3 if 'neonize' in sys.modules else 0)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "pair" in done.stdout and "run" in done.stdout


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_the_shipped_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    shipped = (ROOT / "deploy/systemd/wa-monitor-bridge@.service").read_text()
    lines = shipped.splitlines()
    assert "ReadWritePaths=/opt/wa-monitor/%i/bridge" in lines
    assert "Environment=BRIDGE_STORE=/opt/wa-monitor/%i/bridge" in lines
    assert "RestartPreventExitStatus=3" in lines
    unit = tmp_path / "wa-monitor-bridge@.service"
    unit.write_text(
        "\n".join(
            f"ExecStart={shutil.which('true') or '/bin/true'} bridge run"
            if line.startswith("ExecStart=")
            else line
            for line in lines
        )
        + "\n"
    )
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert str(unit) not in result.stderr, result.stderr


# A bridge process whose WhatsApp client is played by a fake that connects, then waits
# to be stopped as neonize's connect() does: everything of `run` but the network.
RUN_WITH_FAKE_CLIENT = """
import sys
from pathlib import Path
import wa_monitor.bridge
from neonize.events import ConnectedEv, event as neonize_stop
from neonize.proto import Neonize_pb2 as ev
from tests.integration.test_bridge_run import FakeEvents
from wa_monitor.bridge.run import Runner
from wa_monitor.core.settings import load_settings

class Client:
    def __init__(self, path):
        self.event = FakeEvents()
    def get_me(self):
        return ev.Device(JID=ev.JID(User="27820000000", Server="s.whatsapp.net"))
    def connect(self):
        self.event.handlers[ConnectedEv](self, ev.Connected(status=True))
        print("connected", flush=True)
        neonize_stop.wait(60)

settings = load_settings({"BRIDGE_STORE": sys.argv[1], "BRIDGE_TOKEN": "t0ken",
                          "BRIDGE_LISTEN": "127.0.0.1:0"})
sys.exit(Runner(settings, client_factory=Client).start())
"""


def test_sigterm_stops_a_running_bridge_cleanly(store: Path) -> None:
    import signal
    import sqlite3

    with sqlite3.connect(store / "whatsapp.db") as conn:
        conn.execute("CREATE TABLE whatsmeow_device (jid TEXT PRIMARY KEY)")
        conn.execute("INSERT INTO whatsmeow_device VALUES ('27820000000:5@s.whatsapp.net')")
    conn.close()
    process = subprocess.Popen(
        [sys.executable, "-c", RUN_WITH_FAKE_CLIENT, str(store)],
        cwd=ROOT,
        env=environment(store),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "connected"
        assert json.loads((store / "bridge-status.json").read_text())["state"] == "connected"
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, stderr
    assert "SIGTERM received, stopping" in stderr
    status = json.loads((store / "bridge-status.json").read_text())
    assert (status["state"], status["account"]) == ("stopped", "27820000000")
    from wa_monitor.bridge.session import SessionLock

    SessionLock(store).acquire().release()  # the lock went with the process
