"""What a newcomer following the README meets: the demo judged healthy while it runs,
values that would crash instead of naming their line, every command taking the options,
and a package that ships what it names."""

from __future__ import annotations

import glob
import os
import socket
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from pathlib import Path

import click
import httpx
import pytest
from click.testing import CliRunner

from tests.helpers import PROJECTS_YAML
from wa_monitor.cli.main import main

WA_MONITOR = [sys.executable, "-m", "wa_monitor"]
REPO = Path(__file__).resolve().parents[2]


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without the settings a developer's shell may hold."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DATABASE_URL", "NEON_", "WHATSAPP_", "WA_MONITOR_", "SCAN_"))
    }
    env.update(extra)
    return env


def run(cwd: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*WA_MONITOR, *args],
        cwd=cwd,
        env=clean_env(COLUMNS="200", **extra),
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


# -- the demo, as status, doctor and /readyz see it --------------------------------------


class Demo:
    """`wa-monitor demo` as a process; its log is read in a thread so it never blocks."""

    def __init__(self, root: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        self.root = root
        self.process = subprocess.Popen(
            [*WA_MONITOR, "demo", "--every", "0.2", "--dir", "d", "--port", str(self.port)],
            cwd=root,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            stdin=subprocess.DEVNULL,
        )
        self.log: list[str] = []
        self.scanned = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.log.append(line)
            # The first scan's lines come after the service's first heartbeat.
            if "📱 Found drop" in line:
                self.scanned.set()
        self.scanned.set()  # ended: the waiting test reads why in the log

    def stop(self) -> str:
        if self.process.poll() is None:
            self.process.terminate()
        try:
            out, _ = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, _ = self.process.communicate()
        return out


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    running = Demo(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_the_running_demo_is_healthy_to_status_doctor_and_readyz(demo: Demo) -> None:
    assert demo.scanned.wait(240), "".join(demo.log)  # it draws its history's photos first
    assert demo.process.poll() is None, "".join(demo.log)
    env_file = demo.root / "d" / ".env"
    assert "WA_MONITOR_ENV=demo" in env_file.read_text()

    status = run(demo.root, "status", "--env-file", str(env_file))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "WA Monitor status (demo)" in status.stdout
    assert "PASS  heartbeat: monitor demo@" in status.stdout

    doctor = run(demo.root, "doctor", "--env-file", str(env_file))
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr
    assert "FAIL" not in doctor.stdout

    ready = httpx.get(f"http://127.0.0.1:{demo.port}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok"

    out = demo.stop()
    assert demo.process.returncode == 0, "".join(demo.log)
    assert "demo stopped:" in out
    # Stopped, the demo is no longer reported healthy.
    after = run(demo.root, "status", "--env-file", str(env_file))
    assert after.returncode == 1
    assert "stopped at" in after.stdout


# -- values that cannot be read: their line (or variable), exit 2, no traceback ----------


@pytest.mark.parametrize(
    ("line", "said"),
    [
        ("since: 2025-13-45", "`2025-13-45` is not a real date or time (month must be in 1..12)"),
        ("since: 2025-02-30", "is not a real date or time (day is out of range for month)"),
        ("since: 2025-11-01T25:00:00", "is not a real date or time (hour must be in 0..23)"),
        ("since: 2025-11-01T08:00:00+25:00", "is not a real date or time (offset must be"),
        ("since: '2025-13-45'", "`since: 2025-13-45` is not an ISO date or date-time"),
        ("since: !!int 0x", "`0x` cannot be read (not a valid !!int)"),
        ("auto_reply_invalid: !!bool maybe", "`maybe` cannot be read (not a valid !!bool)"),
        ("review_target: 1e999h", "`1e999h` is not a duration"),
        ("photos_after: 99999999999999999999d", "is not a duration"),
        ("photos_before: .inf", "`inf` is not a duration"),
        ("working_hours: Mon-Fri 07:00-25:00", "hours must be HH:MM"),
        ("working_hours: Mon-Fri 18:00-07:00", "the end of the working day must be after"),
    ],
)
def test_a_value_that_cannot_be_read_names_its_line(tmp_path: Path, line: str, said: str) -> None:
    # The value goes into the first project (Lawley), after its description.
    described = '    description: "Lawley Activation 3 group"\n'
    text = PROJECTS_YAML.replace(described, f"{described}    {line}\n", 1)
    assert text != PROJECTS_YAML
    (tmp_path / "projects.yaml").write_text(text)
    at = text.splitlines().index(f"    {line}") + 1
    result = run(tmp_path, "check-config", "--config", "projects.yaml")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: projects.yaml:{at}: "), errors[0]
    assert said in errors[0]


@pytest.mark.parametrize(
    "setting",
    [
        "SCAN_INTERVAL=inf",
        "SCAN_INTERVAL=nan",
        "SCAN_INTERVAL=1e300",
        "HEARTBEAT_INTERVAL=1e999",
        "STALE_AFTER=-inf",
        "LOG_MAX_BYTES=inf",
    ],
)
def test_a_setting_no_clock_can_hold_is_refused_by_name(tmp_path: Path, setting: str) -> None:
    (tmp_path / "projects.yaml").write_text(PROJECTS_YAML)
    (tmp_path / "bad.env").write_text(setting + "\n")
    name, _, value = setting.partition("=")
    for command in ("settings", "check-config", "run"):
        result = run(tmp_path, command, "--env-file", "bad.env", "--config", "projects.yaml")
        assert result.returncode == 2, (command, result.stdout, result.stderr)
        assert "Traceback" not in result.stderr
        assert f"error: {name}='{value}' must be a number from " in result.stderr


# -- --config and --env-file after every command -----------------------------------------


def command_paths(group: click.Group, ctx: click.Context) -> Iterator[list[str]]:
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        assert command is not None
        if isinstance(command, click.Group):
            for rest in command_paths(command, ctx):
                yield [name, *rest]
        else:
            yield [name]


def test_every_command_takes_config_and_env_file_after_its_name() -> None:
    paths = list(command_paths(main, click.Context(main)))
    assert ["check-config"] in paths and ["db", "upgrade"] in paths and len(paths) > 20
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(main, [*path, "--help"], terminal_width=160)
        assert result.exit_code == 0, (path, result.output)
        assert "--config PATH" in result.output, path
        assert "--env-file PATH" in result.output, path


# -- the package ships what it names -----------------------------------------------------


def test_the_package_data_names_files_that_exist_and_every_one_that_does() -> None:
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]["wa_monitor"]
    package = REPO / "wa_monitor"
    shipped: set[Path] = set()
    for pattern in declared:
        found = {Path(p) for p in glob.glob(str(package / pattern)) if Path(p).is_file()}
        assert found, f"package-data names {pattern!r}, which matches no file"
        shipped |= found
    data = {
        p
        for p in package.rglob("*")
        if p.is_file() and p.suffix not in {".py", ".pyc"} and "__pycache__" not in p.parts
    }
    assert data - shipped == set(), "files of the package that a wheel would leave out"
